"""`connectome train-adapter`: learn to translate a new volume's images into the segmenter's
style; `connectome train-restorer`: learn to restore the sections the front end flags."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from connectome_query.cli.console import console, fail, out
from connectome_query.reconstruct.errors import ReconstructError

app = typer.Typer()

# The options both training commands take.
OutOption = Annotated[Path, typer.Option("--out", help="where to save the weights (.npz)")]
StepsOption = Annotated[int, typer.Option(
    help="optimiser steps in all (a resumed run counts the steps done)")]
CheckpointOption = Annotated[Path | None, typer.Option(
    help="checkpoint file (default OUT.ckpt.npz); an existing one is resumed")]
LogOption = Annotated[Path | None, typer.Option(
    help="loss log, one JSON line per step (default OUT.log.jsonl; appended)")]


def _dirs(text: str, what: str) -> list[Path]:
    dirs = [Path(p.strip()) for p in text.split(",") if p.strip()]
    if not dirs:
        raise fail(f"{what}: give at least one EM directory (comma-separated)", 2)
    return dirs


def _names(dirs: str) -> str:
    """Comma-separated directories by their names alone."""
    return ",".join(Path(p.strip()).name for p in dirs.split(",") if p.strip())


def _bar(description: str) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console)


def _volumes(dirs: list[Path], what: str) -> tuple[list[Any], tuple[float, float, float]]:
    """The images (only: no truth is read) of EM directories with one voxel size."""
    from connectome_query.reconstruct import io

    imgs, vs = [], None
    for d in dirs:
        info = io.read_volume_info(d)
        v = info["voxel_size_nm"]
        this = (float(v[2]), float(v[1]), float(v[0]))
        if vs is not None and this != vs:
            raise ReconstructError(f"{what}: {d / 'volume.json'} field 'voxel_size_nm' is "
                                   f"{v}, the others' {list(vs[::-1])}")
        vs = this
        imgs.append(io.read_image(d, info))
    assert vs is not None
    return imgs, vs


def _segmenter(net_path: Path, vs: tuple[float, float, float]) -> Any:
    """The frozen affinity network a consistency loss runs, checked against the voxel size."""
    from connectome_query.reconstruct import affinity_net, io

    seg = io.load_net(net_path)
    try:
        affinity_net.check_voxel_size(seg, vs)
    except ValueError as e:
        raise ReconstructError(f"segmenter {net_path}: {e}") from e
    return seg


def _run_files(output: Path, checkpoint: Path | None, log: Path | None) -> tuple[Path, Path]:
    """The checkpoint and the loss log of a training run (default: beside OUT)."""
    return (checkpoint or output.with_name(output.name + ".ckpt.npz"),
            log or output.with_name(output.name + ".log.jsonl"))


@app.command("train-adapter")
def train_adapter(
    a_dirs: Annotated[str, typer.Argument(
        metavar="A_DIRS", help="EM directories in the segmenter's style, comma-separated")],
    b_dirs: Annotated[str, typer.Argument(
        metavar="B_DIRS", help="EM directories of the new volume's style, comma-separated "
                               "(their truth, if any, is never read)")],
    output: OutOption,
    steps: StepsOption = 400,
    net: Annotated[Path | None, typer.Option(
        help="the segmenter (affinity-network weights) whose output the translation must "
             "keep; default: shipped")] = None,
    segmentation_weight: Annotated[float, typer.Option(
        help="weight of the segmentation-consistency loss (0: plain CycleGAN)")] = 1.0,
    cycle_weight: Annotated[float, typer.Option(help="weight of the cycle loss")] = 10.0,
    ffn_weight: Annotated[float, typer.Option(
        help="weight of the flood-filling network's consistency loss (object masks grown "
             "from a few seeds; 0: left out)")] = 0.0,
    ffn: Annotated[Path | None, typer.Option(
        help="the FFN weights for --ffn-weight; default: shipped")] = None,
    ffn_seeds: Annotated[int, typer.Option(help="FFN seeds per training crop")] = 4,
    crop: Annotated[str, typer.Option(help="training crop Z,Y,X (Y, X multiples of 4)")] =
        "4,64,64",
    batch: Annotated[int, typer.Option(help="crops of each style per step")] = 2,
    lr: Annotated[float, typer.Option(help="Adam learning rate")] = 2e-4,
    d_lr: Annotated[float | None, typer.Option(
        help="the discriminators' learning rate (default: --lr)")] = None,
    checkpoint: CheckpointOption = None,
    checkpoint_every: Annotated[int, typer.Option(help="steps between checkpoints")] = 25,
    log: LogOption = None,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Train generators B->A and A->B with discriminators (least-squares GAN), the cycle loss
    and SECGAN's segmentation-consistency loss from the frozen segmenter (see
    reconstruct/adapt/); `connectome reconstruct --adapter OUT` then translates B volumes."""
    from connectome_query.reconstruct import io, training
    from connectome_query.reconstruct.adapt import model
    from connectome_query.reconstruct.adapt import training as adapt_training
    from connectome_query.reconstruct.engine.grid import parse_triple
    from connectome_query.reconstruct.engine.manifest import file_sha256
    from connectome_query.reconstruct.ffn import model as ffn_model

    if steps < 1:
        raise fail("--steps must be at least 1", 2)
    try:
        crop_zyx = parse_triple(crop, "--crop")
        cfg = adapt_training.TrainConfig(crop_zyx, batch, lr, cycle_weight,
                                         segmentation_weight, seed, checkpoint_every, d_lr,
                                         ffn_weight, ffn_seeds)
        cfg.check()
    except ValueError as e:
        raise fail(str(e), 2) from e
    ckpt, log_path = _run_files(output, checkpoint, log)
    net_path = net or training.DEFAULT_NET
    try:
        a_imgs, vs = _volumes(_dirs(a_dirs, "A_DIRS"), "A_DIRS")
        b_imgs, vs_b = _volumes(_dirs(b_dirs, "B_DIRS"), "B_DIRS")
        if vs_b != vs:
            raise ReconstructError(f"B_DIRS have voxel size {list(vs_b[::-1])} nm, A_DIRS "
                                   f"{list(vs[::-1])}: both styles must share it")
        seg = _segmenter(net_path, vs) if segmentation_weight > 0 else None
        ffn_path = ffn or training.DEFAULT_FFN
        ffn_net = io.load_ffn(ffn_path) if ffn_weight > 0 else None
        if ffn_net is not None:
            try:
                ffn_model.check_voxel_size(ffn_net, vs)
            except ValueError as e:
                raise ReconstructError(f"FFN {ffn_path}: {e}") from e
    except ReconstructError as e:
        raise fail(str(e), 1) from e
    # names, not paths: weights travel to other machines (and into the repository)
    meta = {model.VOXEL_SIZE_KEY: list(vs), "a_dirs": _names(a_dirs), "b_dirs": _names(b_dirs),
            "segmenter": {"path": Path(net_path).name, "sha256": file_sha256(Path(net_path))}
            if seg is not None else None,
            "ffn": {"path": Path(ffn_path).name, "sha256": file_sha256(Path(ffn_path))}
            if ffn_net is not None else None}
    t0 = time.perf_counter()
    with _bar("training") as prog:
        task = prog.add_task("training", total=steps)

        def tick(i: int, losses: dict[str, float]) -> None:
            prog.update(task, completed=i + 1, description=(
                f"G adv {losses['g_adv']:.3f}  cycle {losses['cycle']:.3f}  "
                f"seg {losses['seg']:.3f}  FFN {losses['ffn']:.3f}  D {losses['d']:.3f}"))

        try:
            adapter = adapt_training.train(a_imgs, b_imgs, steps, ckpt, seg, cfg, log_path,
                                           tick, meta, ffn_net)
        except ValueError as e:
            raise fail(str(e), 1) from e
    adapter.meta["train_seconds_this_run"] = round(time.perf_counter() - t0, 1)
    io.save_adapter(output, adapter)
    fl = adapter.meta["final_losses"]
    out.print(f"wrote {output} (last steps: G adv {fl['g_adv']:.3f}, cycle "
              f"{fl['cycle']:.3f}, seg {fl['seg']:.3f}, D {fl['d']:.3f}); losses in {log_path}")


