"""NetE and NetM of Dai et al. (wgimask.nn.dai): shapes, maps, masks, saving,
and the pieces that must match Dai's PyTorch code."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from wgimask.nn import dai

TINY_E = {"width": 4}
TINY_M = {"filters": 8, "blocks": 1}


def _images(batch=2, channels=3, size=(64, 64), seed=0):
    rng = np.random.default_rng(seed)
    return tf.constant(rng.random((batch, *size, channels), dtype=np.float32))


def _one_line(error: pytest.ExceptionInfo, received: str):
    message = str(error.value)
    assert "\n" not in message and received in message, message


# --------------------------------------------------------------------------
# Shapes and arguments
# --------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
def test_nete_shapes(channels):
    nete = dai.build_nete(64, channels, **TINY_E)
    image = _images(channels=channels)
    mask = dai.nete_training_masks(image.shape, 0.1, seed=1)
    out = nete({"image": image, "mask": mask})
    assert out.shape == (2, 64, 64, channels)
    assert float(tf.reduce_min(out)) >= 0.0 and float(tf.reduce_max(out)) <= 1.0
    assert nete.get_layer("channelwise_fc").output.shape == (None, 4, 4, 32)


@pytest.mark.parametrize("size", [32, 128, (64, 32), None, "64"])
def test_nete_is_64_only(size):
    with pytest.raises(ValueError, match="must be 64 for NetE") as error:
        dai.build_nete(size, 3, **TINY_E)
    _one_line(error, f"received {size!r}")


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [64, (32, 48), None])
def test_netm_shapes(channels, size):
    netm = dai.build_netm(size, channels, 0.1, **TINY_M)
    shape = (
        (40, 24) if size is None else (size, size) if isinstance(size, int) else size
    )
    out = netm({"image": _images(channels=channels, size=shape)})
    assert out.shape == (2, *shape, 1)


@pytest.mark.parametrize(
    ("build", "kwargs", "received"),
    [
        (dai.build_nete, {"width": 0}, "received 0"),
        (dai.build_nete, {"channels": 2}, "received 2"),
        (dai.build_nete, {"dtype": "float77"}, "received 'float77'"),
        (dai.build_netm, {"density": 1.5}, "received 1.5"),
        (dai.build_netm, {"density": True}, "received True"),
        (dai.build_netm, {"blocks": -1}, "received -1"),
        (dai.build_netm, {"filters": 2.5}, "received 2.5"),
        (dai.build_netm, {"mean_shift_iterations": -3}, "received -3"),
        (dai.build_netm, {"image_size": (0, 8)}, "received (0, 8)"),
    ],
)
def test_invalid_arguments_are_one_line_value_errors(build, kwargs, received):
    with pytest.raises(ValueError) as error:
        build(**kwargs)
    _one_line(error, received)


def test_parameter_counts_at_dai_defaults():
    # Dai's own count (sum of parameter sizes, buffers excluded).
    def trainable(model):
        return sum(int(np.prod(w.shape)) for w in model.trainable_weights)

    assert trainable(dai.build_nete()) == 5_653_248
    assert trainable(dai.build_netm()) == 649_602


# --------------------------------------------------------------------------
# NetM's map and the masks
# --------------------------------------------------------------------------


@pytest.mark.parametrize("density", [0.05, 0.1, 0.2])
@pytest.mark.parametrize("training", [False, True])
def test_netm_map_has_mean_density_in_unit_interval(density, training):
    netm = dai.build_netm(64, 3, density, **TINY_M)
    sampling_map = netm({"image": _images(batch=3)}, training=training).numpy()
    np.testing.assert_allclose(sampling_map.mean(axis=(1, 2, 3)), density, rtol=1e-5)
    assert sampling_map.min() >= 0.0 and sampling_map.max() <= 1.0


def _dai_mean_shift(x, rate, iterations=25):
    """Dai's Mean_Shift and its loop (model.py 121-130, 190-196), NCHW in numpy."""

    def shift(v):
        return v / v.mean(axis=(2, 3), keepdims=True) * rate

    out = shift(x)
    for _ in range(iterations):
        out = shift(np.clip(out, 0.0, 1.0))
    return out


