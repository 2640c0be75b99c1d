"""The Cypher the API sends. Values are always parameters ($name), never spliced in."""

from __future__ import annotations

from connectome_query.schema.model import MONOAMINE, NEUROPEPTIDE, is_current


def neuron_fields(var: str) -> str:
    """The Neuron map projection the API returns, for the Cypher variable `var`."""
    return f"""
  bodyId: {var}.bodyId, dataset: {var}.dataset, instance: {var}.instance, type: {var}.type,
  cellClass: {var}.cellClass, neurotransmitter: {var}.neurotransmitter, status: {var}.status,
  pre: {var}.pre, post: {var}.post, upstreamPartners: {var}.upstream,
  downstreamPartners: {var}.downstream, gapJunctions: {var}.gapJunctions, size: {var}.size,
  soma: CASE WHEN {var}.somaLocation IS NULL THEN null
        ELSE [{var}.somaLocation.x, {var}.somaLocation.y, {var}.somaLocation.z] END
"""


NEURON_FIELDS = neuron_fields("n")

DATASETS = f"""
MATCH (m:Meta) WHERE {is_current("m")}
  AND ($name IS NULL OR coalesce(m.name, m.dataset) = $name)
RETURN m {{.*, name: coalesce(m.name, m.dataset),
          lastDatabaseEdit: toString(m.lastDatabaseEdit)}} AS meta
ORDER BY m.dataset
"""
"""The current version of every dataset (or of `$name`)."""

NEURON_BY_ID = f"""
MATCH (n:Neuron {{dataset: $dataset, bodyId: $bodyId}})
RETURN n {{{NEURON_FIELDS}}} AS neuron
"""

NEURONS_BY_NAME = f"""
MATCH (n:Neuron {{dataset: $dataset, instance: $name}})
RETURN n {{{NEURON_FIELDS}}} AS neuron
ORDER BY n.bodyId LIMIT 2
"""

NEURON_FILTER = """($type IS NULL OR n.type = $type)
  AND ($cellClass IS NULL OR n.cellClass = $cellClass)
  AND ($status IS NULL OR n.status = $status)
  AND ($minPre IS NULL OR n.pre >= $minPre)
  AND ($minPost IS NULL OR n.post >= $minPost)
  AND ($instanceRegex IS NULL OR n.instance =~ $instanceRegex)
  AND ($bodyIds IS NULL OR n.bodyId IN $bodyIds)"""
"""The `neurons` filters; a null parameter is no filter."""

NEURONS_PAGE = f"""
MATCH (n:Neuron {{dataset: $dataset}})
WHERE n.bodyId > $after AND {NEURON_FILTER}
WITH n ORDER BY n.bodyId LIMIT $limit
RETURN n {{{NEURON_FIELDS}}} AS neuron
"""

NEURONS_COUNT = f"""
MATCH (n:Neuron {{dataset: $dataset}})
WHERE {NEURON_FILTER}
RETURN count(n) AS total
"""

# Partners of many neurons at once (one query per DataLoader batch, not one per neuron).
# Keys are maps {key, bodyId, minWeight, first, afterWeight, afterBody}; rows come back tagged
# with their key. A page starts after (afterWeight, afterBody) in (weight desc, bodyId) order.
PARTNER_FIELDS = neuron_fields("p")


def _partner_batch(pattern: str) -> str:
    """Top `first` partners per key; properties are projected for those alone, not for every
    partner (on the busiest neuron this cut database hits five-fold in bench/partners)."""
    return f"""
UNWIND $keys AS k
MATCH (n:Neuron {{dataset: $dataset, bodyId: k.bodyId}})
CALL (n, k) {{
  MATCH {pattern} WHERE c.weight >= k.minWeight
  WITH DISTINCT p, c.weight AS weight
  WHERE k.afterWeight IS NULL OR weight < k.afterWeight
     OR (weight = k.afterWeight AND p.bodyId > k.afterBody)
  WITH p, weight ORDER BY weight DESC, p.bodyId
  WITH k, collect([p, weight]) AS ranked
  UNWIND ranked[0..k.first] AS top
  WITH top[0] AS p, top[1] AS weight
  RETURN collect({{weight: weight, partner: p {{{PARTNER_FIELDS}}}}}) AS rows
}}
RETURN k.key AS key, rows
"""


UPSTREAM_BATCH = _partner_batch("(p:Neuron)-[c:ConnectsTo]->(n)")
DOWNSTREAM_BATCH = _partner_batch("(n)-[c:ConnectsTo]->(p:Neuron)")
ELECTRICAL_BATCH = _partner_batch("(n)-[c:GapJunction]-(p:Neuron)")
MODULATORY_BATCH: dict[tuple[str, str | None], str] = {
    (direction, rel): _partner_batch(pattern.format(rel=rel))
    for rel in (MONOAMINE, NEUROPEPTIDE)
    for direction, pattern in (("upstream", "(p:Neuron)-[c:{rel}]->(n)"),
                               ("downstream", "(n)-[c:{rel}]->(p:Neuron)"))}
"""Neuromodulator partners: (direction, relationship type) -> batch query; `weight` is the
number of transmitter-receptor pathways."""
