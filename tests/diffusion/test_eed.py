"""Tests for edge-enhancing diffusion inpainting (wgimask.diffusion.eed)."""

import numpy as np
import pytest

from wgimask.baselines import inpaint, random_mask
from wgimask.diffusion.eed import (
    PCG_RTOL,
    ReducedSystem,
    inpaint_eed,
    pair_weights,
)
from wgimask.diffusion.inpainting import grid


def _noise(shape, seed=0):
    return np.random.default_rng(seed).random(shape)


def _smooth_with_edge(h, w, channels=3):
    # Pure noise has no steady state that the fixed point settles to (its
    # change hovers around 1e-2); images with structure do.
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    return np.stack(
        [
            0.5 + 0.3 * np.sin(x / 4 + k) * np.cos(y / 5) + 0.2 * (x > y + 2)
            for k in range(channels)
        ],
        axis=-1,
    )


@pytest.mark.parametrize("shape", [(9, 13), (9, 13, 3), (12, 7, 2)])
@pytest.mark.parametrize("solver", ["direct", "pcg"])
def test_known_pixels_are_kept_exactly(shape, solver):
    f = _noise(shape)
    mask = random_mask(shape, 0.2, seed=1)
    u = inpaint_eed(f, mask, solver=solver)
    assert u.shape == f.shape
    assert u.dtype == np.float64
    np.testing.assert_array_equal(u[mask], f[mask])


def test_float32_stays_float32_and_keeps_known_pixels():
    f = _noise((10, 11, 3)).astype(np.float32)
    mask = random_mask(f.shape, 0.1, seed=2)
    u = inpaint_eed(f, mask)
    assert u.dtype == np.float32
    np.testing.assert_array_equal(u[mask], f[mask])


def test_constant_image_stays_constant():
    f = np.full((14, 9, 3), 0.37)
    mask = random_mask(f.shape, 0.05, seed=3)
    np.testing.assert_allclose(inpaint_eed(f, mask), f, rtol=0, atol=1e-12)


def test_huge_contrast_is_homogeneous_diffusion():
    # g = 1 everywhere: D = I, and the stencil is the 5-point Laplacian.
    f = _noise((11, 16, 3))
    mask = random_mask(f.shape, 0.1, seed=4)
    u = inpaint_eed(f, mask, contrast=1e12)
    np.testing.assert_allclose(u, inpaint(f, mask), rtol=0, atol=1e-12)


def test_operator_is_symmetric_positive_definite():
    h, w = 8, 9
    f = _noise((h, w, 3))
    known = random_mask((h, w), 0.15, seed=5).ravel()
    system = ReducedSystem(h, w, known, f.reshape(h * w, 3))
    # A small contrast makes the tensors strongly anisotropic, so that some
    # axis weights are negative; the matrix stays SPD.
    weights = pair_weights(f, 0.005, "charbonnier")
    assert (weights < 0).any()
    a = system.assemble(weights)[0].toarray()
    np.testing.assert_allclose(a, a.T, rtol=0, atol=1e-15)
    assert np.linalg.eigvalsh(a).min() > 0


def test_identity_tensor_gives_the_grid_laplacian():
    h, w = 5, 7
    f = np.zeros((h, w, 1))
    known = np.zeros(h * w, dtype=bool)
    known[0] = True
    system = ReducedSystem(h, w, known, f.reshape(h * w, 1), ordered=False)
    a = system.assemble(pair_weights(f, 1.0, "charbonnier"))[0].toarray()
    lap = grid(h, w).laplacian.toarray()[1:, 1:]
    np.testing.assert_allclose(a, lap, rtol=0, atol=1e-15)


def test_affine_ramp_with_known_border_is_reproduced():
    # Constant gradient -> constant tensor inside, which the stencil maps
    # affine functions to zero with; the reflecting border would bend the
    # ramp, so the border is known. sigma = 0 keeps u_sigma affine.
    h, w = 12, 15
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    f = 0.2 + 0.03 * x - 0.02 * y
    mask = np.zeros((h, w), dtype=bool)
    mask[[0, -1], :] = mask[:, [0, -1]] = True
    u = inpaint_eed(f, mask, sigma=0.0)
    np.testing.assert_allclose(u, f, rtol=0, atol=1e-12)


def test_affine_ramp_with_presmoothing_needs_a_wider_known_border():
    # The Gaussian (truncated at 4 sigma) mirrors the ramp at the border, so
    # u_sigma is affine only 4 sigma + 1 pixels inside it.
    h, w = 16, 18
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    f = 0.5 + 0.01 * x + 0.02 * y
    mask = np.zeros((h, w), dtype=bool)
    mask[:6], mask[-6:], mask[:, :6], mask[:, -6:] = True, True, True, True
    np.testing.assert_allclose(inpaint_eed(f, mask, sigma=1.0), f, rtol=0, atol=1e-12)
    thin = np.zeros((h, w), dtype=bool)
    thin[[0, -1], :] = thin[:, [0, -1]] = True
    assert np.abs(inpaint_eed(f, thin, sigma=1.0) - f).max() > 1e-4


@pytest.mark.parametrize("transpose", [False, True])
def test_one_row_and_one_column(transpose):
    # 1-D: the flux g(u_x^2) u_x is constant between known pixels, so without
    # presmoothing a ramp between the two ends is reproduced.
    f = np.linspace(0.0, 1.0, 11)[None, :]
    mask = np.zeros_like(f, dtype=bool)
    mask[0, [0, -1]] = True
    if transpose:
        f, mask = f.T, mask.T
    u = inpaint_eed(f, mask, sigma=0.0)
    np.testing.assert_allclose(u, f, rtol=0, atol=1e-12)
    v = inpaint_eed(f, mask)  # sigma > 0: still monotone, ends kept
    assert np.all(np.diff(v.ravel()) > 0)


