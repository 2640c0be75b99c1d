"""Read a run directory (and its EM directory, when run.json's source is still there), compute
the report's tables and write `report.html`."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from connectome_query.plotting import charts
from connectome_query.reconstruct import io, location
from connectome_query.reconstruct.engine.scoring import ERL_CELLS
from connectome_query.reconstruct.errors import ReconstructError
from connectome_query.reconstruct.location import Where
from connectome_query.reconstruct.report import errors, figures, volumes
from connectome_query.reconstruct.scoring import skeleton_arrays

STYLE = """body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px;
 padding: 0 1em; color: #222; } table { border-collapse: collapse; margin: .5em 0 1.5em; }
td, th { border: 1px solid #ccc; padding: .2em .6em; text-align: right; }
th { background: #f3f3f3; } figure { display: inline-block; margin: .5em 1em .5em 0; }
img { max-width: 100%; } .note { color: #666; }"""

ERL_COLUMNS = {"cell": "", "cable_nm": "", "erl_nm": "", "merged": ""}
ERL_BARS = 40
"""The ERL picture shows this many cells (a bar per cell of a 256³ volume made a 4,000-pixel
tall image); the table below it lists them all."""


def skeleton_lengths(run_dir: Path) -> pd.DataFrame:
    """Cable length (nm) of each segment's skeleton in skeletons/{id}.swc."""
    rows = []
    for swc in sorted((run_dir / "skeletons").glob("*.swc")):
        data = np.loadtxt(swc, comments="#", ndmin=2).reshape(-1, 7)
        index = {int(i): k for k, i in enumerate(data[:, 0])}
        parent = [index.get(int(p), -1) for p in data[:, 6]]
        child = [k for k, p in enumerate(parent) if p >= 0]
        xyz = data[:, 2:5]
        length = float(np.linalg.norm(xyz[child] - xyz[[parent[k] for k in child]], axis=1)
                       .sum()) if child else 0.0
        rows.append((int(swc.stem), length, len(data)))
    return pd.DataFrame(rows, columns=["segment_id", "cable_nm", "nodes"])


def report_data(run_dir: Path) -> dict[str, Any]:
    """Everything the report shows, as tables and sections: the volumes are read a block at
    a time (`volumes`), so memory does not grow with them."""
    run_dir = Path(run_dir)
    run = io.read_json(run_dir / "run.json", "run description")
    vx, vy, vz = (float(v) for v in run["voxel_size_nm"])
    vs_zyx = (vz, vy, vx)
    seg_path = run_dir / "segmentation.zarr"
    seg = io.open_zarr(seg_path, "segmentation")
    shape = tuple(int(s) for s in seg.shape)
    data: dict[str, Any] = {
        "run": run, "vs_zyx": vs_zyx, "shape": shape,
        "segments": pd.read_parquet(run_dir / "segments.parquet"),
        "synapses": pd.read_parquet(run_dir / "synapses.parquet"),
        "metrics": (json.loads((run_dir / "metrics.json").read_text())
                    if (run_dir / "metrics.json").is_file() else None),
        "skeletons": skeleton_lengths(run_dir), "sections": None, "truth": None,
    }
    em_dir = location.parse(str(run.get("source", "")))
    if _em_readable(em_dir):
        info = io.read_volume_info(em_dir)
        img_path = io.image_location(em_dir, info)
        sections = {"image": volumes.centre_sections(io.open_image(em_dir, info), img_path,
                                                     "EM image"),
                    "segmentation": volumes.centre_sections(seg, seg_path, "segmentation")}
        scored = run_dir / ERL_CELLS  # ERL per cell from the run's blockwise scoring
        truth = io.read_truth_tables(em_dir, shape, skeletons=not scored.is_file())
        if truth is not None:
            gt_path = location.join(em_dir, "truth", "segmentation.zarr")
            gt = io.open_zarr(gt_path, "ground truth")
            sections["truth"] = volumes.centre_sections(gt, gt_path, "ground truth")
            if scored.is_file():
                _, pieces = volumes.scan(seg, seg_path, gt, gt_path, np.zeros((0, 3)))
                data["erl"] = io.read_table(scored, "run's ERL per cell", ERL_COLUMNS)
            else:  # a run directory scored before ERL_CELLS was written
                sids, edges, lengths, vox = skeleton_arrays(truth["skeletons"], vs_zyx, shape)
                labels, pieces = volumes.scan(seg, seg_path, gt, gt_path, vox)
                data["erl"] = errors.erl_per_cell_of(sids, edges, lengths, labels)
            data["truth"] = truth
            data["splits"], data["merges"] = errors.split_merge_errors_of(pieces, vs_zyx)
        data["sections"] = sections
    return data


def _em_readable(em_dir: Where) -> bool:
    """Whether the run's EM directory is there to show (local: it still exists; in object
    storage: tried, and a failure to read it is the report's error)."""
    if location.is_remote(em_dir):
        return True
    em = Path(em_dir)
    return em.is_dir() and ((em / "volume.json").is_file() or (em / "info").is_file())


def _table(df: pd.DataFrame, table_id: str) -> str:
    head = "".join(f"<th>{escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{escape(_fmt(v))}</td>" for v in row) + "</tr>"
                   for row in df.itertuples(index=False))
    return f'<table id="{table_id}"><tr>{head}</tr>{body}</table>'


def _fmt(v: Any) -> str:
    if isinstance(v, float | np.floating):
        return f"{float(v):.4g}"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


def _figure(fig: Any, caption: str, fig_id: str) -> str:
    return (f'<figure id="{fig_id}"><img src="{charts.data_uri(fig)}" alt="{escape(caption)}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def _metrics_table(metrics: dict[str, Any]) -> str:
    blocks = {k: v for k, v in metrics.items() if isinstance(v, dict)}
    names = sorted({n for b in blocks.values() for n, v in b.items()
                    if isinstance(v, int | float) and not isinstance(v, bool)})
    df = pd.DataFrame({"metric": names, **{b: [blocks[b].get(n, "") for n in names]
                                          for b in blocks}})
    return _table(df, "metrics")


def _pictures(d: dict[str, Any]) -> str:
    parts = []
    if d["sections"] is not None:
        sections = d["sections"]
        labels = {k: sections[k] for k in ("segmentation", "truth") if k in sections}
        centre = tuple(s // 2 for s in d["shape"])
        parts.append(_figure(figures.slices(sections["image"], labels, d["synapses"],
                                            d["vs_zyx"], centre, d["shape"]),
                             "Orthogonal sections through the centre: EM, segments (colour), "
                             "synapses (red)", "slices"))
    parts.append(_figure(charts.histogram(d["segments"]["size_voxels"].to_numpy(),
                                           "Segment sizes", "voxels", 30, log_x=True),
                         "Segment sizes", "sizes"))
    parts.append(_figure(charts.histogram(d["skeletons"]["cable_nm"].to_numpy(),
                                           "Skeleton lengths", "cable (nm)", 30),
                         "Skeleton cable per segment", "skeleton-lengths"))
    if "confidence" in d["synapses"]:
        parts.append(_figure(charts.histogram(d["synapses"]["confidence"].to_numpy(),
                                               "Synapse confidence", "confidence", bins=20),
                             "Synapse confidence", "confidence"))
    timings = d["run"].get("timings_s") or {}
    if timings:
        parts.append(_figure(charts.bars(list(timings), [float(v) for v in timings.values()],
                                          "Stage timings", "seconds"), "Stage timings",
                             "timings"))
    if "erl" in d:
        erl = d["erl"].head(ERL_BARS)  # most cable first; the table lists every cell
        note = f" (the {len(erl)} with most cable)" if len(d["erl"]) > len(erl) else ""
        parts.append(_figure(charts.bars([str(c) for c in erl["cell"]],
                                          list(erl["erl_nm"]), "ERL per true cell", "nm"),
                             f"Expected run length per true cell{note}", "erl-bars"))
    return "".join(parts)


def render(d: dict[str, Any], title: str) -> str:
    run = d["run"]
    s = d["segments"]
    counts = pd.DataFrame([{"segments": len(s), "synapses": len(d["synapses"]),
                            "skeletons": len(d["skeletons"]),
                            "shape (z, y, x)": str(run.get("shape_zyx")),
                            "voxel (x, y, z) nm": str(run.get("voxel_size_nm"))}])
    body = [f"<h2>Run</h2>{_table(counts, 'counts')}"]
    if d["metrics"]:
        body.append(f"<h2>Metrics against the truth</h2>{_metrics_table(d['metrics'])}")
    timings = run.get("timings_s") or {}
    if timings:
        body.append("<h2>Stage timings</h2>" + _table(pd.DataFrame(
            {"stage": list(timings), "seconds": [float(v) for v in timings.values()]}),
            "timings-table"))
    body.append(f"<h2>Pictures</h2>{_pictures(d)}")
    if "erl" in d:
        body.append("<h2>ERL per true cell</h2>" + _table(d["erl"], "erl"))
        for kind in ("merges", "splits"):
            body.append(f"<h2>Largest {kind[:-1]} errors</h2>" + _table(d[kind], kind))
    else:
        body.append('<p class="note">No ground truth beside this run: no ERL or errors.</p>')
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<title>{escape(title)}</title><link rel="icon" href="data:,">'
            f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>"
            + "".join(body) + "</body></html>")


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write `out` (default RUN_DIR/report.html); ReconstructError naming a missing file."""
    run_dir = Path(run_dir)
    for name in ("run.json", "segments.parquet", "synapses.parquet", "segmentation.zarr"):
        if not (run_dir / name).exists():
            raise ReconstructError(f"report: {run_dir / name} does not exist (not a run "
                                   "directory written by `connectome reconstruct`?)")
    target = Path(out) if out else run_dir / "report.html"
    html = render(report_data(run_dir), f"Reconstruction report: {run_dir.name}")
    target.write_text(html)
    return target
