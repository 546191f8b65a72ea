"""Tests for homogeneous diffusion inpainting (wgimask.diffusion.inpainting)."""

import numpy as np
import pytest
from skimage import data

from wgimask.baselines import inpaint, random_mask
from wgimask.diffusion.inpainting import grid


def _photo(name: str, size: int) -> np.ndarray:
    img = getattr(data, name)()
    h, w = img.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return img[top : top + size, left : left + size].astype(np.float64) / 255.0


def test_nested_dissection_is_a_permutation():
    for h, w in [(1, 1), (1, 9), (7, 5), (16, 16), (33, 20)]:
        order = grid(h, w).order
        assert np.array_equal(np.sort(order), np.arange(h * w))


@pytest.mark.parametrize(
    "solver, tol",
    [("direct", 1e-10), ("cg", 1e-5), ("multigrid", 1e-5)],
)
def test_harmonic_functions_are_reproduced(solver, tol):
    h, w = 30, 40
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    # Discrete harmonic in the interior: linear ramps and x * y.
    f = np.stack(
        [0.1 + 0.02 * x + 0.01 * y, 0.9 - 0.015 * x, (x * y) / (h * w)], axis=-1
    )
    mask = np.zeros((h, w), dtype=bool)
    mask[0, :] = mask[-1, :] = mask[:, 0] = mask[:, -1] = True
    mask[5, 7] = mask[20, 30] = True
    u = inpaint(f, mask, solver=solver)
    assert np.abs(u - f).max() < tol


def test_ramp_across_reflecting_boundaries():
    # A ramp in x only meets the Neumann condition on the top and bottom
    # rows, so knowing the first and last columns must reproduce it.
    h, w = 12, 25
    f = np.tile(np.linspace(0.0, 1.0, w), (h, 1))
    mask = np.zeros((h, w), dtype=bool)
    mask[:, 0] = mask[:, -1] = True
    assert np.abs(inpaint(f, mask) - f).max() < 1e-12


@pytest.mark.parametrize("name", ["chelsea", "coffee"])
def test_direct_and_cg_agree_on_photos(name):
    f = _photo(name, 48)
    mask = random_mask(f.shape, 0.1, seed=3)
    u_direct = inpaint(f, mask)
    u_cg = inpaint(f, mask, solver="cg")
    assert np.abs(u_direct - u_cg).max() < 1e-4
    # Known pixels are kept exactly; values stay within the data range.
    assert np.array_equal(u_direct[mask], f[mask])
    assert u_direct.min() >= f[mask].min() - 1e-12
    assert u_direct.max() <= f[mask].max() + 1e-12


def test_full_mask_returns_the_image():
    f = _photo("astronaut", 16)
    u = inpaint(f, np.ones(f.shape[:2], dtype=bool))
    assert np.array_equal(u, f)
    assert u is not f


@pytest.mark.parametrize("solver", ["direct", "cg", "multigrid"])
def test_one_known_pixel_gives_a_constant_image(solver):
    f = _photo("coffee", 20)
    mask = np.zeros((20, 20), dtype=int)
    mask[4, 13] = 1
    u = inpaint(f, mask, solver=solver)
    expected = np.broadcast_to(f[4, 13], f.shape)
    assert np.abs(u - expected).max() < 1e-5


def test_grey_image_and_dtypes():
    f = _photo("camera", 24)
    mask = random_mask(f.shape, 0.2, seed=1)
    u = inpaint(f, mask)
    assert u.shape == f.shape and u.dtype == np.float64
    u32 = inpaint(f.astype(np.float32), mask.astype(np.float32))
    assert u32.dtype == np.float32 and u32.shape == f.shape
    assert np.abs(u32 - u).max() < 1e-6
    # Grey equals the single channel of a (H, W, 1) image.
    assert np.allclose(inpaint(f[:, :, None], mask)[:, :, 0], u)


