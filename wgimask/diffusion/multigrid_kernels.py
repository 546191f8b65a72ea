"""Compiled V-cycle kernels of the grid multigrid (`wgimask.diffusion.multigrid`).

Every level is stored in the *colour layout* described in
`wgimask.diffusion.multigrid`: a level's stencil planes are (2, H+2, Wh)
arrays and its vectors
(2, C, H+2, Wh) arrays, [0] the red points and [1] the black ones of each
padded row. Red-black Gauss-Seidel then updates one contiguous half row at
a time, and every inner loop runs over contiguous memory with constant
offsets, which the compiler vectorises.

The V-cycle's vectors are float32; CG's solution and residual are float64
(its search direction p is float32, and A p is computed in float64 from
it, so the residual CG updates stays the true residual of its solution).
Each pass over the finest level does as much as its data dependencies
allow: CG's update, the pre-smoothing sweeps and the restriction run in one
pipelined pass (``down_pass``), the prolongation, the post-smoothing sweeps and
CG's r . z in another (``up_pass``), and p = z + beta p with p . A p in a third
(``p_matvec`` in `multigrid_pcg`).
"""

from __future__ import annotations

import numpy as np

from wgimask.diffusion.jit import jit, jit_sum


@jit_sum
def coarse_solve(low, up, index, r, e):
    """e = A^-1 r on the coarsest level (index in the layout of r and e).

    low is the Cholesky factor L, up its transpose, so both triangular
    solves run along contiguous rows.
    """
    c = e.shape[1]
    m = low.shape[0]
    sol = np.zeros((c, m))
    for k in range(c):
        for col in range(2):
            rk = r[col, k].reshape(-1)
            ik = index[col].reshape(-1)
            for p in range(ik.size):
                if ik[p] >= 0:
                    sol[k, ik[p]] = rk[p]
    for k in range(c):
        y = sol[k]
        for i in range(m):
            li = low[i]
            s = y[i]
            for t in range(i):
                s -= li[t] * y[t]
            y[i] = s / li[i]
        for i in range(m - 1, -1, -1):
            ui = up[i]
            s = y[i]
            for t in range(i + 1, m):
                s -= ui[t] * y[t]
            y[i] = s / ui[i]
    for k in range(c):
        for col in range(2):
            ek = e[col, k].reshape(-1)
            ik = index[col].reshape(-1)
            for p in range(ik.size):
                ek[p] = sol[k, ik[p]] if ik[p] >= 0 else 0.0


# Colour layout: a level's planes are (2, H+2, Wh) and its vectors
# (2, C, H+2, Wh); see `multigrid`. A point at entry m of row i has its
# vertical neighbours at entry m of rows i -+ 1 of the other colour, and its
# horizontal ones at entries m + o and m + o + 1 of the same row of the other
# colour, o = -1 if i + colour is even, else 0. Its right (down) edge weight
# is wx (wy) of its colour at (i, m); its left (up) one is that of the
# neighbour: wx of the other colour at (i, m + o) (wy at (i - 1, m)).


@jit
def relax(dinv, wx, wy, r, e, col, k, i):
    """Gauss-Seidel update of the points of colour col in row i."""
    n = e.shape[3]
    x = e[col, k, i]
    y = e[1 - col, k, i]
    yd = e[1 - col, k, i + 1]
    yu = e[1 - col, k, i - 1]
    di = dinv[col, i]
    rr = r[col, k, i]
    wr = wx[col, i]
    wl = wx[1 - col, i]
    wd = wy[col, i]
    wu = wy[1 - col, i - 1]
    # Two copies with constant offsets: the compiler vectorises these, not
    # one loop with a variable offset.
    if ((i + col) & 1) == 0:
        for m in range(1, n - 1):
            x[m] = di[m] * (
                rr[m]
                + wr[m] * y[m]
                + wl[m - 1] * y[m - 1]
                + wd[m] * yd[m]
                + wu[m] * yu[m]
            )
    else:
        for m in range(1, n - 1):
            x[m] = di[m] * (
                rr[m] + wr[m] * y[m + 1] + wl[m] * y[m] + wd[m] * yd[m] + wu[m] * yu[m]
            )


