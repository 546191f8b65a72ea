"""Tests for non-local pixel exchange (wgimask.masks.exchange)."""

import numpy as np
import pytest
from helpers import diffusion_mae, photo_crop

from wgimask.baselines import (
    nonlocal_pixel_exchange,
    probabilistic_sparsification,
    random_mask,
)
from wgimask.diffusion.inpainting import grid, solve_direct
from wgimask.masks.exchange import IncrementalInpainter


def test_low_rank_updates_match_a_fresh_solve():
    f = photo_crop("coffee", 20)
    g = grid(20, 20)
    order = g.order
    values = f.reshape(-1, 3)[order]
    known = random_mask((20, 20), 0.1, seed=2).ravel()[order]
    # A small rank limit forces several refactorisations on the way.
    state = IncrementalInpainter(g, values, known, max_rank=6)
    rng = np.random.default_rng(0)
    for step in range(25):
        add = int(rng.choice(np.flatnonzero(~state.known)))
        remove = int(rng.choice(np.flatnonzero(state.known)))
        err, new = state.trial(add, remove)
        u = state.trial_inpainting()
        trial = state.known.copy()
        trial[add], trial[remove] = True, False
        flat = np.empty_like(trial)
        flat[order] = trial
        expected = solve_direct(g, flat, f.reshape(-1, 3))[order]
        assert np.abs(u.T - expected).max() < 1e-10
        assert abs(err - np.abs(expected - values).mean()) < 1e-12
        if step % 3 != 2:
            state.accept(add, remove)
            assert state.error == err
            assert np.array_equal(state.u, u)
        else:
            state.reject(new)


def test_keeps_the_count_and_never_increases_the_error():
    f = photo_crop("astronaut", 32)
    start = random_mask(f.shape, 0.1, seed=4)
    mask = nonlocal_pixel_exchange(f, start, cycles=2, seed=0)
    assert mask.dtype == bool and mask.shape == start.shape
    assert mask.sum() == start.sum()
    assert diffusion_mae(f, mask) < diffusion_mae(f, start)
    # From an already exchanged mask it still cannot get worse.
    again = nonlocal_pixel_exchange(f, mask, cycles=1, seed=1)
    assert again.sum() == start.sum()
    assert diffusion_mae(f, again) <= diffusion_mae(f, mask)


def test_ps_then_nlpe_ranks_below_ps_and_random():
    f = photo_crop("chelsea", 40)
    ps = probabilistic_sparsification(f, 0.1, seed=0)
    nlpe = nonlocal_pixel_exchange(f, ps, seed=0)
    rnd = random_mask(f.shape, 0.1, seed=0)
    assert diffusion_mae(f, nlpe) < diffusion_mae(f, ps) < diffusion_mae(f, rnd)


def test_repeats_exactly_for_a_seed():
    f = photo_crop("coffee", 24)
    start = random_mask(f.shape, 0.1, seed=0)
    a = nonlocal_pixel_exchange(f, start, cycles=1, seed=3)
    b = nonlocal_pixel_exchange(f, start, cycles=1, seed=3)
    assert np.array_equal(a, b)


def test_trivial_cases_return_the_mask():
    f = photo_crop("camera", 12)
    full = np.ones((12, 12), dtype=bool)
    assert np.array_equal(nonlocal_pixel_exchange(f, full), full)
    start = random_mask(f.shape, 0.2, seed=1)
    assert np.array_equal(nonlocal_pixel_exchange(f, start, cycles=0), start)


def test_bad_input_is_rejected():
    f = np.zeros((8, 8, 3))
    good = random_mask((8, 8), 0.25)
    with pytest.raises(ValueError, match="empty"):
        nonlocal_pixel_exchange(f, np.zeros((8, 8), dtype=bool))
    with pytest.raises(ValueError, match="shape"):
        nonlocal_pixel_exchange(f, np.ones((9, 8), dtype=bool))
    with pytest.raises(ValueError, match="binary"):
        nonlocal_pixel_exchange(f, good * 2)
    with pytest.raises(ValueError, match="candidates"):
        nonlocal_pixel_exchange(f, good, candidates=0)
    with pytest.raises(ValueError, match="removal_candidates"):
        nonlocal_pixel_exchange(f, good, removal_candidates=0)
    with pytest.raises(ValueError, match="candidate_sampling"):
        nonlocal_pixel_exchange(f, good, candidate_sampling="greedy")
    for cycles in (-1, -0.25, float("nan"), float("inf"), "x"):
        with pytest.raises(ValueError, match="cycles"):
            nonlocal_pixel_exchange(f, good, cycles=cycles)


