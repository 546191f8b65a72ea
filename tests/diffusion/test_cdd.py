"""Tests for curvature-driven diffusion inpainting (wgimask.diffusion.cdd)."""

import numpy as np
import pytest

from wgimask.baselines import inpaint, random_mask
from wgimask.diffusion.cdd import CDDInfo, inpaint_cdd


def _image(shape, seed=0):
    return np.random.default_rng(seed).random(shape)


def _smooth(h, w, c=3):
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    chans = [0.5 + 0.4 * np.sin(3 * x + k) * np.cos(2 * y - k) for k in range(c)]
    return np.stack(chans, axis=-1)


def test_known_pixels_are_kept_exactly_and_values_stay_in_range():
    f = _image((12, 17, 3))
    mask = random_mask(f.shape, 0.2, seed=1)
    u = inpaint_cdd(f, mask)
    assert u.shape == f.shape and u.dtype == np.float64
    assert np.array_equal(u[mask], f[mask])
    # Every step is a convex combination: a discrete maximum principle.
    for k in range(3):
        known = f[:, :, k][mask]
        assert known.min() - 1e-12 <= u[:, :, k].min()
        assert u[:, :, k].max() <= known.max() + 1e-12


def test_grey_image():
    f = _smooth(10, 14, 1)[:, :, 0]
    mask = random_mask(f.shape, 0.3, seed=2)
    u, info = inpaint_cdd(f, mask, return_info=True)
    assert u.shape == f.shape
    assert np.array_equal(u[mask], f[mask])
    assert isinstance(info, CDDInfo) and info.converged


def test_constant_image_stays_constant():
    f = np.full((9, 11, 3), 0.375)
    mask = random_mask(f.shape, 0.1, seed=3)
    assert np.abs(inpaint_cdd(f, mask) - 0.375).max() < 1e-12


def test_convergence_is_reported():
    f = _smooth(16, 16)
    mask = random_mask(f.shape, 0.2, seed=4)
    _, info = inpaint_cdd(f, mask, tol=1e-6, return_info=True)
    assert info.converged and info.relative_change < 1e-6
    assert 0 < info.iterations < 2000
    _, capped = inpaint_cdd(f, mask, tol=1e-9, max_iter=3, return_info=True)
    assert capped.iterations == 3 and not capped.converged


def test_improves_on_homogeneous_diffusion_for_a_smooth_image():
    f = _smooth(24, 24)
    mask = random_mask(f.shape, 0.1, seed=5)
    err_cdd = np.abs(inpaint_cdd(f, mask) - f).mean()
    err_hd = np.abs(inpaint(f, mask) - f).mean()
    assert err_cdd < err_hd


@pytest.mark.parametrize("shape", [(1, 1), (1, 1, 3), (1, 9), (9, 1, 2), (5, 13)])
def test_tiny_and_thin_images(shape):
    f = _image(shape, seed=6)
    mask = np.zeros(shape[:2], dtype=bool)
    mask.flat[0] = True
    if mask.size > 2:
        mask.flat[-1] = True
    u = inpaint_cdd(f, mask)
    assert u.shape == f.shape
    assert np.array_equal(u[mask], f[mask])
    assert np.all(np.isfinite(u))


def test_full_mask_returns_the_image():
    f = _image((4, 5, 3))
    u, info = inpaint_cdd(f, np.ones((4, 5), bool), return_info=True)
    assert np.array_equal(u, f) and info.iterations == 0


def test_float32_is_kept():
    f = _image((8, 10, 3)).astype(np.float32)
    mask = random_mask(f.shape, 0.2, seed=7)
    u = inpaint_cdd(f, mask.astype(np.uint8))
    assert u.dtype == np.float32
    assert np.array_equal(u[mask], f[mask])


def _one_line_error(match, *args, **kwargs):
    with pytest.raises(ValueError, match=match) as err:
        inpaint_cdd(*args, **kwargs)
    assert "\n" not in str(err.value)


def test_bad_masks():
    f = _image((6, 7))
    _one_line_error("empty", f, np.zeros((6, 7), bool))
    _one_line_error(r"shape \(6, 7\)", f, np.ones((7, 6), bool))
    _one_line_error("binary", f, np.full((6, 7), 0.5))


@pytest.mark.parametrize(
    "name, value",
    [
        ("p", 0.5),
        ("p", float("nan")),
        ("eps", 0.0),
        ("a", -1.0),
        ("a", "x"),
        ("theta", 1.5),
        ("theta", 0),
        ("tol", 1.0),
        ("max_iter", 0),
        ("max_iter", 2.5),
        ("max_iter", True),
        ("return_info", "yes"),
    ],
)
def test_bad_parameters(name, value):
    f = _image((6, 7))
    mask = random_mask(f.shape, 0.3, seed=8)
    _one_line_error(f"{name} must .*got {value!r}", f, mask, **{name: value})
