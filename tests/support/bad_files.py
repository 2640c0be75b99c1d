"""Small valid input files with every optional column, and ways to break exactly one thing in
them, for the adversarial ingest suite. Row numbers are as a person sees them in the file (a
CSV's header is row 1; Parquet rows count from 1)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import neo4j
from click.testing import Result
from typer.testing import CliRunner

from connectome_query.cli.main import app
from tests.support.fingerprint import fingerprint, graph_fingerprint

FLYWIRE = 720_575_940_626_000_001
"""A FlyWire-range root id (above 2^59; float64 would round it to a multiple of 128)."""
MICRONS = 864_691_135_132_887_311
"""A MICrONS-range root id."""

NEURON_ROWS = [
    {"bodyId": str(FLYWIRE + i), "type": f"T{i % 3}", "instance": f"T{i % 3}_{i}",
     "status": "Traced", "cellClass": "central", "predictedNt": "gaba",
     "somaLocation": f"[{i}, {2 * i}, {3 * i}]", "size": str(1000 + i)}
    for i in range(8)
]
CONNECTION_ROWS = [
    {"bodyId_pre": str(FLYWIRE + a), "bodyId_post": str(FLYWIRE + b), "weight": str(w),
     "kind": kind,
     "roiInfo": json.dumps({"LH": {"pre": w, "post": w}}) if kind == "chemical" else ""}
    for a, b, w, kind in [(0, 1, 5, "chemical"), (1, 2, 7, "chemical"), (2, 0, 2, "chemical"),
                          (3, 4, 9, "chemical"), (4, 5, 1, "chemical"), (5, 6, 3, "chemical"),
                          (6, 7, 4, "chemical"), (1, 3, 2, "electrical")]
]
SYNAPSE_ROWS = [
    {"id": str(100 + i), "pre_pt_root_id": str(MICRONS + i % 4),
     "post_pt_root_id": str(MICRONS + 4 + i % 5), "ctr_pt_position": f"[{i} {2 * i} {3 * i}]",
     "size": str(50 + i), "confidence": "0.9", "post_compartment": "dendrite",
     "neuropil": "LH" if i % 2 else "MB"}
    for i in range(20)
]


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n",
                            quoting=csv.QUOTE_ALL)
    writer.writeheader()
    writer.writerows(rows)
    path.write_bytes(buf.getvalue().encode("utf-8"))
    return path


def neuprint_folder(folder: Path) -> Path:
    """A valid neurons.csv + connections.csv with every optional column."""
    write_csv(folder / "neurons.csv", NEURON_ROWS)
    write_csv(folder / "connections.csv", CONNECTION_ROWS)
    return folder


def synapse_csv(path: Path) -> Path:
    """A valid CAVE-style synapse table (MICrONS-range root ids)."""
    return write_csv(path, SYNAPSE_ROWS)


def with_cell(rows: list[dict[str, str]], index: int, column: str,
              value: str) -> list[dict[str, str]]:
    """A copy of `rows` with row `index` (0 = first data row, file row 2) changed."""
    out = [dict(r) for r in rows]
    out[index][column] = value
    return out


def refused_cleanly(driver: neo4j.Driver, args: list[str], dataset: str,
                    expect: list[str]) -> Result:
    """Run `connectome ARGS`: it must fail with every text of `expect` in its message, no
    traceback, and leave the database exactly as it was (no version left `loading`)."""
    before_all = graph_fingerprint(driver)
    before = fingerprint(driver, dataset)
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    flat = " ".join(result.output.split())
    for text in expect:
        assert text in flat, (text, result.output)
    assert "Traceback" not in result.output
    assert graph_fingerprint(driver) == before_all
    after = fingerprint(driver, dataset)
    assert after == before
    assert after["loadingVersions"] == 0
    return result


def load_ok(args: list[str]) -> Result:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return result
