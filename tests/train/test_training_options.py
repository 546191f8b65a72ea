"""Training options not in the paper: exact-diffusion mask operator, mask-only
mode, prefill, analytic prior, ordered-dither binarisation, warm starts."""

import dataclasses
import json
import pathlib
import sys

import numpy as np
import pytest
import tensorflow as tf
from helpers import write_images

from wgimask import run_folder
from wgimask.config import PRESETS, TrainingConfig
from wgimask.masks.analytic import halftone_density
from wgimask.nn.dither import binarise_confidence, point_count
from wgimask.nn.networks import InpaintingGenerator, MaskGenerator
from wgimask.serve import export
from wgimask.train.loop import train
from wgimask.train.trainer import Trainer
from wgimask.train.warm_start import WarmStartError, warm_start

ROOT = pathlib.Path(__file__).resolve().parents[2]
TINY = dict(
    image_size=16,
    batch_size=2,
    model_size="tiny",
    steps_per_epoch=2,
    epochs=1,
    density=0.1,
    validation_fraction=0.3,
)
OPTIONS = ("mask_operator", "prefill", "mask_prior", "init_from", "generator_masks")
#: The options generator_masks="halftoned" needs.
HALFTONED = dict(
    binarisation="ordered_dither",
    mask_operator="diffusion",
    generator_masks="halftoned",
)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    write_images(folder, count=4, size=(24, 24))
    return str(folder)


@pytest.fixture(scope="module")
def mask_run(photos, tmp_path_factory):
    """m alone against exact diffusion, ordered dither: two steps."""
    config = TrainingConfig(
        data_dir=photos,
        model_dir=str(tmp_path_factory.mktemp("mask_run")),
        mode="mask",
        mask_operator="diffusion",
        binarisation="ordered_dither",
        **TINY,
    )
    return config, train(config)


def test_options_are_off_by_default_and_in_the_paper_preset():
    for config in (TrainingConfig(), TrainingConfig(**PRESETS["paper"])):
        assert all(getattr(config, name) is None for name in OPTIONS)
        assert config.binarisation == "hard_rounding"


def test_configs_of_earlier_versions_stay_resumable():
    saved = dataclasses.asdict(TrainingConfig())
    for name in (*OPTIONS, "prior_sigma", "prior_exponent"):
        del saved[name]
    assert (
        run_folder.config_differences(saved, dataclasses.asdict(TrainingConfig())) == []
    )
    changed = dataclasses.asdict(TrainingConfig(mask_operator="diffusion"))
    assert run_folder.config_differences(saved, changed) == ["mask_operator"]
    # A warm start only matters when a run starts.
    warm = dataclasses.asdict(TrainingConfig(init_from=("runs/a",)))
    assert run_folder.config_differences(saved, warm) == []


@pytest.mark.parametrize(
    "fields, named",
    [
        (dict(mode="mask"), "mode"),
        (dict(mode="inpaint", mask_prior="analytic"), "mask_prior"),
        (dict(mode="mask", mask_operator="diffusion", prefill="diffusion"), "prefill"),
        (dict(mask_operator="exact"), "mask_operator"),
        (dict(init_from=("critics=runs/a",)), "init_from"),
        (dict(generator_masks="bayer"), "generator_masks"),
        ({**HALFTONED, "binarisation": "hard_rounding"}, "binarisation"),
        ({**HALFTONED, "mask_operator": None}, "mask_operator"),
        ({**HALFTONED, "jit_compile": True}, "jit_compile"),
        ({**HALFTONED, "mode": "mask"}, "mode"),
    ],
)
def test_invalid_options_fail_naming_the_field(fields, named):
    with pytest.raises(ValueError, match=rf"^{named} must be"):
        TrainingConfig(**fields).validate()


def test_json_init_from_list_becomes_a_tuple():
    assert TrainingConfig(init_from=["a", "b"]).init_from == ("a", "b")


