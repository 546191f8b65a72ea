"""Densification masks for homogeneous diffusion inpainting.

Densification is probabilistic sparsification run the other way: start
from a few points and add, step after step, pixels where the inpainting of
the current mask is worst. Kämper, Chizhov and Weickert (2024, "Efficient
parallel data optimization for homogeneous diffusion inpainting of 4K
images", arXiv:2401.06747) build their fast mask optimisation on it. Ours:

1. The start is the analytic mask (`analytic_mask`) with ``start`` times
   the requested points (at least one).
2. Each step inpaints the current mask (`inpaint`: the direct solver on
   small images, compiled multigrid to `RANKING_RTOL` on large ones, in
   overlapping tiles above `TILED_PIXELS`),
   takes the error of each pixel (absolute error summed over the
   channels), and adds ``growth`` times the current count of non-mask
   pixels with the largest error among those that are the largest error
   within a (2 r + 1) x (2 r + 1) window (non-maximum suppression).
   Without the suppression the new points crowd into the worst region,
   side by side, where one point would have done (1.3-2.1 dB worse on
   the training crops).
3. It stops at exactly round(D N) points: the last step adds only what is
   missing.

A step costs one inpainting, so the mask costs about
log(1 / start) / log(1 + growth) + 1 inpaintings (about 17 with the
defaults), against about 70 for PS at 5 % with p = q = 0.2. On the 76 training crops
it is better than PS at every density measured (docs/baselines.md,
`benchmarks/studies/densification_defaults.py`).
"""

from __future__ import annotations

import math

import numpy as np

from wgimask.arrays import as_image, check_density, target_count
from wgimask.diffusion import multigrid
from wgimask.diffusion.inpainting import solve_checked
from wgimask.diffusion.jit import jit
from wgimask.diffusion.tiled import tiled_solve
from wgimask.masks.analytic import (
    analytic_density,
    analytic_mask,
    auto_sigma,
    halftone_density,
)

__all__ = [
    "densification_mask",
    "densification_radius",
    "DEFAULT_START",
    "DEFAULT_GROWTH",
    "RADIUS_SPACINGS",
    "RANKING_RTOL",
    "TILED_PIXELS",
]

#: Start: the analytic mask with this fraction of the requested points.
DEFAULT_START = 0.1
#: Points added per step, as a fraction of the current count.
DEFAULT_GROWTH = 0.15
#: Suppression radius in mean point spacings 1 / sqrt(D), rounded, at least
#: 1 px: 3 px at 5 %, 2 px at 10 %, 1 px at 20 %.
RADIUS_SPACINGS = 0.6
#: Relative residual of the iterative solvers (images above 256x256) for the
#: inpaintings that only rank pixels. On a 768x512 photo at 5 %, 1e-4 took
#: 2.2 s instead of 3.8 s (1e-6) for a mask 0.006 dB worse; 1e-3 cost 0.09
#: dB. Smaller images use the exact direct solver.
RANKING_RTOL = 1e-4
#: Above this many pixels every ranking solve runs in overlapping tiles
#: (`wgimask.diffusion.tiled`): the mask of a 4000x3000 photo takes about a
#: fifth less time, for the same PSNR (docs/performance.md). Smaller images
#: keep the whole-image solve, and so their masks.
TILED_PIXELS = 4_000_000


@jit
def _absolute_error(u, f):
    """(H, W) absolute error summed over the channels, in one pass (no
    (H, W, C) temporaries: 12 megapixels are 300 MB each)."""
    h, w, c = f.shape
    out = np.empty((h, w))
    for i in range(h):
        for j in range(w):
            acc = 0.0
            for k in range(c):
                acc += abs(u[i, j, k] - f[i, j, k])
            out[i, j] = acc
    return out


