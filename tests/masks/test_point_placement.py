"""Densified mask points (``--mask_points=densify``): wgimask.masks.point_placement
and point_placement_graph."""

import json
import shutil
import sys

import numpy as np
import pytest
import tensorflow as tf
from helpers import photo_crop, write_images

from wgimask import inference
from wgimask.baselines import densification_mask
from wgimask.config import TrainingConfig
from wgimask.masks.point_placement import densified_mask, point_weights
from wgimask.nn.dither import point_count
from wgimask.nn.exact_diffusion import diffusion_inpaint
from wgimask.nn.point_placement_graph import (
    densified_masks,
    densify_graph,
    straight_through,
)
from wgimask.serve import export
from wgimask.serve.model_files import PRETRAINED_DIR, read_config
from wgimask.serve.parts import load_networks
from wgimask.train.trainer import Trainer

#: The options mask_points="densify" needs.
DENSIFY = dict(
    mask_prior="analytic",
    binarisation="ordered_dither",
    mask_operator="diffusion",
    mask_points="densify",
)
TINY = dict(
    image_size=16,
    batch_size=2,
    model_size="tiny",
    steps_per_epoch=2,
    epochs=1,
    density=0.2,
    validation_fraction=0.3,
)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    write_images(folder, count=4, size=(24, 24))
    return str(folder)


def test_zero_correction_is_plain_densification():
    f = photo_crop("chelsea", 32)
    mask = densified_mask(f, np.zeros((32, 32)), 0.1, seed=1)
    assert np.array_equal(mask, densification_mask(f, 0.1, seed=1))


def test_weights_stay_finite_and_positive():
    weights = point_weights(np.array([[-1e4, 0.0, 1e4, 2.0]]))
    assert np.all(np.isfinite(weights)) and np.all(weights > 0)
    assert weights[0, 1] == 1.0 and weights[0, 3] == pytest.approx(np.exp(2.0))


def test_batch_masks_are_the_inference_masks_with_a_straight_through_gradient():
    images = np.stack([photo_crop(n, 24) for n in ("astronaut", "coffee")])
    rng = np.random.default_rng(0)
    correction = rng.normal(size=(2, 24, 24, 1)).astype(np.float32)
    seeds = tf.constant([0, 5], tf.int64)
    masks = densified_masks(tf.constant(images, tf.float32), correction, 0.1, seeds)
    assert masks.shape == (2, 24, 24, 1)
    for i, seed in enumerate((0, 5)):
        expected = densified_mask(
            images[i].astype(np.float32), correction[i, ..., 0], 0.1, seed
        )
        np.testing.assert_array_equal(masks.numpy()[i, ..., 0] > 0.5, expected)
    confidence = tf.Variable(rng.random((2, 24, 24, 1)).astype(np.float32))
    upstream = rng.normal(size=(2, 24, 24, 1)).astype(np.float32)
    with tf.GradientTape() as tape:
        mask = straight_through(masks, confidence)
        loss = tf.reduce_sum(mask * upstream)
    np.testing.assert_allclose(mask.numpy(), masks.numpy(), atol=1e-6)
    np.testing.assert_allclose(tape.gradient(loss, confidence).numpy(), upstream)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (dict(mask_prior=None), "mask_prior"),
        (dict(binarisation="hard_rounding"), "binarisation"),
        (dict(mask_operator=None), "mask_operator"),
        (dict(generator_masks="halftoned"), "generator_masks"),
        (dict(jit_compile=True), "jit_compile"),
        (dict(mask_points="voronoi"), "mask_points"),
    ],
)
def test_config_names_what_densified_points_need(change, field):
    with pytest.raises(ValueError, match=f"^{field} must be"):
        TrainingConfig(**{**DENSIFY, **change}, density=0.1).validate()


def test_flag(tmp_path):
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2]))
    import train as script

    try:
        script.FLAGS.unparse_flags()
        script.FLAGS(
            [
                "train.py",
                "--mask_points=densify",
                "--mask_prior=analytic",
                "--binarisation=ordered_dither",
                "--mask_operator=diffusion",
                "--density=0.1",
            ]
        )
        assert script.config_from_flags().mask_points == "densify"
        script.FLAGS.unparse_flags()
        script.FLAGS(["train.py"])
        assert script.config_from_flags().mask_points is None
    finally:
        script.FLAGS.unparse_flags()


