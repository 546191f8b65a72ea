"""Layers between the networks and the mask: binarisation and output layers.

The binarisation operators of the paper's Table 1 (straight-through
quantisation of the mask generator's confidence map), plus an ordered dither
with an exact point count (`wgimask.nn.dither`); the inpainting constraint of
Eq. 1 that passes known pixels through; and the two output layers of the
networks' optional variants (a clipped residual on a prefilled image, and a
confidence that corrects a prior density).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from wgimask.config import BINARISATION_OPERATORS
from wgimask.nn import dither

PACKAGE = "wgimask"


@keras.saving.register_keras_serializable(package=PACKAGE)
class InpaintingConstraint(keras.layers.Layer):
    """Eq. 1: u = (I - C) g + C f, so known pixels pass through exactly.

    Called on ``[g, known, mask]`` where ``known = C f`` is the masked image
    (zero where unknown) and ``mask`` has one channel, broadcast over colours.
    """

    def call(self, inputs):
        generated, known, mask = inputs
        return (1.0 - mask) * generated + known

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@tf.custom_gradient
def round_straight_through(x):
    """Hard rounding floor(x + 0.5) whose gradient is that of the identity.

    Args:
        x: Input tensor.

    Returns:
        The rounded tensor, with the upstream gradient passed through unchanged.
    """

    def grad(upstream):
        return upstream

    return tf.floor(x + 0.5), grad


@tf.custom_gradient
def _add_straight_through(x, perturbation):
    # The perturbation is sampled, not learned: it gets no gradient.
    def grad(upstream):
        return upstream, tf.zeros_like(perturbation)

    return x + perturbation, grad


@keras.saving.register_keras_serializable(package=PACKAGE)
class Binarization(keras.layers.Layer):
    """Quantisation of a confidence map c in [0, 1] to a mask.

    The paper's operators (Table 1), all with the identity as backward pass
    (straight-through):
      * ``hard_rounding`` (the paper's choice): b = floor(c + 0.5);
      * ``additive_noise``: b = c + eps, eps ~ U[0, 0.5] (not binary);
      * ``stochastic_rounding``: b = floor(c) + 1 with probability c - floor(c),
        else floor(c).

    The two random operators are training-time perturbations (Theis et al.): with
    ``training=False`` every paper operator uses hard rounding, so inference
    always yields a binary mask.

    Not in the paper:
      * ``ordered_dither``: c is rescaled to a density of mean D and dithered
        against a Bayer pattern to exactly round(D N) points
        (`wgimask.nn.dither.dither_mask`); straight-through to the rescaled
        density. In training the pattern's phase is random per image and call
        (a fixed pattern can be gamed); at inference it is phase 0, so masks
        are deterministic. Needs ``density``.

    Args:
        operator: One of `BINARISATION_OPERATORS`.
        seed: Seed of the random operators.
        density: Target density D in (0, 1) of ``ordered_dither``; ignored
            (may be None) for the paper's operators.
        **kwargs: Base layer arguments.

    Raises:
        ValueError: For an unknown operator, or ``ordered_dither`` without a
            density in (0, 1).
    """

    def __init__(
        self,
        operator: str = "hard_rounding",
        seed: int | None = None,
        density: float | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if operator not in BINARISATION_OPERATORS:
            raise ValueError(
                f"`operator` must be one of {BINARISATION_OPERATORS}, "
                f"received {operator!r}."
            )
        if operator == "ordered_dither" and not (
            isinstance(density, (int, float)) and 0.0 < density < 1.0
        ):
            raise ValueError(
                "`density` must be a number in (0, 1) for the ordered_dither "
                f"operator, received {density!r}."
            )
        self.operator = operator
        self.seed = seed
        self.density = None if density is None else float(density)
        self.seed_generator = keras.random.SeedGenerator(seed, name="seed_generator")

    def call(self, inputs, training=None):
        if self.operator == "ordered_dither":
            offsets = None
            if training:
                offsets = keras.random.randint(
                    (ops.shape(inputs)[0], 2),
                    0,
                    dither.BAYER_SIZE,
                    dtype="int32",
                    seed=self.seed_generator,
                )
            return dither.dither_mask(inputs, self.density, offsets)
        if not training or self.operator == "hard_rounding":
            return round_straight_through(inputs)
        noise = keras.random.uniform(
            ops.shape(inputs), dtype=inputs.dtype, seed=self.seed_generator
        )
        if self.operator == "additive_noise":
            return _add_straight_through(inputs, 0.5 * noise)
        floor = tf.floor(inputs)
        rounded = floor + tf.cast(noise < inputs - floor, inputs.dtype)
        return _add_straight_through(inputs, tf.stop_gradient(rounded - inputs))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = {**super().get_config(), "operator": self.operator, "seed": self.seed}
        if self.density is not None:
            config["density"] = self.density
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class ClippedResidual(keras.layers.Layer):
    """``[base, residual] -> clip(base + residual, 0, 1)``.

    The output of a generator that learns a residual on a prefilled image
    (`wgimask.nn.networks.InpaintingGenerator` with ``prefill``): with a zero
    residual it returns the base image unchanged (values in [0, 1]).
    """

    def call(self, inputs):
        base, residual = inputs
        return ops.clip(base + residual, 0.0, 1.0)

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@keras.saving.register_keras_serializable(package=PACKAGE)
class PriorConfidence(keras.layers.Layer):
    """``[prior, correction] -> normalise_density(prior * exp(correction), D)``.

    The confidence of a mask generator that learns a multiplicative (log-space)
    correction of a prior density: a zero correction gives the prior, rescaled
    to mean D with values in [0, 1] (`wgimask.nn.dither.normalise_density`).
    The correction is clipped to [-20, 20] so exp cannot overflow.

    Args:
        density: Target density D in (0, 1).
        **kwargs: Base layer arguments.

    Raises:
        ValueError: If `density` is not a number in (0, 1).
    """

    def __init__(self, density: float, **kwargs):
        super().__init__(**kwargs)
        if not (isinstance(density, (int, float)) and 0.0 < density < 1.0):
            raise ValueError(f"`density` must be in (0, 1), received {density!r}.")
        self.density = float(density)

    def call(self, inputs):
        prior, correction = inputs
        weight = ops.exp(ops.clip(correction, -20.0, 20.0))
        return dither.normalise_density(prior * weight, self.density)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "density": self.density}
