"""Tests for wgimask.evaluation and the evaluate.py entry script.

Learned methods run tiny untrained networks exported by `wgimask.serve.export`, read
back through `wgimask.inference` as the command does.
"""

import csv
import dataclasses
import json
import logging
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wgimask import evaluation
from wgimask.evaluation import EvaluationConfig, Method, parse_method
from wgimask.evaluation import run as evaluation_run

REPO = Path(__file__).resolve().parents[2]
DENSITIES = (0.1, 0.2)
SIZE = 32


# --------------------------------------------------------------------------
# Fixtures


def _smooth_image(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth random colour image in [0, 1]: a few low-frequency cosines."""
    y, x = np.mgrid[0:size, 0:size] / size
    planes = []
    for _ in range(3):
        a, b, c, d = rng.uniform(1.0, 4.0, size=4)
        planes.append(0.5 + 0.4 * np.cos(a * 3 * x + b) * np.cos(c * 3 * y + d))
    return np.stack(planes, axis=-1)


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory) -> Path:
    """Three tiny smooth PNGs and one file that is not an image."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png", "c.png"):
        pixels = np.round(_smooth_image(rng, SIZE) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / name)
    (folder / "broken.png").write_bytes(b"not a png")
    return folder


@pytest.fixture(scope="module")
def models_dir(tiny_run, tmp_path_factory) -> Path:
    """The shared tiny run laid out as evaluate.py reads it."""
    root = tmp_path_factory.mktemp("models")
    for density in DENSITIES:
        run = root / f"joint-{density:g}"
        shutil.copytree(tiny_run, run)
        config = json.loads((run / "config.json").read_text())
        assert config["image_size"] == SIZE
        (run / "config.json").write_text(json.dumps({**config, "density": density}))
    # Its generator serves as the inpainting-only run (mask_gan/ is ignored).
    shutil.copytree(tiny_run, root / "inpaint")
    config = json.loads((root / "inpaint" / "config.json").read_text())
    (root / "inpaint" / "config.json").write_text(
        json.dumps({**config, "mode": "inpaint"})
    )
    return root


def _config(image_dir, tmp_path, **overrides) -> EvaluationConfig:
    settings = dict(
        data_dir=str(image_dir),
        image_size=SIZE,
        densities=DENSITIES,
        output_dir=str(tmp_path / "out"),
        progress=False,
        # Coarser PS steps than the default keep the tests fast.
        ps_candidate_fraction=0.3,
        ps_removal_fraction=0.3,
    )
    settings.update(overrides)
    return EvaluationConfig(**settings)


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames), list(reader)


# --------------------------------------------------------------------------
# Methods and config


@pytest.mark.parametrize(
    "name, mask, operator, canonical",
    [
        ("random+wgain", "random", "wgain", "random+wgain"),
        ("mg", "mg", "mg", "mg"),
        ("mg+mg", "mg", "mg", "mg"),
        ("mg+hd", "mg", "hd", "mg+hd"),
        ("PS+NLPE+HD", "ps+nlpe", "hd", "ps+nlpe+hd"),
        (" ps+wgain ", "ps", "wgain", "ps+wgain"),
        ("analytic+nlpe12+hd", "analytic+nlpe12", "hd", "analytic+nlpe12+hd"),
        ("mg+nlpe0.5+mg", "mg+nlpe0.5", "mg", "mg+nlpe0.5+mg"),
        ("ps+nlpe012+hd", "ps+nlpe12", "hd", "ps+nlpe12+hd"),
        ("ps+nlpe12.0+hd", "ps+nlpe12", "hd", "ps+nlpe12+hd"),
    ],
)
def test_parse_method(name, mask, operator, canonical):
    method = parse_method(name)
    assert method == Method(mask, operator)
    assert method.name == canonical
    assert parse_method(method.name) == method


@pytest.mark.parametrize(
    "name",
    [
        "",
        "hd",
        "ps",
        "nlpe+hd",
        "random+nn",
        "ps+hd+hd",
        "ps+nlpex+hd",
        "pp+nlpe3+hd",
        "pp+nlpe0+hd",
        "ps+nlpe\u0663+hd",
    ],
)
def test_parse_method_rejects_unknown_names(name):
    with pytest.raises(ValueError, match="unknown method"):
        parse_method(name)


