"""The `wgimask` command, run in-process on a freshly exported tiny model."""

import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import run_python, synthetic_image
from PIL import Image

from wgimask import cli


@pytest.fixture(scope="module")
def model_dir(tiny_run):
    return tiny_run


def _photo(folder, name="photo.png", height=75, width=130):
    image = synthetic_image(height, width, seed=1)
    path = folder / name
    Image.fromarray(np.round(image * 255).astype(np.uint8)).save(path)
    return path


def _run(capsys, *args):
    """Runs the command in-process; returns (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as done:
        cli.run(["wgimask", *map(str, args)])
    code = done.value.code
    out, err = capsys.readouterr()
    if isinstance(code, str):  # sys.exit("message"): printed by Python, code 1
        return 1, out, err + code
    return code or 0, out, err


@pytest.mark.slow
def test_command_on_non_square_image_larger_than_training_size(
    model_dir, tmp_path, capsys
):
    photo = _photo(tmp_path)  # 75x130: not a multiple of 8, larger than a tile
    (tmp_path / "broken.jpg").write_bytes(b"no jpeg")
    out = tmp_path / "out"
    code, stdout, stderr = _run(
        capsys,
        photo,
        tmp_path / "broken.jpg",
        "--density=0.1",
        f"--model={model_dir}",
        f"--output_dir={out}",
        "--diffusion",
    )
    # One bad file: reported, the others still processed, non-zero exit.
    assert code == 1
    assert "skipped" in stderr and "broken.jpg" in stderr
    assert "photo.png: 130x75, 975 known pixels (10.00 %)" in stdout
    assert "learned PSNR" in stdout and "diffusion PSNR" in stdout
    # A model with the paper's pipeline on an image larger than its tiles.
    assert "makes its mask and inpainting in 32 px tiles" in stderr
    assert "may show at the tile period" in stderr
    # Where every file went, with the density in each name.
    names = [f"photo_d0.1_{k}.png" for k in ("mask", "known", "inpainted", "diffusion")]
    for name in names:
        assert str(out / name) in stdout
    mask = np.asarray(Image.open(out / "photo_d0.1_mask.png"))
    assert mask.shape == (75, 130) and set(np.unique(mask)) <= {0, 255}
    assert (mask > 0).sum() == 975
    known = np.asarray(Image.open(out / "photo_d0.1_known.png"))
    assert np.all(known[mask == 0] == 0)
    for name in ("inpainted", "diffusion"):
        shape = np.asarray(Image.open(out / f"photo_d0.1_{name}.png")).shape
        assert shape == (75, 130, 3)


@pytest.mark.slow
def test_rerun_refuses_to_overwrite_without_the_flag(model_dir, tmp_path, capsys):
    photo = _photo(tmp_path)
    args = (photo, f"--model={model_dir}", f"--output_dir={tmp_path / 'out'}")
    assert _run(capsys, *args)[0] == 0
    mask = tmp_path / "out" / "photo_d0.1_mask.png"
    before = mask.stat().st_mtime_ns
    code, _, stderr = _run(capsys, *args)
    assert code == 1 and "--overwrite" in stderr and "photo_d0.1_mask.png" in stderr
    assert mask.stat().st_mtime_ns == before
    # Another density writes other files; --overwrite replaces.
    assert _run(capsys, *args, "--density=0.2")[0] == 0
    assert (tmp_path / "out" / "photo_d0.2_mask.png").is_file()
    assert _run(capsys, *args, "--overwrite")[0] == 0


@pytest.mark.parametrize("method", ["random", "analytic", "electrostatic", "densify"])
def test_model_free_masks_need_no_model(tmp_path, capsys, monkeypatch, method):
    from wgimask.serve import model_files

    # No model may be loaded: shipped ones are hidden.
    monkeypatch.setattr(model_files, "PRETRAINED_DIR", tmp_path / "none")
    photo = _photo(tmp_path, height=40, width=52)
    out = tmp_path / "out"
    code, stdout, _ = _run(
        capsys,
        photo,
        f"--mask={method}",
        "--inpainting=diffusion",
        f"--output_dir={out}",
    )
    assert code == 0
    mask = np.asarray(Image.open(out / f"photo_{method}_d0.1_mask.png")) > 0
    assert mask.sum() == round(0.1 * 40 * 52)
    assert (out / f"photo_{method}_d0.1_diffusion.png").is_file()
    assert not (out / f"photo_{method}_d0.1_inpainted.png").exists()


def test_other_operators_inpaint_from_the_same_mask(tmp_path, capsys, monkeypatch):
    from wgimask.diffusion.operators import model_free_inpaint
    from wgimask.serve import model_files

    monkeypatch.setattr(model_files, "PRETRAINED_DIR", tmp_path / "none")
    photo = _photo(tmp_path, height=24, width=30)
    out = tmp_path / "out"
    code, stdout, _ = _run(
        capsys,
        photo,
        "--mask=random",
        "--inpainting=eed,bih,cdd,ms",
        f"--output_dir={out}",
    )
    assert code == 0 and "eed PSNR" in stdout and "ms PSNR" in stdout
    mask = np.asarray(Image.open(out / "photo_random_d0.1_mask.png")) > 0
    image = np.asarray(Image.open(photo).convert("RGB"), np.float32) / 255
    for operator in ("eed", "bih", "cdd", "ms"):
        written = np.asarray(Image.open(out / f"photo_random_d0.1_{operator}.png"))
        expected = model_free_inpaint(operator, image, mask)
        assert np.abs(written / 255.0 - expected).max() <= 0.5 / 255 + 1e-6


def test_slow_stages_are_announced_on_stderr(tmp_path, capsys, monkeypatch):
    from wgimask import progress

    # Every stage counts as slow: each is announced once, in order, on stderr
    # (a log, not a terminal: one line each, no step counts).
    monkeypatch.setattr(progress, "DELAY", 0.0)
    photo = _photo(tmp_path, height=40, width=52)
    code, stdout, stderr = _run(
        capsys,
        photo,
        "--mask=densify",
        "--inpainting=diffusion",
        f"--output_dir={tmp_path / 'out'}",
    )
    assert code == 0 and "photo.png: 52x40" in stdout
    stages = [line.split(": ")[-1] for line in stderr.splitlines()]
    order = ["reading...", "densify mask...", "diffusion inpainting..."]
    assert [s for s in stages if s in order] == order
    assert "wgimask: photo.png: writing..." not in stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--density=1.5"], "--density must be in (0, 1)"),
        (["--model=/nonexistent"], "does not exist"),
        (["--inpainting=magic"], "--inpainting: unknown magic"),
        (["--mask=magic"], "--mask"),
        (["--density=abc"], "density"),
    ],
)
def test_bad_requests_give_one_line(tmp_path, capsys, args, message):
    photo = _photo(tmp_path, height=20, width=20)
    code, stdout, stderr = _run(capsys, photo, *args, f"--output_dir={tmp_path}/o")
    assert code == 1 and message in stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


@pytest.mark.slow
def test_zero_pixel_density_is_refused_before_any_output(model_dir, tmp_path, capsys):
    small, large = (
        _photo(tmp_path, "a.png", 64, 80),
        _photo(tmp_path, "b.png", 120, 120),
    )
    out = tmp_path / "out"
    code, _, stderr = _run(
        capsys, large, small, "--density=0.00009", f"--model={model_dir}",
        f"--output_dir={out}",
    )  # fmt: skip
    assert code == 1 and "keeps 0 of" in stderr and "a.png" in stderr
    assert not out.exists()  # not even the folder, let alone a file


@pytest.mark.slow
def test_tiny_images_follow_one_rule_decided_before_writing(
    model_dir, tmp_path, capsys
):
    # 2x2 up to 10x10: written, SSIM (11x11 window) reported as n/a.
    photo = _photo(tmp_path, "tiny.png", 6, 9)
    out = tmp_path / "out"
    code, stdout, _ = _run(
        capsys, photo, "--density=0.5", f"--model={model_dir}", f"--output_dir={out}",
        "--diffusion",
    )  # fmt: skip
    assert code == 0
    assert "SSIM n/a" in stdout and "PSNR" in stdout
    assert np.asarray(Image.open(out / "tiny_d0.5_mask.png")).shape == (6, 9)
    # Below 2x2: refused before anything is written.
    one = _photo(tmp_path, "line.png", 1, 30)
    code, _, stderr = _run(capsys, one, photo, f"--output_dir={tmp_path / 'o2'}")
    assert code == 1 and "at least 2x2" in stderr
    assert not (tmp_path / "o2").exists()


def test_output_dir_that_is_a_file_or_not_writable(tmp_path, capsys):
    photo = _photo(tmp_path, height=20, width=20)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for target, message in (
        (blocker, "is a file"),
        (blocker / "sub", "cannot be created"),
    ):
        code, _, stderr = _run(capsys, photo, f"--output_dir={target}")
        assert code == 1 and message in stderr and "Traceback" not in stderr
    if os.path.isdir("/proc/self"):  # read-only for root too
        code, _, stderr = _run(capsys, photo, "--output_dir=/proc/self/wgimask")
        assert code == 1 and "/proc/self/wgimask cannot be created" in stderr


def test_help_lists_the_commands_own_flags(capsys):
    with pytest.raises(SystemExit) as done:
        cli.run(["wgimask", "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--density", "--model", "--mask", "--output_dir", "--[no]overwrite"):
        assert flag in text
    assert "(default: '0.1')" in text
    assert "--use_cprofile" not in text and "--flagfile" not in text


@pytest.mark.slow
def test_console_script_starts_without_tensorflow_log_block(model_dir, tmp_path):
    photo = _photo(tmp_path, height=20, width=28)
    done = subprocess.run(
        [sys.executable, "-m", "wgimask.cli", str(photo), f"--model={model_dir}",
         f"--output_dir={tmp_path / 'out'}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for noise in ("oneDNN custom operations", "cuda drivers", "cpu_feature_guard"):
        assert noise not in done.stderr
    assert "start-up" in done.stdout and "wrote" in done.stdout


def test_tensorflow_info_lines_are_dropped_but_not_its_warnings():
    """train.py logs at INFO through absl, as TensorFlow's SavedModel writer
    does; only TensorFlow's own INFO records are dropped."""
    import logging
    import os

    import tensorflow as tf

    from wgimask import _entry

    _entry.import_tensorflow_quietly()
    inside = os.path.join(os.path.dirname(tf.__file__), "python", "saver.py")

    def record(level, path):
        return logging.LogRecord("absl", level, path, 1, "note", (), None)

    assert not _entry._drop_tensorflow_info(record(logging.INFO, inside))
    assert _entry._drop_tensorflow_info(record(logging.WARNING, inside))
    assert _entry._drop_tensorflow_info(record(logging.INFO, _entry.__file__))


