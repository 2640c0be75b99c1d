"""/volumes: a synthetic EM directory's truth, loaded as a dataset, served as Neuroglancer
precomputed. Files are the bytes on disk (Range too), with CORS and content types; skeletons
and synapse annotations decode to the SWC files and the synapse table; private volumes need a
token; and Neuroglancer, served by us, loads the image, segmentation, skeletons and synapses
with nothing from outside."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from connectome_query.graphql_api.web import precomputed
from tests.support import browser as bs
from tests.support.web_data import WEB_EM, WEB_EM_PRIVATE

pytestmark = [pytest.mark.neo4j]


def _get(url: str, **headers: str) -> httpx.Response:
    return httpx.get(url, headers=headers, timeout=30)


def test_volume_files_are_the_files_on_disk(live_api: str, em_dir: Path) -> None:
    root = f"{live_api}volumes/{WEB_EM}"
    info = _get(f"{root}/segmentation/info")
    assert info.status_code == 200
    assert info.headers["content-type"] == "application/json"
    assert info.headers["access-control-allow-origin"] == "*"
    on_disk = json.loads((em_dir / "truth" / "segmentation.precomputed" / "info").read_text())
    assert info.json() == {**on_disk, "skeletons": "skeletons", "mesh": "mesh"}
    scale = on_disk["scales"][0]["key"]
    chunks = sorted((em_dir / "image.precomputed" / _get(f"{root}/image/info").json()
                     ["scales"][0]["key"]).iterdir())
    assert chunks
    body = chunks[0].read_bytes()
    whole = _get(f"{root}/image/{chunks[0].parent.name}/{chunks[0].name}")
    assert whole.content == body
    assert whole.headers["content-type"] == "application/octet-stream"
    part = _get(f"{root}/image/{chunks[0].parent.name}/{chunks[0].name}", range="bytes=10-49")
    assert part.status_code == 206
    assert part.content == body[10:50]
    seg_chunk = next((em_dir / "truth" / "segmentation.precomputed" / scale).iterdir())
    assert _get(f"{root}/segmentation/{scale}/{seg_chunk.name}").content == \
        seg_chunk.read_bytes()
    pre = httpx.options(f"{root}/segmentation/info", headers={
        "origin": "http://elsewhere.example", "access-control-request-method": "GET"})
    assert pre.status_code == 204
    assert pre.headers["access-control-allow-origin"] == "*"
    for bad in ("..%2F..%2Fvolume.json", "%2E%2E/%2E%2E/volume.json", "nothing"):
        assert _get(f"{root}/segmentation/{bad}").status_code == 404
    assert _get(f"{root}/meshes/info").status_code == 404


def test_skeletons_decode_to_the_swc_files(live_api: str, em_dir: Path) -> None:
    folder = em_dir / "truth" / "skeletons"
    files = sorted(folder.glob("*.swc"))
    assert files
    info = _get(f"{live_api}volumes/{WEB_EM}/segmentation/skeletons/info").json()
    assert info["@type"] == "neuroglancer_skeletons"
    for swc in files:
        data = _get(f"{live_api}volumes/{WEB_EM}/segmentation/skeletons/{swc.stem}")
        assert data.status_code == 200
        pos, edges, comp = precomputed.decode_skeleton(data.content)
        rows = pd.read_csv(swc, comment="#", sep=r"\s+", header=None,
                           names=["id", "type", "x", "y", "z", "r", "parent"])
        np.testing.assert_allclose(pos, rows[["x", "y", "z"]].to_numpy(), rtol=1e-6)
        np.testing.assert_array_equal(comp, rows["type"].to_numpy())
        by_id = dict(zip(rows["id"], range(len(rows)), strict=True))
        expected = {(k, by_id[p]) for k, p in enumerate(rows["parent"]) if p in by_id}
        assert {tuple(e) for e in edges.tolist()} == expected


def test_meshes_span_their_segments_voxels(live_api: str, em_dir: Path) -> None:
    """Each mesh's bounding box is its segment's voxel bounding box × resolution (numpy over
    the truth labels), and it is a closed surface (every edge in two triangles)."""
    import tensorstore as ts

    from connectome_query.graphql_api.web.meshes import decode_mesh

    root = f"{live_api}volumes/{WEB_EM}/segmentation"
    info = _get(f"{root}/info").json()
    assert _get(f"{root}/mesh/info").json() == {"@type": "neuroglancer_legacy_mesh"}
    scale = info["scales"][0]
    res = np.asarray(scale["resolution"], float)
    labels_zyx = ts.open({"driver": "zarr3", "kvstore": {
        "driver": "file", "path": str(em_dir / "truth" / "segmentation.zarr")}},
        read=True).result().read().result()
    labels = np.asarray(labels_zyx).transpose(2, 1, 0)
    assert list(labels.shape) == scale["size"]
    ids = [int(i) for i in np.unique(labels) if i]
    for seg in ids[:4]:
        manifest = _get(f"{root}/mesh/{seg}:0")
        assert manifest.json() == {"fragments": [f"{seg}:0:{seg}"]}
        assert manifest.headers["access-control-allow-origin"] == "*"
        vertices, faces = decode_mesh(_get(f"{root}/mesh/{seg}:0:{seg}").content)
        where = np.argwhere(labels == seg)
        np.testing.assert_allclose(vertices.min(0), where.min(0) * res, rtol=1e-5)
        np.testing.assert_allclose(vertices.max(0), (where.max(0) + 1) * res, rtol=1e-5)
        assert faces.max() < len(vertices)
        edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), 1)
        _, counts = np.unique(edges, axis=0, return_counts=True)
        assert set(counts.tolist()) == {2}
    assert _get(f"{root}/mesh/{max(ids) + 1000}:0").status_code == 404
    assert _get(f"{root}/mesh/x:0").status_code == 404


def _decode_many(data: bytes, n_props: int = 1) -> tuple[np.ndarray, np.ndarray]:
    (count,) = struct.unpack_from("<Q", data)
    rec = np.frombuffer(data, "<f4", count * (3 + n_props), 8).reshape(count, 3 + n_props)
    ids = np.frombuffer(data, "<u8", count, 8 + rec.nbytes)
    return rec, ids


def test_synapses_decode_to_the_synapse_table(live_api: str, em_dir: Path) -> None:
    table = pd.read_parquet(em_dir / "truth" / "synapses.parquet")
    root = f"{live_api}volumes/{WEB_EM}/synapses"
    info = _get(f"{root}/info").json()
    assert info["annotation_type"] == "POINT"
    assert info["spatial"][0]["limit"] >= len(table)
    rec, ids = _decode_many(_get(f"{root}/spatial0/0_0_0").content)
    got = pd.DataFrame(rec, columns=["x", "y", "z", "confidence"]).assign(synapse_id=ids)
    want = table.set_index("synapse_id").loc[got["synapse_id"]]
    assert sorted(ids.tolist()) == sorted(table["synapse_id"].tolist())
    np.testing.assert_allclose(got[["x", "y", "z"]].to_numpy(),
                               want[["x", "y", "z"]].to_numpy(), rtol=1e-6)
    pre = int(table["pre_segment_id"].value_counts().index[0])
    _, pre_ids = _decode_many(_get(f"{root}/pre_segment/{pre}").content)
    assert sorted(pre_ids.tolist()) == sorted(
        table.loc[table["pre_segment_id"] == pre, "synapse_id"].tolist())
    one = table.iloc[0]
    data = _get(f"{root}/by_id/{int(one['synapse_id'])}").content
    xyz = np.frombuffer(data, "<f4", 3)
    np.testing.assert_allclose(xyz, one[["x", "y", "z"]].to_numpy(float), rtol=1e-6)
    pre_n, pre_id = struct.unpack_from("<IQ", data, 16)
    post_n, post_id = struct.unpack_from("<IQ", data, 28)
    assert (pre_n, pre_id, post_n, post_id) == (1, one["pre_segment_id"], 1,
                                                one["post_segment_id"])


def test_private_volumes_need_a_token(live_api: str, web_token: tuple[Path, str]) -> None:
    url = f"{live_api}volumes/{WEB_EM_PRIVATE}/segmentation/info"
    hidden = _get(url)
    assert hidden.status_code == 404
    absent = _get(f"{live_api}volumes/t_web_no_such/segmentation/info")
    assert absent.status_code == 404
    assert hidden.json()["detail"].replace(WEB_EM_PRIVATE, "X") == \
        absent.json()["detail"].replace("t_web_no_such", "X")
    assert _get(url, authorization="Bearer nonsense").status_code == 401
    # The token grants the private neuPrint dataset only, not this one.
    assert _get(url, authorization=f"Bearer {web_token[1]}").status_code == 404


def _tile(rel: str) -> bool:
    """A volume chunk (`{key}/x0-x1_y0-y1_z0-z1`) or an annotation chunk (`spatial0/0_0_0`)."""
    name = rel.rsplit("/", 1)[-1]
    return "_" in name and "/" in rel and not name.startswith("info")


def _viewer_status(page: Any) -> str:
    """The viewer's status messages (a layer that fails to load says so there, not on the
    console)."""
    return str(page.evaluate("""Array.from(document.querySelectorAll(
        '#neuroglancer-status-container li, #neuroglancer-status-container-modal li'))
        .filter(e => e.style.display !== 'none').map(e => e.innerText).join(' | ')"""))


def test_neuroglancer_shows_our_volumes_offline(live_api: str, em_dir: Path,
                                                browser: Any) -> None:
    segments = pd.read_parquet(em_dir / "truth" / "segments.parquet")
    shown = segments.nlargest(3, "size_voxels")["segment_id"].astype(int).tolist()
    root = f"{live_api}volumes/{WEB_EM}/"
    wanted = {"image/info", "segmentation/info", "synapses/info", "synapses/spatial0/0_0_0",
              "segmentation/mesh/info",
              *(f"segmentation/skeletons/{s}" for s in shown),
              *(f"segmentation/mesh/{s}:0:{s}" for s in shown)}
    with bs.visit(browser) as seen:
        seen.page.goto(f"{live_api}datasets/{WEB_EM}/neuroglancer?bodyIds="
                       + ",".join(map(str, shown)))
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            answered = {u.removeprefix(root) for u, s in seen.responses.items()
                        if u.startswith(root) and s == 200}
            chunks = {layer: [u for u in answered if u.startswith(f"{layer}/") and _tile(u)]
                      for layer in ("image", "segmentation", "synapses")}
            if wanted <= answered and all(chunks.values()):
                break
            seen.page.wait_for_timeout(500)
        seen.page.wait_for_timeout(2000)
        seen.screenshot("neuroglancer")
        seen.assert_offline()
        state = seen.page.evaluate("JSON.stringify(window.viewer.state.toJSON())")
        status = _viewer_status(seen.page)
    missing = wanted - answered
    assert not missing, f"never answered: {missing}; saw {sorted(answered)}"
    assert all(chunks.values()), chunks
    layers = {layer["name"]: layer for layer in json.loads(state)["layers"]}
    assert set(layers) == {"image", "segmentation", "synapses"}
    assert sorted(int(s) for s in layers["segmentation"]["segments"]) == sorted(shown)
    assert layers["synapses"]["linkedSegmentationLayer"] == {
        "pre_segment": "segmentation", "post_segment": "segmentation"}
    assert not seen.console_errors, seen.console_errors
    assert "Dismiss" not in status and "rror" not in status, status


def test_links_from_the_command_and_graphql_point_at_our_volumes(
        live_api: str, em_dir: Path) -> None:
    from typer.testing import CliRunner

    from connectome_query.cli.main import app
    from connectome_query.graphql_api.web.viewer import parse_viewer_url

    shown = pd.read_parquet(em_dir / "truth" / "segments.parquet")["segment_id"].head(2)
    ids = [str(int(s)) for s in shown]
    result = CliRunner().invoke(app, ["neuroglancer", WEB_EM, "--body-ids", ",".join(ids),
                                      "--api", live_api])
    assert result.exit_code == 0, result.output
    link = result.output.strip()
    assert link.startswith(f"{live_api}neuroglancer/v/s")
    layers = {la["name"]: la for la in parse_viewer_url(link)["layers"]}
    assert layers["segmentation"]["source"] == \
        f"precomputed://{live_api}volumes/{WEB_EM}/segmentation"
    assert layers["segmentation"]["segments"] == ids
    assert layers["synapses"]["source"] == f"precomputed://{live_api}volumes/{WEB_EM}/synapses"
    answer = httpx.post(f"{live_api}graphql", json={"query": """query($d: String!, $b: [BodyId!])
        { neuroglancer(dataset: $d, bodyIds: $b) { url segments } }""",
        "variables": {"d": WEB_EM, "b": ids}}).json()
    url = answer["data"]["neuroglancer"]["url"]
    assert url.startswith(f"{live_api}neuroglancer/v/s")
    sources = {la["name"]: la["source"] for la in parse_viewer_url(url)["layers"]}
    assert sources["segmentation"] == f"precomputed://{live_api}volumes/{WEB_EM}/segmentation"
    assert sources["image"] == f"precomputed://{live_api}volumes/{WEB_EM}/image"
    missing = CliRunner().invoke(app, ["neuroglancer", "t_web_no_such", "--api", live_api])
    assert missing.exit_code == 1


def test_the_viewer_receives_the_state_its_link_carries(live_api: str) -> None:
    from connectome_query.graphql_api.web import viewer

    state = {"layers": [{"type": "segmentation", "name": "s", "source": "precomputed://x/y"}],
             "layout": "xy"}
    link = viewer.viewer_url(live_api, state)
    assert viewer.parse_viewer_url(link) == state
    token = link.rstrip("/").rsplit("/", 1)[-1]
    assert _get(link).status_code == 200

    def first_event(query: str) -> str:
        with httpx.stream("GET", f"{live_api}neuroglancer/events/{token}{query}",
                          timeout=30) as response:
            assert response.status_code == 200
            return next(response.iter_lines())

    sent = first_event("?c=1&gs=")
    assert sent.startswith("data: ")
    assert json.loads(sent.removeprefix("data: ")) == {"k": "s", "s": state, "g": "1"}
    assert first_event("?c=1&gs=1").startswith(":")  # a client that holds it gets nothing
    for other in ("offline", "s-not-base64!", "sAAAA"):
        assert viewer.token_state(other) is None
    posted = httpx.post(f"{live_api}neuroglancer/state/{token}", json={"s": {}, "g": 7})
    assert posted.json() == {"g": "1"}
