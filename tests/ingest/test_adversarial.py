"""The standing adversarial suite: every class of bad value, in every format, gives a clear
error naming the file, the row and the column; through the CLI a non-zero exit, and the database
exactly as it was (whole-database and dataset fingerprints, no version left `loading`).

Classes: ids that passed through float (decimal text, float/bool/timestamp/decimal columns),
integers beyond 64 bits, non-finite numbers, positions that are malformed or overflow once
scaled, text with control characters (NUL included), names over the byte cap, roiInfo counts
that are not 64-bit whole numbers, unknown vocabulary. Hypothesis generalises the classes
(any control character anywhere, any id in the FlyWire/MICrONS ranges written as a decimal,
any roiInfo count outside int64, name lengths around the cap).
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from pathlib import Path
from typing import Any

import neo4j
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectome_query.ingest.errors import IngestError
from connectome_query.ingest.limits import INDEXED_TEXT_MAX_BYTES
from connectome_query.ingest.sources import read_source
from tests.support.bad_files import (
    CONNECTION_ROWS,
    FLYWIRE,
    MICRONS,
    NEURON_ROWS,
    SYNAPSE_ROWS,
    load_ok,
    neuprint_folder,
    refused_cleanly,
    synapse_csv,
    with_cell,
    write_csv,
)
from tests.support.graph import current_key

FIXTURES_OK: dict = {"deadline": None,
                     "suppress_health_check": [HealthCheck.function_scoped_fixture]}
CAP = INDEXED_TEXT_MAX_BYTES

# (column, value, what the message says), each put in the third data row (file row 4).
NEURON_CASES: list[tuple[str, str, str]] = [
    ("instance", "\u00e9" * (CAP // 2 + 1), "4,096-byte limit"),
    ("type", "x" * (CAP + 1), "4,096-byte limit"),
    ("cellClass", "a\x00b", "U+0000"),
    ("status", "a\x1bb", "U+001B"),
    ("predictedNt", "gaba\x7f", "U+007F"),
    ("instance", "two\nlines", "U+000A"),
    ("somaLocation", "[1e999, 0, 0]", "not finite"),
    ("somaLocation", "[1-2-3]", "expected a position"),
    ("somaLocation", "[1, 2]", "expected a position"),
    ("size", "inf", "not a finite number"),
    ("size", "nan", "not a finite number"),
    ("size", "1e999", "not a finite number"),
    ("bodyId", f"{FLYWIRE + 2}.0", "float64"),
    ("bodyId", "7.2057594062600e17", "float64"),
    ("bodyId", "True", "not a 64-bit whole number"),
    ("bodyId", "2020-01-01T00:00:00", "not a 64-bit whole number"),
    ("bodyId", "0x1F", "not a 64-bit whole number"),
    ("bodyId", "9223372036854775808", "outside the 64-bit integer range"),
    ("bodyId", "-1", "below 0"),
]
CONNECTION_CASES: list[tuple[str, str, str]] = [
    ("roiInfo", json.dumps({"LH": {"pre": 2**64, "post": 1}}), "2^63-1"),
    ("roiInfo", '{"LH": {"pre": -1, "post": 1}}', "2^63-1"),
    ("roiInfo", '{"LH": {"pre": 1.5, "post": 1}}', "2^63-1"),
    ("roiInfo", '{"LH": {"pre": true, "post": 1}}', "2^63-1"),
    ("roiInfo", '{"LH": {"pre": NaN, "post": 1}}', "NaN is not a count"),
    ("roiInfo", '{"LH": {"pre": Infinity, "post": 1}}', "Infinity is not a count"),
    ("roiInfo", '{"L\\u0000H": {"pre": 1, "post": 1}}', "control character"),
    ("roiInfo", json.dumps({"x" * (CAP + 1): {"pre": 1}}), "limit for names"),
    ("roiInfo", '{"": {"pre": 1}}', "ROI name is empty"),
    ("roiInfo", '["LH"]', "expected JSON like"),
    ("roiInfo", '{"LH": 3}', "expected JSON like"),
    ("weight", "1e999", "not a 64-bit whole number"),
    ("weight", "9223372036854775808", "outside the 64-bit integer range"),
    ("weight", "2.5", "not a 64-bit whole number"),
    ("bodyId_pre", f"{FLYWIRE}.0", "float64"),
    ("kind", "gap", "unknown kind"),
]
SYNAPSE_CASES: list[tuple[str, str, str]] = [
    ("pre_pt_root_id", f"{MICRONS}.0", "float64"),
    ("post_pt_root_id", "8.6469113513288e17", "float64"),
    ("id", "101.0", "float64"),
    ("pre_pt_root_id", "False", "not a 64-bit whole number"),
    ("ctr_pt_position", "[1-2-3]", "expected a position"),
    ("ctr_pt_position", "[1,2]", "expected a position"),
    ("ctr_pt_position", "[1 2 3 4]", "expected a position"),
    ("ctr_pt_position", "1 2 3", "expected a position"),
    ("ctr_pt_position", "[1,,2,3]", "expected a position"),
    ("ctr_pt_position", "[a b c]", "expected a position"),
    ("ctr_pt_position", "[nan 1 1]", "expected a position"),
    ("ctr_pt_position", "[1e999 1 1]", "not finite"),
    ("ctr_pt_position", "", "empty value"),
    ("confidence", "1.5", "outside [0, 1]"),
    ("confidence", "-0.1", "outside [0, 1]"),
    ("neuropil", "x" * (CAP + 1), "4,096-byte limit"),
    ("neuropil", "L\x00H", "U+0000"),
    ("post_compartment", "axonal", "unknown compartment"),
    ("size", "inf", "not a finite number"),
]


def _neuprint_case(folder: Path, file: str, column: str, value: str) -> Path:
    neuprint_folder(folder)
    rows = NEURON_ROWS if file == "neurons.csv" else CONNECTION_ROWS
    write_csv(folder / file, with_cell(rows, 2, column, value))
    return folder


CSV_CASES = ([("neurons.csv", *c) for c in NEURON_CASES]
             + [("connections.csv", *c) for c in CONNECTION_CASES]
             + [("synapses.csv", *c) for c in SYNAPSE_CASES])


def _case_source(tmp_path: Path, file: str, column: str, value: str) -> Path:
    if file == "synapses.csv":
        return write_csv(tmp_path / file, with_cell(SYNAPSE_ROWS, 2, column, value))
    return _neuprint_case(tmp_path / "np", file, column, value)


@pytest.mark.parametrize(("file", "column", "value", "says"), CSV_CASES,
                         ids=[f"{f}:{c}:{v[:20]!r}" for f, c, v, _ in CSV_CASES])
def test_bad_value_names_file_row_column(tmp_path: Path, file: str, column: str, value: str,
                                         says: str) -> None:
    source = _case_source(tmp_path, file, column, value)
    with pytest.raises(IngestError) as err:
        read_source(str(source))
    e = err.value
    assert (Path(e.path).name, e.row, e.column) == (file, 4, column), str(e)
    assert says in e.message, str(e)


@pytest.mark.neo4j
@pytest.mark.parametrize(("file", "column", "value", "says"), CSV_CASES,
                         ids=[f"{f}:{c}:{v[:20]!r}" for f, c, v, _ in CSV_CASES])
def test_bad_value_through_the_cli_changes_nothing(tmp_path: Path, driver: neo4j.Driver,
                                                   file: str, column: str, value: str,
                                                   says: str) -> None:
    dataset = "t_adv_np" if file != "synapses.csv" else "t_adv_syn"
    if driver.execute_query("MATCH (m:Meta {name: $d, current: true}) RETURN count(m) AS n",
                            d=dataset).records[0]["n"] == 0:
        good = (neuprint_folder(tmp_path / "good") if file != "synapses.csv"
                else synapse_csv(tmp_path / "good.csv"))
        load_ok(["ingest", str(good), "-d", dataset])
    source = _case_source(tmp_path, file, column, value)
    refused_cleanly(driver, ["ingest", str(source), "-d", dataset],
                    dataset, [file, "row 4", f"column '{column}'", says, "nothing was written"])


SCALED_CASES = [("[1e300 1 1]", "1e10,4,40", "x = 1e+300 times the voxel size 10000000000.0 nm"),
                ("[1 2e306 1]", "4,100,40", "y = 2e+306 times the voxel size 100.0 nm")]


@pytest.mark.parametrize(("position", "voxels", "says"), SCALED_CASES)
def test_position_that_overflows_once_scaled(tmp_path: Path, position: str, voxels: str,
                                              says: str) -> None:
    """Finite in the file, infinite in nm: refused at its row, before anything is written."""
    path = write_csv(tmp_path / "syn.csv", with_cell(SYNAPSE_ROWS, 5, "ctr_pt_position",
                                                     position))
    x, y, z = (float(v) for v in voxels.split(","))
    with pytest.raises(IngestError) as err:
        read_source(str(path), voxel_size=(x, y, z))
    e = err.value
    assert (Path(e.path).name, e.row, e.column) == ("syn.csv", 7, "ctr_pt_position"), str(e)
    assert says in e.message and "not a finite number" in e.message, str(e)
    read_source(str(path))  # the same file at 1 nm per voxel is fine


@pytest.mark.neo4j
def test_position_overflow_through_the_cli_changes_nothing(tmp_path: Path,
                                                           driver: neo4j.Driver) -> None:
    load_ok(["ingest", str(synapse_csv(tmp_path / "good.csv")), "-d", "t_adv_scaled",
             "--voxel-size", "4,4,40"])
    path = write_csv(tmp_path / "big.csv", with_cell(SYNAPSE_ROWS, 5, "ctr_pt_position",
                                                     "[1 1 1e307]"))
    refused_cleanly(driver, ["ingest", str(path), "-d", "t_adv_scaled", "--voxel-size",
                             "4,4,40"], "t_adv_scaled",
                    ["big.csv", "row 7", "column 'ctr_pt_position'", "not a finite number",
                     "nothing was written"])


def _parquet(path: Path, **columns: Any) -> Path:
    n = 6
    base: dict[str, Any] = {
        "pre_pt_root_id": pa.array([MICRONS + i % 2 for i in range(n)], pa.int64()),
        "post_pt_root_id": pa.array([MICRONS + 5 + i for i in range(n)], pa.int64()),
        "ctr_pt_position": pa.array([[float(i), 2.0, 3.0] for i in range(n)],
                                    pa.list_(pa.float64())),
    }
    base.update(columns)
    pq.write_table(pa.table(base), path)
    return path


def _decimal_ids() -> pa.Array:
    values = [decimal.Decimal(MICRONS + i) for i in range(6)]
    return pa.array(values, pa.decimal128(20, 1))


def _with_one(values: list[Any], at: int, bad: Any, kind: pa.DataType) -> pa.Array:
    values = list(values)
    values[at] = bad
    return pa.array(values, kind)


POSITIONS = [[float(i), 2.0, 3.0] for i in range(6)]
PARQUET_CASES: list[tuple[str, dict[str, Any], int | None, str, str]] = [
    ("float64 ids", {"pre_pt_root_id": pa.array([float(MICRONS)] * 6)}, None,
     "pre_pt_root_id", "stored as double"),
    ("float32 ids", {"post_pt_root_id": pa.array([1.0] * 6, pa.float32())}, None,
     "post_pt_root_id", "stored as float"),
    ("bool ids", {"pre_pt_root_id": pa.array([True] * 6)}, None, "pre_pt_root_id",
     "stored as bool"),
    ("timestamp ids", {"pre_pt_root_id": pa.array([dt.datetime(2020, 1, 1)] * 6,
                                                  pa.timestamp("s"))}, None,
     "pre_pt_root_id", "stored as timestamp"),
    ("uint64 beyond int64", {"pre_pt_root_id": _with_one([MICRONS] * 6, 3, 2**64 - 1,
                                                         pa.uint64())}, 4,
     "pre_pt_root_id", "outside the 64-bit integer range"),
    ("decimal ids", {"pre_pt_root_id": _decimal_ids()}, 1, "pre_pt_root_id", "float64"),
    ("decimal text ids", {"post_pt_root_id": pa.array([f"{MICRONS}.0"] * 6)}, 1,
     "post_pt_root_id", "float64"),
    ("null id", {"pre_pt_root_id": _with_one([MICRONS] * 6, 2, None, pa.int64())}, 3,
     "pre_pt_root_id", "empty value"),
    ("position of two", {"ctr_pt_position": _with_one(POSITIONS, 4, [1.0, 2.0],
                                                       pa.list_(pa.float64()))}, 5,
     "ctr_pt_position", "expected a position"),
    ("null coordinate", {"ctr_pt_position": _with_one(POSITIONS, 1, [1.0, None, 2.0],
                                                       pa.list_(pa.float64()))}, 2,
     "ctr_pt_position", "expected a position"),
    ("NaN coordinate", {"ctr_pt_position": _with_one(POSITIONS, 1, [1.0, float("nan"), 2.0],
                                                      pa.list_(pa.float64()))}, 2,
     "ctr_pt_position", "expected a position"),
    ("infinite coordinate", {"ctr_pt_position": _with_one(POSITIONS, 5, [float("inf"), 1, 2],
                                                           pa.list_(pa.float64()))}, 6,
     "ctr_pt_position", "not finite"),
    ("positions as text lists", {"ctr_pt_position": pa.array([["1", "2", "3"]] * 6)}, None,
     "ctr_pt_position", "a list of three numbers"),
    ("binary names", {"neuropil": pa.array([b"LH"] * 6, pa.binary())}, None, "neuropil",
     "stored as binary"),
]


@pytest.mark.parametrize(("case", "columns", "row", "column", "says"), PARQUET_CASES,
                         ids=[c[0] for c in PARQUET_CASES])
def test_bad_parquet_column(tmp_path: Path, case: str, columns: dict[str, Any], row: int | None,
                            column: str, says: str) -> None:
    path = _parquet(tmp_path / "syn.parquet", **columns)
    with pytest.raises(IngestError) as err:
        read_source(str(path))
    e = err.value
    assert (Path(e.path).name, e.row, e.column) == ("syn.parquet", row, column), str(e)
    assert says in e.message, str(e)


@pytest.mark.neo4j
def test_bad_parquet_through_the_cli_changes_nothing(tmp_path: Path,
                                                     driver: neo4j.Driver) -> None:
    load_ok(["ingest", str(_parquet(tmp_path / "good.parquet")), "-d", "t_adv_pq"])
    for case, columns, row, column, says in PARQUET_CASES:
        path = _parquet(tmp_path / f"{case.replace(' ', '_')}.parquet", **columns)
        expect = [path.name, f"column '{column}'", says] + ([f"row {row}"] if row else [])
        refused_cleanly(driver, ["ingest", str(path), "-d", "t_adv_pq"], "t_adv_pq", expect)


def test_integer_columns_of_any_width_keep_ids_exact(tmp_path: Path) -> None:
    """uint64 within range, int32 and text ids are all exact (never through float)."""
    path = _parquet(tmp_path / "ok.parquet",
                    pre_pt_root_id=pa.array([MICRONS + i for i in range(6)], pa.uint64()),
                    post_pt_root_id=pa.array([str(FLYWIRE + i) for i in range(6)]),
                    id=pa.array(range(10, 16), pa.int32()))
    tables = read_source(str(path))
    syn = tables.synapses
    assert syn is not None
    assert [int(v) for v in syn["bodyIdPre"]] == [MICRONS + i for i in range(6)]
    assert [int(v) for v in syn["bodyIdPost"]] == [FLYWIRE + i for i in range(6)]
    assert [int(v) for v in syn["synapseId"]] == list(range(10, 16))


# --- generalised by hypothesis -------------------------------------------------------------

NAME_COLUMNS = ["instance", "type", "cellClass", "status", "predictedNt"]
CONTROL = st.sampled_from([chr(c) for c in [*range(0, 32), 127] if chr(c) not in "\t\n\r"]
                          + ["\n", "\r"])


@settings(max_examples=60, **FIXTURES_OK)
@given(column=st.sampled_from(NAME_COLUMNS), char=CONTROL, at=st.integers(0, 6),
       row=st.integers(0, len(NEURON_ROWS) - 1))
def test_any_control_character_in_any_name(tmp_path_factory: pytest.TempPathFactory,
                                           column: str, char: str, at: int, row: int) -> None:
    """Inside a name, any control character is refused; at either end, whitespace (tab, line
    breaks, the separators U+001C..U+001F) is trimmed like spaces, anything else refused."""
    folder = tmp_path_factory.mktemp("ctl")
    neuprint_folder(folder)
    name = "abcdef"
    write_csv(folder / "neurons.csv",
              with_cell(NEURON_ROWS, row, column, name[:at] + char + name[at:]))
    if at in (0, len(name)) and char.isspace():
        n = read_source(str(folder)).neurons
        assert n[column if column != "predictedNt" else "neurotransmitter"].iloc[row] == name
        return
    with pytest.raises(IngestError) as err:
        read_source(str(folder))
    assert (Path(err.value.path).name, err.value.row, err.value.column) == (
        "neurons.csv", row + 2, column), str(err.value)
    assert f"U+{ord(char):04X}" in err.value.message


ID_RANGE = st.one_of(st.integers(720_575_940_000_000_000, 720_575_940_999_999_999),
                     st.integers(864_691_135_000_000_000, 864_691_135_999_999_999))


@settings(max_examples=40, **FIXTURES_OK)
@given(value=ID_RANGE, style=st.sampled_from(["{}.0", "{}.00", "{:.6e}", "{:.17g}", "{:e}"]),
       column=st.sampled_from(["pre_pt_root_id", "post_pt_root_id"]),
       row=st.integers(0, len(SYNAPSE_ROWS) - 1))
def test_root_ids_written_as_decimals_are_refused(tmp_path_factory: pytest.TempPathFactory,
                                                 value: int, style: str, column: str,
                                                 row: int) -> None:
    text = style.format(value if "{}" in style else float(value))
    path = write_csv(tmp_path_factory.mktemp("dec") / "syn.csv",
                     with_cell(SYNAPSE_ROWS, row, column, text))
    with pytest.raises(IngestError) as err:
        read_source(str(path))
    assert (err.value.row, err.value.column) == (row + 2, column), str(err.value)
    assert "float64" in err.value.message


@settings(max_examples=40, **FIXTURES_OK)
@given(values=st.lists(ID_RANGE, min_size=2, max_size=20, unique=True))
def test_real_range_ids_are_read_exactly(tmp_path_factory: pytest.TempPathFactory,
                                         values: list[int]) -> None:
    rows = [dict(SYNAPSE_ROWS[0], id=str(i + 1), pre_pt_root_id=str(v),
                 post_pt_root_id=str(values[(i + 1) % len(values)]))
            for i, v in enumerate(values)]
    tables = read_source(str(write_csv(tmp_path_factory.mktemp("ids") / "syn.csv", rows)))
    assert sorted(int(v) for v in tables.neurons["bodyId"]) == sorted(values)
    got = {(int(a), int(b)) for a, b in zip(tables.connections["bodyIdPre"],
                                            tables.connections["bodyIdPost"], strict=True)}
    assert got == {(v, values[(i + 1) % len(values)]) for i, v in enumerate(values)}


BAD_COUNT = st.one_of(st.integers(min_value=2**63), st.integers(max_value=-1),
                      st.floats(allow_nan=False, allow_infinity=False), st.booleans(),
                      st.text(max_size=3), st.none())


@settings(max_examples=50, **FIXTURES_OK)
@given(count=BAD_COUNT, key=st.sampled_from(["pre", "post", "upstream"]),
       row=st.integers(0, 6))
def test_roi_counts_must_be_64_bit_whole_numbers(tmp_path_factory: pytest.TempPathFactory,
                                                 count: Any, key: str, row: int) -> None:
    folder = tmp_path_factory.mktemp("roi")
    neuprint_folder(folder)
    info = json.dumps({"LH": {"pre": 1, "post": 1, key: count}})
    write_csv(folder / "connections.csv", with_cell(CONNECTION_ROWS, row, "roiInfo", info))
    with pytest.raises(IngestError) as err:
        read_source(str(folder))
    assert (err.value.row, err.value.column) == (row + 2, "roiInfo"), str(err.value)


@settings(max_examples=40, **FIXTURES_OK)
@given(extra=st.integers(-40, 40), wide=st.sampled_from(["x", "\u00e9", "\u20ac", "\U0001f9e0"]),
       column=st.sampled_from(NAME_COLUMNS))
def test_names_are_capped_in_bytes(tmp_path_factory: pytest.TempPathFactory, extra: int,
                                   wide: str, column: str) -> None:
    width = len(wide.encode("utf-8"))
    name = wide * ((CAP + extra) // width)
    folder = tmp_path_factory.mktemp("cap")
    neuprint_folder(folder)
    write_csv(folder / "neurons.csv", with_cell(NEURON_ROWS, 1, column, name))
    if len(name.encode("utf-8")) <= CAP:
        n = read_source(str(folder)).neurons
        assert name in n[column if column != "predictedNt" else "neurotransmitter"].tolist()
        return
    with pytest.raises(IngestError) as err:
        read_source(str(folder))
    assert (err.value.row, err.value.column) == (3, column)


@pytest.mark.neo4j
def test_the_longest_name_fits_neo4js_index(tmp_path: Path, driver: neo4j.Driver) -> None:
    """A name at the cap (4,096 bytes of 4-byte characters) loads and is found through the
    (dataset, instance) index: the cap is below Neo4j's key limit."""
    folder = neuprint_folder(tmp_path / "long")
    name = "\U0001f9e0" * (CAP // 4)
    write_csv(folder / "neurons.csv", with_cell(NEURON_ROWS, 0, "instance", name))
    load_ok(["ingest", str(folder), "-d", "t_adv_long"])
    rows, _, _ = driver.execute_query(
        "MATCH (n:Neuron {dataset: $d, instance: $name}) RETURN n.bodyId AS id",
        d=current_key(driver, "t_adv_long"), name=name)
    assert [r["id"] for r in rows] == [FLYWIRE]


@pytest.mark.neo4j
def test_real_range_ids_load_exactly(tmp_path: Path, driver: neo4j.Driver) -> None:
    """FlyWire- and MICrONS-range ids arrive in Neo4j unrounded, from text and from Parquet."""
    folder = neuprint_folder(tmp_path / "fw")
    load_ok(["ingest", str(folder), "-d", "t_adv_ids"])
    rows, _, _ = driver.execute_query(
        "MATCH (a:Neuron {dataset: $d})-[c:ConnectsTo]->(b) RETURN a.bodyId AS a, "
        "b.bodyId AS b, c.weight AS w", d=current_key(driver, "t_adv_ids"))
    expected = {(int(r["bodyId_pre"]), int(r["bodyId_post"])): int(r["weight"])
                for r in CONNECTION_ROWS if r["kind"] == "chemical"}
    assert {(r["a"], r["b"]): r["w"] for r in rows} == expected
    path = _parquet(tmp_path / "mi.parquet")
    load_ok(["ingest", str(path), "-d", "t_adv_ids"])
    rows, _, _ = driver.execute_query("MATCH (n:Neuron {dataset: $d}) RETURN n.bodyId AS id",
                                      d=current_key(driver, "t_adv_ids"))
    table = pq.read_table(path)
    raw = set(table.column("pre_pt_root_id").to_pylist()) | set(
        table.column("post_pt_root_id").to_pylist())
    assert {r["id"] for r in rows} == raw
    assert min(raw) > 2**59 and np.int64(min(raw)) == min(raw)