def test_exit_at_once_flushes_output_and_keeps_the_status(tmp_path):
    """The console script ends with os._exit: nothing printed may be lost, and
    sys.exit's status (a message: 1, printed) is kept."""
    script = (
        "import sys\n"
        "from wgimask import _entry\n"
        "def ok():\n"
        "    print('done', end='')\n"
        "def bad():\n"
        "    print('partial')\n"
        "    sys.exit('wgimask: 1 of 2 images failed')\n"
        "def pipe():\n"
        "    raise BrokenPipeError(32, 'Broken pipe')\n"
        "_entry.exit_at_once({'ok': ok, 'bad': bad, 'pipe': pipe}[sys.argv[1]])\n"
        "print('never reached')\n"
    )
    runs = {
        kind: run_python(script, kind, timeout=120) for kind in ("ok", "bad", "pipe")
    }
    assert (runs["pipe"].returncode, runs["pipe"].stderr) == (1, "")
    assert (runs["ok"].returncode, runs["ok"].stdout) == (0, "done")
    assert runs["bad"].returncode == 1
    assert runs["bad"].stdout == "partial\n"
    assert runs["bad"].stderr.strip() == "wgimask: 1 of 2 images failed"


def test_quiet_tensorflow_import_skips_matplotlib_but_leaves_it_importable():
    """Keras would import matplotlib.pyplot (0.5 s); evaluate.py's figures
    still import it afterwards."""
    script = (
        "import sys\n"
        "from wgimask import _entry\n"
        "_entry.import_tensorflow_quietly()\n"
        "import keras\n"
        "print('matplotlib' in sys.modules)\n"
        "import matplotlib.pyplot\n"
        "print(matplotlib.pyplot.__name__)\n"
    )
    done = run_python(script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "matplotlib.pyplot"]


