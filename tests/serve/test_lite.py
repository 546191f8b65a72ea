"""wgimask.serve.lite and both inference runtimes: LiteRT without TensorFlow, Keras."""

import json
import shutil

import numpy as np
import pytest
from helpers import photo_crop, run_python, synthetic_image

from wgimask import inference
from wgimask.nn.stateless_noise import stateless_normal
from wgimask.serve import lite


@pytest.fixture(scope="module")
def runtimes(tiny_run):
    """The tiny run loaded with each runtime."""
    return {r: inference.Model.load(tiny_run, r) for r in ("litert", "keras")}


@pytest.mark.parametrize(
    "shape, seed, stddev",
    [
        ((5,), (1, 2), 1.0),
        ((2, 33, 17, 3), (20230, 1), 0.1),
        ((7,), (-1, 2**31 - 1), 2.0),
    ],
)
def test_stateless_normal_is_tensorflows_draw(shape, seed, stddev):
    import tensorflow as tf

    expected = tf.random.stateless_normal(shape, seed=seed, stddev=stddev).numpy()
    drawn = stateless_normal(shape, seed, stddev)
    assert drawn.dtype == np.float32 and drawn.shape == shape
    # Equal up to an ulp of numpy's float32 log / sin / cos against glibc's.
    np.testing.assert_allclose(drawn, expected, rtol=2e-7, atol=1e-7 * stddev)
    with pytest.raises(ValueError, match="two integers"):
        stateless_normal(shape, (1, 2, 3))


@pytest.mark.parametrize("shape", [(20, 27, 3), (45, 100, 3)])  # one pass, tiles
def test_litert_and_keras_runtimes_agree(runtimes, shape):
    litert, keras_model = runtimes["litert"], runtimes["keras"]
    assert (litert.runtime, keras_model.runtime) == ("litert", "keras")
    _assert_runtimes_agree(
        litert, keras_model, synthetic_image(*shape[:2], seed=4), 0.2
    )


def _assert_runtimes_agree(litert, keras_model, image, density):
    """The same confidence, mask and inpainting of one image on both runtimes."""
    images = image[None]
    np.testing.assert_allclose(
        litert.confidence(images), keras_model.confidence(images), atol=1e-5
    )
    mask = litert.mask(images, density)
    np.testing.assert_array_equal(mask, keras_model.mask(images, density))
    np.testing.assert_allclose(
        litert.inpaint(images, mask), keras_model.inpaint(images, mask), atol=1e-5
    )


def test_an_empty_batch_is_a_one_line_error(runtimes):
    with pytest.raises(ValueError, match=r"N >= 1, received \(0, 8, 8, 3\)"):
        runtimes["litert"].confidence(np.zeros((0, 8, 8, 3), np.float32))


def test_auto_runtime_is_litert_and_a_stale_folder_falls_back(
    tiny_run, tmp_path, capsys
):
    assert inference.Model.load(tiny_run).runtime == "litert"
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    manifest = run / "export" / "lite" / "manifest.json"
    manifest.write_text(
        json.dumps({**json.loads(manifest.read_text()), "weights": "0"})
    )
    model = inference.Model.load(run)
    assert model.runtime == "keras"
    note = capsys.readouterr().err
    assert "other weights" in note and f"python -m wgimask.serve.lite {run}" in note
    with pytest.raises(inference.ModelError, match="cannot run .* with LiteRT"):
        inference.Model.load(run, "litert")
    with pytest.raises(inference.ModelError, match="runtime must be one of"):
        inference.Model.load(run, "onnx")
    # Rebuilt from the exported weights, it serves again, with the same numbers.
    shutil.rmtree(run / "export" / "lite")
    assert lite.main(["wgimask.serve.lite", str(run)]) == 0
    assert (
        lite.lite_problem(run / "export", json.loads((run / "config.json").read_text()))
        is None
    )
    image = synthetic_image(40, 40, seed=1)[None]
    np.testing.assert_allclose(
        inference.Model.load(run, "litert").confidence(image),
        inference.Model.load(tiny_run, "litert").confidence(image),
        atol=1e-6,
    )


def test_rebuild_command_without_folders_is_a_usage_error(capsys):
    assert lite.main(["wgimask.serve.lite"]) == 2
    assert "give one or more run folders" in capsys.readouterr().err
    assert lite.main(["wgimask.serve.lite", "/nonexistent/run"]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_every_shipped_model_has_current_lite_parts():
    models = inference.shipped_models()
    assert models
    for path in [*models.values(), inference.PRETRAINED_DIR / "inpaint"]:
        exported = inference.export_dir(path)
        assert lite.lite_problem(exported, inference.read_config(exported)) is None


@pytest.mark.slow  # builds the shipped 10 % model's Keras networks
def test_shipped_prior_and_prefilled_parts_agree_across_runtimes():
    path = inference.choose_model(None, 0.1)
    litert, keras_model = (inference.Model.load(path, r) for r in ("litert", "keras"))
    assert litert.prior and litert.prefilled
    image = photo_crop("chelsea", 128)[:, :100]  # 2 x 2 tiles of 64 px
    _assert_runtimes_agree(litert, keras_model, image, 0.1)


def test_the_commands_inference_path_never_imports_tensorflow():
    code = (
        "import sys, numpy as np, wgimask\n"
        "image = np.random.default_rng(0).random((70, 90, 3), np.float32)\n"
        "mask, inpainting = wgimask.optimise_mask(image, 0.1)\n"
        "assert mask.sum() == 630 and inpainting.shape == image.shape\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    done = run_python(code, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]
    assert "XNNPACK" not in done.stderr


@pytest.mark.slow  # exports two SavedModels
def test_grey_mixed_precision_export_converts_float32_parts(tmp_path):
    """A run trained in mixed precision (networks computing in bfloat16)
    still exports LiteRT parts that compute in float32, as the Keras
    runtime does; grey networks take one channel."""
    import keras

    from wgimask.nn.networks import InpaintingGenerator, MaskGenerator
    from wgimask.serve import export

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        keras.utils.set_random_seed(5)
        generator = InpaintingGenerator(None, 1, "tiny")
        mask_generator = MaskGenerator(None, 1, "tiny")
    finally:
        keras.config.set_dtype_policy(previous)
    assert generator.dtype_policy.name == "mixed_bfloat16"
    export.export_models(tmp_path, generator, mask_generator)
    config = {"density": 0.1, "mode": "joint", "channels": 1, "model_size": "tiny"}
    (tmp_path / "config.json").write_text(json.dumps({**config, "image_size": 32}))
    litert, keras_model = (
        inference.Model.load(tmp_path, r) for r in ("litert", "keras")
    )
    _assert_runtimes_agree(
        litert, keras_model, synthetic_image(40, 36, seed=2)[..., :1], 0.2
    )