@pytest.mark.slow
def test_mask_mode_trains_m_alone_and_logs_both_psnrs(mask_run):
    config, trainer = mask_run
    assert list(trainer.networks) == ["mask_generator"] and trainer.critic is None
    # g is the untrained prefilled generator: exactly diffusion.
    assert trainer.generator.prefill == "diffusion"
    (row,) = [
        json.loads(x)
        for x in (trainer.model_dir / run_folder.HISTORY).read_text().splitlines()
    ]
    assert row["step"] == 2 and row["psnr"] == pytest.approx(row["psnr_hd"], abs=1e-3)
    assert row["train_seconds"] > 0 and row["train_cpu_seconds"] > 0
    expected = int(point_count(0.1, 16, 16)) / 256
    assert row["density"] == pytest.approx(expected)
    saved = json.loads((trainer.model_dir / "config.json").read_text())
    assert saved["mode"] == "mask" and saved["mask_operator"] == "diffusion"


@pytest.mark.slow
def test_dithered_export_keeps_the_exact_count(mask_run):
    config, trainer = mask_run
    loaded = tf.saved_model.load(str(trainer.model_dir / "export" / "mask_gan"))
    image = tf.random.uniform((2, 24, 32, 3), seed=1)
    out = loaded.signatures["serving_default"](image=image)
    count = int(point_count(0.1, 24, 32))
    np.testing.assert_array_equal(
        tf.reduce_sum(out["mask"], axis=(1, 2, 3)).numpy(), [count, count]
    )
    # The inference function for a confidence map gives the same masks.
    np.testing.assert_array_equal(
        binarise_confidence(out["confidence"], "ordered_dither", 0.1).numpy(),
        out["mask"].numpy(),
    )


@pytest.mark.parametrize("binarisation", ["hard_rounding", "ordered_dither"])
def test_binarise_confidence_is_the_networks_inference_mask(binarisation):
    m = MaskGenerator(None, 3, "tiny", binarisation, density=0.1)
    inputs = {
        "image": tf.random.uniform((2, 16, 16, 3), seed=2),
        "seed": tf.zeros((2, 16, 16, 3)),
    }
    confidence = m.confidence_model()(inputs, training=False)
    np.testing.assert_array_equal(
        binarise_confidence(confidence, binarisation, 0.1).numpy(),
        m(inputs, training=False).numpy(),
    )


def test_binarise_confidence_rejects_bad_arguments():
    c = tf.zeros((1, 8, 8, 1))
    with pytest.raises(ValueError, match="density must be"):
        binarise_confidence(c, "ordered_dither")
    with pytest.raises(ValueError, match="binarisation must be one of"):
        binarise_confidence(c, "top_k", 0.1)


@pytest.mark.slow
def test_joint_diffusion_operator_trains_m_on_the_diffusion_error(photos, tmp_path):
    config = TrainingConfig(
        data_dir=photos,
        model_dir=str(tmp_path / "run"),
        mask_operator="diffusion",
        binarisation="ordered_dither",
        prefill="diffusion",
        mask_prior="analytic",
        **TINY,
    )
    trainer = train(config, export=False)
    assert set(trainer.networks) == {"generator", "critic", "mask_generator"}
    batch = trainer.validation_batch(np.random.default_rng(0).random((2, 16, 16, 3)))
    batch = {k: tf.cast(v, tf.float32) for k, v in batch.items()}
    values = trainer._replica_step(batch)
    # Eq. 4 of m on the diffusion inpainting: density term + beta * its MAE
    # (every mask has the same exact count, so the per-image density term is
    # that of the mean).
    expected = abs(float(values["density"]) - 0.1) + float(values["diffusion_mae"])
    assert float(values["mask_loss"]) == pytest.approx(expected, rel=1e-5)
    saved = json.loads((trainer.model_dir / "config.json").read_text())
    assert (saved["prefill"], saved["mask_prior"]) == ("diffusion", "analytic")