def test_bad_input_is_rejected():
    f = np.zeros((8, 8, 3))
    good = np.ones((8, 8), dtype=bool)
    with pytest.raises(ValueError, match="empty"):
        inpaint(f, np.zeros((8, 8), dtype=bool))
    with pytest.raises(ValueError, match="shape"):
        inpaint(f, np.ones((8, 9), dtype=bool))
    with pytest.raises(ValueError, match="binary"):
        inpaint(f, np.full((8, 8), 0.5))
    with pytest.raises(ValueError, match="solver"):
        inpaint(f, good, solver="amg")
    with pytest.raises(ValueError, match="shape"):
        inpaint(np.zeros(8), good)
    with pytest.raises(ValueError, match="NaN"):
        inpaint(np.full((8, 8), np.nan), good)


@pytest.mark.parametrize("rtol", [float("nan"), 0.0, -1e-3, 1.0, 2.0, "x", None])
@pytest.mark.parametrize("solver", ["cg", "direct", "multigrid", "auto"])
def test_bad_rtol_is_rejected(rtol, solver):
    # A NaN or >= 1 tolerance used to stop CG at the zero start: every unknown
    # pixel came back 0 without an error.
    f = np.full((8, 8), 0.5)
    mask = np.zeros((8, 8), dtype=bool)
    mask[0, 0] = True
    with pytest.raises(ValueError, match="rtol"):
        inpaint(f, mask, solver=solver, rtol=rtol)


def test_auto_solver_is_direct_on_small_images():
    from wgimask.diffusion.inpainting import AUTO_DIRECT_PIXELS

    f = _photo("coffee", 32)
    mask = random_mask(f.shape, 0.1, seed=0)
    assert AUTO_DIRECT_PIXELS >= 32 * 32
    assert np.array_equal(inpaint(f, mask), inpaint(f, mask, solver="direct"))


def _crop(name: str, shape: tuple) -> np.ndarray:
    """A photo crop of an odd, non-square shape; grey for a 2-d shape."""
    img = getattr(data, name)().astype(np.float64) / 255.0
    f = img[40 : 40 + shape[0], 60 : 60 + shape[1]]
    if len(shape) == 2 and f.ndim == 3:
        f = f.mean(axis=2)
    return f


@pytest.mark.parametrize("density", [0.05, 0.1, 0.2])
@pytest.mark.parametrize("kind", ["random", "analytic"])
@pytest.mark.parametrize(
    "name, shape", [("astronaut", (97, 75, 3)), ("camera", (61, 130))]
)
def test_grid_multigrid_agrees_with_the_direct_solver(name, shape, kind, density):
    from wgimask.baselines import analytic_mask

    f = _crop(name, shape)
    if kind == "random":
        mask = random_mask(f.shape, density, seed=2)
    else:
        mask = analytic_mask(f, density, seed=2)
    u_direct = inpaint(f, mask, solver="direct")
    u_mg = inpaint(f, mask, solver="multigrid")
    assert u_mg.shape == f.shape
    assert np.abs(u_mg - u_direct).max() < 1e-4
    assert np.array_equal(u_mg[mask], f[mask])


def test_grid_multigrid_edge_masks_and_thin_images():
    f = _crop("coffee", (45, 71, 3))
    one = np.zeros(f.shape[:2], dtype=bool)
    one[30, 5] = True
    u = inpaint(f, one, solver="multigrid")
    assert np.abs(u - f[30, 5]).max() < 1e-5
    full = np.ones(f.shape[:2], dtype=bool)
    assert np.array_equal(inpaint(f, full, solver="multigrid"), f)
    # One-pixel-wide images coarsen along their length only.
    for g in (f[7], f[:, 3]):
        g = g[None] if g.shape[0] == 71 else g[:, None]
        mask = random_mask(g.shape, 0.1, seed=0)
        ref = inpaint(g, mask, solver="direct")
        assert np.abs(inpaint(g, mask, solver="multigrid") - ref).max() < 1e-6


@pytest.mark.parametrize("rtol", [1e-3, 1e-8])
def test_grid_multigrid_honours_rtol(rtol):
    from wgimask.diffusion.inpainting import reduced_system
    from wgimask.diffusion.multigrid import solve_grid_multigrid

    f = _crop("astronaut", (83, 64, 3))
    mask = random_mask(f.shape, 0.05, seed=4)
    u, iterations = solve_grid_multigrid(mask, f, rtol=rtol)
    g = grid(*f.shape[:2])
    a, b, unknown = reduced_system(g, mask.ravel(), f.reshape(-1, 3), ordered=False)
    res = np.linalg.norm(b - a @ u.reshape(-1, 3)[unknown], axis=0)
    # The recursively updated residual that CG stops on matches the true
    # one up to rounding.
    assert np.all(res <= 1.01 * rtol * np.linalg.norm(b, axis=0) + 1e-12)
    assert 0 < iterations <= 30


