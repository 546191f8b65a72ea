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
smooth errors (its Galerkin energy is about twice the true one), so every
coarse correction is scaled by ``_OVERCORRECTION`` (after Braess, 1995,
"Towards algebraic multigrid for elliptic problems of second order").

The V-cycle (from zero) smooths with red-black Gauss-Seidel, red then black
before the coarse correction and black then red after it, so it is a
symmetric positive definite preconditioner for any positive scaling of the
coarse correction; CG uses it. The coarsest level (at most ``COARSEST``
unknowns) is solved by a dense Cholesky factorisation. All channels run
together, each with its own CG step sizes; arrays are padded planes
(C, H+2, W+2) whose border has zero stencil weights, so the kernels need no
boundary tests and their inner loops run along contiguous rows.

The kernels are compiled by numba with ``cache=True``: the first call after
an installation compiles them (30 to 40 s on a loaded 2-core machine), later
processes load them from the cache (1 to 3 s, numba's import included);
docs/baselines.md has the measurements. Without numba, ``available()`` is
False and ``inpaint`` falls back to the scipy multigrid of
``wgimask.baselines.multigrid``.
"""

from __future__ import annotations

import numpy as np

try:
    import numba

    _NUMBA = True
except ImportError:  # pragma: no cover - numba is a dependency
    numba = None
    _NUMBA = False

__all__ = ["available", "solve_grid_multigrid", "COARSEST"]

#: Levels are coarsened until at most this many unknowns remain; those are
#: solved by dense Cholesky.
COARSEST = 400
# Scaling of every coarse correction (see the module docstring).
_OVERCORRECTION = 1.5
# Red-black Gauss-Seidel sweeps before and after each coarse correction.
_SWEEPS = 1


def available() -> bool:
    """Whether numba is importable (else the scipy multigrid is used)."""
    return _NUMBA


def _jit(fn):
    if not _NUMBA:
        return fn
    return numba.njit(cache=True, fastmath=False, boundscheck=False)(fn)


@_jit
def _fine_level(known, values):
    """Padded fine stencil and right-hand side (C, H+2, W+2) from the mask."""
    h, w = known.shape
    c = values.shape[2]
    d = np.zeros((h + 2, w + 2), dtype=np.float32)
    wx = np.zeros((h + 2, w + 2), dtype=np.float32)
    wy = np.zeros((h + 2, w + 2), dtype=np.float32)
    b = np.zeros((c, h + 2, w + 2))
    for i in range(h):
        for j in range(w):
            if known[i, j]:
                continue
            deg = 0.0
            if j + 1 < w:
                deg += 1.0
                if known[i, j + 1]:
                    for k in range(c):
                        b[k, i + 1, j + 1] += values[i, j + 1, k]
                else:
                    wx[i + 1, j + 1] = 1.0
            if j > 0:
                deg += 1.0
                if known[i, j - 1]:
                    for k in range(c):
                        b[k, i + 1, j + 1] += values[i, j - 1, k]
            if i + 1 < h:
                deg += 1.0
                if known[i + 1, j]:
                    for k in range(c):
                        b[k, i + 1, j + 1] += values[i + 1, j, k]
                else:
                    wy[i + 1, j + 1] = 1.0
            if i > 0:
                deg += 1.0
                if known[i - 1, j]:
                    for k in range(c):
                        b[k, i + 1, j + 1] += values[i - 1, j, k]
            d[i + 1, j + 1] = deg
    return d, wx, wy, b


@_jit
def _coarsen(d, wx, wy):
    """Galerkin coarse stencil of 2x2 aggregation (see the module docstring)."""
    h, w = d.shape[0] - 2, d.shape[1] - 2
    hc, wc = (h + 1) // 2, (w + 1) // 2
    dc = np.zeros((hc + 2, wc + 2), dtype=np.float32)
    wxc = np.zeros((hc + 2, wc + 2), dtype=np.float32)
    wyc = np.zeros((hc + 2, wc + 2), dtype=np.float32)
    for i in range(h):
        ic = i // 2 + 1
        for j in range(w):
            jc = j // 2 + 1
            dc[ic, jc] += d[i + 1, j + 1]
            # An edge to the right (downwards) stays inside the block when it
            # starts in an even column (row), else it joins two blocks.
            if j % 2 == 0:
                dc[ic, jc] -= 2.0 * wx[i + 1, j + 1]
            else:
                wxc[ic, jc] += wx[i + 1, j + 1]
            if i % 2 == 0:
                dc[ic, jc] -= 2.0 * wy[i + 1, j + 1]
            else:
                wyc[ic, jc] += wy[i + 1, j + 1]
    return dc, wxc, wyc


@_jit
def _inverse_diagonal(d):
    h, w = d.shape
    inv = np.zeros((h, w), dtype=np.float32)
    for i in range(h):
        for j in range(w):
            if d[i, j] > 0.0:
                inv[i, j] = np.float32(1.0 / d[i, j])
    return inv


@_jit
def _dense(d, wx, wy):
    """Dense matrix of a level's active points and their indices (-1: none)."""
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


# The kernels below work on padded planes (C, H+2, W+2): the border and the
# inactive points have zero stencil weights, so no boundary tests are needed,
# and the innermost loop runs along contiguous rows.


@_jit
def _row_update(d_inv, wx, wy, r, e, k, i, start, row):
    """Gauss-Seidel update of every other point of row i, from column start.

    The whole row is computed into ``row`` first (a contiguous loop the
    compiler vectorises; a point of one colour reads only the other colour,
    so this equals the pointwise update) and every other point is stored.
    """
    w = e.shape[2]
    for j in range(1, w - 1):
        row[j] = d_inv[i, j] * (
            r[k, i, j]
            + wx[i, j] * e[k, i, j + 1]
            + wx[i, j - 1] * e[k, i, j - 1]
            + wy[i, j] * e[k, i + 1, j]
            + wy[i - 1, j] * e[k, i - 1, j]
        )
    for j in range(start, w - 1, 2):
        e[k, i, j] = row[j]


@_jit
def _sweep(d_inv, wx, wy, r, e, color):
    """A red-black Gauss-Seidel sweep: points with (i + j) % 2 == color first.

    Both half sweeps run in one pass: row i of the first colour, then row
    i - 1 of the second (whose neighbours of the first colour are done).
    """
    c, h, w = e.shape
    row = np.empty(w)
    for i in range(1, h):
        start = 1 + (i + 1 + color) % 2
        for k in range(c):
            if i < h - 1:
                _row_update(d_inv, wx, wy, r, e, k, i, start, row)
            if i > 1:
                _row_update(d_inv, wx, wy, r, e, k, i - 1, start, row)


@_jit
def _first_sweep(d_inv, wx, wy, r, e):
    """A red-black sweep from e = 0 (the red points get r / d)."""
    c, h, w = e.shape
    e[:] = 0.0
    row = np.empty(w)
    for i in range(1, h):
        for k in range(c):
            if i < h - 1:
                for j in range(1 + (i + 1) % 2, w - 1, 2):
                    e[k, i, j] = d_inv[i, j] * r[k, i, j]
            if i > 1:
                _row_update(d_inv, wx, wy, r, e, k, i - 1, 1 + (i + 1) % 2, row)


@_jit
def _residual_restrict(d, wx, wy, r, e, rc):
    """rc = P^T (r - A e): the residual summed over every 2x2 block."""
    c, h, w = e.shape
    rc[:] = 0.0
    for i in range(1, h - 1):
        ic = (i - 1) // 2 + 1
        for k in range(c):
            for j in range(1, w - 1):
                rc[k, ic, (j - 1) // 2 + 1] += (
                    r[k, i, j]
                    - d[i, j] * e[k, i, j]
                    + wx[i, j] * e[k, i, j + 1]
                    + wx[i, j - 1] * e[k, i, j - 1]
                    + wy[i, j] * e[k, i + 1, j]
                    + wy[i - 1, j] * e[k, i - 1, j]
                )


@_jit
def _prolong_add(d, ec, scale, e):
    """e += scale * P ec."""
    # Inactive points get a value too: their stencil weights are zero, so
    # nothing reads it, and the next sweep resets it to zero (d_inv = 0).
    c, h, w = e.shape
    wc = ec.shape[2]
    for i in range(1, h - 1):
        ic = (i - 1) // 2 + 1
        for k in range(c):
            for jc in range(1, wc - 1):
                v = scale * ec[k, ic, jc]
                e[k, i, 2 * jc - 1] += v
                if 2 * jc < w - 1:
                    e[k, i, 2 * jc] += v


@_jit
def _cholesky(a):
    """Lower Cholesky factor of a small dense SPD matrix.

    Written out rather than taken from LAPACK: numpy's threaded LAPACK took
    0.2 s for a 400 x 400 inverse on a loaded 2-core machine.
    """
    m = a.shape[0]
    low = np.zeros((m, m))
    for j in range(m):
        s = a[j, j]
        for t in range(j):
            s -= low[j, t] * low[j, t]
        low[j, j] = np.sqrt(s)
        for i in range(j + 1, m):
            s = a[i, j]
            for t in range(j):
                s -= low[i, t] * low[j, t]
            low[i, j] = s / low[j, j]
    return low


@_jit
def _coarse_solve(low, index, r, e):
    """e = A^-1 r on the coarsest level, by its Cholesky factor."""
    c, h, w = e.shape
    m = low.shape[0]
    sol = np.zeros((m, c))
    for i in range(h):
        for j in range(w):
            p = index[i, j]
            if p >= 0:
                for k in range(c):
                    sol[p, k] = r[k, i, j]
    for k in range(c):
        for i in range(m):
            s = sol[i, k]
            for t in range(i):
                s -= low[i, t] * sol[t, k]
            sol[i, k] = s / low[i, i]
        for i in range(m - 1, -1, -1):
            s = sol[i, k]
            for t in range(i + 1, m):
                s -= low[t, i] * sol[t, k]
            sol[i, k] = s / low[i, i]
    e[:] = 0.0
    for i in range(h):
        for j in range(w):
            p = index[i, j]
            if p >= 0:
                for k in range(c):
                    e[k, i, j] = sol[p, k]


@_jit
def _vcycle(ds, dinvs, wxs, wys, rs, es, low, index, scale, sweeps):
    """One symmetric V-cycle from zero: es[0] ~ A^-1 rs[0].

    Written as two loops rather than a recursion: numba's cache mishandles
    recursive functions (a W-cycle written recursively crashed when loaded
    from the cache).
    """
    n = len(ds)
    for lv in range(n - 1):
        e = es[lv]
        _first_sweep(dinvs[lv], wxs[lv], wys[lv], rs[lv], e)
        for _ in range(sweeps - 1):
            _sweep(dinvs[lv], wxs[lv], wys[lv], rs[lv], e, 0)
        _residual_restrict(ds[lv], wxs[lv], wys[lv], rs[lv], e, rs[lv + 1])
    _coarse_solve(low, index, rs[n - 1], es[n - 1])
    for lv in range(n - 2, -1, -1):
        e = es[lv]
        _prolong_add(ds[lv], es[lv + 1], scale, e)
        for _ in range(sweeps):
            _sweep(dinvs[lv], wxs[lv], wys[lv], rs[lv], e, 1)


@_jit
def _matvec(d, wx, wy, x, y):
    """y = A x on the padded grid (0 on inactive points)."""
    c, h, w = x.shape
    for i in range(1, h - 1):
        for k in range(c):
            for j in range(1, w - 1):
                y[k, i, j] = (
                    d[i, j] * x[k, i, j]
                    - wx[i, j] * x[k, i, j + 1]
                    - wx[i, j - 1] * x[k, i, j - 1]
                    - wy[i, j] * x[k, i + 1, j]
                    - wy[i - 1, j] * x[k, i - 1, j]
                )


@_jit
def _dot(x, y):
    """Per-channel dot products of two (C, H, W) arrays."""
    c, h, w = x.shape
    out = np.zeros(c)
    for k in range(c):
        s = 0.0
        for i in range(h):
            for j in range(w):
                s += x[k, i, j] * y[k, i, j]
        out[k] = s
    return out


@_jit
def _update_xr(x, r, p, ap, alpha):
    """x += alpha p, r -= alpha Ap; returns the per-channel |r|^2."""
    c, h, w = x.shape
    out = np.zeros(c)
    for k in range(c):
        a = alpha[k]
        s = 0.0
        for i in range(h):
            for j in range(w):
                x[k, i, j] += a * p[k, i, j]
                rk = r[k, i, j] - a * ap[k, i, j]
                r[k, i, j] = rk
                s += rk * rk
        out[k] = s
    return out


@_jit
def _update_p(p, z, beta):
    c, h, w = p.shape
    for k in range(c):
        bk = beta[k]
        for i in range(h):
            for j in range(w):
                p[k, i, j] = z[k, i, j] + bk * p[k, i, j]


@_jit
def _pcg(ds, dinvs, wxs, wys, rs, es, inverse, index, scale, sweeps, b, rtol, maxiter):
    """Multigrid-preconditioned CG on all channels; returns (x, iterations).

    A channel stops changing once its residual norm is at most rtol times
    its right-hand side's; iterations is -1 if maxiter was not enough.
    """
    c = b.shape[0]
    x = np.zeros_like(b)
    # The finest residual level doubles as CG's residual (the V-cycle only
    # reads it), which saves a copy per iteration.
    r = rs[0]
    r[:] = b
    ap = np.zeros_like(b)
    b2 = _dot(b, b)
    active = np.zeros(c, dtype=np.bool_)
    tol2 = np.zeros(c)
    any_active = False
    for k in range(c):
        tol2[k] = rtol * rtol * b2[k]
        active[k] = b2[k] > 0.0
        any_active = any_active or active[k]
    if not any_active:
        return x, 0
    _vcycle(ds, dinvs, wxs, wys, rs, es, inverse, index, scale, sweeps)
    p = es[0].copy()
    rz = _dot(r, es[0])
    alpha = np.zeros(c)
    beta = np.zeros(c)
    for it in range(1, maxiter + 1):
        _matvec(ds[0], wxs[0], wys[0], p, ap)
        pap = _dot(p, ap)
        for k in range(c):
            alpha[k] = rz[k] / pap[k] if active[k] else 0.0
        rr = _update_xr(x, r, p, ap, alpha)
        any_active = False
        for k in range(c):
            active[k] = active[k] and rr[k] > tol2[k]
            any_active = any_active or active[k]
        if not any_active:
            return x, it
        _vcycle(ds, dinvs, wxs, wys, rs, es, inverse, index, scale, sweeps)
        rz_new = _dot(r, es[0])
        for k in range(c):
            beta[k] = rz_new[k] / rz[k] if active[k] else 0.0
            rz[k] = rz_new[k]
        _update_p(p, es[0], beta)
    return x, -1


def solve_grid_multigrid(
    known: np.ndarray,
    values: np.ndarray,
    *,
    rtol: float,
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
        maxiter: iteration limit.
        scale: scaling of the coarse corrections.
        sweeps: smoothing sweeps before and after each coarse correction.

    Returns:
        ((H, W, C) float64 inpainting, number of CG iterations).

    Raises:
        RuntimeError: if CG has not converged after ``maxiter`` iterations,
            or if numba is not installed.
    """
    if not _NUMBA:
        raise RuntimeError("the grid multigrid needs numba (pip install numba)")
    known = np.ascontiguousarray(known, dtype=np.bool_)
    values = np.ascontiguousarray(values, dtype=np.float64)
    h, w, c = values.shape
    u = values.copy()
    if known.all():
        return u, 0
    d, wx, wy, b = _fine_level(known, values)
    ds, wxs, wys = [d], [wx], [wy]
    active = int(np.count_nonzero(d))
    while active > COARSEST and (d.shape[0] - 2) * (d.shape[1] - 2) > 1:
        d, wx, wy = _coarsen(d, wx, wy)
        ds.append(d)
        wxs.append(wx)
        wys.append(wy)
        active = int(np.count_nonzero(d))
    a, index = _dense(d, wx, wy)
    # The coarsest matrix is SPD (a Galerkin product of an SPD one).
    inverse = _cholesky(a)
    dinvs = [_inverse_diagonal(x) for x in ds]
    rs = [np.zeros((c,) + x.shape) for x in ds]
    es = [np.zeros((c,) + x.shape) for x in ds]
    # Tuples, not numba.typed.List: building typed lists compiles numba's
    # list helpers in every new process (about 1 s), which the cache does not
    # keep; a tuple's type (its length included) is cached like any other.
    x, iterations = _pcg(
        tuple(ds), tuple(dinvs), tuple(wxs), tuple(wys), tuple(rs), tuple(es),
        inverse, index, float(scale), int(sweeps), b,
        float(rtol), int(maxiter),
    )  # fmt: skip
    if iterations < 0:
        raise RuntimeError(
            f"multigrid CG did not reach relative residual {rtol} in {maxiter} "
            "iterations"
        )
    np.copyto(u, x[:, 1:-1, 1:-1].transpose(1, 2, 0), where=~known[:, :, None])
    return u, iterations