def test_nlpe_cycles_in_a_method_name():
    assert evaluation.split_nlpe("analytic+nlpe12") == ("analytic+nlpe", 12.0)
    assert evaluation.split_nlpe("analytic+nlpe") == ("analytic+nlpe", None)
    assert parse_method("mg+nlpe3+hd").learned_mask
    with pytest.raises(ValueError, match="more than 0 cycles"):
        parse_method("ps+nlpe0+hd")


def test_own_nlpe_cycles_are_those_steps_of_the_same_exchange():
    """analytic+nlpe0.5 runs half a cycle from the analytic start with the
    seed of analytic+nlpe, whatever --nlpe_cycles says: the masks of
    analytic+nlpe with nlpe_cycles=0.5."""
    from wgimask import baselines

    rng = np.random.default_rng(3)
    images = rng.random((2, 16, 16, 3))
    own = evaluation_run._Pipeline(
        EvaluationConfig(methods=("analytic+nlpe0.5+hd",), nlpe_cycles=2), None
    ).masks("analytic+nlpe0.5", images, 0.1, [0, 1])
    flag = evaluation_run._Pipeline(
        EvaluationConfig(methods=("analytic+nlpe+hd",), nlpe_cycles=0.5), None
    ).masks("analytic+nlpe", images, 0.1, [0, 1])
    np.testing.assert_array_equal(own.masks, flag.masks)
    for index, (image, mask) in enumerate(zip(images, own.masks, strict=True)):
        start = baselines.analytic_mask(
            image, 0.1, seed=evaluation.method_seed(0, index, 0.1, "analytic")
        )
        seed = evaluation.method_seed(0, index, 0.1, "analytic+nlpe")
        expected = baselines.nonlocal_pixel_exchange(
            image, start, cycles=0.5, seed=seed
        )
        np.testing.assert_array_equal(mask, expected)


def test_learned_and_batchable():
    assert not parse_method("ps+nlpe+hd").learned
    assert parse_method("mg+hd").learned and not parse_method("mg+hd").batchable
    assert parse_method("random+wgain").batchable and parse_method("mg").batchable


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"methods": ("random+hd", "foo")}, "methods"),
        ({"methods": ("mg", "mg+mg")}, "methods"),
        ({"methods": ()}, "methods"),
        ({"densities": (0.1, 1.5)}, "densities"),
        ({"densities": (0.0,)}, "densities"),
        ({"image_size": 60}, "image_size"),
        ({"image_size": 8}, "image_size"),
        ({"channels": 2}, "channels"),
        ({"max_images": 0}, "max_images"),
        ({"mg_density": "close"}, "mg_density"),
        ({"ps_removal_fraction": 0.0}, "ps_removal_fraction"),
        ({"ps_candidate_fraction": 1.5}, "ps_candidate_fraction"),
        ({"densities": (0.001,), "image_size": 16}, "densities"),
        ({"learned_device": "tpu"}, "learned_device"),
        ({"data_dir": "/no/such/folder"}, "data_dir"),
        ({"models_dir": "/no/such/folder"}, "models_dir"),
    ],
)
def test_config_rejects_bad_values(overrides, field):
    with pytest.raises(evaluation.ConfigError) as caught:
        EvaluationConfig(**overrides)
    assert caught.value.field == field


def test_config_canonicalises_methods():
    config = EvaluationConfig(methods=["MG+MG", "ps+hd"], densities=[0.05])
    assert config.methods == ("mg", "ps+hd")
    assert config.densities == (0.05,)


# --------------------------------------------------------------------------
# Models


def test_required_models_per_method():
    needs = evaluation.required_models(
        [parse_method(n) for n in ("mg", "mg+hd", "random+wgain", "ps+hd")], (0.05,)
    )
    found = {(n.kind, n.density): n.methods for n in needs}
    assert found == {
        ("mask_gan", 0.05): ("mg", "mg+hd"),
        ("joint_inpainter", 0.05): ("mg",),
        ("inpainter", None): ("random+wgain",),
    }
    raw = evaluation.required_models([parse_method("mg")], (0.05,), "raw")
    assert [(n.kind, n.density) for n in raw] == [("mask_gan", 0.05)]
    assert evaluation.model_path("M", "mask_gan", 0.1) == Path(
        "M/joint-0.1/export/mask_gan"
    )
    assert evaluation.model_path("M", "inpainter", None) == Path(
        "M/inpaint/export/inpainter"
    )


