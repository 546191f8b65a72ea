"""Building blocks of the WGAIN networks and the mask binarisation.

The generator blocks follow the inpainting WGAN of Vasata et al. (2021) on which
the paper builds (Sec. 2, Fig. 1(b)-(d)): three parallel 5x5 convolutions with
dilation rates 2, 5 and 1 whose ELU outputs are concatenated (CBlock), the same
with transposed convolutions (TCBlock), and the critic's funnel block (FBlock).
The binarisation operators are those of the paper's Table 1, plus an ordered
dither with an exact point count (`wgimask.dither`).
"""

from __future__ import annotations

import contextlib
import math
import threading

import keras
import tensorflow as tf
from keras import ops

from wgimask import dither

PACKAGE = "wgimask"

# Order of the three parallel branches and their share of the output channels,
# as in the reference: [dilation 2, dilation 5, dilation 1] with split 1:1:2.
BRANCH_DILATIONS = (2, 5, 1)
BRANCH_SHARES = (1, 1, 2)

#: The paper's binarisation operators (Table 1).
PAPER_BINARISATION_OPERATORS = (
    "hard_rounding",
    "additive_noise",
    "stochastic_rounding",
)
#: All operators: the paper's and an ordered dither with an exact point count.
BINARISATION_OPERATORS = (*PAPER_BINARISATION_OPERATORS, "ordered_dither")

# Largest number of values of the shifted-gradient matrix that the kernel
# gradient builds at once (64 MiB in float32); larger batches are split.
_KERNEL_GRAD_CHUNK_VALUES = 2**24

_state = threading.local()


@contextlib.contextmanager
def reference_ops():
    """Within this context, layers trace with the stock TensorFlow ops.

    The blocks normally compute their convolutions with `fused_convolution`.
    Inside this context they fall back to one `tf.nn.convolution` per branch
    with TensorFlow's own gradients, the plain implementation that the fast path
    must match. It is meant for tests and benchmarks; it affects models traced
    (or called eagerly) inside it.

    Yields:
        None.
    """
    previous = getattr(_state, "reference", False)
    _state.reference = True
    try:
        yield
    finally:
        _state.reference = previous


def _use_reference_ops() -> bool:
    return getattr(_state, "reference", False)


def _onednn_enabled() -> bool:
    """Whether TensorFlow runs its oneDNN kernels (TF_ENABLE_ONEDNN_OPTS)."""
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:  # private module; without it assume the default kernels
        return False
    return bool(_pywrap_util_port.IsMklEnabled())


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


def _adjoint_kernel(kernel):
    """Kernel of the adjoint of a stride-1 'same' convolution (flipped, in/out)."""
    return tf.transpose(tf.reverse(kernel, [0, 1]), (0, 1, 3, 2))


def _same_conv(x, kernel, dilation: int):
    # tf.nn.conv2d runs dilation natively (oneDNN on CPU) where
    # tf.nn.convolution would wrap the convolution in space_to_batch.
    return tf.nn.conv2d(x, kernel, strides=1, padding="SAME", dilations=dilation)