@jit
def red_residual(d, wx, wy, r, e, k, i, t, add):
    """t (+)= r - A e on the red points of row i (the black residual is 0)."""
    n = e.shape[3]
    x = e[0, k, i]
    y = e[1, k, i]
    yd = e[1, k, i + 1]
    yu = e[1, k, i - 1]
    dd = d[0, i]
    rr = r[0, k, i]
    wr = wx[0, i]
    wl = wx[1, i]
    wd = wy[0, i]
    wu = wy[1, i - 1]
    if (i & 1) == 0:
        if add:
            for m in range(1, n - 1):
                t[m] += (
                    rr[m]
                    - dd[m] * x[m]
                    + wr[m] * y[m]
                    + wl[m - 1] * y[m - 1]
                    + wd[m] * yd[m]
                    + wu[m] * yu[m]
                )
        else:
            for m in range(1, n - 1):
                t[m] = (
                    rr[m]
                    - dd[m] * x[m]
                    + wr[m] * y[m]
                    + wl[m - 1] * y[m - 1]
                    + wd[m] * yd[m]
                    + wu[m] * yu[m]
                )
    else:
        if add:
            for m in range(1, n - 1):
                t[m] += (
                    rr[m]
                    - dd[m] * x[m]
                    + wr[m] * y[m + 1]
                    + wl[m] * y[m]
                    + wd[m] * yd[m]
                    + wu[m] * yu[m]
                )
        else:
            for m in range(1, n - 1):
                t[m] = (
                    rr[m]
                    - dd[m] * x[m]
                    + wr[m] * y[m + 1]
                    + wl[m] * y[m]
                    + wd[m] * yd[m]
                    + wu[m] * yu[m]
                )


@jit_sum
def cg_row(x, r, p, alpha, d, r32, k, i):
    """x += alpha p, r -= alpha A p and r32 = r on row i; returns its |r|^2.

    Finest level only: there every edge weight between two unknowns is 1
    and p is 0 on known pixels and on the border (it is a sum of V-cycle
    results, which the smoother zeroes there), so A p at an unknown pixel
    is d p minus the sum of its four neighbours' p, and 0 at a known one.
    """
    n = p.shape[3]
    a = alpha[k]
    acc = 0.0
    for col in range(2):
        pm = p[col, k, i]
        po = p[1 - col, k, i]
        pd = p[1 - col, k, i + 1]
        pu = p[1 - col, k, i - 1]
        dd = d[col, i]
        xx = x[col, k, i]
        rr = r[col, k, i]
        r3 = r32[col, k, i]
        # A p in float64: r must stay the true residual of x.
        if ((i + col) & 1) == 0:
            for m in range(1, n - 1):
                v = dd[m] * np.float64(pm[m]) - (
                    np.float64(po[m])
                    + np.float64(po[m - 1])
                    + np.float64(pd[m])
                    + np.float64(pu[m])
                )
                v = v if dd[m] > 0.0 else 0.0
                xx[m] += a * pm[m]
                rn = rr[m] - a * v
                rr[m] = rn
                r3[m] = rn
                acc += rn * rn
        else:
            for m in range(1, n - 1):
                v = dd[m] * np.float64(pm[m]) - (
                    np.float64(po[m + 1])
                    + np.float64(po[m])
                    + np.float64(pd[m])
                    + np.float64(pu[m])
                )
                v = v if dd[m] > 0.0 else 0.0
                xx[m] += a * pm[m]
                rn = rr[m] - a * v
                rr[m] = rn
                r3[m] = rn
                acc += rn * rn
    return acc


