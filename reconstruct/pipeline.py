"""Orchestration: synthetic volumes to disk, and EM directory -> documented run directory.

This is the only module that combines I/O (`reconstruct.io`) with the algorithms. Large
volumes go through in z slabs: synthesis renders and writes slab by slab, prediction
reads slabs with a halo of sections. See RUN_DIR.md for the output contract.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cc3d
import numpy as np
import pandas as pd

from connectome_query.reconstruct import (
    affinity_net,
    boundary,
    io,
    metrics,
    segment,
    skeleton,
    synapses,
    synth,
    xp,
)
from connectome_query.reconstruct.errors import ReconstructError

CREATED_BY = "connectome-query"
# the affinity network shipped with the package (`connectome train-affinity-net` remakes it)
DEFAULT_NET = Path(__file__).parent / "models" / "affinity_unet.npz"
# seeds of the synthetic training volumes; evaluation volumes use small seeds
NET_TRAINING_SEED = 2_000_003
SLAB = 32
HALO = 4
# volumes of more sections than this are segmented slab by slab, this many at a time
# (at 1024 x 1024 in-plane, one slab's float32 affinities take 1.6 GB)
BLOCK_SECTIONS = 128
# a synapse is in the truth table when at least this many of its cleft voxels lie in the
# volume: a sliver of 1-3 voxels (a cleft cut by the volume edge, or one overdrawn by a
# neighbour's) cannot be told from a dark membrane fleck, nor its partners checked
MIN_TRUTH_CLEFT_VOXELS = 4

Tick = Callable[[str, float], None]


def _noop(_msg: str, _frac: float) -> None:
    return None


@contextmanager
def rich_progress(enabled: bool = True) -> Iterator[Tick]:
    """A rich progress bar driven by tick(message, fraction done)."""
    if not enabled:
        yield _noop
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description:<34}"), BarColumn(), TimeElapsedColumn(),
                  transient=False) as prog:
        task = prog.add_task("starting", total=1.0)

        def tick(msg: str, frac: float) -> None:
            prog.update(task, description=msg, completed=min(max(frac, 0.0), 1.0))

        yield tick


# ----------------------------------------------------------------------------- synthesis

def synthesize(out_dir: Path, cfg: synth.SynthConfig, tick: Tick = _noop) -> dict[str, Any]:
    """Write a synthetic EM directory (image + truth) slab by slab; returns volume.json."""
    out = Path(out_dir)
    (out / "truth" / "skeletons").mkdir(parents=True, exist_ok=True)
    plan = synth.make_plan(cfg)
    nz, ny, nx = cfg.shape_zyx
    vz, vy, vx = cfg.voxel_size_zyx
    vol = {"voxel_size_nm": [vx, vy, vz], "shape_zyx": [nz, ny, nx], "seed": cfg.seed,
           "preset": cfg.preset, "source": "synthetic", "created_by": CREATED_BY,
           "missing_sections": sorted(plan.missing),
           "shifted_sections": {str(k): list(v) for k, v in sorted(plan.shifts.items())}}
    attrs = {"voxel_size_nm_xyz": [vx, vy, vz]}
    img_st = io.create_zarr(out / "image.zarr", (nz, ny, nx), "uint8", attributes=attrs)
    seg_st = io.create_zarr(out / "truth" / "segmentation.zarr", (nz, ny, nx), "uint64",
                            attributes=attrs)
    comp_st = io.create_zarr(out / "truth" / "compartments.zarr", (nz, ny, nx), "uint8",
                             attributes=attrs)
    cleft_st = io.create_zarr(out / "truth" / "clefts.zarr", (nz, ny, nx), "uint64",
                              attributes=attrs)
    pre_st = io.create_precomputed(out / "truth" / "segmentation.precomputed", (nz, ny, nx),
                                   (vx, vy, vz))
    img_pc = io.create_precomputed(out / "image.precomputed", (nz, ny, nx), (vx, vy, vz),
                                   dtype="uint8", kind="image")
    n_lab = int(plan.stamp_label.max()) + 1 if len(plan.stamp_label) else 1
    sizes = np.zeros(n_lab, np.int64)
    stats = np.zeros((len(plan.synapses), 9))
    vs = np.array(cfg.voxel_size_zyx)
    st_vox = np.round(plan.stamps[:, :3] / vs).astype(np.int64)
    inside = np.all((st_vox >= 0) & (st_vox < np.array(cfg.shape_zyx)), axis=1)
    labels_at = np.zeros(len(plan.stamps), np.int64)
    for z0 in range(0, nz, SLAB):
        z1 = min(z0 + SLAB, nz)
        tick(f"synth sections {z0}-{z1}", z0 / nz)
        s = synth.render_slab(plan, z0, z1)
        img_st[z0:z1].write(s.image).result()
        seg_st[z0:z1].write(s.labels).result()
        comp_st[z0:z1].write(s.compartments).result()
        cleft_st[z0:z1].write(s.clefts).result()
        io.write_precomputed_block(pre_st, z0, s.labels)
        io.write_precomputed_block(img_pc, z0, s.image)
        sizes += np.bincount(s.labels.ravel().astype(np.int64), minlength=n_lab)[:n_lab]
        stats += s.cleft_stats
        sel = inside & (st_vox[:, 0] >= z0) & (st_vox[:, 0] < z1)
        v = st_vox[sel]
        labels_at[sel] = s.labels[v[:, 0] - z0, v[:, 1], v[:, 2]].astype(np.int64)
    tick("truth tables and skeletons", 0.95)
    nodes = synth.truth_skeleton_nodes(plan, labels_at)
    sk = pd.DataFrame(nodes)
    io.write_table(out / "truth" / "skeletons.parquet", sk)
    swc_type = {synth.COMP_SOMA: 1, synth.COMP_AXON: 2, synth.COMP_DENDRITE: 3,
                synth.COMP_AIS: 5, synth.COMP_NONE: 0}
    for sid, g in sk.groupby("segment_id"):
        ids = {n: i + 1 for i, n in enumerate(g["node_id"])}
        io.write_swc(out / "truth" / "skeletons" / f"{sid}.swc",
                     np.arange(1, len(g) + 1),
                     np.array([swc_type[int(c)] for c in g["compartment"]]),
                     g[["x", "y", "z"]].to_numpy(), g["radius"].to_numpy(),
                     np.array([ids.get(int(p), -1) for p in g["parent_id"]]))
    rows = []
    for nid in range(1, n_lab):
        if sizes[nid] == 0:
            continue
        c, _ = plan.soma[nid]
        cv = np.round(c / vs)
        ins = bool(np.all((cv >= 0) & (cv < np.array(cfg.shape_zyx))))
        rows.append((nid, int(sizes[nid]), c[2] if ins else None, c[1] if ins else None,
                     c[0] if ins else None, plan.neuron_class[nid]))
    io.write_table(out / "truth" / "segments.parquet",
                   pd.DataFrame(rows, columns=list(io.SEGMENT_COLUMNS)), io.SEGMENT_COLUMNS)
    srows = []
    for i in np.nonzero(stats[:, 0] >= MIN_TRUTH_CLEFT_VOXELS)[0]:
        n = stats[i, 0]
        comp = int(np.argmax(stats[i, 4:9]))
        srows.append((int(i + 1), int(plan.synapse_pre[i]), int(plan.synapse_post[i]),
                      stats[i, 3] / n, stats[i, 2] / n, stats[i, 1] / n, int(n), 1.0,
                      synth.COMP_NAMES[comp]))
    io.write_table(out / "truth" / "synapses.parquet",
                   pd.DataFrame(srows, columns=list(io.SYNAPSE_COLUMNS)), io.SYNAPSE_COLUMNS)
    io.write_json(out / "volume.json", vol)
    tick("done", 1.0)
    return vol


def synthesize_in_memory(cfg: synth.SynthConfig) -> synth.Slab:
    """Render a whole small volume in memory (training data)."""
    return synth.render(synth.make_plan(cfg))


# ------------------------------------------------------------------------------ reading

def read_volume_info(em_dir: Path) -> dict[str, Any]:
    """volume.json of an EM directory, validated."""
    em_dir = Path(em_dir)
    if not em_dir.is_dir():
        raise ReconstructError(f"EM directory {em_dir} does not exist")
    info = io.read_json(em_dir / "volume.json", "volume description")
    for key in ("voxel_size_nm", "shape_zyx"):
        if key not in info:
            raise ReconstructError(f"volume description: {em_dir / 'volume.json'} lacks {key!r}")
        v = info[key]
        if not (isinstance(v, list) and len(v) == 3 and all(
                isinstance(x, int | float) and x > 0 for x in v)):
            raise ReconstructError(f"volume description: {key!r} in {em_dir / 'volume.json'}"
                                   f" must be three positive numbers, got {v!r}")
    return info


def read_image(em_dir: Path, info: dict[str, Any]) -> np.ndarray:
    """The EM image (uint8, z, y, x), checked against volume.json."""
    path = Path(em_dir) / "image.zarr"
    st = io.open_zarr(path, "EM image")
    dtype = str(st.dtype.numpy_dtype)
    if dtype != "uint8":
        raise ReconstructError(f"EM image: {path} has dtype {dtype}, expected uint8")
    if list(st.shape) != list(info["shape_zyx"]):
        raise ReconstructError(f"EM image: {path} has shape {list(st.shape)}, but volume.json "
                               f"field 'shape_zyx' says {info['shape_zyx']}")
    return io.read_block(st, (slice(None),) * 3, path, "EM image")


def read_truth(em_dir: Path, shape: tuple[int, ...]) -> dict[str, Any] | None:
    """Ground truth of an EM directory if present (segmentation, tables), checked."""
    tdir = Path(em_dir) / "truth"
    if not tdir.exists():
        return None
    path = tdir / "segmentation.zarr"
    st = io.open_zarr(path, "ground truth")
    if tuple(st.shape) != tuple(shape):
        raise ReconstructError(f"ground truth: {path} has shape {list(st.shape)}, which does "
                               f"not match the EM image shape {list(shape)}")
    if str(st.dtype.numpy_dtype) not in ("uint64", "uint32"):
        raise ReconstructError(f"ground truth: {path} has dtype {st.dtype.numpy_dtype}, "
                               f"expected uint64")
    seg = io.read_block(st, (slice(None),) * 3, path, "ground truth")
    return {
        "segmentation": seg.astype(np.uint64),
        "segments": io.read_table(tdir / "segments.parquet", "ground truth",
                                  io.SEGMENT_COLUMNS),
        "synapses": io.read_table(tdir / "synapses.parquet", "ground truth",
                                  io.SYNAPSE_COLUMNS),
        "skeletons": io.read_table(tdir / "skeletons.parquet", "ground truth",
                                   {"segment_id": "", "node_id": "", "parent_id": "", "x": "",
                                    "y": "", "z": ""}),
    }


def open_affinities(path: Path, shape: tuple[int, ...]) -> Any:
    """Affinities made elsewhere, opened and checked: zarr (3, z, y, x), waterz layout,
    float in [0, 1] or uint8 (scaled by 1/255)."""
    st = io.open_zarr(path, "affinities")
    if tuple(st.shape) != (3, *shape):
        raise ReconstructError(f"affinities: {path} has shape {list(st.shape)}, expected "
                               f"{[3, *shape]} (channels z, y, x affinity to the -1 neighbour)")
    dtype = np.dtype(st.dtype.numpy_dtype)
    if dtype != np.uint8 and dtype.kind != "f":
        raise ReconstructError(f"affinities: {path} has dtype {dtype}, expected float32 "
                               f"or uint8")
    return st


def read_affinity_block(st: Any, path: Path, z0: int, z1: int) -> np.ndarray:
    """Sections z0..z1 of opened affinities as float32 in [0, 1]."""
    a = io.read_block(st, (slice(None), slice(z0, z1)), path, "affinities")
    if a.dtype == np.uint8:
        return np.multiply(a, np.float32(1 / 255), dtype=np.float32)
    a = a.astype(np.float32, copy=False)
    return np.clip(a, 0.0, 1.0, out=a)  # in place: a slab's copy less in memory


def read_affinities(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """All of the affinities made elsewhere (see `open_affinities`)."""
    return read_affinity_block(open_affinities(path, shape), path, 0, int(shape[0]))


class ZarrLabels:
    """A zarr label volume as the store of `segment.seeded_segmentation_blockwise`."""

    def __init__(self, path: Path, shape: tuple[int, ...], attributes: dict[str, Any]):
        self.path = Path(path)
        self.store = io.create_zarr(self.path, shape, "uint64", attributes=attributes)

    def write(self, z0: int, labels: np.ndarray) -> None:
        self.store[z0:z0 + labels.shape[0]].write(labels.astype(np.uint64, copy=False)).result()

    def read(self, z0: int, z1: int) -> np.ndarray:
        return io.read_block(self.store, slice(z0, z1), self.path, "segmentation")


def predict_affinities_to_zarr(net: affinity_net.AffinityNet, img: np.ndarray, path: Path,
                               sections: int, augment: bool, tick: Tick = _noop) -> None:
    """Affinities of `img` predicted `sections` at a time (each with the network's halo
    of sections around it, so the result equals one whole-volume prediction) into a zarr
    array (3, z, y, x) float32, never all in memory."""
    nz = img.shape[0]
    st = io.create_zarr(path, (3, *img.shape), "float32")
    hz = affinity_net.HALO[0]
    for z0 in range(0, nz, sections):
        z1 = min(z0 + sections, nz)
        tick(f"predicting affinities, sections {z0}-{z1}", 0.4 + 0.05 * z0 / nz)
        h0, h1 = max(z0 - hz, 0), min(z1 + hz, nz)
        a, _ = affinity_net.predict(net, img[h0:h1], augment=augment)
        st[:, z0:z1].write(a[:, z0 - h0:z1 - h0]).result()


# ------------------------------------------------------------------------------ training

def default_model(voxel_size_zyx: tuple[float, float, float], seed: int,
                  tick: Tick = _noop) -> boundary.AffinityModel:
    """Train on fresh synthetic volumes (clean + noisy; seeds never used for evaluation)."""
    imgs, labs, cls = [], [], []
    for k, preset in enumerate(("clean", "noisy", "clean")):
        tick(f"training data {k + 1}/3", 0.1 * k)
        s = synthesize_in_memory(synth.SynthConfig((48, 128, 128), voxel_size_zyx, preset,
                                                   seed=1_000_003 + 7919 * seed + k))
        imgs.append(s.image)
        labs.append(s.labels)
        cls.append(s.clefts != 0)
    tick("training classifier", 0.4)
    return boundary.train(imgs, labs, cls, voxel_size_zyx, seed=seed,
                          trained_on=f"synthetic clean+noisy, seeds from {seed}")


def net_training_volumes(n_volumes: int, voxel_size_zyx: tuple[float, float, float],
                         shape_zyx: tuple[int, int, int] = (48, 128, 128),
                         first_seed: int = NET_TRAINING_SEED
                         ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Synthetic (image, labels, cleft mask) volumes for the affinity network, clean and
    noisy in turn, with seeds far from the ones tests and benchmarks evaluate on."""
    out = []
    for k in range(n_volumes):
        s = synthesize_in_memory(synth.SynthConfig(shape_zyx, voxel_size_zyx,
                                                   ("clean", "noisy")[k % 2],
                                                   seed=first_seed + k))
        out.append((s.image, s.labels, s.clefts != 0))
    return out


