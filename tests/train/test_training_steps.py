"""Training steps computed other ways give the same step.

Two logical devices under MirroredStrategy, the fused block ops, mixed
precision and XLA, each against the plain one-device float32 step. Kept apart
from test_training.py so that test workers can run the two files at once
(each traces several training steps).
"""

import contextlib
import dataclasses
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import synthetic_image
from test_training import TINY

from wgimask.config import TrainingConfig
from wgimask.nn.fused_conv import reference_ops
from wgimask.train import data
from wgimask.train.trainer import Trainer


@pytest.mark.slow
def test_two_devices_match_one_device(tmp_path):
    """A MirroredStrategy step over two logical CPUs equals a one-device step."""
    script = textwrap.dedent(
        f"""
        import numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import sys; sys.path.insert(0, {os.path.dirname(os.path.dirname(__file__))!r})
        from helpers import synthetic_image
        from wgimask.train import data
        from wgimask.train.trainer import Trainer
        from wgimask.config import TrainingConfig
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
    mask, _, inpainted = trainer._forward(batch, training=False)
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
