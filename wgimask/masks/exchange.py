"""Non-local pixel exchange (NLPE) for homogeneous diffusion inpainting.

Mainberger, Hoffmann, Weickert, Tang, Johannsen, Neumann, Doerr (2012):
"Optimising spatial and tonal data for homogeneous diffusion inpainting",
SSVM 2011, LNCS 6667, pp. 26-37.

Every step draws a set of non-mask candidate pixels, takes the candidate
with the largest local error (absolute error summed over the channels),
swaps it with a mask point, re-inpaints, and keeps the swap only if the
global error (MAE over all pixels and channels) drops. As in the paper, the
mask point is drawn uniformly by default; ``removal_candidates=k`` draws k
and takes the one whose removal changes the inpainting least (smallest
Laplacian residual), which helped from analytic masks at 10 and 20 % but
hurt PS masks at 5 % (docs/baselines.md), so it is an option. The number
of mask points never changes. One *cycle* is |mask| steps.

Speed: a swap changes two rows of the full-grid system
M(c) u = c * f, where the row of a mask pixel is the identity row and that of
any other pixel is the 5-point Neumann Laplacian row. We keep a sparse LU of
M at a base mask c0 and express the current mask as c0 plus k changed rows
(a rank-k update). A trial swap is then solved exactly with the
Sherman-Morrison-Woodbury formula, which needs one triangular solve with the
kept factors for each of the (at most two) newly changed pixels instead of a
new factorisation. Once the accepted swaps have changed ``max_rank`` rows the
system is factorised anew at the current mask. The triangular solves for a
unit vector, the Woodbury update and the trial's error are compiled with
numba (`_exchange_kernels`); only the error is computed per trial, the
inpainting itself only for the (about one in seven) swaps that are kept.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from wgimask.arrays import as_image, as_mask
from wgimask.diffusion.inpainting import Grid, grid

__all__ = [
    "nonlocal_pixel_exchange",
    "DEFAULT_CYCLES",
    "DEFAULT_CANDIDATES",
    "DEFAULT_REMOVAL_CANDIDATES",
    "CANDIDATE_SAMPLINGS",
    "IncrementalInpainter",
]

#: Default number of cycles; one cycle is |mask| exchange steps (the paper).
DEFAULT_CYCLES = 5
#: Default number of non-mask candidates drawn per step (as in the reference
#: implementation of NLPE, which also exchanges one pixel per step).
DEFAULT_CANDIDATES = 30
#: Default number of mask points drawn per step as removal candidates; the
#: one whose removal changes the inpainting least is tried. 1 is the paper's
#: uniformly drawn mask point, kept as the default because PS+NLPE is the
#: baseline the mask GAN is measured against: 8 gave +0.1 to +0.3 dB after 5
#: cycles from analytic masks on the training photos, in less time, but
#: -0.14 dB at 5 % from PS masks on the validation photos (docs/baselines.md).
DEFAULT_REMOVAL_CANDIDATES = 1
#: How the non-mask candidates are drawn: ``"uniform"`` (the paper) or
#: ``"error"`` (with probability proportional to their local error).
CANDIDATE_SAMPLINGS = ("uniform", "error")


class IncrementalInpainter:
    """Homogeneous diffusion inpainting under point swaps of the mask.

    Keeps a sparse LU of the full-grid system at a base mask and evaluates
    masks that differ from it in a few pixels through low-rank updates.

    All pixel indices, masks and images of this class are in the grid's
    nested-dissection order (``g.order``), the order of the factorisation,
    so that no permutation is needed per swap: entry ``q`` belongs to the
    flat pixel ``g.order[q]``.

    Args:
        g: grid structure of the image.
        values: (N, C) float64 image, in nested-dissection order.
        known: (N,) bool initial mask, in nested-dissection order, with at
            least one True.
        max_rank: number of changed pixels after which an accepted mask
            becomes the new base (refactorisation).
        compiled_columns: solve for the columns M0^{-1} e_p with the compiled
            sparse-right-hand-side kernel (`_exchange_kernels.unit_columns`);
            False uses SuperLU's own solve (kept for comparison,
            `benchmarks/speed/nlpe_speed.py`).
    """

    def __init__(
        self,
        g: Grid,
        values: np.ndarray,
        known: np.ndarray,
        *,
        max_rank: int = 32,
        compiled_columns: bool = True,
    ) -> None:
        if max_rank < 2:
            raise ValueError(f"max_rank must be at least 2, got {max_rank}")
        # Imported here: numba takes a while to load, and importing
        # wgimask.baselines (the command does) should not pay for it.
        from wgimask.masks import exchange_kernels as _exchange_kernels

        self._kernels = _exchange_kernels
        n = g.size
        perm = g.order
        iperm = np.empty_like(perm)
        iperm[perm] = np.arange(n)
        self._n = n
        self._f = np.ascontiguousarray(values, dtype=np.float64)
        self._max_rank = max_rank
        self._compiled_columns = compiled_columns
        self._lap = g.laplacian[perm][:, perm].tocsr()
        self._degree = g.degree[perm]
        # Neighbour table (N, 4), padded with the pixel itself at weight 0.
        h, w = g.height, g.width
        idx = np.arange(n).reshape(h, w)
        nb = np.repeat(idx[:, :, None], 4, axis=2)
        wt = np.zeros((h, w, 4))
        nb[1:, :, 0], wt[1:, :, 0] = idx[:-1, :], 1.0
        nb[:-1, :, 1], wt[:-1, :, 1] = idx[1:, :], 1.0
        nb[:, 1:, 2], wt[:, 1:, 2] = idx[:, :-1], 1.0
        nb[:, :-1, 3], wt[:, :-1, 3] = idx[:, 1:], 1.0
        self._nb = iperm[nb.reshape(n, 4)[perm]]
        self._wt = wt.reshape(n, 4)[perm]
        # Columns M0^{-1} e_p of the changed pixels, stored as rows: the
        # update (k, N) x (k, C) then runs over contiguous memory.
        self._zbuf = np.zeros((max_rank, n))
        # At most about 64 MB of cached columns.
        self._cache_size = max(8, int(64e6 // (8 * n)))
        self._ft = np.ascontiguousarray(self._f.T)  # (C, N)
        self._work = np.empty(n)
        self.known = known.copy()
        self._rebase()

    # -- base factorisation -------------------------------------------------

    def _rebase(self) -> None:
        """Factorises M at the current mask and resets the update."""
        c = self.known.astype(np.float64)
        m = (sp.diags(c) + sp.diags(1.0 - c) @ self._lap).tocsc()
        # Rows are weakly diagonally dominant (identity rows for mask pixels,
        # Laplacian rows elsewhere), so elimination needs no pivoting and keeps
        # the nested-dissection order.
        self._lu = spla.splu(m, permc_spec="NATURAL", diag_pivot_thresh=0.0)
        identity = np.arange(self._n)
        # The compiled unit-vector solve needs the factors of M itself; should
        # SuperLU ever permute, SuperLU's own (slower) solve is used.
        self._factors = (
            self._kernels.factor_arrays(self._lu)
            if self._compiled_columns
            and np.array_equal(self._lu.perm_r, identity)
            and np.array_equal(self._lu.perm_c, identity)
            else None
        )
        self._base = self.known.copy()
        u0 = self._lu.solve(c[:, None] * self._f)
        self._r0 = u0 - self._lap @ u0  # R^T u0 needs u0 - Lp u0 per pixel
        self._e0 = np.ascontiguousarray((u0 - self._f).T)  # base error, (C, N)
        self._slot: dict[int, int] = {}
        self._free = list(range(self._max_rank))
        # Columns solved since this factorisation, by pixel: high-error
        # candidates recur, so some trials need no solve at all.
        self._cache: dict[int, np.ndarray] = {}
        self.u = np.ascontiguousarray(u0.T)
        self._base_error = float(np.mean(np.abs(self._e0)))
        self.error = self._base_error
        self._pending = None

    def _columns(self, pixels: list[int]) -> None:
        """Stores M0^{-1} e_p for the given pixels in free buffer slots."""
        cols = {p: self._cache[p] for p in pixels if p in self._cache}
        missing = [p for p in pixels if p not in cols]
        if missing:
            if self._factors is not None:
                sol = np.empty((len(missing), self._n))
                self._kernels.unit_columns(
                    *self._factors, np.array(missing, dtype=np.int64), sol
                )
            else:
                rhs = np.zeros((self._n, len(missing)), order="F")
                rhs[missing, np.arange(len(missing))] = 1.0
                sol = self._lu.solve(rhs).T
            for j, p in enumerate(missing):
                cols[p] = sol[j]
                if len(self._cache) < self._cache_size:
                    self._cache[p] = cols[p]
        for p in pixels:
            s = self._free.pop()
            self._slot[p] = s
            self._zbuf[s] = cols[p]

    # -- trial swaps ----------------------------------------------------------

    def trial(self, add: int, remove: int) -> tuple[float, list[int]]:
        """Evaluates the current mask with ``add`` set and ``remove`` cleared.

        Only the error is computed; `trial_inpainting` gives the inpainting
        and `accept` or `reject` ends the trial. Most trials are rejected, so
        the inpainting is made only when asked for.

        Args:
            add: index of a non-mask pixel that joins the mask.
            remove: index of a mask pixel that leaves it.

        Returns:
            (mae, new): the trial inpainting's MAE, and the pixels whose
            buffer columns were created for this trial (pass them to
            :meth:`reject` if the trial is not kept).
        """
        if len(self._slot) + 2 > self._max_rank:
            self._rebase()
        trial_mask = self.known.copy()
        trial_mask[add] = True
        trial_mask[remove] = False
        changed = [p for p in self._slot if trial_mask[p] != self._base[p]]
        new = [
            p
            for p in (add, remove)
            if trial_mask[p] != self._base[p] and p not in self._slot
        ]
        if new:
            self._columns(new)
        pix = np.array(changed + new, dtype=np.int64)
        slots = np.array([self._slot[p] for p in pix], dtype=np.int64)
        coef = np.zeros((self._f.shape[1], pix.size))
        if pix.size == 0:  # back at the base mask
            err = self._base_error
        else:
            sign = trial_mask[pix].astype(np.float64) - self._base[pix].astype(
                np.float64
            )
            err = self._kernels.woodbury_trial(
                self._zbuf, pix, slots, sign, self._degree, self._nb, self._wt,
                self._f, self._r0, self._e0, coef, self._work,
            )  # fmt: skip
        self._pending = (add, remove, slots, coef, err)
        return err, new

    def trial_inpainting(self) -> np.ndarray:
        """The inpainting of the last trial.

        Returns:
            (C, N) float64 inpainting, in nested-dissection order.

        Raises:
            ValueError: if no trial is pending (none yet, or it was accepted
                or rejected).
        """
        if self._pending is None:
            raise ValueError("no trial is pending: call trial(add, remove) first")
        _, _, slots, coef, _ = self._pending
        u = np.empty_like(self._ft)
        self._kernels.trial_inpainting(self._zbuf, slots, coef, self._e0, self._ft, u)
        return u

    def accept(self, add: int, remove: int) -> None:
        """Makes the last trial the current mask.

        Args:
            add: the ``add`` pixel of the last `trial`.
            remove: its ``remove`` pixel.

        Raises:
            ValueError: if (add, remove) is not the pending trial.
        """
        if self._pending is None or self._pending[:2] != (add, remove):
            raise ValueError(f"({add}, {remove}) is not the pending trial")
        self.u = self.trial_inpainting()
        self.error = self._pending[4]
        self.known[add] = True
        self.known[remove] = False
        for p in (add, remove):
            if p in self._slot and self.known[p] == self._base[p]:
                self._release(p)
        self._pending = None

    def laplacian_residual(self, pixels: np.ndarray) -> np.ndarray:
        """|Laplacian of the current inpainting| at mask pixels, summed over channels.

        Off the mask the inpainting is harmonic; at a mask pixel p the
        residual r_p = (Laplacian u)(p) measures how far the known value pulls
        u away from the harmonic extension of its neighbours. Removing p
        changes the inpainting by r_p times a Green's function of the new
        mask, so a small |r_p| means a small change: a cheap ranking of which
        mask point to remove.

        Args:
            pixels: (m,) int indices (nested-dissection order).

        Returns:
            (m,) float64 residual magnitudes.
        """
        u = self.u  # (C, N)
        lap = self._degree[pixels] * u[:, pixels] - np.einsum(
            "ij,cij->ci", self._wt[pixels], u[:, self._nb[pixels]]
        )
        return np.abs(lap).sum(axis=0)

    def reject(self, new: list[int]) -> None:
        """Frees the buffer columns created for a rejected trial."""
        self._pending = None
        for p in new:
            self._release(p)

    def _release(self, pixel: int) -> None:
        """Returns a pixel's buffer slot to the free list."""
        self._free.append(self._slot.pop(pixel))


