"""Synthetic connectomes with FlyWire-like statistics, for scale tests and benchmarks.

Writes files ingest reads: neuPrint-style `neurons.parquet` and `connections.parquet` (with
roiInfo) and optionally a CAVE-style `synapses.parquet`, written in chunks so tens of millions of
rows need little memory; its per-pair and per-ROI counts equal the connections' weights and
roiInfo. Cell types have Zipf sizes and preferred target types, degrees and weights are
log-normal (heavy-tailed), chandelier types synapse on axon initial segments. A seed gives
identical files.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROIS: tuple[str, ...] = (
    "AL_L", "AL_R", "AME_L", "AME_R", "AOTU_L", "AOTU_R", "ATL_L", "ATL_R", "AVLP_L", "AVLP_R",
    "BU_L", "BU_R", "CAN_L", "CAN_R", "CRE_L", "CRE_R", "EB", "EPA_L", "EPA_R", "FB", "FLA_L",
    "FLA_R", "GNG", "GOR_L", "GOR_R", "IB_L", "IB_R", "ICL_L", "ICL_R", "IPS_L", "IPS_R", "LAL_L",
    "LAL_R", "LA_L", "LA_R", "LH_L", "LH_R", "LOP_L", "LOP_R", "LO_L", "LO_R", "MB_CA_L",
    "MB_CA_R", "MB_ML_L", "MB_ML_R", "MB_VL_L", "MB_VL_R", "ME_L", "ME_R", "NO", "PB", "PLP_L",
    "PLP_R", "PRW", "PVLP_L", "PVLP_R", "SAD", "SCL_L", "SCL_R", "SIP_L", "SIP_R", "SLP_L",
    "SLP_R", "SMP_L", "SMP_R", "SPS_L", "SPS_R", "VES_L", "VES_R", "WED_L", "WED_R",
)
"""FlyWire-style neuropil names."""

CELL_CLASSES: tuple[str, ...] = (
    "central", "optic", "visual_projection", "visual_centrifugal", "sensory", "ascending",
    "descending", "motor", "endocrine", "chandelier",
)
CLASS_WEIGHTS = np.array([0.40, 0.30, 0.08, 0.03, 0.08, 0.03, 0.04, 0.02, 0.01, 0.01])
NEUROTRANSMITTERS: tuple[str, ...] = ("acetylcholine", "glutamate", "gaba", "dopamine",
                                      "serotonin", "octopamine")
NT_WEIGHTS = np.array([0.55, 0.2, 0.18, 0.03, 0.02, 0.02])
STATUSES: tuple[str, ...] = ("Traced", "Roughly traced", "Orphan")
STATUS_WEIGHTS = np.array([0.9, 0.08, 0.02])
COMPARTMENTS_DRAWN: tuple[str, ...] = ("dendrite", "soma", "axon", "ais")
COMPARTMENT_WEIGHTS = np.array([0.82, 0.08, 0.09, 0.01])

ID_RANGES: dict[str, tuple[int, int]] = {
    "js": (10**14, 2**53),
    "flywire": (720_575_940_000_000_000, 720_575_941_000_000_000),
    "microns": (864_691_135_000_000_000, 864_691_136_000_000_000),
}
"""Where body ids are drawn: below 2^53 (exact in JavaScript clients, the default), or where
FlyWire (~7.2e17) and MICrONS (~8.6e17) root ids lie, above 2^56 (the offline importer's integer
id limit) and far above 2^53 (exact float64 integers)."""

TYPE_PREFERENCES = 8
"""Preferred target types per type."""
PREFERRED_SHARE = 0.8
"""Fraction of a type's connections that go to its preferred target types."""
BRAIN_NM = np.array([900_000.0, 450_000.0, 300_000.0])
"""Bounding box (nm) for ROI centres and somata."""


@dataclass(frozen=True)
class SynthReport:
    """What was written."""

    out_dir: Path
    neurons: int
    edges: int
    synapses: int
    types: int


