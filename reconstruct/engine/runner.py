"""Running a stage: one Dask task per unrecorded block, each leaving its record when done.

`Engine.run(stage, items, fn, *args)` submits `fn(item, *args)` for every item (block) of the stage
that has no record yet, as Dask tasks; each task returns the block's record (a dict of small
arrays), which the task itself saves before it ends. Finished blocks are counted into the
progress as they complete. A worker lost mid-task has its tasks rerun by Dask elsewhere (blocks
are idempotent: they rewrite the same chunks and the same record); an error in a task ends the run
with that error. Big inputs are passed as file paths, never as task arguments.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from connectome_query.reconstruct.engine.manifest import Manifest, load_record, save_record
from connectome_query.reconstruct.progress import Progress, Quiet

Record = dict[str, np.ndarray]


def _block_task(fn: Callable[..., Record], path: str, item: int, args: tuple[Any, ...],
                compress: bool) -> int:
    """On a worker: the block's work, then its record."""
    record = fn(item, *args)
    save_record(Path(path), record, compress)
    return item


@dataclass
class Engine:
    """A Dask client, the run's manifest and where progress goes."""

    client: Any
    manifest: Manifest
    progress: Progress = field(default_factory=Quiet)
    timings: dict[str, float] = field(default_factory=dict)

    def run(self, stage: str, items: Iterable[int], fn: Callable[..., Record],
            *args: Any, compress: bool = False) -> Records:
        """Do `fn(item, *args)` for every item of `stage` without a record; the records of
        all items, loaded when asked for. With `compress`, records are stored deflated (for
        records that hold label planes)."""
        from distributed import as_completed

        items = list(items)
        todo = [i for i in items if not self.manifest.done(stage, i)]
        self.progress.stage(stage, len(items), len(items) - len(todo))
        t = time.perf_counter()
        if todo:
            futures = [self.client.submit(
                _block_task, fn, str(self.manifest.record_path(stage, i)), i, args, compress,
                key=f"{stage}-{i}-{time.time_ns()}", pure=False) for i in todo]
            try:
                for fut in as_completed(futures):
                    fut.result()  # raises the task's error here
                    self.progress.advance(stage)
                    fut.release()
            except BaseException:
                self.client.cancel(futures)
                raise
        self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - t
        return Records(self.manifest, stage, items)


@dataclass
class Records:
    """The records of a stage's items, read from the run directory when asked for."""

    manifest: Manifest
    stage: str
    items: list[int]

    def __getitem__(self, item: int) -> Record:
        return load_record(self.manifest.record_path(self.stage, item))

    def __iter__(self) -> Iterator[tuple[int, Record]]:
        for i in self.items:
            yield i, self[i]

    def gather(self, key: str) -> list[np.ndarray]:
        """One array of every record, in item order (the records' other arrays not read)."""
        return [load_record(self.manifest.record_path(self.stage, i), (key,))[key]
                for i in self.items]
