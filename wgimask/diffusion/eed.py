"""Edge-enhancing anisotropic diffusion (EED) inpainting.

EED inpainting (Weickert 1994; Galic et al. 2008; Schmaltz et al. 2014)
keeps the known pixels of an image f on a mask c and fills the others with
the steady state of

    div(D(grad u_sigma) grad u) = 0       where c = 0,
    u = f                                  where c = 1,

with reflecting (homogeneous Neumann) image boundaries. u_sigma is u
presmoothed by a Gaussian of standard deviation ``sigma``; the diffusion
tensor D has the eigenvector v1 of the joint structure tensor
J = sum over channels of grad u_sigma grad u_sigma^T (for a grey image:
the gradient direction) with eigenvalue g(mu1), mu1 the larger eigenvalue
of J (for a grey image |grad u_sigma|^2), and eigenvalue 1 along the
orthogonal direction (along the edge). g is the Charbonnier diffusivity
1 / sqrt(1 + s2 / lambda^2) or the Perona-Malik one 1 / (1 + s2 / lambda^2),
lambda the ``contrast``. One tensor serves all channels.

Discretisation. The tensor lives at the centres of the 2x2 pixel cells
(gradients of u_sigma by averaged cell differences) and the operator comes
from the discrete energy sum_cells grad^T D grad, with every cell's
grad^T D grad = a ux^2 + 2 b ux uy + c uy^2 written as nonnegative-where-
possible weights times squared pixel differences inside the cell:

    (a - |b|) / 2   on each horizontal edge,  (c - |b|) / 2  on each
    vertical edge,  (|b| + b) / 2  on the diagonal (i, j)-(i+1, j+1),
    (|b| - b) / 2   on the anti-diagonal (i, j+1)-(i+1, j).

For a constant tensor this is the 3x3 non-negativity stencil of Weickert
(1998, "Anisotropic Diffusion in Image Processing", ch. 3): axis weights
a - |b| and c - |b|, diagonal weights (|b| +- b) / 2; it is exact for
affine functions. The diagonal weights are never negative, the axis weights
exactly where |b| <= min(a, c), i.e. for moderate anisotropy (no 3x3
stencil stays nonnegative for strong anisotropy at every angle). Built from
the cell energies, the matrix is symmetric positive semi-definite for every
tensor field (a cell's form is grad^T D grad on the affine modes plus
4 s^2 (a + c - 2 |b|) >= 0 on its checkerboard mode of amplitude s, the two
decoupled), so the scheme is L2-stable and the reduced system on the unknowns
is symmetric positive definite. The image boundary is reflecting: mirrored
half cells outside the image add g(|d|^2) / 2 to the edges along the
border (d the difference of u_sigma along that edge), so that D = I gives
exactly the 5-point Laplacian of ``wgimask.diffusion.inpainting`` and a
one-row image gets 1-D Perona-Malik diffusion.

Steady state. A lagged-diffusivity fixed point: starting from homogeneous
diffusion inpainting (``wgimask.diffusion.inpainting.inpaint``) or
``init``, every iteration computes D from the current u and solves the
linear elliptic problem on the unknown pixels for the next u, until the
relative change ||u_new - u|| / ||u_new|| (unknown pixels, all channels)
is at most ``tol``. The linear solver (``solver``):

* ``"direct"``: a sparse LU (SuperLU, nested-dissection order of the
  pixel grid, no pivoting as the matrix is SPD) in every iteration;
* ``"pcg"``: conjugate gradients preconditioned by SSOR (omega
  ``SSOR_OMEGA``), compiled with numba (`wgimask.diffusion.ssor_pcg`),
  warm-started from the current u, to relative residual ``PCG_RTOL``
  (1e-5 changed the result by an RMS of 3e-5 against 1e-6 at 768x512 and
  took 30 % less time; 1e-4 changed it ten times more). It falls back to
  the LU if CG does not converge.
* ``"auto"`` (default): ``"direct"`` up to ``AUTO_DIRECT_PIXELS`` pixels
  (64x64), ``"pcg"`` above.

Defaults. ``DEFAULT_CONTRAST`` = 0.01 and ``DEFAULT_SIGMA`` = 1.5 with the
Charbonnier diffusivity were chosen by
``python -m benchmarks.studies.eed_bih_parameters``: a grid search (lambda
0.002 to 0.05, sigma 0.5 to 2.5, both diffusivities) on 32 training crops of
64x64 px from eight colour photos of ``skimage.data``, random masks of 5, 10
and 20 %, best mean PSNR over the densities (31.67 dB against 31.21 dB for
homogeneous diffusion; +0.34 dB at 5 %). On 16 validation crops (other
positions and masks) it gave 28.41 / 30.70 / 32.99 dB at 5 / 10 / 20 %
against 27.52 / 29.59 / 31.84 dB (+0.88 dB at 5 %; biharmonic 28.06 /
30.37 / 32.94 dB). Perona-Malik was at best 0.08 dB worse (mean PSNR at
lambda 0.02, sigma 2). Pure noise has no steady state that the iteration
settles to (its change hovers near 1e-2); the training crops converged in 1
to 69 iterations (median 4 to 5) at tol 1e-3, whose mean PSNR was within
0.01 dB of tol 1e-4's.

Timings (Intel(R) Xeon(R) Processor, 2 cores shared with other jobs, one
thread, defaults, 5 % random masks, homogeneous start included): 64x64
colour crops 0.11 s (training) and 0.14 s (validation) on average with
``"direct"``, about 10 ms an iteration, so at most about 0.7 s (``"pcg"``
was about 30 % faster, but loads its compiled kernels in 0.4 s once per
process and compiles them in 5 s once after installation); 768x512 colour
(``skimage.data`` coffee and astronaut resized) 5.8 s and 9.1 s with
``"pcg"`` (8 and 9 iterations), 23 s with ``"direct"`` (about 2.5 s per
factorisation).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import scipy.ndimage as ndi
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from wgimask.arrays import as_image, as_known_mask, result_dtype
from wgimask.diffusion.inpainting import factorize, grid
from wgimask.diffusion.inpainting import inpaint as inpaint_homogeneous
from wgimask.diffusion.ssor_pcg import SSOR_OMEGA, relative_residual, ssor_cg

__all__ = [
    "AUTO_DIRECT_PIXELS",
    "DEFAULT_CONTRAST",
    "DEFAULT_MAX_ITER",
    "DEFAULT_SIGMA",
    "DEFAULT_TOL",
    "DIFFUSIVITIES",
    "EEDInfo",
    "SOLVERS",
    "inpaint_eed",
]

#: Contrast parameter lambda of the diffusivity (images in [0, 1]).
DEFAULT_CONTRAST = 0.01
#: Standard deviation (pixels) of the Gaussian presmoothing for the tensor.
DEFAULT_SIGMA = 1.5
#: Fixed-point iteration limit.
DEFAULT_MAX_ITER = 100
#: Relative change ||u_new - u|| / ||u_new|| at which the iteration stops.
DEFAULT_TOL = 1e-3
#: Names accepted by ``diffusivity=``.
DIFFUSIVITIES = ("charbonnier", "perona_malik")
#: Names accepted by ``solver=``.
SOLVERS = ("auto", "direct", "pcg")
#: ``solver="auto"`` factorises in every iteration up to this many pixels.
AUTO_DIRECT_PIXELS = 64 * 64

#: Relative residual at which the ``"pcg"`` solves stop.
PCG_RTOL = 1e-5
# CG steps after which a "pcg" solve gives up and factorises instead.
_PCG_MAXITER = 2000


@dataclass(frozen=True)
class EEDInfo:
    """Convergence diagnostics of :func:`inpaint_eed`.

    Attributes:
        iterations: fixed-point iterations done (one linear solve each).
        change: relative change ||u_new - u|| / ||u_new|| of the last
            iteration, over the unknown pixels and all channels.
        residual: relative residual ||b - A u|| / ||b|| of the last linear
            solve (largest over the channels; 0 for a zero right-hand side).
        converged: whether ``change`` reached ``tol``.
        factorizations: sparse LU factorisations computed.
    """

    iterations: int
    change: float
    residual: float
    converged: bool
    factorizations: int


def _diffusivity(s2: np.ndarray, contrast: float, kind: str) -> np.ndarray:
    """g(s2) for squared gradient magnitudes s2."""
    q = s2 / (contrast * contrast)
    if kind == "charbonnier":
        return 1.0 / np.sqrt(1.0 + q)
    return 1.0 / (1.0 + q)


def pair_weights(smoothed: np.ndarray, contrast: float, diffusivity: str) -> np.ndarray:
    """Weights of all pixel pairs of the EED operator for one tensor field.

    Args:
        smoothed: (H, W, C) presmoothed image u_sigma.
        contrast: lambda > 0.
        diffusivity: a name in ``DIFFUSIVITIES``.

    Returns:
        The weights of the pairs of :func:`pixel_pairs` (same order): the
        operator is A u = sum over pairs (i, j) of w (e_i - e_j)(u_i - u_j).
    """
    us = smoothed
    dx = us[:, 1:] - us[:, :-1]  # (H, W-1, C) horizontal differences
    dy = us[1:, :] - us[:-1, :]  # (H-1, W, C) vertical differences
    # Cell gradients: the mean of the cell's two differences per axis.
    gx = 0.5 * (dx[:-1] + dx[1:])
    gy = 0.5 * (dy[:, :-1] + dy[:, 1:])
    j11 = np.einsum("ijc,ijc->ij", gx, gx)
    j22 = np.einsum("ijc,ijc->ij", gy, gy)
    j12 = np.einsum("ijc,ijc->ij", gx, gy)
    half = 0.5 * (j11 - j22)
    radius = np.hypot(half, j12)
    g = _diffusivity(0.5 * (j11 + j22) + radius, contrast, diffusivity)
    # v1 v1^T = (I + R) / 2 with R = [[cos 2t, sin 2t], [sin 2t, -cos 2t]];
    # a structure tensor with equal eigenvalues (no gradient) takes v1 = x,
    # where g = 1 anyway for a grey image.
    flat = radius == 0.0
    safe = np.where(flat, 1.0, radius)
    cos2 = np.where(flat, 1.0, half / safe)
    sin2 = np.where(flat, 0.0, j12 / safe)
    k = 0.5 * (1.0 - g)
    # D = I - (1 - g) v1 v1^T = [[a, b], [b, c]].
    a = 1.0 - k * (1.0 + cos2)
    c = 1.0 - k * (1.0 - cos2)
    b = -k * sin2
    babs = np.abs(b)
    cell_h = 0.5 * (a - babs)
    cell_v = 0.5 * (c - babs)
    h, w = us.shape[:2]
    wh = np.zeros((h, w - 1))
    wh[:-1] += cell_h
    wh[1:] += cell_h
    wv = np.zeros((h - 1, w))
    wv[:, :-1] += cell_v
    wv[:, 1:] += cell_v

    # Mirrored half cells outside the image (reflecting boundary): there
    # the gradient is the border edge's difference, along the border.
    def border(d: np.ndarray) -> np.ndarray:
        return 0.5 * _diffusivity(np.einsum("lc,lc->l", d, d), contrast, diffusivity)

    wh[0] += border(dx[0])
    wh[-1] += border(dx[-1])
    wv[:, 0] += border(dy[:, 0])
    wv[:, -1] += border(dy[:, -1])
    return np.concatenate(
        [wh.ravel(), wv.ravel(), (0.5 * (babs + b)).ravel(), (0.5 * (babs - b)).ravel()]
    )


@functools.lru_cache(maxsize=8)
def pixel_pairs(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The pixel pairs that the EED stencil couples, each pair once.

    Args:
        height: image height H >= 1.
        width: image width W >= 1.

    Returns:
        (src, dst) flat pixel indices: the horizontal pairs (H x (W-1), row
        by row), the vertical ones ((H-1) x W), the diagonal ones
        (i, j)-(i+1, j+1) and the anti-diagonal ones (i, j+1)-(i+1, j)
        (both (H-1) x (W-1)), in the order of :func:`pair_weights`.
    """
    index = np.arange(height * width, dtype=np.int64).reshape(height, width)
    src = np.concatenate(
        [index[:, :-1].ravel(), index[:-1, :].ravel(), index[:-1, :-1].ravel(),
         index[:-1, 1:].ravel()]
    )  # fmt: skip
    dst = np.concatenate(
        [index[:, 1:].ravel(), index[1:, :].ravel(), index[1:, 1:].ravel(),
         index[1:, :-1].ravel()]
    )  # fmt: skip
    src.setflags(write=False)
    dst.setflags(write=False)
    return src, dst


