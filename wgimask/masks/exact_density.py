"""Exact densities: point counts and ranking confidences into masks.

Every learned mask of `wgimask.inference` keeps exactly round(D H W) pixels;
these functions count them, refuse densities that keep none, and rank a
confidence map into a mask, with the tile-phase ranking that keeps tile
borders out of masks computed in non-overlapping tiles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def point_count(density: float, shape: Sequence[int]) -> int:
    """The number of mask points, round(D H W), used for exact densities."""
    return int(round(density * shape[0] * shape[1]))


def check_density(density: float, shape: Sequence[int]) -> int:
    """Validates a density for an image shape and returns its point count.

    Args:
        density: Fraction of pixels to keep.
        shape: (height, width, ...) of the image.

    Returns:
        round(D H W), at least 1.

    Raises:
        ValueError: If the density is not in (0, 1) or keeps no pixel.
    """
    density = float(density)
    if not 0.0 < density < 1.0:
        raise ValueError(f"density must be in (0, 1), received {density!r}")
    count = point_count(density, shape)
    if count < 1:
        raise ValueError(
            f"density {density:g} keeps 0 of the {shape[1]}x{shape[0]} image's "
            f"{shape[0] * shape[1]} pixels; use at least "
            f"{smallest_density(shape):g}"
        )
    return count


def smallest_density(shape: Sequence[int]) -> float:
    """A density that keeps at least one pixel, with two significant digits.

    round(D H W) rounds half to even, so 0.5 / (H W) keeps none; 1 / (H W),
    rounded up to two significant digits, keeps one (or two).
    """
    exact = 1.0 / (shape[0] * shape[1])
    scale = 10.0 ** (math.floor(math.log10(exact)) - 1)
    return math.ceil(exact / scale) * scale


def top_confidence_mask(
    confidence: np.ndarray, count: int, tile: int | None = None
) -> np.ndarray:
    """Keeps the ``count`` most confident pixels; ties go to the earlier pixel.

    Args:
        confidence: (H, W) or (H, W, 1) confidence values.
        count: Number of known pixels to keep.
        tile: If the confidence was computed in non-overlapping tiles of this
            side (starting at the top left), pixels are ranked first by their
            rank among the pixels of the same tile phase (`phase_rank`), then
            by confidence; None ranks by confidence alone.

    Returns:
        A bool (H, W) mask with exactly ``count`` true pixels.
    """
    conf = np.asarray(confidence, np.float64)
    if conf.ndim == 3:
        conf = conf[..., 0]
    flat = conf.ravel()
    count = int(min(max(count, 0), flat.size))
    if tile is None or (conf.shape[0] <= tile and conf.shape[1] <= tile):
        # A stable sort of the negated values keeps raster order among ties.
        keep = np.argsort(-flat, kind="stable")[:count]
    else:
        # lexsort: the last key is the primary one; it is stable as well.
        keep = np.lexsort((-flat, -phase_rank(conf, tile).ravel()))[:count]
    mask = np.zeros(flat.size, bool)
    mask[keep] = True
    return mask.reshape(conf.shape)


def phase_rank(confidence: np.ndarray, tile: int) -> np.ndarray:
    """Each pixel's rank among the pixels at the same position in their tile.

    Args:
        confidence: (H, W) values computed in non-overlapping tiles of side
            `tile` from the top left.
        tile: The tile side.

    Returns:
        (H, W) float64 in (0, 1): (rank + 0.5) / count within the pixel's
        phase (y mod tile, x mod tile), ascending with the confidence.
    """
    height, width = confidence.shape
    rows = np.arange(height) % tile
    cols = np.arange(width) % tile
    phase = (rows[:, None] * tile + cols[None, :]).ravel()
    flat = np.asarray(confidence, np.float64).ravel()
    order = np.lexsort((flat, phase))  # by phase, then ascending confidence
    sorted_phase = phase[order]
    first = np.searchsorted(sorted_phase, sorted_phase, side="left")
    sizes = np.bincount(phase, minlength=tile * tile)[sorted_phase]
    ranks = np.empty(flat.size)
    ranks[order] = (np.arange(flat.size) - first + 0.5) / sizes
    return ranks.reshape(height, width)
