"""A Neo4j Bloom perspective for one dataset, built as a plain dict (no database access).

The structure follows Bloom's own perspective exports (`docs/bloom.md`). Several datasets share
one database, so every search phrase is scoped to the perspective's dataset: its name is checked
(`check_dataset_name`) before it is written into Cypher as a literal, and every value a user types
stays a `$parameter`. A cell counts as chandelier by its ingest flag (`chandelier`), or where that
is absent by its share of outputs onto AISs (`CHANDELIER_AIS_SHARE`), as ingest's rule does.
"""

from __future__ import annotations

import colorsys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from connectome_query.schema.model import (
    CONNECTS_TO,
    CONTAINS,
    GAP_JUNCTION,
    META,
    MONOAMINE,
    NEURON,
    NEUROPEPTIDE,
    SYNAPSE,
    SYNAPSE_SET,
    SYNAPSES_TO,
    check_dataset_name,
    is_current,
)

PERSPECTIVE_VERSION = "1.4.1"
"""The export format version we write (that of the public Bloom exports we follow)."""

TOP_LEVEL_KEYS = (
    "name", "id", "categories", "palette", "createdAt", "lastEditedAt", "templates",
    "hiddenRelationshipTypes", "hiddenCategories", "hideUncategorisedData", "version",
    "relationshipTypes", "parentPerspectiveId",
)
CATEGORY_KEYS = ("id", "name", "color", "icon", "labels", "properties", "caption", "size")
TEMPLATE_KEYS = ("id", "name", "text", "cypher", "params", "hasCypherErrors")
PARAM_KEYS = ("name", "dataType", "suggestionLabel", "suggestionProp", "cypher")

BLOOM_PALETTE = (
    "#FFE081", "#C990C0", "#F79767", "#57C7E3", "#F16667", "#D9C8AE", "#8DCC93", "#ECB5C9",
    "#4C8EDA", "#FFC454", "#DA7194", "#569480", "#848484", "#D9D9D9",
)
"""Bloom's default palette, as its exports list it."""

SYNAPSE_COUNT = "synapseCount"
"""Neuron property Bloom sizes nodes by: `pre + post` (chemical synapses out + in)."""

CHANDELIER_AIS_SHARE = 0.5
"""Fallback chandelier test: share of a cell's output synapses onto axon initial segments."""

MAX_PATH_HOPS = 6
"""`path from $a to $b` follows at most this many chemical connections."""

MIN_MULTI_SYNAPTIC = 2
"""Suggested thresholds for `multi-synaptic contacts` start here."""

NODE_SIZE_RANGE = (1.0, 4.0)
REL_WIDTH_RANGE = (1.0, 8.0)

# Properties every node of a label carries in our graph model (see schema/model.py), with the
# caption property first. Properties found in a dataset are added to these.
LABEL_PROPERTIES: dict[str, tuple[tuple[str, str], ...]] = {
    META: (("dataset", "string"), ("status", "string"), ("source", "string"),
           ("neuronCount", "bigint"), ("chemicalSynapses", "bigint"),
           ("gapJunctions", "bigint"), ("synapseCount", "bigint")),
    NEURON: (("instance", "string"), ("type", "string"), ("bodyId", "bigint"),
             ("cellClass", "string"), ("neurotransmitter", "string"), ("status", "string"),
             ("pre", "bigint"), ("post", "bigint"), ("upstream", "bigint"),
             ("downstream", "bigint"), ("gapJunctions", "bigint"), ("size", "number"),
             ("somaLocation", "point")),
    SYNAPSE_SET: (("preBodyId", "bigint"), ("postBodyId", "bigint"), ("dataset", "string")),
    SYNAPSE: (("postCompartment", "string"), ("synapseId", "bigint"), ("type", "string"),
              ("preBodyId", "bigint"), ("postBodyId", "bigint"), ("location", "point"),
              ("size", "number"), ("confidence", "number"), ("roi", "string"),
              ("dataset", "string")),
}
CAPTIONS = {META: "dataset", NEURON: "instance", SYNAPSE_SET: "preBodyId",
            SYNAPSE: "postCompartment"}
CATEGORY_NAMES = {META: "Dataset", NEURON: "Neuron", SYNAPSE_SET: "Synapse set",
                  SYNAPSE: "Synapse"}