@pytest.mark.slow
def test_halftoned_generator_masks_are_the_inference_masks(photos, tmp_path):
    """g and d see m's density halftoned as wgimask.inference does (seed 0 in
    validation, a new seed per image and step in training); m's own loss
    still sees its dithered mask."""
    from wgimask.nn.exact_diffusion import diffusion_inpaint

    config = TrainingConfig(
        data_dir=photos,
        model_dir=str(tmp_path / "run"),
        prefill="diffusion",
        mask_prior="analytic",
        seed=3,
        **HALFTONED,
        **{**TINY, "density": 0.2},
    )
    # The step and validation need no training run: a Trainer will do.
    trainer = Trainer(config)
    batch = trainer.validation_batch(np.random.default_rng(0).random((2, 16, 16, 3)))
    batch = {k: tf.cast(v, tf.float32) for k, v in batch.items()}
    image = batch["image"]
    mask, g_mask, inpainted = trainer._forward(batch, training=False)
    _, confidence = trainer._mask_and_confidence(
        {"image": image, "seed": batch["mask_seed"]}, training=False
    )
    for i, density_map in enumerate(confidence.numpy()[..., 0]):
        # What inference.Model.mask makes of this density.
        expected = halftone_density(density_map.astype(np.float64), 0.2)
        np.testing.assert_array_equal(g_mask.numpy()[i, ..., 0] > 0.5, expected)
    assert not np.array_equal(mask.numpy(), g_mask.numpy())
    # Training halftones each image of the global batch with its own seed.
    trainer.step.assign(5)
    np.testing.assert_array_equal(
        trainer._halftone_seeds(image, training=True).numpy(), [3 + 10, 3 + 11]
    )
    # Both masks keep exactly round(D N) points; g keeps its known pixels.
    count = int(point_count(0.2, 16, 16))
    for m in (mask, g_mask):
        np.testing.assert_array_equal(m.numpy().sum(axis=(1, 2, 3)), [count, count])
    known = np.broadcast_to(g_mask.numpy() > 0.5, inpainted.shape)
    np.testing.assert_allclose(
        inpainted.numpy()[known], image.numpy()[known], atol=1e-6
    )
    # Validation: Eq. 4 on m's own mask, mg+hd on g's (the inference) masks.
    values = trainer.validate(batch)

    def mae(m):
        return float(tf.reduce_mean(tf.abs(diffusion_inpaint(image, m) - image)))

    density = float(tf.reduce_mean(mask))
    assert values["mask_loss"] == pytest.approx(abs(density - 0.2) + mae(mask))
    assert values["mask_loss"] != pytest.approx(abs(density - 0.2) + mae(g_mask))
    assert np.array_equal(values["mask"].numpy(), g_mask.numpy())
    # And a training step runs.
    trainer._replica_step(batch)


@pytest.mark.slow
def test_warm_start_from_a_run_and_from_an_export(mask_run, photos, tmp_path):
    _, source = mask_run
    expected = [w.numpy() for w in source.mask_generator.weights]
    for folder in (source.model_dir, source.model_dir / "export"):
        m = MaskGenerator(None, 3, "tiny", "ordered_dither", density=0.1)
        assert warm_start([str(folder)], {"mask_generator": m}) == {
            "mask_generator": str(folder)
        }
        for got, want in zip(m.weights, expected, strict=True):
            np.testing.assert_array_equal(got.numpy(), want)
    # Through training: a new run starts from the source's weights.
    config = TrainingConfig(
        data_dir=photos,
        model_dir=str(tmp_path / "warm"),
        mode="mask",
        mask_operator="diffusion",
        binarisation="ordered_dither",
        init_from=(f"mask_generator={source.model_dir}",),
        **{**TINY, "epochs": 1, "steps_per_epoch": 1},
    )
    trainer = train(config, export=False)
    first = trainer.mask_generator.get_layer("encoder_1").weights[0].numpy()
    assert np.abs(first - expected[0]).max() < 0.01  # one small Adam step away