def test_dai_models_are_their_runs_best_weights_when_validated(tmp_path):
    # The weights the run's SavedModel serves: the best when it validated.
    export = tmp_path / "netm-0.1" / "export"
    export.mkdir(parents=True)
    assert evaluation.model_path(tmp_path, "netm", 0.1) == export / "netm.keras"
    (export / "netm.keras").write_text("latest")
    assert evaluation.model_path(tmp_path, "netm", 0.1) == export / "netm.keras"
    (export / "netm_best.keras").write_text("best")
    assert evaluation.model_path(tmp_path, "netm", 0.1) == export / "netm_best.keras"


def test_missing_models_say_what_to_pass_or_train(tmp_path):
    with pytest.raises(evaluation.MissingModelsError, match="--models"):
        evaluation.check_models(EvaluationConfig(methods=("mg",)))
    config = EvaluationConfig(
        methods=("random+hd", "mg"), densities=(0.05,), models_dir=str(tmp_path)
    )
    with pytest.raises(evaluation.MissingModelsError) as caught:
        evaluation.check_models(config)
    message = str(caught.value)
    assert str(tmp_path / "joint-0.05" / "export" / "mask_gan") in message
    assert "train the joint mask GAN at density 0.05" in message
    # Baseline-only runs need no models at all.
    assert evaluation.check_models(EvaluationConfig(methods=("ps+hd",))) == []


def test_top_confidence_mask_is_exact_and_deterministic():
    confidence = np.array([[0.9, 0.5, 0.5], [0.5, 0.1, 0.95]])
    mask = evaluation_run.top_confidence_mask(confidence[..., None], 3)
    # 0.95 and 0.9, then the first of the tied 0.5 values in raster order.
    assert mask.tolist() == [[True, True, False], [False, False, True]]
    assert evaluation_run.point_count(0.05, (64, 64)) == 205


def test_diffusion_from_an_empty_mask_is_an_error():
    pipeline = evaluation_run._Pipeline(EvaluationConfig(methods=("mg+hd",)), None)
    empty = evaluation_run._MaskResult(np.zeros((1, 16, 16), bool), 0.0)
    with pytest.raises(evaluation.EvaluationError, match="no point"):
        pipeline.inpaint(parse_method("mg+hd"), np.zeros((1, 16, 16, 3)), empty, 0.1)


def test_method_seed_depends_on_image_density_and_mask_only():
    a = evaluation.method_seed(0, 3, 0.1, "random")
    assert a == evaluation.method_seed(0, 3, 0.1, "random")
    others = {
        evaluation.method_seed(1, 3, 0.1, "random"),
        evaluation.method_seed(0, 4, 0.1, "random"),
        evaluation.method_seed(0, 3, 0.2, "random"),
        evaluation.method_seed(0, 3, 0.1, "ps"),
    }
    assert a not in others and len(others) == 4


# --------------------------------------------------------------------------
# Reports


def test_markdown_report_is_laid_out_like_the_paper():
    rows = [
        {
            "method": m,
            "density": d,
            "images": 2,
            "psnr": 20.0 + i,
            "mae": 10.0 - i,
            "ssim": 0.5,
            "seconds_per_image": 0.25,
            "device": "cpu x",
            "mask_density": d,
            "seconds_per_image_batched": None,
        }
        for i, (m, d) in enumerate(
            [(m, d) for m in ("ps+hd", "mg") for d in (0.05, 0.1)]
        )
    ]
    text = evaluation.markdown_report(
        rows,
        ["ps+hd", "mg"],
        [0.05, 0.1],
        images=2,
        image_size=64,
        channels=3,
        source="photos",
    )
    assert "| Density | ps+hd | mg |" in text
    assert "| 5% | 20.00 | 22.00 |" in text  # PSNR rows: densities
    assert "| Density | MAE ps+hd | MAE mg | SSIM ps+hd | SSIM mg |" in text
    assert "| 10% | 9.00 | 7.00 | 0.50 | 0.50 |" in text
    assert "- mg: cpu x" in text
    assert "scikit-image" in text