def train_from_dirs(em_dirs: list[Path], seed: int = 0) -> boundary.AffinityModel:
    """Train on EM directories that carry ground truth."""
    imgs, labs, cls = [], [], []
    vs: tuple[float, float, float] | None = None
    for d in em_dirs:
        info = read_volume_info(d)
        v = info["voxel_size_nm"]
        this = (float(v[2]), float(v[1]), float(v[0]))
        if vs is not None and this != vs:
            raise ReconstructError(f"training: {d} has voxel size {v}, others {vs[::-1]}")
        vs = this
        img = read_image(d, info)
        truth = read_truth(d, img.shape)
        if truth is None:
            raise ReconstructError(f"training: {d} has no truth/ directory")
        cp = Path(d) / "truth" / "clefts.zarr"
        cl = io.read_block(io.open_zarr(cp, "clefts"), (slice(None),) * 3, cp, "clefts")
        imgs.append(img)
        labs.append(truth["segmentation"])
        cls.append(cl != 0)
    assert vs is not None
    return boundary.train(imgs, labs, cls, vs, seed=seed,
                          trained_on=", ".join(str(d) for d in em_dirs))


def predict_clefts_block(model: boundary.AffinityModel, img: np.ndarray,
                         vs: tuple[float, float, float], z0: int, z1: int) -> np.ndarray:
    """Cleft probability of sections [z0, z1) of `img`, with the classifier's halo of
    sections around them (equal to that part of `predict_clefts`)."""
    h0, h1 = max(z0 - HALO, 0), min(z1 + HALO, img.shape[0])
    p = boundary.probabilities(model, img[h0:h1], vs)
    return p[boundary.CLS_CLEFT, z0 - h0:z1 - h0]


