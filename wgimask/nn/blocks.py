"""Building blocks of the WGAIN networks: the convolution layers and blocks.

The generator blocks follow the inpainting WGAN of Vasata et al. (2021) on which
the paper builds (Sec. 2, Fig. 1(b)-(d)): three parallel 5x5 convolutions with
dilation rates 2, 5 and 1 whose ELU outputs are concatenated (CBlock), the same
with transposed convolutions (TCBlock), and the critic's funnel block (FBlock).
Also here: the Keras 2 hard sigmoid of the reference and the critic's
Frobenius-norm weight constraint. The blocks compute their branches with
`wgimask.nn.fused_conv`; the binarisation operators (the paper's Table 1) and the
other mask-side layers are in `wgimask.nn.mask_layers`.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from wgimask.nn.fused_conv import fused_convolution, use_reference_ops

PACKAGE = "wgimask"

# Order of the three parallel branches and their share of the output channels,
# as in the reference: [dilation 2, dilation 5, dilation 1] with split 1:1:2.
BRANCH_DILATIONS = (2, 5, 1)
BRANCH_SHARES = (1, 1, 2)


@keras.saving.register_keras_serializable(package=PACKAGE)
def hard_sigmoid(x):
    """Keras 2 hard sigmoid, clip(0.2 x + 0.5, 0, 1).

    Keras 3 redefined `keras.activations.hard_sigmoid` as relu6(x + 3) / 6, a
    different slope; the reference networks were trained with this form.

    Args:
        x: Input tensor.

    Returns:
        Tensor of the same shape with values in [0, 1].
    """
    return ops.clip(0.2 * x + 0.5, 0.0, 1.0)


@keras.saving.register_keras_serializable(package=PACKAGE)
class FrobeniusNormConstraint(keras.constraints.Constraint):
    """Rescales a whole kernel so that its Frobenius norm is at most `max_norm`.

    This is how the reference implementation realises "weights normalised to 1 in
    the 2-norm" for the critic: unlike `keras.constraints.MaxNorm`, which
    constrains each output unit separately, the entire tensor is clipped by norm.
    Keras optimizers apply it after every update.

    Args:
        max_norm: Largest allowed Frobenius norm, > 0.

    Raises:
        ValueError: If `max_norm` is not positive.
    """

    def __init__(self, max_norm: float = 1.0):
        if not max_norm > 0:
            raise ValueError(f"`max_norm` must be positive, received {max_norm}.")
        self.max_norm = float(max_norm)

    def __call__(self, w):
        norm = ops.sqrt(ops.sum(ops.square(w)))
        # Only shrink: kernels already inside the ball are left untouched.
        return w * ops.minimum(1.0, self.max_norm / ops.maximum(norm, 1e-12))

    def get_config(self):
        return {"max_norm": self.max_norm}


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer, received {value!r}.")
    return value


@keras.saving.register_keras_serializable(package=PACKAGE)
class DilatedConv2DTranspose(keras.layers.Layer):
    """Stride-1 transposed convolution with dilation, 'same' padding.

    TensorFlow's CPU kernel for `Conv2DTranspose` rejects dilation rates above 1.
    At stride 1 a transposed convolution equals an ordinary convolution with the
    kernel flipped in space and its input/output axes swapped, so this layer keeps
    its kernel in the `Conv2DTranspose` layout `(k, k, filters, in_channels)` (so
    weights of a Keras `Conv2DTranspose` load unchanged) and computes the
    equivalent dilated `Conv2D`, which every device supports.

    Args:
        filters: Number of output channels.
        kernel_size: Odd spatial kernel size.
        dilation_rate: Dilation of the kernel.
        activation: Activation applied to the output.
        use_bias: Whether to add a bias.
        kernel_initializer: Initializer of the kernel.
        **kwargs: Base layer arguments (`name`, `dtype`, ...).

    Raises:
        ValueError: If an argument is not a positive integer or the kernel size is
            even ('same' padding of a transposed convolution is then asymmetric).
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int = 5,
        dilation_rate: int = 1,
        activation=None,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = _check_positive_int("filters", filters)
        self.kernel_size = _check_positive_int("kernel_size", kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(f"`kernel_size` must be odd, received {kernel_size}.")
        self.dilation_rate = _check_positive_int("dilation_rate", dilation_rate)
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        in_channels = input_shape[-1]
        k = self.kernel_size
        self.kernel = self.add_weight(
            name="kernel",
            shape=(k, k, self.filters, in_channels),
            initializer=self.kernel_initializer,
        )
        self.bias = (
            self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")
            if self.use_bias
            else None
        )

    def conv_kernel(self):
        """The equivalent `Conv2D` kernel, shape (k, k, in_channels, filters)."""
        return ops.transpose(ops.flip(ops.flip(self.kernel, 0), 1), (0, 1, 3, 2))

    def call(self, inputs):
        if not use_reference_ops():
            elu = self.activation is keras.activations.elu
            x = fused_convolution(
                inputs,
                [self.conv_kernel()],
                None if self.bias is None else [self.bias],
                [self.dilation_rate],
                elu=elu,
            )
            return x if elu else self.activation(x)
        # tf.nn.convolution, not tf.nn.conv2d: the CPU kernel of the latter's
        # input gradient (Conv2DBackpropInput) rejects dilation too.
        x = tf.nn.convolution(
            inputs,
            ops.cast(self.conv_kernel(), inputs.dtype),
            padding="SAME",
            dilations=self.dilation_rate,
        )
        if self.bias is not None:
            x = tf.nn.bias_add(x, ops.cast(self.bias, x.dtype))
        return self.activation(x)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "dilation_rate": self.dilation_rate,
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class ParallelDilatedBlock(keras.layers.Layer):
    """CBlock / TCBlock: three parallel dilated 5x5 convolutions, concatenated.

    Branches in the reference's order [dilation 2, dilation 5, dilation 1] get
    `filters` split 1:1:2; each has an ELU and 'same' padding. The pooling or
    upsampling that follows a block in the hourglass is left to the network so
    the skip connections can tap the block output.

    Args:
        filters: Total output channels, divisible by 4.
        transposed: False for the CBlock (Conv2D), True for the TCBlock
            (transposed convolutions, see `DilatedConv2DTranspose`).
        kernel_size: Spatial kernel size of every branch.
        **kwargs: Base layer arguments.

    Raises:
        ValueError: If `filters` is not a positive multiple of 4.
    """

    def __init__(
        self, filters: int, transposed: bool = False, kernel_size: int = 5, **kwargs
    ):
        super().__init__(**kwargs)
        _check_positive_int("filters", filters)
        if filters % sum(BRANCH_SHARES):
            raise ValueError(
                f"`filters` must be a multiple of {sum(BRANCH_SHARES)} for the "
                f"1:1:2 branch split, received {filters}."
            )
        self.filters = filters
        self.transposed = bool(transposed)
        self.kernel_size = _check_positive_int("kernel_size", kernel_size)
        unit = filters // sum(BRANCH_SHARES)
        self.branches = []
        for dilation, share in zip(BRANCH_DILATIONS, BRANCH_SHARES, strict=True):
            common = dict(
                filters=unit * share,
                kernel_size=kernel_size,
                dilation_rate=dilation,
                activation="elu",
                name=f"{'tconv' if transposed else 'conv'}_d{dilation}",
            )
            layer = (
                DilatedConv2DTranspose(**common, dtype=self.dtype_policy)
                if transposed
                else keras.layers.Conv2D(
                    **common, padding="same", dtype=self.dtype_policy
                )
            )
            self.branches.append(layer)

    def build(self, input_shape):
        for branch in self.branches:
            branch.build(input_shape)

    def call(self, inputs):
        if use_reference_ops():
            return ops.concatenate(
                [branch(inputs) for branch in self.branches], axis=-1
            )
        kernels = [
            branch.conv_kernel() if self.transposed else branch.kernel
            for branch in self.branches
        ]
        return fused_convolution(
            inputs,
            kernels,
            [branch.bias for branch in self.branches],
            BRANCH_DILATIONS,
            elu=True,
        )

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "transposed": self.transposed,
            "kernel_size": self.kernel_size,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class FunnelBlock(keras.layers.Layer):
    """FBlock of the critic: 5x5 convolution with stride 2, then LeakyReLU.

    The kernel is kept at Frobenius norm <= 1 by `FrobeniusNormConstraint` (the
    reference's Lipschitz device; no gradient penalty). The bias is free.

    Args:
        filters: Output channels.
        padding: 'valid' (the reference) or 'same'.
        negative_slope: LeakyReLU slope in [0, 1]; 0.3 is the Keras default
            the reference used.
        **kwargs: Base layer arguments.

    Raises:
        ValueError: For a non-positive `filters`, an unknown `padding` or a
            slope outside [0, 1].
    """

    def __init__(
        self,
        filters: int,
        padding: str = "valid",
        negative_slope: float = 0.3,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = _check_positive_int("filters", filters)
        if padding not in ("valid", "same"):
            raise ValueError(
                f"`padding` must be 'valid' or 'same', received {padding!r}."
            )
        self.padding = padding
        if not 0.0 <= negative_slope <= 1.0:
            raise ValueError(
                f"`negative_slope` must be in [0, 1], received {negative_slope!r}."
            )
        self.negative_slope = float(negative_slope)
        self.conv = keras.layers.Conv2D(
            filters,
            5,
            strides=2,
            padding=padding,
            kernel_constraint=FrobeniusNormConstraint(1.0),
            name="conv",
            dtype=self.dtype_policy,
        )

    def build(self, input_shape):
        self.conv.build(input_shape)

    def call(self, inputs):
        x = self.conv(inputs)
        # LeakyReLU written as max(x, s x) (equal for 0 <= s <= 1): TensorFlow's
        # oneDNN graph rewrite of Conv2D + BiasAdd + LeakyRelu fails on the
        # training step's gradient graph and logs an error at every trace.
        return ops.maximum(x, self.negative_slope * x)

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "padding": self.padding,
            "negative_slope": self.negative_slope,
        }
