"""Fused parallel dilated convolutions with hand-written gradients.

`fused_convolution` computes the parallel dilated 'same' convolutions of one
input (the branches of a CBlock or TCBlock, `wgimask.nn.blocks`) as one
concatenated output: on the CPU with `tf.nn.conv2d`'s native dilation forward
and a custom gradient (adjoint convolutions for the input, oneDNN's filter
gradient or one matmul per branch for the kernels), since TensorFlow's own CPU
gradients of dilated convolutions reject dilation or wrap it in slow
space-to-batch copies. `reference_ops` switches the blocks back to the stock
TensorFlow ops, the plain path that this one must match (tests, benchmarks).
"""

from __future__ import annotations

import contextlib
import math
import threading

import tensorflow as tf

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
    with _flag_set("reference"):
        yield


def use_reference_ops() -> bool:
    return getattr(_state, "reference", False)


@contextlib.contextmanager
def _flag_set(name: str):
    """Sets the thread's flag `name` within the block, restoring it after."""
    previous = getattr(_state, name, False)
    setattr(_state, name, True)
    try:
        yield
    finally:
        setattr(_state, name, previous)


@contextlib.contextmanager
def plain_forward_ops():
    """Within this context, blocks trace a plain forward pass for conversion.

    One `tf.nn.conv2d` per branch with native dilation and 'SAME' padding, no
    strips, no `tf.cond` and no custom gradient: the graph that the LiteRT
    converter maps onto its own dilated CONV_2D (`wgimask.serve.lite`). The same
    numbers as the fast path up to floating-point rounding; no gradients.

    Yields:
        None.
    """
    with _flag_set("plain"):
        yield


def _onednn_enabled() -> bool:
    """Whether TensorFlow runs its oneDNN kernels (TF_ENABLE_ONEDNN_OPTS)."""
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:  # private module; without it assume the default kernels
        return False
    return bool(_pywrap_util_port.IsMklEnabled())


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
            # images and few channels (benchmarks/speed/kernel_gradients.py); at
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

    if getattr(_state, "plain", False):
        return _branch_outputs(inputs, kernels, biases, dilations, elu, strips=False)
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
