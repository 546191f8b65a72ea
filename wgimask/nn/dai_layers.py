"""The Keras layers of Dai et al.'s NetE and NetM, registered for saving.

The building blocks of `wgimask.nn.dai_networks` (the networks) and their
helpers: NetE's input `SignedMaskedImage`, encoder and decoder stages
`DownBlock` and `UpBlock`, its channel-wise fully connected layer
`ChannelwiseDense`; NetM's `ResidualBlock`, convolutions (`netm_conv`),
instance norm (`instance_norm`) and last layer `MeanShift` (`mean_shift`);
the argument checks the networks share. Every layer is registered under the
package ``"wgimask"``, so saved ``.keras`` files load by that name. Where each
piece comes from in Dai's code and how it deviates: `wgimask.nn.dai`.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

PACKAGE = "wgimask"

#: NetM's channels (``model.py`` lines 137, 155).
NETM_FILTERS = 64
#: Clip-and-shift passes after NetM's first mean shift (line 193).
MEAN_SHIFT_ITERATIONS = 25
#: LeakyReLU slope of both networks.
NEGATIVE_SLOPE = 0.2
#: PyTorch's BatchNorm2d defaults as Keras arguments (momentum 0.1 -> 0.9).
BATCH_NORM = {"momentum": 0.9, "epsilon": 1e-5}
_IN_EPSILON = 1e-5  # PyTorch's InstanceNorm2d
_MEAN_FLOOR = 1e-12


# --------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------


def positive_int(name: str, value) -> int:
    """`value` as an int; ValueError naming `name` unless an integer >= 1."""
    if not is_int(value) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer, received {value!r}.")
    return int(value)


def non_negative_int(name: str, value) -> int:
    """`value` as an int; ValueError naming `name` unless an integer >= 0."""
    if not is_int(value) or value < 0:
        raise ValueError(f"`{name}` must be an integer >= 0, received {value!r}.")
    return int(value)


def check_density(density) -> float:
    """The density D as a float; ValueError unless a number in (0, 1)."""
    if isinstance(density, bool) or not (
        isinstance(density, (int, float, np.floating)) and 0.0 < density < 1.0
    ):
        raise ValueError(f"`density` must be a number in (0, 1), received {density!r}.")
    return float(density)


def is_int(value) -> bool:
    """Whether `value` is a Python or numpy integer (not a bool)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _leaky_relu(x, slope=NEGATIVE_SLOPE):
    # max(x, s x), equal to LeakyReLU for 0 <= s <= 1: TensorFlow's oneDNN
    # rewrite of Conv2D + LeakyRelu fails on gradient graphs (see blocks.py).
    return ops.maximum(x, slope * x)


# --------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package=PACKAGE)
class SignedMaskedImage(keras.layers.Layer):
    """``[image, mask] -> mask * (2 image - 1)``: Dai's NetE input.

    Dai normalises images to [-1, 1] and then zeroes the unknown pixels
    (``train_NetE.py`` lines 53, 107-114), or multiplies by NetM's continuous
    map (``model.py`` line 212). ``image`` in [0, 1] may be the full image or
    C f with a binary C (the same result); ``mask`` has one channel,
    broadcast over the colours.
    """

    def call(self, inputs):
        image, mask = inputs
        return mask * (2.0 * image - 1.0)

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@keras.saving.register_keras_serializable(package=PACKAGE)
class DownBlock(keras.layers.Layer):
    """NetE encoder stage: 4x4 stride-2 convolution (no bias), batch norm,
    LeakyReLU 0.2 (``model.py`` lines 21-35, 67-70).

    Args:
        filters: Output channels.
        **kwargs: Base layer arguments (``name``, ``dtype``).

    Raises:
        ValueError: If `filters` is not a positive integer.
    """

    def __init__(self, filters: int, **kwargs):
        super().__init__(**kwargs)
        self.filters = positive_int("filters", filters)
        self.conv = keras.layers.Conv2D(
            filters,
            4,
            strides=2,
            padding="same",
            use_bias=False,
            kernel_initializer=keras.initializers.RandomNormal(0.0, 0.02),
            name="conv",
            dtype=self.dtype_policy,
        )
        self.norm = keras.layers.BatchNormalization(
            gamma_initializer=keras.initializers.RandomNormal(1.0, 0.02),
            name="norm",
            dtype=self.dtype_policy,
            **BATCH_NORM,
        )

    def build(self, input_shape):
        self.conv.build(input_shape)
        self.norm.build(self.conv.compute_output_shape(input_shape))

    def call(self, inputs, training=None):
        return _leaky_relu(self.norm(self.conv(inputs), training=training))

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


