"""Compiled kernels of non-local pixel exchange (`wgimask.masks.exchange`).

Every NLPE trial needs the columns M0^{-1} e_p of the kept factorisation
M0 = L U for the (at most two) swapped pixels. SuperLU's own solve treats
the unit vector as a dense right-hand side and spent about 0.7 ms per call
on a 64x64 grid, most of a trial. Here the forward solve L y = e_p starts
at p and skips every column whose entry of y is still zero: with the
nested-dissection order, y is non-zero only on the path from p to the root
of the elimination tree, a few hundred of the 4096 columns. The backward
solve U x = y is dense (the Green's function of the mask reaches the whole
grid) and costs one pass over U.

`woodbury_trial` then gives a trial swap's MAE from those columns (the
Sherman-Morrison-Woodbury update), and `trial_inpainting` the inpainting
itself, made only for the swaps that are kept.

Compiled with numba, like the multigrid solver and electrostatic halftoning.
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.sparse as sp

__all__ = ["factor_arrays", "trial_inpainting", "unit_columns", "woodbury_trial"]


@numba.njit(cache=True, boundscheck=False)
def _forward(l_ptr, l_idx, l_val, p, y):
    """Solves L y = e_p in place (``y`` zero on entry; L unit lower, CSC)."""
    y[p] = 1.0
    # Entries before p stay zero; later ones only where the path of p in the
    # elimination tree passes.
    for j in range(p, y.shape[0]):
        yj = y[j]
        if yj != 0.0:
            for k in range(l_ptr[j], l_ptr[j + 1]):
                r = l_idx[k]
                if r > j:
                    y[r] -= l_val[k] * yj


@numba.njit(cache=True, boundscheck=False, fastmath=True)
def _backward_one(u_ptr, u_idx, u_val, u_diag, x):
    """Solves U x = y in place (U strictly upper in CSR, plus its diagonal)."""
    for j in range(x.shape[0] - 1, -1, -1):
        s = x[j]
        for k in range(u_ptr[j], u_ptr[j + 1]):
            s -= u_val[k] * x[u_idx[k]]
        x[j] = s / u_diag[j]


@numba.njit(cache=True, boundscheck=False, fastmath=True)
def _backward_two(u_ptr, u_idx, u_val, u_diag, x0, x1):
    """`_backward_one` for two right-hand sides, sharing the reads of U."""
    for j in range(x0.shape[0] - 1, -1, -1):
        s0 = x0[j]
        s1 = x1[j]
        for k in range(u_ptr[j], u_ptr[j + 1]):
            v = u_val[k]
            r = u_idx[k]
            s0 -= v * x0[r]
            s1 -= v * x1[r]
        x0[j] = s0 / u_diag[j]
        x1[j] = s1 / u_diag[j]


@numba.njit(cache=True, boundscheck=False)
def unit_columns(l_ptr, l_idx, l_val, u_ptr, u_idx, u_val, u_diag, pixels, out):
    """Writes (L U)^{-1} e_p for each p in ``pixels`` into the rows of ``out``.

    Args:
        l_ptr, l_idx, l_val: CSC arrays of the unit lower factor L (stored
            diagonal entries are skipped).
        u_ptr, u_idx, u_val: CSR arrays of the strictly upper part of U.
        u_diag: (N,) diagonal of U.
        pixels: (k,) int64 indices.
        out: (k, N) float64 output, C-contiguous, overwritten.
    """
    out[:] = 0.0
    for i in range(pixels.shape[0]):
        _forward(l_ptr, l_idx, l_val, pixels[i], out[i])
    i = 0
    while i + 1 < pixels.shape[0]:
        _backward_two(u_ptr, u_idx, u_val, u_diag, out[i], out[i + 1])
        i += 2
    if i < pixels.shape[0]:
        _backward_one(u_ptr, u_idx, u_val, u_diag, out[i])


def factor_arrays(lu) -> tuple[np.ndarray, ...]:
    """The arrays of a SuperLU object's factors that `unit_columns` takes.

    Args:
        lu: a ``scipy.sparse.linalg.SuperLU`` with identity row and column
            permutations.

    Returns:
        (l_ptr, l_idx, l_val, u_ptr, u_idx, u_val, u_diag): L in CSC, the
        strictly upper part of U in CSR (row-wise backward substitution
        gathers from the solution instead of scattering into it, which was
        about twice as fast here), and U's diagonal.
    """
    low = lu.L.tocsc()
    upper = lu.U  # SuperLU builds a new matrix on every access
    up = sp.triu(upper, k=1, format="csr")
    return (
        low.indptr.astype(np.int64),
        low.indices.astype(np.int64),
        low.data,
        up.indptr.astype(np.int64),
        up.indices.astype(np.int64),
        up.data,
        upper.diagonal(),
    )


@numba.njit(cache=True, boundscheck=False, fastmath=True)
def woodbury_trial(z, pix, slots, sign, degree, nb, wt, f, r0, e0, coef, work):
    """Exact inpainting error of a mask that differs from the base in ``pix``.

    The trial matrix is M0 + E R^T, with E the unit vectors of the changed
    pixels and R_i = s_i (e_i - Lp_i) the change of row i (s_i = +1 for a
    pixel that joined the mask, -1 for one that left it). With the columns
    Z = M0^{-1} E, the Sherman-Morrison-Woodbury formula gives the change of
    the inpainting as Z times a (k, C) coefficient matrix.

    Args:
        z: (R, N) buffer; row ``slots[a]`` holds M0^{-1} e_{pix[a]}.
        pix: (k,) changed pixels. slots: (k,) their buffer rows.
        sign: (k,) +1 / -1 as above.
        degree: (N,) neighbour count. nb, wt: (N, 4) neighbours and weights.
        f: (N, C) image. r0: (N, C) u0 - Lp u0 of the base inpainting u0.
        e0: (C, N) error u0 - f of the base inpainting.
        coef: (C, k) output: the change of the inpainting is
            sum_a coef[:, a] z[slots[a]].
        work: (N,) scratch.

    Returns:
        The trial inpainting's MAE over all pixels and channels.
    """
    k = pix.shape[0]
    channels = f.shape[1]
    n = z.shape[1]
    # t = R^T Z restricted to the changed pixels, (k, k).
    t = np.empty((k, k))
    for a in range(k):
        p = pix[a]
        for b in range(k):
            row = z[slots[b]]
            lap = degree[p] * row[p]
            for q in range(4):
                lap -= wt[p, q] * row[nb[p, q]]
            t[a, b] = sign[a] * (row[p] - lap)
    system = np.eye(k) + t
    rhs = np.empty((k, channels))
    for a in range(k):
        for c in range(channels):
            acc = sign[a] * r0[pix[a], c]
            for b in range(k):
                acc += t[a, b] * sign[b] * f[pix[b], c]
            rhs[a, c] = acc
    y = np.linalg.solve(system, rhs)
    for a in range(k):
        for c in range(channels):
            coef[c, a] = sign[a] * f[pix[a], c] - y[a, c]
    total = 0.0
    for c in range(channels):
        for i in range(n):
            work[i] = e0[c, i]
        for a in range(k):
            row = z[slots[a]]
            w = coef[c, a]
            for i in range(n):
                work[i] += w * row[i]
        for i in range(n):
            total += abs(work[i])
    return total / (channels * n)


@numba.njit(cache=True, boundscheck=False, fastmath=True)
def trial_inpainting(z, slots, coef, e0, ft, out):
    """Writes the trial inpainting f + e0 + sum_a coef[:, a] z[slots[a]].

    Args:
        z: (R, N) column buffer, as in `woodbury_trial`.
        slots: (k,) buffer rows of the changed pixels.
        coef: (C, k) coefficients from `woodbury_trial`.
        e0: (C, N) error of the base inpainting.
        ft: (C, N) image f.
        out: (C, N) output, overwritten.
    """
    channels, n = out.shape
    for c in range(channels):
        for i in range(n):
            out[c, i] = ft[c, i] + e0[c, i]
        for a in range(slots.shape[0]):
            row = z[slots[a]]
            w = coef[c, a]
            for i in range(n):
                out[c, i] += w * row[i]
