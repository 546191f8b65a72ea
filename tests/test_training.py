import contextlib
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
from helpers import synthetic_image, write_images

from wgimask import data
from wgimask.blocks import reference_ops
from wgimask.training import Trainer, TrainingConfig, prepare_images, train

TINY = dict(
    image_size=32,
    batch_size=4,
    model_size="tiny",
    steps_per_epoch=3,
    epochs=2,
    checkpoint_every=2,
    validation_fraction=0.3,
)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("training")
    write_images(root / "photos")
    config = TrainingConfig(
        data_dir=str(root / "photos"), model_dir=str(root / "run"), **TINY
    )
    trainer = train(config)
    return config, trainer


@pytest.mark.slow
def test_training_writes_checkpoints_summaries_and_export(run):
    config, trainer = run
    model_dir = trainer.model_dir
    assert int(trainer.step) == config.total_steps == 6
    checkpoints = trainer.manager.checkpoints
    # Every 2 steps and at each epoch end (step 3); the last three are kept.
    assert [c.rsplit("-", 1)[-1] for c in checkpoints] == ["3", "4", "6"]
    assert (model_dir / "best" / "best.json").exists()
    assert any((model_dir / "logs").iterdir())
    export = model_dir / "export"
    for name in ("mask_gan", "inpainter"):
        assert (export / name / "saved_model.pb").exists()
    for name in ("generator", "mask_generator", "critic"):
        assert (export / f"{name}.keras").exists()
    assert json.loads((model_dir / "config.json").read_text())["density"] == 0.05


@pytest.mark.slow
def test_rerun_resumes_from_checkpoint(run):
    config, trainer = run
    longer = dataclasses.replace(config, epochs=3)
    resumed = Trainer(longer)
    assert resumed.restore()
    assert int(resumed.step) == 6
    for a, b in zip(
        resumed.optimizers["generator"].variables,
        trainer.optimizers["generator"].variables,
        strict=True,
    ):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    continued = train(longer, export=False)
    assert int(continued.step) == 9


@pytest.mark.slow
def test_density_term_moves_mask_density_towards_target(tmp_path):
    images = [synthetic_image(48, 64, seed=i) for i in range(4)]
    config = TrainingConfig(
        density=0.1,
        learning_rate=1e-3,
        lr_schedule="constant",
        model_dir=str(tmp_path),
        **{**TINY, "steps_per_epoch": 12, "epochs": 1},
    )
    trainer = Trainer(config)
    dataset = trainer.add_noise(data.training_dataset(images, 32, 4, seed=0))
    iterator = iter(trainer.strategy.experimental_distribute_dataset(dataset))
    densities = [
        float(trainer.train_step(next(iterator))["density"]) for _ in range(12)
    ]
    assert abs(np.mean(densities[-3:]) - 0.1) < abs(densities[0] - 0.1) / 2


@pytest.mark.slow
def test_inpaint_mode_uses_exact_random_masks(tmp_path):
    images = [synthetic_image(48, 64, seed=i) for i in range(3)]
    config = TrainingConfig(
        mode="inpaint", density=0.2, model_dir=str(tmp_path), **TINY
    )
    trainer = Trainer(config)
    assert trainer.mask_generator is None
    dataset = trainer.add_noise(data.training_dataset(images, 32, 4, seed=0))
    batch = next(iter(dataset))
    np.testing.assert_array_equal(tf.reduce_sum(batch["mask"], [1, 2, 3]), [205] * 4)
    values = trainer.train_step(batch)
    assert abs(float(values["density"]) - 205 / 1024) < 1e-6


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(density=1.0), "density must be in"),
        (dict(density=0.0), "density must be in"),
        (dict(image_size=36), "image_size must be a positive multiple of 8"),
        (dict(batch_size=0), "batch_size"),
        (dict(steps_per_epoch=-1), "steps_per_epoch"),
        (dict(mode="both"), "mode"),
        (dict(binarisation="sign"), "binarisation"),
        (dict(validation_fraction=1.0), "validation_fraction"),
        (dict(precision="float16"), "precision"),
    ],
)
def test_invalid_config_names_the_field(change, match):
    with pytest.raises(ValueError, match=match):
        TrainingConfig(**change).validate()


