"""Training NetE and NetM of Dai et al. (wgimask.train.dai): a few steps each,
checkpoints, resumption, validation, settings."""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import synthetic_image

from wgimask import run_folder
from wgimask.nn import dai
from wgimask.serve import dai_export
from wgimask.train import dai as train_dai

SMALL = train_dai.DaiSettings(
    density=0.2,
    batch_size=4,
    steps=4,
    learning_rate=2e-3,
    seed=5,
    width=4,
    netm_filters=8,
    netm_blocks=1,
    mean_shift_iterations=5,
    checkpoint_every=2,
)


@pytest.fixture(scope="module")
def images():
    return [synthetic_image(80, 96, seed=i) for i in range(4)]


def _weights(model):
    return [w.numpy().copy() for w in model.weights]


def test_nete_training_lowers_the_loss_checkpoints_and_validates(tmp_path, images):
    settings = dataclasses.replace(
        SMALL, steps=12, checkpoint_every=5, validate_every=6
    )
    crops = np.stack([im[:64, :64] for im in images])
    seen = []
    run = train_dai.train_nete(
        settings,
        train_dai.crop_stream(settings, "nete", images=images),
        tmp_path,
        progress=lambda step, values: seen.append((step, values)),
        validation=crops,
    )
    assert [step for step, _ in seen] == list(range(1, 13)) and run.step == 12
    assert set(seen[0][1]) == {"loss", "psnr", "density"}
    losses = [values["loss"] for _, values in seen]
    assert np.mean(losses[-3:]) < np.mean(losses[:3]), losses
    assert abs(run.metrics["density"] - 0.2) < 0.03
    numbers = sorted(
        int(p.name[5:-6]) for p in (tmp_path / run_folder.CHECKPOINTS).glob("*.index")
    )
    # Every 5 steps, the last one, and each validated step (6) before its
    # validation; the newest three are kept.
    assert numbers == [6, 10, 12]
    saved = json.loads((tmp_path / run_folder.CONFIG).read_text())
    assert saved["network"] == "nete" and saved["width"] == 4
    loaded = keras.saving.load_model(train_dai.model_path(tmp_path, "nete"))
    for a, b in zip(_weights(loaded), _weights(run.model), strict=True):
        np.testing.assert_array_equal(a, b)
    # Validation at steps 6 and 12; the best weights kept apart.
    assert "validation/psnr" in seen[5][1] and "validation/psnr" not in seen[4][1]
    history = [
        json.loads(line)
        for line in (tmp_path / run_folder.HISTORY).read_text().splitlines()
    ]
    assert [h["step"] for h in history] == [6, 12]
    assert run.best["psnr"] == max(h["psnr"] for h in history)
    best_path = train_dai.model_path(tmp_path, "nete", best=True)
    assert best_path.exists()
    # The serving SavedModel: the best weights, known pixels kept.
    served = tf.saved_model.load(str(tmp_path / "export" / "nete"))
    serve = served.signatures["serving_default"]
    image = tf.constant(crops[:2], tf.float32)
    mask = tf.cast(
        tf.random.stateless_uniform((2, 64, 64, 1), [1, 2]) < 0.2, tf.float32
    )
    out = serve(image=image, mask=mask)["inpainted"].numpy()
    best = keras.saving.load_model(best_path)
    expected = best({"image": image * mask, "mask": mask}, training=False).numpy()
    expected = np.where(mask.numpy() > 0.5, crops[:2], expected)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    with pytest.raises((ValueError, TypeError, tf.errors.InvalidArgumentError)):
        serve(image=tf.zeros((1, 32, 32, 3)), mask=tf.zeros((1, 32, 32, 1)))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"in \[0, 1\]"):
        serve(image=image + 2.0, mask=mask)


def test_netm_training_against_frozen_nete(tmp_path, images):
    nete = dai.build_nete(64, 3, width=4)
    before = _weights(nete)
    keras.utils.set_random_seed(SMALL.seed)  # as the run does before its NetM
    netm_before = _weights(dai.build_netm(64, 3, 0.2, 8, 1, 5))
    seen = []
    run = train_dai.train_netm(
        SMALL,
        nete,
        train_dai.crop_stream(SMALL, "netm", images=images),
        tmp_path,
        progress=lambda step, values: seen.append(values),
    )
    assert run.step == 4 and len(seen) == 4
    assert nete.trainable is False
    for a, b in zip(before, _weights(nete), strict=True):
        np.testing.assert_array_equal(a, b)  # NetE (and its statistics) untouched
    for values in seen:
        assert values["density"] == pytest.approx(0.2, abs=1e-6)
        assert np.isfinite(values["loss"])
    moved = max(
        np.abs(a - b).max()
        for a, b in zip(netm_before, _weights(run.model), strict=True)
    )
    assert moved > 1e-4
    assert train_dai.model_path(tmp_path, "netm").exists()
    # The serving SavedModel: image -> exact-density mask, NetE's inpainting.
    serve = tf.saved_model.load(str(tmp_path / "export" / "netm")).signatures[
        "serving_default"
    ]
    image = tf.constant(np.stack([im[:64, :64] for im in images[:2]]), tf.float32)
    out = serve(image=image)
    mask = out["mask"].numpy()
    assert mask.shape == (2, 64, 64, 1)
    assert set(np.unique(mask)) <= {0.0, 1.0}
    assert (mask.sum(axis=(1, 2, 3)) == round(0.2 * 64 * 64)).all()
    # The weighted draw of the evaluation's default, with a fixed seed.
    maps = run.model({"image": image}, training=False)
    np.testing.assert_array_equal(
        mask, dai.sampled_mask(maps, 0.2, dai_export.SERVING_SEED).numpy()
    )
    np.testing.assert_array_equal(serve(image=image)["mask"].numpy(), mask)
    masks = tf.constant(mask)
    expected = nete({"image": image * masks, "mask": masks}, training=False).numpy()
    expected = np.where(mask > 0.5, image.numpy(), expected)
    np.testing.assert_allclose(out["inpainted"].numpy(), expected, atol=1e-5)