def test_mean_shift_is_dais_loop():
    rng = np.random.default_rng(3)
    x = 1.0 / (1.0 + np.exp(-4.0 * rng.normal(size=(2, 16, 16, 1)) + 4.0))
    ours = dai.mean_shift(tf.constant(x, tf.float64), 0.1).numpy()
    reference = _dai_mean_shift(x.transpose(0, 3, 1, 2), 0.1).transpose(0, 2, 3, 1)
    np.testing.assert_allclose(ours, reference, rtol=1e-10)


@pytest.mark.parametrize(("density", "size"), [(0.1, (64, 64)), (0.05, (30, 17))])
def test_topk_mask_has_exact_count_of_largest_values(density, size):
    sampling_map = np.random.default_rng(0).random((3, *size, 1)).astype(np.float32)
    mask = dai.topk_mask(sampling_map, density).numpy()
    k = round(density * size[0] * size[1])
    assert set(np.unique(mask)) <= {0.0, 1.0}
    np.testing.assert_array_equal(mask.sum(axis=(1, 2, 3)), k)
    for m, s in zip(mask, sampling_map, strict=True):
        assert s[m == 1].min() >= s[m == 0].max()


def test_bernoulli_mask_reproducible_from_seed():
    sampling_map = np.full((2, 64, 64, 1), 0.2, np.float32)
    sampling_map[:, :8] = 1.3  # above 1: always known
    a = dai.bernoulli_mask(sampling_map, 5).numpy()
    np.testing.assert_array_equal(a, dai.bernoulli_mask(sampling_map, 5).numpy())
    np.testing.assert_array_equal(a, dai.bernoulli_mask(sampling_map, [5, 0]).numpy())
    assert not np.array_equal(a, dai.bernoulli_mask(sampling_map, 6).numpy())
    assert set(np.unique(a)) == {0.0, 1.0}
    assert a[:, :8].min() == 1.0
    assert abs(a[:, 8:].mean() - 0.2) < 0.02  # 7168 draws: 4.5 standard errors


def test_sampled_mask_exact_count_drawn_with_the_maps_chances():
    # Left half 0.3, right half 0.05: an exact count, most points on the left
    # (6 to 1 in chances), but not only there (a top-k would take none).
    sampling_map = np.full((4, 64, 64, 1), 0.05, np.float32)
    sampling_map[:, :, :32] = 0.3
    sampling_map[:, :4, :4] = 0.0  # never drawn
    mask = dai.sampled_mask(sampling_map, 0.1, 7).numpy()
    assert set(np.unique(mask)) == {0.0, 1.0}
    np.testing.assert_array_equal(mask.sum(axis=(1, 2, 3)), 410)
    right = mask[:, :, 32:].sum() / mask.sum()
    assert 0.05 < right < 0.3  # about 1/7 in expectation
    assert mask[:, :4, :4].max() == 0.0
    np.testing.assert_array_equal(mask, dai.sampled_mask(sampling_map, 0.1, 7))
    assert not np.array_equal(mask, dai.sampled_mask(sampling_map, 0.1, 8))
    with pytest.raises(ValueError, match="received 1.5"):
        dai.sampled_mask(sampling_map, 1.5, 7)


def test_nete_training_masks_are_bernoulli_per_pixel():
    masks = dai.nete_training_masks((16, 64, 64, 3), 0.1, seed=[1, 2]).numpy()
    assert masks.shape == (16, 64, 64, 1)
    assert abs(masks.mean() - 0.1) < 0.01
    counts = masks.sum(axis=(1, 2, 3))
    assert len(set(counts)) > 1  # not an exact count: density only in expectation


def test_netm_nete_inpaint_topk_and_bernoulli():
    netm = dai.build_netm(64, 3, 0.1, **TINY_M)
    nete = dai.build_nete(64, 3, **TINY_E)
    image = _images()
    mask, inpainted = dai.netm_nete_inpaint(netm, nete, image, binarisation="topk")
    np.testing.assert_array_equal(mask.numpy().sum(axis=(1, 2, 3)), 410)
    assert inpainted.shape == image.shape
    first, _ = dai.netm_nete_inpaint(netm, nete, image, seed=3)
    again, _ = dai.netm_nete_inpaint(netm, nete, image, seed=3)
    np.testing.assert_array_equal(first.numpy(), again.numpy())
    sampled, _ = dai.netm_nete_inpaint(netm, nete, image, binarisation="sampled")
    np.testing.assert_array_equal(sampled.numpy().sum(axis=(1, 2, 3)), 410)
    with pytest.raises(ValueError, match="received 'dither'"):
        dai.netm_nete_inpaint(netm, nete, image, binarisation="dither")


