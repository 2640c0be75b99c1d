"""Dataset and neuron pages (HTML) and the numbers behind them (JSON), with the same access
rule as GraphQL: /datasets lists what the caller may read; /datasets/{name} shows versions,
counts, the clustered type × type heatmap, synapses per connection, degrees and the strongest
connections; /datasets/{name}/neurons/{bodyId} a neuron's partners by type and its inputs by
compartment. Each page links to GraphiQL queries and, where the dataset has volumes, to
Neuroglancer on them. Tables and pictures are computed once per dataset version."""

from __future__ import annotations

from html import escape
from typing import Any

import neo4j
import pandas as pd
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from connectome_query.graphdb import catalog
from connectome_query.graphql_api.auth import AuthError, can_read
from connectome_query.graphql_api.web import page_data as data
from connectome_query.graphql_api.web import pictures, viewer
from connectome_query.graphql_api.web.access import Dataset, DriverGetter, readable_dataset
from connectome_query.graphql_api.web.html import figure, graphiql_link, layout, link, table
from connectome_query.plotting import charts as plots

TOP_LIMIT = 20


async def dataset_numbers(driver: neo4j.AsyncDriver, database: str, ds: Dataset,
                          ) -> dict[str, Any]:
    """Everything the dataset page shows, as tables, from the version's summary."""
    props, origin = await data.version_summary(driver, database, ds.key)
    tables = data.summary_tables(props)
    versions = await data.read(driver, catalog.LIST, {"name": ds.name}, database=database)
    matrix = data.type_matrix(tables["pairs"], totals=tables["typeTotals"])
    return {**tables, "matrix": matrix, "versions": versions,
            "origin": origin}


def dataset_json(numbers: dict[str, Any]) -> dict[str, Any]:
    m: pd.DataFrame = numbers["matrix"]
    return {
        "counts": numbers["counts"],
        "typeMatrix": {"preTypes": [str(t) for t in m.index],
                       "postTypes": [str(t) for t in m.columns],
                       "synapses": m.to_numpy().tolist()},
        "synapsesPerConnection": numbers["weights"].astype(int).to_dict("records"),
        "outDegrees": numbers["outDegrees"].astype(int).to_dict("records"),
        "inDegrees": numbers["inDegrees"].astype(int).to_dict("records"),
        "topConnections": numbers["top"].to_dict("records"),
        "versions": [{k: v for k, v in r.items() if k != "key"} for r in numbers["versions"]],
        "origin": numbers["origin"],
    }


CAPTIONS = {"heatmap": "Synapses from each type (rows) to each type (columns), clustered, "
                       "log colour",
            "weights": "Synapses per connection",
            "out-degree": "Partners downstream of each neuron",
            "in-degree": "Partners upstream of each neuron"}


def dataset_figures(name: str, numbers: dict[str, Any]) -> str:
    return "".join(figure(plots.data_uri(pictures.dataset_picture(what, name, numbers)[0]),
                          CAPTIONS[what], what) for what in pictures.DATASET)


def dataset_page(request: Request, ds: Dataset, numbers: dict[str, Any], figs: str) -> str:
    c = numbers["counts"]
    counts = table(["neurons", "typed neurons", "types", "connections", "synapses"],
                   [[c["neurons"], c["typed"], c["types"], c["connections"], c["synapses"]]],
                   "counts")
    versions = table(["version", "status", "current", "loaded", "neurons", "synapses"],
                     [[v["version"], v["status"], "yes" if v["current"] else "",
                       v["created"], v["neurons"], v["chemicalSynapses"]]
                      for v in numbers["versions"]], "versions", text_columns=0)
    base = f"/datasets/{ds.name}/neurons/"
    top = table(["pre", "pre type", "post", "post type", "synapses"],
                [[link(f"{base}{r.pre}", r.pre), r.preType, link(f"{base}{r.post}", r.post),
                  r.postType, r.weight] for r in numbers["top"].itertuples()],
                "top-connections")
    links = [link(graphiql_link(f'{{ cellTypes(dataset: "{ds.name}") {{ type neurons }} }}'),
                  "cell types in GraphiQL").html,
             link(f"/datasets/{ds.name}/data.json", "these numbers as JSON").html]
    if viewer.has_volumes(ds.meta):
        links.append(link(f"/datasets/{ds.name}/neuroglancer", "open in Neuroglancer").html)
    return layout(f"dataset {ds.name}", f"""
<p class="note">current version {ds.version} ({escape(ds.key)}); {" · ".join(links)}</p>
<p class="note" id="origin">{escape(numbers["origin"])}</p>
<h2>Counts</h2>{counts}
<h2>Versions</h2>{versions}
<h2>Pictures</h2>{figs}
<h2>Strongest connections</h2>{top}""")


