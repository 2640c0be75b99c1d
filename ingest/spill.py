"""Spill folders: where a load keeps what does not fit in memory, named after the process that
owns them, so that a folder left behind by a killed load is removed by the next one.

A folder is `connectome-ingest-<pid>-<start>-<random>` in the spill directory
(`CONNECTOME_INGEST_SPILL_DIR`, default the system's temporary directory), where `<start>` is
when the owner started (clock ticks since boot, from /proc; 0 where /proc is missing). Its owner
removes it when done; `sweep` removes those whose owner is gone: no such process, or a process
with that pid that started at another time (the pid was reused). Other names are never touched.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from connectome_query.graphdb.catalog import process_alive

PREFIX = "connectome-ingest-"
_OWNED = re.compile(rf"^{PREFIX}(\d+)-(\d+)-")


def start_time(pid: int) -> int | None:
    """When process `pid` started, in clock ticks since boot; 0 where /proc does not say; None
    when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None if Path("/proc/self/stat").exists() else (0 if process_alive(pid) else None)
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[19])


def new_folder(spill_dir: Path | None) -> Path:
    """A fresh spill folder owned by this process."""
    pid = os.getpid()
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{pid}-{start_time(pid) or 0}-",
                                 dir=spill_dir))


def owner_alive(name: str) -> bool | None:
    """Whether the process that made the spill folder `name` still runs (None: not a spill
    folder name)."""
    match = _OWNED.match(name)
    if match is None:
        return None
    pid, started = int(match.group(1)), int(match.group(2))
    now = start_time(pid)
    return now is not None and (started == 0 or now == 0 or now == started)


def sweep(spill_dir: Path | None) -> list[Path]:
    """Remove the spill folders in `spill_dir` (default: the temporary directory) whose owner
    is gone; the folders removed."""
    where = Path(spill_dir or tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(where.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if entry.name.startswith(PREFIX) and owner_alive(entry.name) is False \
                and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed
