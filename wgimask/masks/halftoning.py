"""Halftoning a probability map to exactly ``count`` points.

* `ordered_dither`: Bayer thresholds, the ``count`` pixels of largest p - T;
  `dither_phase` is its seeded shift, shared with the TensorFlow dither of
  `wgimask.nn.dither`, which reads the same `bayer_matrix`;
* `halftone`: Floyd-Steinberg error diffusion, corrected to the exact count.

The electrostatic halftoning (`wgimask.masks.electrostatic`) starts from
`ordered_dither`.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

#: Side of the Bayer matrix: 4096 distinct thresholds, so a 64 px crop never
#: sees the same threshold twice.
BAYER_SIZE = 64


def bayer_matrix(size: int = BAYER_SIZE) -> np.ndarray:
    """Bayer threshold matrix of a power-of-two side, values (i + 0.5) / size^2.

    Args:
        size: side, a power of two >= 1.

    Returns:
        (size, size) float64 array; each value (i + 0.5) / size^2,
        i = 0 .. size^2 - 1, occurs once.

    Raises:
        ValueError: if ``size`` is not a power of two.
    """
    if not (isinstance(size, int) and size >= 1 and size & (size - 1) == 0):
        raise ValueError(f"size must be a power of two, got {size!r}")
    index = np.zeros((1, 1), np.int64)
    while index.shape[0] < size:
        index = np.block([[4 * index, 4 * index + 2], [4 * index + 3, 4 * index + 1]])
    return (index + 0.5) / size**2


_BAYER = bayer_matrix()


def dither_phase(seed: int) -> tuple[int, int]:
    """The (row, column) shift of the Bayer pattern that `ordered_dither` uses.

    `wgimask.nn.point_placement_graph` shifts TensorFlow's dither by the same
    phase, so that both start densification from the same points.
    """
    oy, ox = np.random.default_rng(seed).integers(BAYER_SIZE, size=2)
    return int(oy), int(ox)


def ordered_dither(probability: np.ndarray, count: int, *, seed: int = 0) -> np.ndarray:
    """Ordered (Bayer) dithering of a probability map to exactly ``count`` points.

    A plain ordered dither keeps the pixels where p > T, with T the tiled
    Bayer thresholds; to hit the count exactly it keeps instead the
    ``count`` pixels of largest p - T. Within a tile the thresholds are
    spread as evenly as the Bayer order allows, so where p is smooth the
    points lie on a regular, well spread pattern; a constant p gives a
    regular grid. The seed picks the pattern's phase (a cyclic shift).

    Args:
        probability: (H, W) array with values in [0, 1].
        count: number of points wanted, 0 <= count <= H * W.
        seed: seed of the phase.

    Returns:
        (H, W) bool mask with exactly ``count`` True pixels.
    """
    h, w = probability.shape
    oy, ox = dither_phase(seed)
    rows = (np.arange(h) + oy) % BAYER_SIZE
    cols = (np.arange(w) + ox) % BAYER_SIZE
    key = (np.clip(probability, 0.0, 1.0) - _BAYER[np.ix_(rows, cols)]).ravel()
    flat = np.zeros(key.size, dtype=bool)
    if count > 0:
        # argpartition: O(N); the kth largest key and all larger ones.
        flat[np.argpartition(-key, count - 1)[:count]] = True
    return flat.reshape(h, w)


def halftone(probability: np.ndarray, count: int, *, seed: int = 0) -> np.ndarray:
    """Floyd-Steinberg halftoning of a probability map to exactly ``count`` points.

    Pillow's Floyd-Steinberg error diffusion works on 8-bit grey values, so
    the map is first rounded to multiples of 1/255, stochastically (seeded),
    which keeps its mean unbiased. Error diffusion keeps the point count
    within a few points of the map's sum; the difference is corrected by
    adding the non-points of largest probability or removing the points of
    smallest probability (ties in random order).

    Args:
        probability: (H, W) array with values in [0, 1].
        count: number of points wanted, 0 <= count <= H * W.
        seed: seed of the rounding and of the tie order.

    Returns:
        (H, W) bool mask with exactly ``count`` True pixels.
    """
    rng = np.random.default_rng(seed)
    scaled = np.clip(probability, 0.0, 1.0) * 255.0
    grey = np.floor(scaled + rng.random(scaled.shape)).clip(0, 255).astype(np.uint8)
    dithered = Image.fromarray(grey, mode="L").convert(
        "1", dither=Image.Dither.FLOYDSTEINBERG
    )
    mask = np.asarray(dithered, dtype=bool).copy()
    flat = mask.ravel()
    have = int(flat.sum())
    if have != count:
        # The few points to add or drop, by probability; a tiny seeded jitter
        # (far below 1/255) breaks ties at random. argpartition: O(N).
        key = probability.ravel() + 1e-9 * rng.random(flat.size)
        if have > count:
            on = np.flatnonzero(flat)
            flat[on[np.argpartition(key[on], have - count - 1)[: have - count]]] = False
        else:
            off = np.flatnonzero(~flat)
            need = count - have
            flat[off[np.argpartition(-key[off], need - 1)[:need]]] = True
    return flat.reshape(mask.shape)