def _branch_outputs(x, kernels, biases, dilations, elu: bool, strips: bool):
    """act(conv(x, K_i) + b_i) for each branch, optionally on two image strips.

    With ``strips`` (for a batch of one image) the image is cut into a top and
    a bottom half, each with the rows of the other half that its kernel
    reaches, and both halves are convolved as a batch of two with no padding
    across the cut: the same sums, but oneDNN runs its fast (brgemm) kernel
    only for batches of at least two and falls back to a several times slower
    im2col kernel for one image.
    """
    outputs = []
    if strips:
        height = tf.shape(x)[1]
        half = height // 2
    for i, (kernel, d) in enumerate(zip(kernels, dilations, strict=True)):
        if strips:
            reach = d * (kernel.shape[0] // 2)
            padded = tf.pad(x, [[0, 0], [reach, reach], [0, 0], [0, 0]])
            pair = tf.concat(
                [padded[:, : half + 2 * reach], padded[:, half : height + 2 * reach]],
                axis=0,
            )
            y = tf.nn.conv2d(
                pair,
                kernel,
                strides=1,
                padding=[[0, 0], [0, 0], [reach, reach], [0, 0]],
                dilations=d,
            )
        else:
            y = _same_conv(x, kernel, d)
        if biases:
            y = tf.nn.bias_add(y, biases[i])
        if elu:
            y = tf.nn.elu(y)
        if strips:
            # (2, H/2, W, C) -> (1, H, W, C): the halves are in row order.
            y = tf.reshape(y, tf.concat([[1, height], tf.shape(y)[2:]], axis=0))
        outputs.append(y)
    return outputs[0] if len(outputs) == 1 else tf.concat(outputs, axis=-1)


def _forward(x, kernels, biases, dilations, elu: bool):
    """`_branch_outputs`, on strips when the batch holds one image."""
    batch, height = x.shape[0], x.shape[1]
    if (batch is not None and batch != 1) or (height is not None and height % 2):
        return _branch_outputs(x, kernels, biases, dilations, elu, strips=False)
    if batch == 1 and height is not None:
        return _branch_outputs(x, kernels, biases, dilations, elu, strips=True)
    shape = tf.shape(x)
    return tf.cond(
        tf.logical_and(tf.equal(shape[0], 1), tf.equal(shape[1] % 2, 0)),
        lambda: _branch_outputs(x, kernels, biases, dilations, elu, strips=True),
        lambda: _branch_outputs(x, kernels, biases, dilations, elu, strips=False),
    )


def _space_to_batch_kernel_gradient(x, g, kernel_size: int, dilation: int):
    """Kernel gradient of a stride-1 'same' dilated convolution, (k, k, C_in, C).

    A convolution with dilation d is an undilated one on each of the d x d
    phases of the (padded) image; `tf.space_to_batch_nd` stacks the phases in
    the batch, so TensorFlow's undilated filter-gradient op (oneDNN's primitive
    when oneDNN is on) sums over all of them at once.
    """
    d, reach = dilation, dilation * (kernel_size // 2)
    shape = tf.shape(x)
    # Pad the sides to multiples of d (the padded input is 2 * reach larger).
    extra_h = (-shape[1]) % d
    extra_w = (-shape[2]) % d
    x = tf.pad(x, [[0, 0], [reach, reach + extra_h], [reach, reach + extra_w], [0, 0]])
    g = tf.pad(g, [[0, 0], [0, extra_h], [0, extra_w], [0, 0]])
    return tf.raw_ops.Conv2DBackpropFilter(
        input=tf.space_to_batch_nd(x, [d, d], [[0, 0], [0, 0]]),
        filter_sizes=[kernel_size, kernel_size, x.shape[-1], g.shape[-1]],
        out_backprop=tf.space_to_batch_nd(g, [d, d], [[0, 0], [0, 0]]),
        strides=[1, 1, 1, 1],
        padding="VALID",
    )


def _kernel_gradients(x, grads, kernel_size: int, dilations):
    """Kernel gradients of stride-1 'same' convolutions of `x`, one per branch.

    With oneDNN on, undilated branches use TensorFlow's filter-gradient op, and
    dilated ones the same op after a space-to-batch reshuffle
    (`_space_to_batch_kernel_gradient`) where that is faster. Otherwise (and
    without oneDNN) a branch's gradient is one matmul: for y = conv(x, K) with
    dilation d, dK[a, b] = sum_r x[r] g[r + d (h - a, h - b)] with
    h = kernel_size // 2 and g zero outside the image, so laying the k*k
    shifted copies of the output gradient g side by side, one matmul with x
    computes every tap (TensorFlow's CPU filter gradient rejects dilation and is
    slow for few output channels). There, large batches are split so that the
    copies stay below `_KERNEL_GRAD_CHUNK_VALUES` values.

    Args:
        x: Convolution input (N, H, W, C_in).
        grads: Output gradients (N, H, W, C_i) of each branch, same N, H, W.
        kernel_size: Odd spatial kernel size k.
        dilations: Dilation of each branch.

    Returns:
        The kernel gradient of each branch, (k, k, C_in, C_i).
    """
    k, half = kernel_size, kernel_size // 2
    in_channels = x.shape[-1]

    def branch_gradient(g, d):
        side = min(x.shape[1] or 0, x.shape[2] or 0)
        if d > 1 and _onednn_enabled() and (d == 2 or side >= 32 or g.shape[-1] <= 8):
            # One reshuffle of x and g (space to batch) and an undilated filter
            # gradient beat the k*k shifted copies below, by 1.5-5x on large
            # images and few channels (benchmarks/kernel_gradients.py); at
            # d = 5 on small feature maps the copies win.
            return _space_to_batch_kernel_gradient(x, g, kernel_size, d)
        if d == 1 and _onednn_enabled():
            # oneDNN's own kernel-gradient primitive beats the copies below
            # for undilated kernels.
            return tf.raw_ops.Conv2DBackpropFilter(
                input=x,
                filter_sizes=[k, k, in_channels, g.shape[-1]],
                out_backprop=g,
                strides=[1, 1, 1, 1],
                padding="SAME",
            )
        return copies_gradient(g, d)

    def copies_matmul(x_part, g, d):
        pad = d * half
        padded = tf.pad(g, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        # Static sides where known keep the graph small (constant slices;
        # tf.slice builds far fewer ops than [] indexing).
        height = g.shape[1] if g.shape[1] is not None else tf.shape(g)[1]
        width = g.shape[2] if g.shape[2] is not None else tf.shape(g)[2]
        # Shifted copies, first along the width (k slices), then along the
        # height (k slices of whole rows, cheap copies): columns[r, (a', b', c)]
        # = padded[r + d (a', b')] = g[r + d (a' - h, b' - h)], the tap
        # a = k - 1 - a' of the formula above.
        rows = tf.concat(
            [tf.slice(padded, [0, 0, d * b, 0], [-1, -1, width, -1]) for b in range(k)],
            axis=-1,
        )
        columns = tf.concat(
            [tf.slice(rows, [0, d * a, 0, 0], [-1, height, -1, -1]) for a in range(k)],
            axis=-1,
        )
        return tf.matmul(
            tf.reshape(x_part, (-1, in_channels)),
            tf.reshape(columns, (-1, k * k * g.shape[-1])),
            transpose_a=True,
        )

    def copies_gradient(g, d):
        batch = x.shape[0]
        largest = (x.shape[1] or 0) * (x.shape[2] or 0) * k * k * g.shape[-1]
        chunks = 1
        if batch is not None and largest:
            chunks = min(batch, math.ceil(batch * largest / _KERNEL_GRAD_CHUNK_VALUES))
        if chunks > 1:
            size = math.ceil(batch / chunks)
            sizes = [size] * (batch // size) + ([batch % size] if batch % size else [])
            parts = zip(tf.split(x, sizes), tf.split(g, sizes), strict=True)
            flat = tf.add_n([copies_matmul(xp, gp, d) for xp, gp in parts])
        else:
            flat = copies_matmul(x, g, d)
        # flat[c_in, (a', b', c)] -> (k, k, C_in, C), flipped back to tap a.
        kernel = tf.transpose(tf.reshape(flat, (in_channels, k, k, -1)), (1, 2, 0, 3))
        return tf.reverse(kernel, [0, 1])

    return [branch_gradient(g, d) for g, d in zip(grads, dilations, strict=True)]


def fused_convolution(inputs, kernels, biases, dilations, elu: bool = False):
    """Parallel stride-1 'same' convolutions of one input, concatenated.

    Computes ``concat_i(act(conv(inputs, kernels[i], dilations[i]) + biases[i]))``
    with ``act`` the ELU or the identity, the same numbers as one
    `tf.nn.convolution` per branch up to floating-point rounding, but faster:

    * forward: `tf.nn.conv2d` with native dilation (on the CPU, oneDNN's fused
      convolution + bias + ELU kernel) instead of space_to_batch around a plain
      convolution;
    * backward (custom gradient): the input gradient as forward convolutions of
      the output gradient with the adjoint kernels, the kernel gradients by
      oneDNN's filter-gradient op or one matmul per branch
      (`_kernel_gradients`): TensorFlow's own CPU gradients of dilated
      convolutions reject dilation or wrap it in space-to-batch copies. On a
      GPU the stock gradient kernels are used.

    Args:
        inputs: (N, H, W, C_in) tensor.
        kernels: Conv2D-layout kernels (k, k, C_in, C_i), one per branch, same
            odd k.
        biases: One bias (C_i,) per branch, or None for none.
        dilations: Dilation rate of each branch.
        elu: Apply the ELU to the output.

    Returns:
        (N, H, W, sum C_i) tensor.

    Raises:
        ValueError: If the arguments do not match up.
    """
    count = len(kernels)
    if not count or len(dilations) != count:
        raise ValueError(
            f"Need one dilation per kernel, received {count} kernel(s) and "
            f"{len(dilations)} dilation(s)."
        )
    if biases is not None and len(biases) != count:
        raise ValueError(f"Need one bias per kernel, received {len(biases)}.")
    kernel_size = kernels[0].shape[0]
    if any(kk.shape[:2] != (kernel_size, kernel_size) for kk in kernels) or not (
        kernel_size % 2
    ):
        raise ValueError(
            "Kernels must share one odd square size, received shapes "
            f"{[tuple(kk.shape) for kk in kernels]}."
        )
    dtype = inputs.dtype
    kernels = [tf.cast(kk, dtype) for kk in kernels]
    biases = [tf.cast(b, dtype) for b in biases] if biases is not None else []
    has_bias = bool(biases)
    channels = [kk.shape[-1] for kk in kernels]

    if tf.config.list_logical_devices("GPU"):
        # cuDNN has dilated gradient kernels: let TensorFlow differentiate.
        return _forward(inputs, kernels, biases, dilations, elu)

    @tf.custom_gradient
    def op(x, *params):
        ks, bs = list(params[:count]), list(params[count:])
        y = _forward(x, ks, bs, dilations, elu)

        def grad(dy):
            g = tf.raw_ops.EluGrad(gradients=dy, outputs=y) if elu else dy
            gs = [g] if count == 1 else tf.split(g, channels, axis=-1)
            dx = tf.add_n(
                [
                    _same_conv(gi, _adjoint_kernel(kernel), d)
                    for gi, kernel, d in zip(gs, ks, dilations, strict=True)
                ]
            )
            dks = _kernel_gradients(x, gs, kernel_size, dilations)
            dbs = [tf.reduce_sum(gi, axis=(0, 1, 2)) for gi in gs] if has_bias else []
            return (dx, *dks, *dbs)

        return y, grad

    return op(inputs, *kernels, *biases)


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
        if not _use_reference_ops():
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
        if _use_reference_ops():
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
        (`wgimask.dither.dither_mask`); straight-through to the rescaled
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
    (`wgimask.networks.InpaintingGenerator` with ``prefill``): with a zero
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
    to mean D with values in [0, 1] (`wgimask.dither.normalise_density`).
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
