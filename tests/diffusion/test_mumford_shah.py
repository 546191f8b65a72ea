"""Tests for Mumford-Shah (Ambrosio-Tortorelli) inpainting
(wgimask.diffusion.mumford_shah)."""

import numpy as np
import pytest

from wgimask.baselines import random_mask
from wgimask.diffusion.mumford_shah import MSInfo, inpaint_ms


def _image(shape, seed=0):
    return np.random.default_rng(seed).random(shape)


def _two_regions(h, w, c=3):
    # Two flat regions with a little texture: MS should find the edge.
    y, x = np.mgrid[0:h, 0:w]
    base = np.where(x < w // 2, 0.2, 0.8)
    return np.stack([base + 0.02 * np.sin(y + k) for k in range(c)], axis=-1)


@pytest.mark.parametrize("solver", ["direct", "cg"])
def test_known_pixels_are_kept_exactly_and_values_stay_in_range(solver):
    f = _image((12, 17, 3))
    mask = random_mask(f.shape, 0.2, seed=1)
    u, info = inpaint_ms(f, mask, solver=solver, return_info=True)
    assert u.shape == f.shape and u.dtype == np.float64
    assert np.array_equal(u[mask], f[mask])
    # The u-step's matrix is an M-matrix: a discrete maximum principle,
    # exact with the direct solver, to the CG tolerance with CG.
    slack = 1e-12 if solver == "direct" else 1e-4
    for k in range(3):
        known = f[:, :, k][mask]
        assert known.min() - slack <= u[:, :, k].min()
        assert u[:, :, k].max() <= known.max() + slack
    assert isinstance(info, MSInfo)


def test_direct_and_cg_agree_and_report_small_residuals():
    f = _two_regions(14, 18)
    mask = random_mask(f.shape, 0.15, seed=2)
    u1, i1 = inpaint_ms(f, mask, solver="direct", tol=1e-6, return_info=True)
    u2, i2 = inpaint_ms(f, mask, solver="cg", tol=1e-6, rtol=1e-10, return_info=True)
    assert i1.converged and i1.relative_change < 1e-6
    assert i1.u_residual < 1e-12 and i1.v_residual < 1e-12
    assert i2.u_residual <= 1e-10 and i2.v_residual <= 1e-10
    assert np.abs(u1 - u2).max() < 1e-6


def test_grey_image_and_iteration_cap():
    f = _two_regions(10, 12, 1)[:, :, 0]
    mask = random_mask(f.shape, 0.3, seed=3)
    u = inpaint_ms(f, mask)
    assert u.shape == f.shape
    assert np.array_equal(u[mask], f[mask])
    _, info = inpaint_ms(f, mask, beta=1e-3, tol=1e-12, max_iter=2, return_info=True)
    assert info.iterations == 2 and not info.converged


def test_constant_image_stays_constant():
    f = np.full((9, 11, 3), 0.625)
    mask = random_mask(f.shape, 0.1, seed=4)
    u, info = inpaint_ms(f, mask, return_info=True)
    assert np.abs(u - 0.625).max() < 1e-12
    assert info.converged


def test_only_the_ratio_of_alpha_and_beta_matters():
    f = _two_regions(10, 10)
    mask = random_mask(f.shape, 0.2, seed=5)
    u1 = inpaint_ms(f, mask, alpha=1.0, beta=0.05)
    u2 = inpaint_ms(f, mask, alpha=4.0, beta=0.2)
    assert np.abs(u1 - u2).max() < 1e-10


@pytest.mark.parametrize("shape", [(1, 1), (1, 1, 3), (1, 9), (9, 1, 2), (5, 13)])
def test_tiny_and_thin_images(shape):
    f = _image(shape, seed=6)
    mask = np.zeros(shape[:2], dtype=bool)
    mask.flat[0] = True
    if mask.size > 2:
        mask.flat[-1] = True
    for solver in ("direct", "cg"):
        u = inpaint_ms(f, mask, solver=solver)
        assert u.shape == f.shape
        assert np.array_equal(u[mask], f[mask])
        assert np.all(np.isfinite(u))


def test_full_mask_returns_the_image():
    f = _image((4, 5, 3))
    u, info = inpaint_ms(f, np.ones((4, 5), bool), return_info=True)
    assert np.array_equal(u, f) and info.iterations == 0


def test_float32_is_kept():
    f = _image((8, 10, 3)).astype(np.float32)
    mask = random_mask(f.shape, 0.2, seed=7)
    u = inpaint_ms(f, mask.astype(np.float64))
    assert u.dtype == np.float32
    assert np.array_equal(u[mask], f[mask])


def _one_line_error(match, *args, **kwargs):
    with pytest.raises(ValueError, match=match) as err:
        inpaint_ms(*args, **kwargs)
    assert "\n" not in str(err.value)


def test_bad_masks():
    f = _image((6, 7, 3))
    _one_line_error("empty", f, np.zeros((6, 7), bool))
    _one_line_error(r"shape \(6, 7\)", f, np.ones((6, 8), bool))
    _one_line_error("binary", f, np.full((6, 7), 2))


@pytest.mark.parametrize(
    "name, value",
    [
        ("alpha", 0.0),
        ("beta", -1.0),
        ("eps", float("nan")),
        ("eta", "small"),
        ("tol", 0.0),
        ("max_iter", -3),
        ("rtol", 2.0),
        ("solver", "lu"),
        ("return_info", 1),
    ],
)
def test_bad_parameters(name, value):
    f = _image((6, 7))
    mask = random_mask(f.shape, 0.3, seed=8)
    _one_line_error(f"{name} must .*got {value!r}", f, mask, **{name: value})
