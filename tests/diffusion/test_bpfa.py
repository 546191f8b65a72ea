"""Tests for BPFA inpainting (wgimask.diffusion.bpfa)."""

import numpy as np
import pytest

from wgimask.baselines import random_mask
from wgimask.diffusion.bpfa import BPFAInfo, inpaint_bpfa

# Small settings: the tests check behaviour, not quality.
FAST = {"patch_size": 4, "atoms": 8, "iterations": 6, "samples": 3}


def _smooth(h: int, w: int, c: int | None = 3) -> np.ndarray:
    """A smooth test image in [0, 1] with some structure."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    grey = 0.5 + 0.3 * np.sin(4 * x + 2 * y) * np.cos(3 * y)
    if c is None:
        return grey
    return np.stack([grey, 1 - grey, 0.5 * grey + 0.2][:c], axis=-1)


@pytest.mark.parametrize("channels", [None, 1, 3])
def test_known_pixels_are_kept_and_shape_matches(channels):
    f = _smooth(16, 20, channels)
    mask = random_mask(f.shape, 0.2, seed=3)
    u = inpaint_bpfa(f, mask, **FAST)
    assert u.shape == f.shape
    assert u.dtype == np.float64
    assert np.array_equal(u[mask], f[mask])
    assert np.all(np.isfinite(u))


def test_constant_image_stays_constant():
    f = np.full((12, 12, 3), [0.2, 0.5, 0.8])
    mask = random_mask(f.shape, 0.1, seed=0)
    u = inpaint_bpfa(f, mask, **FAST)
    assert np.abs(u - f).max() < 1e-6


def test_float32_is_kept():
    f = _smooth(10, 10).astype(np.float32)
    mask = random_mask(f.shape, 0.3, seed=1)
    u = inpaint_bpfa(f, mask, **FAST)
    assert u.dtype == np.float32
    assert np.array_equal(u[mask], f[mask])
    assert inpaint_bpfa(f[:, :, 0], mask, **FAST).dtype == np.float32


@pytest.mark.parametrize("shape", [(1, 1), (1, 1, 3), (3, 5), (3, 5, 3), (2, 9)])
def test_tiny_images_shrink_the_patch(shape):
    f = np.random.default_rng(0).random(shape)
    mask = np.zeros(shape[:2], dtype=bool)
    mask[0, 0] = True
    u, info = inpaint_bpfa(f, mask, return_info=True)
    assert u.shape == f.shape
    assert np.array_equal(u[mask], f[mask])
    assert np.all(np.isfinite(u))
    assert info.patch_size == min(8, *shape[:2])


def test_single_known_pixel_of_a_larger_image():
    f = _smooth(9, 9)
    mask = np.zeros((9, 9), dtype=bool)
    mask[4, 4] = True
    u = inpaint_bpfa(f, mask, **FAST)
    # One value seen: the mean is that value and nothing else can be fitted
    # beyond noise, so the result stays near it.
    assert np.array_equal(u[4, 4], f[4, 4])
    assert np.all(np.isfinite(u))


def test_full_mask_returns_the_image():
    f = _smooth(8, 8)
    u = inpaint_bpfa(f, np.ones((8, 8), dtype=bool), **FAST)
    assert np.array_equal(u, f)


def test_same_seed_same_output_other_seed_differs():
    f = _smooth(12, 14)
    mask = random_mask(f.shape, 0.2, seed=2)
    u1 = inpaint_bpfa(f, mask, seed=5, **FAST)
    u2 = inpaint_bpfa(f, mask, seed=5, **FAST)
    u3 = inpaint_bpfa(f, mask, seed=6, **FAST)
    assert np.array_equal(u1, u2)
    assert not np.array_equal(u1, u3)


def test_stride_and_random_start_work():
    f = _smooth(13, 11)
    mask = random_mask(f.shape, 0.3, seed=4)
    u, info = inpaint_bpfa(f, mask, stride=3, init="random", return_info=True, **FAST)
    assert np.array_equal(u[mask], f[mask])
    # Starts 0, 3, 6, 9 plus the last (7 for the width 11, patch 4).
    assert info.patches == 4 * 4


def test_progress_is_reported_every_iteration():
    calls = []
    f = _smooth(8, 8)
    inpaint_bpfa(
        f, random_mask(f.shape, 0.5), progress=lambda i, n: calls.append((i, n)), **FAST
    )
    assert calls == [(i, 6) for i in range(1, 7)]


def test_info_has_one_entry_per_iteration():
    f = _smooth(10, 10)
    u, info = inpaint_bpfa(f, random_mask(f.shape, 0.3), return_info=True, **FAST)
    assert isinstance(info, BPFAInfo)
    for series in (info.rmse, info.noise_std, info.active):
        assert series.shape == (6,)
        assert np.all(np.isfinite(series))
    assert info.atoms == 8 and info.patch_size == 4 and info.patches == 49


@pytest.mark.parametrize("init", ["random", "diffusion"])
def test_sampler_fits_the_known_pixels_better_over_iterations(init):
    # Honest convergence check: the residual on the known pixels and the
    # sampled noise level must both drop clearly from the first scans to the
    # last ones (measured ratios 0.04 to 0.07 from a random dictionary, 0.01
    # to 0.03 from the diffusion start, over 10 seeds), and the output must
    # beat the known-pixel mean on the unknown pixels (ratios 0.04 to 0.22).
    f = _smooth(24, 24)
    mask = random_mask(f.shape, 0.3, seed=0)
    u, info = inpaint_bpfa(
        f,
        mask,
        patch_size=6,
        atoms=16,
        iterations=40,
        samples=10,
        init=init,
        return_info=True,
    )
    assert info.rmse[-5:].mean() < 0.3 * info.rmse[:3].mean()
    assert info.noise_std[-5:].mean() < 0.3 * info.noise_std[:3].mean()
    unknown = ~mask
    mean_only = np.abs(f[mask].mean(axis=0) - f[unknown]).mean()
    assert np.abs(u[unknown] - f[unknown]).mean() < 0.5 * mean_only


def test_empty_mask_is_a_one_line_error():
    with pytest.raises(ValueError, match="mask is empty") as exc:
        inpaint_bpfa(np.zeros((4, 4)), np.zeros((4, 4)))
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    "image, mask, match",
    [
        (np.zeros((4, 4, 3, 1)), np.ones((4, 4)), "shape"),
        (np.zeros((4, 4)), np.ones((4, 5)), "mask must have shape"),
        (np.zeros((4, 4)), np.full((4, 4), 0.5), "binary"),
    ],
)
def test_bad_arrays_are_one_line_errors(image, mask, match):
    with pytest.raises(ValueError, match=match) as exc:
        inpaint_bpfa(image, mask)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    "kwargs, shown",
    [
        ({"patch_size": 0}, "patch_size must be an integer >= 1, got 0"),
        ({"patch_size": 2.5}, "got 2.5"),
        ({"atoms": True}, "atoms must be an integer >= 1, got True"),
        ({"iterations": -3}, "got -3"),
        ({"samples": 0}, "samples must be an integer >= 1, got 0"),
        ({"iterations": 5, "samples": 6}, "samples must be <= iterations (5), got 6"),
        ({"stride": 0}, "stride must be an integer >= 1, got 0"),
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
        ({"seed": "x"}, "got 'x'"),
        ({"init": "svd"}, "init must be one of diffusion, random, got 'svd'"),
        ({"a": 0}, "a must be a positive number, got 0"),
        ({"b": float("nan")}, "b must be a positive number, got nan"),
        ({"progress": 3}, "progress must be callable or None, got 3"),
    ],
)
def test_bad_parameters_are_one_line_errors_showing_the_value(kwargs, shown):
    with pytest.raises(ValueError) as exc:
        inpaint_bpfa(np.zeros((4, 4)), np.ones((4, 4)), **kwargs)
    assert shown in str(exc.value)
    assert "\n" not in str(exc.value)