def test_one_pixel():
    np.testing.assert_array_equal(inpaint_eed(np.array([[0.3]]), [[1]]), [[0.3]])
    u = inpaint_eed(np.full((1, 1, 3), 0.5, dtype=np.float32), np.ones((1, 1)))
    assert u.shape == (1, 1, 3) and u.dtype == np.float32


def test_full_mask_returns_a_copy():
    f = _noise((4, 5, 3))
    u, info = inpaint_eed(f, np.ones((4, 5), dtype=bool), return_info=True)
    np.testing.assert_array_equal(u, f)
    assert u is not f
    assert info.iterations == 0 and info.converged


def test_single_known_pixel_gives_a_constant():
    f = _noise((6, 8))
    mask = np.zeros((6, 8), dtype=bool)
    mask[2, 3] = True
    np.testing.assert_allclose(inpaint_eed(f, mask), f[2, 3], rtol=0, atol=1e-12)


def test_edge_is_kept_sharper_than_by_homogeneous_diffusion():
    # A slanted step edge: EED diffuses along it, homogeneous diffusion
    # blurs across it.
    h, w = 32, 32
    y, x = np.mgrid[0:h, 0:w]
    f = (y > 0.6 * x + 5).astype(np.float64)
    mask = random_mask(f.shape, 0.1, seed=6)
    eed_error = np.abs(inpaint_eed(f, mask) - f).mean()
    hd_error = np.abs(inpaint(f, mask) - f).mean()
    assert eed_error < 0.8 * hd_error


@pytest.mark.parametrize("solver", ["direct", "pcg"])
@pytest.mark.parametrize("diffusivity", ["charbonnier", "perona_malik"])
def test_fixed_point_and_linear_solves_converge(solver, diffusivity):
    f = _smooth_with_edge(20, 24)
    mask = random_mask(f.shape, 0.1, seed=7)
    u, info = inpaint_eed(
        f, mask, diffusivity=diffusivity, solver=solver, tol=1e-4, return_info=True
    )
    assert info.converged and 1 <= info.iterations <= 60
    assert info.change <= 1e-4
    limit = 1e-10 if solver == "direct" else PCG_RTOL
    assert info.residual <= limit
    assert (info.factorizations > 0) == (solver == "direct")


def test_direct_and_pcg_agree():
    f = _smooth_with_edge(18, 21)
    mask = random_mask(f.shape, 0.1, seed=8)
    a = inpaint_eed(f, mask, solver="direct", tol=1e-6)
    b = inpaint_eed(f, mask, solver="pcg", tol=1e-6)
    # CG solves to PCG_RTOL = 1e-5 only (2e-4 apart here).
    assert np.abs(a - b).max() < 1e-3


def test_max_iter_limits_the_iterations():
    f = _noise((16, 16), seed=9)
    mask = random_mask(f.shape, 0.05, seed=9)
    u, info = inpaint_eed(f, mask, contrast=0.002, max_iter=2, tol=0, return_info=True)
    assert info.iterations == 2 and not info.converged


def test_init_is_used_and_its_known_pixels_replaced():
    f = _noise((10, 12, 3), seed=10)
    mask = random_mask(f.shape, 0.2, seed=10)
    u, info = inpaint_eed(f, mask, init=np.zeros_like(f), return_info=True)
    np.testing.assert_array_equal(u[mask], f[mask])
    v = inpaint_eed(f, mask, init=u, tol=1e-2)
    assert np.abs(v - u).max() < 0.05


def _one_line_error(match, *args, **kwargs):
    with pytest.raises(ValueError, match=match) as err:
        inpaint_eed(*args, **kwargs)
    assert "\n" not in str(err.value)


def test_bad_masks_raise_one_line_errors():
    f = _noise((5, 6, 3))
    _one_line_error("mask is empty", f, np.zeros((5, 6)))
    _one_line_error(r"mask must have shape \(5, 6\)", f, np.ones((6, 5)))
    _one_line_error("binary", f, np.full((5, 6), 0.5))
    _one_line_error("image must have shape", np.zeros(5), np.ones(5))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"contrast": 0}, "contrast must be a finite number > 0, got 0"),
        ({"contrast": -0.1}, "contrast .* got -0.1"),
        ({"contrast": float("nan")}, "contrast .* got nan"),
        ({"contrast": "big"}, "contrast .* got 'big'"),
        ({"sigma": -1}, "sigma must be a finite number >= 0, got -1"),
        ({"sigma": float("inf")}, "sigma .* got inf"),
        ({"tol": float("nan")}, "tol .* got nan"),
        ({"diffusivity": "tukey"}, "diffusivity must be one of .* got 'tukey'"),
        ({"max_iter": 0}, "max_iter must be an integer >= 1, got 0"),
        ({"max_iter": 2.5}, "max_iter .* got 2.5"),
        ({"solver": "lu"}, "solver must be one of .* got 'lu'"),
        ({"init": np.zeros((5, 6))}, r"init must have the image's shape \(5, 6, 3\)"),
        ({"init": np.full((5, 6, 3), np.nan)}, "NaN"),
    ],
)
def test_bad_parameters_raise_one_line_errors(kwargs, match):
    _one_line_error(match, _noise((5, 6, 3)), np.eye(5, 6), **kwargs)
