"""What the neuPrint client tests share: the served address, and the datasets' names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HEMIBRAIN = "t_hemibrain"
VERSIONED = "neuprint_versions"
RECONSTRUCTION = "t_np_reconstruction"
"""A synthetic volume reconstructed, its run directory ingested with its skeletons."""
TOKEN = "any-token"
"""Auth is off: the client insists on a token, the server reads none."""


@dataclass(frozen=True)
class Served:
    """`connectome serve --tls` as the tests reach it."""

    url: str
    cert: Path
