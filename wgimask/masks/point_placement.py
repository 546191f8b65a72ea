"""Densified mask points: a mask generator's correction steers densification.

With ``TrainingConfig.mask_points="densify"`` (``train.py
--mask_points=densify``) the points of a mask generator trained with the
analytic prior are not its dithered density but the densification mask of
the image (`wgimask.baselines.densification_mask`) steered by the
generator's learned log-space correction r: the start halftones the analytic
density times exp(r), and every step adds the pixels with the largest
diffusion error times exp(r). With r = 0 (an untrained generator) the mask
is exactly the model-free densification mask, the best mask of
`wgimask.baselines` from 5 % density, as the analytic prior's r = 0 gives
the analytic mask.

Densification inpaints the image about 17 times per mask, so training
makes the masks in numpy (`densified_mask`, the function `wgimask.inference`
runs), outside the gradient (`wgimask.nn.point_placement_graph` holds the
TensorFlow side: the training masks and the SavedModel's graph version).
This module imports no TensorFlow, so that inference does not either.

The gradient reaches r straight through, as with the ordered dither: from
the mask to m's point density (its ``confidence`` layer,
normalise_density(rho exp(r), D)). Exact diffusion's gradient with respect
to the mask (docs/learned-masks.md) says, per pixel, how much adding or
removing a point there changes the error; the straight-through path raises
r where a point would help and lowers it where a kept point helps little.
"""

from __future__ import annotations

import numpy as np

#: exp(r) is clipped to exp(+-LOG_WEIGHT_LIMIT): finite and > 0 whatever r.
LOG_WEIGHT_LIMIT = 30.0


def point_weights(correction: np.ndarray) -> np.ndarray:
    """The densification weights exp(r) of a log-space correction r.

    Args:
        correction: (H, W) array, m's correction r.

    Returns:
        (H, W) float64 weights, finite and > 0.
    """
    r = np.asarray(correction, dtype=np.float64)
    return np.exp(np.clip(r, -LOG_WEIGHT_LIMIT, LOG_WEIGHT_LIMIT))


def densified_mask(
    image: np.ndarray,
    correction: np.ndarray,
    density: float,
    seed: int = 0,
    progress=None,
):
    """The densification mask of one image, steered by a correction.

    Args:
        image: (H, W, C) image in [0, 1].
        correction: (H, W) log-space correction r (zeros: plain
            densification).
        density: Fraction D in (0, 1) of points.
        seed: The start's dither phase (inference uses 0).
        progress: optional ``progress(done, total)`` after each step.

    Returns:
        (H, W) bool mask with exactly round(D H W) points.
    """
    from wgimask.masks.densification import densification_mask

    return densification_mask(
        image,
        density,
        seed=seed,
        weights=point_weights(correction),
        progress=progress,
    )
