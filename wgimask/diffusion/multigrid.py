"""Compiled multigrid on the pixel grid for homogeneous diffusion inpainting.

The reduced system of the unknown pixels (see ``diffusion``) is solved on
the whole pixel grid: a known pixel is simply an inactive grid point (its
row is left out, its value moves to the right-hand side). Every level stores
its operator as a *variable 5-point stencil*: a diagonal ``d`` (0 on
inactive points) and one weight per grid edge to the right (``wx``) and
downwards (``wy``), 0 where either end is inactive. The fine level has
``d`` = number of in-image neighbours and weight 1 between two unknowns.

Coarsening (aggregation on the grid, Galerkin coarse operators): every 2x2
block of a level becomes one coarse point, the prolongation P copies a
coarse value to the active children of its block, and the coarse operator is
the Galerkin product P^T A P. For a 5-point stencil this is again a 5-point
stencil, computed in one pass: a coarse edge weight is the sum of the fine
edge weights that cross between the two blocks, a coarse diagonal is the sum
of the children's diagonals minus twice their internal edge weights. It is
exact for any mask: the known pixels' pull (the part of a diagonal not used
by edges) is carried down unchanged, and a block without unknowns becomes an
inactive coarse point.

Piecewise constant prolongation underestimates the coarse correction of
smooth errors, so every coarse correction is scaled by ``_OVERCORRECTION``
(after Braess, 1995, "Towards algebraic multigrid for elliptic problems of
second order").

The V-cycle (from zero) smooths with ``_SWEEPS`` red-black Gauss-Seidel
sweeps, red first before the coarse correction and black first after it, so
it is a symmetric positive definite preconditioner for any positive scaling
of the coarse correction; CG uses it. The coarsest level (at most
``COARSEST`` unknowns) is solved by a dense Cholesky factorisation. All
channels run together, each with its own CG step sizes.

Layout. Each level is padded by one row above and below and two columns on
the left (and at least one on the right, to an even width 2 Wh), with zero
stencil weights on the border, so the kernels need no boundary tests. The
padded columns of a row are stored by *colour*: the point at padded row i
and column J has colour (i + J) % 2 and sits at entry J // 2 of plane
[colour]; planes are (2, H+2, Wh) and vectors (2, C, H+2, Wh). A
red-black half sweep is then one contiguous loop per row with constant
offsets (the left and right neighbours of entry m are entries m - 1 and m,
or m and m + 1, of the other colour), which the compiler vectorises; the
two points of a 2x2 block's row are entry m of both colours, so
restriction and prolongation stay simple too. The V-cycle runs in float32,
CG's solution and residual in float64 (`multigrid_kernels` and
`multigrid_pcg` have the details and the fused passes).

The kernels are compiled by numba with ``cache=True``: the first call after
an installation compiles them, later processes load them from the cache;
docs/baselines.md has the measurements. Levels reach the compiled code as
tuples of a fixed length (``_MAX_LEVELS``, unused entries are tiny arrays):
a tuple's length is part of its type, so with one length a single compiled
specialisation serves every image size. Without numba, ``available()`` is
False and ``inpaint`` falls back to the scipy multigrid of
``benchmarks/speed/scipy_multigrid.py``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from wgimask.devices import usable_cpu_count
from wgimask.diffusion.jit import NUMBA, jit, jit_sum
from wgimask.diffusion.multigrid_pcg import dot, pcg

__all__ = ["available", "solve_grid_multigrid", "COARSEST"]

#: Colour images above this many pixels are solved one channel at a time
#: (a third of the memory; the coarse levels are built once per channel).
CHANNEL_SPLIT_PIXELS = 4_000_000
#: Levels are coarsened until at most this many unknowns remain; those are
#: solved by dense Cholesky.
COARSEST = 100
# Scaling of every coarse correction (see the module docstring).
_OVERCORRECTION = 1.3
# Red-black Gauss-Seidel sweeps before and after each coarse correction.
_SWEEPS = 2
# Length of the level tuples (see the module docstring): enough for images
# of 2^23 pixels along a side.
_MAX_LEVELS = 24


def available() -> bool:
    """Whether numba is importable (else the scipy multigrid is used)."""
    return NUMBA


@jit
def _unknown(known, un):
    """un = the unknown pixels as 1.0 (known ones and a one-pixel border 0.0)."""
    h, w = known.shape
    for i in range(h):
        for j in range(w):
            un[i + 1, j + 1] = 0.0 if known[i, j] else 1.0


@jit
def _put_row(row, dst, i):
    """Row i of the normal padded layout into the colour layout dst."""
    s = i & 1
    n = dst.shape[-1]
    a = dst[0, i]
    b = dst[1, i]
    for m in range(n):
        a[m] = row[2 * m + s]
        b[m] = row[2 * m + 1 - s]


@jit
def _fine_stencil(un, d, wx, wy):
    """Fine stencil planes (2, H+2, Wh) in the colour layout (zeroed)."""
    h, w = un.shape[0] - 2, un.shape[1] - 2
    n = d.shape[2]
    rd = np.zeros(2 * n, dtype=np.float32)
    rx = np.zeros(2 * n, dtype=np.float32)
    ry = np.zeros(2 * n, dtype=np.float32)
    for i in range(1, h + 1):
        vert = (1.0 if i > 1 else 0.0) + (1.0 if i < h else 0.0)
        u0 = un[i]
        u1 = un[i + 1]
        for j in range(1, w + 1):
            deg = vert + (1.0 if j > 1 else 0.0) + (1.0 if j < w else 0.0)
            rd[j + 1] = u0[j] * deg
            rx[j + 1] = u0[j] * u0[j + 1]
            ry[j + 1] = u0[j] * u1[j]
        _put_row(rd, d, i)
        _put_row(rx, wx, i)
        _put_row(ry, wy, i)


@jit
def _fine_rhs(un, values, b):
    """Right-hand side (2, C, H+2, Wh) in the colour layout: the sum of the
    known neighbours' values at every unknown pixel."""
    h, w, c = values.shape
    n = b.shape[3]
    row = np.zeros(2 * n)
    # Known values (zero elsewhere) of image rows r - 1, r, r + 1, channel
    # first, in a ring of three padded rows; each image row is read once.
    kn = np.zeros((3, c, w + 2))
    for r in range(min(2, h)):
        for j in range(w):
            f = 1.0 - un[r + 1, j + 1]
            for k in range(c):
                kn[r, k, j + 1] = f * values[r, j, k]
    for r in range(h):
        nxt = kn[(r + 1) % 3]
        if r >= 1:
            if r + 1 < h:
                for j in range(w):
                    f = 1.0 - un[r + 2, j + 1]
                    for k in range(c):
                        nxt[k, j + 1] = f * values[r + 1, j, k]
            else:
                nxt[:] = 0.0
        cur = kn[r % 3]
        prv = kn[(r + 2) % 3]
        u0 = un[r + 1]
        for k in range(c):
            kc = cur[k]
            kp = prv[k]
            kx = nxt[k]
            for j in range(w):
                row[j + 2] = u0[j + 1] * (kc[j] + kc[j + 2] + kp[j + 1] + kx[j + 1])
            _put_row(row, b[:, k], r + 1)


