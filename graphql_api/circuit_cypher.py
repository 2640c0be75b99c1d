"""Cypher for the circuit queries. Every user value is a parameter ($name).

The only query texts built in Python are chosen from fixed templates by validated small integers
(path lengths, motif sizes) and generated variable names (`n0`, `e1`, ...); no user text is ever
spliced in. Pair lists page by keyset (`$afterPre`, `$afterPost`), never SKIP.
"""

from __future__ import annotations

from connectome_query.graphql_api.cypher import neuron_fields as fields

MAX_PATH_LENGTH = 6
MAX_SHORTEST_LENGTH = 12
MAX_MOTIF_NODES = 5
MAX_MOTIF_EDGES = 10


SYNAPSE_MAP = """{synapseId: s.synapseId, x: s.location.x, y: s.location.y, z: s.location.z,
  compartment: s.postCompartment, confidence: s.confidence, size: s.size, roi: s.roi}"""

# Keyset condition over an ordered (a, b) pair, for use beside `a.bodyId >= $afterPre` (kept
# apart so that the planner seeks a by range in index order and stops after $limit pairs).
_AFTER_PAIR = "(a.bodyId > $afterPre OR b.bodyId > $afterPost)"

# -- chandelier cells ------------------------------------------------------------------------
CHANDELIER_CELLS = f"""
MATCH (a:Neuron) WHERE a.dataset = $dataset AND a.bodyId > $after AND a.chandelier = true
WITH a ORDER BY a.dataset, a.bodyId LIMIT $limit
RETURN a {{{fields("a")}}} AS neuron, a.aisOutputFraction AS aisOutputFraction,
       a.aisOutputSynapses AS aisOutputSynapses
"""

CHANDELIER_COUNT = """
MATCH (a:Neuron) WHERE a.dataset = $dataset AND a.chandelier = true RETURN count(a) AS total
"""

_AIS_SYNAPSES = f"""
CALL (ss) {{
  MATCH (ss)-[:Contains]->(s:Synapse) WHERE s.postCompartment = 'ais'
  WITH s ORDER BY s.synapseId
  RETURN count(s) AS n, collect({SYNAPSE_MAP})[0..$perContact] AS synapses
}}
"""

_CONTACT_RETURN = f"""
RETURN a {{{fields("a")}}} AS pre, b {{{fields("b")}}} AS post, n AS synapseCount, synapses,
       coalesce(b.chandelier, false) AS postIsChandelier
"""

# Chandelier -> AIS contacts, from the chandelier side (all of them, or one chandelier).
AIS_CONTACTS_FROM_PRE = f"""
MATCH (a:Neuron)
WHERE a.dataset = $dataset AND a.bodyId >= $preLow AND a.bodyId <= $preHigh
  AND a.chandelier = true
MATCH (a)-[:Contains]->(ss:SynapseSet)-[:SynapsesTo]->(b:Neuron)
WHERE {_AFTER_PAIR} AND ($post IS NULL OR b.bodyId = $post)
  AND ($postChandelier IS NULL OR coalesce(b.chandelier, false) = $postChandelier)
{_AIS_SYNAPSES}
WITH a, b, n, synapses WHERE n >= $minSynapses
ORDER BY a.dataset, a.bodyId, b.bodyId LIMIT $limit
{_CONTACT_RETURN}
"""

# The inverse: one cell's chandelier inputs onto its AIS.
AIS_CONTACTS_TO_POST = f"""
MATCH (b:Neuron {{dataset: $dataset, bodyId: $post}})
MATCH (a:Neuron)-[:Contains]->(ss:SynapseSet)-[:SynapsesTo]->(b)
WHERE a.chandelier = true AND a.bodyId >= $afterPre AND {_AFTER_PAIR}
{_AIS_SYNAPSES}
WITH a, b, n, synapses WHERE n >= $minSynapses
ORDER BY a.dataset, a.bodyId, b.bodyId LIMIT $limit
{_CONTACT_RETURN}
"""

# Batched for the DataLoader: AIS targets of many chandelier cells in one query.
AIS_TARGETS_BATCH = f"""
UNWIND $keys AS k
MATCH (a:Neuron {{dataset: $dataset, bodyId: k.bodyId}})
CALL (a, k) {{
  MATCH (a)-[:Contains]->(ss:SynapseSet)-[:SynapsesTo]->(b:Neuron)
  CALL (ss) {{
    MATCH (ss)-[:Contains]->(s:Synapse) WHERE s.postCompartment = 'ais'
    RETURN count(s) AS n
  }}
  WITH b, n WHERE n >= k.minSynapses
  ORDER BY n DESC, b.bodyId
  WITH collect({{synapseCount: n, neuron: b {{{fields("b")}}}}}) AS ranked
  RETURN ranked[0..k.first] AS rows
}}
RETURN k.key AS key, rows
"""

