"""The wheel installs one top-level package, `connectome_query`, that works without the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    uv = os.environ.get("UV") or shutil.which("uv")  # `uv run` names itself in UV
    if uv is None:
        pytest.skip("needs uv to build the wheel")
    subprocess.run([uv, "build", "--wheel", "--out-dir", str(out), str(ROOT)], check=True,
                   capture_output=True)
    return next(out.glob("*.whl"))


def test_one_top_level_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"connectome_query"}
    for data in ("schema/migrations/0001_uniqueness.cypher", "schema/schema.graphql",
                 "reconstruct/models/affinity_unet.npz",
                 "reconstruct/models/affinity_unet_lean.npz"):
        assert f"connectome_query/{data}" in names, data


def test_installed_package_runs_without_the_checkout(wheel: Path, tmp_path: Path) -> None:
    """Unpacked alone, with the environment's libraries but not the checkout on the path, the
    package finds its migrations and builds its command."""
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(tmp_path / "site")
    site = sysconfig.get_paths()["purelib"]  # plain path: its .pth files (the checkout) are skipped
    code = (
        "import sys; "
        f"sys.path[:0] = [{str(tmp_path / 'site')!r}, {site!r}]; "
        "import connectome_query.schema.migrate as m; "
        "from connectome_query.cli.main import app; "
        "assert m.__file__.startswith(sys.path[0]), m.__file__; "
        "print(len(m.load_migrations()))"
    )
    done = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == len(list((ROOT / "schema" / "migrations").glob("*.cypher")))