def test_steps_train_on_densified_points(photos, tmp_path):
    """m's loss, g and d all see the densification masks steered by m's
    correction: seed 0 in validation (the inference masks), a seed per image
    and step in training; the gradient reaches m's correction layer."""
    config = TrainingConfig(
        data_dir=photos,
        model_dir=str(tmp_path / "run"),
        prefill="diffusion",
        seed=3,
        **DENSIFY,
        **TINY,
    )
    trainer = Trainer(config)
    batch = trainer.validation_batch(
        np.random.default_rng(0).random((2, 16, 16, 3)).astype(np.float32)
    )
    image = batch["image"]
    mask, g_mask, inpainted = trainer._forward(batch, training=False)
    assert mask is g_mask
    _, correction = trainer._confidence_and_correction(
        {"image": image, "seed": batch["mask_seed"]}, training=False
    )
    count = int(point_count(0.2, 16, 16))
    for i in range(2):
        expected = densified_mask(image.numpy()[i], correction.numpy()[i, ..., 0], 0.2)
        np.testing.assert_array_equal(mask.numpy()[i, ..., 0] > 0.5, expected)
        assert expected.sum() == count
    known = np.broadcast_to(mask.numpy() > 0.5, inpainted.shape)
    np.testing.assert_allclose(
        inpainted.numpy()[known], image.numpy()[known], atol=1e-5
    )
    # m's correction layer gets a gradient through exact diffusion.
    kernel = trainer.mask_generator.get_layer("correction").trainable_variables[0]
    with tf.GradientTape() as tape:
        m, _, _ = trainer._forward(batch, training=True, generator=False)
        loss = tf.reduce_mean(tf.abs(diffusion_inpaint(image, m) - image))
    assert float(tf.reduce_max(tf.abs(tape.gradient(loss, kernel)))) > 0


def test_inference_serves_densified_masks(tmp_path):
    """A run trained with mask_points="densify" (here: a shipped run whose
    config says so) makes densification masks steered by its correction, at
    any density and image size."""
    run = tmp_path / "run"
    shutil.copytree(PRETRAINED_DIR / "joint-0.1", run)
    config = json.loads((run / "config.json").read_text())
    # The shipped runs turn their correction off; this test needs it on.
    config = {**config, "mask_points": "densify", "mask_correction": None}
    (run / "config.json").write_text(json.dumps(config))
    model = inference.load(run)
    images = np.stack([photo_crop(n, 40)[:, :32] for n in ("astronaut", "coffee")])
    corrections = model._corrections(images)
    assert np.abs(corrections).max() > 0.01  # a trained, non-zero correction
    for density in (0.1, 0.2):
        masks = model.mask(images, density)
        for image, r, mask in zip(images, corrections, masks, strict=True):
            np.testing.assert_array_equal(
                mask, densified_mask(image, r[..., 0], density)
            )
            assert mask.sum() == int(point_count(density, 40, 32))


def test_graph_densification_equals_numpy():
    """The SavedModel's TensorFlow densification makes the numpy masks."""
    images = np.stack([photo_crop(n, 32) for n in ("astronaut", "coffee")])
    correction = np.random.default_rng(2).normal(scale=0.3, size=(2, 32, 32, 1))
    for density in (0.05, 0.2):
        masks = densify_graph(
            tf.constant(images, tf.float32),
            tf.constant(correction, tf.float32),
            density,
        ).numpy()
        for image, r, mask in zip(images, correction, masks, strict=True):
            expected = densified_mask(image.astype(np.float32), r[..., 0], density)
            np.testing.assert_array_equal(mask[..., 0] > 0.5, expected)


@pytest.mark.slow
def test_saved_model_serves_densified_masks(tmp_path):
    """The exported mask_gan of a densify run gives the inference masks."""
    exported = PRETRAINED_DIR / "joint-0.1" / "export"
    # The export serves m's correction (the paper's signature) even where
    # inference turns it off (the shipped runs): compare with it on.
    config = {
        **read_config(exported),
        "mask_points": "densify",
        "mask_correction": None,
    }
    generator, mask_generator = load_networks(exported, config)
    export.save_mask_gan(generator, mask_generator, tmp_path / "mask_gan", densify=True)
    served = tf.saved_model.load(str(tmp_path / "mask_gan")).signatures[
        "serving_default"
    ]
    images = np.stack([photo_crop(n, 40)[:, :32] for n in ("astronaut", "chelsea")])
    run = tmp_path / "run"
    shutil.copytree(PRETRAINED_DIR / "joint-0.1", run)
    (run / "config.json").write_text(json.dumps(config))
    expected = inference.load(run).mask(images, 0.1)
    # One image per request: the SavedModel draws m's seed input for the
    # whole batch, inference for one image (equal for a batch of one).
    for image, mask in zip(images, expected, strict=True):
        out = served(image=tf.constant(image[None], tf.float32))
        np.testing.assert_array_equal(out["mask"].numpy()[0, ..., 0] > 0.5, mask)
        assert out["inpainted"].shape == (1, *image.shape)
