import numpy as np
import pytest
import tensorflow as tf

from wgimask.nn.losses import (
    critic_loss,
    generator_loss,
    mask_density,
    mask_loss,
    mean_absolute_error,
)

# Two 2x2 one-channel images, computed by hand below.
F = tf.constant([[[[0.0], [1.0]], [[0.5], [0.5]]], [[[1.0], [1.0]], [[1.0], [1.0]]]])
U = tf.constant([[[[0.5], [1.0]], [[0.5], [0.0]]], [[[1.0], [0.0]], [[1.0], [1.0]]]])
B = tf.constant([[[[1.0], [0.0]], [[0.0], [0.0]]], [[[1.0], [1.0]], [[0.0], [0.0]]]])
SCORE_U = tf.constant([[2.0], [-4.0]])
SCORE_F = tf.constant([[1.0], [3.0]])


def test_mae_and_density():
    # |f - u|: image 0 has 0.5 + 0 + 0 + 0.5 over 4 pixels, image 1 has 1 over 4.
    np.testing.assert_allclose(mean_absolute_error(F, U), [0.25, 0.25])
    np.testing.assert_allclose(mask_density(B), [0.25, 0.5])


def test_critic_loss_eq2():
    np.testing.assert_allclose(critic_loss(SCORE_U, SCORE_F), [1.0, -7.0])


def test_generator_loss_eq3():
    # -alpha d(u) + MAE = [-0.01 + 0.25, 0.02 + 0.25] with alpha = 0.005.
    np.testing.assert_allclose(generator_loss(SCORE_U, F, U), [0.24, 0.27], rtol=1e-6)
    np.testing.assert_allclose(
        generator_loss(SCORE_U, F, U, alpha=1.0), [-1.75, 4.25], rtol=1e-6
    )


def test_mask_loss_eq4():
    # |density - D| + beta MAE with D = 0.05: [0.2 + 0.25, 0.45 + 0.25].
    np.testing.assert_allclose(mask_loss(B, F, U, 0.05), [0.45, 0.7], rtol=1e-6)
    np.testing.assert_allclose(
        mask_loss(B, F, U, 0.5, beta=2.0), [0.75, 0.5], rtol=1e-6
    )


def test_losses_accept_flat_scores():
    flat = critic_loss(tf.reshape(SCORE_U, (-1,)), tf.reshape(SCORE_F, (-1,)))
    np.testing.assert_allclose(flat, critic_loss(SCORE_U, SCORE_F))


@pytest.mark.parametrize("fn", [mean_absolute_error])
def test_colour_mae_averages_channels(fn):
    f = tf.zeros((1, 2, 2, 3))
    u = tf.concat([tf.ones((1, 2, 2, 1)), tf.zeros((1, 2, 2, 2))], axis=-1)
    np.testing.assert_allclose(fn(f, u), [1 / 3], rtol=1e-6)
