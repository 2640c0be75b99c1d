"""The flood-filling network: a 3-D residual convolution stack (JAX; no I/O).

Januszewski et al. 2018: the network sees a field of view (FOV) of the image and of the object
mask grown so far (logits), and returns updated mask logits for the whole FOV (the input mask
plus the stack's output). Our FOV is 13 x 33 x 33 voxels (z, y, x): about 530 nm each way at
40 x 16 x 16 nm, the paper's 33 x 33 x 17 scaled to our anisotropy. One in-plane convolution
takes the two input channels to `WIDTH`, `MODULES` residual modules of two 3 x 3 x 3 convolutions
follow, and a 1 x 1 x 1 convolution gives the logit update.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from connectome_query.reconstruct import weights

FFN_FORMAT = "connectome-query/ffn/1"
FOV = (13, 33, 33)
"""Field of view (z, y, x) in voxels; every size is odd so that the FOV has a centre voxel."""
DELTA = (3, 12, 12)
"""How far (z, y, x) the FOV moves in one step, and where its faces for movement lie. The
dilated stack sees 16 voxels either way in plane, so a 12-voxel step (beyond the paper's
quarter of the FOV) still lands where the network has seen the image; it costs several times
fewer FOV predictions than 8 (the first weights' step, which they were trained with)."""
WIDTH = 12
MODULES = 2
DILATIONS = (1, 2, 4, 8)
"""In-plane dilation of each 3 x 3 x 3 convolution of the modules: the stack then sees 16
voxels either way in y and x (4 in z), the whole FOV from its centre, as the paper's deeper
stack does; without it (all 1, the first weights) it sees 5, short of the FOV's faces."""
VOXEL_SIZE_KEY = "voxel_size_nm_zyx"

P_EMPTY = 0.05
"""The mask's prior outside the object (the paper's 0.05), and ..."""
P_SEED = 0.95
"""... at the seed voxel."""


def logit(p: float) -> float:
    return float(np.log(p / (1.0 - p)))


Params = weights.Params


def layers(width: int = WIDTH, modules: int = MODULES) -> list[tuple[int, int, tuple[int, int,
                                                                                      int]]]:
    """(in channels, out channels, kernel z, y, x) of every convolution, in order."""
    out = [(2, width, (1, 3, 3))]
    for _ in range(modules):
        out += [(width, width, (3, 3, 3)), (width, width, (3, 3, 3))]
    return [*out, (width, 1, (1, 1, 1))]


@dataclass
class FFN:
    """Weights of a flood-filling network with metadata (how it was trained)."""

    params: Params
    meta: dict[str, Any] = field(default_factory=dict)
    format: str = FFN_FORMAT

    @property
    def fov(self) -> tuple[int, int, int]:
        return tuple(int(v) for v in self.meta.get("fov_zyx", FOV))  # type: ignore[return-value]

    @property
    def delta(self) -> tuple[int, int, int]:
        return tuple(int(v) for v in self.meta.get("delta_zyx", DELTA))  # type: ignore[return-value]

    @property
    def dilations(self) -> tuple[int, ...]:
        """Per module convolution; weights saved without them had none (all 1)."""
        n = 2 * int(self.meta.get("modules", MODULES))
        return tuple(int(v) for v in self.meta.get("dilations", [1] * n))


def init_params(seed: int = 0, width: int = WIDTH, modules: int = MODULES) -> Params:
    """He-initialised weights; the last layer starts at zero (the network first returns its
    input mask unchanged)."""
    rng = np.random.default_rng(seed)
    out: Params = []
    spec = layers(width, modules)
    for i, (cin, cout, k) in enumerate(spec):
        fan_in = cin * int(np.prod(k))
        scale = 0.0 if i == len(spec) - 1 else np.sqrt(2.0 / fan_in)
        if 0 < i < len(spec) - 1 and i % 2 == 0:  # second conv of a module: small
            scale *= 0.3
        w = (rng.standard_normal((cout, cin, *k)) * scale).astype(np.float32)
        out.append((w, np.zeros(cout, np.float32)))
    return out


def forward(params: Params, image: Any, mask: Any,
            dilations: Sequence[int] | None = None) -> Any:
    """Updated mask logits (N, z, y, x) from normalised images and mask logits (N, z, y, x);
    `dilations`: in-plane, one per module convolution (default none)."""
    import jax
    import jax.numpy as jnp

    relu = jax.nn.relu
    dil = list(dilations) if dilations is not None else [1] * (len(params) - 2)
    h = relu(weights.conv3d(jnp.stack([image, mask], axis=-1), params[0]))
    for m in range((len(params) - 2) // 2):
        r = relu(weights.conv3d(h, params[1 + 2 * m], dil[2 * m]))
        h = relu(h + weights.conv3d(r, params[2 + 2 * m], dil[2 * m + 1]))
    return mask + weights.conv3d(h, params[-1])[..., 0]


def to_arrays(net: FFN) -> dict[str, np.ndarray]:
    """Weights as named arrays (for npz), metadata as a JSON string array."""
    return weights.to_arrays(net.format, net.meta, net.params)


def from_arrays(arrays: dict[str, np.ndarray]) -> FFN:
    """Inverse of `to_arrays`; checks the format and every layer's shape."""
    meta = weights.read_format(arrays, FFN_FORMAT)
    spec = layers(int(meta.get("width", WIDTH)), int(meta.get("modules", MODULES)))
    net = FFN(params=weights.read_params(arrays, spec), meta=meta)
    if len(net.dilations) != len(spec) - 2 or min(net.dilations) < 1:
        raise ValueError(f"dilations {list(net.dilations)} must be {len(spec) - 2} sizes of at "
                         "least 1")
    return net


def check_voxel_size(net: FFN, voxel_size_zyx: Sequence[float], rel_tol: float = 0.01) -> None:
    """Refuse a volume whose voxel size differs from the training volumes'."""
    trained = net.meta.get(VOXEL_SIZE_KEY)
    if trained is None:
        raise ValueError(f"the network's metadata lacks {VOXEL_SIZE_KEY!r}; retrain it with "
                         "`connectome train-ffn`")
    if len(trained) != 3 or any(abs(float(t) - float(v)) > rel_tol * float(t)
                                for t, v in zip(trained, voxel_size_zyx, strict=False)):
        raise ValueError(f"the network was trained at voxel size {list(trained)[::-1]} nm "
                         f"(x, y, z) but the volume has "
                         f"{[float(v) for v in voxel_size_zyx][::-1]} nm")


class NetPredictor:
    """A compiled network as the inference loop's predictor: (FOV corner, image, mask
    logits) -> new mask logits, all (z, y, x) of the FOV's shape; `many` does a stack of
    FOVs in one call. Every call runs a batch of exactly `batch` FOVs (padded), so the network
    is compiled once and a FOV's logits do not depend on what shares its call. One by default:
    on the CPU a stack of FOVs costs about as much per FOV as one alone, so a padded partial
    stack (one seed order still filling) is only waste."""

    def __init__(self, net: FFN, batch: int = 1) -> None:
        import jax

        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch}")
        self.net = net
        self.batch = batch
        self.params = [(jax.numpy.asarray(w), jax.numpy.asarray(b)) for w, b in net.params]
        self._fn = jax.jit(functools.partial(forward, dilations=net.dilations))

    def __call__(self, lo: tuple[int, int, int], image: np.ndarray,
                 mask: np.ndarray) -> np.ndarray:
        return self.many([lo], image[None], mask[None])[0]

    def many(self, corners: Sequence[tuple[int, int, int]], images: np.ndarray,
             masks: np.ndarray) -> np.ndarray:
        n = len(images)
        out = []
        for i in range(0, n, self.batch):
            a = np.zeros((self.batch, *images.shape[1:]), np.float32)
            m = np.zeros_like(a)
            k = min(self.batch, n - i)
            a[:k], m[:k] = images[i:i + k], masks[i:i + k]
            out.append(np.asarray(self._fn(self.params, a, m))[:k])
        return np.concatenate(out)
