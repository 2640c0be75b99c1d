"""The run's manifest and block records: what makes a run directory resumable, and safe to resume.

`RUN_DIR/engine/manifest.json` holds the identity of the volume (volume.json, the image array's
metadata and a fingerprint of a sample of its voxels) and every parameter that changes a result
(block shape, network weights and their hash, segmentation parameters, ...). A run directory whose
manifest differs is refused, naming the fields that differ, so two runs are never mixed.

Each finished block of each stage leaves a record, `RUN_DIR/engine/<stage>/<block>.npz` (the small
arrays the block hands on: sizes, face planes, region-graph edges, ...), written after the block's
volume writes and renamed into place, so a record exists only for a block whose work is complete. A
rerun skips recorded blocks.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from connectome_query.reconstruct import io, location
from connectome_query.reconstruct.errors import ReconstructError
from connectome_query.reconstruct.location import Where

FORMAT = "connectome-query/engine/1"
ENGINE_DIR = "engine"


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def array_identity(store: Any, path: Where) -> dict[str, Any]:
    """Shape, dtype and a fingerprint of a sample of the voxels of an opened array: up to 8
    patches of 64 x 64 pixels of 8 sections spread through it (cheap at any size)."""
    shape = [int(s) for s in store.shape]
    h = hashlib.sha256()
    nz, ny, nx = shape[-3:]
    lead = (slice(None),) * (len(shape) - 3)
    for k in range(8):
        z = (k * max(nz - 1, 0)) // 7
        y0, x0 = (k * max(ny - 64, 0)) // 7, (k * max(nx - 64, 0)) // 7
        patch = io.read_block(store, (*lead, slice(z, z + 1), slice(y0, min(y0 + 64, ny)),
                                      slice(x0, min(x0 + 64, nx))), path, "image")
        h.update(np.ascontiguousarray(patch).tobytes())
    return {"path": location.describe(path), "shape": shape,
            "dtype": str(store.dtype.numpy_dtype), "sample_sha256": h.hexdigest()}


def _differences(old: Any, new: Any, where: str = "") -> list[str]:
    """Dotted paths of the fields where two JSON values differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for k in sorted(set(old) | set(new)):
            out += _differences(old.get(k), new.get(k), f"{where}.{k}" if where else str(k))
        return out
    return [] if old == new else [f"{where} (was {old!r}, now {new!r})"]


class Manifest:
    """The engine's folder in a run directory: manifest and block records."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.root = self.run_dir / ENGINE_DIR

    def open(self, identity: dict[str, Any]) -> bool:
        """Start or resume: write the manifest of a new run, or check that an existing one
        is this run's (ReconstructError naming what differs otherwise). True when resuming."""
        path = self.root / "manifest.json"
        wanted = {"format": FORMAT, **json.loads(json.dumps(identity))}
        if path.exists():
            try:
                old = json.loads(path.read_text())
            except json.JSONDecodeError as e:
                raise ReconstructError(f"run directory: {path} is not valid JSON: {e}") from e
            diff = _differences(old, wanted)
            if diff:
                raise ReconstructError(
                    f"run directory {self.run_dir} holds a run of another volume or other "
                    f"parameters ({path}): " + "; ".join(diff[:6])
                    + "; use a new run directory, or delete this one to start over")
            return True
        if self.run_dir.exists() and any(p.name != ENGINE_DIR for p in self.run_dir.iterdir()):
            raise ReconstructError(f"run directory {self.run_dir} is not empty and holds no "
                                   f"{ENGINE_DIR}/manifest.json: it is not a run of this "
                                   "engine; use a new or empty directory")
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(wanted, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)
        return False

    def folder(self, stage: str) -> Path:
        return self.root / stage

    def record_path(self, stage: str, item: int) -> Path:
        return self.root / stage / f"{item}.npz"

    def done(self, stage: str, item: int) -> bool:
        return self.record_path(stage, item).exists()

    def load(self, stage: str, item: int) -> dict[str, np.ndarray]:
        return load_record(self.record_path(stage, item))


@contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A file for writing that appears at `path` whole or not at all: a hidden temporary
    beside it, renamed into place when the block ends, removed if it fails (a resumed run
    never reads half a record)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_record(path: Path, arrays: dict[str, np.ndarray], compress: bool = False) -> None:
    """Write a block's record atomically (`atomic_file`); with `compress`, deflated
    (`load_record` reads either)."""
    # numpy's stub types **kwargs as allow_pickle
    savez: Any = np.savez_compressed if compress else np.savez
    with atomic_file(path) as fh:
        savez(fh, **{k: np.asarray(v) for k, v in arrays.items()})


def load_record(path: Path, keys: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """A block's record (only its arrays `keys` when given: the others are not read); a
    damaged one is a ReconstructError naming it."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in (z.files if keys is None else keys)}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise ReconstructError(f"block record {path} is damaged ({e}); delete it to redo "
                               "that block") from e
