"""The train.py entry script: flags, one-line errors, SIGKILL and resume."""

import dataclasses
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf
from helpers import write_images

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import train  # noqa: E402
from wgimask import run_folder  # noqa: E402
from wgimask.config import TrainingConfig  # noqa: E402


@pytest.fixture
def flags_parsed():
    def parse(*argv, pack=True):
        train.FLAGS.unparse_flags()
        train.FLAGS(["train.py", *argv])
        return train.config_from_flags() if pack else None

    yield parse
    train.FLAGS.unparse_flags()


def _parse_run_flags(flags_parsed, tmp_path, *extra):
    """Parses flags for a run of three photos into tmp_path/run (not packed)."""
    write_images(tmp_path / "photos", count=3)
    flags_parsed(
        f"--data_dir={tmp_path / 'photos'}",
        f"--model_dir={tmp_path / 'run'}",
        *extra,
        pack=False,
    )


def test_flags_pack_into_config(flags_parsed):
    config = flags_parsed("--density=0.1", "--color=grey", "--mode=inpaint")
    assert (config.density, config.channels, config.mode) == (0.1, 1, "inpaint")


def test_paper_preset_yields_to_explicit_flags(flags_parsed):
    config = flags_parsed("--preset=paper", "--batch_size=64")
    assert config.model_size == "paper" and config.image_size == 64
    assert config.learning_rate == 5e-5 and config.epochs == 1000
    assert config.batch_size == 64


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["--density=1.5"], "--density"),
        (["--image_size=20"], "--image_size"),
        (["--steps_per_epoch=-3"], "--steps_per_epoch"),
    ],
)
def test_invalid_flags_stop_with_one_line_naming_the_flag(flags_parsed, argv, flag):
    flags_parsed(*argv, pack=False)
    with pytest.raises(SystemExit) as exit_info:
        train.main(["train.py"])
    message = str(exit_info.value.code)
    assert "\n" not in message and flag in message


@pytest.mark.parametrize("missing", ["data_dir", "validation_dir"])
def test_missing_folders_name_their_flag(flags_parsed, tmp_path, missing):
    write_images(tmp_path / "photos", count=2)
    folders = {"data_dir": tmp_path / "photos", "validation_dir": tmp_path / "photos"}
    folders[missing] = tmp_path / "nowhere"
    flags_parsed(*(f"--{k}={v}" for k, v in folders.items()), pack=False)
    with pytest.raises(SystemExit) as exit_info:
        train.main(["train.py"])
    message = str(exit_info.value.code)
    assert message.startswith(f"train.py: --{missing}: ") and "\n" not in message


@pytest.mark.slow
def test_killed_run_resumes_and_exports(tmp_path):
    write_images(tmp_path / "photos")
    model_dir = tmp_path / "run"
    command = [
        sys.executable,
        str(ROOT / "train.py"),
        f"--data_dir={tmp_path / 'photos'}",
        f"--model_dir={model_dir}",
        "--density=0.1",
        "--image_size=32",
        "--batch_size=4",
        "--model_size=tiny",
        "--epochs=2",
        "--steps_per_epoch=6",
        "--checkpoint_every=2",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
    )
    deadline = time.time() + 240
    index = model_dir / "checkpoints" / "checkpoint"
    while not index.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert index.exists(), "no checkpoint was written"
    process.send_signal(signal.SIGKILL)
    process.wait()
    saved = tf.train.latest_checkpoint(str(model_dir / "checkpoints"))
    saved_step = int(saved.rsplit("-", 1)[1])
    assert 2 <= saved_step < 12

    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"Resuming joint training at step {saved_step} of 12" in done.stderr
    final = tf.train.latest_checkpoint(str(model_dir / "checkpoints"))
    assert final.endswith("-12")
    served = tf.saved_model.load(str(model_dir / "export" / "mask_gan"))
    signature = served.signatures["serving_default"]
    assert set(signature.structured_outputs) == {"mask", "confidence", "inpainted"}
    assert list(signature.structured_input_signature[1]) == ["image"]