def predict_clefts(model: boundary.AffinityModel, img: np.ndarray,
                   vs: tuple[float, float, float], tick: Tick = _noop,
                   slab: int = 64, store: Any = None) -> np.ndarray | None:
    """Cleft probability from the voxel classifier, slab by slab with a halo of sections
    (affinities come from the network, `affinity_net`): returned whole, or written into
    `store` (a TensorStore of the image's shape, float32) and None returned."""
    nz = img.shape[0]
    cleft = np.zeros(img.shape, np.float32) if store is None else None
    for z0 in range(0, nz, slab):
        z1 = min(z0 + slab, nz)
        tick(f"predicting clefts, sections {z0}-{z1}", 0.5 + 0.05 * z0 / nz)
        block = predict_clefts_block(model, img, vs, z0, z1)
        if cleft is not None:
            cleft[z0:z1] = block
        else:
            store[z0:z1].write(np.ascontiguousarray(block, np.float32)).result()
    return cleft


# ------------------------------------------------------------------------------ metrics

def skeleton_arrays(sk: pd.DataFrame, vs_zyx: tuple[float, float, float],
                    shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                     np.ndarray]:
    """(skeleton ids, edges, edge lengths nm, node voxel indices) from a skeleton table."""
    node = sk["node_id"].to_numpy(np.int64)
    pos = {int(n): i for i, n in enumerate(node)}
    par = sk["parent_id"].to_numpy(np.int64)
    e = [(i, pos[int(p)]) for i, p in enumerate(par) if int(p) in pos]
    edges = np.array(e, np.int64).reshape(-1, 2)
    xyz = sk[["x", "y", "z"]].to_numpy(float)
    lengths = np.linalg.norm(xyz[edges[:, 0]] - xyz[edges[:, 1]], axis=1) if len(e) else \
        np.zeros(0)
    vox = np.round(xyz[:, ::-1] / np.array(vs_zyx)).astype(np.int64)
    vox = np.clip(vox, 0, np.array(shape) - 1)
    return sk["segment_id"].to_numpy(np.int64), edges, lengths, vox


