"""SSOR-preconditioned conjugate gradients for sparse SPD systems, compiled.

`ssor_cg` solves A X = B for a symmetric positive definite sparse matrix A
(CSR or CSC) and several right-hand sides at once: every column runs its own
conjugate-gradient iteration (own step sizes, own stopping test) through
shared sweeps over the matrix, preconditioned by symmetric successive
over-relaxation (SSOR, relaxation ``omega``). The kernels are compiled with
numba (`wgimask.diffusion.jit`). `relative_residual` measures a solution.

Used by the ``"pcg"`` solvers of `wgimask.diffusion.eed` (EED inpainting)
and `wgimask.diffusion.biharmonic`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from wgimask.diffusion.jit import jit, jit_sum

__all__ = ["SSOR_OMEGA", "relative_residual", "ssor_cg"]

#: Default SSOR relaxation parameter of `ssor_cg` (EED's ``"pcg"`` solver).
SSOR_OMEGA = 1.6


def relative_residual(a: sp.spmatrix, x: np.ndarray, b: np.ndarray) -> float:
    """Largest ||b - A x|| / ||b|| over the columns (0 where b = 0 and A x = 0)."""
    r = np.linalg.norm(b - a @ x, axis=0)
    nb = np.linalg.norm(b, axis=0)
    ratios = np.where(nb > 0, r / np.where(nb > 0, nb, 1.0), r)
    return float(ratios.max()) if ratios.size else 0.0


@jit_sum
def _matvec(indptr, indices, data, x, y):
    """y = A x for a CSR matrix and (m, C) arrays."""
    m, c = x.shape
    for i in range(m):
        for k in range(c):
            y[i, k] = 0.0
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            v = data[p]
            for k in range(c):
                y[i, k] += v * x[j, k]


@jit
def _ssor(indptr, indices, data, diag, omega, r, z):
    """z = M^-1 r for the SSOR preconditioner of a symmetric CSR matrix.

    M = (D / omega + L) (D / omega)^-1 (D / omega + L^T), SPD for a positive
    diagonal D and 0 < omega < 2: a forward sweep, then a backward one.
    """
    m, c = r.shape
    acc = np.empty(c)
    for i in range(m):
        for k in range(c):
            acc[k] = r[i, k]
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            if j < i:
                v = data[p]
                for k in range(c):
                    acc[k] -= v * z[j, k]
        s = omega / diag[i]
        for k in range(c):
            z[i, k] = acc[k] * s
    for i in range(m - 1, -1, -1):
        d = diag[i] / omega
        for k in range(c):
            acc[k] = d * z[i, k]
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            if j > i:
                v = data[p]
                for k in range(c):
                    acc[k] -= v * z[j, k]
        for k in range(c):
            z[i, k] = acc[k] / d


@jit_sum
def _column_dots(u, v, out):
    """out[k] = sum_i u[i, k] v[i, k]."""
    m, c = u.shape
    for k in range(c):
        out[k] = 0.0
    for i in range(m):
        for k in range(c):
            out[k] += u[i, k] * v[i, k]


@jit_sum
def _pcg(indptr, indices, data, diag, omega, b, x, rtol, maxiter):
    """SSOR-preconditioned CG on all columns from x (updated in place).

    Returns the number of steps, or -1 without convergence.
    """
    m, c = b.shape
    r = np.empty((m, c))
    z = np.empty((m, c))
    q = np.empty((m, c))
    goal = np.empty(c)
    rr = np.empty(c)
    rz = np.empty(c)
    pq = np.empty(c)
    _column_dots(b, b, goal)
    goal *= rtol * rtol
    _matvec(indptr, indices, data, x, q)
    r[:, :] = b - q
    _column_dots(r, r, rr)
    active = rr > goal
    if not active.any():
        return 0
    _ssor(indptr, indices, data, diag, omega, r, z)
    p = z.copy()
    _column_dots(r, z, rz)
    for step in range(1, maxiter + 1):
        _matvec(indptr, indices, data, p, q)
        _column_dots(p, q, pq)
        for k in range(c):
            # Finished columns (and a breakdown, pq <= 0) take no step.
            alpha = rz[k] / pq[k] if active[k] and pq[k] > 0.0 else 0.0
            for i in range(m):
                x[i, k] += alpha * p[i, k]
                r[i, k] -= alpha * q[i, k]
        _column_dots(r, r, rr)
        active &= rr > goal
        if not active.any():
            return step
        _ssor(indptr, indices, data, diag, omega, r, z)
        _column_dots(r, z, pq)
        for k in range(c):
            beta = pq[k] / rz[k] if rz[k] > 0.0 else 0.0
            rz[k] = pq[k]
            for i in range(m):
                p[i, k] = z[i, k] + beta * p[i, k]
    return -1


def ssor_cg(
    a: sp.spmatrix,
    b: np.ndarray,
    x0: np.ndarray,
    *,
    rtol: float,
    maxiter: int,
    omega: float = SSOR_OMEGA,
) -> tuple[np.ndarray, int]:
    """SSOR-preconditioned conjugate gradients for an SPD matrix, compiled.

    All columns run together, each with its own step sizes, and a column
    stops once its residual is at most ``rtol`` times the norm of its
    right-hand side.

    Args:
        a: symmetric positive definite sparse matrix (m x m, CSR or CSC).
        b: right-hand sides (m x C).
        x0: start (m x C), e.g. a previous solution.
        rtol: relative residual to reach.
        maxiter: step limit.
        omega: SSOR relaxation in (0, 2).

    Returns:
        (x, steps); steps is -1 if some column did not converge.
    """
    if a.format not in ("csr", "csc"):
        a = a.tocsr()
    # A symmetric matrix's CSC arrays are its CSR arrays.
    x = np.array(x0, dtype=np.float64, order="C")
    steps = _pcg(
        a.indptr, a.indices, a.data, np.ascontiguousarray(a.diagonal()),
        float(omega), np.ascontiguousarray(b, dtype=np.float64), x,
        float(rtol), int(maxiter),
    )  # fmt: skip
    return x, int(steps)