@jit
def _fine_residual(un, known, f, x0, b):
    """b = the residual of a guess, colour layout (2, C, H+2, Wh): at every
    unknown pixel the sum of its in-image neighbours' values of v minus
    their count times its own, v = f on the known pixels and x0 elsewhere
    (the reduced system's b - A x for x = x0); 0 elsewhere.

    Returns the squared norm of each channel's right-hand side (the sums of
    the known neighbours' values, `_fine_rhs`) from the same pass, so a warm
    start needs no pass of its own for them.
    """
    h, w, c = f.shape
    n = b.shape[3]
    row = np.zeros(2 * n)
    norms = np.zeros(c)
    for r in range(h):
        u0 = un[r + 1]
        for k in range(c):
            norm = 0.0
            for j in range(w):
                if u0[j + 1] == 0.0:
                    row[j + 2] = 0.0
                    continue
                centre = x0[r, j, k]
                acc = 0.0
                # The known neighbours' values, summed as `_fine_rhs` does.
                up = down = left = right = 0.0
                if r > 0:
                    if known[r - 1, j]:
                        v = f[r - 1, j, k]
                        up = v
                    else:
                        v = x0[r - 1, j, k]
                    acc += v - centre
                if r + 1 < h:
                    if known[r + 1, j]:
                        v = f[r + 1, j, k]
                        down = v
                    else:
                        v = x0[r + 1, j, k]
                    acc += v - centre
                if j > 0:
                    if known[r, j - 1]:
                        v = f[r, j - 1, k]
                        left = v
                    else:
                        v = x0[r, j - 1, k]
                    acc += v - centre
                if j + 1 < w:
                    if known[r, j + 1]:
                        v = f[r, j + 1, k]
                        right = v
                    else:
                        v = x0[r, j + 1, k]
                    acc += v - centre
                row[j + 2] = acc
                rhs = left + right + up + down
                norm += rhs * rhs
            norms[k] += norm
            _put_row(row, b[:, k], r + 1)
    return norms


