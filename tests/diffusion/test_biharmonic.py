"""Tests for biharmonic inpainting (wgimask.diffusion.biharmonic)."""

import numpy as np
import pytest
from skimage.restoration import inpaint_biharmonic as skimage_biharmonic

from wgimask.baselines import random_mask
from wgimask.diffusion.biharmonic import PCG_RTOL, bilaplacian, inpaint_biharmonic

SOLVERS = ["direct", "pcg"]


def _noise(shape, seed=0):
    return np.random.default_rng(seed).random(shape)


def _ramp(h, w, gx=0.03, gy=-0.02):
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    return 0.4 + gx * x + gy * y


@pytest.mark.parametrize("shape", [(9, 13), (9, 13, 3), (12, 7, 2)])
@pytest.mark.parametrize("solver", SOLVERS)
def test_known_pixels_are_kept_exactly(shape, solver):
    f = _noise(shape)
    mask = random_mask(shape, 0.2, seed=1)
    u = inpaint_biharmonic(f, mask, solver=solver)
    assert u.shape == f.shape
    assert u.dtype == np.float64
    np.testing.assert_array_equal(u[mask], f[mask])


def test_float32_stays_float32_and_keeps_known_pixels():
    f = _noise((10, 11, 3)).astype(np.float32)
    mask = random_mask(f.shape, 0.1, seed=2)
    u = inpaint_biharmonic(f, mask)
    assert u.dtype == np.float32
    np.testing.assert_array_equal(u[mask], f[mask])


@pytest.mark.parametrize("solver", SOLVERS)
def test_constant_image_stays_constant(solver):
    f = np.full((14, 9, 3), 0.37)
    mask = random_mask(f.shape, 0.05, seed=3)
    np.testing.assert_allclose(inpaint_biharmonic(f, mask, solver=solver), f, atol=1e-9)


def test_bilaplacian_is_the_square_of_the_reflecting_laplacian():
    b = bilaplacian(6, 7).toarray()
    np.testing.assert_array_equal(b, b.T)
    np.testing.assert_allclose(b @ np.ones(42), 0, atol=1e-12)
    # The 13-point stencil inside the image.
    e = np.zeros((6, 7))
    e[3, 3] = 1.0
    stencil = (b @ e.ravel()).reshape(6, 7)[1:6, 1:6]
    expected = [
        [0, 0, 1, 0, 0],
        [0, 2, -8, 2, 0],
        [1, -8, 20, -8, 1],
        [0, 2, -8, 2, 0],
        [0, 0, 1, 0, 0],
    ]
    np.testing.assert_array_equal(stencil, expected)


@pytest.mark.parametrize("solver", SOLVERS)
def test_ramp_in_x_from_two_border_columns_each_side(solver):
    # The mirrored ramp has kinks at the left and right borders, which
    # Laplace^2 sees in the two outer columns; with those known, the ramp
    # solves the system exactly (rows need nothing: it is constant in y).
    h, w = 12, 17
    f = _ramp(h, w, gy=0.0)
    mask = np.zeros((h, w), dtype=bool)
    mask[:, [0, 1, -2, -1]] = True
    u, info = inpaint_biharmonic(f, mask, solver=solver, return_info=True)
    tol = 1e-12 if solver == "direct" else 1e-4
    np.testing.assert_allclose(u, f, rtol=0, atol=tol)


@pytest.mark.parametrize("solver", SOLVERS)
def test_affine_ramp_from_a_two_pixel_frame(solver):
    h, w = 13, 16
    f = _ramp(h, w)
    mask = np.zeros((h, w), dtype=bool)
    mask[:2], mask[-2:], mask[:, :2], mask[:, -2:] = True, True, True, True
    mask[6, 8] = True  # any known pixels inside are fine too
    u = inpaint_biharmonic(f, mask, solver=solver)
    tol = 1e-12 if solver == "direct" else 1e-4
    np.testing.assert_allclose(u, f, rtol=0, atol=tol)


