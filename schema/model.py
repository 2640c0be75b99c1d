"""The graph model: labels, relationship types and property names, in neuPrint's words.

Every node carries a `dataset` property, so several datasets live side by side in one Community
database (which has a single user database). Uniqueness is per dataset: `(dataset, bodyId)` for
neurons, `(dataset, synapseId)` for synapses. See `MODEL.md` beside this file.
"""

from __future__ import annotations

import re
from typing import Final

# Node labels
META: Final = "Meta"
SEGMENT: Final = "Segment"
NEURON: Final = "Neuron"
SYNAPSE_SET: Final = "SynapseSet"
SYNAPSE: Final = "Synapse"
MIGRATION: Final = "SchemaMigration"
SKELETON: Final = "Skeleton"
"""A neuron's skeleton: SWC columns as parallel lists (`nodeIds`, `parents`, `x`, `y`, `z`,
`radius`, `kinds`), one node per neuron and version."""

# Relationship types
CONNECTS_TO: Final = "ConnectsTo"
"""Chemical connection, directed pre -> post, `weight` = synapse count."""
GAP_JUNCTION: Final = "GapJunction"
"""Electrical coupling, undirected: stored once per unordered pair (lower bodyId -> higher)."""
MONOAMINE: Final = "Monoamine"
"""Extrasynaptic monoamine signalling, directed releasing cell -> receptor cell; `weight` =
transmitter-receptor pathways, `transmitters` / `receptors` name them (parallel lists)."""
NEUROPEPTIDE: Final = "Neuropeptide"
"""Extrasynaptic neuropeptide signalling, directed; properties as for `MONOAMINE`."""
CONTAINS: Final = "Contains"
"""Neuron -> SynapseSet (owned by the presynaptic neuron) -> Synapse."""
HAS_SKELETON: Final = "HasSkeleton"
"""Neuron -> its Skeleton."""
SYNAPSES_TO: Final = "SynapsesTo"
"""SynapseSet -> the postsynaptic Neuron."""

DATASET_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")
"""Dataset names: a letter, then letters, digits, `_` or `-` (at most 64 characters)."""


def check_dataset_name(name: str) -> str:
    """Return `name` if it is a valid dataset name, else raise ValueError saying why."""
    if not DATASET_NAME.match(name):
        raise ValueError(
            f"invalid dataset name {name!r}: use a letter followed by letters, digits, '_' or '-'"
            " (at most 64 characters)"
        )
    return name


# Dataset versions: every load is a version; its nodes carry the version's key as `dataset`.
LOADING: Final = "loading"
COMPLETE: Final = "complete"


def version_key(name: str, version: int) -> str:
    """The key the nodes of version `version` of dataset `name` carry."""
    return f"{name}@v{version}"


def name_of(key: str) -> str:
    """The dataset name in a version key (`cook2019@v3` -> `cook2019`; a bare name stays)."""
    return key.split("@", 1)[0]


def is_current(var: str) -> str:
    """Cypher: whether Meta `var` is its dataset's current version (a Meta written before versions
    existed, with no `version`, counts as version 1, current when complete)."""
    return f"coalesce({var}.current, {var}.version IS NULL AND {var}.status = '{COMPLETE}')"


SCOPED_LABELS: Final = (META, SEGMENT, NEURON, SYNAPSE_SET, SYNAPSE, SKELETON)
"""Labels that also exist once per dataset version (`scope_label`), as neuPrint keeps
`hemibrain_Neuron` beside `Neuron`: a query that starts from these labels reads one version."""

PRE_SYN: Final = "PreSyn"
POST_SYN: Final = "PostSyn"
"""neuPrint's two sides of a synapse. Our `Synapse` node is the presynaptic side; the
postsynaptic side exists only as version labels (`scope_label(key, POST_SYN)` with
`scope_label(key, SYNAPSE)`), written for neuPrint's clients (`graphdb.dataset_scope`)."""
VIEW_LABELS: Final = (*SCOPED_LABELS, PRE_SYN, POST_SYN)
"""Labels a query for one dataset version may name (`:Neuron`, `:PostSyn`, ...)."""


def scope_label(key: str, label: str) -> str:
    """The label the nodes of version `key` carry beside `label` (`cook2019@v3_Neuron`)."""
    return f"{key}_{label}"