async def neuron_numbers(driver: neo4j.AsyncDriver, database: str, ds: Dataset,
                         body_id: int) -> dict[str, Any]:
    params = {"key": ds.key, "bodyId": body_id}
    found = await data.read(driver, data.NEURON, params, database=database)
    if not found:
        raise HTTPException(404, f"dataset {ds.name!r} has no neuron {body_id}")
    out: dict[str, Any] = {"neuron": found[0]}
    for direction, cypher in data.PARTNERS.items():
        partners = await data.frame(driver, database, cypher, params,
                                   ["partner", "type", "weight"])
        out[direction] = partners
        out[f"{direction}Types"] = data.partner_types(partners)
    out["inputCompartments"] = await data.frame(driver, database, data.INPUT_COMPARTMENTS,
                                               params, ["compartment", "synapses"])
    return out


def neuron_json(numbers: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.to_dict("records") if isinstance(v, pd.DataFrame) else v)
            for k, v in numbers.items()}


def neuron_page(ds: Dataset, numbers: dict[str, Any]) -> str:
    n = numbers["neuron"]
    body_id = int(n["bodyId"])
    parts, figs = [], []
    for direction in ("upstream", "downstream"):
        types: pd.DataFrame = numbers[f"{direction}Types"]
        figs.append(figure(plots.data_uri(pictures.neuron_picture(direction, numbers)[0]),
                           f"{direction} partners by type", f"{direction}-bars"))
        parts.append(f"<h2>{direction.capitalize()} partners by type</h2>" + table(
            ["type", "synapses", "neurons"],
            [[r.type, r.synapses, r.partners] for r in types.itertuples()],
            f"{direction}-types", text_columns=1))
        partners: pd.DataFrame = numbers[direction].head(TOP_LIMIT)
        parts.append(f"<h3>Top {direction} partners</h3>" + table(
            ["partner", "type", "synapses"],
            [[link(f"/datasets/{ds.name}/neurons/{r.partner}", r.partner), r.type, r.weight]
             for r in partners.itertuples()], f"{direction}-partners"))
    comp: pd.DataFrame = numbers["inputCompartments"]
    if len(comp):
        figs.append(figure(plots.data_uri(pictures.neuron_picture("compartments", numbers)[0]),
                           "inputs by compartment", "compartment-bars"))
    else:
        parts.append('<p class="note">No synapse-level data (only connection weights) in this '
                     "dataset: no inputs by compartment.</p>")
    parts.append("<h2>Inputs by postsynaptic compartment</h2>" + table(
        ["compartment", "synapses"], [[r.compartment, r.synapses] for r in comp.itertuples()],
        "input-compartments", text_columns=1))
    query = (f'{{ partnersByType(dataset: "{ds.name}", neuron: {{bodyId: "{body_id}"}}, '
             "direction: UPSTREAM) { type synapses } }")
    links = [link(graphiql_link(query), "partners in GraphiQL").html,
             link(f"/datasets/{ds.name}/neurons/{body_id}/data.json", "JSON").html,
             link(f"/datasets/{ds.name}", f"dataset {ds.name}").html]
    if viewer.has_volumes(ds.meta):
        links.append(link(f"/datasets/{ds.name}/neuroglancer?bodyIds={body_id}",
                          "open in Neuroglancer").html)
    info = table(["bodyId", "type", "instance", "class"],
                 [[body_id, n["type"], n["instance"], n["cellClass"]]], "neuron")
    return layout(f"{ds.name}: neuron {body_id}",
                  f'<p class="note">{" · ".join(links)}</p>{info}{"".join(figs)}'
                  + "".join(parts))


