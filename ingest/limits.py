"""The bounds every value must meet before ingest writes it, in one place.

Neo4j stores integers as signed 64-bit longs and refuses an index entry above its key size limit
(8,167 bytes for a range index key, which for a composite index holds every property of the key).
Ingest checks these bounds while it reads, so a value that Neo4j would refuse is reported with its
file, row and column before the first write, never as a failed transaction halfway through a load.
"""

from __future__ import annotations

from typing import Final

INT64_MAX: Final = 2**63 - 1
"""Largest id, count or weight Neo4j can store (a Java long)."""

FLOAT_EXACT_MAX: Final = 2**53
"""Whole numbers above this are not all exact in float64: an id that passed through a float
column may have been rounded (FlyWire's ~7.2e17 ids to multiples of 128 or more)."""

NEO4J_INDEX_KEY_LIMIT_BYTES: Final = 8167
"""Neo4j's range-index key size limit (native index provider)."""

INDEXED_TEXT_MAX_BYTES: Final = 4096
"""Most UTF-8 bytes in one name-like text value (`instance`, `type`, `cellClass`, `status`,
`neurotransmitter`, synapse `roi`, ROI names in `roiInfo`). Half the index key limit, so a
composite key (`dataset` + the value) always fits, and the same cap holds for properties the
API may index later."""

BATCH_SIZE_MAX: Final = 100_000
"""Most rows one write transaction may carry (`--batch-size`); beyond it a transaction's memory
grows past what a default Neo4j heap holds."""
