"""The models shipped in wgimask/pretrained, on a real photo."""

import json

import numpy as np
import pytest
from PIL import Image

from wgimask import cli, inference
from wgimask.train import data

DENSITIES = (0.05, 0.1, 0.2)


@pytest.fixture(scope="module")
def photo():
    # A real photo on every machine: scikit-image's cat, cropped non-square at
    # its full size (the pretraining data hold it downscaled only; the held-out
    # photos come from Debian packages that CI does not install).
    return data.center_crop(data.embedded_photos(3)[1], (96, 136))


def test_every_density_and_the_inpainter_are_shipped():
    shipped = inference.shipped_models()
    assert sorted(shipped) == list(DENSITIES)
    for density, run in shipped.items():
        config = json.loads((run / "config.json").read_text())
        assert config["mode"] == "joint" and config["density"] == density
        model = inference.load(run)
        assert model.tile == 64 and model.density == density
        facts = json.loads((run / "training.json").read_text())
        assert facts["steps"] > 0 and facts["wall_seconds"] > 0
    inpaint = inference.PRETRAINED_DIR / "inpaint"
    assert not inference.load(inpaint).has_mask


def test_shipped_models_give_masks_of_the_requested_density(photo):
    for density in DENSITIES:
        model = inference.load(inference.shipped_models()[density])
        assert model.prior and model.prefilled
        confidence = model.confidence(photo[None])[0]
        assert confidence.shape == (96, 136)
        # The analytic density times the learned correction, rescaled to
        # mean D before the dither.
        assert confidence.mean() == pytest.approx(density, rel=1e-2)
        for requested in DENSITIES:
            exact, inpainted = inference.optimise_mask(photo, requested, model)
            assert exact.sum() == round(requested * 96 * 136)
            np.testing.assert_allclose(inpainted[exact], photo[exact], atol=1e-6)
            assert np.isfinite(inpainted).all() and inpainted.shape == photo.shape


def test_shipped_models_make_the_densification_mask_without_a_mask_network(
    photo, monkeypatch
):
    # Their learned correction measured no better than none (docs/model-card.md):
    # their mask is the plain densification mask and m does not run.
    from wgimask.masks.densification import densification_mask

    model = inference.load(inference.shipped_models()[0.1])
    assert not model.pipeline.runs_mask_network

    def no_network(name, inputs):
        raise AssertionError(f"the {name} part ran")

    monkeypatch.setattr(model, "parts", no_network)
    for density in DENSITIES:
        mask = model.mask(photo[None], density)[0]
        np.testing.assert_array_equal(mask, densification_mask(photo, density))


def test_command_with_shipped_models_on_a_non_square_photo(photo, tmp_path, capsys):
    path = tmp_path / "photo.png"
    Image.fromarray(np.round(photo * 255).astype(np.uint8)).save(path)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as done:
        cli.run(["wgimask", str(path), "--density=0.07", f"--output_dir={out}"])
    assert done.value.code == 0
    stdout = capsys.readouterr().out
    # The nearest shipped density (0.05) selects round(0.07 N) pixels.
    assert "joint-0.05 (trained for density 0.05)" in stdout
    assert f"photo.png: 136x96, {round(0.07 * 96 * 136)} known" in stdout
    mask = np.asarray(Image.open(out / "photo_d0.07_mask.png")) > 0
    assert mask.shape == (96, 136) and mask.sum() == round(0.07 * 96 * 136)
    inpainted = np.asarray(Image.open(out / "photo_d0.07_inpainted.png"))
    assert inpainted.shape == (96, 136, 3)