def segmentation_scores(seg: np.ndarray, truth: dict[str, Any],
                        vs: tuple[float, float, float]) -> dict[str, float]:
    """VOI, ARAND, ERL and NERL of a segmentation against ground truth."""
    gt = truth["segmentation"]
    sids, edges, lengths, vox = skeleton_arrays(truth["skeletons"], vs, gt.shape)
    at = (vox[:, 0], vox[:, 1], vox[:, 2])
    e_pred = metrics.erl(sids, edges, lengths, seg[at].astype(np.int64))
    e_gt = metrics.erl(sids, edges, lengths, gt[at].astype(np.int64))
    # the best any segmentation of this block can do: each cell's pieces that are
    # connected inside the block (a neurite leaving and re-entering cannot be joined)
    gt_cc = cc3d.connected_components(gt, connectivity=6)
    e_cc = metrics.erl(sids, edges, lengths, gt_cc[at].astype(np.int64))
    split, merge = metrics.voi(gt, seg)
    return {"voi_split": split, "voi_merge": merge, "voi": split + merge,
            "arand": metrics.adapted_rand(gt, seg), "erl_nm": e_pred, "erl_truth_nm": e_gt,
            "erl_truth_pieces_nm": e_cc,
            "nerl": e_pred / e_cc if e_cc > 0 else 0.0,
            "nerl_truth_labels": e_pred / e_gt if e_gt > 0 else 0.0,
            "n_segments": int(len(np.unique(seg)) - (1 if (seg == 0).any() else 0))}


