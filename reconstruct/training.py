"""Training data and training: the voxel classifier (clefts) and the affinity network's volumes.

Training volumes are synthetic, with seeds far from the small ones tests and benchmarks evaluate
on, or EM directories that carry a ground truth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from connectome_query.reconstruct import boundary, io, synth
from connectome_query.reconstruct.errors import ReconstructError
from connectome_query.reconstruct.progress import Tick, no_progress

DEFAULT_NET = Path(__file__).parent / "models" / "affinity_unet.npz"
"""The affinity network shipped with the package (`connectome train-affinity-net` remakes it)."""
LEAN_NET = Path(__file__).parent / "models" / "affinity_unet_lean.npz"
"""The lean affinity network distilled from `DEFAULT_NET` (`connectome distil-affinity-net`)."""
COARSE_NET = Path(__file__).parent / "models" / "affinity_unet_coarse.npz"
"""The coarse affinity network distilled from `DEFAULT_NET`: its widths at in-plane stride 2
(4x fewer positions; `affinity_net.STRIDE_KEY`)."""
SHIPPED_NETS = {"full": DEFAULT_NET, "lean": LEAN_NET, "coarse": COARSE_NET}
"""The shipped affinity networks by name (`--net full`, `--net lean`, `--net coarse`)."""
DEFAULT_FFN = Path(__file__).parent / "models" / "ffn.npz"
"""The flood-filling network shipped with the package (`connectome train-ffn` remakes it)."""
NET_TRAINING_SEED = 2_000_003
"""First seed of the affinity network's synthetic training volumes."""
_MODEL_SEED = 1_000_003  # first seed of the voxel classifier's training volumes


def net_file(name_or_path: str | Path | None) -> Path | None:
    """The weights file for a shipped network's name (`SHIPPED_NETS`), else the path given
    (None: the pipeline's default)."""
    if name_or_path is None:
        return None
    return SHIPPED_NETS.get(str(name_or_path), Path(name_or_path))


def default_model(voxel_size_zyx: tuple[float, float, float], seed: int,
                  tick: Tick = no_progress) -> boundary.AffinityModel:
    """Train on fresh synthetic volumes (clean + noisy; seeds never used for evaluation)."""
    imgs, labs, cls = [], [], []
    for k, preset in enumerate(("clean", "noisy", "clean")):
        tick(f"training data {k + 1}/3", 0.1 * k)
        s = synth.synthesize(synth.SynthConfig((48, 128, 128), voxel_size_zyx, preset,
                                               seed=_MODEL_SEED + 7919 * seed + k))
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
        s = synth.synthesize(synth.SynthConfig(shape_zyx, voxel_size_zyx,
                                               ("clean", "noisy")[k % 2], seed=first_seed + k))
        out.append((s.image, s.labels, s.clefts != 0))
    return out


def train_from_dirs(em_dirs: list[Path], seed: int = 0) -> boundary.AffinityModel:
    """Train the voxel classifier on EM directories that carry ground truth."""
    imgs, labs, cls = [], [], []
    vs: tuple[float, float, float] | None = None
    for d in em_dirs:
        info = io.read_volume_info(d)
        v = info["voxel_size_nm"]
        this = (float(v[2]), float(v[1]), float(v[0]))
        if vs is not None and this != vs:
            raise ReconstructError(f"training: {d} has voxel size {v}, others {vs[::-1]}")
        vs = this
        img = io.read_image(d, info)
        truth = io.read_truth(d, img.shape)
        if truth is None:
            raise ReconstructError(f"training: {d} has no truth/ directory")
        imgs.append(img)
        labs.append(truth["segmentation"])
        cls.append(io.read_truth_clefts(d) != 0)
    assert vs is not None
    return boundary.train(imgs, labs, cls, vs, seed=seed,
                          trained_on=", ".join(str(d) for d in em_dirs))
