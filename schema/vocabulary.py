"""The field's shared words, defined once for every stage: compartments and cell classes.

A compartment has three spellings: its name in tables and the graph (`ais`), its code in
compartment volumes (uint8), and its SWC structure type in skeleton files (SWC reserves 1 soma,
2 axon, 3 basal dendrite, 4 apical dendrite; the axon initial segment takes the first custom type,
5).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final


class Compartment(IntEnum):
    """Part of a cell a synapse or skeleton node lies on; the value is the volume code."""

    UNKNOWN = 0
    SOMA = 1
    AXON = 2
    DENDRITE = 3
    AIS = 4
    """Axon initial segment: the first stretch of axon, target of chandelier cells."""

    @property
    def label(self) -> str:
        """The name stored in tables, the graph and the API (`soma`, `ais`, ...)."""
        return self.name.lower()

    @property
    def swc_type(self) -> int:
        """The structure type in SWC skeleton files."""
        return _SWC_TYPE[self]

    @classmethod
    def from_label(cls, label: str) -> Compartment:
        """The compartment named `label`; ValueError naming the allowed names otherwise."""
        try:
            return cls[label.upper()]
        except KeyError:
            raise ValueError(f"unknown compartment {label!r} (allowed: "
                             f"{', '.join(COMPARTMENT_NAMES)})") from None


_SWC_TYPE: Final = {Compartment.UNKNOWN: 0, Compartment.SOMA: 1, Compartment.AXON: 2,
                    Compartment.DENDRITE: 3, Compartment.AIS: 5}

COMPARTMENT_NAMES: Final = tuple(c.label for c in Compartment)
"""Every compartment name, in code order: unknown, soma, axon, dendrite, ais."""

CHANDELIER: Final = "chandelier"
"""The cell class of cells whose outputs land mostly on axon initial segments."""
PYRAMIDAL: Final = "pyramidal"
"""The cell class of the principal excitatory cells of cortex."""