def test_model_dir_that_is_a_file_stops_with_one_line(flags_parsed, tmp_path):
    write_images(tmp_path / "photos", count=3)
    (tmp_path / "file").write_text("not a folder")
    flags_parsed(
        f"--data_dir={tmp_path / 'photos'}",
        f"--model_dir={tmp_path / 'file'}",
        pack=False,
    )
    with pytest.raises(SystemExit) as exit_info:
        train.main(["train.py"])
    message = str(exit_info.value.code)
    assert "\n" not in message and "is a file, not a folder" in message


def test_export_only_on_a_missing_folder_stops_with_one_line(flags_parsed, tmp_path):
    flags_parsed(f"--model_dir={tmp_path / 'nowhere'}", "--export_only", pack=False)
    with pytest.raises(SystemExit) as exit_info:
        train.main(["train.py"])
    message = str(exit_info.value.code)
    assert message.startswith("train.py: --export_only: ") and "\n" not in message
    assert str(tmp_path / "nowhere") in message
    assert not (tmp_path / "nowhere").exists()


def test_resuming_with_another_model_size_stops_with_one_line(flags_parsed, tmp_path):
    # A saved run (config and a checkpoint folder) of another model size.
    model_dir = tmp_path / "run"
    (model_dir / "checkpoints").mkdir(parents=True)
    saved = dataclasses.asdict(TrainingConfig(model_dir=str(model_dir)))
    (model_dir / "config.json").write_text(json.dumps(saved))
    write_images(tmp_path / "photos", count=3)
    flags_parsed(
        f"--data_dir={tmp_path / 'photos'}",
        f"--model_dir={model_dir}",
        "--model_size=small",
        pack=False,
    )
    with pytest.raises(SystemExit) as exit_info:
        train.main(["train.py"])
    message = str(exit_info.value.code)
    assert "\n" not in message
    assert "model_size 'tiny' -> 'small'" in message and "--overwrite" in message


@pytest.mark.slow
def test_a_signal_stops_after_a_checkpoint_of_the_step_in_one_line(tmp_path):
    # SIGINT takes the same path (one handler for both); one process start.
    signum = signal.SIGTERM
    write_images(tmp_path / "photos")
    model_dir = tmp_path / "run"
    command = [
        sys.executable,
        str(ROOT / "train.py"),
        f"--data_dir={tmp_path / 'photos'}",
        f"--model_dir={model_dir}",
        "--image_size=16",
        "--batch_size=4",
        "--model_size=tiny",
        "--epochs=1",
        "--steps_per_epoch=500",
        "--checkpoint_every=1000",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    # Wait for training to run: the progress line's first steps.
    deadline = time.time() + 240
    log = model_dir / run_folder.LOGS
    while not log.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    time.sleep(3)
    process.send_signal(signum)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, err[-2000:]
    lines = [line for line in err.splitlines() if line.startswith("train.py:")]
    assert len(lines) == 1 and "Traceback" not in err
    name = signal.Signals(signum).name
    assert f"stopped by {name} after step" in lines[0] and "resume" in lines[0]
    step = int(lines[0].split("after step ")[1].split()[0])
    assert 0 < step < 500
    saved = tf.train.latest_checkpoint(str(model_dir / run_folder.CHECKPOINTS))
    assert saved is not None and saved.endswith(f"-{step}")


def test_a_stray_argument_is_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "0.05", "--density=0.1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith("train.py: unexpected argument(s) '0.05'")
    )
    assert len(done.stderr.strip().splitlines()) <= 3


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--seed=4294967296", "--seed must be in [0, 2^32)"),
        ("--image_size=4096", "--image_size must be a positive multiple of 8, at most"),
    ],
)
def test_out_of_range_settings_are_one_line(flags_parsed, flag, message):
    flags_parsed(flag, pack=False)
    with pytest.raises(SystemExit) as exit_info:
        train.main(["train.py"])
    assert str(exit_info.value.code).startswith(f"train.py: {message}")


