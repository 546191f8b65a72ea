import keras
import numpy as np
import pytest
import tensorflow as tf

from wgimask.nn import dither, fused_conv
from wgimask.nn.blocks import (
    DilatedConv2DTranspose,
    FrobeniusNormConstraint,
    FunnelBlock,
    ParallelDilatedBlock,
    hard_sigmoid,
)
from wgimask.nn.fused_conv import fused_convolution, reference_ops
from wgimask.nn.mask_layers import (
    Binarization,
    InpaintingConstraint,
    round_straight_through,
)


def test_hard_sigmoid_is_the_keras2_form():
    x = np.array([-5.0, -2.5, -1.0, 0.0, 1.0, 2.5, 5.0], np.float32)
    expected = np.clip(0.2 * x + 0.5, 0, 1)
    np.testing.assert_allclose(hard_sigmoid(x), expected, atol=1e-7)
    # Keras 3's own hard_sigmoid differs (slope 1/6): make sure we are not it.
    assert not np.allclose(keras.activations.hard_sigmoid(x), expected)


def test_frobenius_constraint_clips_whole_tensor_only_when_needed():
    constraint = FrobeniusNormConstraint(1.0)
    big = tf.random.normal((5, 5, 4, 8))
    clipped = constraint(big)
    assert abs(float(tf.norm(clipped)) - 1.0) < 1e-5
    # Direction kept: it is a rescaling of the whole tensor.
    np.testing.assert_allclose(
        clipped / tf.norm(clipped), big / tf.norm(big), atol=1e-6
    )
    small = big / (10 * tf.norm(big))
    np.testing.assert_allclose(constraint(small), small)
    with pytest.raises(ValueError, match="received 0"):
        FrobeniusNormConstraint(0)


def _reference_transposed_conv(z, kernel, dilation):
    """A transposed convolution by its definition: the adjoint of Conv2D.

    conv2d_transpose(z, K) is the gradient with respect to x of
    <conv2d(x, K), z>, with K in Conv2DTranspose layout (k, k, out, in).
    """
    x = tf.zeros((*z.shape[:3], kernel.shape[2]))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.nn.convolution(x, kernel, padding="SAME", dilations=dilation)
        inner = tf.reduce_sum(y * z)
    return tape.gradient(inner, x)


@pytest.mark.parametrize("dilation", [1, 2, 5])
def test_dilated_transposed_conv_matches_definition(dilation):
    layer = DilatedConv2DTranspose(3, 5, dilation_rate=dilation, use_bias=False)
    z = tf.random.normal((2, 12, 17, 4))
    out = layer(z)
    reference = _reference_transposed_conv(z, layer.kernel, dilation)
    np.testing.assert_allclose(out, reference, atol=1e-5)


def _numpy_transposed_conv(z, kernel, dilation):
    """Scatter form: each input pixel adds its kernel-weighted copy around it."""
    z, kernel = np.asarray(z), np.asarray(kernel)
    batch, height, width, _ = z.shape
    k = kernel.shape[0]
    half = (k - 1) // 2
    out = np.zeros((batch, height, width, kernel.shape[2]))
    for a in range(k):
        for b in range(k):
            di, dj = dilation * (a - half), dilation * (b - half)
            contrib = z @ kernel[a, b].T  # (batch, h, w, out)
            src_i = slice(max(0, -di), min(height, height - di))
            src_j = slice(max(0, -dj), min(width, width - dj))
            dst_i = slice(max(0, di), min(height, height + di))
            dst_j = slice(max(0, dj), min(width, width + dj))
            out[:, dst_i, dst_j] += contrib[:, src_i, src_j]
    return out


@pytest.mark.parametrize("dilation", [2, 5])
def test_dilated_transposed_conv_matches_scatter_form(dilation):
    layer = DilatedConv2DTranspose(2, 5, dilation_rate=dilation, use_bias=False)
    z = tf.random.normal((1, 11, 14, 3))
    np.testing.assert_allclose(
        layer(z), _numpy_transposed_conv(z, layer.kernel, dilation), atol=1e-5
    )


