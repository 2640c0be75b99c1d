"""The dataset page's pictures at FlyWire size without Neo4j: tables shaped like the page's
reads for ~139k neurons and 3.7M connections (60 types, heavy-tailed synapses per connection,
Poisson degrees counted per degree, as the version's summary keeps them), drawn by
`pages.dataset_figures` (ours: the first view's drawing) beside the same pictures with a bar
per distinct weight (the drawing before, the baseline). Prints medians, the ratio and the load
average.

    uv run python bench/pages/figures.py [--neurons 139000 --edges 3700000 --repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np
import pandas as pd

from bench.common import ratio
from connectome_query.graphql_api.web import page_data, pages
from connectome_query.plotting import charts as plots


def degrees(per_neuron: np.ndarray) -> pd.DataFrame:
    counted = pd.Series(per_neuron).value_counts().sort_index()
    return pd.DataFrame({"degree": counted.index, "neurons": counted.to_numpy()})


def tables(neurons: int, edges: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    types = [f"T{i}" for i in range(60)]
    pairs = pd.DataFrame([(a, b, int(rng.integers(1, 10**5))) for a in types for b in types
                          if rng.random() < 0.5], columns=["preType", "postType", "synapses"])
    weight = rng.zipf(1.8, edges)
    counted = pd.Series(weight[weight < 5000]).value_counts().sort_index()
    mean = edges / neurons
    return {"counts": {}, "matrix": page_data.type_matrix(pairs),
            "weights": pd.DataFrame({"weight": counted.index, "connections": counted.to_numpy()}),
            "outDegrees": degrees(rng.poisson(mean, neurons)),
            "inDegrees": degrees(rng.poisson(mean, neurons)),
            "top": None, "versions": []}


def bar_per_value(values: pd.Series, counts: pd.Series, title: str, xlabel: str) -> Any:
    """The baseline: the counted histogram as one bar per distinct value."""
    fig = plots.Figure(figsize=(6, 3.2))
    ax = fig.add_subplot()
    ax.bar(values.to_numpy(), counts.to_numpy(), width=0.9, color="#55a868")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return fig


def timed(fn: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--neurons", type=int, default=139_000)
    p.add_argument("--edges", type=int, default=3_700_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    numbers = tables(a.neurons, a.edges, a.seed)
    load = os.getloadavg()[0]
    ours = timed(lambda: pages.dataset_figures("bench", numbers), a.repeats)
    original = plots.counts_histogram
    plots.counts_histogram = bar_per_value  # type: ignore[assignment]
    try:
        base = timed(lambda: pages.dataset_figures("bench", numbers), a.repeats)
    finally:
        plots.counts_histogram = original
    print(f"dataset page pictures, {a.neurons:,} neurons, {a.edges:,} connections "
          f"({len(numbers['weights']):,} distinct weights): ours {ours:.2f} s, a bar per "
          f"weight {base:.2f} s, ratio {ratio(ours, base)}; load average (1 min) "
          f"{load:.1f} at start, {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
