"""wgimask.inference: loading runs, exact densities, tiles without traces."""

import numpy as np
import pytest
from helpers import run_python, synthetic_image

from wgimask import inference
from wgimask.train import data

TILE = 32


@pytest.fixture(scope="module")
def run_dir(tiny_run):
    return tiny_run


@pytest.mark.slow  # deserialising the SavedModels takes seconds
def test_loaded_networks_equal_the_saved_models(run_dir):
    import tensorflow as tf

    model = inference.Model.load(run_dir / "export")  # the export folder works too
    assert model.path == run_dir and model.density == 0.1 and model.tile == TILE
    image = synthetic_image(TILE, TILE, seed=3)[None]
    served = tf.saved_model.load(str(run_dir / "export" / "mask_gan"))
    out = served.signatures["serving_default"](image=tf.constant(image))
    np.testing.assert_allclose(
        model.confidence(image), out["confidence"].numpy()[..., 0], atol=1e-5
    )
    mask = out["mask"].numpy()
    inpainter = tf.saved_model.load(str(run_dir / "export" / "inpainter"))
    expected = inpainter.signatures["serving_default"](
        image=tf.constant(image), mask=tf.constant(mask)
    )["inpainted"].numpy()
    np.testing.assert_allclose(model.inpaint(image, mask), expected, atol=1e-5)


@pytest.mark.slow
def test_keras_runtime_loads_the_exported_keras_files(run_dir, tmp_path):
    import shutil

    import keras

    import wgimask.nn.networks  # noqa: F401 (registers the layers)
    from wgimask.serve.parts import load_networks

    generator, mask_generator = load_networks(
        run_dir / "export", inference.read_config(run_dir)
    )
    for network, name in ((generator, "generator"), (mask_generator, "mask_generator")):
        saved = keras.models.load_model(run_dir / "export" / f"{name}.keras")
        for a, b in zip(network.weights, saved.weights, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    # A run exported without them is told how to export it again.
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / "export" / "mask_generator.keras").unlink()
    with pytest.raises(inference.ModelError, match="--export_only") as error:
        inference.Model.load(copy, runtime="keras")
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("shape", [(2, 2, 3), (5, 9, 3), (30, 31, 3), (45, 100, 3)])
def test_any_size_exact_density_and_known_pixels_kept(run_dir, shape):
    image = np.random.default_rng(0).uniform(size=shape).astype(np.float32)
    density = 0.3
    mask, inpainted = inference.optimise_mask(image, density, run_dir)
    assert mask.shape == shape[:2] and mask.dtype == bool
    assert mask.sum() == round(density * shape[0] * shape[1])
    assert inpainted.shape == shape and np.isfinite(inpainted).all()
    np.testing.assert_array_equal(inpainted[mask], image[mask])


def test_grey_images_and_bad_input_give_one_line_errors(run_dir):
    grey = synthetic_image(20, 24, seed=0)[..., 0]
    mask, inpainted = inference.optimise_mask(grey, 0.2, run_dir)
    assert inpainted.shape == (20, 24, 3)
    with pytest.raises(ValueError, match="keeps 0 of"):
        inference.optimise_mask(grey, 0.001, run_dir)
    with pytest.raises(ValueError, match="uint8"):
        inference.optimise_mask((grey * 255).astype(np.uint8), 0.2, run_dir)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        inference.optimise_mask(grey * 255, 0.2, run_dir)
    with pytest.raises(inference.ModelError, match="does not exist"):
        inference.optimise_mask(grey, 0.2, run_dir / "missing")


@pytest.mark.parametrize(
    "count, calls", [(1, [1]), (64, [64]), (65, [33, 33]), (130, [44, 44, 44])]
)
def test_parts_run_in_equal_calls_of_at_most_tile_batch_images(count, calls):
    seen = []

    def parts(name, arrays):
        seen.append(len(arrays[0]))
        return arrays[0] * 2.0

    model = inference.Model(TILE, {"mode": "inpaint", "channels": 1}, parts, "stub")
    images = np.arange(count, dtype=np.float32).reshape(count, 1, 1, 1)
    out = model._batched_arrays("generator", [images])
    # Equal sizes (the last call padded), every image once, in order.
    assert seen == calls
    np.testing.assert_array_equal(out, images * 2.0)


