"""Homogeneous diffusion inpainting with a sparse direct and a CG solver.

The inpainting u of an image f from a mask c (True = known pixel) solves

    u = f                on the mask,
    Laplace(u) = 0       elsewhere,

with reflecting (homogeneous Neumann) image boundaries, discretised by the
standard 5-point stencil on the pixel grid (unit grid size). Only the unknown
pixels enter the linear system (the *reduced system*): for an unknown pixel i
with in-image neighbour set N(i),

    |N(i)| u_i - sum_{j in N(i), j unknown} u_j = sum_{j in N(i), j known} f_j.

Its matrix is symmetric positive definite as soon as one pixel is known (the
pixel grid is connected), and it is the same for every colour channel, so one
factorisation serves all channels (they are the right-hand-side columns).

Three solvers are provided, and ``"auto"`` (the default) picks the fastest
that fits the image size:

* ``"direct"``: a sparse LU factorisation (SuperLU through
  ``scipy.sparse.linalg.splu``) of the reduced system. The unknowns are
  ordered by a geometric nested dissection of the pixel grid, computed once
  per image size, and factorised without pivoting (the matrix is SPD), which
  measured faster than SuperLU's own COLAMD ordering on 128x128 masks.
* ``"cg"``: the reference of the paper, conjugate gradients on the same
  system, started from zero and stopped once every channel's residual has
  dropped to ``rtol`` (default 1e-6) times its initial norm.
* ``"multigrid"``: CG preconditioned by a V-cycle of aggregation multigrid
  on the pixel grid, compiled with numba (``wgimask.diffusion.multigrid``), to
  the same ``rtol``; the fastest on whole photos, where the direct
  factorisation's fill grows too fast. Without numba (a dependency) it falls
  back to ``"cg"``. The earlier numpy/scipy smoothed-aggregation multigrid is
  kept as a comparison in ``benchmarks/speed/scipy_multigrid.py``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from wgimask.arrays import as_image, as_known_mask, result_dtype

__all__ = ["inpaint", "solve_checked", "CG_RTOL", "AUTO_DIRECT_PIXELS", "SOLVERS"]

#: Relative residual at which the CG reference stops (the paper's setting).
CG_RTOL = 1e-6
#: ``solver="auto"`` uses the direct solver up to this many pixels and
#: multigrid above. Below it the direct solver takes at most about 0.1 s,
#: less than loading the compiled multigrid kernels in a new process (about
#: 1 to 2 s, docs/baselines.md).
AUTO_DIRECT_PIXELS = 256 * 256
#: Names accepted by ``inpaint(solver=...)``.
SOLVERS = ("auto", "direct", "cg", "multigrid")

# Grid blocks at most this many pixels wide are left unsplit by the nested
# dissection: further splitting does not reduce the fill of such small blocks.
_ND_LEAF = 4


@dataclass(frozen=True)
class Grid:
    """Pixel-grid structure of an H x W image, shared by all masks.

    Attributes:
        height: image height H.
        width: image width W.
        src: first pixel (flat index) of every grid edge, each edge once.
        dst: second pixel of every grid edge.
        degree: number of in-image 4-neighbours of every pixel.
        order: a nested-dissection ordering of all pixels (a permutation).
        laplacian: the positive semi-definite Neumann graph Laplacian
            (degree on the diagonal, -1 per neighbour), CSR, N x N.
    """

    height: int
    width: int
    src: np.ndarray
    dst: np.ndarray
    degree: np.ndarray
    order: np.ndarray
    laplacian: sp.csr_matrix

    @property
    def size(self) -> int:
        """Number of pixels H * W."""
        return self.height * self.width


def nested_dissection(
    height: int, width: int, separator: int = 1, leaf: int = _ND_LEAF
) -> np.ndarray:
    """Geometric nested-dissection ordering of an H x W pixel grid.

    Each block is split across its longer side by ``separator`` middle rows
    or columns; the two halves are ordered first and the separator last, so
    that eliminating the halves creates no fill between them. A 5-point
    stencil needs one-line separators; the 13-point bi-Laplacian
    (`wgimask.diffusion.biharmonic`) two. Blocks at most ``leaf`` pixels on
    a side, or one pixel thin, are not split.
    """
    index = np.arange(height * width).reshape(height, width)
    parts: list[np.ndarray] = []
    # Explicit LIFO stack instead of recursion. An entry is either a block
    # (r0, r1, c0, c1) still to order or a finished separator (an array).
    stack: list = [(0, height, 0, width)]
    # The first separator line: the middle one for one line, the upper
    # middle for more (as each solver's ordering was measured).
    offset = separator - (separator == 1)
    while stack:
        item = stack.pop()
        if isinstance(item, np.ndarray):
            parts.append(item)
            continue
        r0, r1, c0, c1 = item
        h, w = r1 - r0, c1 - c0
        if h <= 0 or w <= 0:
            continue
        if max(h, w) <= leaf or min(h, w) <= 1:
            parts.append(index[r0:r1, c0:c1].ravel())
            continue
        if h >= w:
            mid = (r0 + r1 - offset) // 2
            first, second = (r0, mid, c0, c1), (mid + separator, r1, c0, c1)
            sep = index[mid : mid + separator, c0:c1].ravel()
        else:
            mid = (c0 + c1 - offset) // 2
            first, second = (r0, r1, c0, mid), (r0, r1, mid + separator, c1)
            sep = index[r0:r1, mid : mid + separator].ravel()
        # Pushed first, so the separator comes out after both halves.
        stack.append(sep)
        stack.append(second)
        stack.append(first)
    order = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    return order.astype(np.int64)


@functools.lru_cache(maxsize=32)
def grid(height: int, width: int) -> Grid:
    """Returns the (cached) grid structure of an H x W image.

    Args:
        height: image height H >= 1.
        width: image width W >= 1.

    Returns:
        The shared :class:`Grid`.
    """
    index = np.arange(height * width, dtype=np.int64).reshape(height, width)
    src = np.concatenate([index[:, :-1].ravel(), index[:-1, :].ravel()])
    dst = np.concatenate([index[:, 1:].ravel(), index[1:, :].ravel()])
    n = height * width
    degree = (np.bincount(src, minlength=n) + np.bincount(dst, minlength=n)).astype(
        np.float64
    )
    rows = np.concatenate([src, dst, np.arange(n)])
    cols = np.concatenate([dst, src, np.arange(n)])
    data = np.concatenate([-np.ones(2 * src.size), degree])
    lap = sp.csr_matrix((data, (rows, cols)), shape=(n, n))
    order = nested_dissection(height, width)
    for arr in (src, dst, degree, order):
        arr.setflags(write=False)
    return Grid(height, width, src, dst, degree, order, lap)


def reduced_system(
    g: Grid, known: np.ndarray, values: np.ndarray, *, ordered: bool = True
) -> tuple[sp.csc_matrix, np.ndarray, np.ndarray]:
    """Assembles the reduced system of the unknown pixels.

    Args:
        g: grid structure.
        known: (N,) bool, True for known pixels; at least one is True.
        values: (N, C) image values (only the known ones are read).
        ordered: whether the unknowns follow the nested-dissection order
            (True) or the row-major pixel order (False).

    Returns:
        (A, b, unknown): the SPD matrix A (m x m, CSC), the right-hand side
        b (m x C) and the flat pixel indices of the m unknowns, in the order
        of A's rows.
    """
    n = g.size
    unknown_mask = ~known
    if ordered:
        unknown = g.order[unknown_mask[g.order]]
    else:
        unknown = np.flatnonzero(unknown_mask)
    m = unknown.size
    pos = np.full(n, -1, dtype=np.int64)
    pos[unknown] = np.arange(m)
    s, t = g.src, g.dst
    us, ut = unknown_mask[s], unknown_mask[t]
    both = us & ut
    ps, pt = pos[s[both]], pos[t[both]]
    rows = np.concatenate([ps, pt, np.arange(m)])
    cols = np.concatenate([pt, ps, np.arange(m)])
    data = np.concatenate([-np.ones(2 * ps.size), g.degree[unknown]])
    a = sp.csc_matrix((data, (rows, cols)), shape=(m, m))
    # Known neighbours move to the right-hand side.
    to_s = us & ~ut  # edge (s unknown, t known)
    to_t = ut & ~us
    rhs_rows = np.concatenate([pos[s[to_s]], pos[t[to_t]]])
    rhs_src = np.concatenate([t[to_s], s[to_t]])
    coupling = sp.csr_matrix(
        (np.ones(rhs_rows.size), (rhs_rows, rhs_src)), shape=(m, n)
    )
    b = np.asarray(coupling @ values)
    return a, b, unknown


def factorize(a: sp.csc_matrix) -> spla.SuperLU:
    """Sparse LU of a reduced system already in nested-dissection order.

    The matrix is SPD, so no pivoting is needed and SuperLU keeps the given
    order (``NATURAL``) with the diagonal as pivots.
    """
    return spla.splu(
        a,
        permc_spec="NATURAL",
        diag_pivot_thresh=0.0,
        options={"SymmetricMode": True},
    )


def solve_direct(g: Grid, known: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Homogeneous diffusion inpainting with the direct solver, flat arrays.

    Args:
        g: grid structure.
        known: (N,) bool mask, at least one True.
        values: (N, C) float64 image.

    Returns:
        (N, C) float64 inpainting.
    """
    u = values.copy()
    if known.all():
        return u
    a, b, unknown = reduced_system(g, known, values)
    u[unknown] = factorize(a).solve(b)
    return u


