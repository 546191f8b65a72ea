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
    u = tiled.tiled_warm_solve(f, denser, guess, rtol=1e-8)
    # The pad's outer ring keeps the guess's values, so the tiles are close
    # to the solution, not equal to it; far closer than the guess.
    assert np.abs(u - exact).mean() < 0.01 * np.abs(guess - exact).mean()
    assert np.abs(u - exact).max() < 0.005
    assert np.array_equal(u[denser], f[denser])
    # The same numbers whatever the number of workers (disjoint writes).
    monkeypatch.setattr(tiled, "usable_cpu_count", lambda: 1)
    assert np.array_equal(tiled.tiled_warm_solve(f, denser, guess, rtol=1e-8), u)


def test_densification_with_tiled_solves_is_as_good(small_tiles, monkeypatch):
    f = photo_crop("coffee", 96)
    whole = densification.densification_mask(f, 0.1)
    monkeypatch.setattr(densification, "TILED_PIXELS", 0)
    tiles = densification.densification_mask(f, 0.1)
    assert tiles.sum() == whole.sum() == round(0.1 * 96 * 96)

    def mse(mask):
        return float(np.mean((inpaint(f, mask) - f) ** 2))

    assert mse(tiles) < 1.02 * mse(whole)
