"""Whether a file or object exists, asked of its metadata: local files by stat, object stores
by a read of no bytes (a TensorStore in-memory store stands in for the bucket, recording the
byte ranges asked for)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import tensorstore as ts

from connectome_query.reconstruct import location
from connectome_query.reconstruct.errors import ReconstructError


def test_local_files_and_folders(tmp_path: Path) -> None:
    (tmp_path / "volume.json").write_text("{}")
    (tmp_path / "truth").mkdir()
    assert location.exists(tmp_path / "volume.json", "x")
    assert location.exists(str(tmp_path / "truth"), "x")
    assert location.exists(f"file://{tmp_path}/volume.json", "x")
    assert not location.exists(tmp_path / "info", "x")


class _Recorded:
    """An in-memory kvstore whose reads note the byte range asked for."""

    def __init__(self) -> None:
        self.store = ts.KvStore.open({"driver": "memory"}).result()
        self.asked: list[slice | None] = []

    def read(self, key: str, byte_range: slice | None = None) -> Any:
        self.asked.append(byte_range)
        return self.store.read(key, byte_range=byte_range)


def test_an_object_is_found_without_reading_its_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = _Recorded()
    body = b"x" * 4096
    bucket.store.write("volume.json", body).result()
    opened: list[dict[str, Any]] = []

    def open_store(spec: dict[str, Any]) -> Any:
        opened.append(spec)
        return SimpleNamespace(result=lambda: bucket)

    fake = SimpleNamespace(KvStore=SimpleNamespace(open=open_store))
    monkeypatch.setattr(location, "ts", fake)
    assert location.exists("s3://em/vol/volume.json", "volume description")
    assert not location.exists("s3://em/vol/info", "volume description")
    assert bucket.asked == [slice(0, 0), slice(0, 0)]  # no bytes asked for
    assert opened[0]["bucket"] == "em" and opened[0]["path"] == "vol/"
    assert location.read_bytes("s3://em/vol/volume.json", "volume description") == body
    assert bucket.asked[-1] is None  # a read of the whole object
    assert not location.exists("s3://em", "volume description")  # the bucket: no key


def test_an_unreadable_store_names_the_object(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(spec: dict[str, Any]) -> Any:
        raise ValueError("PERMISSION_DENIED: no")

    monkeypatch.setattr(location, "ts", SimpleNamespace(KvStore=SimpleNamespace(open=refuse)))
    with pytest.raises(ReconstructError, match=r"EM image: cannot read s3://em/v/info.*"
                                               r"check the credentials"):
        location.exists("s3://em/v/info", "EM image")