def synapse_metrics(seg: np.ndarray, syn: pd.DataFrame, truth: dict[str, Any]) -> dict[str, Any]:
    """Synapse precision / recall / F1 (partners must be right) and compartment accuracy."""
    ts_ = truth["synapses"]
    mapping = metrics.segment_to_truth(truth["segmentation"], seg)
    sc = metrics.synapse_scores(
        syn[["x", "y", "z"]].to_numpy(float), syn["pre_segment_id"].to_numpy(np.int64),
        syn["post_segment_id"].to_numpy(np.int64), ts_[["x", "y", "z"]].to_numpy(float),
        ts_["pre_segment_id"].to_numpy(np.int64), ts_["post_segment_id"].to_numpy(np.int64),
        mapping, pred_comp=syn["post_compartment"].astype(str).to_numpy(),
        true_comp=ts_["post_compartment"].astype(str).to_numpy())
    return {"synapse_precision": sc.precision, "synapse_recall": sc.recall,
            "synapse_f1": sc.f1, "synapse_location_f1": sc.location_f1,
            "synapses_predicted": sc.n_predicted, "synapses_true": sc.n_true,
            "synapses_matched": sc.true_positives,
            "post_compartment_accuracy": sc.compartment_accuracy}


def class_metrics(seg: np.ndarray, segs: pd.DataFrame, truth: dict[str, Any]) -> dict[str, Any]:
    """Cell-class accuracy over predicted segments with a soma."""
    mapping = metrics.segment_to_truth(truth["segmentation"], seg)
    true_cls = dict(zip(truth["segments"]["segment_id"].astype(int),
                        truth["segments"]["predicted_class"].astype(str), strict=True))
    with_soma = segs[segs["soma_x"].notna()]
    ok = [true_cls.get(mapping.get(int(s), -1)) == c
          for s, c in zip(with_soma["segment_id"], with_soma["predicted_class"], strict=True)]
    return {"class_accuracy_somata": float(np.mean(ok)) if ok else None,
            "somata_found": len(ok),
            "somata_true": int(truth["segments"]["soma_x"].notna().sum())}