def test_dilated_transposed_conv_trains_on_cpu():
    layer = DilatedConv2DTranspose(2, 5, dilation_rate=5)
    z = tf.random.normal((1, 8, 8, 3))
    with tf.GradientTape() as tape:
        tape.watch(z)
        loss = tf.reduce_sum(layer(z) ** 2)
    grad_z, grad_k = tape.gradient(loss, [z, layer.kernel])
    assert float(tf.reduce_sum(tf.abs(grad_z))) > 0
    assert float(tf.reduce_sum(tf.abs(grad_k))) > 0


def test_dilated_transposed_conv_uses_conv2d_transpose_weights():
    # Without dilation the CPU kernel of Conv2DTranspose works: same weights,
    # same numbers, so reference Keras weights load unchanged.
    z = tf.random.normal((1, 9, 11, 4))
    ours = DilatedConv2DTranspose(6, 5, activation="elu")
    stock = keras.layers.Conv2DTranspose(6, 5, padding="same", activation="elu")
    ours.build(z.shape)
    stock.build(z.shape)
    ours.set_weights([w + 0.1 for w in stock.get_weights()])
    stock.set_weights([w + 0.1 for w in stock.get_weights()])
    np.testing.assert_allclose(ours(z), stock(z), atol=1e-5)


def test_dilated_transposed_conv_rejects_even_kernels():
    with pytest.raises(ValueError, match="odd"):
        DilatedConv2DTranspose(3, 4)


@pytest.mark.parametrize("transposed", [False, True])
def test_parallel_block_branches(transposed):
    block = ParallelDilatedBlock(16, transposed=transposed, name="block")
    out = block(tf.random.normal((2, 8, 12, 5)))
    assert out.shape == (2, 8, 12, 16)
    assert [b.dilation_rate for b in block.branches] in (
        [2, 5, 1],
        [(2, 2), (5, 5), (1, 1)],
    )
    assert [b.filters for b in block.branches] == [4, 4, 8]
    assert np.all(out.numpy() > -1.0)  # ELU range
    with pytest.raises(ValueError, match="multiple of 4.*received 10"):
        ParallelDilatedBlock(10)


def test_funnel_block_strides_and_constrains():
    block = FunnelBlock(8, padding="valid")
    out = block(tf.random.normal((2, 13, 13, 3)))
    assert out.shape == (2, 5, 5, 8)
    assert isinstance(block.conv.kernel_constraint, FrobeniusNormConstraint)
    with pytest.raises(ValueError, match="padding"):
        FunnelBlock(8, padding="causal")
    with pytest.raises(ValueError, match="negative_slope"):
        FunnelBlock(8, negative_slope=1.5)


def test_funnel_block_activation_is_keras_leaky_relu():
    block = FunnelBlock(6, padding="same")
    x = tf.random.normal((2, 9, 7, 3))
    out = block(x)
    expected = keras.layers.LeakyReLU(negative_slope=0.3)(block.conv(x))
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_inpainting_constraint_keeps_known_pixels():
    f = tf.random.uniform((2, 8, 8, 3))
    mask = tf.cast(tf.random.uniform((2, 8, 8, 1)) < 0.3, tf.float32)
    g = tf.random.uniform((2, 8, 8, 3))
    u = InpaintingConstraint()([g, f * mask, mask]).numpy()
    m = np.broadcast_to(mask.numpy() > 0, u.shape)
    assert np.array_equal(u[m], f.numpy()[m])
    assert np.array_equal(u[~m], g.numpy()[~m])


def test_hard_rounding_is_binary_with_identity_gradient():
    c = tf.constant([[0.0, 0.2, 0.49, 0.5, 0.51, 0.8, 1.0]])
    upstream = tf.constant([[1.0, -2.0, 3.0, 0.5, -0.7, 4.0, 9.0]])
    with tf.GradientTape() as tape:
        tape.watch(c)
        b = round_straight_through(c)
        loss = tf.reduce_sum(b * upstream)
    np.testing.assert_array_equal(b, [[0, 0, 0, 1, 1, 1, 1]])
    np.testing.assert_array_equal(tape.gradient(loss, c), upstream)


