"""The `wgimask` command on a user's image, with a freshly exported model."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
from helpers import synthetic_image
from PIL import Image

from wgimask import cli, export
from wgimask.networks import InpaintingGenerator, MaskGenerator


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    keras.utils.set_random_seed(3)
    export.export_models(
        run, InpaintingGenerator(None, 3, "tiny"), MaskGenerator(None, 3, "tiny")
    )
    (run / "config.json").write_text(json.dumps({"density": 0.1}))
    return run


def _run(*args):
    return subprocess.run(
        [sys.executable, "-m", "wgimask.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_command_on_non_square_image_larger_than_training_size(model_dir, tmp_path):
    image = synthetic_image(75, 130, seed=1)  # not a multiple of 8 either
    photo = tmp_path / "photo.png"
    Image.fromarray(np.round(image * 255).astype(np.uint8)).save(photo)
    (tmp_path / "broken.jpg").write_bytes(b"no jpeg")
    out = tmp_path / "out"
    done = _run(
        photo,
        tmp_path / "broken.jpg",
        "--density=0.1",
        f"--model={model_dir}",
        f"--output_dir={out}",
        "--diffusion",
    )
    # One bad file: reported, the others still processed, non-zero exit.
    assert done.returncode == 1
    assert "skipped" in done.stderr and "broken.jpg" in done.stderr
    line = done.stdout.strip().splitlines()[-1]
    assert line.startswith("photo.png: 130x75, 975 known pixels (10.00 %)")
    assert "learned PSNR" in line and "diffusion PSNR" in line
    mask = np.asarray(Image.open(out / "photo_mask.png"))
    assert mask.shape == (75, 130) and set(np.unique(mask)) <= {0, 255}
    assert abs((mask > 0).mean() - 0.1) < 0.005
    known = np.asarray(Image.open(out / "photo_known.png"))
    assert np.all(known[mask == 0] == 0)
    for name in ("inpainted", "diffusion"):
        assert np.asarray(Image.open(out / f"photo_{name}.png")).shape == (75, 130, 3)


def test_optimise_mask_keeps_known_pixels_and_exact_count(model_dir):
    export_dir = cli.choose_model(str(model_dir), 0.05)
    mask_gan = cli.SavedModelFunction(
        export_dir / "mask_gan", ("image",), ("confidence",)
    )
    inpainter = cli.SavedModelFunction(
        export_dir / "inpainter", ("image", "mask"), ("inpainted",)
    )
    image = synthetic_image(40, 52, seed=2)
    mask, inpainted = cli.optimise_mask(image, 0.05, mask_gan, inpainter)
    assert mask.sum() == round(0.05 * 40 * 52)
    np.testing.assert_allclose(inpainted[mask], image[mask], atol=1e-6)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--density=1.5"], "--density must be in (0, 1)"),
        (["--model=/nonexistent"], "does not exist"),
    ],
)
def test_bad_requests_give_one_line(model_dir, tmp_path, args, message):
    done = _run(tmp_path / "x.png", *args)
    assert done.returncode != 0
    assert message in done.stderr


def test_without_shipped_models_the_message_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setattr(cli, "PRETRAINED_DIR", tmp_path)
    with pytest.raises(cli.UsageError, match="train one with"):
        cli.choose_model(None, 0.1)


@pytest.mark.parametrize("shape", [(75, 130, 3), (20, 50, 1), (64, 64, 3)])
def test_tiles_cover_the_image_and_blend_without_seams(shape):
    image = np.random.default_rng(0).uniform(size=shape).astype(np.float32)
    calls = []

    def identity(**feeds):
        calls.append(feeds["image"].shape)
        return {"out": feeds["image"] * 2}

    blended = cli.run_tiled(identity, 32, "out", image=image)
    # Every tile sees a 32x32 crop, and overlapping tiles blend consistently.
    assert all(s[1:3] == (32, 32) for s in calls)
    np.testing.assert_allclose(blended, image * 2, rtol=1e-6)