@keras.saving.register_keras_serializable(package=PACKAGE)
class UpBlock(keras.layers.Layer):
    """NetE decoder stage: 4x4 stride-2 transposed convolution (no bias), then
    batch norm and ReLU (``model.py`` lines 47-58, 79-81), or, with
    ``last=True``, tanh alone (lines 59-60, 82).

    Args:
        filters: Output channels.
        last: The output stage (no batch norm, tanh).
        **kwargs: Base layer arguments.

    Raises:
        ValueError: If `filters` is not a positive integer.
    """

    def __init__(self, filters: int, last: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.filters = positive_int("filters", filters)
        self.last = bool(last)
        self.tconv = keras.layers.Conv2DTranspose(
            filters,
            4,
            strides=2,
            padding="same",
            use_bias=False,
            kernel_initializer=keras.initializers.RandomNormal(0.0, 0.02),
            name="tconv",
            dtype=self.dtype_policy,
        )
        self.norm = (
            None
            if self.last
            else keras.layers.BatchNormalization(
                gamma_initializer=keras.initializers.RandomNormal(1.0, 0.02),
                name="norm",
                dtype=self.dtype_policy,
                **BATCH_NORM,
            )
        )

    def build(self, input_shape):
        self.tconv.build(input_shape)
        if self.norm is not None:
            self.norm.build(self.tconv.compute_output_shape(input_shape))

    def call(self, inputs, training=None):
        x = self.tconv(inputs)
        if self.last:
            return ops.tanh(x)
        return ops.relu(self.norm(x, training=training))

    def compute_output_shape(self, input_shape):
        return self.tconv.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "last": self.last}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ChannelwiseDense(keras.layers.Layer):
    """Channel-wise fully connected layer: one dense map per channel.

    For every channel c its h x w map, flattened row by row, becomes
    x_c W_c + b_c with its own (h w, h w) kernel and bias; channels do not
    mix. Dai's 512 ``nn.Linear(16, 16)`` (``model.py`` lines 38-44, 72-77),
    with ``kernel[c] = W_c.T``. Initialised as PyTorch's ``Linear``:
    U(-1/sqrt(h w), 1/sqrt(h w)) for kernel and bias.

    Args:
        **kwargs: Base layer arguments.

    Raises:
        ValueError: At build, for an input without fixed height, width and
            channels.
    """

    def build(self, input_shape):
        height, width, channels = input_shape[1:]
        if None in (height, width, channels):
            raise ValueError(
                "ChannelwiseDense needs a fixed height, width and channel count, "
                f"received input shape {tuple(input_shape)}."
            )
        size = height * width
        bound = 1.0 / float(np.sqrt(size))
        init = keras.initializers.RandomUniform(-bound, bound)
        self.kernel = self.add_weight(
            name="kernel", shape=(channels, size, size), initializer=init
        )
        self.bias = self.add_weight(
            name="bias", shape=(channels, size), initializer=init
        )

    def call(self, inputs):
        _, height, width, channels = inputs.shape
        x = ops.reshape(
            ops.transpose(inputs, (0, 3, 1, 2)), (-1, channels, height * width)
        )
        x = ops.einsum("bci,cio->bco", x, self.kernel) + self.bias
        return ops.transpose(
            ops.reshape(x, (-1, channels, height, width)), (0, 2, 3, 1)
        )

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package=PACKAGE)
class ResidualBlock(keras.layers.Layer):
    """NetM's ``_Residual_Block`` (``model.py`` lines 133-148).

    x + IN(conv(LeakyReLU(IN(conv(x))))), 3x3 convolutions without bias,
    instance norm with per-channel scale and offset (``GroupNormalization``
    with one group per channel, epsilon 1e-5, statistics of each image in
    training and inference alike, as PyTorch's ``InstanceNorm2d``).

    Args:
        filters: Channels of both convolutions (and of the input).
        **kwargs: Base layer arguments.

    Raises:
        ValueError: If `filters` is not a positive integer.
    """

    def __init__(self, filters: int = NETM_FILTERS, **kwargs):
        super().__init__(**kwargs)
        self.filters = positive_int("filters", filters)
        self.conv_1 = netm_conv(filters, 3, "conv_1", self.dtype_policy)
        self.norm_1 = instance_norm("norm_1", self.dtype_policy)
        self.conv_2 = netm_conv(filters, 3, "conv_2", self.dtype_policy)
        self.norm_2 = instance_norm("norm_2", self.dtype_policy)

    def build(self, input_shape):
        if input_shape[-1] != self.filters:
            raise ValueError(
                f"ResidualBlock({self.filters}) needs {self.filters} input "
                f"channels, received input shape {tuple(input_shape)}."
            )
        shape = (*input_shape[:-1], self.filters)
        for layer in (self.conv_1, self.norm_1, self.conv_2, self.norm_2):
            layer.build(shape)

    def call(self, inputs):
        x = _leaky_relu(self.norm_1(self.conv_1(inputs)))
        return inputs + self.norm_2(self.conv_2(x))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