@pytest.mark.parametrize(
    "error",
    [
        OSError(28, "No space left on device"),
        tf.errors.ResourceExhaustedError(None, None, "write: No space left on device"),
        tf.errors.PermissionDeniedError(None, None, "checkpoints/ckpt-1_temp"),
        OSError(30, "Read-only file system"),
    ],
)
def test_a_run_folder_that_cannot_be_written_is_one_line(
    flags_parsed, tmp_path, monkeypatch, error
):
    _parse_run_flags(flags_parsed, tmp_path)

    def fails(*args, **kwargs):
        raise error  # as a checkpoint or export write on that storage does

    monkeypatch.setattr(train.loop, "train", fails)
    with pytest.raises(SystemExit) as exit_info:
        train.main(["train.py"])
    message = str(exit_info.value.code)
    assert message.startswith(f"train.py: --model_dir {tmp_path / 'run'}: cannot write")
    assert "\n" not in message


def test_other_errors_keep_their_traceback(flags_parsed, tmp_path, monkeypatch):
    write_images(tmp_path / "photos", count=3)
    flags_parsed(f"--data_dir={tmp_path / 'photos'}", pack=False)
    monkeypatch.setattr(
        train.loop, "train", lambda *a, **k: (_ for _ in ()).throw(OSError("bug"))
    )
    with pytest.raises(OSError, match="bug"):
        train.main(["train.py"])


@pytest.mark.parametrize(
    "tf_config, message",
    [
        ("{not json", "TF_CONFIG is not valid JSON"),
        (
            '{"cluster": {"worker": ["localhost:1", "localhost:2"]}}',
            'no "task"',
        ),
        (
            '{"cluster": {"worker": ["localhost:1", "localhost:2"]}, '
            '"task": {"type": "worker", "index": 2}}',
            "task index 2 is out of range",
        ),
    ],
)
def test_a_bad_tf_config_is_one_line(
    flags_parsed, tmp_path, monkeypatch, tf_config, message
):
    _parse_run_flags(flags_parsed, tmp_path)
    monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(SystemExit) as exit_info:
        train.main(["train.py"])
    assert str(exit_info.value.code).startswith("train.py: ")
    assert message in str(exit_info.value.code)


@pytest.mark.slow
def test_export_only_with_an_unknown_setting_is_one_line(flags_parsed, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    saved = dataclasses.asdict(TrainingConfig(model_dir=str(run)))
    (run / "config.json").write_text(json.dumps({**saved, "future_option": 1}))
    flags_parsed(f"--model_dir={run}", "--export_only", pack=False)
    with pytest.raises(SystemExit) as exit_info:
        train.main(["train.py"])
    message = str(exit_info.value.code)
    assert (
        message.startswith("train.py: --export_only: ") and "future_option" in message
    )


def test_a_taken_port_is_named_in_one_line(flags_parsed, tmp_path, monkeypatch):
    import socket

    _parse_run_flags(flags_parsed, tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cluster = {"worker": [f"127.0.0.1:{port}", "127.0.0.1:1"]}
        monkeypatch.setenv(
            "TF_CONFIG",
            json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}}),
        )
        with pytest.raises(SystemExit) as exit_info:
            train.main(["train.py"])
    message = str(exit_info.value.code)
    assert message.startswith(f"train.py: port {port} of this task (worker 0")
    assert "\n" not in message


def test_a_global_batch_the_workers_cannot_share_is_one_line(
    flags_parsed, tmp_path, monkeypatch
):
    _parse_run_flags(flags_parsed, tmp_path, "--batch_size=3")
    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    monkeypatch.setenv(
        "TF_CONFIG",
        json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}}),
    )
    with pytest.raises(SystemExit) as exit_info:
        train.main(["train.py"])
    message = str(exit_info.value.code)
    assert message == (
        "train.py: --batch_size 3 is the global batch: it must be a multiple of "
        "the 2 workers TF_CONFIG names"
    )


