"""`connectome synth-em`, `reconstruct`, `train-model`, `train-affinity-net`: reconstruction."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from connectome_query.cli.console import console, fail, out
from connectome_query.reconstruct.errors import ReconstructError
from connectome_query.reconstruct.progress import Tick, no_progress

if TYPE_CHECKING:
    from connectome_query.reconstruct.engine.cluster import ClusterSpec

app = typer.Typer()

# The Dask options synth-em and reconstruct share.
SchedulerOption = Annotated[str | None, typer.Option(
    help="address of a running Dask scheduler (tcp://HOST:PORT); default "
         "DASK_SCHEDULER_ADDRESS, else a LocalCluster for this run")]
WorkersOption = Annotated[int | None, typer.Option(help="local workers (default: one per core)")]
WorkerMemoryOption = Annotated[str | None, typer.Option(
    help="memory limit per local worker, e.g. 1.5GB")]


@contextmanager
def rich_progress(enabled: bool = True) -> Iterator[Tick]:
    """A progress bar driven by the stages' tick(message, fraction done); no bar when not
    `enabled`."""
    if not enabled:
        yield no_progress
        return
    with Progress(TextColumn("{task.description:<34}"), BarColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as prog:
        task = prog.add_task("starting", total=1.0)

        def tick(msg: str, frac: float) -> None:
            prog.update(task, description=msg, completed=min(max(frac, 0.0), 1.0))

        yield tick


@contextmanager
def loss_progress(label: str, steps: int) -> Iterator[tuple[Any, Any]]:
    """A bar of optimiser steps showing the last loss: (tick(step, loss), resumed(done))."""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as prog:
        task = prog.add_task(label, total=steps)

        def tick(i: int, loss: float) -> None:
            prog.update(task, completed=i + 1, description=f"{label} (loss {loss:.3f})")

        def resumed(done: int) -> None:  # a resumed run's bar starts at its checkpoint's step
            prog.update(task, completed=done)

        yield tick, resumed


def _triple(text: str, what: str, cast: type = int) -> tuple[Any, Any, Any]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3:
        raise typer.BadParameter(f"{what} must be three comma-separated numbers, got {text!r}")
    try:
        a, b, c = (cast(p) for p in parts)
    except ValueError as e:
        raise typer.BadParameter(f"{what}: {e}") from e
    return a, b, c


def cluster_options(scheduler: str | None, block: str | None, workers: int | None,
                    worker_memory: str | None) -> tuple[ClusterSpec, tuple[int, int, int] | None]:
    """The Dask options synth-em, reconstruct and prepare share, checked: the cluster and the
    block."""
    from connectome_query.reconstruct.engine.cluster import ClusterSpec
    from connectome_query.reconstruct.engine.grid import parse_triple

    try:
        shape = parse_triple(block, "--block") if block is not None else None
    except ValueError as e:
        raise fail(str(e), 2) from e
    if workers is not None and workers < 1:
        raise fail("--workers must be at least 1", 2)
    return ClusterSpec(scheduler=scheduler, workers=workers, worker_memory=worker_memory), shape


def metrics_table(result: dict[str, Any]) -> Table:
    """Rich table of pipeline vs baseline metrics."""
    cols = [k for k in result if isinstance(result[k], dict)]
    t = Table(title="Reconstruction quality against ground truth")
    t.add_column("metric")
    for c in cols:
        t.add_column(c, justify="right")
    keys: list[str] = []
    for c in cols:
        keys += [k for k in result[c] if k not in keys]
    for k in keys:
        row = []
        for c in cols:
            v = result[c].get(k)
            row.append("" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v))
        t.add_row(k, *row)
    return t


@app.command("synth-em")
def synth_em(
    out_dir: Annotated[Path, typer.Argument(help="directory to write")],
    size: Annotated[str, typer.Option(help="x,y,z voxels")] = "64,64,64",
    preset: Annotated[str, typer.Option(
        help="clean, noisy, or raw (tiles of deformed, damaged sections: a raw directory "
             "for `connectome prepare`)")] = "clean",
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    voxel_size: Annotated[str, typer.Option(help="x,y,z nm")] = "16,16,40",
    style: Annotated[str, typer.Option(
        help="imaging style: a (what the shipped networks learnt) or b (the same tissue with "
             "bright, thick membranes, compressed grey levels, other blur and noise)")] = "a",
    scheduler: SchedulerOption = None,
    block: Annotated[str | None, typer.Option(
        help="block shape Z,Y,X each task renders (default 32,256,256)")] = None,
    workers: WorkersOption = None,
    worker_memory: WorkerMemoryOption = None,
    quiet: Annotated[bool, typer.Option(help="no progress bar")] = False,
) -> None:
    """Write a synthetic EM volume with ground truth (see reconstruct/RUN_DIR.md): planned
    once, rendered block by block on Dask (the raw preset: in this process)."""
    from connectome_query.reconstruct import synth
    from connectome_query.reconstruct.engine import synth as engine_synth

    x, y, z = _triple(size, "--size")
    vx, vy, vz = _triple(voxel_size, "--voxel-size", float)
    spec, shape = cluster_options(scheduler, block, workers, worker_memory)
    if preset == "raw" and style != "a":
        raise fail("--style is for the clean and noisy presets", 2)
    if preset == "raw":  # tiles of deformed, damaged sections, with the truth
        from connectome_query.reconstruct.align import rawdir
        from connectome_query.reconstruct.synth import raw

        try:
            base = synth.SynthConfig((z, y, x), (vz, vy, vx), "clean", seed)
            with rich_progress(not quiet) as tick:
                rawdir.write_synthetic_raw(out_dir, base, raw.RawConfig(seed=seed), tick)
        except ValueError as e:
            raise fail(str(e), 2) from e
        out.print(f"wrote {out_dir}")
        return
    try:
        cfg = synth.SynthConfig((z, y, x), (vz, vy, vx), preset, seed, style)
    except ValueError as e:
        raise fail(str(e), 2) from e
    try:
        with stage_progress(not quiet) as progress:
            engine_synth.write_synthetic(out_dir, cfg, spec, shape, progress)
    except ReconstructError as e:
        raise fail(str(e), 1) from e
    out.print(f"wrote {out_dir}")


class StageBars:
    """The engine's progress as rich bars: one per stage, blocks done of the stage's."""

    def __init__(self, prog: Progress) -> None:
        self.prog = prog
        self.tasks: dict[str, Any] = {}

    def stage(self, name: str, total: int, done: int = 0) -> None:
        self.tasks[name] = self.prog.add_task(name, total=max(total, 1), completed=done)

    def advance(self, name: str, n: int = 1) -> None:
        if name in self.tasks:
            self.prog.advance(self.tasks[name], n)

    def note(self, text: str) -> None:
        self.prog.console.print(text, highlight=False, soft_wrap=True)


@contextmanager
def stage_progress(enabled: bool = True) -> Iterator[Any]:
    """Where `pipeline.reconstruct` reports: bars per stage, or nothing."""
    from connectome_query.reconstruct.progress import Quiet

    if not enabled:
        yield Quiet()
        return
    with Progress(TextColumn("{task.description:<26}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=False) as prog:
        yield StageBars(prog)


@app.command("reconstruct")
def reconstruct_cmd(
    em_dir: Annotated[str, typer.Argument(
        help="EM directory (volume.json, image.zarr) or a neuroglancer precomputed volume: a "
             "path, file:///PATH, s3://BUCKET/PATH or gs://BUCKET/PATH")],
    out_run_dir: Annotated[str, typer.Argument(
        help="run directory to write (or to finish: a second run resumes); a local path")],
    scheduler: SchedulerOption = None,
    block: Annotated[str | None, typer.Option(
        help="block shape Z,Y,X; default from the memory per worker")] = None,
    workers: WorkersOption = None,
    worker_memory: WorkerMemoryOption = None,
    model: Annotated[Path | None, typer.Option(
        help="voxel classifier (train-model) for the clefts")] = None,
    clefts: Annotated[str, typer.Option(
        help="where cleft probability comes from: network (its cleft channel) or "
             "classifier")] = "network",
    affinities: Annotated[Path | None, typer.Option(
        help="zarr (3, z, y, x) affinities made elsewhere, waterz layout")] = None,
    net: Annotated[str | None, typer.Option(
        help="affinity network: 'full' (the shipped default), 'lean' (distilled, about 2.8x "
             "fewer multiply-adds), 'coarse' (distilled at in-plane stride 2, about 3.9x "
             "fewer; see BENCHMARKS.md) or a weights file (train-affinity-net)")] = None,
    augment: Annotated[bool, typer.Option(
        help="average the network over 8 in-plane flips/transposes (8x time)")] = False,
    segmenter: Annotated[str, typer.Option(
        help="watershed (affinities, seeded growth, agglomeration) or ffn (flood-filling "
             "network)")] = "watershed",
    ffn: Annotated[Path | None, typer.Option(
        help="flood-filling network weights (train-ffn) for --segmenter ffn; default: "
             "shipped")] = None,
    adapter: Annotated[Path | None, typer.Option(
        help="adapter weights (train-adapter): translate the image into the segmenter's "
             "style first (a volume imaged unlike the training data)")] = None,
    restore: Annotated[Path | None, typer.Option(
        help="restorer weights (train-restorer): restore the voxels the volume's defect "
             "flags mark (blur, folds, cracks, missing tissue) before segmenting, and take "
             "decisions from them")] = None,
    quiet: Annotated[bool, typer.Option(help="no progress bar")] = False,
) -> None:
    """EM volume -> segmentation, synapses, skeletons, compartments (+ metrics), on Dask
    over 3-D blocks (see reconstruct/RUN_DIR.md and docs/scaling.md)."""
    from connectome_query.reconstruct import pipeline, training

    spec, shape = cluster_options(scheduler, block, workers, worker_memory)
    run_dir = _local_run_dir(out_run_dir)
    if segmenter not in ("watershed", "ffn"):
        raise fail(f"--segmenter must be 'watershed' or 'ffn', got {segmenter!r}", 2)
    if ffn is not None and segmenter != "ffn":
        raise fail("--ffn is for --segmenter ffn", 2)
    try:
        with stage_progress(not quiet) as progress:
            result = pipeline.reconstruct(em_dir, run_dir, model, affinities, progress,
                                          net_path=training.net_file(net), augment=augment,
                                          block=shape,
                                          spec=spec, clefts=clefts, segmenter=segmenter,
                                          ffn_path=ffn, adapter_path=adapter,
                                          restorer_path=restore)
    except ReconstructError as e:
        raise fail(str(e), 1) from e
    if result:
        out.print(metrics_table(result))
    out.print(f"wrote {run_dir}")
    write_run_report(run_dir)


def _local_run_dir(text: str) -> Path:
    """The run directory: a local path (or file:///PATH); object storage holds inputs only."""
    from connectome_query.reconstruct import location

    try:
        where = location.parse(text)
    except ReconstructError as e:
        raise fail(str(e), 2) from e
    if location.is_remote(where):
        raise fail(f"run directory {where}: must be a local path (or a filesystem every "
                   f"worker mounts); object storage holds the EM volume only (docs/scaling.md)",
                   2)
    return Path(where)


def write_run_report(run_dir: Path) -> Path | None:
    """RUN_DIR/report.html (`connectome report`); a warning, not a failure, if it cannot."""
    from connectome_query.reconstruct.report.build import write_report

    try:
        path = write_report(run_dir)
    except (ReconstructError, OSError, ValueError, KeyError) as e:
        console.print(f"[yellow]no report: {e}[/]")
        return None
    out.print(f"report: {path}")
    return path


@app.command("train-model")
def train_model(
    em_dirs: Annotated[list[Path], typer.Argument(help="EM directories with truth/")],
    output: Annotated[Path, typer.Option("--out", help="where to save the model")] = Path(
        "model.joblib"),
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Train the voxel classifier on EM directories with ground truth."""
    from connectome_query.reconstruct import io, training

    try:
        model = training.train_from_dirs(em_dirs, seed)
    except ReconstructError as e:
        raise fail(str(e), 1) from e
    io.save_model(output, model)
    out.print(f"wrote {output}")


@app.command("train-affinity-net")
def train_affinity_net(
    output: Annotated[Path, typer.Argument(metavar="OUT",
                                           help="where to save the weights (.npz)")],
    steps: Annotated[int, typer.Option(help="optimiser steps")] = 900,
    volumes: Annotated[int, typer.Option(help="synthetic training volumes")] = 8,
    init: Annotated[Path | None, typer.Option(
        help="start from these weights (fine-tuning)")] = None,
    lr: Annotated[float, typer.Option(help="Adam learning rate")] = 1e-3,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Train the affinity U-Net on synthetic volumes (the shipped weights came from
    this command; see reconstruct/affinity_net.py)."""
    from connectome_query.reconstruct import affinity_net, io, training

    if steps < 1 or volumes < 1:
        raise fail("--steps and --volumes must be at least 1", 2)
    try:
        start = io.load_net(init) if init is not None else None
    except ReconstructError as e:
        raise fail(str(e), 1) from e
    vs = (40.0, 16.0, 16.0)
    data = training.net_training_volumes(volumes, vs)
    with loss_progress("training", steps) as (tick, _):
        here = (f"{steps} steps at lr {lr:g} on {volumes} synthetic volumes 48x128x128, "
                f"seeds from {training.NET_TRAINING_SEED}, clean and noisy")
        if start is not None:  # keep the history of the weights fine-tuned from
            here = f"{start.meta.get('trained_on', str(init))}; then {here}"
        net = affinity_net.train(data, steps, seed=seed, init=start, lr=lr, tick=tick,
                                 trained_on=here, voxel_size_zyx=vs)
    io.save_net(output, net)
    out.print(f"wrote {output} (mean loss of the last steps "
              f"{net.meta['final_loss']:.3f})")


@app.command("distil-affinity-net")
def distil_affinity_net(
    output: Annotated[Path, typer.Argument(metavar="OUT",
                                           help="where to save the weights (.npz)")],
    steps: Annotated[int, typer.Option(help="optimiser steps")] = 2000,
    volumes: Annotated[int, typer.Option(help="synthetic training volumes")] = 8,
    teacher: Annotated[Path | None, typer.Option(
        help="the network to copy (default: the shipped one)")] = None,
    widths: Annotated[str, typer.Option(
        help="channels at full resolution and at the pooled level, F,P")] = "8,24",
    lr: Annotated[float, typer.Option(help="Adam learning rate")] = 1e-3,
    seed: Annotated[int, typer.Option()] = 0,
    stride: Annotated[int, typer.Option(
        help="in-plane stride of the first level: 1, or 2 for a coarse network (2x2 "
             "pixels in, 2x2 outputs out per position; crops twice as wide)")] = 1,
    minutes: Annotated[float | None, typer.Option(
        help="stop after this much training time (checkpointed; run again to go on)")] = None,
    init: Annotated[Path | None, typer.Option(
        help="start from these student weights (same widths, stride and voxel size) when "
             "there is no checkpoint, to distil further")] = None,
    checkpoint: Annotated[Path | None, typer.Option(
        help="checkpoint file (default OUT.ckpt.npz); an existing one is resumed")] = None,
    checkpoint_every: Annotated[int, typer.Option(help="steps between checkpoints")] = 25,
    truth_weight: Annotated[float, typer.Option(
        help="share of the true affinities in the targets (0: the teacher's alone)")] = 0.0,
) -> None:
    """Distil a leaner affinity U-Net (fewer channels, or a coarse one at stride 2) from a
    wider one on synthetic volumes (the shipped lean and coarse weights came from this
    command; see reconstruct/distil.py). --steps counts the steps of this distillation, a
    resumed run's included."""
    from connectome_query.reconstruct import distil, io, training

    try:
        w = tuple(int(v) for v in widths.split(","))
    except ValueError:
        w = ()
    if len(w) != 2 or min(w) < 1:
        raise fail(f"--widths must be two positive integers F,P, got {widths!r}", 2)
    if steps < 1 or volumes < 1:
        raise fail("--steps and --volumes must be at least 1", 2)
    if stride not in (1, 2):
        raise fail(f"--stride must be 1 or 2, got {stride}", 2)
    if minutes is not None and not minutes > 0:
        raise fail(f"--minutes must be positive, got {minutes}", 2)
    if checkpoint_every < 1:
        raise fail("--checkpoint-every must be at least 1", 2)
    if not 0 <= truth_weight <= 1:
        raise fail(f"--truth-weight must be between 0 and 1, got {truth_weight}", 2)
    try:
        big = io.load_net(teacher if teacher is not None else training.DEFAULT_NET)
        start = io.load_net(init) if init is not None else None
    except ReconstructError as e:
        raise fail(str(e), 1) from e
    vs = (40.0, 16.0, 16.0)
    if start is not None:
        try:
            distil.check_student(start, w, stride, vs)
        except ValueError as e:
            raise fail(f"--init {init}: {e}", 1) from e
    ckpt = checkpoint or output.with_name(output.name + ".ckpt.npz")
    data = training.net_training_volumes(volumes, vs)
    with loss_progress("distilling", steps) as (tick, resumed):
        here = (f"lr {lr:g} on {volumes} synthetic volumes 48x128x128, "
                f"seeds from {training.NET_TRAINING_SEED}, clean and noisy"
                + (f", targets {truth_weight:g} truth" if truth_weight else ""))
        try:
            net = distil.distil(big, data, steps, w, seed=seed, lr=lr, tick=tick,
                                trained_on=here, crop=(12, 48 * stride, 48 * stride),
                                stride=stride, max_seconds=minutes * 60 if minutes else None,
                                init=start, truth_weight=truth_weight, checkpoint=ckpt,
                                checkpoint_every=checkpoint_every, start=resumed)
        except ValueError as e:
            raise fail(str(e), 1) from e
    before = int(start.meta.get("steps", 0)) if start is not None else 0
    here = f"{net.meta['steps'] - before} steps at {here}"
    if start is not None:  # keep the history of the weights distilled further
        here = f"{start.meta.get('trained_on', str(init))}; then {here}"
    net.meta["trained_on"] = here
    io.save_net(output, net)
    out.print(f"wrote {output} (mean loss of the last steps {net.meta['final_loss']:.3f})")


@app.command("train-ffn")
def train_ffn(
    output: Annotated[Path, typer.Argument(metavar="OUT",
                                           help="where to save the weights (.npz)")],
    steps: Annotated[int, typer.Option(help="optimiser steps (each: seed FOV + one move)")] = 1000,
    volumes: Annotated[int, typer.Option(help="synthetic training volumes")] = 8,
    batch: Annotated[int, typer.Option(help="seeds per step")] = 4,
    lr: Annotated[float, typer.Option(help="Adam learning rate")] = 1e-3,
    checkpoint: Annotated[Path | None, typer.Option(
        help="checkpoint file (default OUT.ckpt.npz); an existing one is resumed")] = None,
    checkpoint_every: Annotated[int, typer.Option(help="steps between checkpoints")] = 25,
    positive_weight: Annotated[float, typer.Option(
        help="weight of the object's voxels in the loss (the FOV holds mostly others)")] = 4.0,
    seed: Annotated[int, typer.Option()] = 0,
    init: Annotated[Path | None, typer.Option(
        help="start from these FFN weights when there is no checkpoint (fine-tuning)")] = None,
    minutes: Annotated[float | None, typer.Option(
        help="stop after this much training time (checkpointed; run again to go on)")] = None,
    moves: Annotated[int, typer.Option(
        help="FOV moves after the seed's FOV in each step, the mask grown so far fed back")] = 1,
) -> None:
    """Train the flood-filling network on synthetic volumes (the shipped weights came from
    this command; see reconstruct/ffn/)."""
    import time

    from connectome_query.reconstruct import io
    from connectome_query.reconstruct.ffn import model, training

    if steps < 1 or volumes < 1 or batch < 1 or checkpoint_every < 1 or moves < 1:
        raise fail("--steps, --volumes, --batch, --checkpoint-every and --moves must be at "
                   "least 1", 2)
    if not lr > 0:
        raise fail(f"--lr must be positive, got {lr}", 2)
    if minutes is not None and not minutes > 0:
        raise fail(f"--minutes must be positive, got {minutes}", 2)
    try:
        start = io.load_ffn(init) if init is not None else None
    except ReconstructError as e:
        raise fail(str(e), 1) from e
    ckpt = checkpoint or output.with_name(output.name + ".ckpt.npz")
    shape = (48, 128, 128)
    vs = training.VOXEL_SIZE
    data = training.training_volumes(volumes, shape, voxel_size_zyx=vs,
                                     pad=training.region_half(moves))
    meta = {model.VOXEL_SIZE_KEY: list(vs),
            "trained_on": f"{volumes} synthetic volumes {'x'.join(map(str, shape))}, seeds from "
                          f"{training.FFN_TRAINING_SEED}, clean and noisy"}
    if start is not None:
        meta["history"] = [f"from {init.name if init else ''}: "
                           f"{'; '.join(start.meta.get('history', []))}"]
    t0 = time.perf_counter()
    with loss_progress("training", steps) as (tick, resumed):
        try:
            net = training.train(data, steps, ckpt, batch=batch, lr=lr, seed=seed,
                                 checkpoint_every=checkpoint_every, tick=tick, meta=meta,
                                 positive_weight=positive_weight,
                                 init=start.params if start is not None else None,
                                 max_seconds=minutes * 60 if minutes else None, start=resumed,
                                 dilations=start.dilations if start else model.DILATIONS,
                                 moves=moves)
        except ValueError as e:
            raise fail(str(e), 1) from e
    net.meta["train_seconds_this_run"] = round(time.perf_counter() - t0, 1)
    io.save_ffn(output, net)
    out.print(f"wrote {output} (mean loss of the last steps {net.meta['final_loss']:.3f})")