@pytest.mark.parametrize(
    "operator", ["hard_rounding", "additive_noise", "stochastic_rounding"]
)
def test_binarization_layer_gradient_is_upstream(operator):
    layer = Binarization(operator, seed=3)
    c = tf.random.uniform((2, 6, 7, 1))
    upstream = tf.random.normal((2, 6, 7, 1))
    with tf.GradientTape() as tape:
        tape.watch(c)
        loss = tf.reduce_sum(layer(c, training=True) * upstream)
    np.testing.assert_allclose(tape.gradient(loss, c), upstream, atol=1e-7)


def test_additive_noise_statistics():
    layer = Binarization("additive_noise", seed=0)
    c = tf.fill((200_000,), 0.3)
    eps = (layer(c, training=True) - c).numpy()
    assert eps.min() >= 0.0 and eps.max() <= 0.5
    # U[0, 0.5]: mean 0.25, variance 0.5**2 / 12, flat histogram.
    assert abs(eps.mean() - 0.25) < 0.003
    assert abs(eps.var() - 0.25 / 12) < 0.001
    hist, _ = np.histogram(eps, bins=5, range=(0, 0.5))
    np.testing.assert_allclose(hist / eps.size, 0.2, atol=0.01)


def test_stochastic_rounding_statistics():
    layer = Binarization("stochastic_rounding", seed=0)
    levels = np.array([0.0, 0.1, 0.25, 0.5, 0.9, 1.0], np.float32)
    c = tf.constant(np.repeat(levels, 40_000))
    b = layer(c, training=True).numpy().reshape(len(levels), -1)
    assert set(np.unique(b)) <= {0.0, 1.0}
    # P(b = 1) = c - floor(c), plus floor(c) = 1 at c = 1.
    np.testing.assert_allclose(b.mean(axis=1), levels, atol=0.01)


def test_random_operators_round_at_inference():
    c = tf.random.uniform((3, 5, 5, 1))
    for operator in ("additive_noise", "stochastic_rounding"):
        out = Binarization(operator)(c, training=False)
        np.testing.assert_array_equal(out, np.floor(c.numpy() + 0.5))


def test_binarization_rejects_unknown_operator():
    with pytest.raises(ValueError, match="received 'sign'"):
        Binarization("sign")
    with pytest.raises(ValueError, match="density.*received None"):
        Binarization("ordered_dither")
    with pytest.raises(ValueError, match="received 1.5"):
        Binarization("ordered_dither", density=1.5)


# --- Ordered dither with an exact count ---------------------------------------


def test_bayer_matrix_holds_every_level_once():
    matrix = dither.bayer_matrix(8)
    np.testing.assert_array_equal(
        np.sort((matrix * 64 - 0.5).round().ravel()), np.arange(64)
    )
    # Each 2x2 block holds one threshold from each quarter of the range.
    quarters = np.floor(dither.bayer_matrix(8) * 4)
    assert sorted(quarters[:2, :2].ravel()) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="power of two"):
        dither.bayer_matrix(6)


@pytest.mark.parametrize("density", [0.05, 0.1, 0.2])
@pytest.mark.parametrize("training", [False, True])
def test_ordered_dither_keeps_the_density_exactly(density, training):
    layer = Binarization("ordered_dither", seed=1, density=density)
    for c in (
        tf.random.uniform((3, 24, 40, 1)),  # mixed
        tf.ones((2, 24, 40, 1)),  # saturated: the notes' all-ones trap
        tf.zeros((2, 24, 40, 1)),
        tf.cast(tf.random.uniform((2, 24, 40, 1)) < 0.5, tf.float32),  # ties
    ):
        b = layer(c, training=training).numpy()
        assert set(np.unique(b)) <= {0.0, 1.0}
        np.testing.assert_array_equal(b.sum(axis=(1, 2, 3)), round(density * 960))


def _min_distance(mask):
    points = np.argwhere(mask)
    diff = points[:, None, :] - points[None, :, :]
    dist = np.sqrt((diff**2).sum(-1)) + np.eye(len(points)) * 1e9
    return dist.min()