@app.command("train-restorer")
def train_restorer(
    dirs: Annotated[str, typer.Argument(
        metavar="DIRS", help="clean EM directories in the segmenter's style, comma-separated "
                             "(damaged on the fly; their truth is never read)")],
    output: OutOption,
    steps: StepsOption = 400,
    net: Annotated[Path | None, typer.Option(
        help="the segmenter (affinity-network weights) whose output the restoration must "
             "match; default: shipped")] = None,
    segmentation_weight: Annotated[float, typer.Option(
        help="weight of the segmentation-consistency loss (0: L1 only)")] = 1.0,
    crop: Annotated[str, typer.Option(help="training crop Z,Y,X (Y, X even)")] = "4,64,64",
    batch: Annotated[int, typer.Option(help="crops per step")] = 4,
    lr: Annotated[float, typer.Option(help="Adam learning rate")] = 1e-3,
    checkpoint: CheckpointOption = None,
    log: LogOption = None,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Train the restorer (reconstruct/adapt/restore.py) on clean volumes damaged as the front
    end sees damage (blur, folds, cracks, missing tissue), with the L1 loss and the adapter's
    segmentation-consistency loss; `connectome reconstruct --restore OUT` then restores the
    voxels a prepared volume's defects.zarr flags."""
    from connectome_query.reconstruct import io, training
    from connectome_query.reconstruct.adapt import model, restore_training
    from connectome_query.reconstruct.engine.grid import parse_triple
    from connectome_query.reconstruct.engine.manifest import file_sha256

    if steps < 1:
        raise fail("--steps must be at least 1", 2)
    try:
        cfg = restore_training.RestoreConfig(parse_triple(crop, "--crop"), batch, lr,
                                             segmentation_weight, seed)
        cfg.check()
    except ValueError as e:
        raise fail(str(e), 2) from e
    ckpt, log_path = _run_files(output, checkpoint, log)
    net_path = net or training.DEFAULT_NET
    try:
        imgs, vs = _volumes(_dirs(dirs, "DIRS"), "DIRS")
        seg = _segmenter(net_path, vs) if segmentation_weight > 0 else None
    except ReconstructError as e:
        raise fail(str(e), 1) from e
    meta = {model.VOXEL_SIZE_KEY: list(vs), "volumes": len(imgs),
            "segmenter": {"sha256": file_sha256(Path(net_path))} if seg is not None else None}
    t0 = time.perf_counter()
    with _bar("training") as prog:
        task = prog.add_task("training", total=steps)

        def tick(i: int, losses: dict[str, float]) -> None:
            prog.update(task, completed=i + 1, description=(
                f"L1 {losses['l1']:.3f}  seg {losses['seg']:.3f}"))

        try:
            restorer = restore_training.train(imgs, steps, ckpt, seg, cfg, log_path, tick, meta)
        except ValueError as e:
            raise fail(str(e), 1) from e
    restorer.meta["train_seconds_this_run"] = round(time.perf_counter() - t0, 1)
    io.save_restorer(output, restorer)
    fl = {k: "-" if v is None else f"{v:.3f}"
          for k, v in restorer.meta["final_losses"].items()}
    out.print(f"wrote {output} (last steps: L1 {fl['l1']}, seg {fl['seg']}); losses in "
              f"{log_path}")