class ReducedSystem:
    """The reduced system of the unknown pixels for one mask and image size.

    Its sparsity pattern and index maps are built once; :meth:`assemble`
    fills in the values for a tensor field. The unknowns follow the nested
    dissection order of ``wgimask.diffusion.inpainting.grid`` (a single row
    or column still separates a 3x3 stencil), so SuperLU factorises in that
    order.

    Attributes:
        unknown: (m,) flat indices of the unknown pixels, in the order of
            the matrix rows.
    """

    def __init__(
        self,
        height: int,
        width: int,
        known: np.ndarray,
        values: np.ndarray,
        *,
        ordered: bool = True,
    ):
        """Builds the pattern.

        Args:
            height: image height H.
            width: image width W.
            known: (H * W,) bool mask, at least one True.
            values: (H * W, C) image (only the known pixels are read).
            ordered: unknowns in nested-dissection order (for the LU) or in
                row-major order (for SSOR, whose sweeps then follow rows).
        """
        n = height * width
        src, dst = pixel_pairs(height, width)
        free = ~known
        self.ordered = ordered
        if ordered:
            order = grid(height, width).order
            self.unknown = order[free[order]]
        else:
            self.unknown = np.flatnonzero(free)
        m = self.unknown.size
        pos = np.full(n, -1, dtype=np.int64)
        pos[self.unknown] = np.arange(m)
        free_s, free_t = free[src], free[dst]
        self._both = np.flatnonzero(free_s & free_t)
        ps, pt = pos[src[self._both]], pos[dst[self._both]]
        rows = np.concatenate([ps, pt, np.arange(m)])
        cols = np.concatenate([pt, ps, np.arange(m)])
        # Each entry's number (from 1) goes through the COO -> CSC sort, so
        # that later values land by one gather instead of a new sort.
        numbered = sp.csc_matrix(
            (np.arange(1, rows.size + 1, dtype=np.float64), (rows, cols)), shape=(m, m)
        )
        self._take = numbered.data.astype(np.int64) - 1
        self._pattern = numbered
        # Diagonal: every pair with an unknown end adds its weight there.
        self._s_free = np.flatnonzero(free_s)
        self._s_pos = pos[src[self._s_free]]
        self._t_free = np.flatnonzero(free_t)
        self._t_pos = pos[dst[self._t_free]]
        # Right-hand side: pairs with one known end pull towards its value.
        to_s = free_s & ~free_t
        to_t = free_t & ~free_s
        self._rhs_pairs = np.concatenate([np.flatnonzero(to_s), np.flatnonzero(to_t)])
        self._rhs_rows = np.concatenate([pos[src[to_s]], pos[dst[to_t]]])
        self._rhs_values = values[np.concatenate([dst[to_s], src[to_t]])]

    def assemble(self, weights: np.ndarray) -> tuple[sp.csc_matrix, np.ndarray]:
        """The matrix and right-hand side for pair weights.

        Args:
            weights: weights of :func:`pixel_pairs`, from :func:`pair_weights`.

        Returns:
            (A, b): the symmetric matrix (m x m, CSC) and the right-hand
            side (m x C).
        """
        m = self.unknown.size
        diag = np.bincount(self._s_pos, weights[self._s_free], minlength=m)
        diag += np.bincount(self._t_pos, weights[self._t_free], minlength=m)
        off = -weights[self._both]
        a = self._pattern.copy()
        a.data = np.concatenate([off, off, diag])[self._take]
        pull = weights[self._rhs_pairs]
        b = np.stack(
            [
                np.bincount(self._rhs_rows, pull * v, minlength=m)
                for v in self._rhs_values.T
            ],
            axis=1,
        )
        return a, b

    def factorize(self, a: sp.csc_matrix) -> spla.SuperLU:
        """Sparse LU of an assembled matrix, in the best order available."""
        if self.ordered:
            return factorize(a)
        # Row-major unknowns would factorise as a band: let SuperLU reorder.
        return spla.splu(
            a,
            permc_spec="MMD_AT_PLUS_A",
            diag_pivot_thresh=0.0,
            options={"SymmetricMode": True},
        )