def test_method_device_names_both_parts_when_they_differ():
    assert evaluation.method_device(parse_method("ps+hd"), "CPU", None) == "CPU"
    assert evaluation.method_device(parse_method("mg"), "CPU", "GPU") == "GPU"
    assert (
        evaluation.method_device(parse_method("mg+hd"), "CPU", "GPU")
        == "mask: GPU; inpainting: CPU"
    )


# --------------------------------------------------------------------------
# End to end


@pytest.mark.slow
def test_run_writes_all_outputs(image_dir, models_dir, tmp_path, caplog):
    methods = ("random+hd", "ps+hd", "mg")
    config = _config(image_dir, tmp_path, methods=methods, models_dir=str(models_dir))
    with caplog.at_level(logging.WARNING):
        result = evaluation.run_evaluation(config)
    assert "broken.png" in caplog.text  # skipped with a warning
    out = tmp_path / "out"

    columns, rows = _read_csv(out / "results.csv")
    assert columns == list(evaluation.RESULT_COLUMNS)
    assert columns[:8] == [
        "method",
        "density",
        "images",
        "psnr",
        "mae",
        "ssim",
        "seconds_per_image",
        "device",
    ]
    assert [(r["method"], float(r["density"])) for r in rows] == [
        (m, d) for m in methods for d in DENSITIES
    ]
    for row in rows:
        assert row["images"] == "3"
        assert 5 < float(row["psnr"]) < 80
        assert 0 < float(row["mae"]) < 60
        assert 0 < float(row["ssim"]) <= 1
        assert float(row["seconds_per_image"]) > 0
        assert row["device"]
        # Exact densities: round(D N) points for every method here.
        points = round(float(row["density"]) * SIZE * SIZE)
        assert float(row["mask_density"]) == pytest.approx(points / SIZE**2)
        assert (row["seconds_per_image_batched"] != "") == (row["method"] == "mg")

    columns, per_image = _read_csv(out / "per_image.csv")
    assert columns == list(evaluation.PER_IMAGE_COLUMNS)
    assert len(per_image) == 3 * len(methods) * len(DENSITIES)
    assert {r["image"] for r in per_image} == {"a.png", "b.png", "c.png"}
    # The summary is the mean of the per-image values.
    mae = [
        float(r["mae"])
        for r in per_image
        if r["method"] == "ps+hd" and float(r["density"]) == 0.1
    ]
    summary = next(r for r in rows if r["method"] == "ps+hd" and r["density"] == "0.1")
    assert float(summary["mae"]) == pytest.approx(np.mean(mae), abs=1e-5)

    markdown = (out / "results.md").read_text()
    assert markdown == result.markdown
    assert "| Density | random+hd | ps+hd | mg |" in markdown
    settings = json.loads((out / "config.json").read_text())
    assert settings["images_used"] == ["a.png", "b.png", "c.png"]
    assert settings["ps_fractions_used"] == {
        "candidate_fraction": 0.3,
        "removal_fraction": 0.3,
    }
    # Named by the position in the file listing (broken.png is number 2).
    figures = sorted((out / "figures").glob("*.png"))
    assert [f.name for f in figures] == ["0000_a.png", "0001_b.png", "0003_c.png"]
    with Image.open(figures[0]) as figure:
        assert figure.width > 400 and figure.height > 400


def test_run_repeats_for_a_seed_and_subsets_agree(image_dir, tmp_path):
    def metrics_of(methods, densities, seed, name):
        config = _config(
            image_dir,
            tmp_path / name,
            methods=methods,
            densities=densities,
            seed=seed,
            figures=False,
            max_images=2,
        )
        rows = evaluation.run_evaluation(config).per_image
        return {
            (r["image"], r["method"], r["density"]): (r["psnr"], r["mae"], r["ssim"])
            for r in rows
        }

    first = metrics_of(("random+hd", "ps+hd"), DENSITIES, 0, "one")
    assert len(first) == 2 * 2 * len(DENSITIES)
    assert metrics_of(("random+hd", "ps+hd"), DENSITIES, 0, "two") == first
    subset = metrics_of(("random+hd",), DENSITIES[1:], 0, "three")
    assert all(first[key] == value for key, value in subset.items())
    other = metrics_of(("random+hd",), DENSITIES[1:], 1, "four")
    assert other != subset


