import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import photo_crop

from wgimask.baselines import inpaint as baseline_inpaint
from wgimask.nn.analytic_prior import analytic_importance, auto_sigma
from wgimask.nn.blocks import FrobeniusNormConstraint
from wgimask.nn.dither import normalise_density
from wgimask.nn.exact_diffusion import diffusion_inpaint
from wgimask.nn.fused_conv import reference_ops
from wgimask.nn.losses import mask_density
from wgimask.nn.networks import (
    MODEL_SIZES,
    Critic,
    InpaintingGenerator,
    MaskGenerator,
    analytic_dither_mask,
    draw_seed,
    forward_flops,
)


def _batch(shape, density=0.2):
    image = tf.random.uniform(shape)
    mask = tf.cast(tf.random.uniform((*shape[:3], 1)) < density, tf.float32)
    return image, mask


def _inpaint(generator, image, mask):
    return generator(
        {"known": image * mask, "mask": mask, "seed": draw_seed(image.shape, mask)}
    )


@pytest.mark.parametrize("size", [(16, 16), (24, 40), (40, 16)])
@pytest.mark.parametrize("channels", [1, 3])
def test_generators_output_shapes(size, channels):
    image, mask = _batch((2, *size, channels))
    g = InpaintingGenerator(size, channels, "tiny")
    assert _inpaint(g, image, mask).shape == (2, *size, channels)
    m = MaskGenerator(size, channels, "tiny")
    b = m({"image": image, "seed": draw_seed(image.shape)})
    assert b.shape == (2, *size, 1)


def test_generator_without_fixed_size_is_fully_convolutional():
    g = InpaintingGenerator(None, 3, "tiny")
    for size in [(16, 24), (32, 8)]:
        image, mask = _batch((1, *size, 3))
        assert _inpaint(g, image, mask).shape == (1, *size, 3)


@pytest.mark.parametrize("size", [32, 64, 128, (32, 48)])
def test_critic_scores_one_value_per_image(size):
    d = Critic(size, 3, "tiny")
    shape = (size, size) if isinstance(size, int) else size
    image, mask = _batch((3, *shape, 3))
    assert d({"image": image, "mask": mask}).shape == (3, 1)


def test_critic_at_128_is_the_reference_valid_padding():
    d = Critic(128, 3, "tiny")
    paddings = [d.get_layer(f"funnel_{i}").padding for i in range(1, 6)]
    assert paddings == ["valid"] * 5
    assert d.get_layer("funnel_5").output.shape[1:3] == (1, 1)
    d64 = Critic(64, 3, "tiny")
    assert [d64.get_layer(f"funnel_{i}").padding for i in range(1, 6)] == [
        "valid",
        "valid",
        "valid",
        "valid",
        "same",
    ]


def test_known_pixels_pass_through_exactly():
    image, mask = _batch((2, 16, 24, 3), density=0.3)
    u = _inpaint(InpaintingGenerator(None, 3, "tiny"), image, mask).numpy()
    known = np.broadcast_to(mask.numpy() > 0, u.shape)
    assert np.array_equal(u[known], image.numpy()[known])
    assert u.min() >= 0.0 and u.max() <= 1.0


def test_mask_is_binary_and_density_loss_reaches_first_layer():
    m = MaskGenerator(None, 3, "tiny")
    image = tf.random.uniform((2, 16, 16, 3))
    with tf.GradientTape() as tape:
        b = m({"image": image, "seed": draw_seed(image.shape)}, training=True)
        loss = tf.reduce_mean(tf.abs(mask_density(b) - 0.05))
    assert set(np.unique(b.numpy())) <= {0.0, 1.0}
    first = m.get_layer("encoder_1").trainable_weights
    grads = tape.gradient(loss, first)
    assert all(g is not None for g in grads)
    assert sum(float(tf.reduce_sum(tf.abs(g))) for g in grads) > 0


def test_critic_kernels_stay_in_unit_ball_after_large_step():
    d = Critic(32, 3, "tiny")
    image, mask = _batch((4, 32, 32, 3))
    optimizer = keras.optimizers.Adam(learning_rate=10.0)
    for _ in range(2):
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(d({"image": image, "mask": mask}))
        optimizer.apply(tape.gradient(loss, d.trainable_weights), d.trainable_weights)
    kernels = [w for w in d.trainable_weights if w.path.endswith("kernel")]
    assert len(kernels) == 6  # five funnel convs and the dense head
    for kernel in kernels:
        assert isinstance(kernel.constraint, FrobeniusNormConstraint)
        assert float(tf.norm(kernel)) <= 1.0 + 1e-5


