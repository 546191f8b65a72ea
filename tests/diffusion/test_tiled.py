"""Tests for the tiled warm-started solves (wgimask.diffusion.tiled)."""

import numpy as np
import pytest
from helpers import photo_crop

from wgimask.baselines import inpaint, random_mask
from wgimask.diffusion import multigrid, tiled
from wgimask.masks import densification


@pytest.fixture
def small_tiles(monkeypatch):
    # Tiles of 32 px with an 8 px pad: a 96 px photo has nine, most of them
    # with a pad on every side.
    monkeypatch.setattr(tiled, "TILE", 32)
    monkeypatch.setattr(tiled, "PAD", 8)


def test_tiles_reach_the_whole_image_solution_from_a_guess(small_tiles, monkeypatch):
    f = photo_crop("astronaut", 96)
    sparse = random_mask(f.shape, 0.1, seed=1)
    denser = sparse | random_mask(f.shape, 0.02, seed=2)
    exact = inpaint(f, denser, solver="direct")
    guess, _ = multigrid.solve_grid_multigrid(sparse, f, rtol=1e-8)
    u = tiled.tiled_solve(f, denser, guess, rtol=1e-8)
    # The pad's outer ring keeps the guess's values, so the tiles are close
    # to the solution, not equal to it; far closer than the guess.
    assert np.abs(u - exact).mean() < 0.01 * np.abs(guess - exact).mean()
    assert np.abs(u - exact).max() < 0.005
    assert np.array_equal(u[denser], f[denser])
    # The same numbers whatever the number of workers (disjoint writes).
    monkeypatch.setattr(tiled, "usable_cpu_count", lambda: 1)
    assert np.array_equal(tiled.tiled_solve(f, denser, guess, rtol=1e-8), u)


def test_without_a_guess_each_padded_tile_is_solved_on_its_own(small_tiles):
    f = photo_crop("astronaut", 96)
    mask = random_mask(f.shape, 0.1, seed=3)
    exact = inpaint(f, mask, solver="direct")
    u = tiled.tiled_solve(f, mask, None, rtol=1e-8)
    # The pad's edge is an image border there: 8 px are a few point
    # spacings at 10 %, so the tiles stay close to the whole-image solution.
    assert np.abs(u - exact).mean() < 2e-3
    assert np.array_equal(u[mask], f[mask])
    # A tile whose pad holds no known pixel has nothing to pin it: no
    # tiled result, the caller solves the whole image.
    sparse = np.zeros(f.shape[:2], dtype=bool)
    sparse[5, 5] = True
    assert tiled.tiled_solve(f, sparse, None, rtol=1e-8) is None


def test_densification_with_tiled_solves_is_as_good(monkeypatch):
    # A miniature of the 12 MP case: a pad of a few start spacings (10 %:
    # the start has 1 % of the pixels, about 10 px apart; 48 px tiles, 24 px
    # pads). Single small crops scatter by a few per cent either way, so the
    # mean over three photos is checked (docs/performance.md has the study
    # at full size).
    monkeypatch.setattr(tiled, "TILE", 48)
    monkeypatch.setattr(tiled, "PAD", 24)
    ratios = []
    for name in ("coffee", "astronaut", "chelsea"):
        f = photo_crop(name, 128)
        monkeypatch.setattr(densification, "TILED_PIXELS", 4_000_000)
        whole = densification.densification_mask(f, 0.1)
        monkeypatch.setattr(densification, "TILED_PIXELS", 0)
        tiles = densification.densification_mask(f, 0.1)
        assert tiles.sum() == whole.sum() == round(0.1 * 128 * 128)
        ratios.append(_mse(f, tiles) / _mse(f, whole))
    assert np.mean(ratios) < 1.02


def _mse(f, mask):
    return float(np.mean((inpaint(f, mask) - f) ** 2))
