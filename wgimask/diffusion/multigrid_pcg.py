"""Compiled multigrid-preconditioned CG of `wgimask.diffusion.multigrid`.

The V-cycle kernels are in `multigrid_kernels`; here CG's finest-level
passes (p = z + beta p with p . A p in one pass, ``p_matvec``), the
preconditioner (one V-cycle over all levels) and the CG loop (``pcg``).
"""

from __future__ import annotations

import numpy as np

from wgimask.diffusion.jit import jit, jit_sum
from wgimask.diffusion.multigrid_kernels import (
    coarse_solve,
    down_pass,
    vcycle_rest,
)


@jit_sum
def p_matvec(d, z, beta, p):
    """p = z + beta p and the per-channel p . A p, in one pipelined pass.

    Finest level only; as in ``cg_row``, A p is d p minus the neighbours'
    sum wherever p is not 0, and where p is 0 (known pixels, border) its
    term of the product is 0 anyway.
    """
    _, c, hp, n = p.shape
    h = hp - 2
    out = np.zeros(c)
    for i in range(1, h + 1):
        for k in range(c):
            bk = np.float32(beta[k])
            for ii in range(i + 1 if i > 1 else 1, i + 2):
                if ii > h:
                    continue
                for col in range(2):
                    ps = p[col, k, ii]
                    zs = z[col, k, ii]
                    for m in range(n):
                        ps[m] = zs[m] + bk * ps[m]
            for col in range(2):
                x = p[col, k, i]
                y = p[1 - col, k, i]
                yd = p[1 - col, k, i + 1]
                yu = p[1 - col, k, i - 1]
                dd = d[col, i]
                acc = np.float32(0.0)
                if ((i + col) & 1) == 0:
                    for m in range(1, n - 1):
                        v = dd[m] * x[m] - (y[m] + y[m - 1] + yd[m] + yu[m])
                        acc += v * x[m]
                else:
                    for m in range(1, n - 1):
                        v = dd[m] * x[m] - (y[m + 1] + y[m] + yd[m] + yu[m])
                        acc += v * x[m]
                out[k] += np.float64(acc)
    return out


@jit_sum
def dot(x, y):
    """Per-channel dot products of two (2, C, ...) arrays."""
    c = x.shape[1]
    out = np.zeros(c)
    for k in range(c):
        s = 0.0
        for col in range(2):
            xf = x[col, k].reshape(-1)
            yf = y[col, k].reshape(-1)
            for j in range(xf.size):
                s += xf[j] * yf[j]
        out[k] = s
    return out


@jit
def precondition(
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
    update,
    active,
    tol2,
):
    """One CG update (see ``down_pass``) and one V-cycle on the new residual.

    Without update, rs[0] must already hold the residual. Channels whose
    |r64|^2 is now at most tol2 leave ``active``; if none is left, the
    V-cycle stops after its first pass. Returns r . z per channel, z =
    es[0] the V-cycle's result.
    """
    rr = down_pass(
        dinvs[0],
        ds[0],
        wxs[0],
        wys[0],
        rs[0],
        es[0],
        rs[min(1, nlev - 1)],
        bufs[0],
        sweeps,
        nlev > 1,
        update,
        x,
        r64,
        p,
        alpha,
    )
    any_active = False
    for k in range(active.size):
        active[k] = active[k] and (rr[k] > tol2[k] or not update)
        any_active = any_active or active[k]
    if not any_active:
        return rr
    if nlev == 1:
        coarse_solve(low, up, index, rs[0], es[0])
        return dot(rs[0], es[0])
    rz = vcycle_rest(
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
    )
    return rz


@jit
def pcg(
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
    b,
    x,
    p,
    rtol,
    reference,
    maxiter,
):
    """Multigrid-preconditioned CG on all channels; returns (x, iterations).

    A channel stops changing once its residual norm is at most rtol times
    the square root of its ``reference`` (the squared norm of the system's
    right-hand side; for a warm start b is the guess's residual and
    ``reference`` the original right-hand side's); iterations is -1 if
    maxiter was not enough.
    """
    c = b.shape[1]
    # b is not needed after its norms: it becomes the residual.
    r = b
    b2 = dot(b, b)
    active = np.zeros(c, dtype=np.bool_)
    tol2 = np.zeros(c)
    any_active = False
    for k in range(c):
        tol2[k] = rtol * rtol * reference[k]
        active[k] = b2[k] > tol2[k]
        any_active = any_active or active[k]
    if not any_active:
        return 0
    alpha = np.zeros(c)
    beta = np.zeros(c)
    r32 = rs[0].reshape(-1)
    bf = b.reshape(-1)
    for j in range(bf.size):
        r32[j] = bf[j]
    rz = precondition(
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
        r,
        p,
        alpha,
        False,
        active,
        tol2,
    )
    for it in range(1, maxiter + 1):
        pap = p_matvec(ds[0], es[0], beta, p)
        for k in range(c):
            alpha[k] = rz[k] / pap[k] if active[k] else 0.0
        # The V-cycle of the next iteration starts in the same pass as the
        # update; after the last update only that pass is wasted.
        rz_new = precondition(
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
            r,
            p,
            alpha,
            True,
            active,
            tol2,
        )
        any_active = False
        for k in range(c):
            any_active = any_active or active[k]
        if not any_active:
            return it
        for k in range(c):
            beta[k] = rz_new[k] / rz[k] if active[k] else 0.0
            rz[k] = rz_new[k]
    return -1
