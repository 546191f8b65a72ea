"""Ordered dithering with an exact point count: a density map becomes a mask.

The ``ordered_dither`` binarisation of `wgimask.nn.mask_layers.Binarization` and the
analytic mask prior of `wgimask.nn.networks` turn a non-negative importance map
into a binary mask in three steps:

1. `normalise_density`: rescale the importance to a density p in [0, 1] with
   mean D (clamp-and-rescale passes, as the adaptive-sampling network of Dai et
   al. does), so only the *relative* importance matters: scaling it up
   everywhere changes nothing, which keeps a learned confidence from drifting
   to all ones;
2. threshold p against a tiled Bayer matrix (`dither_thresholds`): a pixel is
   known where p > T. Within a tile the thresholds are spread as evenly as an
   ordered dither allows, so points spread out; where p is constant the mask is
   a regular pattern of density p (Belhachmi et al. 2009 dither their optimal
   density in the same spirit);
3. `exact_count_mask`: instead of the fixed threshold 0 on p - T, keep the k =
   round(D N) pixels with the largest p - T, so every mask has exactly the
   requested density (ties go to the lower pixel index).

During training the pattern's phase (a cyclic shift) is drawn at random for
every image and step: with a fixed pattern a network can line its density up
with the thresholds and raise the effective density (measured on a prototype,
docs/learned-masks.md). The gradient is straight-through (identity from the
mask to p, then through the normalisation to the importance).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from wgimask.config import BINARISATION_OPERATORS, PAPER_BINARISATION_OPERATORS
from wgimask.masks.halftoning import BAYER_SIZE, bayer_matrix

#: Clamp-and-rescale passes of `normalise_density`.
NORMALISE_PASSES = 6
# Added to the importance so that an all-zero map normalises to a constant.
_EPSILON = 1e-6


def dither_thresholds(batch, height, width, offsets=None, dtype=tf.float32):
    """Tiled Bayer thresholds, shifted cyclically per image.

    Args:
        batch: Number of images.
        height: Image height.
        width: Image width.
        offsets: Optional (batch, 2) int tensor, the (row, column) phase of
            each image's pattern; None for phase 0.
        dtype: Output dtype.

    Returns:
        (batch, height, width, 1) thresholds in (0, 1).
    """
    matrix = tf.constant(bayer_matrix(), dtype)
    if offsets is None:
        offsets = tf.zeros((batch, 2), tf.int32)
    offsets = tf.cast(offsets, tf.int32)
    rows = (tf.range(height)[None, :] + offsets[:, :1]) % BAYER_SIZE  # (B, H)
    cols = (tf.range(width)[None, :] + offsets[:, 1:]) % BAYER_SIZE  # (B, W)
    # T[b, y, x] = matrix[rows[b, y], cols[b, x]]: pick rows, then columns.
    picked_rows = tf.gather(matrix, rows)  # (B, H, size)
    thresholds = tf.gather(picked_rows, cols, axis=2, batch_dims=1)  # (B, H, W)
    return thresholds[..., None]


def normalise_density(importance, density, passes: int = NORMALISE_PASSES):
    """Rescales a non-negative map to values in [0, 1] with mean `density`.

    Alternates rescaling to mean D and clipping to [0, 1]; each pass moves the
    mass clipped away to the other pixels. The mean is D up to the mass still
    clipped in the last pass (exact counting happens in `exact_count_mask`).

    Args:
        importance: (B, H, W, 1) non-negative tensor.
        density: Target mean D in (0, 1).
        passes: Number of clamp-and-rescale passes.

    Returns:
        (B, H, W, 1) density p, differentiable in `importance`.
    """
    p = tf.nn.relu(importance) + _EPSILON
    for _ in range(passes):
        mean = tf.reduce_mean(p, axis=(1, 2, 3), keepdims=True)
        p = tf.minimum(p * (density / mean), 1.0)
    return p


def point_count(density, height, width):
    """k = round(D H W), half to even as Python's round, at least 1."""
    count = tf.round(tf.cast(density, tf.float64) * tf.cast(height * width, tf.float64))
    return tf.maximum(tf.cast(count, tf.int32), 1)


def exact_count_mask(score, count):
    """1 at the `count` largest scores of each image, else 0 (no gradient).

    Args:
        score: (B, H, W, 1) tensor.
        count: Number of ones per image (int or scalar tensor).

    Returns:
        (B, H, W, 1) mask in the score's dtype with exactly `count` ones.
    """
    shape = tf.shape(score)
    flat = tf.reshape(score, (shape[0], -1))
    _, index = tf.math.top_k(flat, k=count, sorted=False)
    batch_index = tf.broadcast_to(tf.range(shape[0])[:, None], tf.shape(index))
    ones = tf.scatter_nd(
        tf.stack([batch_index, index], axis=-1),
        tf.ones(tf.shape(index), score.dtype),
        tf.shape(flat),
    )
    return tf.reshape(ones, shape)