@jit
def _coarsen(d, wx, wy, w):
    """Galerkin coarse stencil of 2x2 aggregation, colour layout in and out.

    The block of coarse point (I, J) holds the fine points of rows 2I - 1
    and 2I at padded columns 2J - 2 and 2J - 1, that is entry m = J - 1 of
    both colours of those rows (see the module docstring for the sums).
    """
    h = d.shape[1] - 2
    n = d.shape[2]
    hc = (h + 1) // 2
    wc = (w + 1) // 2
    nc = (wc + 3) // 2 + 1
    dc = np.zeros((2, hc + 2, nc), dtype=np.float32)
    wxc = np.zeros((2, hc + 2, nc), dtype=np.float32)
    wyc = np.zeros((2, hc + 2, nc), dtype=np.float32)
    rd = np.zeros(2 * nc, dtype=np.float32)
    rx = np.zeros(2 * nc, dtype=np.float32)
    ry = np.zeros(2 * nc, dtype=np.float32)
    for i in range(1, h + 1):
        # The point at even padded column 2m has colour i % 2.
        ce = i & 1
        co = 1 - ce
        first = (i & 1) == 1
        if first:
            rd[:] = 0.0
            rx[:] = 0.0
            ry[:] = 0.0
        de = d[ce, i]
        do = d[co, i]
        xe = wx[ce, i]
        xo = wx[co, i]
        ye = wy[ce, i]
        yo = wy[co, i]
        for m in range(1, n - 1):
            v = de[m] + do[m] - 2.0 * xe[m]
            if first:
                v -= 2.0 * (ye[m] + yo[m])
            else:
                ry[m + 1] += ye[m] + yo[m]
            rd[m + 1] += v
            rx[m + 1] += xo[m]
        if not first or i == h:
            ic = (i - 1) // 2 + 1
            _put_row(rd, dc, ic)
            _put_row(rx, wxc, ic)
            _put_row(ry, wyc, ic)
    return dc, wxc, wyc


@jit
def _uncolour_plane(a):
    """(2, H, Wh) colour layout -> (H, 2 Wh) normal padded layout."""
    _, h, n = a.shape
    out = np.zeros((h, 2 * n), dtype=a.dtype)
    for i in range(h):
        s = i & 1
        for m in range(n):
            out[i, 2 * m + s] = a[0, i, m]
            out[i, 2 * m + 1 - s] = a[1, i, m]
    return out


@jit
def _colour_plane(a):
    """(H, Wp) normal layout -> (2, H, Wp / 2) colour layout.

    Padded column J of row i is entry J // 2 of colour (i + J) % 2: [0]
    holds the red points (i + J even), [1] the black ones.
    """
    h, wp = a.shape
    n = wp // 2
    out = np.empty((2, h, n), dtype=a.dtype)
    for i in range(h):
        s = i & 1
        for m in range(n):
            out[0, i, m] = a[i, 2 * m + s]
            out[1, i, m] = a[i, 2 * m + 1 - s]
    return out


@jit
def _extract(x, known, values, x0, added, u):
    """u = values on the known pixels and x (colour layout) elsewhere, plus
    x0 there if ``added``: the solution from a warm start's correction x,
    in the same pass (without a guess, pass any array of u's shape as x0)."""
    h, w = known.shape
    c = u.shape[2]
    for i in range(h):
        for j in range(w):
            if known[i, j]:
                for k in range(c):
                    u[i, j, k] = values[i, j, k]
            else:
                jj = j + 2
                col = (i + 1 + jj) & 1
                for k in range(c):
                    v = x[col, k, i + 1, jj >> 1]
                    u[i, j, k] = x0[i, j, k] + v if added else v