def _auth_error(exc: AuthError) -> HTTPException:
    return HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"})


def router(driver: DriverGetter, database: str) -> APIRouter:
    """The /datasets routes."""
    api = APIRouter(prefix="/datasets", include_in_schema=False)
    cache = data.VersionCache()

    async def numbers(ds: Dataset) -> dict[str, Any]:
        return dict(await cache.get((ds.key, "numbers"),
                                    lambda: dataset_numbers(driver(), database, ds)))

    @api.get("", response_class=HTMLResponse)
    async def index(request: Request) -> HTMLResponse:
        rows = await data.read(driver(), catalog.LIST, {"name": None}, database=database)
        try:
            shown = [r for r in rows if r["current"]
                     and await can_read(request, r["name"], driver=driver(), database=database)]
        except AuthError as exc:
            raise _auth_error(exc) from None
        listing = table(["dataset", "version", "neurons", "synapses", "loaded"],
                        [[link(f"/datasets/{r['name']}", r["name"]), r["version"], r["neurons"],
                          r["chemicalSynapses"], r["created"]] for r in shown],
                        "datasets", text_columns=1)
        return HTMLResponse(layout("datasets", listing))

    @api.get("/{name}", response_class=HTMLResponse)
    async def dataset(request: Request, name: str) -> HTMLResponse:
        ds = await readable_dataset(request, driver(), database, name)
        nums = await numbers(ds)

        async def draw() -> str:
            return await run_in_threadpool(dataset_figures, ds.name, nums)

        figs = await cache.get((ds.key, "figures"), draw)
        return HTMLResponse(dataset_page(request, ds, nums, figs))

    @api.get("/{name}/data.json")
    async def dataset_data(request: Request, name: str) -> JSONResponse:
        ds = await readable_dataset(request, driver(), database, name)
        return JSONResponse(dataset_json(await numbers(ds)))

    @api.get("/{name}/neurons/{body_id}", response_class=HTMLResponse)
    async def neuron(request: Request, name: str, body_id: int) -> HTMLResponse:
        ds = await readable_dataset(request, driver(), database, name)
        nums = await neuron_numbers(driver(), database, ds, body_id)
        return HTMLResponse(await run_in_threadpool(neuron_page, ds, nums))

    @api.get("/{name}/neurons/{body_id}/data.json")
    async def neuron_data(request: Request, name: str, body_id: int) -> JSONResponse:
        ds = await readable_dataset(request, driver(), database, name)
        return JSONResponse(neuron_json(await neuron_numbers(driver(), database, ds, body_id)))

    @api.get("/{name}/neuroglancer")
    async def neuroglancer(request: Request, name: str,
                           body_ids: str = Query("", alias="bodyIds"),
                           synapses: bool = True) -> RedirectResponse:
        ds = await readable_dataset(request, driver(), database, name)
        if not viewer.has_volumes(ds.meta):
            raise HTTPException(404, f"dataset {name!r} has no volumes recorded at ingest")
        try:
            segments = [int(b) for b in body_ids.split(",") if b.strip()]
        except ValueError:
            raise HTTPException(400, f"bodyIds: expected comma-separated integers, "
                                     f"got {body_ids!r}") from None
        if not segments:
            segments = [int(r.pre) for r in (await numbers(ds))["top"].head(5).itertuples()]
        state = viewer.viewer_state(str(request.base_url), name, ds.meta, segments,
                                    None if synapses else False)
        return RedirectResponse(viewer.viewer_url(str(request.base_url), state), 307)

    return api
