"""The models shipped in wgimask/pretrained, on a real photo."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from wgimask import cli, data
from wgimask.evaluation import SavedModelFunction

DENSITIES = (0.05, 0.1, 0.2)


@pytest.fixture(scope="module")
def photo():
    # A real photo on every machine: scikit-image's cat, cropped non-square at
    # its full size (the pretraining data hold it downscaled only; the held-out
    # photos come from Debian packages that CI does not install).
    return data.center_crop(data.embedded_photos(3)[1], (96, 136))


def test_every_density_and_the_inpainter_are_shipped():
    shipped = cli.shipped_models()
    assert sorted(shipped) == list(DENSITIES)
    for density, export_dir in shipped.items():
        config = json.loads((export_dir.parent / "config.json").read_text())
        assert config["mode"] == "joint" and config["density"] == density
        assert cli.training_size(export_dir) == 64
        facts = json.loads((export_dir.parent / "training.json").read_text())
        assert facts["steps"] > 0 and facts["wall_seconds"] > 0
    inpaint = cli.PRETRAINED_DIR / "inpaint"
    assert json.loads((inpaint / "config.json").read_text())["mode"] == "inpaint"
    assert (inpaint / "export" / "inpainter" / "saved_model.pb").is_file()


def test_shipped_models_give_binary_masks_of_the_requested_density(photo):
    raw = []
    for density in DENSITIES:
        export_dir = cli.shipped_models()[density]
        mask_gan = SavedModelFunction(
            export_dir / "mask_gan", ("image",), ("mask", "confidence", "inpainted")
        )
        out = mask_gan(image=tf.constant(photo[None]))
        mask = np.asarray(out["mask"])
        assert mask.shape == (1, 96, 136, 1)
        assert set(np.unique(mask)) <= {0.0, 1.0}
        raw.append(mask.mean())
        # The networks' own masks follow the image, not exactly D (Eq. 4 is a
        # penalty); ranking the confidence gives the exact density.
        inpainter = SavedModelFunction(
            export_dir / "inpainter", ("image", "mask"), ("inpainted",)
        )
        exact, inpainted = cli.optimise_mask(photo, density, mask_gan, inpainter)
        assert exact.sum() == round(density * 96 * 136)
        np.testing.assert_allclose(inpainted[exact], photo[exact], atol=1e-6)
        assert np.isfinite(inpainted).all() and inpainted.shape == photo.shape
    # A model trained for a higher density keeps more pixels on its own.
    assert raw[0] < raw[1] < raw[2]


def test_command_with_shipped_models_on_a_non_square_photo(photo, tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(np.round(photo * 255).astype(np.uint8)).save(path)
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "wgimask.cli",
            str(path),
            "--density=0.07",
            f"--output_dir={out}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    # The nearest shipped density (0.05) selects round(0.07 N) pixels.
    assert "trained for density 0.05" in done.stderr
    line = done.stdout.strip().splitlines()[-1]
    assert line.startswith(f"photo.png: 136x96, {round(0.07 * 96 * 136)} known")
    mask = np.asarray(Image.open(out / "photo_mask.png")) > 0
    assert mask.shape == (96, 136) and abs(mask.mean() - 0.07) < 0.005
    inpainted = np.asarray(Image.open(out / "photo_inpainted.png"))
    assert inpainted.shape == (96, 136, 3)