@jit_sum
def down_pass(dinv, d, wx, wy, r, e, rc, buf, sweeps, restrict, cg, x, r64, p, alpha):
    """Pre-smoothing from zero and restriction of a level, in one pass.

    ``sweeps`` red-black sweeps (red first) from e = 0, then, if restrict,
    rc = P^T (r - A e). With cg (finest level only) the pass first does
    CG's update x += alpha p, r64 -= alpha A p, r = r64 (r is the float32
    copy the V-cycle reads) and returns the per-channel |r64|^2.

    Pipelined over rows so that each row is read from memory about once:
    step i updates row i (cg), then sweep s does its red points of row
    i - 2 s and its black points of row i - 2 s - 1, and the residual of
    row i - 2 sweeps is summed into its coarse row. Each of these reads only
    rows that are final for it.
    """
    _, c, hp, n = e.shape
    h = hp - 2
    nc = rc.shape[3]
    out = np.zeros(c)
    for i in range(1, h + 2 * sweeps + 1):
        for k in range(c):
            if cg and i <= h:
                out[k] += cg_row(x, r64, p, alpha, d, r, k, i)
            for s in range(sweeps):
                q = i - 2 * s
                if 1 <= q <= h:
                    if s == 0:
                        # From zero the red points see no neighbours.
                        xr = e[0, k, q]
                        xb = e[1, k, q]
                        di = dinv[0, q]
                        rr = r[0, k, q]
                        for m in range(n):
                            xr[m] = di[m] * rr[m]
                            xb[m] = 0.0
                    else:
                        relax(dinv, wx, wy, r, e, 0, k, q)
                if 1 <= q - 1 <= h:
                    relax(dinv, wx, wy, r, e, 1, k, q - 1)
            q = i - 2 * sweeps
            if restrict and 1 <= q <= h:
                t = buf[k]
                first = (q & 1) == 1
                red_residual(d, wx, wy, r, e, k, q, t, not first)
                if not first or q == h:
                    ic = (q - 1) // 2 + 1
                    codd = rc[ic & 1, k, ic]
                    ceven = rc[1 - (ic & 1), k, ic]
                    for j in range(1, nc - 1):
                        codd[j] = t[2 * j - 1] if 2 * j - 1 < n - 1 else 0.0
                        ceven[j] = t[2 * j] if 2 * j < n - 1 else 0.0
    return out


@jit_sum
def up_pass(dinv, wx, wy, r, e, ec, scale, buf, sweeps, dot):
    """Coarse correction and post-smoothing of a level, in one pass.

    e += scale P ec, then ``sweeps`` red-black sweeps, black first. If dot,
    returns the per-channel r . e after them (else zeros). Pipelined like
    ``down_pass``: step i prolongs into row i + 1, then sweep s does its black
    points of row i - 2 s and its red points of row i - 2 s - 1.
    """
    _, c, hp, n = e.shape
    h = hp - 2
    nc = ec.shape[3]
    out = np.zeros(c)
    for i in range(1, h + 2 * sweeps):
        for k in range(c):
            for ii in range(i + 1 if i > 1 else 1, i + 2):
                if ii > h:
                    continue
                ic = (ii - 1) // 2 + 1
                t = buf[k]
                codd = ec[ic & 1, k, ic]
                ceven = ec[1 - (ic & 1), k, ic]
                for j in range(1, nc - 1):
                    if 2 * j < n:
                        t[2 * j - 1] = scale * codd[j]
                        t[2 * j] = scale * ceven[j]
                xr = e[0, k, ii]
                xb = e[1, k, ii]
                for m in range(1, n - 1):
                    xr[m] += t[m]
                    xb[m] += t[m]
            for s in range(sweeps):
                q = i - 2 * s
                if 1 <= q <= h:
                    relax(dinv, wx, wy, r, e, 1, k, q)
                if 1 <= q - 1 <= h:
                    relax(dinv, wx, wy, r, e, 0, k, q - 1)
            q = i - 2 * sweeps + 1
            if dot and 1 <= q <= h:
                for col in range(2):
                    rr = r[col, k, q]
                    ee = e[col, k, q]
                    acc = np.float32(0.0)
                    for m in range(1, n - 1):
                        acc += rr[m] * ee[m]
                    out[k] += np.float64(acc)
    return out


@jit
def vcycle_rest(
    nlev,
    ds,
    dinvs,
    wxs,
    wys,
    rs,
    es,
    bufs,
    low,
    up,
    index,
    scale,
    sweeps,
    x,
    r64,
    p,
    alpha,
):
    """The V-cycle after the finest level's ``down_pass``: returns the
    per-channel rs[0] . es[0] (es[0] is the preconditioned residual).

    Written as loops rather than a recursion: numba's cache mishandles
    recursive functions.
    """
    for lv in range(1, nlev - 1):
        down_pass(
            dinvs[lv],
            ds[lv],
            wxs[lv],
            wys[lv],
            rs[lv],
            es[lv],
            rs[lv + 1],
            bufs[lv],
            sweeps,
            True,
            False,
            x,
            r64,
            p,
            alpha,
        )
    coarse_solve(low, up, index, rs[nlev - 1], es[nlev - 1])
    for lv in range(nlev - 2, 0, -1):
        up_pass(
            dinvs[lv],
            wxs[lv],
            wys[lv],
            rs[lv],
            es[lv],
            es[lv + 1],
            scale,
            bufs[lv],
            sweeps,
            False,
        )
    return up_pass(
        dinvs[0], wxs[0], wys[0], rs[0], es[0], es[1], scale, bufs[0], sweeps, True
    )