def nonlocal_pixel_exchange(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    cycles: int = DEFAULT_CYCLES,
    candidates: int = DEFAULT_CANDIDATES,
    seed: int = 0,
    removal_candidates: int = DEFAULT_REMOVAL_CANDIDATES,
    candidate_sampling: str = "uniform",
) -> np.ndarray:
    """Improves a mask by non-local pixel exchange at constant point count.

    Args:
        image: (H, W) or (H, W, C) image, values usually in [0, 1].
        mask: (H, W) binary initial mask (True/1 = known pixel), not empty.
        cycles: number of cycles (>= 0); each is |mask| exchange steps. A
            fraction runs round(cycles * |mask|) steps, so 0.25 is a quarter
            of a cycle.
        candidates: non-mask pixels drawn per step (>= 1; fewer if fewer
            exist); the one with the largest local error is tried.
        seed: seed of the random generator; equal seeds give equal masks.
        removal_candidates: mask points drawn per step (>= 1, with
            replacement); the one with the smallest Laplacian residual of the
            current inpainting (`IncrementalInpainter.laplacian_residual`),
            i.e. whose removal changes the inpainting least, is tried. 1 is the
            paper's uniformly drawn mask point.
        candidate_sampling: ``"uniform"`` (the paper) draws the non-mask
            candidates uniformly without replacement; ``"error"`` draws them
            with replacement, with probability proportional to their local
            error.

    Returns:
        (H, W) bool mask with as many points as ``mask`` and an inpainting
        MAE not larger than that of ``mask``.

    Raises:
        ValueError: for a bad image, a mask of another size, a non-binary or
            empty mask, negative or non-finite cycles, fewer than one
            candidate or removal candidate, or an unknown sampling.
    """
    f, _ = as_image(image)
    h, w, c = f.shape
    known = as_mask(mask, (h, w)).ravel()
    if not known.any():
        raise ValueError("mask is empty: NLPE needs at least one mask point")
    try:
        cycles_value = float(cycles)
    except (TypeError, ValueError):
        raise ValueError(f"cycles must be a number >= 0, got {cycles!r}") from None
    if not (np.isfinite(cycles_value) and cycles_value >= 0):
        raise ValueError(f"cycles must be a finite number >= 0, got {cycles!r}")
    if int(candidates) != candidates or candidates < 1:
        raise ValueError(f"candidates must be a positive integer, got {candidates!r}")
    if int(removal_candidates) != removal_candidates or removal_candidates < 1:
        raise ValueError(
            f"removal_candidates must be a positive integer, got {removal_candidates!r}"
        )
    if candidate_sampling not in CANDIDATE_SAMPLINGS:
        raise ValueError(
            f"candidate_sampling must be one of {CANDIDATE_SAMPLINGS}, "
            f"got {candidate_sampling!r}"
        )
    n = h * w
    n_mask = int(known.sum())
    steps = int(round(cycles_value * n_mask))
    if n_mask == n or steps == 0:
        return known.reshape(h, w).copy()
    g = grid(h, w)
    # The solver works in the grid's nested-dissection order.
    values = f.reshape(n, c)[g.order]
    known = known[g.order]
    rng = np.random.default_rng(seed)
    state = IncrementalInpainter(g, values, known)

    # Index arrays of mask and non-mask pixels with positions, for O(1) swaps.
    inside = np.flatnonzero(known)
    outside = np.flatnonzero(~known)
    where = np.empty(n, dtype=np.int64)
    where[inside] = np.arange(inside.size)
    where[outside] = np.arange(outside.size)
    n_cand = min(int(candidates), outside.size)
    n_remove = int(removal_candidates)
    by_error = candidate_sampling == "error"
    values_t = np.ascontiguousarray(values.T)
    cumulative = None  # cumulative local error of `outside`, while valid

    for _ in range(steps):
        if by_error:
            if cumulative is None:
                local_all = np.abs(state.u[:, outside] - values_t[:, outside]).sum(0)
                # A floor keeps every candidate possible (and an exact
                # inpainting from dividing by zero).
                cumulative = np.cumsum(local_all + 1e-12)
            draws = np.searchsorted(cumulative, rng.random(n_cand) * cumulative[-1])
            cand = outside[np.minimum(draws, outside.size - 1)]
        else:
            cand = outside[rng.choice(outside.size, size=n_cand, replace=False)]
        local = np.abs(state.u[:, cand] - values_t[:, cand]).sum(axis=0)
        add = int(cand[np.argmax(local)])
        if n_remove == 1:
            remove = int(inside[rng.integers(inside.size)])
        else:
            drawn = inside[rng.integers(inside.size, size=n_remove)]
            remove = int(drawn[np.argmin(state.laplacian_residual(drawn))])
        err, new = state.trial(add, remove)
        if err < state.error:
            state.accept(add, remove)
            ia, ir = where[add], where[remove]
            outside[ia], inside[ir] = remove, add
            where[remove], where[add] = ia, ir
            cumulative = None
        else:
            state.reject(new)
    result = np.empty(n, dtype=bool)
    result[g.order] = state.known
    return result.reshape(h, w)