@dataclass
class SynthGraph:
    """The generated connectome in arrays (indices refer to the neuron arrays)."""

    body_ids: np.ndarray
    neuron_type: np.ndarray
    """Type index per neuron."""
    type_names: list[str]
    type_class: np.ndarray
    type_nt: np.ndarray
    type_in_roi: np.ndarray
    type_out_roi: np.ndarray
    soma: np.ndarray
    status: np.ndarray
    side: np.ndarray
    pre: np.ndarray
    """Presynaptic neuron index per edge (edges sorted by pre, then post)."""
    post: np.ndarray
    weight: np.ndarray
    roi_a: np.ndarray
    """The pre type's output ROI per edge."""
    roi_b: np.ndarray
    """The post type's input ROI per edge."""
    count_a: np.ndarray
    """How many of the edge's synapses lie in roi_a (the rest lie in roi_b)."""
    roi_centres: np.ndarray


def _default_types(neurons: int) -> int:
    return int(max(1, min(neurons, round(neurons / 17))))


def _check(neurons: int, edges: int, synapses: int | None, types: int) -> None:
    if neurons < 2:
        raise ValueError("--neurons must be at least 2")
    if edges < 1:
        raise ValueError("--edges must be at least 1")
    if edges > neurons * (neurons - 1) // 4:
        raise ValueError(f"--edges {edges} is too dense for {neurons} neurons (at most "
                         f"{neurons * (neurons - 1) // 4}: a quarter of all ordered pairs)")
    if synapses is not None and synapses < edges:
        raise ValueError(f"--synapses {synapses} is below --edges {edges}: every connection "
                         "needs at least one synapse")
    if not 1 <= types <= neurons:
        raise ValueError("--types must be between 1 and --neurons")


def _weighted_pick(rng: np.random.Generator, cum: np.ndarray, lo: np.ndarray,
                   hi: np.ndarray) -> np.ndarray:
    """For each row, an index in [lo, hi) drawn in proportion to the increments of `cum`.

    `cum` is the inclusive cumulative sum of weights; the draw is a searchsorted on it.
    """
    base = np.where(lo > 0, cum[np.maximum(lo - 1, 0)], 0.0)
    top = cum[hi - 1]
    u = base + rng.random(len(lo)) * (top - base)
    idx = np.searchsorted(cum, u, side="right")
    return np.clip(idx, lo, hi - 1)


def _sorted_unique(a: np.ndarray) -> np.ndarray:
    """Sorted distinct values (sort-based: faster than numpy 2's hash `unique` on int64)."""
    a = np.sort(a)
    return a[np.concatenate([[True], a[1:] != a[:-1]])] if len(a) else a


