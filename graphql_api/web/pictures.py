"""Each picture of the dataset and neuron pages by name, with the table it plots: the pages
draw them from here and `connectome plot` writes the same ones to PNG or SVG (the table in
the file's description), so a picture for a paper is the one on the page."""

from __future__ import annotations

from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from connectome_query.plotting import charts

DATASET = ("heatmap", "weights", "out-degree", "in-degree")
"""The dataset page's pictures, in page order."""
NEURON = ("upstream", "downstream", "compartments")
"""The neuron page's pictures: partners by type either way, inputs by compartment."""
BARS = 25
"""Partner bars show this many types (most synapses first); the page's table lists all."""


def dataset_picture(what: str, name: str, numbers: dict[str, Any],
                    ) -> tuple[Figure, pd.DataFrame]:
    """Picture `what` (one of DATASET) of the dataset page and the table it plots."""
    if what == "heatmap":
        matrix: pd.DataFrame = numbers["matrix"]
        return charts.heatmap(matrix, f"{name}: synapses, type × type"), matrix
    if what == "weights":
        w = numbers["weights"]
        return charts.counts_histogram(w["weight"], w["connections"], "Synapses per connection",
                                       "synapses"), w
    if what in ("out-degree", "in-degree"):
        side = "outDegrees" if what == "out-degree" else "inDegrees"
        d = numbers[side]
        label = "postsynaptic partners" if what == "out-degree" else "presynaptic partners"
        return charts.histogram(d["degree"].to_numpy(), what.capitalize(), label, log_y=True,
                                weights=d["neurons"].to_numpy()), d
    raise ValueError(f"no dataset picture {what!r}; one of {', '.join(DATASET)}")


def neuron_picture(what: str, numbers: dict[str, Any]) -> tuple[Figure, pd.DataFrame]:
    """Picture `what` (one of NEURON) of a neuron page and the table it plots."""
    if what in ("upstream", "downstream"):
        types = numbers[f"{what}Types"].head(BARS)[["type", "synapses"]]
        return charts.bars([str(t) for t in types["type"]], list(types["synapses"]),
                           f"{what} partners by type", "synapses"), types
    if what == "compartments":
        comp = numbers["inputCompartments"]
        return charts.bars([str(c) for c in comp["compartment"]], list(comp["synapses"]),
                           "inputs by compartment", "synapses"), comp
    raise ValueError(f"no neuron picture {what!r}; one of {', '.join(NEURON)}")


def table_json(table: pd.DataFrame) -> str:
    """The plotted table as JSON (pandas' `split` layout: index, columns, data)."""
    return str(table.to_json(orient="split"))