# -- multi-synaptic contacts -----------------------------------------------------------------
_PAIR_FILTER = f"""
WHERE a.dataset = $dataset AND a.bodyId >= $afterPre AND c.weight >= $minSynapses
  AND {_AFTER_PAIR}
  AND ($preType IS NULL OR a.type = $preType) AND ($postType IS NULL OR b.type = $postType)
"""

_PAIR_SYNAPSES = f"""
CALL (a, b, comp) {{
  MATCH (a)-[:Contains]->(ss:SynapseSet)-[:SynapsesTo]->(b)
  MATCH (ss)-[:Contains]->(s:Synapse)
  WHERE comp IS NULL OR s.postCompartment = comp
  WITH s ORDER BY s.synapseId
  RETURN count(s) AS matching, collect({SYNAPSE_MAP})[0..$perContact] AS synapses
}}
"""

# Without a compartment: the weight is the count; page first, then fetch synapses.
MULTI_SYNAPTIC = f"""
MATCH (a:Neuron)-[c:ConnectsTo]->(b:Neuron)
{_PAIR_FILTER}
WITH a, b, c.weight AS n ORDER BY a.dataset, a.bodyId, b.bodyId LIMIT $limit
WITH a, b, n, null AS comp
{_PAIR_SYNAPSES}
RETURN a {{{fields("a")}}} AS pre, b {{{fields("b")}}} AS post, n AS synapseCount,
       CASE WHEN $perContact = 0 THEN [] ELSE synapses END AS synapses
"""

# With a compartment: count only synapses onto it (the weight bounds it, so filter on it first).
MULTI_SYNAPTIC_COMPARTMENT = f"""
MATCH (a:Neuron)-[c:ConnectsTo]->(b:Neuron)
{_PAIR_FILTER}
WITH a, b, $compartment AS comp
{_PAIR_SYNAPSES}
WITH a, b, matching AS n, synapses WHERE n >= $minSynapses
ORDER BY a.dataset, a.bodyId, b.bodyId LIMIT $limit
RETURN a {{{fields("a")}}} AS pre, b {{{fields("b")}}} AS post, n AS synapseCount,
       CASE WHEN $perContact = 0 THEN [] ELSE synapses END AS synapses
"""

SYNAPSE_HISTOGRAM = """
MATCH (a:Neuron)-[c:ConnectsTo]->(b:Neuron)
WHERE a.dataset = $dataset
  AND ($preType IS NULL OR a.type = $preType) AND ($postType IS NULL OR b.type = $postType)
RETURN c.weight AS synapses, count(*) AS connections ORDER BY synapses
"""

SYNAPSE_HISTOGRAM_COMPARTMENT = """
MATCH (a:Neuron)-[:Contains]->(ss:SynapseSet)-[:SynapsesTo]->(b:Neuron)
WHERE a.dataset = $dataset
  AND ($preType IS NULL OR a.type = $preType) AND ($postType IS NULL OR b.type = $postType)
CALL (ss) {
  MATCH (ss)-[:Contains]->(s:Synapse) WHERE s.postCompartment = $compartment
  RETURN count(s) AS n
}
WITH n WHERE n > 0
RETURN n AS synapses, count(*) AS connections ORDER BY synapses
"""


BODY_IDS_BY_NAME = """
MATCH (n:Neuron {dataset: $dataset, instance: $name}) RETURN n.bodyId AS bodyId LIMIT 2
"""

# -- partners grouped by type ----------------------------------------------------------------
def _partner_groups(match: str, weight: str) -> str:
    return f"""
MATCH (n:Neuron {{dataset: $dataset, bodyId: $bodyId}})
{match}
WITH p, {weight} AS w
WHERE w IS NOT NULL AND w >= $minWeight
WITH p.type AS type, p, w ORDER BY w DESC, p.bodyId
WITH type, count(p) AS neurons, sum(w) AS synapses,
     collect({{weight: w, partner: p {{{fields("p")}}}}})[0..$perType] AS partners
RETURN type, neurons, synapses, partners
ORDER BY synapses DESC, type
"""


_ROI_WEIGHT = ("CASE WHEN $roi IS NULL THEN c.weight ELSE "
               "[i IN range(0, size(coalesce(c.rois, [])) - 1) WHERE c.rois[i] = $roi "
               "| c.roiWeights[i]][0] END")
_SYN_COUNT = """COUNT { (ss)-[:Contains]->(s:Synapse)
  WHERE ($compartment IS NULL OR s.postCompartment = $compartment)
    AND ($roi IS NULL OR s.roi = $roi) }"""