def dither_mask(importance, density, offsets=None):
    """Mask of exactly round(D N) points spread by an ordered dither.

    Args:
        importance: (B, H, W, 1) non-negative map (a confidence or density);
            only its relative values matter.
        density: Target density D in (0, 1).
        offsets: Optional (B, 2) int phases of the Bayer pattern (see
            `dither_thresholds`); None for phase 0 (inference).

    Returns:
        (B, H, W, 1) binary mask; its gradient is the identity to the
        normalised density and passes through `normalise_density` to
        `importance` (straight-through).

    Raises:
        ValueError: If `density` is a number outside (0, 1).
    """
    if isinstance(density, (int, float)) and not 0.0 < density < 1.0:
        raise ValueError(f"density must be in (0, 1), got {density!r}")
    importance = tf.convert_to_tensor(importance)
    p = normalise_density(importance, density)
    shape = tf.shape(p)
    thresholds = dither_thresholds(shape[0], shape[1], shape[2], offsets, p.dtype)
    hard = exact_count_mask(p - thresholds, point_count(density, shape[1], shape[2]))
    return p + tf.stop_gradient(hard - p)


def binarise_confidence(confidence, binarisation: str = "hard_rounding", density=None):
    """The inference-time mask of a mask generator's confidence map.

    What `wgimask.nn.networks.MaskGenerator` returns with ``training=False`` for
    its binarisation operator: hard rounding floor(c + 0.5) for the paper's
    operators (their random perturbations are training-only), the phase-0
    ordered dither with exactly round(D N) points for ``ordered_dither``.
    Inference code that has only a confidence map (the ``mask_gan`` export's
    ``confidence`` output, say) calls this to get the exact-density mask.

    Args:
        confidence: (B, H, W, 1) confidence c in [0, 1].
        binarisation: A `wgimask.config.BINARISATION_OPERATORS` name (the
            ``binarisation`` of the mask generator's config).
        density: Target density D in (0, 1); needed for ``ordered_dither``.

    Returns:
        (B, H, W, 1) float32 binary mask.

    Raises:
        ValueError: For an unknown operator, or ``ordered_dither`` without a
            density in (0, 1).
    """
    confidence = tf.cast(tf.convert_to_tensor(confidence), tf.float32)
    if binarisation == "ordered_dither":
        if not (isinstance(density, (int, float)) and 0.0 < density < 1.0):
            raise ValueError(
                "density must be a number in (0, 1) for the ordered_dither "
                f"binarisation, received {density!r}"
            )
        return tf.stop_gradient(dither_mask(confidence, density))
    if binarisation not in PAPER_BINARISATION_OPERATORS:
        raise ValueError(
            f"binarisation must be one of {BINARISATION_OPERATORS}, "
            f"received {binarisation!r}"
        )
    return tf.floor(confidence + 0.5)


def halftoned_masks(confidence, density: float, seeds):
    """The masks inference makes of point densities, as a training input.

    `wgimask.inference` halftones the density of a mask generator trained
    with the ordered dither by `wgimask.masks.analytic.halftone_density`
    (exact rescaling; Bayer dither below 15 %, Floyd-Steinberg error
    diffusion from 15 %), which differs from the network's own dither. With
    ``TrainingConfig.generator_masks="halftoned"`` g and d train on these
    masks, so g learns its residual on the kind of mask it gets at inference
    (trained on Bayer masks, g added less than diffusion on error-diffused
    ones at 20 %; docs/learned-masks.md). Computed in numpy, outside the
    gradient.

    Args:
        confidence: (B, H, W, 1) point density (m's ``confidence`` layer).
        density: Target density D in (0, 1).
        seeds: (B,) int64 tensor, the halftoning seed of each image (the
            Bayer phase, the error diffusion's ties); all zeros gives the
            masks `wgimask.inference` makes.

    Returns:
        (B, H, W, 1) float32 masks of exactly round(D H W) points each.
    """
    from wgimask.masks.analytic import halftone_density

    def halftone(values, image_seeds):
        return np.stack(
            [
                halftone_density(c[..., 0].astype(np.float64), density, seed=int(s))
                for c, s in zip(values, image_seeds, strict=True)
            ]
        )[..., None].astype(np.float32)

    confidence = tf.convert_to_tensor(confidence)
    masks = tf.numpy_function(
        halftone, [tf.stop_gradient(confidence), seeds], tf.float32, stateful=False
    )
    masks.set_shape(confidence.shape)
    return masks
