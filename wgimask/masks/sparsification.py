"""Probabilistic sparsification (PS) for homogeneous diffusion inpainting.

Mainberger, Hoffmann, Weickert, Tang, Johannsen, Neumann, Doerr (2012):
"Optimising spatial and tonal data for homogeneous diffusion inpainting",
SSVM 2011, LNCS 6667, pp. 26-37.

Starting from the full mask, every step draws a fraction p of the remaining
mask points as candidates, removes them tentatively, inpaints, and removes for
good the fraction q of the candidates whose pixels are reconstructed best
(smallest local error); the others go back into the mask. Steps repeat until
exactly round(D * N) points remain (the last step removes only what is left
to remove).

Local error of a candidate: the absolute error of its pixel summed over the
channels, |u - f|_1 at that pixel, i.e. its contribution to the MAE (times C).
"""

from __future__ import annotations

import numpy as np

from wgimask.arrays import as_image, check_density, target_count
from wgimask.diffusion.inpainting import grid, solve_direct

__all__ = [
    "probabilistic_sparsification",
    "DEFAULT_CANDIDATE_FRACTION",
    "DEFAULT_REMOVAL_FRACTION",
]

# Defaults. The reference implementation of PS uses p = q = 0.02, which needs
# about 100 times as many steps (inpaintings). On 128x128 photo crops at 10 %
# density, p = q = 0.2 gave a 2-4 % higher PS error at about 1/80 of the
# time (benchmarks/studies/ps_fractions.py); NLPE afterwards gains far more than that.

#: Default fraction p of the mask points drawn as candidates in every step.
DEFAULT_CANDIDATE_FRACTION = 0.2
#: Default fraction q of the candidates removed for good in every step.
DEFAULT_REMOVAL_FRACTION = 0.2


def probabilistic_sparsification(
    image: np.ndarray,
    density: float,
    *,
    candidate_fraction: float = DEFAULT_CANDIDATE_FRACTION,
    removal_fraction: float = DEFAULT_REMOVAL_FRACTION,
    seed: int = 0,
) -> np.ndarray:
    """Optimises a mask of a given density by probabilistic sparsification.

    Args:
        image: (H, W) or (H, W, C) image, values usually in [0, 1].
        density: fraction D in (0, 1) of pixels to keep; the result has
            exactly round(D * H * W) points.
        candidate_fraction: fraction p in (0, 1] of the current mask points
            drawn as removal candidates in every step (at least one).
        removal_fraction: fraction q in (0, 1] of the candidates removed for
            good in every step (at least one).
        seed: seed of the random generator; equal seeds give equal masks.

    Returns:
        (H, W) bool mask, True at the kept pixels.

    Raises:
        ValueError: for a bad image, a density outside (0, 1) or one that
            keeps no pixel, or fractions outside (0, 1].
    """
    f, _ = as_image(image)
    d = check_density(density)
    for name, value in (
        ("candidate_fraction", candidate_fraction),
        ("removal_fraction", removal_fraction),
    ):
        if not (0.0 < float(value) <= 1.0):
            raise ValueError(f"{name} must lie in (0, 1], got {value!r}")
    h, w, c = f.shape
    n = h * w
    target = target_count(d, n)
    g = grid(h, w)
    values = f.reshape(n, c)
    rng = np.random.default_rng(seed)

    known = np.ones(n, dtype=bool)
    points = np.arange(n)  # flat indices of the current mask points
    while points.size > target:
        count = points.size
        n_cand = min(count, max(1, int(round(candidate_fraction * count))))
        n_remove = max(1, int(round(removal_fraction * n_cand)))
        n_remove = min(n_remove, count - target)
        # A step must keep at least one point for the inpainting to exist.
        n_cand = min(n_cand, count - 1) if count > 1 else n_cand
        n_remove = min(n_remove, n_cand)
        cand = points[rng.choice(count, size=n_cand, replace=False)]
        known[cand] = False
        u = solve_direct(g, known, values)
        err = np.abs(u[cand] - values[cand]).sum(axis=1)
        # Stable sort: ties resolve by draw order, so runs repeat exactly.
        drop = cand[np.argsort(err, kind="stable")[:n_remove]]
        known[cand] = True
        known[drop] = False
        points = np.flatnonzero(known)
    return known.reshape(h, w)