def _positive(name: str, value, *, allow_zero: bool = False) -> float:
    """A finite number > 0 (>= 0 with allow_zero), else a one-line ValueError."""
    what = "a finite number >= 0" if allow_zero else "a finite number > 0"
    if isinstance(value, bool):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {what}, got {value!r}") from None
    ok = number >= 0.0 if allow_zero else number > 0.0
    if not (math.isfinite(number) and ok):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return number


def check_parameters(
    contrast, sigma, diffusivity, max_iter, tol, solver
) -> tuple[float, float, str, int, float, str]:
    """Checks the EED parameters; returns them as (float, float, str, int, float, str).

    Raises:
        ValueError: naming the parameter and the value received.
    """
    contrast = _positive("contrast", contrast)
    sigma = _positive("sigma", sigma, allow_zero=True)
    tol = _positive("tol", tol, allow_zero=True)
    if diffusivity not in DIFFUSIVITIES:
        names = ", ".join(DIFFUSIVITIES)
        raise ValueError(f"diffusivity must be one of {names}, got {diffusivity!r}")
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
    if (
        isinstance(max_iter, bool)
        or not isinstance(max_iter, (int, np.integer))
        or max_iter < 1
    ):
        raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}")
    return contrast, sigma, diffusivity, int(max_iter), tol, solver