def _sorted_member(values: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    """Whether each value occurs in `sorted_keys` (binary search)."""
    if not len(sorted_keys):
        return np.zeros(len(values), dtype=bool)
    pos = np.searchsorted(sorted_keys, values).clip(0, len(sorted_keys) - 1)
    return sorted_keys[pos] == values


def generate(neurons: int, edges: int, *, synapses: int | None = None, seed: int = 0,
             types: int | None = None, id_range: str = "js") -> SynthGraph:
    """Draw a connectome in memory (the neuron and edge tables; synapses come later)."""
    n_types = types if types is not None else _default_types(neurons)
    _check(neurons, edges, synapses, n_types)
    if id_range not in ID_RANGES:
        raise ValueError(f"--id-range must be one of {sorted(ID_RANGES)}, got {id_range!r}")
    low, high = ID_RANGES[id_range]
    rng = np.random.Generator(np.random.PCG64(seed))

    # Body ids: distinct 64-bit ids in the chosen range.
    ids = _sorted_unique(rng.integers(low, high, size=neurons + neurons // 10 + 16))
    ids = ids[rng.permutation(len(ids))[:neurons]]
    while len(ids) < neurons:  # practically never: collisions in a range of 9e15 or more
        extra = rng.integers(low, high, size=neurons)
        ids = _sorted_unique(np.concatenate([ids, extra]))[:neurons]

    # Types: Zipf-like sizes, every type has at least one neuron.
    type_sizes = np.ones(n_types, dtype=np.int64)
    pop = 1.0 / np.arange(1, n_types + 1) ** 0.9
    type_sizes += rng.multinomial(neurons - n_types, pop / pop.sum())
    neuron_type = np.repeat(np.arange(n_types), type_sizes)  # sorted by type
    type_class = rng.choice(len(CELL_CLASSES), size=n_types, p=CLASS_WEIGHTS)
    type_nt = rng.choice(len(NEUROTRANSMITTERS), size=n_types, p=NT_WEIGHTS)
    type_in_roi = rng.integers(0, len(ROIS), size=n_types)
    type_out_roi = np.where(rng.random(n_types) < 0.5, type_in_roi,
                            rng.integers(0, len(ROIS), size=n_types))
    type_names = [f"{CELL_CLASSES[c][:3].upper()}{t:05d}" if CELL_CLASSES[c] != "chandelier"
                  else f"ChC{t:05d}" for t, c in enumerate(type_class)]

    roi_centres = rng.random((len(ROIS), 3)) * BRAIN_NM
    side = rng.integers(0, 2, size=neurons)
    soma = roi_centres[type_in_roi[neuron_type]] + rng.normal(0, 20_000, size=(neurons, 3))
    status = rng.choice(len(STATUSES), size=neurons, p=STATUS_WEIGHTS)

    # Heavy-tailed propensities (log-normal), per neuron, out and in.
    out_prop = rng.lognormal(0.0, 1.2, size=neurons)
    in_prop = rng.lognormal(0.0, 1.2, size=neurons)
    out_cum = np.cumsum(out_prop)
    in_cum = np.cumsum(in_prop)
    starts = np.concatenate([[0], np.cumsum(type_sizes)])
    type_in_mass = np.add.reduceat(in_prop, starts[:-1])

    # Preferred target types: popular types (by total in-propensity) are preferred more often.
    k = min(TYPE_PREFERENCES, n_types)
    tp = type_in_mass / type_in_mass.sum()
    pref = np.stack([rng.choice(n_types, size=k, replace=False, p=tp) for _ in range(n_types)])
    pref_w = rng.dirichlet(np.full(k, 0.7), size=n_types)
    pref_cum = np.cumsum(pref_w, axis=1)

    everyone = (np.zeros(1, dtype=np.int64), np.full(1, neurons, dtype=np.int64))
    keys = np.empty(0, dtype=np.int64)
    for attempt in range(200):
        need = edges - len(keys)
        if need <= 0:
            break
        draw = int(need * 1.3) + 64
        pre = _weighted_pick(rng, out_cum, np.broadcast_to(everyone[0], draw),
                             np.broadcast_to(everyone[1], draw))
        pt = neuron_type[pre]
        targeted = rng.random(draw) < (PREFERRED_SHARE if attempt < 20 else 0.0)
        slot = (rng.random(draw)[:, None] > pref_cum[pt]).sum(axis=1).clip(0, k - 1)
        tt = pref[pt, slot]
        lo = np.where(targeted, starts[tt], 0)
        hi = np.where(targeted, starts[tt + 1], neurons)
        if attempt < 40:
            post = _weighted_pick(rng, in_cum, lo, hi)
        else:  # dense corner: fall back to uniform targets so the loop always ends
            post = rng.integers(0, neurons, size=draw)
        cand = pre.astype(np.int64) * neurons + post
        cand = _sorted_unique(cand[pre != post])
        new = cand[~_sorted_member(cand, keys)]
        if len(new) > need:
            new = np.sort(rng.choice(new, size=need, replace=False))
        keys = np.sort(np.concatenate([keys, new]))
    else:
        raise RuntimeError("could not draw enough distinct connections")
    pre_idx = keys // neurons
    post_idx = keys % neurons

    # Weights: log-normal with a per-type scale; rescaled to the synapse total when given.
    type_mu = rng.normal(1.3, 0.5, size=n_types)
    raw = rng.lognormal(type_mu[neuron_type[pre_idx]], 1.0)
    weight = 1 + np.floor(raw).astype(np.int64)
    if synapses is not None:
        weight = _rescale(weight, synapses)
    roi_a = type_out_roi[neuron_type[pre_idx]]
    roi_b = type_in_roi[neuron_type[post_idx]]
    count_a = rng.binomial(weight, 0.6)
    count_a = np.where(roi_a == roi_b, weight, count_a)
    return SynthGraph(
        body_ids=ids, neuron_type=neuron_type, type_names=type_names, type_class=type_class,
        type_nt=type_nt, type_in_roi=type_in_roi, type_out_roi=type_out_roi, soma=soma,
        status=status, side=side, pre=pre_idx, post=post_idx, weight=weight, roi_a=roi_a,
        roi_b=roi_b, count_a=count_a, roi_centres=roi_centres,
    )


def _rescale(weight: np.ndarray, total: int) -> np.ndarray:
    """Weights >= 1 summing to `total`, proportional to `weight - 1` above the floor of one."""
    extra = total - len(weight)
    share = (weight - 1).astype(np.float64)
    if share.sum() == 0:
        share = np.ones(len(weight))
    exact = share / share.sum() * extra
    base = np.floor(exact).astype(np.int64)
    short = extra - int(base.sum())
    if short:
        order = np.argsort(-(exact - base), kind="stable")[:short]
        base[order] += 1
    return 1 + base


def roi_info(g: SynthGraph) -> list[str]:
    """neuPrint roiInfo JSON per edge: synapse counts per ROI (pre = post = count)."""
    names = ROIS
    out = []
    for a, b, ca, w in zip(g.roi_a.tolist(), g.roi_b.tolist(), g.count_a.tolist(),
                           g.weight.tolist(), strict=True):
        cb = w - ca
        if a == b or cb == 0:
            out.append(f'{{"{names[a]}": {{"pre": {w}, "post": {w}}}}}')
        elif ca == 0:
            out.append(f'{{"{names[b]}": {{"pre": {w}, "post": {w}}}}}')
        else:
            out.append(f'{{"{names[a]}": {{"pre": {ca}, "post": {ca}}}, '
                       f'"{names[b]}": {{"pre": {cb}, "post": {cb}}}}}')
    return out


def neuron_table(g: SynthGraph) -> pa.Table:
    """The neuPrint-style neurons table."""
    t = g.neuron_type
    types = np.array(g.type_names, dtype=object)[t]
    sides = np.array(["L", "R"], dtype=object)[g.side]
    return pa.table({
        "bodyId": pa.array(g.body_ids, pa.int64()),
        "type": pa.array(types, pa.string()),
        "instance": pa.array(types + "_" + sides, pa.string()),
        "cellClass": pa.array(np.array(CELL_CLASSES, dtype=object)[g.type_class[t]], pa.string()),
        "status": pa.array(np.array(STATUSES, dtype=object)[g.status], pa.string()),
        "predictedNt": pa.array(np.array(NEUROTRANSMITTERS, dtype=object)[g.type_nt[t]],
                                pa.string()),
        "somaX": pa.array(np.round(g.soma[:, 0], 1)),
        "somaY": pa.array(np.round(g.soma[:, 1], 1)),
        "somaZ": pa.array(np.round(g.soma[:, 2], 1)),
    })


def connection_table(g: SynthGraph) -> pa.Table:
    """The neuPrint-style connections table."""
    return pa.table({
        "bodyId_pre": pa.array(g.body_ids[g.pre], pa.int64()),
        "bodyId_post": pa.array(g.body_ids[g.post], pa.int64()),
        "weight": pa.array(g.weight, pa.int64()),
        "roiInfo": pa.array(roi_info(g), pa.string()),
    })


SYNAPSE_SCHEMA = pa.schema([
    ("id", pa.int64()), ("pre_pt_root_id", pa.int64()), ("post_pt_root_id", pa.int64()),
    ("ctr_pt_position_x", pa.float32()), ("ctr_pt_position_y", pa.float32()),
    ("ctr_pt_position_z", pa.float32()), ("size", pa.int32()), ("neuropil", pa.string()),
    ("post_compartment", pa.string()),
])


def synapse_chunks(g: SynthGraph, seed: int, chunk_edges: int = 250_000) -> Iterator[pa.Table]:
    """The synapse table, a block of edges at a time (a separate stream, seeded from `seed`)."""
    rng = np.random.Generator(np.random.PCG64([seed, 1]))
    roi_names = pa.array(ROIS, pa.string())
    comp_names = pa.array(COMPARTMENTS_DRAWN, pa.string())
    chandelier = CELL_CLASSES.index("chandelier")
    next_id = 1
    for start in range(0, len(g.pre), chunk_edges):
        sl = slice(start, start + chunk_edges)
        w = g.weight[sl]
        e = np.repeat(np.arange(len(w)), w)
        offsets = np.concatenate([[0], np.cumsum(w)[:-1]])
        rank = np.arange(len(e)) - offsets[e]
        roi = np.where(rank < g.count_a[sl][e], g.roi_a[sl][e], g.roi_b[sl][e])
        xyz = g.roi_centres[roi] + rng.normal(0, 15_000, size=(len(e), 3))
        pre_type = g.neuron_type[g.pre[sl][e]]
        comp = rng.choice(len(COMPARTMENTS_DRAWN), size=len(e), p=COMPARTMENT_WEIGHTS)
        comp = np.where(g.type_class[pre_type] == chandelier, COMPARTMENTS_DRAWN.index("ais"),
                        comp)
        n = len(e)
        yield pa.table({
            "id": pa.array(np.arange(next_id, next_id + n, dtype=np.int64)),
            "pre_pt_root_id": pa.array(g.body_ids[g.pre[sl][e]], pa.int64()),
            "post_pt_root_id": pa.array(g.body_ids[g.post[sl][e]], pa.int64()),
            "ctr_pt_position_x": pa.array(xyz[:, 0].astype(np.float32)),
            "ctr_pt_position_y": pa.array(xyz[:, 1].astype(np.float32)),
            "ctr_pt_position_z": pa.array(xyz[:, 2].astype(np.float32)),
            "size": pa.array(np.minimum(rng.lognormal(5.5, 0.8, size=n), 2**31 - 1)
                             .astype(np.int32)),
            "neuropil": roi_names.take(pa.array(roi)),
            "post_compartment": comp_names.take(pa.array(comp)),
        }, schema=SYNAPSE_SCHEMA)
        next_id += n


def synth_connectome(out_dir: Path, *, neurons: int, edges: int, synapses: int | None = None,
                     seed: int = 0, types: int | None = None,
                     id_range: str = "js") -> SynthReport:
    """Generate and write neurons/connections (and synapses) Parquet files into `out_dir`."""
    g = generate(neurons, edges, synapses=synapses, seed=seed, types=types, id_range=id_range)
    out_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(neuron_table(g), out_dir / "neurons.parquet")
    pq.write_table(connection_table(g), out_dir / "connections.parquet")
    written = 0
    if synapses is not None:
        path = out_dir / "synapses.parquet"
        tmp = path.with_suffix(".parquet.partial")
        with pq.ParquetWriter(tmp, SYNAPSE_SCHEMA) as writer:
            for chunk in synapse_chunks(g, seed):
                writer.write_table(chunk, row_group_size=1_000_000)
                written += chunk.num_rows
        tmp.replace(path)
    info = {"generator": "connectome synth-connectome", "seed": seed, "idRange": id_range,
            "neurons": neurons,
            "edges": len(g.pre), "synapses": written, "types": len(g.type_names)}
    (out_dir / "synth.json").write_text(json.dumps(info, indent=2) + "\n")
    return SynthReport(out_dir=out_dir, neurons=neurons, edges=len(g.pre),
                       synapses=written, types=len(g.type_names))
