"""The coarse affinity network (in-plane stride 2: each 2x2 block of pixels in, 2x2 outputs out):
its reach against its halo, tiled against untiled prediction, the engine against the
whole-volume prediction, and the engine's memory arithmetic for tiles and blocks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from connectome_query.reconstruct import affinity_net, distil, io, pipeline, synth, training
from connectome_query.reconstruct.engine import memory
from connectome_query.reconstruct.engine.cluster import ClusterSpec
from tests.support.reconstruct import read_volume


@pytest.fixture(scope="module")
def coarse() -> affinity_net.AffinityNet:
    return io.load_net(training.COARSE_NET)


def _params(net: affinity_net.AffinityNet) -> Any:
    import jax.numpy as jnp

    return [(jnp.asarray(w), jnp.asarray(b)) for w, b in net.params]


def test_coarse_net_is_the_shipped_topology_at_stride_2(coarse: affinity_net.AffinityNet,
                                                        shipped: affinity_net.AffinityNet
                                                        ) -> None:
    assert affinity_net.net_stride(coarse) == 2 and affinity_net.net_stride(shipped) == 1
    widths = tuple(coarse.meta[affinity_net.WIDTHS_KEY])
    for (w, _b), (cin, cout, k) in zip(coarse.params, affinity_net.layers(widths, 2),
                                       strict=True):
        assert w.shape == (cout, cin, *k)
    # multiply-adds per output voxel from the weight arrays: every layer on a quarter of
    # the voxels, the pooled ones (2, 3) on a sixteenth
    by_arrays = sum(w.size * (0.25 if i in (2, 3) else 1.0)
                    for i, (w, _b) in enumerate(coarse.params)) / 4
    assert distil.multiply_adds(widths, 2) == pytest.approx(by_arrays)
    assert distil.multiply_adds(affinity_net.WIDTHS) / by_arrays > 3.5


def test_coarse_start_is_the_teacher_on_the_block_averaged_image(
        shipped: affinity_net.AffinityNet) -> None:
    """An image constant on each 2x2 block: the coarse start gives at every pixel the
    teacher's output on the half-resolution image at its block."""
    import jax.numpy as jnp

    half = np.random.default_rng(1).normal(size=(1, 1, 9, 16, 20)).astype(np.float32)
    full = np.repeat(np.repeat(half, 2, axis=3), 2, axis=4)
    start = affinity_net.AffinityNet(distil.coarse_start(shipped, 2),
                                     {affinity_net.STRIDE_KEY: 2})
    got = np.asarray(affinity_net.forward(_params(start), jnp.asarray(full), 2))
    want = np.asarray(affinity_net.forward(_params(shipped), jnp.asarray(half)))
    np.testing.assert_allclose(got, np.repeat(np.repeat(want, 2, axis=3), 2, axis=4),
                               atol=1e-4)


def test_coarse_halo_covers_its_reach(coarse: affinity_net.AffinityNet) -> None:
    """Perturb one input voxel at each of the 16 in-plane positions modulo 4 (pixel groups
    and pooling pairs): no output further than the halo moves."""
    import jax.numpy as jnp

    ps = _params(coarse)
    x = np.random.default_rng(0).normal(size=(1, 1, 17, 64, 64)).astype(np.float32)
    base = np.asarray(affinity_net.forward(ps, jnp.asarray(x), 2))
    reach = np.zeros(3, int)
    for dy in range(4):
        for dx in range(4):
            at = (8, 32 + dy, 32 + dx)
            x2 = x.copy()
            x2[(0, 0, *at)] += 5.0
            moved = np.abs(np.asarray(affinity_net.forward(ps, jnp.asarray(x2), 2)) - base)
            idx = np.argwhere(moved.max(axis=(0, 1)) > 1e-6)
            reach = np.maximum(reach, np.abs(idx - np.array(at)).max(axis=0))
    halo = affinity_net.halo(2)
    assert reach[1] > affinity_net.HALO[1]  # wider than the full-resolution network's
    assert all(r <= h for r, h in zip(reach, halo, strict=True)), (reach, halo)
    assert all(h % affinity_net.align(2) == 0 for h in halo[1:])


def test_tiled_coarse_prediction_equals_the_untiled_one(coarse: affinity_net.AffinityNet
                                                        ) -> None:
    """A volume whose in-plane sizes are not multiples of 4, in many small tiles and in one."""
    img = synth.synthesize(synth.SynthConfig((18, 70, 54), (40.0, 16.0, 16.0), "clean",
                                             seed=5)).image
    affs, cleft = affinity_net.predict(coarse, img, tile=(64, 256, 256))
    assert affs.shape == (3, 18, 70, 54) and cleft.shape == (18, 70, 54)
    assert not affs[0, 0].any() and not affs[1, :, 0].any() and not affs[2, :, :, 0].any()
    tiled, tiled_cleft = affinity_net.predict(coarse, img, tile=(5, 24, 20))
    np.testing.assert_allclose(tiled, affs, atol=1e-5)
    np.testing.assert_allclose(tiled_cleft, cleft, atol=1e-5)


