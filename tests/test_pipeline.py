"""wgimask.pipeline: the mask pipeline decoded once from a run's settings."""

import dataclasses
import json
import re
import subprocess
import sys

import pytest

from wgimask.config import TrainingConfig
from wgimask.pipeline import POINTS, MaskPipeline
from wgimask.serve.model_files import PRETRAINED_DIR

#: Setting combinations TrainingConfig accepts, and what they decode to.
CASES = [
    (dict(), dict(points="rank", prior=False, residual=False)),
    (dict(mode="inpaint"), dict(points="random", prior=False, residual=False)),
    (
        dict(binarisation="ordered_dither", mask_prior="analytic"),
        dict(points="halftone", prior=True, residual=False),
    ),
    (
        dict(
            mode="mask",
            mask_operator="diffusion",
            binarisation="ordered_dither",
            mask_prior="analytic",
        ),
        dict(points="halftone", prior=True, residual=True, diffusion_operator=True),
    ),
    (
        dict(
            mask_points="densify",
            mask_prior="analytic",
            binarisation="ordered_dither",
            mask_operator="diffusion",
            prefill="diffusion",
        ),
        dict(points="densify", prior=True, residual=True, diffusion_operator=True),
    ),
    (
        dict(
            mask_points="densify",
            mask_prior="analytic",
            binarisation="ordered_dither",
            mask_operator="diffusion",
            prefill="diffusion",
            mask_correction="off",
        ),
        dict(points="densify", prior=True, correction=False, runs_mask_network=False),
    ),
    (
        dict(
            generator_masks="halftoned",
            binarisation="ordered_dither",
            mask_operator="diffusion",
        ),
        dict(points="halftone", halftoned_generator_masks=True),
    ),
]


@pytest.mark.parametrize("settings, expected", CASES)
def test_settings_decode_to_the_pipeline(settings, expected):
    config = TrainingConfig(**settings).validate()
    pipeline = MaskPipeline.from_config(config)
    for name, value in expected.items():
        assert getattr(pipeline, name) == value, name
    # config.json (a dict) decodes the same as the dataclass.
    assert MaskPipeline.from_config(dataclasses.asdict(config)) == pipeline


# One case per set of parts (building networks takes seconds).
@pytest.mark.parametrize("settings, expected", [CASES[i] for i in (0, 1, 3, 4)])
def test_parts_are_those_of_the_built_networks(settings, expected):
    from wgimask.nn.build import build_networks
    from wgimask.serve.parts import keras_parts

    config = TrainingConfig(model_size="tiny", **settings).validate()
    networks = build_networks(config, with_critic=False)
    built = keras_parts(networks["generator"], networks["mask_generator"])
    assert MaskPipeline.from_config(config).parts == tuple(built)


def test_shipped_runs_decode():
    found = {}
    for run in sorted(PRETRAINED_DIR.iterdir()):
        if run.name.startswith(("nete-", "netm-")):
            continue  # Dai et al.'s networks: no mask pipeline
        config = json.loads((run / "config.json").read_text())
        found[run.name] = MaskPipeline.from_config(config)
    assert found["inpaint"].parts == ("generator",)
    assert not found["inpaint"].has_mask_network
    for density in ("0.05", "0.1", "0.2"):
        pipeline = found[f"joint-{density}"]
        assert pipeline.points == "densify"
        assert pipeline.parts == ("correction", "prior_confidence", "residual")


def test_an_old_config_without_the_newer_fields_is_the_papers_pipeline():
    pipeline = MaskPipeline.from_config({"density": 0.1})
    assert pipeline == MaskPipeline(points="rank")
    assert pipeline.parts == ("confidence", "generator")


def test_unknown_points_are_refused():
    with pytest.raises(ValueError, match=re.escape(f"one of {POINTS}")):
        MaskPipeline(points="voronoi")


def test_settings_and_pipeline_load_no_tensorflow():
    code = (
        "import sys, wgimask.config, wgimask.pipeline, wgimask.run_folder; "
        "print('tensorflow' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"


def test_mask_correction_off_needs_densified_points():
    with pytest.raises(ValueError, match="mask_points"):
        TrainingConfig(mask_correction="off").validate()
    with pytest.raises(ValueError, match="mask_correction"):
        TrainingConfig(mask_correction="none").validate()
