"""A small raw volume with its truth, made once per session (in memory)."""

from __future__ import annotations

import pytest

from tests.support.raw_volumes import RawVolume, make_raw_volume


@pytest.fixture(scope="session")
def raw_volume() -> RawVolume:
    return make_raw_volume((16, 192, 192), seed=5)
