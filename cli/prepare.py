"""`connectome prepare`: raw tiles -> an aligned, repaired EM directory (the EM front end)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from connectome_query.cli.console import fail, out
from connectome_query.cli.reconstruct import (
    SchedulerOption,
    WorkerMemoryOption,
    WorkersOption,
    cluster_options,
    stage_progress,
)
from connectome_query.reconstruct.errors import ReconstructError

app = typer.Typer()


@app.command("prepare")
def prepare_cmd(
    raw_dir: Annotated[Path, typer.Argument(help="raw directory (raw.json, tiles/)")],
    em_dir: Annotated[Path, typer.Argument(help="EM directory to write")],
    contrast: Annotated[str, typer.Option(
        help="contrast normalisation from good pixels: linear, clahe or none")] = "linear",
    fill: Annotated[bool, typer.Option(
        help="fill missing and damaged voxels from aligned neighbours")] = True,
    stride: Annotated[int, typer.Option(help="flow and mesh grid spacing (px)")] = 32,
    patch: Annotated[int, typer.Option(help="cross-correlation patch size (px)")] = 128,
    scheduler: SchedulerOption = None,
    workers: WorkersOption = None,
    worker_memory: WorkerMemoryOption = None,
    quiet: Annotated[bool, typer.Option(help="no progress bar")] = False,
) -> None:
    """Stitch tiles, find defects, align sections elastically, fill and normalise: writes
    EM_DIR (image.zarr, defects.zarr, maps.zarr, prepare.json) for `connectome reconstruct`.
    A synthetic raw directory's truth is carried into the aligned frame (EM_DIR/truth), so the
    reconstruction is scored against it. Stitching and fold/crack detection run on Dask, one
    task per section, and the alignment's flows one task per pair of sections; a second run
    into the same EM_DIR resumes."""
    from connectome_query.reconstruct.align import elastic, prepare, truth_frame
    from connectome_query.reconstruct.progress import stage_tick

    if stride < 4 or patch < 16 or patch % 2:
        raise fail("--stride must be at least 4 and --patch an even number of at least 16", 2)
    cfg = prepare.PrepareConfig(align=elastic.AlignConfig(stride=stride, patch=patch),
                                contrast=contrast, fill=fill)
    spec, _ = cluster_options(scheduler, None, workers, worker_memory)
    try:
        with stage_progress(not quiet) as progress:
            report = prepare.prepare(raw_dir, em_dir, cfg, progress, spec)
            known = None
            if (raw_dir / "truth" / "undeformed" / "truth").exists():
                tick = stage_tick(progress, "truth in the aligned frame")
                known = truth_frame.write_truth_in_frame(raw_dir, em_dir, tick=tick)
                tick("done", 1.0)
    except ReconstructError as e:
        raise fail(str(e), 1) from e
    for w in report.warnings:
        out.print(f"[yellow]warning:[/yellow] {w}")
    flagged = sum(1 for f in report.section_flags if f)
    out.print(f"wrote {em_dir} ({report.sections} sections, {flagged} masked, "
              f"{report.filled_voxels} voxels filled)")
    if known is not None:
        out.print(f"truth in the aligned frame: {known['voxels_known']:.0%} of voxels, "
                  f"{known['skeletons_known']:.0%} of skeleton nodes, "
                  f"{known['synapses_known']:.0%} of synapses known")
