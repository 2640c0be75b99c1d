"""Progress of a long run: the stages report to a callback or to a `Progress`; they never draw.

`Tick` is the callback of single-process work (synthesis, training): tick(message, fraction).
`Progress` is what the engine reports to: each stage's blocks (total, then one by one) and notes
such as the Dask dashboard's address. The CLI implements both with rich.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

Tick = Callable[[str, float], None]
"""tick(message, fraction done in [0, 1])."""


def no_progress(message: str, fraction: float) -> None:
    """The callback of callers that show no progress."""
    return None


class Progress(Protocol):
    """Where the engine reports: a stage of `total` blocks starts, blocks finish, notes."""

    def stage(self, name: str, total: int, done: int = 0) -> None: ...

    def advance(self, name: str, n: int = 1) -> None: ...

    def note(self, text: str) -> None: ...


class Quiet:
    """A `Progress` that shows nothing."""

    def stage(self, name: str, total: int, done: int = 0) -> None:
        return None

    def advance(self, name: str, n: int = 1) -> None:
        return None

    def note(self, text: str) -> None:
        return None


class Ticks:
    """A `Progress` that drives a `Tick`: each stage in turn, its share of blocks done."""

    def __init__(self, tick: Tick) -> None:
        self.tick = tick
        self.totals: dict[str, list[int]] = {}

    def stage(self, name: str, total: int, done: int = 0) -> None:
        self.totals[name] = [done, max(total, 1)]
        self.tick(name, done / max(total, 1))

    def advance(self, name: str, n: int = 1) -> None:
        t = self.totals.setdefault(name, [0, 1])
        t[0] += n
        self.tick(name, min(t[0] / t[1], 1.0))

    def note(self, text: str) -> None:
        return None


def stage_tick(progress: Progress, name: str, steps: int = 100) -> Tick:
    """A `Tick` for single-process work shown as one stage of `progress`: the fraction done as
    `steps` blocks (the message is not shown)."""
    progress.stage(name, steps)
    done = [0]

    def tick(message: str, fraction: float) -> None:
        n = min(round(max(fraction, 0.0) * steps), steps)
        if n > done[0]:
            progress.advance(name, n - done[0])
            done[0] = n

    return tick