@jit
def _row_maximum(row, radius, out):
    """out[j] = the largest of row[j - radius .. j + radius] (clipped)."""
    w = row.size
    for j in range(w):
        out[j] = row[j]
    for o in range(1, radius + 1):
        # The interior without bounds tests (vectorised), then the edges.
        for j in range(o, w - o):
            out[j] = max(out[j], row[j - o], row[j + o])
        for j in range(min(o, w)):
            out[j] = max(out[j], row[min(j + o, w - 1)])
        for j in range(max(w - o, 0), w):
            out[j] = max(out[j], row[max(j - o, 0)])


@jit
def _ranking_scores(error, radius, known):
    """The flat scores of `grow_mask`'s ranking, in one compiled pass.

    A pixel that holds the largest error of its (2 r + 1) x (2 r + 1) window
    (clipped at the border) scores its error, any other error - peak - 1
    (below every window maximum), a known pixel -inf. Equal to scipy's
    ``maximum_filter(error, 2 r + 1, mode="nearest")`` and the same
    arithmetic, without its 0.4 s and three 12-megapixel temporaries on a
    4000x3000 photo.
    """
    h, w = error.shape
    rows = np.empty((h, w))
    for i in range(h):
        _row_maximum(error[i], radius, rows[i])
    score = np.empty(h * w)
    peak = np.empty(w)
    for i in range(h):
        for j in range(w):
            peak[j] = rows[i, j]
        for o in range(1, radius + 1):
            above = rows[max(i - o, 0)]
            below = rows[min(i + o, h - 1)]
            for j in range(w):
                peak[j] = max(peak[j], above[j], below[j])
        e = error[i]
        base = i * w
        for j in range(w):
            if known[base + j]:
                score[base + j] = -np.inf
            elif e[j] >= peak[j]:
                score[base + j] = e[j]
            else:
                score[base + j] = e[j] - peak[j] - 1.0
    return score


