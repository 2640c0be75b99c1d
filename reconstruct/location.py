"""Where a volume lives: a location string -> a TensorStore kvstore spec (the one place).

A location is a local path, `file:///ABS/PATH`, `s3://BUCKET/PATH` or `gs://BUCKET/PATH`.
`parse` turns local ones into `Path`s (so local code keeps using paths) and keeps object-store
ones as normalised URL strings; `kvstore` gives the spec every TensorStore open in
`reconstruct/io.py` uses, so the same code reads a local disk, S3 (or an S3-compatible store)
and Google Cloud Storage.

S3: credentials, profile and region are TensorStore's own (the AWS variables and files:
`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_PROFILE`,
`AWS_SHARED_CREDENTIALS_FILE`, then instance metadata). TensorStore does not read an endpoint
from the environment, so an S3-compatible store (MinIO, Ceph, a test server) is named by
`CONNECTOME_S3_ENDPOINT`, else `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` (the AWS SDKs'
names); the region by `CONNECTOME_S3_REGION`, else `AWS_REGION` or `AWS_DEFAULT_REGION`
(without one TensorStore asks the bucket). Each process reads these when it opens a volume, so
Dask workers need them too. GCS: TensorStore's credentials (`GOOGLE_APPLICATION_CREDENTIALS`, or
the machine's account).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import tensorstore as ts

from connectome_query.reconstruct.errors import ReconstructError

Where = str | Path
"""A parsed location: a local `Path`, or an object-store URL (`s3://...`, `gs://...`)."""

S3_ENDPOINT_VARS = ("CONNECTOME_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
S3_REGION_VARS = ("CONNECTOME_S3_REGION", "AWS_REGION", "AWS_DEFAULT_REGION")
_DRIVERS = {"s3": "s3", "gs": "gcs"}
FORMS = "a local path, file:///ABS/PATH, s3://BUCKET/PATH or gs://BUCKET/PATH"


def parse(loc: str | Path) -> Where:
    """A location as a `Path` (local) or a normalised `s3://`/`gs://` URL; a clear error for an
    unknown scheme, a relative `file://` path or a missing bucket."""
    if isinstance(loc, Path):
        return loc
    scheme, sep, rest = loc.partition("://")
    if not sep:
        return Path(loc)
    scheme = scheme.lower()
    if scheme == "file":
        if not rest.startswith("/"):
            raise ReconstructError(f"location {loc}: file:// needs an absolute path "
                                   f"(file:///ABS/PATH)")
        return Path(unquote(rest))
    if scheme not in _DRIVERS:
        raise ReconstructError(f"location {loc}: unknown scheme {scheme!r}; a location is "
                               f"{FORMS}")
    bucket, _, path = rest.partition("/")
    if not bucket:
        raise ReconstructError(f"location {loc}: no bucket; a location is {FORMS}")
    path = "/".join(p for p in path.split("/") if p)
    return f"{scheme}://{bucket}/{path}" if path else f"{scheme}://{bucket}"


def is_remote(loc: Where) -> bool:
    """Whether a parsed location is in object storage."""
    return isinstance(loc, str)


def join(base: str | Path, *names: str) -> Where:
    """`base / name / ...` for either kind of location (empty names are skipped)."""
    where = parse(base)
    names = tuple(n.strip("/") for n in names if n.strip("/"))
    if isinstance(where, Path):
        return where.joinpath(*names)
    return "/".join((where, *names))


def describe(loc: str | Path) -> str:
    """The location as a run records it: an absolute path, or the URL."""
    where = parse(loc)
    return str(where.resolve()) if isinstance(where, Path) else where


def _first_env(names: tuple[str, ...]) -> str | None:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def kvstore(loc: str | Path) -> dict[str, Any]:
    """The TensorStore kvstore spec of a location (a directory-like prefix for S3 and GCS)."""
    where = parse(loc)
    if isinstance(where, Path):
        return {"driver": "file", "path": str(where.resolve())}
    scheme, rest = where.split("://", 1)
    bucket, _, path = rest.partition("/")
    spec: dict[str, Any] = {"driver": _DRIVERS[scheme], "bucket": bucket,
                            "path": f"{path}/" if path else ""}
    if scheme == "s3":
        endpoint = _first_env(S3_ENDPOINT_VARS)
        region = _first_env(S3_REGION_VARS)
        if endpoint:
            spec["endpoint"] = endpoint
        if region:
            spec["aws_region"] = region
    return spec


def read_bytes(loc: str | Path, what: str) -> bytes | None:
    """The bytes of one file or object; None when there is none; a clear error, naming the
    location, when the store cannot be read (no such bucket, no access, no connection)."""
    where = parse(loc)
    if isinstance(where, Path):
        return where.read_bytes() if where.is_file() else None
    result = _read(where, what, None)
    return bytes(result.value) if result is not None and result.state == "value" else None


def exists(loc: str | Path, what: str) -> bool:
    """Whether a file or object is there, from its metadata alone (a local stat; in object
    storage a read of no bytes, which TensorStore sends as a HEAD request); the errors of
    `read_bytes`."""
    where = parse(loc)
    if isinstance(where, Path):
        return where.exists()
    result = _read(where, what, slice(0, 0))
    return result is not None and result.state == "value"


def _read(where: str, what: str, byte_range: slice | None) -> ts.KvStore.ReadResult | None:
    """An object's read through TensorStore (`byte_range` of it, None: all); None for the
    bucket itself (no key)."""
    parent, _, key = where.rpartition("/")
    if parent.endswith(":/"):
        return None
    try:
        store = ts.KvStore.open(kvstore(parent)).result()
        return store.read(key, byte_range=byte_range).result()
    except Exception as e:
        raise ReconstructError(f"{what}: cannot read {where}: {_reason(e)}") from e


def _reason(e: Exception) -> str:
    """TensorStore's message, with a hint where it says access was refused."""
    text = str(e) or type(e).__name__
    if "PERMISSION_DENIED" in text or "UNAUTHENTICATED" in text:
        text += (" (check the credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or "
                 "AWS_PROFILE for s3://, GOOGLE_APPLICATION_CREDENTIALS for gs://)")
    return text