@pytest.mark.parametrize("start", ["electrostatic", "densify"])
def test_model_free_starts_run_and_nlpe_refines_them(image_dir, tmp_path, start):
    config = _config(
        image_dir,
        tmp_path,
        methods=(f"{start}+hd", f"{start}+nlpe0.5+hd"),
        densities=(0.1,),
        figures=False,
        max_images=2,
    )
    rows = evaluation.run_evaluation(config).per_image
    by = {(r["image"], r["method"]): r for r in rows}
    assert len(by) == 4
    for image in {r["image"] for r in rows}:
        # NLPE only accepts exchanges that lower the diffusion error.
        refined = by[(image, f"{start}+nlpe0.5+hd")]["mae"]
        assert refined <= by[(image, f"{start}+hd")]["mae"]


def test_every_model_free_operator_runs_as_a_method(image_dir, tmp_path):
    from wgimask.diffusion.operators import OPERATORS

    # bpfa is left out: seconds per crop (its own tests cover it).
    methods = tuple(f"random+{op}" for op in OPERATORS if op != "bpfa")
    config = _config(
        image_dir,
        tmp_path,
        methods=methods,
        densities=(0.2,),
        figures=False,
        max_images=1,
    )
    rows = {r["method"]: r for r in evaluation.run_evaluation(config).per_image}
    assert set(rows) == set(methods)
    assert all(np.isfinite(r["psnr"]) for r in rows.values())
    # The operators differ on the same mask.
    assert len({round(r["psnr"], 6) for r in rows.values()}) == len(methods)


@pytest.mark.slow
def test_raw_mask_gan_density_is_reported(image_dir, models_dir, tmp_path):
    config = _config(
        image_dir,
        tmp_path,
        methods=("mg", "random+wgain"),
        models_dir=str(models_dir),
        mg_density="raw",
        figures=False,
    )
    result = evaluation.run_evaluation(config)
    raw = [r for r in result.per_image if r["method"] == "mg"]
    # The raw mask keeps pixels of confidence > 0.5, whatever their number.
    assert all(r["points"] == r["mask_density"] * SIZE * SIZE for r in raw)
    exact = [r for r in result.per_image if r["method"] == "random+wgain"]
    assert all(r["points"] == round(r["density"] * SIZE * SIZE) for r in exact)
    assert all(math.isfinite(r["psnr"]) for r in result.per_image)


@pytest.mark.slow
def test_channel_mismatch_with_models_is_an_error(image_dir, models_dir, tmp_path):
    config = _config(
        image_dir, tmp_path, methods=("mg",), models_dir=str(models_dir), channels=1
    )
    with pytest.raises(evaluation.EvaluationError, match="3-channel"):
        evaluation.run_evaluation(config)


def test_no_usable_image_is_an_error(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "broken.jpg").write_bytes(b"\x00\x01")
    config = _config(folder, tmp_path, methods=("random+hd",))
    with pytest.raises(evaluation.EvaluationError, match="no usable image"):
        evaluation.run_evaluation(config)


# --------------------------------------------------------------------------
# The entry script


def _evaluate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "evaluate.py"), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


@pytest.mark.slow  # one subprocess each; EvaluationConfig's messages are tested above
@pytest.mark.parametrize(
    "args, flag",
    [
        (["--densities=0.1,1.5"], "--densities"),
        (["--densities=0.1,abc"], "--densities"),
        (["--methods=ps+foo"], "--methods"),
        (["--image_size=50"], "--image_size"),
        (["--models=/no/such/folder"], "--models"),
    ],
)
def test_entry_script_names_the_bad_flag(args, flag):
    run = _evaluate(*args)
    assert run.returncode != 0
    # TensorFlow's start-up lines may precede it; ours is the last, one line.
    lines = run.stderr.strip().splitlines()
    assert lines[-1].startswith(f"evaluate.py: {flag}:")
    assert sum(line.startswith("evaluate.py:") for line in lines) == 1