def _largest(score: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest scores, ties broken by the lower index.

    A partition instead of a full sort: a 4K photo has 8 million pixels.
    """
    kth = np.partition(score, score.size - k)[score.size - k]
    above = np.flatnonzero(score > kth)
    tied = np.flatnonzero(score == kth)[: k - above.size]
    return np.concatenate([above, tied])


def _step_count(count: int, target: int, growth: float) -> int:
    """How many steps grow ``count`` points to ``target``."""
    steps = 0
    while count < target:
        count += min(target - count, max(1, int(round(growth * count))))
        steps += 1
    return steps


def _number(value, name: str) -> float:
    """``float(value)``, or a ValueError that names the argument."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None


def _start_mask(f, density, seed, weights):
    """The analytic mask, its density times ``weights`` if given."""
    if weights is None:
        return analytic_mask(f, density, seed=seed)
    rho = analytic_density(f, sigma=auto_sigma(density)) * weights
    return halftone_density(rho, density, seed=seed)


def densification_radius(density: float, spacings: float = RADIUS_SPACINGS) -> int:
    """The non-maximum-suppression radius for a density.

    Args:
        density: fraction D in (0, 1) of known pixels.
        spacings: the radius in mean point spacings 1 / sqrt(D); 0 turns the
            suppression off.

    Returns:
        round(spacings / sqrt(D)) pixels, at least 1; 0 for ``spacings=0``.

    Raises:
        ValueError: for a density outside (0, 1).
    """
    d = check_density(density)
    if spacings == 0:
        return 0
    return max(1, int(round(spacings / math.sqrt(d))))


def densification_mask(
    image: np.ndarray,
    density: float,
    *,
    seed: int = 0,
    start: float = DEFAULT_START,
    growth: float = DEFAULT_GROWTH,
    radius: int | None = None,
    weights: np.ndarray | None = None,
    progress=None,
) -> np.ndarray:
    """A mask of exactly round(D N) points grown where diffusion fails most.

    Args:
        image: (H, W) or (H, W, C) image, values usually in [0, 1].
        density: fraction D in (0, 1) of known pixels.
        seed: seed of the start (the analytic mask's dither phase); equal
            seeds give equal masks.
        start: fraction in (0, 1] of the points that the analytic start
            mask has (at least one point).
        growth: points added per step as a fraction (> 0) of the current
            count (at least one per step).
        radius: non-maximum-suppression radius in pixels (>= 0; 0 turns the
            suppression off); ``None`` for `densification_radius`.
        weights: optional (H, W) finite weights > 0 that steer the points: the
            start halftones the analytic density times the weights, and each
            step ranks the error times the weights. ``None`` (or all ones)
            is plain densification. A mask generator trained with
            ``--mask_points=densify`` gives exp(r), its learned correction.
        progress: optional ``progress(done, total)`` called after each step
            (`wgimask.progress.Progress.step`).

    Returns:
        (H, W) bool mask with exactly round(D * H * W) True pixels. On a
        constant image (no error anywhere) the added points are the
        lowest-index pixels among the window maxima, so the mask is still
        valid and repeatable.

    Raises:
        ValueError: for a bad image (wrong rank, empty, NaN or infinite
            values), a density outside (0, 1) or one that keeps no pixel, or
            bad start / growth / radius / weights.
    """
    f, _ = as_image(image)
    d = check_density(density)
    start = _number(start, "start")
    if not 0.0 < start <= 1.0:
        raise ValueError(f"start must lie in (0, 1], got {start!r}")
    growth = _number(growth, "growth")
    if not (math.isfinite(growth) and growth > 0.0):
        raise ValueError(f"growth must be a finite number > 0, got {growth!r}")
    if radius is None:
        radius = densification_radius(d)
    else:
        value = _number(radius, "radius")
        if not (math.isfinite(value) and value == int(value) and value >= 0):
            raise ValueError(f"radius must be an integer >= 0, got {radius!r}")
        radius = int(value)
    h, w, _ = f.shape
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (h, w):
            raise ValueError(
                f"weights must have the image's shape {(h, w)}, got {weights.shape}"
            )
        if not (np.all(np.isfinite(weights)) and np.all(weights > 0)):
            raise ValueError("weights must be finite and > 0")
    n = h * w
    target = target_count(d, n)
    start_count = max(1, int(round(start * target)))
    if start_count >= target:
        return _start_mask(f, d, seed, weights)
    known = _start_mask(f, start_count / n, seed, weights).ravel().copy()
    return grow_mask(
        f,
        known,
        target,
        growth=growth,
        radius=radius,
        weights=weights,
        progress=progress,
    )


def grow_mask(f, known, target, *, growth, radius, weights=None, progress=None):
    """Densification steps: adds points to ``known`` until it has ``target``.

    Args:
        f: (H, W, C) float64 image.
        known: flat (H W,) bool start mask, changed in place.
        target: number of points to reach.
        growth, radius, weights, progress: as for `densification_mask`.

    Returns:
        The (H, W) mask.
    """
    h, w, _ = f.shape
    count = int(known.sum())
    steps = _step_count(count, target, growth)
    u = None
    while count < target:
        add = min(target - count, max(1, int(round(growth * count))))
        # The last step's inpainting is a good guess: the mask gained a few
        # points (warm start of the iterative solver on large images).
        tiled = None
        if h * w > TILED_PIXELS and multigrid.available():
            tiled = tiled_solve(f, known.reshape(h, w), u, rtol=RANKING_RTOL)
        if tiled is not None:
            u = tiled
        else:
            u = solve_checked(
                f, known, rtol=RANKING_RTOL, initial=u, replace_initial=True
            )
        error = _absolute_error(u, f)
        if weights is not None:
            error = error * weights
        # Pixels that are not window maxima rank after all that are.
        score = _ranking_scores(error, radius, known)
        known[_largest(score, add)] = True
        count += add
        if progress is not None:
            progress(steps - _step_count(count, target, growth), steps)
    return known.reshape(h, w)
