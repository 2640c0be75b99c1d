"""The run: an EM directory in, a run directory out (see RUN_DIR.md), scored when there is a truth.

Every stage runs on the engine (`reconstruct/engine`): Dask tasks over 3-D blocks, each read with
the halo it needs, so no process holds the volume. Inputs are checked before any slow step; the
run directory's manifest makes a second run with the same inputs finish only what is missing,
and refuses one with other inputs.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from connectome_query.reconstruct import (
    affinity_net,
    boundary,
    io,
    location,
    segment,
    skeleton,
    xp,
)
from connectome_query.reconstruct.adapt import restore_stage
from connectome_query.reconstruct.adapt import stage as adapt_stage
from connectome_query.reconstruct.engine import (
    cells,
    cluster,
    context,
    gaps,
    image,
    memory,
    predict,
    pyramid,
    scoring,
    segmentation,
    synapses,
)
from connectome_query.reconstruct.engine.grid import Triple
from connectome_query.reconstruct.engine.manifest import Manifest, array_identity, file_sha256
from connectome_query.reconstruct.engine.runner import Engine
from connectome_query.reconstruct.errors import ReconstructError
from connectome_query.reconstruct.ffn import stage as ffn_stage
from connectome_query.reconstruct.location import Where
from connectome_query.reconstruct.progress import Progress, Quiet
from connectome_query.reconstruct.training import DEFAULT_FFN, DEFAULT_NET, default_model

__all__ = ["DEFAULT_FFN", "DEFAULT_NET", "default_block", "default_model", "reconstruct"]


def default_block(shape: Triple, worker_memory: int, stride: int = 1) -> Triple:
    """The block for a worker of `worker_memory` bytes and a network of in-plane `stride`
    (`engine.memory.default_block`: the network's prediction tile counted)."""
    return memory.default_block(shape, worker_memory, stride)


def _check_net(net_path: Path, vs: tuple[float, float, float], em_dir: Where) -> int:
    """Refuse weights trained at another voxel size; the network's in-plane stride."""
    net = io.load_net(net_path)
    try:
        affinity_net.check_voxel_size(net, vs)
    except ValueError as e:
        raise ReconstructError(f"affinity network {net_path} does not fit "
                               f"{location.join(em_dir, 'volume.json')} field "
                               f"'voxel_size_nm': {e}") from e
    return affinity_net.net_stride(net)


def _model(model_path: Path | None, vs: tuple[float, float, float], seed: int,
           out: Path) -> Path:
    """The voxel classifier's file: the one given (checked), or one trained on synthetic
    volumes and saved in the run directory (kept when resuming)."""
    if model_path is not None:
        model = io.load_model(Path(model_path))
        if getattr(model, "format", None) != boundary.MODEL_FORMAT:
            raise ReconstructError(f"model: {model_path} is not a {boundary.MODEL_FORMAT} model")
        return Path(model_path)
    path = out / "model.joblib"
    if not path.exists():
        io.save_model(path, default_model(vs, seed))
    return path


def _identity(run: context.Run, info: dict[str, Any], image_id: dict[str, Any],
              affs_id: dict[str, Any] | None, model_id: str | None,
              defects_id: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a resumed run must share with the first: the volume and every parameter."""
    return {"volume": {"volume_json": info, "image": image_id,
                       **({"defects": defects_id} if defects_id else {})},
            "parameters": {"block_zyx": list(run.block),
                           "segmentation": dataclasses.asdict(run.params),
                           # the weights by content: the same weights from another
                           # install or checkout resume the run
                           "network": {"sha256": file_sha256(Path(run.net_path))}
                           if run.net_path else None,
                           "augment": run.augment, "affinities": affs_id,
                           "clefts": run.clefts, "classifier": model_id,
                           # only an FFN run names its segmenter: watershed runs keep the
                           # identity they had before there was a choice
                           **({"segmenter": {"name": "ffn", "sha256": file_sha256(
                               Path(run.ffn_path))}} if run.ffn_path else {}),
                           # likewise only a run with an adapter names it
                           **({"adapter": {"sha256": file_sha256(Path(run.adapter_path))}}
                              if run.adapter_path else {}),
                           **({"restorer": {"sha256": file_sha256(Path(run.restorer_path))}}
                              if run.restorer_path else {})}}


def _defects(em_dir: Where, info: dict[str, Any], shape: Triple
             ) -> tuple[Where | None, dict[str, Any] | None]:
    """The EM directory's defect masks (volume.json field 'defects', written by `connectome
    prepare`) and their identity, checked against the image's shape; (None, None) without."""
    name = info.get("defects")
    if name is None:
        return None, None
    path = location.join(em_dir, str(name))
    st = io.open_zarr(path, f"{location.join(em_dir, 'volume.json')} field 'defects'")
    if tuple(int(s) for s in st.shape) != shape:
        raise ReconstructError(f"defect masks {path} have shape {tuple(st.shape)}, the image "
                               f"{shape}")
    return path, array_identity(st, path)


def _inputs(em_dir: Where, affinities_path: Path | None) -> tuple[dict[str, Any], Any,
                                                                  dict[str, Any] | None]:
    info = io.read_volume_info(em_dir)
    img = io.open_image(em_dir, info)
    affs_id = None
    if affinities_path is not None:
        st = io.open_affinities(Path(affinities_path), tuple(info["shape_zyx"]))
        affs_id = array_identity(st, Path(affinities_path))
    return info, img, affs_id


def reconstruct(em_dir: str | Path, out_dir: Path, model_path: Path | None = None,
                affinities_path: Path | None = None, progress: Progress | None = None,
                params: segment.SegParams | None = None, net_path: Path | None = None,
                augment: bool = False, block: Triple | None = None,
                spec: cluster.ClusterSpec | None = None,
                clefts: str | None = None, segmenter: str = "watershed",
                ffn_path: Path | None = None,
                adapter_path: Path | None = None,
                restorer_path: Path | None = None) -> dict[str, Any]:
    """EM directory -> run directory (see RUN_DIR.md). Returns metrics (empty without truth).

    `em_dir` is a location (`location.parse`): a local path, `file://`, `s3://` or `gs://`; every
    read of it goes through TensorStore's kvstore for that location. The run directory is local
    (or a filesystem every worker mounts).

    Clefts come from the network's cleft channel unless `clefts="classifier"` or a voxel
    classifier (`model_path`) is given. `block` (z, y, x) defaults to `default_block`;
    `spec` says where the Dask cluster is (default: a LocalCluster sized to the machine).
    `segmenter="ffn"` segments with the flood-filling network (`ffn_path`, default the shipped
    weights) instead of the watershed. `adapter_path` (`connectome train-adapter`) translates
    the image into the segmenter's style first; every stage reads the translation.
    `restorer_path` (`connectome train-restorer`) restores the voxels the volume's defect
    flags mark (blur, folds, cracks, missing tissue); later stages read the restored image
    and take decisions from those voxels."""
    em, out = location.parse(em_dir), Path(out_dir)
    progress = progress or Quiet()
    spec = spec or cluster.ClusterSpec()
    t_start = time.perf_counter()
    info, img, affs_id = _inputs(em, affinities_path)
    shape: Triple = tuple(int(s) for s in img.shape)  # type: ignore[assignment]
    truth = io.read_truth_tables(em, shape, skeletons=False)  # scored block by block
    defects_path, defects_id = _defects(em, info, shape)
    vx, vy, vz = (float(v) for v in info["voxel_size_nm"])
    vs = (vz, vy, vx)
    source = "classifier" if (model_path is not None or clefts == "classifier") else "network"
    if clefts not in (None, "network", "classifier"):
        raise ReconstructError(f"clefts must be 'network' or 'classifier', got {clefts!r}")
    net = Path(net_path) if net_path is not None else DEFAULT_NET
    uses_net = affinities_path is None or source == "network"
    stride = _check_net(net, vs, em) if uses_net else 1
    if segmenter not in ("watershed", "ffn"):
        raise ReconstructError(f"segmenter must be 'watershed' or 'ffn', got {segmenter!r}")
    ffn = None
    if segmenter == "ffn":
        ffn = Path(ffn_path) if ffn_path is not None else DEFAULT_FFN
        ffn_stage.check_net(ffn, vs)
    elif ffn_path is not None:
        raise ReconstructError("ffn_path is for segmenter 'ffn'; the watershed does not use it")
    if adapter_path is not None:
        _check_adapter(Path(adapter_path), vs, affinities_path)
    if restorer_path is not None:
        restore_stage.check_restorer(Path(restorer_path), defects_path, em)
        if affinities_path is not None:
            raise ReconstructError("restorer: --restore repairs the image for the affinity "
                                   "network; it cannot be combined with --affinities")
    if block is None:
        block = default_block(shape, cluster.local_shape(spec)[2], stride)
    if min(block) < 1:
        raise ReconstructError(f"block shape must be three positive integers, got {block}")
    manifest = Manifest(out)
    run = context.Run(str(out.resolve()), location.describe(em), shape, vs, block,
                      params or segment.SegParams(), str(net.resolve()) if uses_net else None,
                      augment and uses_net,
                      str(Path(affinities_path).resolve()) if affinities_path else None,
                      source, None, truth is not None, segmenter,
                      str(ffn.resolve()) if ffn is not None else None,
                      location.describe(defects_path) if defects_path is not None else None,
                      str(Path(adapter_path).resolve()) if adapter_path is not None else None,
                      str(Path(restorer_path).resolve()) if restorer_path is not None else None,
                      image=io.image_name(info))
    seed = int(info.get("seed") or 0)
    model_id = None
    if source == "classifier":
        model_id = file_sha256(Path(model_path)) if model_path is not None else \
            f"trained on synthetic volumes for seed {seed}"
    resumed = manifest.open(_identity(run, info, array_identity(img, run.em_image), affs_id,
                                      model_id, defects_id))
    if source == "classifier":
        run = dataclasses.replace(run, model_path=str(_model(model_path, vs, seed,
                                                             out).resolve()))
    progress.note(f"{'resuming' if resumed else 'starting'} {out}: blocks of "
                  f"{'x'.join(map(str, block))} (z, y, x), {len(run.grid)} blocks")
    with cluster.connect(spec, progress.note) as client:
        engine = Engine(client, manifest, progress)
        client.run(context.forget)
        context.forget()
        notes: dict[str, Any] = {}
        result = _stages(engine, run, truth, notes)
    engine.timings["total_s"] = time.perf_counter() - t_start
    io.write_json(out / "run.json", _run_json(info, em, run, engine.timings,
                                              affinities_path, augment, notes))
    return result


def _check_adapter(path: Path, vs: tuple[float, float, float],
                        affinities_path: Path | None) -> None:
    """Refuse an adapter that does not fit, or one with affinities made elsewhere (they were
    not predicted from the translation)."""
    if affinities_path is not None:
        raise ReconstructError("adapter: --adapter translates the image for the affinity "
                               "network; it cannot be combined with --affinities")
    adapt_stage.check_adapter(path, vs)


def _stages(engine: Engine, run: context.Run, truth: dict[str, Any] | None,
            notes: dict[str, Any]) -> dict[str, Any]:
    out = Path(run.run_dir)
    if run.adapter_path:
        adapt_stage.translate(engine, run)
    if run.restorer_path:
        run, notes["restored_voxels"] = restore_stage.restore_image(engine, run)
    sections = image.sections_of(engine, run)
    affs = predict.affinities_and_clefts(engine, run, sections)
    if run.segmenter == "ffn":
        sizes = ffn_stage.segment(engine, run, sections, affs)
    else:
        sizes = segmentation.segment(engine, run, affs)
    sizes = gaps.fill_gaps(engine, run, sizes)
    pyramid.pyramid(engine, run)
    syn = synapses.detect(engine, run, sections)
    soma = cells.somata(engine, run)
    syn = cells.skeletons(engine, run, sizes, soma, syn)
    seg_df = skeleton.segment_table(soma, sizes, syn)
    io.write_table(out / "segments.parquet", seg_df, io.SEGMENT_COLUMNS)
    io.write_table(out / "synapses.parquet", syn, io.SYNAPSE_COLUMNS)
    if truth is None:
        return {}
    result = scoring.score(engine, run, affs, truth, syn, seg_df)
    io.write_json(out / "metrics.json", json.loads(json.dumps(result, default=float)))
    return result


def _run_json(info: dict[str, Any], em_dir: Where, run: context.Run, timings: dict[str, float],
              affinities_path: Path | None, augment: bool,
              notes: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"voxel_size_nm": [float(v) for v in info["voxel_size_nm"]],
            "shape_zyx": list(run.shape), "source": location.describe(em_dir),
            "seed": info.get("seed"), "created_by": io.CREATED_BY, "preset": info.get("preset"),
            "model": run.model_path if run.clefts == "classifier" else None,
            "clefts": run.clefts,
            "affinities": str(affinities_path) if affinities_path else
            f"predicted by {run.net_path}{' (8-fold flip/transpose averaged)' if augment else ''}",
            "block_zyx": list(run.block), "array_backend": xp.backend_name(),
            "segmenter": run.segmenter, "ffn": run.ffn_path,
            "adapter": {"path": run.adapter_path, "sha256": file_sha256(Path(run.adapter_path)),
                        "image": "translated.zarr"} if run.adapter_path else None,
            "restorer": {"path": run.restorer_path,
                         "sha256": file_sha256(Path(run.restorer_path)),
                         "image": "restored.zarr", "defects": "restored_defects.zarr",
                         "restored_voxels": (notes or {}).get("restored_voxels")}
            if run.restorer_path else None,
            "timings_s": {k: round(v, 3) for k, v in timings.items()}}