@jit
def _inverse_diagonal(d, inv):
    a = d.reshape(-1)
    b = inv.reshape(-1)
    for p in range(a.size):
        if a[p] > 0.0:
            b[p] = np.float32(1.0 / a[p])


@jit
def _dense(d, wx, wy):
    h, w = d.shape
    index = -np.ones((h, w), dtype=np.int64)
    m = 0
    for i in range(h):
        for j in range(w):
            if d[i, j] > 0.0:
                index[i, j] = m
                m += 1
    a = np.zeros((m, m))
    for i in range(h):
        for j in range(w):
            p = index[i, j]
            if p < 0:
                continue
            a[p, p] = d[i, j]
            if index[i, j + 1] >= 0:
                q = index[i, j + 1]
                a[p, q] -= wx[i, j]
                a[q, p] -= wx[i, j]
            if index[i + 1, j] >= 0:
                q = index[i + 1, j]
                a[p, q] -= wy[i, j]
                a[q, p] -= wy[i, j]
    return a, index


@jit_sum
def _cholesky(a):
    """Lower Cholesky factor of a small dense SPD matrix (rows contiguous)."""
    m = a.shape[0]
    low = np.zeros((m, m))
    for j in range(m):
        lj = low[j]
        s = a[j, j]
        for t in range(j):
            s -= lj[t] * lj[t]
        lj[j] = np.sqrt(s)
        for i in range(j + 1, m):
            li = low[i]
            s = a[i, j]
            for t in range(j):
                s -= li[t] * lj[t]
            li[j] = s / lj[j]
    return low


def solve_grid_multigrid(
    known: np.ndarray,
    values: np.ndarray,
    *,
    rtol: float,
    x0: np.ndarray | None = None,
    out: np.ndarray | None = None,
    maxiter: int = 200,
    scale: float = _OVERCORRECTION,
    sweeps: int = _SWEEPS,
) -> tuple[np.ndarray, int]:
    """Homogeneous diffusion inpainting by grid multigrid-preconditioned CG.

    Args:
        known: (H, W) bool mask, at least one True.
        values: (H, W, C) float64 image.
        rtol: relative residual at which every channel stops, in (0, 1)
            (of the reduced system, as for ``solver="cg"``).
        x0: optional (H, W, C) initial guess (its values on the unknown
            pixels are used), e.g. the inpainting of a mask with fewer
            points: CG then solves for the correction, from the guess's
            residual, and stops at the same residual as without a guess
            (``rtol`` times the norm of the right-hand side b), so a good
            guess saves iterations, and one that already meets it costs
            none.
        out: optional (H, W, C) float64 C-contiguous array for the
            inpainting; it may be ``x0`` itself, which then becomes the
            solution (one image-sized array less on large photos).
        maxiter: iteration limit.
        scale: scaling of the coarse corrections.
        sweeps: red-black Gauss-Seidel sweeps before and after each coarse
            correction (at least 1).

    Returns:
        ((H, W, C) float64 inpainting, number of CG iterations).

    Raises:
        RuntimeError: if CG has not converged after ``maxiter`` iterations,
            or if numba is not installed.
        ValueError: if ``sweeps`` is below 1.
    """
    if not NUMBA:
        raise RuntimeError("the grid multigrid needs numba (pip install numba)")
    if int(sweeps) < 1:
        raise ValueError(f"sweeps must be at least 1, got {sweeps!r}")
    known = np.ascontiguousarray(known, dtype=np.bool_)
    values = np.asarray(values, dtype=np.float64)
    h, w, c = values.shape
    if x0 is not None:
        x0 = np.asarray(x0, dtype=np.float64)
        if x0.shape != values.shape:
            raise ValueError(
                f"x0 must have the image's shape {values.shape}, got {x0.shape}"
            )
    if known.all():
        if out is not None:
            out[...] = values
            return out, 0
        return values.copy(), 0
    levels = _levels(known)
    if c > 1 and h * w > CHANNEL_SPLIT_PIXELS:
        # One channel at a time (the vectors of one channel only, about 40
        # bytes per pixel), on the levels built once; channels run side by
        # side on the usable cores (the kernels release the interpreter).
        groups = [slice(k, k + 1) for k in range(c)]
    else:
        groups = [slice(0, c)]
    if out is None:
        u = np.empty_like(values)
    elif out.shape == values.shape and out.dtype == np.float64:
        # Each channel reads its own channel of x0 (the residual) before it
        # writes that channel of u, so out may be x0.
        u = out
    else:
        raise ValueError(
            f"out must be a float64 array of the image's shape {values.shape}"
        )

    def solve(group):
        return _solve_channels(
            levels, known, values[..., group], None if x0 is None else x0[..., group],
            u[..., group], rtol, maxiter, scale, sweeps,
        )  # fmt: skip

    workers = min(len(groups), usable_cpu_count())
    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            counts = list(pool.map(solve, groups))
    else:
        counts = [solve(group) for group in groups]
    if min(counts) < 0:
        raise RuntimeError(
            f"multigrid CG did not reach relative residual {rtol} in {maxiter} "
            "iterations"
        )
    return u, max(counts)