@pytest.mark.parametrize("shape", [(14, 70, 54), (256, 1024, 1024), (7, 9, 11)])
@pytest.mark.parametrize("limit", [(64, 256, 256), (16, 97, 97), (8, 20, 20)])
def test_coarse_tiles_are_aligned_and_within_the_limit(shape: tuple[int, int, int],
                                                       limit: tuple[int, int, int]) -> None:
    tile = affinity_net.tile_shape(shape, limit, 2)
    for axis, (s, t, lim) in enumerate(zip(shape, tile, limit, strict=True)):
        assert t <= lim and -(-s // t) * t >= s
        if axis > 0:
            assert t % 4 == 0


@pytest.mark.parametrize("limit", [int(1.5e9), int(2e9), 4 * 2**30, 16 * 2**30])
@pytest.mark.parametrize("stride", [1, 2])
def test_tile_and_block_fit_the_worker_memory(limit: int, stride: int) -> None:
    """The chosen tile's estimated peak fits the budget and the next larger tile's does not;
    the block's stages fit; a larger budget never gets a smaller tile or block."""
    shape = (256, 1024, 1024)
    block = memory.default_block(shape, limit, stride)
    assert pipeline.default_block(shape, limit, stride) == block
    tile = memory.prediction_tile(block, limit, stride)
    i = memory.TILES.index(tile)
    peak = memory.prediction_peak(block, tile, stride)
    assert peak <= memory.BUDGET * limit
    assert (memory.IMPORTS_BYTES + np.prod(block) * memory.BYTES_PER_VOXEL
            <= memory.BUDGET * limit)
    if i > 0:
        assert memory.prediction_peak(block, memory.TILES[i - 1], stride) > memory.BUDGET * limit
    # the estimate by hand: imports, runtime, the block's arrays, the tile with its context
    used = affinity_net.tile_shape(block, tile, stride)
    ctx = [t + 2 * h for t, h in zip(used, affinity_net.halo(stride), strict=True)]
    assert peak == (memory.IMPORTS_BYTES + memory.COMPILE_BYTES
                    + np.prod(block) * memory.PREDICT_BYTES_PER_VOXEL
                    + np.prod(ctx) * memory.NET_BYTES_PER_VOXEL[stride])
    more = memory.default_block(shape, 2 * limit, stride)
    assert np.prod(more) >= np.prod(block)
    assert memory.TILES.index(memory.prediction_tile(block, 2 * limit, stride)) <= i


def test_coarse_net_needs_less_tile_memory() -> None:
    assert memory.TILES.index(memory.prediction_tile((64, 256, 256), int(2e9), 2)) < \
        memory.TILES.index(memory.prediction_tile((64, 256, 256), int(2e9), 1))


@pytest.mark.slow
def test_engine_with_the_coarse_net_equals_the_whole_volume_prediction(
        tmp_path: Path, clean_dir: Path, cluster: ClusterSpec,
        coarse: affinity_net.AffinityNet) -> None:
    """Blocks of the engine's network grid (16 x 64 x 64 here: four along z) against the
    whole volume predicted in one process."""
    out = tmp_path / "run"
    pipeline.reconstruct(clean_dir, out, block=(16, 30, 30), spec=cluster,
                         net_path=training.COARSE_NET)
    img = io.read_image(clean_dir, io.read_volume_info(clean_dir))
    affs, cleft = affinity_net.predict(coarse, img)
    np.testing.assert_allclose(read_volume(out / "affinities.zarr"), affs, atol=1e-5)
    np.testing.assert_allclose(read_volume(out / "clefts.zarr"), cleft, atol=1e-5)


def test_coarse_net_by_name_and_bad_stride(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from connectome_query.cli.main import app

    assert training.net_file("coarse") == training.COARSE_NET
    r = CliRunner().invoke(app, ["distil-affinity-net", str(tmp_path / "x.npz"),
                                 "--stride", "3"])
    assert r.exit_code == 2
    assert "--stride" in r.output
    arrays = affinity_net.to_arrays(io.load_net(training.COARSE_NET))
    arrays["meta"] = np.array(str(arrays["meta"]).replace('"xy_stride": 2', '"xy_stride": 4'))
    with pytest.raises(ValueError, match="xy_stride"):
        affinity_net.from_arrays(arrays)
