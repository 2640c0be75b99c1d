"""Charts for the pages, the run report and `connectome plot`: matplotlib figures (no pyplot
state, so safe in threads) drawn from the tables they list, written as PNG or SVG bytes (with
the plotted numbers in the file's description, when given) or a PNG data URI."""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

FORMATS = ("png", "svg")


def render(fig: Figure, fmt: str = "png", description: str | None = None) -> bytes:
    """The figure as PNG or SVG bytes; `description` (e.g. the plotted table as JSON) goes in
    the file's metadata (PNG text chunk `Description`, SVG `dc:description`)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be png or svg, got {fmt!r}")
    buf = io.BytesIO()
    metadata = {"Description": description} if description is not None else None
    fig.savefig(buf, format=fmt, dpi=110, bbox_inches="tight", metadata=metadata)
    return buf.getvalue()


def data_uri(fig: Figure) -> str:
    return "data:image/png;base64," + base64.b64encode(render(fig)).decode()


def heatmap(matrix: pd.DataFrame, title: str) -> Figure:
    """Synapses type × type, log colour; empty cells blank."""
    n = max(len(matrix.index), 1)
    side = min(3 + 0.16 * n, 14)
    fig = Figure(figsize=(side + 1.5, side))
    ax = fig.add_subplot()
    values = matrix.to_numpy(np.float64)
    if values.size and values.max() > 0:
        shown = np.ma.masked_less_equal(values, 0)
        image = ax.imshow(shown, cmap="viridis", norm=LogNorm(vmin=1, vmax=values.max()),
                          aspect="auto", interpolation="nearest")
        fig.colorbar(image, ax=ax, label="synapses (log)")
    ax.set_xticks(range(len(matrix.columns)), [str(c) for c in matrix.columns],
                  rotation=90, fontsize=6)
    ax.set_yticks(range(len(matrix.index)), [str(i) for i in matrix.index], fontsize=6)
    ax.set_xlabel("postsynaptic type")
    ax.set_ylabel("presynaptic type")
    ax.set_title(title)
    return fig


def bars(labels: list[str], values: list[float], title: str, xlabel: str) -> Figure:
    """Horizontal bars, first label on top."""
    fig = Figure(figsize=(6, 0.8 + 0.28 * max(len(labels), 1)))
    ax = fig.add_subplot()
    ax.barh(range(len(labels)), values, color="#4c72b0")
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return fig


def counts_histogram(values: pd.Series, counts: pd.Series, title: str, xlabel: str,
                     max_bins: int = 60) -> Figure:
    """An already counted histogram (`counts` at positive integer `values`) as one filled
    outline, log count axis: one bin per value over a short range, else `max_bins` log-spaced
    bins (log value axis). One artist, however many values (a bar per value took seconds)."""
    fig = Figure(figsize=(6, 3.2))
    ax = fig.add_subplot()
    v, c = values.to_numpy(np.float64), counts.to_numpy(np.float64)
    if len(v):
        lo, hi = float(v.min()), float(v.max())
        if hi - lo < max_bins:
            edges = np.arange(lo - 0.5, hi + 1.5)
        else:
            edges = np.geomspace(max(lo - 0.5, 0.5), hi + 0.5, max_bins + 1)
            ax.set_xscale("log")
        height, _ = np.histogram(v, bins=edges, weights=c)
        floor = 0.8  # below one connection: empty bins draw nothing on the log axis
        ax.stairs(np.maximum(height, floor), edges, baseline=floor, fill=True,
                  color="#55a868")
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.set_title(title)
    return fig


def histogram(values: np.ndarray, title: str, xlabel: str, bins: int = 40, *,
              log_x: bool = False, log_y: bool = False,
              weights: np.ndarray | None = None) -> Figure:
    """A histogram of raw values (each counted `weights` times, when given); `log_x`: log-spaced
    bins over positive values."""
    fig = Figure(figsize=(6, 3.2))
    ax = fig.add_subplot()
    values = np.asarray(values, float)
    if len(values):
        edges: int | list[float] = bins
        if log_x and values.min() > 0:
            edges = np.geomspace(values.min(), values.max() * 1.0001, bins).tolist()
            ax.set_xscale("log")
        ax.hist(values, bins=edges, weights=weights, color="#8172b2")
        if log_y:
            ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.set_title(title)
    return fig