PARTNER_TYPES = {
    ("downstream", False): _partner_groups("MATCH (n)-[c:ConnectsTo]->(p:Neuron)", _ROI_WEIGHT),
    ("upstream", False): _partner_groups("MATCH (p:Neuron)-[c:ConnectsTo]->(n)", _ROI_WEIGHT),
    ("downstream", True): _partner_groups(
        "MATCH (n)-[:Contains]->(ss:SynapseSet)-[:SynapsesTo]->(p:Neuron)", _SYN_COUNT),
    ("upstream", True): _partner_groups(
        "MATCH (p:Neuron)-[:Contains]->(ss:SynapseSet)-[:SynapsesTo]->(n)", _SYN_COUNT),
}
"""(direction, synapse-level?) -> query. Synapse level when a compartment is asked for."""

# -- paths ------------------------------------------------------------------------------------
def _match_endpoint(var: str, param: str) -> str:
    """Neurons of the dataset matching a path endpoint ($source/$target: bodyId, name or type)."""
    return f"""MATCH ({var}:Neuron) WHERE {var}.dataset = $dataset
  AND (${param}.bodyId IS NULL OR {var}.bodyId = ${param}.bodyId)
  AND (${param}.name IS NULL OR {var}.instance = ${param}.name)
  AND (${param}.type IS NULL OR {var}.type = ${param}.type)
"""


_ENDPOINTS = f"""
{_match_endpoint("a", "source")}WITH collect(a) AS sources
{_match_endpoint("b", "target")}WITH sources, collect(b) AS targets
UNWIND sources AS a
UNWIND targets AS b
WITH a, b WHERE a <> b
"""

_PATH_RETURN = f"""
RETURN [x IN nodes(p) | x {{{fields("x")}}}] AS neurons,
       [r IN relationships(p) | r.weight] AS weights
"""

COUNT_ENDPOINTS = f"""
{_match_endpoint("a", "source")}WITH count(a) AS sources
{_match_endpoint("b", "target")}RETURN sources, count(b) AS targets
"""


def _shortest(max_length: int) -> str:
    return f"""{_ENDPOINTS}
MATCH p = ALL SHORTEST (a)-[r:ConnectsTo WHERE r.weight >= $minWeight]->{{1,{max_length}}}(b)
WITH p ORDER BY length(p), [x IN nodes(p) | x.bodyId]
WITH collect(p) AS found
WITH [q IN found WHERE length(q) = length(found[0])] AS shortest
UNWIND shortest[0..$limit] AS p
{_PATH_RETURN}
"""


def _simple(max_length: int) -> str:
    return f"""{_ENDPOINTS}
MATCH p = (a)-[r:ConnectsTo WHERE r.weight >= $minWeight]->{{1,{max_length}}}(b)
WHERE all(i IN range(0, length(p) - 1) WHERE NOT nodes(p)[i] IN nodes(p)[i + 1..])
WITH p ORDER BY length(p), [x IN nodes(p) | x.bodyId] LIMIT $limit
{_PATH_RETURN}
"""


SHORTEST_PATHS = {n: _shortest(n) for n in range(1, MAX_SHORTEST_LENGTH + 1)}
"""Maximum length -> query (the length is a literal in Cypher's path syntax, so one text each)."""
SIMPLE_PATHS = {n: _simple(n) for n in range(1, MAX_PATH_LENGTH + 1)}

# -- motifs -----------------------------------------------------------------------------------
RECIPROCAL_PAIRS = f"""
MATCH (a:Neuron)-[c1:ConnectsTo]->(b:Neuron)-[c2:ConnectsTo]->(a)
WHERE a.dataset = $dataset AND a.bodyId >= $afterPre AND a.bodyId < b.bodyId
  AND {_AFTER_PAIR}
  AND c1.weight >= $minWeight AND c2.weight >= $minWeight
  AND ($type IS NULL OR (a.type = $type AND b.type = $type))
WITH a, b, c1, c2 ORDER BY a.dataset, a.bodyId, b.bodyId LIMIT $limit
RETURN a {{{fields("a")}}} AS a, b {{{fields("b")}}} AS b, c1.weight AS forward,
       c2.weight AS backward
"""