# --------------------------------------------------------------------------
# What NetE sees, the losses
# --------------------------------------------------------------------------


def test_nete_sees_only_mask_times_signed_image():
    nete = dai.build_nete(64, 3, **TINY_E)
    image = _images()
    mask = dai.nete_training_masks(image.shape, 0.2, seed=4)
    other = tf.where(mask > 0, image, 1.0 - image)  # unknown pixels changed
    a = nete({"image": image, "mask": mask}, training=False).numpy()
    b = nete({"image": other, "mask": mask}, training=False).numpy()
    np.testing.assert_array_equal(a, b)
    c = nete({"image": image * mask, "mask": mask}, training=False).numpy()
    np.testing.assert_array_equal(a, c)
    signed = nete.get_layer("masked_input")([image, mask]).numpy()
    np.testing.assert_allclose(signed, mask.numpy() * (2 * image.numpy() - 1))


def test_netm_loss_trains_netm_through_frozen_nete():
    nete = dai.build_nete(64, 3, **TINY_E)
    nete.trainable = False
    netm = dai.build_netm(64, 3, 0.2, **TINY_M)
    image = _images()
    with tf.GradientTape() as tape:
        sampling_map = netm({"image": image}, training=True)
        loss = tf.reduce_mean(dai.netm_loss(nete, image, sampling_map))
    grads = tape.gradient(loss, netm.trainable_variables)
    assert all(g is not None for g in grads)
    assert max(float(tf.reduce_max(tf.abs(g))) for g in grads) > 0
    assert nete.trainable_variables == []
    expected = np.mean(
        (
            image.numpy()
            - nete({"image": image, "mask": sampling_map}, training=False).numpy()
        )
        ** 2
    )
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


def test_reconstruction_mse_is_per_image():
    a = np.zeros((2, 4, 4, 3), np.float32)
    b = a.copy()
    b[1] = 0.5
    np.testing.assert_allclose(dai.nete_loss(a, b).numpy(), [0.0, 0.25])


# --------------------------------------------------------------------------
# The layers against Dai's PyTorch definitions
# --------------------------------------------------------------------------


def _torch_conv2d(x, weight, stride=2, pad=1):
    """PyTorch Conv2d (no bias), NCHW x, weight (out, in, k, k), in numpy."""
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    k = weight.shape[-1]
    n, _, h, w = x.shape
    out_h, out_w = (h - k) // stride + 1, (w - k) // stride + 1
    out = np.zeros((n, weight.shape[0], out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            patch = x[:, :, i * stride : i * stride + k, j * stride : j * stride + k]
            out[:, :, i, j] = np.einsum("nchw,ochw->no", patch, weight)
    return out


def _torch_conv_transpose2d(x, weight, stride=2, pad=1):
    """PyTorch ConvTranspose2d (no bias), weight (in, out, k, k), in numpy."""
    n, _, h, w = x.shape
    k = weight.shape[-1]
    full = np.zeros((n, weight.shape[1], (h - 1) * stride + k, (w - 1) * stride + k))
    for i in range(h):
        for j in range(w):
            full[:, :, i * stride : i * stride + k, j * stride : j * stride + k] += (
                np.einsum("nc,cohw->nohw", x[:, :, i, j], weight)
            )
    return full[:, :, pad : full.shape[2] - pad, pad : full.shape[3] - pad]


def test_strided_convolutions_pad_as_dais():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
    down = dai.DownBlock(5)
    down.build(x.shape)
    ours = down.conv(x).numpy()
    kernel = down.conv.kernel.numpy()  # (k, k, in, out)
    theirs = _torch_conv2d(x.transpose(0, 3, 1, 2), kernel.transpose(3, 2, 0, 1))
    np.testing.assert_allclose(ours, theirs.transpose(0, 2, 3, 1), atol=1e-5)

    up = dai.UpBlock(5)
    up.build(x.shape)
    ours = up.tconv(x).numpy()
    kernel = up.tconv.kernel.numpy()  # (k, k, out, in)
    theirs = _torch_conv_transpose2d(
        x.transpose(0, 3, 1, 2), kernel.transpose(3, 2, 0, 1)
    )
    assert ours.shape == (2, 16, 16, 5)
    np.testing.assert_allclose(ours, theirs.transpose(0, 2, 3, 1), atol=1e-5)


def test_channelwise_dense_is_one_linear_per_channel():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 4, 4, 6)).astype(np.float32)
    layer = dai.ChannelwiseDense()
    out = layer(x).numpy()
    kernel, bias = layer.kernel.numpy(), layer.bias.numpy()
    assert kernel.shape == (6, 16, 16) and np.abs(kernel).max() <= 0.25
    for c in range(6):
        # Dai: x[:, [c]].view(n, 16) through Linear(16, 16), W_c = kernel[c].T
        flat = x[:, :, :, c].reshape(2, 16)
        expected = flat @ kernel[c] + bias[c]
        np.testing.assert_allclose(out[:, :, :, c].reshape(2, 16), expected, atol=1e-5)