CATEGORY_COLORS = {META: "#848484", NEURON: "#4C8EDA", SYNAPSE_SET: "#D9C8AE",
                   SYNAPSE: "#FFC454"}
HIDDEN_PROPERTIES = frozenset({"loadId"})
REL_COLORS = {CONNECTS_TO: "#4C8EDA", GAP_JUNCTION: "#F79767", MONOAMINE: "#8DCC93",
              NEUROPEPTIDE: "#C990C0", CONTAINS: "#D9D9D9", SYNAPSES_TO: "#A5ABB6"}
WEIGHTED = (CONNECTS_TO, GAP_JUNCTION, MONOAMINE, NEUROPEPTIDE)
"""Relationship types with a `weight` (synapses, or transmitter-receptor pathways)."""
MODULATORY = (MONOAMINE, NEUROPEPTIDE)


@dataclass(frozen=True)
class DatasetProfile:
    """What the perspective needs to know about one dataset (read by `connectome bloom`)."""

    dataset: str
    cell_classes: Sequence[str] = ()
    """Distinct `cellClass` values of the dataset's neurons; each gets its own colour."""
    synapse_count_range: tuple[int, int] = (0, 0)
    """Smallest and largest `pre + post` over the dataset's neurons."""
    weight_ranges: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    """Smallest and largest `weight` per relationship type (`WEIGHTED`)."""
    extra_properties: Mapping[str, Sequence[tuple[str, str]]] = field(default_factory=dict)
    """Further (property, Bloom data type) pairs found on each label's nodes."""


def class_colors(classes: Sequence[str]) -> dict[str, str]:
    """A distinct colour per cell class: Bloom's palette first, then golden-angle hues."""
    colors: dict[str, str] = {}
    generated = 0
    for i, name in enumerate(sorted(set(classes))):
        if i < len(BLOOM_PALETTE) - 2:  # keep the two greys for "no class" / other uses
            colors[name] = BLOOM_PALETTE[i]
            continue
        hue = (0.11 + generated * 0.381966) % 1.0
        light = 0.62 if generated % 2 == 0 else 0.48
        r, g, b = colorsys.hls_to_rgb(hue, light, 0.55)
        colors[name] = f"#{round(r * 255):02X}{round(g * 255):02X}{round(b * 255):02X}"
        generated += 1
    return colors


def _scope(dataset: str) -> str:
    """Cypher that binds `ds` to the key of the dataset's current version, so a perspective
    follows the dataset as it is reloaded (the name is validated before it becomes a literal)."""
    name = "'" + check_dataset_name(dataset) + "'"
    return (f"MATCH (meta:{META}) WHERE coalesce(meta.name, meta.dataset) = {name}"
            f" AND {is_current('meta')}\nWITH meta.dataset AS ds\n")


def _neuron_match(var: str, param: str, ds: str) -> str:
    """Find a neuron by instance name, or by bodyId typed as text."""
    return (f"MATCH ({var}:{NEURON} {{dataset: {ds}}})\n"
            f"WHERE {var}.instance = ${param} OR {var}.bodyId = toIntegerOrNull(${param})")


def _neuron_names(ds: str) -> str:
    return (f"MATCH (n:{NEURON} {{dataset: {ds}}})\n"
            "RETURN DISTINCT coalesce(n.instance, toString(n.bodyId)) AS neuron\n"
            "ORDER BY neuron")


def _param(name: str, cypher: str, data_type: str = "String") -> dict[str, Any]:
    # Suggestions come from Cypher (scoped to the dataset), not from a label/property pair,
    # which would list every dataset's values.
    return {"name": f"${name}", "dataType": data_type, "suggestionLabel": None,
            "suggestionProp": None, "cypher": cypher}


