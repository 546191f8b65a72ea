"""Run folders: one writer, safe reruns, no leftovers, no silent NaN."""

import dataclasses
import json
import os
import pathlib
import shutil
import stat
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import write_images

from wgimask import run_folder
from wgimask.config import TrainingConfig
from wgimask.nn.networks import InpaintingGenerator
from wgimask.serve import export
from wgimask.train.loop import NonFiniteError, train
from wgimask.train.trainer import Trainer

ROOT = pathlib.Path(__file__).resolve().parents[2]
TINY = dict(
    image_size=16,
    batch_size=4,
    model_size="tiny",
    steps_per_epoch=2,
    epochs=1,
    checkpoint_every=1,
    validation_fraction=0.3,
    density=0.1,
)


@pytest.fixture
def photos(tmp_path):
    write_images(tmp_path / "photos", count=4, size=(24, 32))
    return tmp_path / "photos"


def tiny_config(photos, model_dir, **changes):
    return TrainingConfig(
        data_dir=str(photos), model_dir=str(model_dir), **{**TINY, **changes}
    )


# --- One writer ---------------------------------------------------------------


def hold_lock(model_dir):
    """A process holding the run's lock until its stdin closes."""
    script = textwrap.dedent(
        f"""
        import sys
        from wgimask.run_folder import RunLock
        with RunLock({str(model_dir)!r}, "training"):
            print("locked", flush=True)
            sys.stdin.read()
        """
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


@pytest.mark.slow
def test_second_writer_stops_at_once_naming_folder_and_holder(photos, tmp_path):
    model_dir = tmp_path / "run"
    model_dir.mkdir()
    holder = hold_lock(model_dir)
    try:
        with pytest.raises(run_folder.RunFolderError) as error:
            train(tiny_config(photos, model_dir))
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    message = str(error.value)
    assert "\n" not in message
    assert str(model_dir) in message and f"process {holder.pid}" in message
    # Nothing was written by the refused run.
    assert sorted(p.name for p in model_dir.iterdir()) == [run_folder.LOCK_NAME]


def test_stale_lock_of_a_killed_run_is_taken_over(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, sys; from wgimask.run_folder import RunLock; "
            f"RunLock({str(tmp_path)!r}).acquire(); print('locked', flush=True); "
            "sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert holder.stdout.readline().strip() == "locked"
    holder.kill()
    holder.wait()
    stale = json.loads((tmp_path / run_folder.LOCK_NAME).read_text())
    assert stale["pid"] == holder.pid
    with run_folder.RunLock(tmp_path):
        now = json.loads((tmp_path / run_folder.LOCK_NAME).read_text())
        assert now["pid"] == os.getpid()
    assert (tmp_path / run_folder.LOCK_NAME).read_text() == ""


# --- Safe reruns ----------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_once(tmp_path_factory):
    root = tmp_path_factory.mktemp("finished")
    write_images(root / "photos", count=4, size=(24, 32))
    config = tiny_config(root / "photos", root / "run")
    train(config, export=False)
    return config


@pytest.fixture
def finished(finished_once, tmp_path):
    """A copy of one finished run (training once keeps the tests short)."""
    shutil.copytree(finished_once.model_dir, tmp_path / "run")
    return dataclasses.replace(finished_once, model_dir=str(tmp_path / "run"))


@pytest.mark.parametrize(
    "change, fields",
    [
        (dict(density=0.2), ["density"]),
        (dict(model_size="small"), ["model_size"]),
        (dict(mode="inpaint", channels=1), ["channels", "mode"]),
        (
            dict(image_size=24, binarisation="stochastic_rounding"),
            ["binarisation", "image_size"],
        ),
        (dict(beta=0.123), ["beta"]),
    ],
)
@pytest.mark.slow
def test_resuming_with_other_networks_or_objective_is_refused(finished, change, fields):
    before = (pathlib.Path(finished.model_dir) / "config.json").read_text()
    with pytest.raises(run_folder.RunFolderError) as error:
        train(dataclasses.replace(finished, **change), export=False)
    message = str(error.value)
    assert "\n" not in message
    for name in fields:
        assert f"{name} {getattr(finished, name)!r} -> {change[name]!r}" in message
    assert "--model_dir" in message and "--overwrite" in message
    # The saved config still describes the saved weights.
    assert (pathlib.Path(finished.model_dir) / "config.json").read_text() == before


@pytest.mark.slow
def test_resuming_with_longer_training_is_allowed_and_overwrite_starts_over(finished):
    longer = dataclasses.replace(finished, epochs=2, checkpoint_every=2)
    assert int(train(longer, export=False).step) == 4
    other = dataclasses.replace(finished, density=0.2)
    trainer = train(other, export=False, overwrite=True)
    assert int(trainer.step) == 2
    saved = json.loads((pathlib.Path(finished.model_dir) / "config.json").read_text())
    assert saved["density"] == 0.2


@pytest.mark.slow
def test_overwrite_leaves_no_file_of_the_first_run(finished):
    model_dir = pathlib.Path(finished.model_dir)
    # The first run validated (validated.json), wrote its history and its best.
    for name in (run_folder.VALIDATED, run_folder.HISTORY, run_folder.BEST):
        assert (model_dir / name).exists(), name
    # A whole rerun with --overwrite: every file is the second run's.
    started = max(p.stat().st_mtime_ns for p in model_dir.rglob("*"))
    rerun = dataclasses.replace(finished, density=0.2)
    train(rerun, export=False, overwrite=True)
    older = [
        str(p.relative_to(model_dir))
        for p in model_dir.rglob("*")
        if p.is_file() and p.stat().st_mtime_ns <= started
    ]
    assert older == []


@pytest.mark.slow
def test_export_and_warm_start_take_exactly_the_best_steps_weights(
    photos, tmp_path, monkeypatch
):
    from wgimask.train.warm_start import source_weights

    config = tiny_config(photos, tmp_path / "run", epochs=2)
    validate = Trainer.validate

    def first_epoch_best(self, batch):
        # The weights of step 2 (first epoch) score best, those of step 4 not.
        return {**validate(self, batch), "mask_loss": 0.1 * int(self.step)}

    monkeypatch.setattr(Trainer, "validate", first_epoch_best)
    train(config)
    run = pathlib.Path(config.model_dir)
    assert json.loads((run / "best" / "best.json").read_text())["step"] == 2
    # The weights of step 2, as the latest-checkpoint manager kept them.
    step2 = Trainer(config)
    step2.checkpoint.restore(str(run / "checkpoints" / "ckpt-2")).assert_consumed()
    # The export is step 2's weights exactly, network by network.
    for name in ("generator", "mask_generator", "critic"):
        saved = keras.models.load_model(run / "export" / f"{name}.keras")
        for a, b in zip(getattr(step2, name).weights, saved.weights, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)
    # The best checkpoint holds every weight of every trained network.
    best = [
        n
        for n, _ in tf.train.list_variables(
            tf.train.latest_checkpoint(str(run / "best"))
        )
    ]
    for name, network in step2.networks.items():
        held = [n for n in best if n.startswith(f"{name}_weights/")]
        assert len(held) == len(network.weights), name
    # So is a warm start from the run folder (--init_from).
    names = ("generator", "mask_generator", "critic")
    for name, weights in source_weights(run, names).items():
        for weight in getattr(step2, name).weights:
            np.testing.assert_array_equal(weights[weight.path], weight.numpy())


@pytest.mark.slow
def test_a_killed_overwrite_is_finished_by_the_next_run(finished, monkeypatch):
    model_dir = pathlib.Path(finished.model_dir)
    rmtree = shutil.rmtree

    def killed_after_checkpoints(path, *args, **kwargs):
        rmtree(path, *args, **kwargs)
        if pathlib.Path(path).name == run_folder.CHECKPOINTS:
            raise KeyboardInterrupt  # the process dies here

    with monkeypatch.context() as patch:
        patch.setattr(run_folder.shutil, "rmtree", killed_after_checkpoints)
        with pytest.raises(KeyboardInterrupt):
            train(dataclasses.replace(finished, density=0.2), overwrite=True)
    assert (model_dir / run_folder.BEST / run_folder.BEST_RECORD).exists()
    # Rerun without --overwrite: nothing of the old run may survive.
    started = time.time_ns()
    train(dataclasses.replace(finished, density=0.2), export=False)
    history = (model_dir / run_folder.HISTORY).read_text().splitlines()
    assert len(history) == 1  # the new run's one validation, none of the old
    best = model_dir / run_folder.BEST / run_folder.BEST_RECORD
    assert best.stat().st_mtime_ns >= started
    assert json.loads(best.read_text())["mask_loss"] == json.loads(history[0])["best"]


@pytest.mark.slow
def test_checkpoints_without_their_config_are_refused(finished):
    model_dir = pathlib.Path(finished.model_dir)
    (model_dir / run_folder.CONFIG).unlink()
    with pytest.raises(run_folder.RunFolderError, match="no config.json") as error:
        train(dataclasses.replace(finished, density=0.2), export=False)
    assert "\n" not in str(error.value) and "--overwrite" in str(error.value)


@pytest.mark.slow
def test_a_lost_checkpoint_state_file_still_resumes(finished):
    model_dir = pathlib.Path(finished.model_dir)
    (model_dir / run_folder.CHECKPOINTS / "checkpoint").unlink()
    trainer = Trainer(finished)
    assert trainer.restore() and int(trainer.step) == 2


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated data", "empty index"])
def test_a_damaged_checkpoint_falls_back_to_the_previous_one(finished, damage):
    folder = pathlib.Path(finished.model_dir) / run_folder.CHECKPOINTS
    if damage == "empty index":
        (folder / "ckpt-2.index").write_bytes(b"")
    else:
        data = next(folder.glob("ckpt-2.data-*"))
        data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    trainer = Trainer(finished)
    assert trainer.restore() and int(trainer.step) == 1


@pytest.mark.slow
def test_an_export_set_aside_by_a_killed_replacement_is_put_back(finished):
    model_dir = pathlib.Path(finished.model_dir)
    train(finished)  # writes export/
    export = model_dir / run_folder.EXPORT
    files = sorted(str(p.relative_to(export)) for p in export.rglob("*"))
    # The state a kill between replace_folder's two renames leaves: the old
    # export set aside, the new one complete in its temporary folder.
    aside = model_dir / f"{run_folder.EXPORT_OLD_PREFIX}k1ll3d"
    aside.mkdir()
    export.replace(aside / run_folder.EXPORT)
    shutil.copytree(aside / run_folder.EXPORT, model_dir / ".export-n3w")
    train(finished, export=False)
    assert sorted(str(p.relative_to(export)) for p in export.rglob("*")) == files
    assert not list(model_dir.glob(f"{run_folder.EXPORT_TEMP_PREFIX}*"))


def test_unknown_saved_fields_count_as_differences():
    assert run_folder.config_differences({"a": 1, "epochs": 3}, {"epochs": 4}) == ["a"]


# --- No leftovers; one mode ---------------------------------------------------------


@pytest.mark.slow
def test_leftovers_of_killed_writes_are_removed_at_start(finished):
    model_dir = pathlib.Path(finished.model_dir)
    leftovers = [
        model_dir / "checkpoints" / "ckpt-9_temp",
        model_dir / "best" / "ckpt-3_temp",
        model_dir / ".export-k1ll3d",
        model_dir / ".export-old-x0",
    ]
    for path in leftovers:
        path.mkdir(parents=True)
        (path / "part").write_text("half-written")
    train(finished, export=False)
    assert not [p for p in leftovers if p.exists()]
    assert (model_dir / "checkpoints" / "checkpoint").exists()


@pytest.mark.slow
def test_run_folder_has_one_mode_throughout(photos, tmp_path):
    model_dir = tmp_path / "run"
    train(tiny_config(photos, model_dir, mode="inpaint"))
    mode = stat.S_IMODE(model_dir.stat().st_mode)
    folders = [p for p in model_dir.rglob("*") if p.is_dir()]
    assert model_dir / "export" in folders
    assert {
        str(p.relative_to(model_dir)): oct(stat.S_IMODE(p.stat().st_mode))
        for p in folders
    } == {str(p.relative_to(model_dir)): oct(mode) for p in folders}


@pytest.mark.slow
def test_missed_validation_of_a_finished_epoch_is_redone(photos, tmp_path, monkeypatch):
    config = tiny_config(photos, tmp_path / "run")

    def killed(self, batch):
        raise KeyboardInterrupt("killed between checkpoint and validation")

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "validate", killed)
        with pytest.raises(KeyboardInterrupt):
            train(config, export=False)
    model_dir = pathlib.Path(config.model_dir)
    assert tf.train.latest_checkpoint(str(model_dir / "checkpoints")).endswith("-2")
    assert not (model_dir / "best" / "best.json").exists()
    train(config, export=False)
    best = json.loads((model_dir / "best" / "best.json").read_text())
    assert best["step"] == 2 and np.isfinite(best["mask_loss"])
    assert json.loads((model_dir / run_folder.VALIDATED).read_text()) == {"step": 2}


# --- No silent NaN ----------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [
        ("alpha", float("nan")),
        ("beta", float("nan")),
        ("alpha", float("inf")),
        ("learning_rate", float("inf")),
        ("density", float("nan")),
        ("validation_fraction", float("nan")),
    ],
)
def test_non_finite_settings_are_rejected(field, value):
    with pytest.raises(ValueError, match=f"^{field} must be a finite number"):
        TrainingConfig(**{field: value}).validate()


