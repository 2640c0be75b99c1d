"""The perspective file: Bloom's export structure, styling from the data, the committed copy."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import neo4j
import pytest
from typer.testing import CliRunner

from connectome_query.cli.main import app
from connectome_query.ingest.sources import read_source
from connectome_query.schema.bloom import (
    CATEGORY_KEYS,
    LABEL_PROPERTIES,
    PARAM_KEYS,
    SYNAPSE_COUNT,
    TEMPLATE_KEYS,
    TOP_LEVEL_KEYS,
    DatasetProfile,
    build_perspective,
    class_colors,
)
from connectome_query.schema.bloom_profile import write_perspective
from tests.support import celegans as celegans_raw

pytestmark = pytest.mark.neo4j

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "schema" / "bloom" / "cook2019-perspective.json"
HEX = re.compile(r"^#[0-9A-F]{6}$", re.IGNORECASE)
MODEL_PROPERTIES = {(label,): {name for name, _ in props}
                    for label, props in LABEL_PROPERTIES.items()}
PHRASES = {
    "partners of $neuron": ["$neuron"],
    "neuromodulator partners of $neuron": ["$neuron"],
    "chandelier cells innervating $neuron": ["$neuron"],
    "multi-synaptic contacts with at least $n synapses": ["$n"],
    "path from $a to $b": ["$a", "$b"],
    "neurons of type $type": ["$type"],
}


def check_structure(p: dict[str, Any]) -> None:
    """What Bloom's own exports hold (see docs/bloom.md for the sources)."""
    assert set(TOP_LEVEL_KEYS) <= set(p)
    assert isinstance(p["id"], str) and p["parentPerspectiveId"] is None
    assert isinstance(p["createdAt"], int) and isinstance(p["lastEditedAt"], int)
    assert p["hideUncategorisedData"] is False
    assert all(HEX.match(c) for c in p["palette"]["colors"])
    ids = [c["id"] for c in p["categories"]]
    assert len(set(ids)) == len(ids) and ids[0] == 0 and p["categories"][0]["name"] == "Other"
    for cat in p["categories"]:
        assert set(CATEGORY_KEYS) <= set(cat), cat["name"]
        assert HEX.match(cat["color"]) and isinstance(cat["size"], int | float)
        assert cat["caption"] == [""] and isinstance(cat["labels"], list)
        for prop in cat["properties"]:
            assert set(prop) == {"name", "exclude", "isCaption", "dataType"}
        if cat["labels"]:
            assert sum(prop["isCaption"] for prop in cat["properties"]) == 1, cat["name"]
    for rel in p["relationshipTypes"]:
        assert {"id", "name", "properties"} <= set(rel) and rel["id"] == rel["name"]
    assert [t["text"] for t in p["templates"]] == list(PHRASES)
    for t in p["templates"]:
        assert set(TEMPLATE_KEYS) <= set(t) and t["id"].startswith("tmpl:")
        assert t["hasCypherErrors"] is False
        assert [q["name"] for q in t["params"]] == PHRASES[t["text"]]
        for q in t["params"]:
            assert set(PARAM_KEYS) <= set(q)
            assert q["dataType"] in ("String", "Integer") and q["cypher"]