def search_phrases(dataset: str) -> list[dict[str, Any]]:
    """The search phrases (name, text, Cypher, parameters with suggestion Cypher)."""
    scope, ds = _scope(dataset), "ds"
    names = scope + _neuron_names(ds)
    partners = (
        f"{scope}{_neuron_match('n', 'neuron', ds)}\n"
        f"OPTIONAL MATCH (n)-[r:{CONNECTS_TO}|{GAP_JUNCTION}]-(p:{NEURON})\n"
        "RETURN n, r, p"
    )
    modulatory = (
        f"{scope}{_neuron_match('n', 'neuron', ds)}\n"
        f"OPTIONAL MATCH (n)-[r:{MONOAMINE}|{NEUROPEPTIDE}]-(p:{NEURON})\n"
        "RETURN n, r, p"
    )
    chandelier = (
        f"{scope}{_neuron_match('target', 'neuron', ds)}\n"
        f"MATCH (pre:{NEURON})-[:{CONTAINS}]->(ss:{SYNAPSE_SET})-[:{SYNAPSES_TO}]->(target)\n"
        f"WITH target, pre, ss,\n"
        f"     COUNT {{ (pre)-[:{CONTAINS}]->(:{SYNAPSE_SET})-[:{CONTAINS}]->(x:{SYNAPSE})\n"
        f"             WHERE x.postCompartment = 'ais' }} AS aisOut,\n"
        f"     COUNT {{ (pre)-[:{CONTAINS}]->(:{SYNAPSE_SET})-[:{CONTAINS}]->(y:{SYNAPSE})\n"
        "             WHERE y.postCompartment <> 'unknown' } AS knownOut\n"
        "WHERE coalesce(pre.chandelier,\n"
        f"               knownOut > 0 AND toFloat(aisOut) / knownOut >= {CHANDELIER_AIS_SHARE})\n"
        f"MATCH (pre)-[c0:{CONTAINS}]->(ss)-[c1:{CONTAINS}]->(s:{SYNAPSE})\n"
        "WHERE s.postCompartment = 'ais'\n"
        f"MATCH (ss)-[st:{SYNAPSES_TO}]->(target)\n"
        "RETURN pre, c0, ss, c1, s, st, target"
    )
    chandelier_targets = (
        f"{scope}MATCH (s:{SYNAPSE} {{dataset: {ds}, postCompartment: 'ais'}})\n"
        f"MATCH (n:{NEURON} {{dataset: {ds}, bodyId: s.postBodyId}})\n"
        "RETURN DISTINCT coalesce(n.instance, toString(n.bodyId)) AS neuron\n"
        "ORDER BY neuron"
    )
    multi = (
        f"{scope}MATCH (a:{NEURON} {{dataset: {ds}}})-[c:{CONNECTS_TO}]->(b:{NEURON})\n"
        "WHERE c.weight >= toInteger($n)\n"
        "RETURN a, c, b"
    )
    thresholds = (
        f"{scope}MATCH (:{NEURON} {{dataset: {ds}}})-[c:{CONNECTS_TO}]->()\n"
        f"WHERE c.weight >= {MIN_MULTI_SYNAPTIC}\n"
        "RETURN DISTINCT c.weight AS n\n"
        "ORDER BY n"
    )
    path = (
        f"{scope}{_neuron_match('a', 'a', ds)}\n"
        "WITH a, ds\n"
        f"{_neuron_match('b', 'b', ds)}\n"
        "WITH a, b WHERE a <> b\n"
        f"MATCH p = allShortestPaths((a)-[:{CONNECTS_TO}*..{MAX_PATH_HOPS}]->(b))\n"
        "RETURN p"
    )
    of_type = (
        f"{scope}MATCH (n:{NEURON} {{dataset: {ds}, type: $type}})\n"
        f"OPTIONAL MATCH (n)-[r:{CONNECTS_TO}]->(m:{NEURON} {{dataset: {ds}, type: $type}})\n"
        "RETURN n, r, m"
    )
    types = (
        f"{scope}MATCH (n:{NEURON} {{dataset: {ds}}})\n"
        "WHERE n.type IS NOT NULL\n"
        "RETURN DISTINCT n.type AS type\n"
        "ORDER BY type"
    )
    phrases = [
        ("Partners", "partners of $neuron", partners, [_param("neuron", names)]),
        ("Neuromodulator partners", "neuromodulator partners of $neuron", modulatory,
         [_param("neuron", names)]),
        ("Chandelier cells", "chandelier cells innervating $neuron", chandelier,
         [_param("neuron", chandelier_targets)]),
        ("Multi-synaptic contacts", "multi-synaptic contacts with at least $n synapses", multi,
         [_param("n", thresholds, "Integer")]),
        ("Path", "path from $a to $b", path, [_param("a", names), _param("b", names)]),
        ("Neurons of a type", "neurons of type $type", of_type, [_param("type", types)]),
    ]
    return [
        {"id": f"tmpl:{i + 1}", "name": name, "text": text, "cypher": cypher, "params": params,
         "hasCypherErrors": False}
        for i, (name, text, cypher, params) in enumerate(phrases)
    ]