def check_rtol(rtol: float) -> float:
    """Checks a relative residual tolerance: a number in the open interval (0, 1).

    A NaN tolerance would stop CG before its first step (every comparison
    with NaN is false) and one of 1 or more accepts the zero start, so both
    would return zeros for every unknown pixel without a word.

    Raises:
        ValueError: if ``rtol`` is not a number in (0, 1).
    """
    try:
        value = float(rtol)
    except (TypeError, ValueError):
        raise ValueError(f"rtol must be a number in (0, 1), got {rtol!r}") from None
    if not (0.0 < value < 1.0):  # also false for NaN
        raise ValueError(f"rtol must lie in (0, 1), got {rtol!r}")
    return value


def conjugate_gradients(
    a: sp.spmatrix, b: np.ndarray, *, rtol: float = CG_RTOL, maxiter: int | None = None
) -> tuple[np.ndarray, int]:
    """Conjugate gradients for an SPD matrix, one right-hand side at a time.

    Textbook CG (Hestenes-Stiefel) from x0 = 0 for every column of b; a column
    stops once its recursively updated residual satisfies
    ||r|| <= rtol * ||b|| (the relative residual, since r0 = b).

    Args:
        a: SPD sparse matrix (m x m).
        b: right-hand sides (m x C).
        rtol: relative residual at which a column stops.
        maxiter: iteration limit per column (default 10 * m + 100).

    Returns:
        (x, iterations): the solutions (m x C) and the largest number of
        iterations over the columns.

    Raises:
        RuntimeError: if a column has not converged after maxiter steps.
    """
    rtol = check_rtol(rtol)
    m, c = b.shape
    if maxiter is None:
        maxiter = 10 * m + 100
    a = sp.csr_matrix(a)
    x = np.zeros((m, c))
    most = 0
    for k in range(c):
        rhs = np.ascontiguousarray(b[:, k])
        xk = np.zeros(m)
        r = rhs.copy()
        p = r.copy()
        # einsum rather than BLAS dot: threaded BLAS dot products of vectors
        # this long are slower than one core on small machines.
        rr = np.einsum("i,i->", r, r)
        tol2 = (rtol**2) * rr
        it = 0
        while rr > tol2:
            if it >= maxiter:
                raise RuntimeError(
                    f"CG did not reach relative residual {rtol} in {maxiter} iterations"
                )
            ap = a @ p
            alpha = rr / np.einsum("i,i->", p, ap)
            xk += alpha * p
            r -= alpha * ap
            rr_new = np.einsum("i,i->", r, r)
            p *= rr_new / rr
            p += r
            rr = rr_new
            it += 1
        x[:, k] = xk
        most = max(most, it)
    return x, most


