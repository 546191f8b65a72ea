"""The analytic mask density of Belhachmi et al. (2009) in TensorFlow.

For homogeneous diffusion the density of known pixels should grow with the
magnitude of the Laplacian of the (smoothed) image. The density used here is
the one of the numpy analytic masks (`wgimask.masks.analytic`):

    rho = (sum_c |LoG_sigma(f_c - mean(f_c))|) ** exponent,

with the Gaussian's Laplacian taken separably (second derivative of the
Gaussian along one axis times the Gaussian along the other, truncated at
4 sigma, as `scipy.ndimage.gaussian_laplace`) and reflecting image boundaries
(scipy's ``mode="reflect"``, i.e. TensorFlow's ``SYMMETRIC`` padding). An
image whose Laplacian vanishes everywhere gets rho = 0 (uniform after
normalisation). It serves as the prior of the mask generator
(`wgimask.nn.networks.MaskGenerator` with ``prior="analytic"``), which learns a
correction of it.
"""

from __future__ import annotations

import functools

import keras
import numpy as np
import tensorflow as tf
from scipy import ndimage

# The defaults of the numpy analytic masks, so that the prior at
# initialisation is the mask `analytic_mask` would choose.
from wgimask.masks.analytic import DEFAULT_EXPONENT, auto_sigma  # noqa: F401

PACKAGE = "wgimask"

# A magnitude at most this, relative to the image's value range, counts as
# zero everywhere (same rule as the numpy analytic masks).
_FLAT = 1e-9


@functools.lru_cache(maxsize=16)
def _kernels(sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """1-D smoothing and second-derivative kernels of scipy's LoG."""
    if sigma == 0:
        return np.array([1.0]), np.array([1.0, -2.0, 1.0])
    radius = int(4.0 * sigma + 0.5)
    impulse = np.zeros(2 * radius + 1)
    impulse[radius] = 1.0
    # The kernels are symmetric, so the impulse responses are the kernels.
    smooth = ndimage.gaussian_filter1d(impulse, sigma, order=0, mode="constant")
    second = ndimage.gaussian_filter1d(impulse, sigma, order=2, mode="constant")
    return smooth, second


def _separable(x, along_height, along_width):
    """Correlates (B, C, H, W) x with 1-D kernels, reflecting boundaries."""
    for kernel, axis in ((along_height, 2), (along_width, 3)):
        radius = len(kernel) // 2
        if radius == 0:
            x = x * float(kernel[0])
            continue
        pad = [[0, 0]] * 4
        pad[axis] = [radius, radius]
        padded = tf.pad(x, pad, mode="SYMMETRIC")
        size = tf.shape(x)[axis]
        terms = []
        for i, weight in enumerate(kernel):
            part = (
                padded[:, :, i : i + size] if axis == 2 else padded[..., i : i + size]
            )
            terms.append(float(weight) * part)
        x = tf.add_n(terms)
    return x


def analytic_importance(image, sigma: float = 1.0, exponent: float = DEFAULT_EXPONENT):
    """Unnormalised analytic density of a batch, no gradient.

    Args:
        image: (B, H, W, C) float tensor; sides above 4 sigma.
        sigma: Gaussian standard deviation in pixels (>= 0; 0 = plain 5-point
            Laplacian).
        exponent: Power of the Laplacian magnitude (> 0).

    Returns:
        (B, H, W, 1) float32 density >= 0.

    Raises:
        ValueError: For a bad sigma or exponent, or an image that is not 4-D.
    """
    sigma, exponent = _check(sigma, exponent)
    image = tf.convert_to_tensor(image)
    if image.shape.rank != 4:
        raise ValueError(
            f"image must have shape (batch, height, width, channels), got shape "
            f"{image.shape}"
        )
    f = tf.transpose(tf.stop_gradient(tf.cast(image, tf.float32)), (0, 3, 1, 2))
    f = f - tf.reduce_mean(f, axis=(2, 3), keepdims=True)
    smooth, second = _kernels(sigma)
    log = _separable(f, second, smooth) + _separable(f, smooth, second)
    # keepdims and reshape rather than [..., None]: LiteRT has no new-axis
    # slices (`wgimask.serve.lite` converts this layer).
    magnitude = tf.transpose(
        tf.reduce_sum(tf.abs(log), axis=1, keepdims=True), (0, 2, 3, 1)
    )  # (B, H, W, 1)
    value_range = tf.reduce_max(f, axis=(1, 2, 3)) - tf.reduce_min(f, axis=(1, 2, 3))
    flat = tf.reduce_max(magnitude, axis=(1, 2, 3)) <= _FLAT * tf.maximum(
        value_range, 1.0
    )
    magnitude = tf.where(tf.reshape(flat, (-1, 1, 1, 1)), 0.0, magnitude)
    return magnitude**exponent


def _check(sigma, exponent) -> tuple[float, float]:
    if not (isinstance(sigma, (int, float)) and np.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma!r}")
    if not (
        isinstance(exponent, (int, float)) and np.isfinite(exponent) and exponent > 0
    ):
        raise ValueError(f"exponent must be a finite number > 0, got {exponent!r}")
    return float(sigma), float(exponent)


@keras.saving.register_keras_serializable(package=PACKAGE)
class AnalyticDensity(keras.layers.Layer):
    """Keras layer: image (B, H, W, C) -> `analytic_importance` (B, H, W, 1).

    No weights and no gradient to the image.

    Args:
        sigma: Gaussian standard deviation in pixels.
        exponent: Power of the Laplacian magnitude.
        **kwargs: Base layer arguments.

    Raises:
        ValueError: For a bad sigma or exponent.
    """

    def __init__(
        self, sigma: float = 1.0, exponent: float = DEFAULT_EXPONENT, **kwargs
    ):
        super().__init__(**kwargs)
        self.sigma, self.exponent = _check(sigma, exponent)

    def call(self, inputs):
        return tf.cast(
            analytic_importance(inputs, self.sigma, self.exponent), self.compute_dtype
        )

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 1)

    def get_config(self):
        return {**super().get_config(), "sigma": self.sigma, "exponent": self.exponent}