def test_the_readme_keras_snippet_starts_quietly():
    # Its first import brings TensorFlow in without the start-up lines
    # (oneDNN, CUDA, CPU features; cuInit on a machine without a GPU).
    done = run_python("import wgimask.nn.networks\nimport keras\nprint('ok')\n")
    assert done.returncode == 0 and done.stdout.split() == ["ok"]
    assert done.stderr == "", done.stderr


# --- Outputs: all or none, never through a link; inputs that cannot hurt ---------


def _model_free(capsys, photo, out, *extra):
    return _run(
        capsys,
        photo,
        "--mask=analytic",
        "--inpainting=diffusion",
        f"--output_dir={out}",
        *extra,
    )


def test_an_output_name_that_is_a_link_is_refused_or_replaced_never_followed(
    tmp_path, capsys
):
    photo = _photo(tmp_path, height=24, width=30)
    out = tmp_path / "out"
    out.mkdir()
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    link = out / "photo_analytic_d0.1_mask.png"
    link.symlink_to(outside)
    dangling = out / "photo_analytic_d0.1_known.png"
    dangling.symlink_to(tmp_path / "nowhere.png")
    code, _, err = _model_free(capsys, photo, out)
    assert code == 1 and "exist" in err and "--overwrite" in err
    assert not (tmp_path / "nowhere.png").exists()
    code, _, _ = _model_free(capsys, photo, out, "--overwrite")
    assert code == 0
    assert outside.read_text() == "keep me"  # the link was replaced, not followed
    assert not link.is_symlink() and Image.open(link).size == (30, 24)
    assert not (tmp_path / "nowhere.png").exists()