def solve_cg(
    g: Grid, known: np.ndarray, values: np.ndarray, *, rtol: float = CG_RTOL
) -> tuple[np.ndarray, int]:
    """Homogeneous diffusion inpainting with the CG reference, flat arrays.

    Args:
        g: grid structure.
        known: (N,) bool mask, at least one True.
        values: (N, C) float64 image.
        rtol: relative residual at which CG stops.

    Returns:
        ((N, C) float64 inpainting, number of CG iterations).
    """
    u = values.copy()
    if known.all():
        return u, 0
    a, b, unknown = reduced_system(g, known, values, ordered=False)
    x, iterations = conjugate_gradients(a, b, rtol=rtol)
    u[unknown] = x
    return u, iterations


def _compiled_multigrid():
    # Imported on first use: numba takes a while to load.
    from wgimask.diffusion import multigrid

    return multigrid


def inpaint(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    solver: str = "auto",
    rtol: float = CG_RTOL,
    initial: np.ndarray | None = None,
) -> np.ndarray:
    """Homogeneous diffusion inpainting of an image from a binary mask.

    Solves u = f on the mask and Laplace(u) = 0 elsewhere with reflecting
    (Neumann) image boundaries; one mask serves all channels.

    Args:
        image: (H, W) or (H, W, C) array, values usually in [0, 1].
        mask: (H, W) binary array (bool, or 0/1 numbers); True/1 marks a
            known pixel.
        solver: ``"auto"`` (default: ``"direct"`` up to
            ``AUTO_DIRECT_PIXELS`` pixels, ``"multigrid"`` above),
            ``"direct"`` (sparse LU of the reduced system), ``"cg"``
            (conjugate gradients to relative residual ``rtol``, the paper's
            reference), ``"multigrid"`` (compiled grid multigrid-preconditioned
            CG to ``rtol``; ``"cg"`` without numba).
        rtol: relative residual for the iterative solvers, a number in
            (0, 1); checked for every solver.
        initial: optional initial guess of the compiled multigrid, the
            shape of the image (e.g. the inpainting of a mask with fewer
            points, as densification has); it stops at the same residual,
            in fewer iterations when the guess is good. The other solvers
            ignore it.

    Returns:
        The inpainted image, same shape as ``image``. Its dtype is float32 if
        the image is float32 and float64 otherwise. Values are not clipped;
        by the maximum principle they lie between the smallest and largest
        known value anyway. Known pixels equal the input exactly. A full mask
        returns a copy of the image; a single known pixel gives a constant
        image.

    Raises:
        ValueError: for a bad image, a mask of another size, a non-binary
            mask, an empty mask (nothing to inpaint from), an unknown
            solver name or an ``rtol`` outside (0, 1) (NaN included).
    """
    rtol = check_rtol(rtol)
    f, was_2d = as_image(image)
    h, w, c = f.shape
    known = as_known_mask(mask, (h, w), "homogeneous diffusion").ravel()
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
    u = solve_checked(f, known, solver=solver, rtol=rtol, initial=initial)
    if was_2d:
        u = u[:, :, 0]
    out_dtype = result_dtype(image)
    return u.astype(out_dtype, copy=False)