@pytest.mark.slow
def test_entry_script_says_what_models_to_pass(tmp_path):
    run = _evaluate("--methods=random+wgain", f"--output_dir={tmp_path}")
    assert run.returncode != 0
    assert "--models=DIR" in run.stderr and "train.py" in run.stderr


# --------------------------------------------------------------------------
# One inference path, small images, output folders


@pytest.mark.slow
def test_learned_masks_are_those_of_the_command(models_dir, image_dir):
    from wgimask import inference

    config = _config(
        image_dir, Path("unused"), methods=("mg",), models_dir=str(models_dir)
    )
    needs = evaluation.check_models(config)
    models = evaluation.LearnedModels(models_dir, needs, SIZE)
    pipeline = evaluation_run._Pipeline(config, models)
    # Larger than the models' crop: tiled, exactly as `wgimask` tiles it.
    images = np.random.default_rng(4).uniform(size=(2, 2 * SIZE, 3 * SIZE, 3))
    images = images.astype(np.float32)
    masks = pipeline.masks("mg", images, 0.1, [0, 1]).masks
    model = inference.load(models_dir / "joint-0.1")
    for image, mask in zip(images, masks, strict=True):
        expected, _ = model.optimise_mask(image, 0.1)
        np.testing.assert_array_equal(mask, expected)


def test_upscaled_images_are_named_marked_and_averaged_apart(
    image_dir, tmp_path, caplog
):
    folder = tmp_path / "images"
    shutil.copytree(image_dir, folder)
    small = np.round(_smooth_image(np.random.default_rng(9), 12) * 255)
    Image.fromarray(small.astype(np.uint8)[:7, :5]).save(folder / "tiny.png")
    config = _config(folder, tmp_path, methods=("random+hd",), figures=False)
    with caplog.at_level(logging.WARNING):
        result = evaluation.run_evaluation(config)
    assert "tiny.png" in caplog.text and "#0" not in caplog.text
    _, per_image = _read_csv(tmp_path / "out" / "per_image.csv")
    marks = {r["image"]: r["upscaled"] for r in per_image}
    assert marks == {"a.png": "False", "b.png": "False", "c.png": "False",
                     "tiny.png": "True"}  # fmt: skip
    _, rows = _read_csv(tmp_path / "out" / "results.csv")
    main = [r for r in rows if r["upscaled"] == "False"]
    apart = [r for r in rows if r["upscaled"] == "True"]
    assert {r["images"] for r in main} == {"3"} and {r["images"] for r in apart} == {
        "1"
    }
    native = [
        float(r["psnr"])
        for r in per_image
        if r["upscaled"] == "False" and float(r["density"]) == DENSITIES[0]
    ]
    assert float(main[0]["psnr"]) == pytest.approx(np.mean(native), abs=1e-5)
    assert "Evaluation on 3 colour image(s)" in result.markdown
    assert "Left out of these tables: 1 image(s)" in result.markdown
    assert "tiny.png" in result.markdown


def test_only_upscaled_images_is_an_error(tmp_path):
    folder = tmp_path / "small"
    folder.mkdir()
    pixels = np.full((10, 12, 3), 128, np.uint8)
    Image.fromarray(pixels).save(folder / "one.png")
    config = _config(folder, tmp_path, methods=("random+hd",))
    with pytest.raises(evaluation.EvaluationError, match="every image is smaller"):
        evaluation.run_evaluation(config)


