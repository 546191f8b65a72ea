"""The TensorFlow side of densified mask points (`wgimask.masks.point_placement`).

`densified_masks` makes a batch's training masks in numpy inside the graph
(`tf.numpy_function`, no gradient), `straight_through` gives them m's
gradient path, and `densify_graph` is the same densification in TensorFlow
ops for the exported ``mask_gan`` SavedModel, which TF Serving runs without
numpy.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from wgimask.masks.analytic import DEFAULT_EXPONENT, auto_sigma
from wgimask.masks.densification import (
    DEFAULT_GROWTH,
    DEFAULT_START,
    densification_radius,
)
from wgimask.masks.halftoning import dither_phase
from wgimask.masks.point_placement import LOG_WEIGHT_LIMIT, densified_mask
from wgimask.nn.analytic_prior import analytic_importance
from wgimask.nn.dither import dither_mask, exact_count_mask, point_count
from wgimask.nn.exact_diffusion import diffusion_inpaint


def densified_masks(image, correction, density: float, seeds):
    """Densification masks of a batch, as a training input (no gradient).

    Args:
        image: (B, H, W, C) float32 tensor in [0, 1].
        correction: (B, H, W, 1) m's log-space correction r.
        density: Target density D in (0, 1).
        seeds: (B,) int64 tensor, the start's dither phase per image; zeros
            give the masks `wgimask.inference` makes.

    Returns:
        (B, H, W, 1) float32 masks of exactly round(D H W) points each.
    """

    def densify(images, corrections, image_seeds):
        return np.stack(
            [
                densified_mask(f, r[..., 0], density, int(s))
                for f, r, s in zip(images, corrections, image_seeds, strict=True)
            ]
        )[..., None].astype(np.float32)

    image = tf.convert_to_tensor(image)
    masks = tf.numpy_function(
        densify,
        [tf.stop_gradient(image), tf.stop_gradient(correction), seeds],
        tf.float32,
        stateful=False,
    )
    masks.set_shape(image.shape[:-1].concatenate([1]))
    return masks


def straight_through(hard, confidence):
    """``hard`` in the forward pass, the identity to ``confidence`` backwards."""
    return confidence + tf.stop_gradient(hard - confidence)


def densify_graph(image, correction, density: float):
    """Densification steered by a correction, in TensorFlow (for SavedModels).

    The graph counterpart of `densified_mask` that the exported ``mask_gan``
    SavedModel of a ``mask_points="densify"`` run serves (TF Serving has no
    numpy). The same start (TensorFlow's ordered dither at numpy's seed-0
    phase), steps and counts; the inpaintings are CG solves to relative
    residual 1e-6 (`wgimask.nn.exact_diffusion`), warm-started from the
    previous step's, instead of the direct solver. On 64 px photo crops at
    5/10/20 % the masks equal `densified_mask`'s
    (`tests/masks/test_point_placement.py`); with relative residual 1e-4 they
    shared 95-100 % of their points. Large images take long: Jacobi CG
    needs more iterations as the gaps between points grow.

    Args:
        image: (B, H, W, C) float32 tensor in [0, 1].
        correction: (B, H, W, 1) log-space correction r.
        density: Fraction D in (0, 1) of points (a number).

    Returns:
        (B, H, W, 1) float32 masks with exactly round(D H W) points each.
    """
    image = tf.convert_to_tensor(image, tf.float32)
    weights = tf.exp(tf.clip_by_value(correction, -LOG_WEIGHT_LIMIT, LOG_WEIGHT_LIMIT))
    shape = tf.shape(image)
    n = shape[1] * shape[2]
    target = point_count(density, shape[1], shape[2])
    start = tf.maximum(
        tf.cast(tf.round(DEFAULT_START * tf.cast(target, tf.float64)), tf.int32), 1
    )
    start = tf.minimum(start, target)
    # The start's smoothing: auto_sigma of the start density (2 px below
    # 50 % density, whatever the image size).
    sigma = auto_sigma(min(max(DEFAULT_START * density, 1e-6), 0.99))
    rho = analytic_importance(image, sigma, DEFAULT_EXPONENT) * weights
    # The phase of numpy's ordered dither with seed 0 (`ordered_dither`).
    offsets = tf.tile(tf.constant([dither_phase(0)], tf.int32), [shape[0], 1])
    mask = tf.stop_gradient(
        dither_mask(rho, tf.cast(start, tf.float32) / tf.cast(n, tf.float32), offsets)
    )
    # dither_mask keeps round(d0 N) points: start, up to float rounding.
    radius = densification_radius(density)
    size = 2 * radius + 1

    def grow(mask, count, previous):
        add = tf.minimum(
            target - count,
            tf.maximum(
                1,
                tf.cast(
                    tf.round(DEFAULT_GROWTH * tf.cast(count, tf.float64)), tf.int32
                ),
            ),
        )
        u = diffusion_inpaint(image, mask, initial=previous)
        error = tf.reduce_sum(tf.abs(u - image), axis=-1, keepdims=True) * weights
        peak = tf.nn.max_pool2d(error, size, 1, "SAME")
        score = tf.where(error >= peak, error, error - peak - 1.0)
        score = tf.where(mask > 0.5, tf.constant(-float("inf"), score.dtype), score)
        return mask + exact_count_mask(score, add), count + add, u

    count = tf.cast(tf.reduce_sum(mask[0]), tf.int32)
    mask, _, _ = tf.while_loop(
        lambda mask, count, previous: count < target,
        grow,
        (mask, count, tf.zeros_like(image)),
        shape_invariants=(mask.shape, tf.TensorShape([]), image.shape),
    )
    return tf.stop_gradient(mask)