def test_fractional_cycles_run_that_share_of_the_steps():
    f = photo_crop("astronaut", 24)
    start = random_mask(f.shape, 0.1, seed=4)  # 58 points
    # A quarter cycle is round(58 / 4) = 15 steps: equal to the first 15
    # steps of a full cycle with the same seed (the same random draws).
    quarter = nonlocal_pixel_exchange(f, start, cycles=0.25, seed=2)
    assert quarter.sum() == start.sum()
    assert diffusion_mae(f, quarter) <= diffusion_mae(f, start)
    assert not np.array_equal(quarter, start)
    full = nonlocal_pixel_exchange(f, start, cycles=1, seed=2)
    assert diffusion_mae(f, full) <= diffusion_mae(f, quarter)
    # Too few steps to round up to one: the mask comes back unchanged.
    assert np.array_equal(nonlocal_pixel_exchange(f, start, cycles=0.001), start)


def test_laplacian_residual_is_that_of_the_inpainting():
    f = photo_crop("coffee", 16)
    g = grid(16, 16)
    known = random_mask((16, 16), 0.2, seed=1).ravel()
    state = IncrementalInpainter(g, f.reshape(-1, 3)[g.order], known[g.order])
    u = solve_direct(g, known, f.reshape(-1, 3))  # (N, 3), raster order
    expected = np.abs(g.laplacian @ u).sum(axis=1)[g.order]
    pixels = np.flatnonzero(state.known)
    assert np.allclose(state.laplacian_residual(pixels), expected[pixels])
    # Off the mask the inpainting is harmonic: zero residual.
    assert np.abs(expected[~state.known]).max() < 1e-10


@pytest.mark.parametrize("sampling", ["uniform", "error"])
def test_removal_ranking_and_error_sampling_keep_the_guarantees(sampling):
    f = photo_crop("astronaut", 24)
    start = random_mask(f.shape, 0.1, seed=4)
    mask = nonlocal_pixel_exchange(
        f, start, cycles=1, seed=0, removal_candidates=4, candidate_sampling=sampling
    )
    assert mask.sum() == start.sum()
    assert diffusion_mae(f, mask) < diffusion_mae(f, start)
    again = nonlocal_pixel_exchange(
        f, start, cycles=1, seed=0, removal_candidates=4, candidate_sampling=sampling
    )
    assert np.array_equal(mask, again)


def test_compiled_column_solve_equals_superlu():
    f = photo_crop("astronaut", 24)
    g = grid(24, 24)
    values = f.reshape(-1, 3)[g.order]
    known = random_mask((24, 24), 0.1, seed=5).ravel()[g.order]
    fast = IncrementalInpainter(g, values, known, max_rank=8)
    slow = IncrementalInpainter(g, values, known, max_rank=8, compiled_columns=False)
    assert fast._factors is not None and slow._factors is None
    rng = np.random.default_rng(1)
    for _ in range(20):
        add = int(rng.choice(np.flatnonzero(~fast.known)))
        remove = int(rng.choice(np.flatnonzero(fast.known)))
        (err_fast, new_fast), (err_slow, new_slow) = (
            state.trial(add, remove) for state in (fast, slow)
        )
        assert abs(err_fast - err_slow) < 1e-13
        assert np.abs(fast.trial_inpainting() - slow.trial_inpainting()).max() < 1e-12
        if err_fast < fast.error:
            fast.accept(add, remove)
            slow.accept(add, remove)
        else:
            fast.reject(new_fast)
            slow.reject(new_slow)
    assert np.array_equal(fast.known, slow.known)


def test_accept_needs_the_pending_trial():
    f = photo_crop("coffee", 16)
    g = grid(16, 16)
    known = random_mask((16, 16), 0.2, seed=0).ravel()[g.order]
    state = IncrementalInpainter(g, f.reshape(-1, 3)[g.order], known)
    outside = np.flatnonzero(~state.known)
    inside = np.flatnonzero(state.known)
    a, b = int(outside[0]), int(inside[0])
    with pytest.raises(ValueError, match="not the pending trial"):
        state.accept(a, b)  # no trial yet
    with pytest.raises(ValueError, match="no trial is pending"):
        state.trial_inpainting()
    _, new = state.trial(a, b)
    with pytest.raises(ValueError, match="not the pending trial"):
        state.accept(int(outside[1]), b)  # another swap
    state.reject(new)
    with pytest.raises(ValueError, match="not the pending trial"):
        state.accept(a, b)  # rejected