def _smooth(u: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian presmoothing of an (H, W, C) image with reflecting borders."""
    if sigma == 0.0:
        return u
    # scipy's "reflect" mirrors about the pixel border (d c b a | a b c d),
    # the same reflecting boundary as the diffusion operator.
    return ndi.gaussian_filter(u, sigma=(sigma, sigma, 0.0), mode="reflect")


def _fixed_point(
    u: np.ndarray,
    system: ReducedSystem,
    *,
    contrast: float,
    sigma: float,
    diffusivity: str,
    max_iter: int,
    tol: float,
    solver: str,
) -> EEDInfo:
    """Runs the lagged-diffusivity iteration on u (H, W, C) in place."""
    h, w, c = u.shape
    flat = u.reshape(h * w, c)
    unknown = system.unknown
    x = flat[unknown]
    factorizations = 0
    change = residual = math.inf
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007 - reported in EEDInfo
        weights = pair_weights(_smooth(u, sigma), contrast, diffusivity)
        a, b = system.assemble(weights)
        steps = -1
        if solver == "pcg":
            x_new, steps = ssor_cg(
                a, b, x, rtol=PCG_RTOL, maxiter=_PCG_MAXITER, omega=SSOR_OMEGA
            )
        if steps < 0:
            factorizations += 1
            x_new = system.factorize(a).solve(b)
        residual = relative_residual(a, x_new, b)
        norm = float(np.linalg.norm(x_new))
        diff = float(np.linalg.norm(x_new - x))
        change = diff / norm if norm > 0 else diff
        x = x_new
        flat[unknown] = x
        if change <= tol:
            break
    return EEDInfo(iterations, change, residual, change <= tol, factorizations)


def inpaint_eed(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    contrast: float = DEFAULT_CONTRAST,
    sigma: float = DEFAULT_SIGMA,
    diffusivity: str = "charbonnier",
    max_iter: int = DEFAULT_MAX_ITER,
    tol: float = DEFAULT_TOL,
    init: np.ndarray | None = None,
    solver: str = "auto",
    return_info: bool = False,
) -> np.ndarray | tuple[np.ndarray, EEDInfo]:
    """Edge-enhancing anisotropic diffusion inpainting from a binary mask.

    Args:
        image: (H, W) or (H, W, C) array, values usually in [0, 1] (the
            defaults of ``contrast`` assume that range).
        mask: (H, W) binary array (bool, or 0/1 numbers); True/1 marks a
            known pixel. One mask and one diffusion tensor serve all channels.
        contrast: lambda > 0 of the diffusivity; edges with a presmoothed
            gradient magnitude well above it block diffusion across them.
        sigma: standard deviation >= 0 (pixels) of the Gaussian presmoothing
            of u before the tensor is computed; 0 uses u itself.
        diffusivity: ``"charbonnier"`` (1 / sqrt(1 + s2 / lambda^2)) or
            ``"perona_malik"`` (1 / (1 + s2 / lambda^2)).
        max_iter: fixed-point iteration limit, >= 1.
        tol: the iteration stops once the relative change of the unknown
            pixels is at most ``tol`` (>= 0; 0 runs ``max_iter`` iterations).
        init: initial guess, the shape of ``image`` (its known pixels are
            replaced by the image's); None starts from homogeneous diffusion
            inpainting.
        solver: ``"auto"``, ``"direct"`` or ``"pcg"`` (module docstring).
        return_info: also return an :class:`EEDInfo`.

    Returns:
        The inpainted image, same shape as ``image`` (with ``return_info``:
        the tuple (image, info)). Its dtype is float32 if the image is
        float32 and float64 otherwise. Known pixels equal the input exactly.
        Values are not clipped (without a maximum principle they may leave
        the range of the known values slightly). A full mask returns a copy
        of the image.

    Raises:
        ValueError: for a bad image or mask, an empty mask, a bad ``init``,
            or a parameter outside its range (NaN included), in one line.
    """
    contrast, sigma, diffusivity, max_iter, tol, solver = check_parameters(
        contrast, sigma, diffusivity, max_iter, tol, solver
    )
    if not isinstance(return_info, (bool, np.bool_)):
        raise ValueError(f"return_info must be True or False, got {return_info!r}")
    f, was_2d = as_image(image)
    h, w, c = f.shape
    known2d = as_known_mask(mask, (h, w), "EED inpainting")
    if init is None:
        u = f.copy() if known2d.all() else inpaint_homogeneous(f, known2d)
    else:
        start = np.asarray(init)
        if start.shape != np.shape(image):
            raise ValueError(
                f"init must have the image's shape {np.shape(image)}, got {start.shape}"
            )
        u, _ = as_image(start)
        u = np.array(u, dtype=np.float64)  # a writable copy
    u[known2d] = f[known2d]
    if known2d.all():
        info = EEDInfo(0, 0.0, 0.0, True, 0)
    else:
        if solver == "auto":
            solver = "direct" if h * w <= AUTO_DIRECT_PIXELS else "pcg"
        system = ReducedSystem(
            h, w, known2d.ravel(), f.reshape(h * w, c), ordered=solver == "direct"
        )
        info = _fixed_point(
            u, system, contrast=contrast, sigma=sigma, diffusivity=diffusivity,
            max_iter=max_iter, tol=tol, solver=solver,
        )  # fmt: skip
    if was_2d:
        u = u[:, :, 0]
    out_dtype = result_dtype(image)
    u = u.astype(out_dtype, copy=False)
    return (u, info) if return_info else u