def motif_query(n_nodes: int, present: list[tuple[int, int, int]],
                absent: list[tuple[int, int, int]]) -> str:
    """A motif query over nodes n0..n{k-1}.

    `present`/`absent` hold (edge index, source node, target node) by position; constraint
    values come from `$nodes[i]` and `$edges[j]`; matches page by keyset on the node ids.
    """
    # n0 is read by a range seek on (dataset, bodyId) in index order, from the page's start
    # ($start, $stop: the cursor and any bodyId constraint on n0), so a page stops early.
    lines = ["MATCH (n0:Neuron) WHERE n0.dataset = $dataset AND n0.bodyId >= $start "
             "AND n0.bodyId <= $stop"]
    lines += [f"MATCH (n{s}:Neuron)-[e{j}:ConnectsTo]->(n{t}:Neuron)" for j, s, t in present]
    where: list[str] = []
    for i in range(n_nodes):
        where += [
            f"n{i}.dataset = $dataset",
            f"($nodes[{i}].type IS NULL OR n{i}.type = $nodes[{i}].type)",
            f"($nodes[{i}].cellClass IS NULL OR n{i}.cellClass = $nodes[{i}].cellClass)",
            f"($nodes[{i}].bodyId IS NULL OR n{i}.bodyId = $nodes[{i}].bodyId)",
            f"($nodes[{i}].chandelier IS NULL OR "
            f"coalesce(n{i}.chandelier, false) = $nodes[{i}].chandelier)",
        ]
    for j, _, _ in present:
        where += [f"e{j}.weight >= $edges[{j}].minWeight",
                  f"($edges[{j}].maxWeight IS NULL OR e{j}.weight <= $edges[{j}].maxWeight)"]
    for j, s, t in absent:
        where.append(f"NOT EXISTS {{ MATCH (n{s})-[x{j}:ConnectsTo]->(n{t}) "
                     f"WHERE x{j}.weight >= $edges[{j}].minWeight }}")
    where += [f"n{i} <> n{k}" for i in range(n_nodes) for k in range(i + 1, n_nodes)]
    # Keyset: the tuple of node ids strictly after $after (lexicographic).
    terms = []
    for i in range(n_nodes):
        eq = [f"n{k}.bodyId = $after[{k}]" for k in range(i)]
        terms.append("(" + " AND ".join([*eq, f"n{i}.bodyId > $after[{i}]"]) + ")")
    where.append("($after IS NULL OR " + " OR ".join(terms) + ")")
    # n0.dataset first: the planner then reads n0 in index order and stops early.
    order = ", ".join(["n0.dataset", *(f"n{i}.bodyId" for i in range(n_nodes))])
    nodes = ", ".join(f"n{i} {{{fields(f'n{i}')}}}" for i in range(n_nodes))
    weights = ", ".join(f"e{j}.weight" for j, _, _ in present)
    return (
        "\n".join(lines)
        + "\nWHERE " + "\n  AND ".join(where)
        + f"\nWITH {', '.join(f'n{i}' for i in range(n_nodes))}, "
        + f"{', '.join(f'e{j}' for j, _, _ in present)}"
        + f"\nORDER BY {order} LIMIT $limit"
        + f"\nRETURN [{nodes}] AS neurons, [{weights}] AS weights"
    )


# -- cell types -------------------------------------------------------------------------------
CELL_TYPES = """
MATCH (n:Neuron) WHERE n.dataset = $dataset AND n.type IS NOT NULL
  AND ($types IS NULL OR n.type IN $types)
RETURN n.type AS type, count(n) AS neurons ORDER BY type
"""

TYPE_CONNECTIVITY = """
MATCH (a:Neuron)-[c:ConnectsTo]->(b:Neuron)
WHERE a.dataset = $dataset AND c.weight >= $minWeight
  AND a.type IS NOT NULL AND b.type IS NOT NULL
  AND ($preTypes IS NULL OR a.type IN $preTypes) AND ($postTypes IS NULL OR b.type IN $postTypes)
WITH a.type AS preType, b.type AS postType, sum(c.weight) AS synapses, count(c) AS connections,
     count(DISTINCT a) AS preNeurons, count(DISTINCT b) AS postNeurons
RETURN preType, postType, synapses, connections, preNeurons, postNeurons
ORDER BY synapses DESC, preType, postType LIMIT $limit
"""

# -- neuroglancer -----------------------------------------------------------------------------
META_VOLUMES = """
MATCH (m:Meta {dataset: $dataset})
RETURN m.neuroglancerSource AS segmentation, m.imageSource AS image,
       m.voxelSizeNm AS voxelSize, m.neuroglancerBase AS base,
       m.runDirectory AS runDirectory, m.emDirectory AS emDirectory
"""

SYNAPSES_BY_ID = f"""
UNWIND $ids AS id
MATCH (s:Synapse {{dataset: $dataset, synapseId: id}})
RETURN {SYNAPSE_MAP} AS synapse, s.preBodyId AS pre, s.postBodyId AS post
"""

SYNAPSES_OF_PAIR = f"""
MATCH (ss:SynapseSet {{dataset: $dataset, preBodyId: $pre, postBodyId: $post}})
      -[:Contains]->(s:Synapse)
WITH s ORDER BY s.synapseId LIMIT $limit
RETURN {SYNAPSE_MAP} AS synapse, s.preBodyId AS pre, s.postBodyId AS post
"""

NEURON_SOMAS = """
UNWIND $ids AS id
MATCH (n:Neuron {dataset: $dataset, bodyId: id})
RETURN n.bodyId AS bodyId, n.somaLocation AS soma
"""
