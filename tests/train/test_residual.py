"""wgimask.train.residual: cached inputs and the correction's training."""

import numpy as np
import pytest

from wgimask.train import residual


def _images():
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:70, 0:90] / 90.0
    smooth = np.stack([0.3 + 0.4 * x * y] * 3, axis=-1).astype(np.float32)
    noisy = np.clip(smooth + 0.1 * rng.standard_normal(smooth.shape), 0, 1)
    return [("smooth", smooth), ("noisy", noisy.astype(np.float32))]


def test_the_cache_holds_the_inference_inputs_of_crops(tmp_path):
    from wgimask import baselines
    from wgimask.masks.densification import densification_mask

    path = residual.build_cache(
        _images(), 0.1, tmp_path / "c.npz", crops_per_megapixel=1000, progress=len
    )
    cache = residual.load_cache(path)
    assert cache["image"].shape == (12, 64, 64, 3) and cache["density"] == 0.1
    # Every crop is a window of the whole image's mask and diffusion.
    name, image = _images()[0]
    mask = densification_mask(image, 0.1)
    diffused = np.clip(baselines.inpaint(image, mask), 0, 1)
    found = 0
    for crop_mask, crop_u in zip(
        cache["mask"][:6, ..., 0], cache["diffused"][:6], strict=True
    ):
        for y in range(70 - 64 + 1):
            for x in range(90 - 64 + 1):
                if np.array_equal(crop_mask, mask[y : y + 64, x : x + 64]) and (
                    np.abs(crop_u - diffused[y : y + 64, x : x + 64]).max() < 1e-3
                ):
                    found += 1
                    break
            else:
                continue
            break
    assert found == 6


def test_the_loss_counts_only_unknown_pixels():
    images = np.zeros((1, 4, 4, 3), np.float32)
    masks = np.zeros((1, 4, 4, 1), np.float32)
    masks[0, :2] = 1.0
    diffused = np.zeros_like(images)
    residual_values = np.zeros_like(images)
    residual_values[0, :2] = 5.0  # known rows: ignored
    residual_values[0, 2:] = 0.5
    loss = residual.residual_loss(images, masks, diffused, residual_values)
    assert float(loss) == pytest.approx(0.25)


@pytest.mark.parametrize(
    "field, value", [("density", 1.0), ("steps", 0), ("learning_rate", 0.0)]
)
def test_bad_settings_are_one_line_errors(field, value):
    with pytest.raises(ValueError, match=field):
        residual.ResidualSettings(**{"density": 0.1, field: value})


@pytest.mark.slow
def test_training_resumes_and_exports_a_loadable_run(tmp_path):
    from wgimask import inference

    cache = residual.load_cache(
        residual.build_cache(
            _images(), 0.1, tmp_path / "c.npz", crops_per_megapixel=500, progress=len
        )
    )
    lines = []
    settings = residual.ResidualSettings(
        density=0.1, steps=2, batch_size=2, checkpoint_every=1, log_every=1
    )
    run = inference.shipped_models()[0.1]
    residual.train_residual(run, cache, settings, tmp_path / "work", lines.append)
    assert lines == [
        f"step {n}/2: loss " + lines[n - 1].split("loss ")[1] for n in (1, 2)
    ]
    more = residual.ResidualSettings(density=0.1, steps=3, batch_size=2, log_every=1)
    networks = residual.train_residual(
        run, cache, more, tmp_path / "work", lines.append
    )
    assert lines[2] == "resumed at step 2" and lines[3].startswith("step 3/3")
    residual.export_residual(*networks, tmp_path / "run")
    model = inference.load(tmp_path / "run")
    assert model.prefilled and model.density == 0.1
