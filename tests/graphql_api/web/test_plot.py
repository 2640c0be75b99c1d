"""`connectome plot`: the pictures of the pages as PNG or SVG files; the table each file
carries (its description) and the drawn artists equal a pandas reading of the raw files."""

from __future__ import annotations

import io
import re
from html import unescape
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from connectome_query.cli.main import app
from connectome_query.graphql_api.web import pictures
from tests.support.web_data import WEB_PUBLIC, connections

pytestmark = [pytest.mark.neo4j]


def _plot(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["plot", *args])
    return result.exit_code, result.output + ("" if result.exception is None or isinstance(
        result.exception, SystemExit) else repr(result.exception))


def _table(path: Path) -> pd.DataFrame:
    """The plotted table a written file carries."""
    if path.suffix == ".png":
        text = Image.open(path).text["Description"]  # type: ignore[attr-defined]
    else:
        found = re.search(r"<dc:description>(.*?)</dc:description>", path.read_text(), re.S)
        assert found, "no description in the SVG"
        text = unescape(found.group(1))
    return pd.read_json(io.StringIO(text), orient="split")


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_heatmap_file_equals_the_pandas_pivot(web_files: dict[str, Path], tmp_path: Path,
                                              suffix: str) -> None:
    conn = connections(web_files[WEB_PUBLIC])
    path = tmp_path / f"heatmap{suffix}"
    code, output = _plot(WEB_PUBLIC, "heatmap", "--out", str(path))
    assert code == 0, output
    matrix = _table(path)
    pivot = conn.pivot_table(index="preType", columns="postType", values="weight",
                             aggfunc="sum", fill_value=0)
    expected = pivot.reindex(index=matrix.index, columns=matrix.columns, fill_value=0)
    assert sorted(matrix.index) == sorted(set(conn["preType"]) | set(conn["postType"]))
    np.testing.assert_array_equal(matrix.to_numpy(), expected.to_numpy())
    if suffix == ".png":
        assert Image.open(path).size[0] > 100
    else:
        assert path.read_text().lstrip().startswith("<?xml")


def test_drawn_heatmap_and_bars_equal_their_tables(web_files: dict[str, Path]) -> None:
    conn = connections(web_files[WEB_PUBLIC])
    matrix = conn.pivot_table(index="preType", columns="postType", values="weight",
                              aggfunc="sum", fill_value=0)
    fig, _ = pictures.dataset_picture("heatmap", "x", {"matrix": matrix})
    drawn = fig.axes[0].images[0].get_array()
    np.testing.assert_array_equal(np.ma.filled(drawn, 0), matrix.to_numpy())
    types = pd.DataFrame({"type": ["a", "b"], "synapses": [7, 3], "partners": [2, 1]})
    fig, _ = pictures.neuron_picture("upstream", {"upstreamTypes": types})
    assert [p.get_width() for p in fig.axes[0].patches] == [7, 3]


def test_partner_bars_and_degrees_files(web_files: dict[str, Path], tmp_path: Path) -> None:
    folder = web_files[WEB_PUBLIC]
    conn = connections(folder)
    body = int(conn.groupby("bodyId_pre")["weight"].sum().idxmax())
    path = tmp_path / "down.png"
    code, output = _plot(WEB_PUBLIC, "downstream", "--neuron", str(body), "--out", str(path))
    assert code == 0, output
    bars = _table(path)
    rows = conn[conn["bodyId_pre"] == body].groupby("postType")["weight"].sum()
    expected = rows.sort_values(ascending=False, kind="stable").head(pictures.BARS)
    assert dict(zip(bars["type"], bars["synapses"], strict=True)) == \
        {t: int(w) for t, w in expected.items()}
    path = tmp_path / "in.svg"
    code, output = _plot(WEB_PUBLIC, "in-degree", "--out", str(path))
    assert code == 0, output
    neurons = pd.read_csv(folder / "neurons.csv")
    degree = conn.groupby("bodyId_post").size().reindex(neurons["bodyId"], fill_value=0)
    counted = degree.value_counts().sort_index()
    got = _table(path)
    assert list(zip(got["degree"], got["neurons"], strict=True)) == \
        list(zip(counted.index, counted.tolist(), strict=True))


def test_bad_requests_are_named(web_files: dict[str, Path], tmp_path: Path) -> None:
    code, output = _plot(WEB_PUBLIC, "heatmap", "--out", str(tmp_path / "x.jpg"))
    assert code == 2 and ".png or .svg" in output
    code, output = _plot(WEB_PUBLIC, "upstream", "--out", str(tmp_path / "x.png"))
    assert code == 2 and "--neuron" in output
    code, output = _plot("t_web_no_such", "heatmap", "--out", str(tmp_path / "x.png"))
    assert code == 1 and "t_web_no_such" in output
    code, output = _plot(WEB_PUBLIC, "upstream", "--neuron", "1", "--out",
                         str(tmp_path / "x.png"))
    assert code == 1 and "no neuron 1" in output