def test_an_interrupted_or_failing_write_leaves_no_file(tmp_path, monkeypatch):
    from wgimask import image_files

    out = tmp_path / "out"
    out.mkdir()
    images = {out / f"{n}.png": np.full((8, 8), 0.5) for n in "abcd"}
    saved = Image.Image.save
    calls = []

    def interrupted_at_the_third(self, fp, *args, **kwargs):
        calls.append(fp)
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C while the third PNG is encoded
        return saved(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", interrupted_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        image_files.save_pngs(images, overwrite=False)
    assert list(out.iterdir()) == []  # none of the four, no temporary file
    monkeypatch.setattr(Image.Image, "save", saved)
    image_files.save_pngs(images, overwrite=False)  # the rerun is not blocked
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png", "d.png"]
    # A file that appeared meanwhile (another process) is not replaced.
    with pytest.raises(FileExistsError):
        image_files.save_pngs({out / "a.png": np.zeros((8, 8))}, overwrite=False)
    assert np.asarray(Image.open(out / "a.png")).max() == 128


def test_oversized_unreadable_and_special_inputs_are_skipped_in_one_line(
    tmp_path, capsys
):
    good = _photo(tmp_path, "good.png", height=24, width=30)
    # Tiny PNGs whose headers claim 400 and 100 Mpx (the second one would
    # take about 5 GB to decode and process).
    bomb = tmp_path / "bomb.png"
    Image.new("L", (20000, 20000)).save(bomb, optimize=True)
    large = tmp_path / "large.png"
    Image.new("L", (10000, 10000)).save(large, optimize=True)
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    out = tmp_path / "out"
    code, stdout, err = _run(
        capsys,
        bomb,
        large,
        fifo,
        good,
        "--mask=analytic",
        "--inpainting=diffusion",
        f"--output_dir={out}",
    )
    assert code == 1 and "Traceback" not in err
    assert "bomb.png: 20000x20000 px (400 Mpx) is over --max_megapixels=50" in err
    assert "large.png: 10000x10000 px (100 Mpx) is over --max_megapixels=50" in err
    assert "pipe.png: not a regular file" in err
    assert "3 of 4 images failed" in err
    assert (out / "good_analytic_d0.1_mask.png").is_file()  # the others go on


def test_what_an_input_loses_is_said_in_one_line(tmp_path, capsys):
    rgba = tmp_path / "rgba.png"
    Image.new("RGBA", (24, 20), (10, 200, 30, 128)).save(rgba)
    deep = tmp_path / "deep.png"
    Image.fromarray(np.arange(480, dtype=np.uint16).reshape(20, 24) * 100).save(deep)
    code, _, err = _model_free(capsys, rgba, tmp_path / "out")
    assert code == 0 and "rgba.png: its alpha channel is ignored (RGBA)" in err
    code, _, err = _model_free(capsys, deep, tmp_path / "out")
    assert code == 0 and "deep.png: read with its full precision (I;16" in err
    assert "the outputs are 8-bit PNGs" in err


def test_no_output_folder_when_every_input_fails(tmp_path, capsys):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    out = tmp_path / "out"
    code, _, err = _model_free(capsys, broken, out)
    assert code == 1 and "1 of 1 images failed" in err
    assert not out.exists()


def test_an_output_folder_that_cannot_be_created_says_so(tmp_path, capsys):
    photo = _photo(tmp_path, height=24, width=30)
    (tmp_path / "file").write_text("")
    code, _, err = _model_free(capsys, photo, tmp_path / "file" / "out")
    assert code == 1 and "cannot be created: Not a directory" in err


def test_outputs_are_placed_on_file_systems_without_hard_links(tmp_path, monkeypatch):
    from wgimask import image_files

    def no_hard_links(source, target):
        raise PermissionError(1, "Operation not permitted")  # as on FAT

    monkeypatch.setattr(image_files.os, "link", no_hard_links)
    out = tmp_path / "out"
    out.mkdir()
    image_files.save_pngs({out / "a.png": np.full((4, 4), 0.5)}, overwrite=False)
    assert [p.name for p in out.iterdir()] == ["a.png"]
    with pytest.raises(FileExistsError):
        image_files.save_pngs({out / "a.png": np.zeros((4, 4))}, overwrite=False)
    assert [p.name for p in out.iterdir()] == ["a.png"]  # no temporary left
