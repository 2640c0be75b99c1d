"""Progress of a long stage: it reports (what it is doing, fraction done) to a callback.

The stages never draw anything themselves; the CLI passes a callback that drives its progress bar.
"""

from __future__ import annotations

from collections.abc import Callable

Tick = Callable[[str, float], None]
"""tick(message, fraction done in [0, 1])."""


def no_progress(message: str, fraction: float) -> None:
    """The callback of callers that show no progress."""
    return None
