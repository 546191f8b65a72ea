import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf
from helpers import synthetic_image, write_images

from wgimask.config import TrainingConfig
from wgimask.train import data
from wgimask.train.loop import prepare_images, train
from wgimask.train.trainer import Trainer

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


def test_progress_is_plain_lines_when_not_on_a_terminal(capsys):
    from wgimask.train.loop import _PlainProgress, _progress

    progress = _progress(3, ["loss"])  # pytest's stdout is no terminal
    assert isinstance(progress, _PlainProgress)
    for step in (1, 2, 3):
        progress.update(step, [("loss", 0.5)])
    out = capsys.readouterr().out
    # The epoch's last update always prints; others at most every 10 s.
    assert out.splitlines()[-1].startswith("3/3 - ")
    assert "loss: 0.5" in out
    assert "\r" not in out and "\x1b" not in out
