"""Numba compilation of the diffusion solvers' kernels.

Every kernel is compiled with ``cache=True`` (the first run after installing
compiles them once, later processes load the cache). Without numba the
kernels run as plain Python, which only the tests of tiny grids can afford.
"""

from __future__ import annotations

try:
    import numba

    NUMBA = True
except ImportError:  # pragma: no cover - numba is a dependency
    numba = None
    NUMBA = False


def jit(fn):
    """Compiles a kernel without reassociation of its sums."""
    # "contract" lets the compiler fuse multiply-adds (differences of one
    # rounding, far below the solver's tolerance).
    if not NUMBA:
        return fn
    return numba.njit(cache=True, nogil=True, fastmath={"contract"}, boundscheck=False)(
        fn
    )


def jit_sum(fn):
    """Compiles a kernel whose sums may be reassociated (vectorised)."""
    # For kernels with sums: "reassoc" lets the compiler vectorise them (the
    # order of the additions changes, by roundings only).
    if not NUMBA:
        return fn
    return numba.njit(
        cache=True, nogil=True, fastmath={"contract", "reassoc"}, boundscheck=False
    )(fn)