# ------------------------------------------------------------------------------ the run

def reconstruct(em_dir: Path, out_dir: Path, model_path: Path | None = None,
                affinities_path: Path | None = None, tick: Tick = _noop,
                params: segment.SegParams | None = None,
                net_path: Path | None = None, augment: bool = True,
                block_sections: int = BLOCK_SECTIONS) -> dict[str, Any]:
    """EM directory -> run directory (see RUN_DIR.md). Returns metrics (empty without truth).

    A volume of more than `block_sections` sections goes slab by slab after the image is
    read: affinities are predicted into `affinities.zarr`, segmented
    (`segment.seeded_segmentation_blockwise`), and clefts, synapses, somata and skeletons
    are found from slabs of the segmentation read back with halos. Only scoring against
    a truth reads the whole segmentation."""
    if block_sections < 1:
        raise ReconstructError(f"block_sections must be at least 1, got {block_sections}")
    em_dir, out = Path(em_dir), Path(out_dir)
    info = read_volume_info(em_dir)
    img = read_image(em_dir, info)
    truth = read_truth(em_dir, img.shape)
    vx, vy, vz = (float(v) for v in info["voxel_size_nm"])
    vs = (vz, vy, vx)
    net = None
    if affinities_path is None:  # checked before any slow step
        npath = Path(net_path) if net_path is not None else DEFAULT_NET
        net = io.load_net(npath)
        try:
            affinity_net.check_voxel_size(net, vs)
        except ValueError as e:
            raise ReconstructError(f"affinity network {npath} does not fit "
                                   f"{em_dir / 'volume.json'} field 'voxel_size_nm': {e}"
                                   ) from e
    out.mkdir(parents=True, exist_ok=True)
    (out / "skeletons").mkdir(exist_ok=True)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    if model_path is not None:
        model = io.load_model(Path(model_path))
        if getattr(model, "format", None) != boundary.MODEL_FORMAT:
            raise ReconstructError(f"model: {model_path} is not a {boundary.MODEL_FORMAT} model")
    else:
        model = default_model(vs, int(info.get("seed", 0)), tick)
        io.save_model(out / "model.joblib", model)
    timings["model_s"] = time.perf_counter() - t
    attrs = {"voxel_size_nm_xyz": [vx, vy, vz]}
    baseline: np.ndarray | None = None  # threshold + connected components, whole mode only
    t = time.perf_counter()
    if img.shape[0] <= block_sections:  # the whole volume at once
        if affinities_path is not None:
            affs = read_affinities(Path(affinities_path), img.shape)
        else:
            tick("predicting affinities (network)", 0.4)
            assert net is not None
            affs, _ = affinity_net.predict(net, img, augment=augment)
        timings["predict_s"] = time.perf_counter() - t
        tick("segmenting", 0.45)
        t = time.perf_counter()
        seg = segment.seeded_segmentation(affs, vs, params)
        timings["segment_s"] = time.perf_counter() - t
        if truth is not None:  # the naive baseline, scored beside ours
            baseline = segment.threshold_components(
                affs, 0.5, (params or segment.SegParams()).min_size)
        del affs
        io.write_zarr(out / "segmentation.zarr", seg, attrs)
        pc = io.create_precomputed(out / "segmentation.precomputed", seg.shape, (vx, vy, vz))
        io.write_precomputed_block(pc, 0, seg)
    else:  # slab by slab: affinities never all in memory
        if affinities_path is not None:
            apath = Path(affinities_path)
        else:
            assert net is not None
            apath = out / "affinities.zarr"
            predict_affinities_to_zarr(net, img, apath, block_sections, augment, tick)
        ast = open_affinities(apath, img.shape)
        timings["predict_s"] = time.perf_counter() - t
        tick("segmenting slab by slab", 0.45)
        t = time.perf_counter()
        labels = ZarrLabels(out / "segmentation.zarr", img.shape, attrs)
        segment.seeded_segmentation_blockwise(
            lambda z0, z1: read_affinity_block(ast, apath, z0, z1), img.shape, vs, labels,
            params, slab=block_sections)
        timings["segment_s"] = time.perf_counter() - t
        seg = None
    tick("synapses", 0.55)
    t = time.perf_counter()
    if seg is not None:
        cleft = predict_clefts(model, img, vs, tick)
        assert cleft is not None
        syn = synapses.detect(cleft, seg, img, vs)
        del cleft
    else:  # slab by slab: neither the segmentation nor the cleft probability held whole
        cpath = out / "clefts.zarr"
        cst = io.create_zarr(cpath, img.shape, "float32", attributes=attrs)
        predict_clefts(model, img, vs, tick, slab=min(64, block_sections), store=cst)
        syn = synapses.detect_blockwise(
            lambda z0, z1: (io.read_block(cst, slice(z0, z1), cpath, "cleft probability"),
                            labels.read(z0, z1), img[z0:z1]),
            img.shape[0], vs, block_sections)
    timings["synapses_s"] = time.perf_counter() - t
    tick("skeletons (kimimaro)", 0.6)
    t = time.perf_counter()
    if seg is not None:
        skels = skeleton.skeletonize(seg, vs)
        seg_df, syn = skeleton.annotate(seg, syn, vs, skels)
    else:  # one pass over the slabs counts sizes and writes the precomputed copy
        sizes: dict[int, int] = {}
        pc = io.create_precomputed(out / "segmentation.precomputed", img.shape, (vx, vy, vz))
        for z0 in range(0, img.shape[0], block_sections):
            block = labels.read(z0, min(z0 + block_sections, img.shape[0]))
            io.write_precomputed_block(pc, z0, block)
            for sid, n in skeleton.segment_sizes(block).items():
                sizes[sid] = sizes.get(sid, 0) + n
        skels = skeleton.skeletonize_blockwise(labels.read, img.shape[0], vs, sizes,
                                               block_sections)
        somata = skeleton.find_somata_blockwise(labels.read, img.shape[0], vs,
                                                block_sections)
        seg_df, syn = skeleton.annotate_tables(somata, sizes, syn, skels)
    timings["skeletons_s"] = time.perf_counter() - t
    swc_type = {synth.COMP_SOMA: 1, synth.COMP_AXON: 2, synth.COMP_DENDRITE: 3,
                synth.COMP_AIS: 5, synth.COMP_NONE: 0}
    for sid, sk in skels.items():
        n = len(sk.vertices)
        if n == 0:
            continue
        parent = np.full(n, -1, np.int64)
        # orient edges away from vertex 0 by breadth-first search
        adj: dict[int, list[int]] = {}
        for a, b in sk.edges.tolist():
            adj.setdefault(a, []).append(b)
            adj.setdefault(b, []).append(a)
        seen = np.zeros(n, bool)
        for r in range(n):
            if seen[r]:
                continue
            seen[r] = True
            stack = [r]
            while stack:
                u = stack.pop()
                for w in adj.get(u, []):
                    if not seen[w]:
                        seen[w] = True
                        parent[w] = u
                        stack.append(w)
        io.write_swc(out / "skeletons" / f"{sid}.swc", np.arange(1, n + 1),
                     np.array([swc_type[int(c)] for c in sk.compartment]), sk.vertices,
                     sk.radius, np.where(parent >= 0, parent + 1, -1))
    io.write_table(out / "segments.parquet", seg_df, io.SEGMENT_COLUMNS)
    io.write_table(out / "synapses.parquet", syn, io.SYNAPSE_COLUMNS)
    run = {"voxel_size_nm": [vx, vy, vz], "shape_zyx": list(img.shape),
           "source": str(em_dir.resolve()), "seed": info.get("seed"),
           "created_by": CREATED_BY, "preset": info.get("preset"),
           "model": str(model_path) if model_path else "model.joblib (trained on synthetic)",
           "affinities": str(affinities_path) if affinities_path else
           f"predicted by {net_path or 'the shipped affinity network'}"
           f"{' (8-fold flip/transpose averaged)' if augment else ''}",
           "segmented_in_slabs_of": block_sections if img.shape[0] > block_sections
           else None,
           "array_backend": xp.backend_name(), "timings_s": timings}
    io.write_json(out / "run.json", run)
    result: dict[str, Any] = {}
    if truth is not None:
        tick("metrics", 0.9)
        if seg is None:  # scoring reads the whole volume (as the truth is)
            seg = labels.read(0, img.shape[0])
        result["pipeline"] = segmentation_scores(seg, truth, vs)
        if baseline is not None:
            result["baseline_threshold_cc"] = segmentation_scores(baseline, truth, vs)
        result["pipeline"].update(synapse_metrics(seg, syn, truth))
        result["pipeline"].update(class_metrics(seg, seg_df, truth))
        io.write_json(out / "metrics.json", result)
    tick("done", 1.0)
    return result
