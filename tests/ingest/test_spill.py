"""Spill folders left by a load killed with -9 are removed by the next load; folders of loads
still running, and anything else in the spill directory, are left alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from connectome_query.ingest import spill
from connectome_query.ingest.loader import as_source
from connectome_query.ingest.prepare import prepare
from connectome_query.ingest.sources import read_source

SPILLING_CHILD = """
import sys, time
from pathlib import Path
import numpy as np
from connectome_query.ingest.aggregate import RepeatFinder
repeats = RepeatFinder(memory_ids=10, spill_dir=Path(sys.argv[1]))
for start in range(0, 40, 10):
    repeats.add(np.arange(start, start + 10), np.arange(start, start + 10))
print("spilled", flush=True)
time.sleep(600)
"""


def killed_spiller(where: Path) -> set[Path]:
    """Run a process that spills to `where` the way a load does, kill -9 it; what it left."""
    before = set(where.iterdir())
    proc = subprocess.Popen([sys.executable, "-c", SPILLING_CHILD, str(where)],
                            stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"spilled"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return set(where.iterdir()) - before


def synapse_table(path: Path, rows: int = 3000) -> Path:
    rng = np.random.default_rng(5)
    bodies = 864691135000000000 + rng.choice(10**9, size=40, replace=False)
    pre = rng.choice(bodies, size=rows)
    post = np.where(pre == bodies[0], bodies[1], bodies[0])  # no autapses: every row is kept
    pd.DataFrame({"id": np.arange(1, rows + 1), "pre_pt_root_id": pre, "post_pt_root_id": post,
                  "ctr_pt_position": [f"[{i} {i} {i}]" for i in range(rows)]}
                 ).to_csv(path, index=False)
    return path


def test_the_next_load_sweeps_what_a_killed_load_left(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    where = tmp_path / "spill"
    where.mkdir()
    left = killed_spiller(where)
    assert len(left) == 1 and any(next(iter(left)).iterdir()), "the child spilled nothing"
    live = spill.new_folder(where)  # this process: still running
    reused = where / f"{spill.PREFIX}{os.getpid()}-1-x"  # our pid, another start: pid reused
    reused.mkdir()
    other = [where / f"{spill.PREFIX}abc", where / "unrelated"]
    for folder in other:
        folder.mkdir()

    monkeypatch.setenv("CONNECTOME_INGEST_SPILL_DIR", str(where))
    monkeypatch.setenv("CONNECTOME_INGEST_SPILL_ROWS", "1000")
    prepared = prepare(as_source(read_source(str(synapse_table(tmp_path / "syn.csv")))))
    try:
        assert prepared.synapses == 3000  # the load itself went through
    finally:
        prepared.close()
    assert sorted(where.iterdir()) == sorted([live, *other])
    assert spill.sweep(where) == []  # what is left belongs to live or unknown owners