@pytest.mark.parametrize("sweeps", [1, 3])
def test_grid_multigrid_other_sweep_counts_agree_with_the_direct_solver(sweeps):
    # The default is 2 sweeps; the pipelined passes must stay exact
    # red-black Gauss-Seidel for any count (odd sizes: partial 2x2 blocks).
    from wgimask.diffusion.multigrid import solve_grid_multigrid

    f = _crop("astronaut", (77, 91, 3))
    mask = random_mask(f.shape, 0.05, seed=5)
    u, iterations = solve_grid_multigrid(mask, f, rtol=1e-8, sweeps=sweeps)
    assert np.abs(u - inpaint(f, mask, solver="direct")).max() < 1e-6
    assert 0 < iterations <= 20
    with pytest.raises(ValueError, match="sweeps"):
        solve_grid_multigrid(mask, f, rtol=1e-6, sweeps=0)


def test_grid_multigrid_compiles_once_for_all_sizes():
    # Levels are passed as fixed-length tuples, so images with different
    # numbers of levels share one compiled solver (no load per size).
    from wgimask.diffusion import multigrid_pcg

    for shape in [(20, 30, 3), (97, 75, 3)]:
        f = _crop("astronaut", shape)
        inpaint(f, random_mask(f.shape, 0.05, seed=0), solver="multigrid")
    assert len(multigrid_pcg.pcg.signatures) == 1


def test_multigrid_warm_start_reaches_the_same_solution_in_fewer_iterations():
    from wgimask.diffusion.multigrid import solve_grid_multigrid

    f = _photo("astronaut", 96)
    sparse = random_mask(f.shape, 0.05, seed=1)
    denser = sparse | random_mask(f.shape, 0.01, seed=2)
    exact = inpaint(f, denser, solver="direct")
    previous, _ = solve_grid_multigrid(sparse, f, rtol=1e-6)
    cold, cold_iterations = solve_grid_multigrid(denser, f, rtol=1e-6)
    warm, warm_iterations = solve_grid_multigrid(denser, f, rtol=1e-6, x0=previous)
    assert warm_iterations < cold_iterations
    assert np.abs(warm - exact).max() < 1e-4
    assert np.array_equal(warm[denser], f[denser])
    # A guess that already meets the tolerance costs no iteration.
    again, iterations = solve_grid_multigrid(denser, f, rtol=1e-6, x0=warm)
    assert iterations == 0 and np.array_equal(again, warm)
    with pytest.raises(ValueError, match="x0 must have"):
        solve_grid_multigrid(denser, f, rtol=1e-6, x0=f[:5])


def test_multigrid_one_channel_at_a_time_on_large_images(monkeypatch):
    from wgimask.diffusion import multigrid

    f = _photo("coffee", 64)
    sparse = random_mask(f.shape, 0.05, seed=4)
    denser = sparse | random_mask(f.shape, 0.02, seed=5)
    exact = inpaint(f, denser, solver="direct")
    joint, _ = multigrid.solve_grid_multigrid(sparse, f, rtol=1e-8)
    monkeypatch.setattr(multigrid, "CHANNEL_SPLIT_PIXELS", 0)
    split, iterations = multigrid.solve_grid_multigrid(denser, f, rtol=1e-8, x0=joint)
    assert iterations > 0 and np.abs(split - exact).max() < 1e-6
    assert np.array_equal(split[denser], f[denser])
    # The guess may receive the solution (densification's warm starts), as
    # the same numbers, the channels solved side by side.
    guess = joint.copy()
    into, _ = multigrid.solve_grid_multigrid(denser, f, rtol=1e-8, x0=guess, out=guess)
    assert into is guess and np.array_equal(into, split)
    with pytest.raises(ValueError, match="out must be"):
        multigrid.solve_grid_multigrid(denser, f, rtol=1e-8, out=guess[:5])