def _single_color_rule(rule_id: str, prop: str, value: str, color: str) -> dict[str, Any]:
    return {"id": rule_id, "type": "single", "basedOn": prop, "dataType": "string",
            "condition": "equals", "conditionValue": value, "applyColor": True,
            "applySize": False, "applyCaption": False, "styles": {"color": color}}


def _range_size_rule(rule_id: str, prop: str, lo: float, hi: float,
                     sizes: tuple[float, float]) -> dict[str, Any]:
    return {"id": rule_id, "type": "range", "basedOn": prop, "dataType": "number",
            "minValue": lo, "maxValue": max(hi, lo + 1), "applyColor": False,
            "applySize": True, "applyCaption": False,
            "styles": {"minSize": sizes[0], "maxSize": sizes[1]}}


def _properties(label: str, extra: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    caption = CAPTIONS[label]
    seen: dict[str, str] = dict(LABEL_PROPERTIES[label])
    for name, data_type in extra:
        seen.setdefault(name, data_type)
    if label == NEURON:
        seen.setdefault(SYNAPSE_COUNT, "bigint")
    return [{"name": name, "exclude": name in HIDDEN_PROPERTIES, "isCaption": name == caption,
             "dataType": data_type} for name, data_type in seen.items()]


def build_perspective(profile: DatasetProfile, *, now_ms: int = 0) -> dict[str, Any]:
    """The perspective dict for `profile.dataset`, ready for `json.dump`."""
    dataset = check_dataset_name(profile.dataset)
    categories: list[dict[str, Any]] = [
        {"id": 0, "name": "Other", "color": "#6B6B6B", "icon": "no-icon", "labels": [],
         "properties": [], "caption": [""], "size": 1},
    ]
    for i, label in enumerate((META, NEURON, SYNAPSE_SET, SYNAPSE), start=1):
        cat: dict[str, Any] = {
            "id": i, "name": CATEGORY_NAMES[label], "color": CATEGORY_COLORS[label],
            "icon": "no-icon", "labels": [label],
            "properties": _properties(label, profile.extra_properties.get(label, ())),
            "caption": [""], "size": 2 if label == META else 1,
            "createdAt": now_ms, "lastEditedAt": now_ms, "styleRules": [],
        }
        if label == NEURON:
            rules = [_single_color_rule(f"cellClass:{name}", "cellClass", name, color)
                     for name, color in class_colors(profile.cell_classes).items()]
            lo, hi = profile.synapse_count_range
            rules.append(_range_size_rule("size:synapseCount", SYNAPSE_COUNT, lo, hi,
                                          NODE_SIZE_RANGE))
            cat["styleRules"] = rules
        categories.append(cat)
    relationship_types = []
    for rel in (*WEIGHTED, CONTAINS, SYNAPSES_TO):
        entry: dict[str, Any] = {"id": rel, "name": rel, "color": REL_COLORS[rel], "size": 1,
                                 "properties": [], "styleRules": []}
        if rel in WEIGHTED:
            entry["properties"] = [
                {"propertyKey": "weight", "type": rel, "dataType": "bigint"},
                {"propertyKey": "dataset", "type": rel, "dataType": "string"},
            ] + [{"propertyKey": key, "type": rel, "dataType": "string[]"}
                 for key in ("transmitters", "receptors") if rel in MODULATORY]
            lo, hi = profile.weight_ranges.get(rel, (1, 1))
            entry["styleRules"] = [_range_size_rule(f"width:{rel}", "weight", lo, hi,
                                                    REL_WIDTH_RANGE)]
        relationship_types.append(entry)
    return {
        "name": f"connectome-query: {dataset}",
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"connectome-query/bloom/{dataset}")),
        "categories": categories,
        "palette": {"colors": list(BLOOM_PALETTE), "currentIndex": len(categories)},
        "createdAt": now_ms,
        "lastEditedAt": now_ms,
        "templates": [dict(t, createdAt=now_ms) for t in search_phrases(dataset)],
        "hiddenRelationshipTypes": [],
        "hiddenCategories": [],
        "hideUncategorisedData": False,
        "version": PERSPECTIVE_VERSION,
        "relationshipTypes": relationship_types,
        "parentPerspectiveId": None,
    }
