"""Bad command-line parameters are refused by name before anything is read or written: a
non-zero exit, a message naming the option, and the database exactly as it was."""

from __future__ import annotations

from pathlib import Path

import neo4j
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectome_query.ingest.errors import ParameterError
from connectome_query.ingest.loader import check_batch_size
from connectome_query.ingest.readers.synapse_table import parse_voxel_size
from tests.support.bad_files import load_ok, neuprint_folder, refused_cleanly, synapse_csv

DATASET = "t_params"

CASES: list[tuple[list[str], list[str]]] = [
    (["--batch-size", "-1"], ["--batch-size", "got -1"]),
    (["--batch-size", "0"], ["--batch-size", "got 0"]),
    (["--batch-size", "100001"], ["--batch-size", "100,000"]),
    (["--voxel-size", "nan,4,40"], ["--voxel-size"]),
    (["--voxel-size", "inf,4,40"], ["--voxel-size"]),
    (["--voxel-size", "4,-4,40"], ["--voxel-size"]),
    (["--voxel-size", "0,4,40"], ["--voxel-size"]),
    (["--voxel-size", "4,4"], ["--voxel-size"]),
    (["--voxel-size", "a,b,c"], ["--voxel-size"]),
    (["--voxel-size", "1e309,1,1"], ["--voxel-size"]),
    (["--encoding", "bogus"], ["--encoding", "unknown text encoding 'bogus'"]),
    (["--chandelier-threshold", "nan"], ["chandelier threshold"]),
    (["--chandelier-threshold", "2"], ["chandelier threshold"]),
    (["--chandelier-min-synapses", "0"], ["min_synapses"]),
    (["--neurons", "/nonexistent/neurons.csv"], ["file not found"]),
]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory, driver: neo4j.Driver) -> Path:
    folder = tmp_path_factory.mktemp("params")
    load_ok(["ingest", str(neuprint_folder(folder / "np")), "-d", DATASET])
    return synapse_csv(folder / "syn.csv")


@pytest.mark.neo4j
@pytest.mark.parametrize(("options", "says"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_option_is_refused_by_name(loaded: Path, driver: neo4j.Driver, options: list[str],
                                       says: list[str]) -> None:
    refused_cleanly(driver, ["ingest", str(loaded), "-d", DATASET, *options], DATASET, says)


@pytest.mark.neo4j
def test_bad_dataset_name_and_import_options(loaded: Path, driver: neo4j.Driver) -> None:
    refused_cleanly(driver, ["ingest", str(loaded), "-d", "bad name!"], DATASET,
                    ["invalid dataset name"])
    for options, says in [(["--voxel-size", "nan,1,1"], ["--voxel-size"]),
                          (["--encoding", "bogus"], ["--encoding"])]:
        refused_cleanly(driver, ["import", str(loaded), "-d", DATASET, *options], DATASET, says)


@settings(max_examples=60, deadline=None)
@given(value=st.one_of(st.integers(max_value=0), st.integers(min_value=100_001), st.booleans()))
def test_batch_size_bounds(value: int) -> None:
    with pytest.raises(ParameterError) as err:
        check_batch_size(value)
    assert err.value.parameter == "--batch-size"


@settings(max_examples=80, deadline=None)
@given(values=st.lists(st.floats(), min_size=1, max_size=4))
def test_voxel_size_is_three_finite_positive_numbers(values: list[float]) -> None:
    text = ",".join(repr(v) for v in values)
    ok = len(values) == 3 and all(v > 0 and v != float("inf") for v in values)
    if ok:
        assert parse_voxel_size(text) == tuple(values)
        return
    with pytest.raises(ParameterError) as err:
        parse_voxel_size(text)
    assert err.value.parameter == "--voxel-size"