def test_bad_data_folders_fail_before_models(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        prepare_images(TrainingConfig(data_dir=str(tmp_path / "missing")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image"):
        prepare_images(TrainingConfig(data_dir=str(tmp_path / "empty")))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "a.png").write_bytes(b"not a png")
    with pytest.raises(ValueError):
        prepare_images(TrainingConfig(data_dir=str(tmp_path / "broken")))


def test_validation_dir_keeps_every_data_dir_image_for_training(tmp_path):
    write_images(tmp_path / "train", count=5)
    write_images(tmp_path / "val", count=2, size=(40, 56))
    config = TrainingConfig(
        data_dir=str(tmp_path / "train"), validation_dir=str(tmp_path / "val")
    )
    train_images, val_images, names = prepare_images(config)
    assert len(train_images) == len(names) == 5
    assert [v.shape for v in val_images] == [(40, 56, 3)] * 2
    missing = dataclasses.replace(config, validation_dir=str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="^validation_dir: .*does not exist"):
        prepare_images(missing)


@pytest.mark.slow
def test_two_devices_match_one_device(tmp_path):
    """A MirroredStrategy step over two logical CPUs equals a one-device step."""
    script = textwrap.dedent(
        f"""
        import numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import sys; sys.path.insert(0, {os.path.dirname(__file__)!r})
        from helpers import synthetic_image
        from wgimask import data
        from wgimask.training import Trainer, TrainingConfig
        images = [synthetic_image(48, 64, seed=i) for i in range(3)]
        config = TrainingConfig(model_dir={str(tmp_path)!r}, **{TINY!r})
        weights = []
        for strategy in (tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]),
                         tf.distribute.OneDeviceStrategy("/cpu:0")):
            trainer = Trainer(config, strategy)
            assert trainer.strategy.num_replicas_in_sync in (1, 2)
            ds = trainer.add_noise(data.training_dataset(images, 32, 4, seed=0))
            it = iter(strategy.experimental_distribute_dataset(ds))
            trainer.train_step(next(it))
            weights.append([v.numpy() for n in trainer.networks.values()
                            for v in n.weights])
        assert len(weights[0]) == len(weights[1])
        worst = max(np.abs(a - b).max() for a, b in zip(*weights))
        print("max weight difference", worst)
        # The step must have changed the weights for the comparison to count.
        fresh = Trainer(config, tf.distribute.OneDeviceStrategy("/cpu:0"))
        moved = max(np.abs(a - b.numpy()).max() for a, b in zip(
            weights[1], [v for n in fresh.networks.values() for v in n.weights]))
        assert moved > 1e-4, moved
        assert worst < 1e-5, worst
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "max weight difference" in result.stdout


@pytest.mark.slow
def test_fused_step_matches_stock_step(tmp_path):
    """Two steps with the fused block ops equal those with stock ops.

    Inpaint mode keeps the test short; test_networks checks the mask
    generator's gradients through the same layers.
    """
    images = [synthetic_image(48, 64, seed=i) for i in range(3)]
    config = TrainingConfig(model_dir=str(tmp_path), mode="inpaint", **TINY)
    weights, losses = [], []
    for stock in (False, True):
        with reference_ops() if stock else contextlib.nullcontext():
            trainer = Trainer(config)
            dataset = trainer.add_noise(data.training_dataset(images, 32, 4, seed=0))
            iterator = iter(dataset)
            values = [trainer.train_step(next(iterator)) for _ in range(2)]
        losses.append([float(v["generator_loss"]) for v in values])
        weights.append(
            [v.numpy() for n in trainer.networks.values() for v in n.weights]
        )
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)
    worst = max(np.abs(a - b).max() for a, b in zip(*weights, strict=True))
    assert worst < 1e-5, worst


@pytest.mark.slow
def test_mixed_precision_keeps_eq1_and_losses_in_float32(tmp_path):
    precision = "mixed_float16"
    images = [synthetic_image(48, 64, seed=i) for i in range(3)]
    config = TrainingConfig(
        model_dir=str(tmp_path), precision=precision, **{**TINY, "image_size": 16}
    )
    trainer = Trainer(config)
    # The policy applies to the networks only, not to what is built later.
    assert keras.config.dtype_policy().name == "float32"
    assert trainer.generator.get_layer("encoder_1").dtype_policy.name == precision
    for net, layer in [
        (trainer.generator, "inpainting_constraint"),
        (trainer.mask_generator, "binarization"),
        (trainer.critic, "score"),
    ]:
        assert net.get_layer(layer).dtype_policy.name == "float32"
    batch = next(iter(trainer.add_noise(data.training_dataset(images, 16, 4, seed=0))))
    mask, inpainted = trainer._forward(batch, training=False)
    assert inpainted.dtype == mask.dtype == tf.float32
    known = np.broadcast_to(mask.numpy() > 0, inpainted.shape)
    np.testing.assert_array_equal(
        inpainted.numpy()[known], batch["image"].numpy()[known]
    )
    # Steps with loss scaling (inpaint mode: a smaller graph to trace).
    trainer = Trainer(dataclasses.replace(config, mode="inpaint"))
    assert all(
        isinstance(o, keras.optimizers.LossScaleOptimizer)
        for o in trainer.optimizers.values()
    )
    iterator = iter(trainer.add_noise(data.training_dataset(images, 16, 4, seed=0)))
    for _ in range(2):
        values = trainer.train_step(next(iterator))
    assert all(np.isfinite(float(v)) for v in values.values())


@pytest.mark.slow
def test_xla_step_matches_the_plain_step(tmp_path):
    images = [synthetic_image(48, 64, seed=i) for i in range(3)]
    config = TrainingConfig(model_dir=str(tmp_path / "a"), **{**TINY, "image_size": 16})
    batch = next(
        iter(Trainer(config).add_noise(data.training_dataset(images, 16, 4, seed=0)))
    )
    results = []
    for jit in (False, True):
        run = dataclasses.replace(
            config, jit_compile=jit, model_dir=str(tmp_path / f"{jit}")
        )
        trainer = Trainer(run)  # same seed: same initial weights
        values = trainer.train_step(batch)
        results.append((values, trainer.generator.get_weights()))
    (plain, g_plain), (xla, g_xla) = results
    for name in ("critic_loss", "generator_loss", "mask_loss", "density"):
        np.testing.assert_allclose(
            float(xla[name]), float(plain[name]), rtol=1e-4, atol=1e-6
        )
    for a, b in zip(g_xla, g_plain, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_progress_is_plain_lines_when_not_on_a_terminal(capsys):
    from wgimask.training import _PlainProgress, _progress

    progress = _progress(3, ["loss"])  # pytest's stdout is no terminal
    assert isinstance(progress, _PlainProgress)
    for step in (1, 2, 3):
        progress.update(step, [("loss", 0.5)])
    out = capsys.readouterr().out
    # The epoch's last update always prints; others at most every 10 s.
    assert out.splitlines()[-1].startswith("3/3 - ")
    assert "loss: 0.5" in out
    assert "\r" not in out and "\x1b" not in out