def test_output_dir_that_is_a_file_is_one_line(image_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for target, message in (
        (blocker, "is a file"),
        (blocker / "sub", "cannot be created"),
    ):
        config = _config(image_dir, tmp_path, methods=("random+hd",))
        config = dataclasses.replace(config, output_dir=str(target))
        with pytest.raises(evaluation.EvaluationError, match=message):
            evaluation.run_evaluation(config)


@pytest.mark.slow
def test_entry_script_output_dir_that_is_a_file_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    run = _evaluate("--methods=random+hd", f"--output_dir={blocker}", "--max_images=1")
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("evaluate.py: --output_dir:")


@pytest.mark.slow
def test_entry_script_help_lists_its_own_flags():
    run = _evaluate("--help")
    assert run.returncode == 0
    assert "--image_size" in run.stdout and "(default: '64')" in run.stdout
    assert "oneDNN" not in run.stderr


def test_a_bad_crop_size_is_blamed_on_itself(image_dir, tmp_path):
    with pytest.raises(evaluation.ConfigError) as error:
        _config(image_dir, tmp_path, image_size=0)
    assert error.value.field == "image_size"


def test_an_earlier_evaluation_is_kept_unless_overwritten(image_dir, tmp_path):
    config = _config(image_dir, tmp_path, methods=("random+hd",), densities=(0.1,))
    first = evaluation.run_evaluation(config)
    stale = first.output_dir / "figures" / "an_image_no_longer_there.png"
    stale.write_bytes(b"")
    with pytest.raises(evaluation.EvaluationError, match="--overwrite") as error:
        evaluation.run_evaluation(config)
    assert "\n" not in str(error.value) and stale.exists()
    again = evaluation.run_evaluation(dataclasses.replace(config, overwrite=True))
    assert not stale.exists()
    assert sorted(p.name for p in (again.output_dir / "figures").iterdir()) == sorted(
        p.name for p in again.figures
    )


@pytest.mark.slow
def test_dai_networks_run_as_table_2_methods(tmp_path):
    # Tiny NetE and NetM trained for two steps: the methods of the paper's
    # Table 2 that use them run, with exact-density masks.
    from wgimask.train import dai

    rng = np.random.default_rng(0)
    crops = [rng.random((4, 64, 64, 3)).astype(np.float32) for _ in range(2)]
    settings = dai.DaiSettings(
        density=0.1, batch_size=4, steps=2, width=4, netm_filters=4, netm_blocks=1
    ).validate()
    models = tmp_path / "models"
    nete = dai.train_nete(settings, crops, models / "nete-0.1").model
    dai.train_netm(settings, nete, crops, models / "netm-0.1")
    images = tmp_path / "images"
    images.mkdir()
    for k in range(2):
        pixels = (rng.random((70, 80, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(images / f"{k}.png")
    config = EvaluationConfig(
        data_dir=str(images),
        image_size=64,
        densities=(0.1,),
        methods=("random+nete", "netm+nete", "netm+hd"),
        models_dir=str(models),
        output_dir=str(tmp_path / "out"),
        progress=False,
        figures=False,
    )
    result = evaluation.run_evaluation(config)
    rows = {r["method"]: r for r in result.rows}
    assert set(rows) == {"random+nete", "netm+nete", "netm+hd"}
    for row in rows.values():
        assert float(row["density"]) == 0.1
        assert float(row["mask_density"]) == pytest.approx(round(0.1 * 4096) / 4096)
    # NetM's other binarisations: Dai's Bernoulli draw (the density in
    # expectation only) and the largest values (exact, deterministic).
    psnr = {"sampled": rows["netm+hd"]["psnr"]}
    for mode in ("bernoulli", "topk"):
        other = evaluation.run_evaluation(
            dataclasses.replace(
                config,
                methods=("netm+hd",),
                netm_masks=mode,
                output_dir=str(tmp_path / mode),
            )
        )
        (row,) = other.rows
        psnr[mode] = row["psnr"]
        exact = float(row["mask_density"]) == pytest.approx(410 / 4096)
        assert exact == (mode == "topk")
        assert float(row["mask_density"]) == pytest.approx(0.1, abs=0.02)
        recorded = json.loads((tmp_path / mode / "config.json").read_text())
        assert recorded["netm_masks"] == mode
    assert len(set(psnr.values())) == 3  # three different masks
    with pytest.raises(evaluation.ConfigError, match="netm_masks"):
        dataclasses.replace(config, netm_masks="dither")
    # Another size: one line naming NetE's 64 px.
    with pytest.raises(evaluation.EvaluationError, match="64x64"):
        evaluation.run_evaluation(
            dataclasses.replace(
                config,
                image_size=32,
                methods=("random+nete",),
                output_dir=str(tmp_path / "out32"),
            )
        )