def test_residual_block_uses_instance_statistics():
    block = dai.ResidualBlock(8)
    x = np.random.default_rng(2).normal(size=(2, 6, 6, 8)).astype(np.float32)
    # Instance norm: the same output in training and inference, and each
    # image is normalised on its own.
    np.testing.assert_allclose(
        block(x, training=True).numpy(), block(x, training=False).numpy(), atol=1e-6
    )
    np.testing.assert_allclose(block(x[:1]).numpy(), block(x).numpy()[:1], atol=1e-5)


# --------------------------------------------------------------------------
# Configs and saving
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "layer",
    [
        dai.SignedMaskedImage(name="a"),
        dai.DownBlock(6, name="b"),
        dai.UpBlock(6, last=True, name="c"),
        dai.ChannelwiseDense(name="d"),
        dai.ResidualBlock(8, name="e"),
        dai.MeanShift(0.1, 7, name="f"),
    ],
)
def test_layer_config_round_trip(layer):
    config = layer.get_config()
    again = type(layer).from_config(config)
    assert again.get_config() == config


def _pair():
    nete = dai.build_nete(64, 3, **TINY_E, name="e")
    netm = dai.build_netm(64, 1, 0.1, **TINY_M, mean_shift_iterations=5, name="m")
    image = _images(channels=3)
    grey = _images(channels=1)
    mask = dai.nete_training_masks(image.shape, 0.1, seed=2)
    return [
        (nete, {"image": image, "mask": mask}),
        (netm, {"image": grey}),
    ]


def test_get_config_from_config_round_trip():
    for model, inputs in _pair():
        config = model.get_config()
        clone = type(model).from_config(config)
        assert clone.get_config() == config
        clone.set_weights(model.get_weights())
        np.testing.assert_array_equal(
            clone(inputs, training=False).numpy(), model(inputs, training=False).numpy()
        )


def test_keras_file_round_trip(tmp_path):
    for model, inputs in _pair():
        # Move the batch-norm statistics off their initial values first.
        model(inputs, training=True)
        path = tmp_path / f"{model.name}.keras"
        model.save(path)
        loaded = keras.saving.load_model(path)
        assert type(loaded) is type(model)
        assert loaded.get_config() == model.get_config()
        np.testing.assert_array_equal(
            loaded(inputs, training=False).numpy(),
            model(inputs, training=False).numpy(),
        )


def test_mixed_precision_outputs_float32():
    nete = dai.build_nete(64, 3, **TINY_E, dtype="mixed_float16")
    netm = dai.build_netm(64, 3, 0.1, **TINY_M, dtype="mixed_float16")
    image = _images()
    mask = dai.nete_training_masks(image.shape, 0.1, seed=2)
    assert nete({"image": image, "mask": mask}).dtype == tf.float32
    sampling_map = netm({"image": image})
    assert sampling_map.dtype == tf.float32
    np.testing.assert_allclose(
        sampling_map.numpy().mean(axis=(1, 2, 3)), 0.1, rtol=1e-5
    )
    assert nete.get_config()["dtype_name"] == "mixed_float16"


def test_the_evaluations_netm_mask_modes_are_the_binarisations():
    from wgimask.evaluation.config import NETM_MASK_MODES

    assert set(NETM_MASK_MODES) == set(dai.BINARISATIONS)
    assert NETM_MASK_MODES[0] == "sampled"  # the default: exact count, spread
