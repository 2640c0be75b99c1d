"""`connectome compare A B`: connections that appear, vanish or change between two datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from connectome_query.cli.console import fail, out
from connectome_query.graphdb.driver import open_driver
from connectome_query.graphdb.local_server import Neo4jServerError

app = typer.Typer()


def _name_version(text: str) -> tuple[str, int | None]:
    """`NAME` or `NAME@vN`."""
    name, _, version = text.partition("@v")
    if not version:
        return name, None
    if not version.isdigit():
        raise typer.BadParameter(f"{text!r}: expected NAME or NAME@vN")
    return name, int(version)


@app.command("compare")
def compare_cmd(
    a: Annotated[str, typer.Argument(help="Dataset A (NAME, or NAME@vN for a version).")],
    b: Annotated[str, typer.Argument(help="Dataset B.")],
    synapse_type: Annotated[str, typer.Option(
        help="chemical (ConnectsTo), electrical (GapJunction, unordered pairs), monoamine or "
             "neuropeptide.")] = "chemical",
    match: Annotated[str, typer.Option(
        help="Match neurons by name (instance), cell (name, leading zeros ignored: AS01 = "
             "AS1) or bodyId.")] = "name",
    mapping: Annotated[Path | None, typer.Option(
        help="CSV with columns a,b: A's name -> B's name for cells named differently.")] = None,
    min_weight: Annotated[int, typer.Option(help="Ignore connections lighter than this.")] = 1,
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Write connections.csv, types.csv and neurons.csv here.")] = None,
    top: Annotated[int, typer.Option(help="Largest changes to print.")] = 10,
) -> None:
    """Compare two datasets (or versions): connections in one only, weight changes, weight
    correlation and per-type sums. Neurons present in only one dataset are listed too."""
    from connectome_query.export.compare import (
        CompareRequest,
        compare,
        read_mapping,
        read_side,
    )
    from connectome_query.export.request import ExportError, ExportLimits
    from connectome_query.graphdb import catalog
    from connectome_query.graphdb.reads import read_records

    try:
        req = CompareRequest(a=a, b=b, synapse_type=synapse_type, match=match,
                             mapping=read_mapping(str(mapping)) if mapping else None,
                             min_weight=min_weight).check()
        limit = ExportLimits.from_env().max_edges
        with open_driver() as driver:
            def read(cypher: str, params: dict) -> list:
                return [r.data() for r in read_records(driver, cypher, params,
                                                       database="neo4j", timeout=600)]
            sides = []
            for label in (a, b):
                name, version = _name_version(label)
                key = catalog.resolve(driver, name, version).key
                sides.append(read_side(read, key, label, req, limit))
        result = compare(sides[0], sides[1], req)
    except (ExportError, catalog.UnknownDataset) as exc:
        raise fail(escape(str(exc))) from None
    except Neo4jServerError as exc:
        raise fail(escape(str(exc))) from None
    s = result.summary
    table = Table("", "A", "B", title=f"{a} vs {b} ({synapse_type})")
    table.add_row("neurons", f"{result.neurons_a:,}", f"{result.neurons_b:,}")
    table.add_row("in one only", f"{len(result.only_a_neurons):,}",
                  f"{len(result.only_b_neurons):,}")
    table.add_row("connections", f"{s['connectionsA']:,}", f"{s['connectionsB']:,}")
    table.add_row("in one only", f"{s['onlyA']:,}", f"{s['onlyB']:,}")
    table.add_row("  of which between shared neurons", f"{s['onlyAMatched']:,}",
                  f"{s['onlyBMatched']:,}")
    table.add_row("total weight", f"{s['weightA']:,}", f"{s['weightB']:,}")
    out.print(table)
    r = s["correlationShared"]
    out.print(f"in both: {s['both']:,} connections, {s['stronger']:,} stronger in B, "
              f"{s['weaker']:,} weaker; weight correlation "
              f"{'n/a' if r is None else f'{r:.3f}'}")
    changes = result.edges.reindex(result.edges["change"].abs().sort_values(
        ascending=False, kind="stable").index).head(top)
    if top > 0 and len(changes):
        biggest = Table("pre", "post", "A", "B", "change", "status", title="largest changes")
        for row in changes.itertuples():
            biggest.add_row(escape(str(row.pre)), escape(str(row.post)), str(row.weightA),
                            str(row.weightB), f"{row.change:+d}", str(row.status))
        out.print(biggest)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        result.edges.to_csv(out_dir / "connections.csv", index=False)
        result.types.to_csv(out_dir / "types.csv", index=False)
        import pandas as pd
        pd.DataFrame({"neuron": result.matched + result.only_a_neurons + result.only_b_neurons,
                      "in": ["both"] * len(result.matched) + ["A"] * len(result.only_a_neurons)
                      + ["B"] * len(result.only_b_neurons)}
                     ).to_csv(out_dir / "neurons.csv", index=False)
        out.print(f"wrote {out_dir}/connections.csv, types.csv, neurons.csv")
