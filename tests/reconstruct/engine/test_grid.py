"""Boxes and block grids."""

from __future__ import annotations

import numpy as np
import pytest

from connectome_query.reconstruct.engine.grid import Box, Grid, aligned, even_yx, inner_chunks


def test_blocks_tile_the_volume_once() -> None:
    g = Grid((10, 7, 5), (4, 3, 5))
    assert g.counts == (3, 3, 1) and len(g) == 9
    seen = np.zeros((10, 7, 5), int)
    for n, box in g.boxes():
        seen[box.slices()] += 1
        assert g.number(g.index(n)) == n
    assert (seen == 1).all()
    assert g.box(8) == Box((8, 6, 0), (10, 7, 5))
    assert g.lower_neighbour(4, 0) == 1 and g.lower_neighbour(1, 0) is None
    pts = np.array([[0, 0, 0], [9, 6, 4], [4, 3, 0]])
    assert g.of_points(pts).tolist() == [0, 8, 4]


def test_halos_are_clipped_to_the_volume() -> None:
    b = Box((0, 3, 4), (4, 6, 5))
    assert b.grow((2, 2, 2), (10, 7, 5)) == Box((0, 1, 2), (6, 7, 5))
    assert b.intersect(Box((2, 0, 0), (3, 4, 9))) == Box((2, 3, 4), (3, 4, 5))
    assert b.intersect(Box((5, 0, 0), (6, 4, 9))) is None


def test_chunk_shapes() -> None:
    assert inner_chunks((64, 256, 256)) == (32, 64, 64)
    assert inner_chunks((7, 13, 100)) == (7, 13, 50)
    assert aligned((7, 13, 17), (32, 128, 128)) == (32, 128, 128)
    assert aligned((64, 200, 256), (32, 128, 128)) == (64, 256, 256)
    assert even_yx((7, 13, 16)) == (7, 14, 16)


def test_bad_block_shape() -> None:
    with pytest.raises(ValueError, match="positive"):
        Grid((4, 4, 4), (0, 1, 1))