def test_dai_modes_pack_into_their_settings(flags_parsed):
    flags_parsed(
        "--mode=nete",
        "--density=0.1",
        "--epochs=2",
        "--steps_per_epoch=3",
        "--model_size=tiny",
        pack=False,
    )
    settings = train.dai_settings_from_flags()
    assert (settings.density, settings.steps, settings.image_size) == (0.1, 6, 64)
    assert settings.width == 8  # Dai's 64 at the tiny size (1/8)


def test_dai_modes_train_through_the_script(flags_parsed, tmp_path, capsys):
    from wgimask.train import dai

    common = [
        "--density=0.1",
        "--epochs=1",
        "--steps_per_epoch=2",
        "--batch_size=4",
        "--model_size=tiny",
        "--checkpoint_every=1",
    ]
    nete_run, netm_run = tmp_path / "nete", tmp_path / "netm"
    flags_parsed("--mode=nete", f"--model_dir={nete_run}", *common, pack=False)
    train.main(["train.py"])
    assert dai.model_path(nete_run, "nete").is_file()
    # The default split holds out a fifth of the photos: one validation per
    # epoch, the best weights kept, the values in TensorBoard's folder.
    history = (nete_run / "validation.jsonl").read_text().splitlines()
    assert [json.loads(row)["step"] for row in history] == [2]
    assert json.loads(history[0])["train_cpu_seconds"] > 0
    assert dai.model_path(nete_run, "nete", best=True).is_file()
    assert list((nete_run / "logs").glob("events.out.tfevents.*"))
    flags_parsed("--mode=netm", f"--model_dir={netm_run}", *common, pack=False)
    with pytest.raises(SystemExit, match="needs --init_from"):
        train.main(["train.py"])
    flags_parsed(
        "--mode=netm",
        f"--model_dir={netm_run}",
        f"--init_from={nete_run}",
        *common,
        pack=False,
    )
    train.main(["train.py"])
    assert dai.model_path(netm_run, "netm").is_file()
    assert "netm step 2/2" in capsys.readouterr().out


def test_dai_modes_name_a_bad_validation_folder(flags_parsed, tmp_path):
    flags_parsed(
        "--mode=nete",
        f"--model_dir={tmp_path / 'run'}",
        f"--validation_dir={tmp_path / 'missing'}",
        pack=False,
    )
    with pytest.raises(SystemExit) as exit_info:
        train.main(["train.py"])
    message = str(exit_info.value.code)
    assert message.startswith("train.py: --validation_dir: ")
    assert "\n" not in message and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_signal_stops_a_dai_run_after_a_checkpoint_of_the_step(tmp_path):
    # --mode=nete/netm share the one-line stop of the other modes.
    signum = signal.SIGINT
    write_images(tmp_path / "photos")
    model_dir = tmp_path / "run"
    command = [
        sys.executable,
        str(ROOT / "train.py"),
        "--mode=nete",
        f"--data_dir={tmp_path / 'photos'}",
        f"--model_dir={model_dir}",
        "--batch_size=4",
        "--model_size=tiny",
        "--epochs=1",
        "--steps_per_epoch=100000",
        "--checkpoint_every=100000",
        "--validation_fraction=0",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    for line in process.stdout:  # the first progress line: the loop runs
        if line.startswith("nete step 10/"):
            break
    process.send_signal(signum)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, err[-2000:]
    lines = [line for line in err.splitlines() if line.startswith("train.py:")]
    assert len(lines) == 1 and "Traceback" not in err
    assert "stopped by SIGINT after step" in lines[0] and "resume" in lines[0]
    step = int(lines[0].split("after step ")[1].split()[0])
    assert 10 <= step < 100000
    saved = tf.train.latest_checkpoint(str(model_dir / run_folder.CHECKPOINTS))
    assert saved is not None and saved.endswith(f"-{step}")
    assert not (model_dir / "export").exists()  # stopped runs do not export