def test_affine_ramp_is_not_reproduced_from_scattered_points():
    # With reflecting boundaries the mirrored ramp is not biharmonic at the
    # border, so three non-collinear points (or a random mask) do not give
    # it back; the error sits at the border.
    h, w = 16, 16
    f = _ramp(h, w)
    mask = np.zeros((h, w), dtype=bool)
    mask[3, 4] = mask[11, 5] = mask[7, 12] = True
    assert np.abs(inpaint_biharmonic(f, mask) - f).max() > 1e-2


def test_matches_scikit_image_before_its_clipping():
    # scikit-image solves the same system and then clips every channel to
    # the range of its known values.
    f = _noise((16, 18, 3), seed=4)
    mask = random_mask(f.shape, 0.1, seed=4)
    u = inpaint_biharmonic(f, mask)
    lo, hi = f[mask].min(axis=0), f[mask].max(axis=0)
    reference = skimage_biharmonic(f, ~mask, channel_axis=-1)
    np.testing.assert_allclose(np.clip(u, lo, hi), reference, rtol=0, atol=1e-10)


@pytest.mark.parametrize("transpose", [False, True])
def test_one_row_and_one_column(transpose):
    f = _ramp(1, 12, gy=0.0)
    mask = np.zeros_like(f, dtype=bool)
    mask[0, [0, 1, -2, -1]] = True
    if transpose:
        f, mask = f.T, mask.T
    np.testing.assert_allclose(inpaint_biharmonic(f, mask), f, rtol=0, atol=1e-12)


def test_one_pixel_and_full_mask():
    np.testing.assert_array_equal(inpaint_biharmonic(np.array([[0.3]]), [[1]]), [[0.3]])
    f = _noise((4, 5, 3))
    u, info = inpaint_biharmonic(f, np.ones((4, 5)), return_info=True)
    np.testing.assert_array_equal(u, f)
    assert info.iterations == 0 and info.residual == 0.0


def test_single_known_pixel_gives_a_constant():
    f = _noise((6, 8))
    mask = np.zeros((6, 8), dtype=bool)
    mask[2, 3] = True
    np.testing.assert_allclose(inpaint_biharmonic(f, mask), f[2, 3], atol=1e-10)


@pytest.mark.parametrize("solver", SOLVERS)
def test_linear_solve_residual(solver):
    f = _noise((20, 24, 3), seed=5)
    mask = random_mask(f.shape, 0.05, seed=5)
    u, info = inpaint_biharmonic(f, mask, solver=solver, return_info=True)
    assert info.solver == solver
    if solver == "direct":
        assert info.iterations == 0 and info.residual < 1e-10
    else:
        assert info.iterations > 0 and info.residual <= PCG_RTOL
        reference = inpaint_biharmonic(f, mask, solver="direct")
        assert np.abs(u - reference).max() < 1e-3


def test_auto_solver_is_direct_for_small_images():
    f = _noise((8, 8))
    _, info = inpaint_biharmonic(f, np.eye(8), return_info=True)
    assert info.solver == "direct"


def _one_line_error(match, *args, **kwargs):
    with pytest.raises(ValueError, match=match) as err:
        inpaint_biharmonic(*args, **kwargs)
    assert "\n" not in str(err.value)


def test_bad_arguments_raise_one_line_errors():
    f = _noise((5, 6, 3))
    _one_line_error("mask is empty", f, np.zeros((5, 6)))
    _one_line_error(r"mask must have shape \(5, 6\)", f, np.ones((6, 5)))
    _one_line_error("binary", f, np.full((5, 6), 0.5))
    _one_line_error("image contains NaN", np.full((5, 6), np.nan), np.ones((5, 6)))
    _one_line_error("solver must be one of .* got 'lu'", f, np.eye(5, 6), solver="lu")
    _one_line_error(r"rtol must lie in \(0, 1\), got 0", f, np.eye(5, 6), rtol=0)
    _one_line_error("rtol .* got nan", f, np.eye(5, 6), rtol=float("nan"))