def _levels(known):
    """The mask's multigrid: the padded plane of unknown pixels, the stencil
    planes of every level, their inverse diagonals and the coarsest level's
    Cholesky factor (with its index); shared by all channels."""
    h, w = known.shape
    n = (w + 3) // 2 + 1
    # Large arrays are allocated by numpy, not inside the compiled code:
    # numpy asks the kernel for transparent huge pages, and first touching
    # numba's allocations cost about four times as much (page faults).
    un = np.zeros((h + 2, w + 2), dtype=np.float32)
    _unknown(known, un)
    d, wx, wy = (np.zeros((2, h + 2, n), dtype=np.float32) for _ in range(3))
    _fine_stencil(un, d, wx, wy)
    ds, wxs, wys = [d], [wx], [wy]
    active = int(np.count_nonzero(d))
    width = w
    while active > COARSEST and (d.shape[1] - 2) * width > 1 and len(ds) < _MAX_LEVELS:
        d, wx, wy = _coarsen(d, wx, wy, width)
        width = (width + 1) // 2
        ds.append(d)
        wxs.append(wx)
        wys.append(wy)
        active = int(np.count_nonzero(d))
    a, index = _dense(_uncolour_plane(d), _uncolour_plane(wx), _uncolour_plane(wy))
    # The coarsest matrix is SPD (a Galerkin product of an SPD one).
    low = _cholesky(a)
    dinvs = [np.zeros_like(x) for x in ds]
    for x, inv in zip(ds, dinvs, strict=True):
        _inverse_diagonal(x, inv)
    return {
        "un": un, "ds": ds, "wxs": wxs, "wys": wys, "dinvs": dinvs, "low": low,
        "up": np.ascontiguousarray(low.T), "index": _colour_plane(index),
    }  # fmt: skip


def _solve_channels(levels, known, values, x0, u, rtol, maxiter, scale, sweeps):
    """Solves the channels of ``values`` into ``u``; CG's iterations (-1: not
    converged). The arrays may be strided views of all channels."""
    h, w, c = values.shape
    ds = levels["ds"]
    n = ds[0].shape[2]
    b = np.zeros((2, c, h + 2, n))
    if x0 is None:
        _fine_rhs(levels["un"], values, b)
        reference = dot(b, b)
    else:
        # Solve A e = b - A x0 for the correction e; u = x0 + e.
        reference = _fine_residual(levels["un"], known, values, x0, b)
    rs = [np.zeros((2, c) + x.shape[1:], dtype=np.float32) for x in ds]
    es = [np.zeros((2, c) + x.shape[1:], dtype=np.float32) for x in ds]
    bufs = [np.zeros((c, 2 * x.shape[2] + 4), dtype=np.float32) for x in ds]
    pad = _MAX_LEVELS - len(ds)
    plane = np.zeros((2, 1, 1), dtype=np.float32)
    vector = np.zeros((2, c, 1, 1), dtype=np.float32)
    row = np.zeros((c, 1), dtype=np.float32)

    def padded(arrays, unused):
        return tuple(arrays) + (unused,) * pad

    x = np.zeros(b.shape)
    iterations = pcg(
        len(ds), padded(ds, plane), padded(levels["dinvs"], plane),
        padded(levels["wxs"], plane), padded(levels["wys"], plane),
        padded(rs, vector), padded(es, vector), padded(bufs, row), levels["low"],
        levels["up"], levels["index"], float(scale), int(sweeps), b, x,
        np.zeros(b.shape, dtype=np.float32), float(rtol), reference, int(maxiter),
    )  # fmt: skip
    _extract(x, known, values, values if x0 is None else x0, x0 is not None, u)
    return iterations