def test_resume_continues_from_the_saved_step(tmp_path, images):
    starts = []

    def stream(settings):
        inner = train_dai.crop_stream(settings, "nete", images=images)

        def from_step(step):
            starts.append(step)
            return inner(step)

        return from_step

    whole = train_dai.train_nete(
        dataclasses.replace(SMALL, steps=6), stream(SMALL), tmp_path / "whole"
    )
    first = train_dai.train_nete(SMALL, stream(SMALL), tmp_path / "split")
    assert first.step == 4
    seen = []
    settings = dataclasses.replace(SMALL, steps=6)
    second = train_dai.train_nete(
        settings,
        stream(settings),
        tmp_path / "split",
        progress=lambda step, values: seen.append(step),
    )
    assert starts == [0, 0, 4]
    assert seen == [5, 6] and second.step == 6
    # The same data, masks and Adam state: the same weights as one run.
    for a, b in zip(_weights(whole.model), _weights(second.model), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    # Nothing left to do: returns at once.
    again = train_dai.train_nete(settings, stream(settings), tmp_path / "split")
    assert again.step == 6 and again.metrics == {}
    # Another network or objective in the same folder is refused.
    other = dataclasses.replace(settings, density=0.1)
    with pytest.raises(run_folder.RunFolderError, match="density 0.2 -> 0.1"):
        train_dai.train_nete(other, stream(other), tmp_path / "split")


def test_batches_of_the_wrong_shape_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"received \(2, 64, 64, 3\)"):
        train_dai.train_nete(SMALL, [np.zeros((2, 64, 64, 3), np.float32)], tmp_path)
    crops = np.zeros((2, 32, 32, 3), np.float32)
    with pytest.raises(ValueError, match=r"received shape \(2, 32, 32, 3\)"):
        train_dai.train_nete(SMALL, [], tmp_path / "v", validation=crops)
    with pytest.raises(ValueError, match="no `validation` crops"):
        settings = dataclasses.replace(SMALL, validate_every=2)
        train_dai.train_nete(settings, [], tmp_path / "v")


@pytest.mark.parametrize(
    ("change", "received"),
    [
        ({"density": 0.0}, "received 0.0"),
        ({"image_size": 32}, "received 32"),
        ({"batch_size": 0}, "received 0"),
        ({"nete_masks": "random"}, "received 'random'"),
        ({"beta_1": 1.0}, "received 1.0"),
        ({"validate_every": -1}, "received -1"),
    ],
)
def test_settings_errors_are_one_line(change, received):
    with pytest.raises(ValueError) as error:
        dataclasses.replace(SMALL, **change).validate()
    message = str(error.value)
    assert "\n" not in message and received in message


def test_dai_defaults():
    settings = train_dai.DaiSettings().validate()
    assert (settings.batch_size, settings.learning_rate) == (128, 2e-4)
    assert settings.adam_beta_1("nete") == 0.5 and settings.adam_beta_1("netm") == 0.9
    assert settings.steps == 800 * 782


@pytest.mark.slow
def test_two_replicas_train_and_resume(tmp_path):
    """MirroredStrategy over two logical CPUs: both networks train and resume."""
    here = os.path.dirname(os.path.abspath(__file__))
    paths = [here, os.path.dirname(here)]  # this file's folder, helpers.py's
    script = textwrap.dedent(
        f"""
        import dataclasses, numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import sys; sys.path[:0] = {paths!r}
        from test_dai_training import SMALL
        from wgimask.train import dai as train_dai
        x = np.random.default_rng(0).random((4, 64, 64, 3)).astype("float32")
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        nete = train_dai.train_nete(SMALL, [x] * 4, {str(tmp_path / "e")!r},
                                    strategy=strategy).model
        run = train_dai.train_netm(SMALL, nete, [x] * 4, {str(tmp_path / "m")!r},
                                   strategy=strategy, validation=x)
        more = dataclasses.replace(SMALL, steps=6)
        again = train_dai.train_netm(more, nete, [x] * 2, {str(tmp_path / "m")!r},
                                     strategy=strategy)
        print("steps", run.step, again.step, again.metrics["density"])
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "steps 4 6 0.2" in result.stdout, result.stdout


def test_resumed_runs_continue_their_training_time(tmp_path):
    # The validation rows carry the training steps' wall and CPU seconds; a
    # resumed run goes on from the last row at or before its step (rows of
    # steps after the checkpoint, and rows without the times, count as 0).
    rows = [
        {"step": 2, "psnr": 20.0},
        {"step": 4, "psnr": 21.0, "train_seconds": 3.0, "train_cpu_seconds": 5.0},
        {"step": 6, "psnr": 22.0, "train_seconds": 4.5, "train_cpu_seconds": 7.0},
    ]
    (tmp_path / run_folder.HISTORY).write_text(
        "".join(json.dumps(row) + "\n" for row in rows)
    )
    resumed = train_dai._resumed_timing
    assert resumed(tmp_path, 5) == {"train_seconds": 3.0, "train_cpu_seconds": 5.0}
    assert resumed(tmp_path, 3) == {"train_seconds": 0.0, "train_cpu_seconds": 0.0}
    assert resumed(tmp_path / "new", 0) == {
        "train_seconds": 0.0,
        "train_cpu_seconds": 0.0,
    }