def test_warm_start_from_the_shipped_inpainter():
    folder = ROOT / "wgimask" / "pretrained" / "inpaint"
    g = InpaintingGenerator(None, 3, "small")
    assert warm_start([str(folder)], {"generator": g}) == {"generator": str(folder)}
    served = tf.saved_model.load(str(folder / "export" / "inpainter"))
    image = tf.random.uniform((1, 16, 16, 3), seed=3)
    mask = tf.cast(tf.random.uniform((1, 16, 16, 1), seed=4) < 0.2, tf.float32)
    np.testing.assert_allclose(
        export.inpaint(g, image, mask).numpy(),
        served.signatures["serving_default"](image=image, mask=mask)[
            "inpainted"
        ].numpy(),
        atol=1e-5,
    )


def test_warm_start_errors_are_one_line():
    folder = ROOT / "wgimask" / "pretrained" / "inpaint"
    prefilled = InpaintingGenerator(None, 3, "small", prefill="diffusion")
    with pytest.raises(WarmStartError, match="more input channels") as info:
        warm_start([str(folder)], {"generator": prefilled})
    assert "\n" not in str(info.value)
    with pytest.raises(WarmStartError, match="holds no mask_generator"):
        warm_start([f"mask_generator={folder}"], {"mask_generator": None})
    with pytest.raises(WarmStartError, match="is not a folder"):
        warm_start([str(folder / "missing")], {"generator": prefilled})


@pytest.fixture
def flags_parsed():
    sys.path.insert(0, str(ROOT))
    import train as script

    def parse(*argv):
        script.FLAGS.unparse_flags()
        script.FLAGS(["train.py", *argv])
        return script.config_from_flags()

    yield parse
    script.FLAGS.unparse_flags()


def test_flags(flags_parsed):
    config = flags_parsed("--preset=paper")
    assert all(getattr(config, name) is None for name in OPTIONS)
    config = flags_parsed(
        "--mask_operator=diffusion",
        "--prefill=diffusion",
        "--mask_prior=analytic",
        "--binarisation=ordered_dither",
        "--init_from=generator=a",
        "--init_from=b",
        "--density=0.1",
        "--generator_masks=halftoned",
    )
    assert config.generator_masks == "halftoned"
    assert (config.mask_operator, config.prefill, config.mask_prior) == (
        "diffusion",
        "diffusion",
        "analytic",
    )
    assert config.init_from == ("generator=a", "b")


@pytest.mark.slow
def test_inference_module_serves_dithered_prefilled_prior_runs(photos, tmp_path):
    """A run with every option loads through wgimask.inference; its masks are
    the model's own dither with exactly round(D N) points at any density."""
    from wgimask import inference

    config = TrainingConfig(
        data_dir=photos,
        model_dir=str(tmp_path / "run"),
        mask_operator="diffusion",
        prefill="diffusion",
        mask_prior="analytic",
        binarisation="ordered_dither",
        **TINY,
    )
    trainer = train(config)
    model = inference.load(tmp_path / "run")
    images = np.random.default_rng(0).random((2, 16, 24, 3)).astype(np.float32)
    for density in (0.1, 0.2):
        masks = model.mask(images, density)
        assert masks.shape == (2, 16, 24)
        assert (masks.sum(axis=(1, 2)) == int(point_count(density, 16, 24))).all()
    # The confidence halftoned as the analytic masks are, not its top-k
    # (which would cluster).
    confidence = model.confidence(images)
    masks = model.mask(images, config.density)
    for mask, density_map in zip(masks, confidence, strict=True):
        expected = halftone_density(density_map.astype(np.float64), config.density)
        np.testing.assert_array_equal(mask, expected)
    assert trainer.mask_generator.get_layer("binarization").operator == "ordered_dither"
