"""Losses of the mask GAN: Eqs. 2, 3 and 4 of the paper.

Each function returns one value per image (shape ``(batch,)``); the expectation
E of the equations is the batch mean, which the training step takes with
`tf.nn.compute_average_loss` so that it is a mean over the *global* batch when
the batch is split over devices.

Normalisation: the paper writes the data term as ||f - u||_1 and calls it the
mean absolute error. Here it is the mean over pixels and channels, as the text
says. The reference WGAIN implementation instead sums the absolute error per
pixel while the adversarial term is a mean, which weights the L1 term
(height x width) times more; with means, alpha = 0.005 keeps the adversarial
term a small correction, as the paper intends.
"""

from __future__ import annotations

import tensorflow as tf

from wgimask.config import DEFAULT_ALPHA, DEFAULT_BETA


def _per_image_mean(x: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(tf.reshape(x, (tf.shape(x)[0], -1)), axis=1)


def _scores(score: tf.Tensor) -> tf.Tensor:
    # Critic outputs have shape (batch, 1); accept (batch,) too.
    return tf.reshape(score, (-1,))


def mean_absolute_error(image: tf.Tensor, inpainted: tf.Tensor) -> tf.Tensor:
    """Per-image mean absolute error ||f - u||_1 / N (values in [0, 1] scale).

    Args:
        image: Original f, (batch, height, width, channels).
        inpainted: Inpainting u, same shape.

    Returns:
        Tensor of shape (batch,).
    """
    return _per_image_mean(tf.abs(image - inpainted))


def mask_density(mask: tf.Tensor) -> tf.Tensor:
    """Per-image fraction of known pixels ||b||_1 / N.

    Args:
        mask: (batch, height, width, 1) mask, 1 = known.

    Returns:
        Tensor of shape (batch,).
    """
    return _per_image_mean(mask)


def critic_loss(score_inpainted: tf.Tensor, score_original: tf.Tensor) -> tf.Tensor:
    """Eq. 2, minimised by the critic: d(u, c) - d(f, c).

    Args:
        score_inpainted: d(u, c), shape (batch, 1) or (batch,).
        score_original: d(f, c), same shape.

    Returns:
        Per-image loss, shape (batch,).
    """
    return _scores(score_inpainted) - _scores(score_original)


def generator_loss(
    score_inpainted: tf.Tensor,
    image: tf.Tensor,
    inpainted: tf.Tensor,
    alpha: float = DEFAULT_ALPHA,
) -> tf.Tensor:
    """Eq. 3, minimised by the inpainting generator: -alpha d(u, c) + ||f - u||_1.

    Args:
        score_inpainted: d(u, c), shape (batch, 1) or (batch,).
        image: Original f, (batch, height, width, channels).
        inpainted: Inpainting u, same shape.
        alpha: Weight of the adversarial term (paper: 0.005).

    Returns:
        Per-image loss, shape (batch,). The L1 term is a mean (see module doc).
    """
    return -alpha * _scores(score_inpainted) + mean_absolute_error(image, inpainted)


def mask_loss(
    mask: tf.Tensor,
    image: tf.Tensor,
    inpainted: tf.Tensor,
    density: float,
    beta: float = DEFAULT_BETA,
) -> tf.Tensor:
    """Eq. 4, minimised by the mask generator: | ||b||_1/N - D | + beta ||f - u||_1.

    Args:
        mask: b = m(r, f), (batch, height, width, 1).
        image: Original f, (batch, height, width, channels).
        inpainted: u(r, b, Bf), same shape as `image`.
        density: Target density D in (0, 1).
        beta: Weight of the inpainting error (paper: 1).

    Returns:
        Per-image loss, shape (batch,). The density term is per image, so a
        batch cannot meet D on average with some empty and some full masks.
    """
    return tf.abs(mask_density(mask) - density) + beta * mean_absolute_error(
        image, inpainted
    )