@pytest.mark.slow
def test_example_flag_runs_the_shipped_models_on_the_embedded_photo(tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        cli.run(["wgimask", "--example", "--diffusion", f"--output_dir={tmp_path}"])
    assert done.value.code == 0
    stdout = capsys.readouterr().out
    assert "chelsea.png: 451x300" in stdout and "diffusion PSNR" in stdout
    assert (tmp_path / "chelsea_d0.1_diffusion.png").is_file()


@pytest.mark.slow
def test_the_readme_figure_is_what_its_recipe_makes_now(tmp_path):
    # Fails when the shipped models or the command change the figure without
    # `python recipes/readme_figure.py` being rerun.
    import pathlib
    import subprocess
    import sys

    repo = pathlib.Path(__file__).resolve().parents[2]
    fresh = tmp_path / "figure.jpg"
    done = subprocess.run(
        [sys.executable, "recipes/readme_figure.py", f"--output={fresh}"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    shipped = np.asarray(Image.open(repo / "docs" / "wgimask_chelsea_10pct.jpg"), float)
    made = np.asarray(Image.open(fresh), float)
    assert made.shape == shipped.shape
    # JPEG decoding may differ by a level between library versions; a moved
    # mask point or another inpainting differs far more.
    assert np.abs(made - shipped).mean() < 0.5


def _diffusion_and_learned(image, density=0.1):
    from wgimask import baselines
    from wgimask.masks.densification import densification_mask

    model = inference.load(inference.shipped_models()[density])
    mask = densification_mask(image, density)
    diffused = np.clip(baselines.inpaint(image, mask), 0.0, 1.0).astype(np.float32)
    return model, mask, diffused


def test_the_correction_stays_out_of_smooth_images(monkeypatch):
    # Diffusion is close to a smooth image: the learned inpainting is
    # diffusion exactly, and no tile of the generator runs.
    y, x = np.mgrid[0:150, 0:200] / 200.0
    image = np.stack(
        [0.5 + 0.2 * np.sin(2 * x + c) * np.cos(1.5 * y) for c in (0.0, 1.0, 2.0)],
        axis=-1,
    ).astype(np.float32)
    model, mask, diffused = _diffusion_and_learned(image)

    def no_network(name, inputs):
        raise AssertionError(f"the {name} part ran")

    monkeypatch.setattr(model, "parts", no_network)
    learned = model.inpaint(image[None], mask[None], diffused[None])[0]
    np.testing.assert_array_equal(learned, np.where(mask[..., None], image, diffused))


def test_the_correction_is_gated_where_a_photo_is_smooth(photo):
    # A smooth half beside a real photo: the gate closes on the smooth half
    # (its tiles do not run) and there the learned inpainting is diffusion
    # exactly; on the photo it is open and the correction acts. Upscaling the
    # photo smooths it at the scale of the mask points and closes the gate
    # further (not fully: the cat's fur is still textured at 4x).
    from wgimask.inference import arrays

    y, x = np.mgrid[0:96, 0:136] / 136.0
    smooth = np.stack([0.4 + 0.1 * x + 0.05 * y] * 3, axis=-1).astype(np.float32)
    image = np.concatenate([smooth, photo.astype(np.float32)], axis=1)
    model, mask, diffused = _diffusion_and_learned(image)
    gate = arrays.residual_gate(diffused[None], model.tile)[0, ..., 0]
    assert (gate[:, :40] == 0).all() and (gate[:, -40:] == 1).all()
    learned = model.inpaint(image[None], mask[None], diffused[None])[0]
    closed = (gate == 0) & ~mask
    np.testing.assert_array_equal(learned[closed], diffused[closed])
    assert np.abs(learned - diffused)[:, -40:].max() > 0.01
    upscaled = (
        np.asarray(
            Image.fromarray(np.round(photo * 255).astype(np.uint8)).resize(
                (136 * 4, 96 * 4), Image.Resampling.BICUBIC
            ),
            np.float32,
        )
        / 255.0
    )
    openings = []
    for picture in (photo, upscaled):
        model, mask, diffused = _diffusion_and_learned(picture)
        openings.append(arrays.residual_gate(diffused[None], model.tile).mean())
    assert openings[1] < openings[0]


def test_dai_networks_are_shipped_for_every_density(photo):
    # Table 2's NetE and NetM: the served (best validated) weights, found by
    # evaluate.py --models=wgimask/pretrained, on a real 64 px crop.
    from wgimask.evaluation import EvaluationConfig, check_models
    from wgimask.evaluation.models import DaiModel, model_path

    config = EvaluationConfig(
        methods=("table2",), models_dir=str(inference.PRETRAINED_DIR)
    )
    assert check_models(config)  # NetE, NetM, the joint runs: all present
    crop = data.center_crop(photo, (64, 64))[None].astype(np.float32)
    for density in DENSITIES:
        nete_path = model_path(inference.PRETRAINED_DIR, "nete", density)
        netm_path = model_path(inference.PRETRAINED_DIR, "netm", density)
        assert nete_path.name == "nete_best.keras"
        assert netm_path.name == "netm_best.keras"
        for path in (nete_path, netm_path):
            facts = json.loads((path.parents[1] / "training.json").read_text())
            assert facts["best"]["step"] > 0 and facts["train_cpu_seconds"] > 0
        netm = DaiModel.load(netm_path, 64)
        mask = netm.mask(crop, density, seeds=[3])
        assert mask.sum() == round(density * 64 * 64)
        nete = DaiModel.load(nete_path, 64)
        inpainted = nete.inpaint(crop, mask)
        assert np.isfinite(inpainted).all()
        np.testing.assert_array_equal(inpainted[0][mask[0]], crop[0][mask[0]])