def test_phase_rank_spreads_points_evenly_over_tile_positions():
    rng = np.random.default_rng(1)
    # A confidence with a strong pattern at the tile period, plus content.
    y, x = np.mgrid[0:96, 0:128]
    pattern = np.cos(2 * np.pi * x / 16) + np.cos(2 * np.pi * y / 16)
    confidence = pattern + 0.3 * rng.standard_normal((96, 128))
    plain = inference.top_confidence_mask(confidence, 1229)
    tiled = inference.top_confidence_mask(confidence, 1229, tile=16)
    assert plain.sum() == tiled.sum() == 1229
    assert plain.mean(axis=0).reshape(-1, 16).mean(axis=0).std() > 0.1
    # Every tile position keeps the same share: flat profiles at the period.
    assert tiled.mean(axis=0).reshape(-1, 16).mean(axis=0).std() < 0.005
    assert tiled.mean(axis=1).reshape(-1, 16).mean(axis=0).std() < 0.005


def _periodicity(mask, period):
    """Spread of the column/row density folded at a period, in noise units."""
    ratios = []
    for axis in (0, 1):
        profile = mask.mean(axis=axis).astype(np.float64)
        usable = len(profile) // period * period
        folded = profile[:usable].reshape(-1, period)
        noise = profile.std() / np.sqrt(folded.shape[0])
        ratios.append(folded.mean(axis=0).std() / noise)
    return max(ratios)


@pytest.mark.slow
def test_shipped_model_mask_shows_no_tile_structure_on_a_real_photo():
    from wgimask import baselines

    # scikit-image's cat, 451x300: real and non-square.
    photo = data.embedded_photos(3)[data.EMBEDDED_PHOTO_NAMES.index("chelsea")]
    assert photo.shape[:2] == (300, 451)
    model = inference.load(inference.choose_model(None, 0.05))
    mask, inpainted = model.optimise_mask(photo, 0.05)
    assert mask.sum() == round(0.05 * 300 * 451)
    # The shipped models densify from an analytic start dithered with a 64 px
    # Bayer pattern, so their masks are more even than noise and may show
    # structure at the tile period by themselves. The reference is the
    # densification mask of the whole image computed without any tiles (the
    # shipped models' mask at zero correction): the learned correction's
    # tiles must add nothing. (The earlier half-overlapping tiles of ranked
    # masks gave 3-4 in noise units on random-like masks, whose own level is
    # about 1.)
    reference = baselines.densification_mask(photo, 0.05)
    for period in (model.tile, model.tile // 2):
        assert _periodicity(mask, period) < 1.1 * _periodicity(reference, period)


def test_lazy_package_imports_do_not_load_tensorflow():
    code = (
        "import sys, wgimask.baselines, wgimask.evaluation.metrics, wgimask.devices, "
        "wgimask.inference; import wgimask; wgimask.__version__; "
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    done = run_python(code, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]


@pytest.mark.slow  # exports two SavedModels
def test_prior_and_prefilled_models_see_the_whole_image(tmp_path):
    """Untrained corrections (zero), so a prior + dither + prefill model must
    give exactly the whole image's analytic mask (`baselines.analytic_mask`)
    and its whole-image diffusion inpainting on a photo of many tiles:
    nothing of the tiles shows."""
    import json

    import keras
    from helpers import photo_crop

    from wgimask import baselines
    from wgimask.nn.networks import InpaintingGenerator, MaskGenerator
    from wgimask.serve import export

    keras.utils.set_random_seed(3)
    export.export_models(
        tmp_path,
        InpaintingGenerator(None, 3, "tiny", prefill="diffusion"),
        MaskGenerator(None, 3, "tiny", "ordered_dither", density=0.1, prior="analytic"),
    )
    config = {
        "density": 0.1,
        "mode": "joint",
        "channels": 3,
        "model_size": "tiny",
        "image_size": TILE,
        "prefill": "diffusion",
        "mask_prior": "analytic",
        "binarisation": "ordered_dither",
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    model = inference.Model.load(tmp_path)
    image = photo_crop("chelsea", 128)[:, :100]  # 3 x 4 tiles of 32 px
    mask = model.mask(image[None], 0.1)[0]
    np.testing.assert_array_equal(mask, baselines.analytic_mask(image, 0.1))
    inpainted = model.inpaint(image[None], mask[None])[0]
    diffused = np.clip(baselines.inpaint(image, mask), 0.0, 1.0)
    np.testing.assert_allclose(inpainted, diffused, atol=1e-5)


@pytest.mark.parametrize(
    "shape", [(5, 5), (2, 2), (3, 7), (20, 20), (8, 13), (451, 300)]
)
def test_the_smallest_density_a_refusal_names_works(shape):
    with pytest.raises(ValueError, match="use at least") as error:
        inference.check_density(1e-9, shape)
    hint = float(str(error.value).rsplit("use at least ", 1)[1])
    assert inference.check_density(hint, shape) >= 1


def test_a_nan_pixel_is_named_as_such():
    from wgimask.inference import arrays

    image = np.full((8, 8, 3), 0.5)
    image[3, 4, 1] = np.nan
    with pytest.raises(ValueError, match="1 NaN or infinite value"):
        arrays.as_image(image, 3)