def test_ordered_dither_spreads_points_and_follows_the_confidence():
    layer = Binarization("ordered_dither", seed=2, density=1 / 16)
    flat = layer(tf.fill((2, 32, 32, 1), 0.3), training=True).numpy()[..., 0]
    # A constant density 1/16 is a lattice of spacing 4 at any phase.
    for mask in flat:
        assert _min_distance(mask) == 4.0
    # A confidence nine times higher on the left gets about nine times the points.
    c = np.full((1, 32, 32, 1), 0.05, np.float32)
    c[:, :, :16] = 0.45
    b = layer(tf.constant(c), training=False).numpy()
    left, right = b[:, :, :16].sum(), b[:, :, 16:].sum()
    assert 7 < left / right < 11


def test_ordered_dither_phase_is_random_in_training_fixed_at_inference():
    layer = Binarization("ordered_dither", seed=3, density=0.1)
    c = tf.random.uniform((2, 16, 16, 1), seed=4)
    assert not np.array_equal(layer(c, training=True), layer(c, training=True))
    np.testing.assert_array_equal(layer(c, training=False), layer(c, training=False))
    np.testing.assert_array_equal(layer(c, training=False), dither.dither_mask(c, 0.1))


def test_ordered_dither_gradient_is_straight_through_the_normalisation():
    layer = Binarization("ordered_dither", seed=5, density=0.1)
    c = tf.random.uniform((2, 8, 8, 1), 0.2, 0.6)
    upstream = tf.random.normal((2, 8, 8, 1))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(c)
        loss = tf.reduce_sum(layer(c, training=True) * upstream)
        reference = tf.reduce_sum(dither.normalise_density(c, 0.1) * upstream)
    grad = tape.gradient(loss, c).numpy()
    np.testing.assert_allclose(grad, tape.gradient(reference, c), atol=1e-6)
    # Scaling the confidence changes nothing, so the gradient has no
    # component along c: raising every confidence cannot raise the density.
    per_image = (grad * c.numpy()).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(per_image, 0.0, atol=1e-4)
    assert np.abs(grad).max() > 1e-3