@pytest.mark.slow
def test_training_stops_at_the_first_non_finite_loss(photos, tmp_path):
    # A finite but absurd learning rate: the weights overflow within steps.
    config = tiny_config(
        photos,
        tmp_path / "run",
        learning_rate=1e30,
        lr_schedule="constant",
        steps_per_epoch=6,
    )
    with pytest.raises(NonFiniteError) as error:
        train(config)
    message = str(error.value)
    assert message.startswith("training stopped at step ") and "\n" not in message
    assert "loss" in message or "gradient norm" in message
    stopped = int(message.split()[4].rstrip(":"))
    model_dir = pathlib.Path(config.model_dir)
    saved = tf.train.get_checkpoint_state(str(model_dir / "checkpoints"))
    steps = [int(p.rsplit("-", 1)[1]) for p in saved.all_model_checkpoint_paths]
    assert max(steps) < stopped
    for path in saved.all_model_checkpoint_paths:
        reader = tf.train.load_checkpoint(path)
        for name in reader.get_variable_to_shape_map():
            value = reader.get_tensor(name)
            if isinstance(value, np.ndarray) and value.dtype.kind == "f":
                assert np.isfinite(value).all(), (path, name)
    assert not (model_dir / "export").exists()


def test_export_refuses_non_finite_weights(tmp_path):
    generator = InpaintingGenerator(None, 3, "tiny")
    weight = generator.weights[0]
    weight.assign(np.full(weight.shape, np.nan, np.float32))
    with pytest.raises(ValueError, match="not finite"):
        export.export_models(tmp_path, generator)
    assert list(tmp_path.iterdir()) == []