def netm_conv(filters, kernel_size, name, dtype):
    """NetM's convolution: 'same' padding, no bias, Dai's initialisation."""
    # model.py lines 169-174: N(0, 2 / (k * k * out_channels)), no bias.
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        padding="same",
        use_bias=False,
        kernel_initializer=keras.initializers.VarianceScaling(
            2.0, "fan_out", "untruncated_normal"
        ),
        name=name,
        dtype=dtype,
    )


def instance_norm(name, dtype):
    """PyTorch's ``InstanceNorm2d(affine=True)`` as a Keras layer."""
    return keras.layers.GroupNormalization(
        groups=-1, epsilon=_IN_EPSILON, name=name, dtype=dtype
    )


def mean_shift(x, density, iterations: int = MEAN_SHIFT_ITERATIONS):
    """Dai's mean shift: x / mean(x) D, then `iterations` x (clip to [0, 1], shift).

    The mean is taken per image and channel over height and width
    (``Mean_Shift.forward``, ``model.py`` lines 121-130; loop lines 192-196).

    Args:
        x: (B, H, W, C) non-negative tensor.
        density: Target mean D in (0, 1).
        iterations: Clip-and-shift passes after the first shift.

    Returns:
        Tensor like `x` with mean D per image and channel.
    """

    def shift(v):
        mean = ops.mean(v, axis=(1, 2), keepdims=True)
        return v / ops.maximum(mean, _MEAN_FLOOR) * density

    x = shift(x)
    for _ in range(iterations):
        x = shift(ops.clip(x, 0.0, 1.0))
    return x


@keras.saving.register_keras_serializable(package=PACKAGE)
class MeanShift(keras.layers.Layer):
    """NetM's last layer: `mean_shift` to the sampling density D.

    Args:
        density: Target mean D in (0, 1) (Dai's ``sample_rate``).
        iterations: Clip-and-shift passes after the first shift (Dai: 25).
        **kwargs: Base layer arguments.

    Raises:
        ValueError: For a density outside (0, 1) or a negative iteration count.
    """

    def __init__(
        self, density: float, iterations: int = MEAN_SHIFT_ITERATIONS, **kwargs
    ):
        super().__init__(**kwargs)
        self.density = check_density(density)
        self.iterations = non_negative_int("iterations", iterations)

    def call(self, inputs):
        return mean_shift(inputs, self.density, self.iterations)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "density": self.density,
            "iterations": self.iterations,
        }