def solve_checked(
    f: np.ndarray,
    known: np.ndarray,
    *,
    solver: str = "auto",
    rtol: float = CG_RTOL,
    initial: np.ndarray | None = None,
    replace_initial: bool = False,
) -> np.ndarray:
    """`inpaint` without its checks, for callers that solve many times.

    Args:
        f: (H, W, C) float64 image with finite values (as `as_image` gives).
        known: (H W,) or (H, W) bool mask with at least one True.
        solver, rtol, initial: as for `inpaint` (``rtol`` already checked).
        replace_initial: the compiled multigrid may write the inpainting
            into ``initial`` (a float64 (H, W, C) array the caller no longer
            needs) instead of a new array: on a 12-megapixel colour photo
            that is 288 MB less while it solves.

    Returns:
        The (H, W, C) float64 inpainting.
    """
    h, w, c = f.shape
    known = known.reshape(-1)
    if solver == "auto":
        solver = "direct" if h * w <= AUTO_DIRECT_PIXELS else "multigrid"
    values = f.reshape(h * w, c)
    if solver == "direct":
        u = solve_direct(grid(h, w), known, values)
    elif solver == "multigrid" and _compiled_multigrid().available():
        gridmg = _compiled_multigrid()
        # The compiled multigrid needs no sparse grid structure (0.4 s to
        # build at 768x512, mostly its nested-dissection ordering).
        out = None
        if initial is not None:
            given = initial
            initial = np.asarray(initial, dtype=np.float64).reshape(h, w, c)
            if replace_initial and np.shares_memory(initial, given):
                out = initial
        u, _ = gridmg.solve_grid_multigrid(
            known.reshape(h, w), values.reshape(h, w, c), rtol=rtol, x0=initial,
            out=out,
        )  # fmt: skip
        u = u.reshape(h * w, c)
    else:
        u, _ = solve_cg(grid(h, w), known, values, rtol=rtol)
    return u.reshape(h, w, c)