@pytest.mark.parametrize(
    "layer",
    [
        DilatedConv2DTranspose(4, 5, dilation_rate=2, activation="elu", name="t"),
        ParallelDilatedBlock(8, transposed=True, name="tc"),
        ParallelDilatedBlock(8, name="c"),
        FunnelBlock(4, padding="same", name="f"),
        Binarization("hard_rounding", name="b"),
        Binarization("ordered_dither", density=0.1, name="d"),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_layers_round_trip_through_config_and_keras_file(layer, tmp_path):
    x = tf.random.uniform((2, 8, 10, 1 if isinstance(layer, Binarization) else 3))
    inputs = keras.Input(x.shape[1:])
    model = keras.Model(inputs, layer(inputs))
    expected = model(x)

    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()

    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    assert type(restored.layers[-1]) is type(layer)
    np.testing.assert_allclose(restored(x), expected, atol=1e-6)


def test_constraint_round_trips():
    c = FrobeniusNormConstraint(2.5)
    assert FrobeniusNormConstraint.from_config(c.get_config()).max_norm == 2.5
    assert keras.constraints.deserialize(keras.constraints.serialize(c)).max_norm == 2.5


# --- The fused fast path against the stock ops ----------------------------------


def _values_and_grads(layer, x):
    """Output and gradients (input, weights) of a smooth loss of the output."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(tf.sin(3.0 * y))
    return [y, *tape.gradient(loss, [x, *layer.trainable_weights])]


def _assert_close(fast, stock, rtol=1e-5):
    assert len(fast) == len(stock)
    for a, b in zip(fast, stock, strict=True):
        assert a.shape == b.shape
        scale = max(float(tf.reduce_max(tf.abs(b))), 1e-6)
        assert float(tf.reduce_max(tf.abs(a - b))) <= rtol * scale


@pytest.mark.parametrize("transposed", [False, True])
def test_fused_block_matches_stock_ops(transposed):
    block = ParallelDilatedBlock(16, transposed=transposed)
    x = tf.random.normal((3, 16, 24, 5))
    fast = _values_and_grads(block, x)
    with reference_ops():
        stock = _values_and_grads(block, x)
    _assert_close(fast, stock)


@pytest.mark.parametrize(
    "activation, dilation, kernel_size, use_bias",
    [("elu", 1, 3, True), (hard_sigmoid, 1, 3, True), (None, 5, 5, False)],
)
def test_fused_transposed_conv_matches_stock_ops(
    activation, dilation, kernel_size, use_bias
):
    layer = DilatedConv2DTranspose(
        3, kernel_size, dilation, activation=activation, use_bias=use_bias
    )
    x = tf.random.normal((2, 16, 8, 4))
    fast = _values_and_grads(layer, x)
    with reference_ops():
        stock = _values_and_grads(layer, x)
    _assert_close(fast, stock)


def test_fused_path_matches_in_a_graph_with_chunked_kernel_gradients(monkeypatch):
    # Tiny chunks force the batch split of the kernel-gradient matmul.
    monkeypatch.setattr(fused_conv, "_KERNEL_GRAD_CHUNK_VALUES", 2000)
    block = ParallelDilatedBlock(8, transposed=True)
    x = tf.random.normal((5, 8, 16, 3))
    block(x)

    def run():
        return _values_and_grads(block, x)

    fast = tf.function(run)()
    with reference_ops():
        stock = tf.function(run)()
    _assert_close(fast, stock)


@pytest.mark.parametrize(
    "filters, shape", [(8, (2, 8, 8, 3)), (8, (2, 13, 9, 3)), (128, (2, 11, 7, 3))]
)
def test_fused_path_with_onednn_kernel_gradient_matches(monkeypatch, filters, shape):
    # With oneDNN on, undilated kernels take TensorFlow's filter gradient op and
    # dilated ones (few channels) the space-to-batch form: check their layouts
    # and paddings (sides that are no multiple of the dilation) here, whatever
    # this process's kernels are. 128 filters: the d = 5 branch has 32 channels
    # and keeps the shifted copies.
    monkeypatch.setattr(fused_conv, "_onednn_enabled", lambda: True)
    block = ParallelDilatedBlock(filters)
    x = tf.random.normal(shape)
    fast = _values_and_grads(block, x)
    with reference_ops():
        stock = _values_and_grads(block, x)
    _assert_close(fast, stock)
    # Sides unknown when the graph is traced (fully convolutional generators).
    spec = tf.TensorSpec((None, None, None, shape[-1]))
    traced = tf.function(lambda x: _values_and_grads(block, x), input_signature=[spec])
    _assert_close(traced(x), stock)


@pytest.mark.parametrize("height", [16, 12, 9])
def test_batch_of_one_image_matches_on_strips(height):
    # One image runs as two strips (even heights); odd heights do not split.
    block = ParallelDilatedBlock(8)
    x = tf.random.normal((1, height, 8, 3))
    with reference_ops():
        stock = block(x)
    np.testing.assert_allclose(block(x), stock, atol=1e-5)
    # Unknown batch and sides at tracing time: the split is decided at run time.
    spec = tf.TensorSpec((None, None, None, 3))
    dynamic = tf.function(block.__call__, input_signature=[spec])
    np.testing.assert_allclose(dynamic(x), stock, atol=1e-5)
    two = tf.concat([x, x + 1.0], axis=0)
    with reference_ops():
        stock_two = block(two)
    np.testing.assert_allclose(dynamic(two), stock_two, atol=1e-5)


def test_fused_convolution_half_precision_and_errors():
    x = tf.random.normal((2, 8, 8, 3))
    kernel = tf.random.normal((3, 3, 3, 4))
    full = fused_convolution(x, [kernel], None, [2])
    half = fused_convolution(tf.cast(x, tf.float16), [kernel], None, [2])
    assert half.dtype == tf.float16
    np.testing.assert_allclose(tf.cast(half, tf.float32), full, atol=0.05)
    with pytest.raises(ValueError, match="one dilation per kernel"):
        fused_convolution(x, [kernel], None, [1, 2])
    with pytest.raises(ValueError, match="odd square"):
        fused_convolution(x, [tf.zeros((2, 2, 3, 4))], None, [1])