def by_label(p: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {cat["labels"][0]: cat for cat in p["categories"] if cat["labels"]}


@pytest.fixture(scope="module")
def generated(driver: neo4j.Driver, celegans: dict[str, object],
              tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bloom") / "p.json"
    write_perspective(driver, "cook2019", out)
    return json.loads(out.read_text())


def test_structure_matches_bloom_exports(generated: dict[str, Any]) -> None:
    check_structure(generated)
    cats = by_label(generated)
    assert set(cats) == {"Meta", "Neuron", "SynapseSet", "Synapse"}
    captions = {label: next(p["name"] for p in c["properties"] if p["isCaption"])
                for label, c in cats.items()}
    assert captions["Neuron"] == "instance" and captions["Meta"] == "dataset"
    assert {r["name"] for r in generated["relationshipTypes"]} >= {"ConnectsTo", "GapJunction"}


def test_styling_follows_the_data(generated: dict[str, Any]) -> None:
    neurons = read_source("cook2019").neurons
    classes = set(neurons["cellClass"].dropna())
    rules = by_label(generated)["Neuron"]["styleRules"]
    colour = {r["conditionValue"]: r["styles"]["color"] for r in rules
              if r["type"] == "single" and r["basedOn"] == "cellClass"}
    assert set(colour) == classes
    assert len(set(colour.values())) == len(classes)  # a colour per class
    assert all(HEX.match(c) for c in colour.values())
    # Node size: pre + post, over the range the raw edge list gives.
    edges = celegans_raw.cook_edges()
    chem = edges[edges["Type"] == "chemical"]
    total = chem.groupby("Source")["Weight"].sum().add(
        chem.groupby("Target")["Weight"].sum(), fill_value=0)
    total = total.reindex(sorted(set(edges["Source"]) | set(edges["Target"])), fill_value=0)
    (size,) = [r for r in rules if r["type"] == "range"]
    assert size["basedOn"] == SYNAPSE_COUNT and size["applySize"]
    assert (size["minValue"], size["maxValue"]) == (int(total.min()), int(total.max()))
    # Relationship width by weight, over the raw ranges.
    gap = celegans_raw.cook_gap_junctions().values()
    want = {"ConnectsTo": (int(chem["Weight"].min()), int(chem["Weight"].max())),
            "GapJunction": (min(gap), max(gap))}
    for rel in generated["relationshipTypes"]:
        if rel["name"] in want:
            (rule,) = rel["styleRules"]
            assert rule["basedOn"] == "weight" and rule["applySize"]
            assert (rule["minValue"], rule["maxValue"]) == want[rel["name"]]


def strip_times(value: Any) -> Any:
    """Leave out timestamps, and the property lists of categories, which grow with whatever
    properties ingest writes (the model's own properties are checked above)."""
    if isinstance(value, dict):
        out = {k: strip_times(v) for k, v in value.items()
               if k not in ("createdAt", "lastEditedAt")}
        if "labels" in out and "caption" in out:
            out["properties"] = [p for p in out["properties"]
                                 if p["name"] in MODEL_PROPERTIES.get(tuple(out["labels"]), ())]
        return out
    if isinstance(value, list):
        return [strip_times(v) for v in value]
    return value


def test_committed_perspective_is_current(generated: dict[str, Any]) -> None:
    """The committed default is what `connectome bloom perspective -d cook2019` writes.
    Refresh it with CONNECTOME_UPDATE_BLOOM=1."""
    if os.environ.get("CONNECTOME_UPDATE_BLOOM") == "1":
        COMMITTED.parent.mkdir(parents=True, exist_ok=True)
        COMMITTED.write_text(json.dumps(generated, indent=2, ensure_ascii=False) + "\n")
    committed = json.loads(COMMITTED.read_text())
    check_structure(committed)
    assert strip_times(committed) == strip_times(generated), (
        "stale: run CONNECTOME_UPDATE_BLOOM=1 uv run pytest tests/schema/test_bloom_perspective.py")


def test_cli_writes_perspective(tmp_path: Path, generated: dict[str, Any]) -> None:
    out = tmp_path / "sub" / "cook.json"
    result = CliRunner().invoke(app, ["bloom", "perspective", "-d", "cook2019", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert strip_times(json.loads(out.read_text())) == strip_times(generated)


def test_cli_unknown_dataset(tmp_path: Path, celegans: dict[str, object]) -> None:
    out = tmp_path / "x.json"
    for name, message in (("t_no_such_dataset", "no dataset"), ("bad name", "invalid dataset")):
        result = CliRunner().invoke(app, ["bloom", "perspective", "-d", name, "-o", str(out)])
        assert result.exit_code == 1 and message in result.output, result.output
        assert not out.exists()


def test_builder_is_pure_and_stable() -> None:
    profile = DatasetProfile("t_x", cell_classes=[f"c{i}" for i in range(40)],
                             synapse_count_range=(3, 90),
                             weight_ranges={"ConnectsTo": (1, 9)})
    a = build_perspective(profile, now_ms=1)
    assert a == build_perspective(profile, now_ms=1)
    check_structure(a)
    assert len(set(class_colors(profile.cell_classes).values())) == 40
    assert a["id"] != build_perspective(DatasetProfile("t_y"), now_ms=1)["id"]