def test_paper_size_matches_reference_counts(capsys):
    for size in (64, 128):
        g = InpaintingGenerator(size, 3, "paper")
        m = MaskGenerator(size, 3, "paper")
        d = Critic(size, 3, "paper")
        params = g.count_params()
        with capsys.disabled():
            print(
                f"\npaper size at {size} px: g {params:,} parameters, "
                f"{forward_flops(g) / 1e9:.1f} GFLOP; m {m.count_params():,}; "
                f"d {d.count_params():,}"
            )
        assert abs(params - 11.5e6) / 11.5e6 < 0.01
    # About 14 GFLOP per 64x64 image and 56 per 128x128 (2 FLOP per MAC).
    assert abs(forward_flops(InpaintingGenerator(64, 3, "paper")) / 13.7e9 - 1) < 0.02
    assert abs(forward_flops(g) / 54.7e9 - 1) < 0.02


def test_model_sizes_scale_channels():
    counts = [InpaintingGenerator(16, 3, s).count_params() for s in MODEL_SIZES]
    assert counts == sorted(counts, reverse=True)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: InpaintingGenerator(20, 3, "tiny"), "divisible by 8"),
        (lambda: InpaintingGenerator(16, 2, "tiny"), "channels"),
        (lambda: MaskGenerator(16, 3, "huge"), "model_size"),
        (lambda: MaskGenerator(16, 3, "tiny", binarisation="sign"), "operator"),
        (lambda: Critic(None, 3, "tiny"), "fixed"),
        (lambda: InpaintingGenerator(16, 3, "tiny", prefill="pde"), "prefill"),
        (lambda: MaskGenerator(16, 3, "tiny", prior="log"), "prior"),
        (lambda: MaskGenerator(16, 3, "tiny", prior="analytic"), "analytic prior"),
        (
            lambda: MaskGenerator(16, 3, "tiny", binarisation="ordered_dither"),
            "ordered_dither",
        ),
        (lambda: MaskGenerator(16, 3, "tiny", density=2.0), "density"),
    ],
)
def test_invalid_arguments_are_rejected(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(
    "kind",
    [
        "generator",
        "mask_generator",
        "critic",
        "prefilled_generator",
        "prior_mask_generator",
    ],
)
def test_networks_round_trip_through_keras_files(kind, tmp_path):
    image, mask = _batch((2, 16, 24, 3))
    if kind == "generator":
        model = InpaintingGenerator((16, 24), 3, "tiny")
        inputs = {"known": image * mask, "mask": mask, "seed": draw_seed(image.shape)}
    elif kind == "mask_generator":
        model = MaskGenerator((16, 24), 3, "tiny", binarisation="stochastic_rounding")
        inputs = {"image": image, "seed": draw_seed(image.shape)}
    elif kind == "prefilled_generator":
        model = InpaintingGenerator((16, 24), 3, "tiny", prefill="diffusion")
        inputs = {"known": image * mask, "mask": mask, "seed": draw_seed(image.shape)}
    elif kind == "prior_mask_generator":
        model = MaskGenerator(
            (16, 24), 3, "tiny", "ordered_dither", 0.1, "analytic", 1.5, 1.0
        )
        inputs = {"image": image, "seed": draw_seed(image.shape)}
    else:
        model = Critic((16, 24), 3, "tiny")
        inputs = {"image": image, "mask": mask}
    path = tmp_path / f"{kind}.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    assert type(restored) is type(model)
    assert restored.get_config() == model.get_config()
    np.testing.assert_allclose(restored(inputs), model(inputs), atol=1e-6)


def test_confidence_model_shares_weights():
    m = MaskGenerator(16, 3, "tiny")
    image = tf.random.uniform((1, 16, 16, 3))
    inputs = {"image": image, "seed": draw_seed(image.shape)}
    c = m.confidence_model()(inputs)
    np.testing.assert_array_equal(np.floor(c.numpy() + 0.5), m(inputs).numpy())


@pytest.mark.parametrize("kind", ["generator", "mask_generator"])
def test_fused_networks_match_stock_ops(kind):
    image, mask = _batch((2, 16, 24, 3))
    if kind == "generator":
        model = InpaintingGenerator(None, 3, "tiny")
        inputs = {"known": image * mask, "mask": mask, "seed": draw_seed(image.shape)}
    else:
        # The confidence (before rounding): a smooth function of the weights.
        model = MaskGenerator(None, 3, "tiny").confidence_model()
        inputs = {"image": image, "seed": draw_seed(image.shape)}

    def values_and_grads():
        with tf.GradientTape() as tape:
            out = model(inputs, training=True)
            loss = tf.reduce_sum(tf.square(out - 0.3))
        return [out, *tape.gradient(loss, model.trainable_weights)]

    fast = values_and_grads()
    with reference_ops():
        stock = values_and_grads()
    assert len(fast) == len(stock) == 1 + len(model.trainable_weights)
    for a, b in zip(fast, stock, strict=True):
        scale = max(float(tf.reduce_max(tf.abs(b))), 1e-6)
        assert float(tf.reduce_max(tf.abs(a - b))) <= 1e-5 * scale


# --- Options not in the paper: prefill and analytic prior -----------------------


def _photos(size):
    return np.stack(
        [photo_crop(name, size) for name in ("astronaut", "coffee")]
    ).astype(np.float32)


def test_prefilled_generator_returns_the_diffusion_inpainting_at_initialisation():
    images = tf.constant(_photos(32))
    mask = tf.cast(tf.random.uniform((2, 32, 32, 1), seed=3) < 0.1, tf.float32)
    g = InpaintingGenerator(None, 3, "tiny", prefill="diffusion")
    assert sorted(g.input) == ["known", "mask", "seed"]
    known = images * mask
    with tf.GradientTape() as tape:
        tape.watch(mask)
        u = g({"known": known, "mask": mask, "seed": draw_seed(images.shape, mask)})
        loss = tf.reduce_mean(tf.abs(u - images))
    np.testing.assert_array_equal(u, diffusion_inpaint(known, mask))
    reference = [
        baseline_inpaint(f, m[..., 0] > 0)
        for f, m in zip(images.numpy(), mask.numpy(), strict=True)
    ]
    assert np.abs(u.numpy() - np.stack(reference)).max() < 1e-4
    # The mask gets a gradient through the exact diffusion.
    assert float(tf.reduce_max(tf.abs(tape.gradient(loss, mask)))) > 0
    # The residual learns: its output layer gets a gradient.
    with tf.GradientTape() as tape:
        u = g({"known": known, "mask": mask, "seed": draw_seed(images.shape, mask)})
        loss = tf.reduce_mean(tf.abs(u - images))
    grads = tape.gradient(loss, g.get_layer("residual").trainable_weights)
    assert all(float(tf.reduce_max(tf.abs(x))) > 0 for x in grads)


@pytest.mark.parametrize("density", [0.05, 0.1, 0.2])
def test_prior_mask_generator_returns_the_analytic_mask_at_initialisation(density):
    images = tf.constant(_photos(32))
    m = MaskGenerator(
        None, 3, "tiny", "ordered_dither", density=density, prior="analytic"
    )
    inputs = {"image": images, "seed": draw_seed(images.shape)}
    expected = analytic_dither_mask(images, density)
    mask = m(inputs, training=False)
    np.testing.assert_array_equal(mask, expected)
    np.testing.assert_array_equal(m.binarise(m.confidence_model()(inputs)), expected)
    count = round(density * 32 * 32)
    np.testing.assert_array_equal(mask.numpy().sum(axis=(1, 2, 3)), count)
    # The confidence is the normalised analytic density, mean D.
    confidence = m.confidence_model()(inputs)
    sigma = auto_sigma(density)  # that of the numpy analytic masks
    np.testing.assert_allclose(
        confidence,
        normalise_density(analytic_importance(images, sigma, 0.75), density),
        atol=1e-6,
    )
    # Training: random dither phase, still exact counts, gradient to the
    # correction layer.
    with tf.GradientTape() as tape:
        b = m(inputs, training=True)
        loss = tf.reduce_sum(b * tf.random.normal(b.shape))
    np.testing.assert_array_equal(b.numpy().sum(axis=(1, 2, 3)), count)
    grads = tape.gradient(loss, m.get_layer("correction").trainable_weights)
    assert all(float(tf.reduce_max(tf.abs(x))) > 0 for x in grads)


def test_prior_mask_generator_prefers_edges():
    """The analytic mask puts more points on the textured half of an image."""
    rng = np.random.default_rng(0)
    image = np.full((1, 32, 32, 3), 0.5, np.float32)
    image[:, :, 16:] = rng.uniform(size=(1, 32, 16, 3))
    mask = analytic_dither_mask(tf.constant(image), 0.1).numpy()
    assert mask[:, :, 16:].sum() > 3 * mask[:, :, :16].sum()
