"""Tests for the trade-off figure and the analytic / NLPE-from-any-mask methods."""

import numpy as np
import pytest
from PIL import Image

from wgimask import evaluation
from wgimask.evaluation import EvaluationConfig, parse_method
from wgimask.evaluation import run as evaluation_run
from wgimask.evaluation.tradeoff import (
    pareto_front,
    tradeoff_figure_name,
    write_tradeoff_figure,
)


def test_pareto_front():
    # (seconds, quality): the second point is slower and worse than the first.
    points = [(0.01, 20.0), (0.5, 19.0), (1.0, 25.0), (1.0, 24.0), (9.0, 26.0)]
    assert pareto_front(points) == [0, 2, 4]
    assert pareto_front([(1.0, 1.0)]) == [0]
    # Equal points do not dominate each other.
    assert pareto_front([(1.0, 2.0), (1.0, 2.0)]) == [0, 1]


def test_write_tradeoff_figure(tmp_path):
    rows = [
        {"method": m, "density": d, "psnr": p, "ssim": s, "seconds_per_image": t}
        for m, d, p, s, t in [
            ("random+hd", 0.1, 26.0, 0.7, 0.0),  # below the log axis' floor
            ("analytic+hd", 0.1, 29.7, 0.83, 0.03),
            ("ps+nlpe+hd", 0.1, 32.4, 0.86, 6.5),
            ("ps+hd", 0.2, 35.0, 0.9, 0.5),
        ]
    ]
    path = write_tradeoff_figure(tmp_path / tradeoff_figure_name(0.1), rows, 0.1)
    assert path.name == "tradeoff_10pct.png"
    with Image.open(path) as img:
        assert img.size[0] > 600
    with pytest.raises(ValueError, match="density"):
        write_tradeoff_figure(tmp_path / "x.png", rows, 0.05)


@pytest.mark.parametrize(
    "name, mask",
    [
        ("analytic+hd", "analytic"),
        ("analytic+nlpe+hd", "analytic+nlpe"),
        ("random+nlpe+wgain", "random+nlpe"),
        ("mg+nlpe+mg", "mg+nlpe"),
    ],
)
def test_new_mask_methods_parse(name, mask):
    method = parse_method(name)
    assert method.mask == mask and method.name == name
    assert method.learned == (mask == "mg+nlpe" or method.operator != "hd")


def test_mg_nlpe_needs_the_mask_gan():
    needs = evaluation.required_models([parse_method("mg+nlpe+hd")], (0.1,))
    assert [(n.kind, n.density) for n in needs] == [("mask_gan", 0.1)]


def test_fractional_nlpe_cycles_are_accepted_and_checked():
    assert EvaluationConfig(nlpe_cycles=0.25).nlpe_cycles == 0.25
    for bad in (0, -1, float("nan")):
        with pytest.raises(evaluation.ConfigError) as caught:
            EvaluationConfig(nlpe_cycles=bad)
        assert caught.value.field == "nlpe_cycles"


def test_run_with_analytic_methods_writes_tradeoff_figures(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(2):
        y, x = np.mgrid[0:32, 0:32] / 32
        img = 0.5 + 0.3 * np.sin(6 * x + rng.uniform(0, 3)) * np.cos(4 * y)
        img = np.stack([img, img[::-1], img.T], -1)
        Image.fromarray(np.uint8(np.clip(img, 0, 1) * 255)).save(folder / f"{i}.png")
    config = EvaluationConfig(
        methods=("random+hd", "analytic+hd", "analytic+nlpe+hd", "random+nlpe+hd"),
        densities=(0.1,),
        data_dir=str(folder),
        image_size=32,
        output_dir=str(tmp_path / "out"),
        nlpe_cycles=0.5,
        figures=False,
        progress=False,
    )
    result = evaluation.run_evaluation(config)
    rows = {r["method"]: r for r in result.rows}
    assert (tmp_path / "out" / "tradeoff_10pct.png").is_file()
    # NLPE never makes its start mask worse, and its time includes the start's.
    for start in ("analytic", "random"):
        refined, first = rows[f"{start}+nlpe+hd"], rows[f"{start}+hd"]
        assert refined["mae"] <= first["mae"] + 1e-9
        assert refined["seconds_per_image"] > first["seconds_per_image"]
    points = {(r["method"], r["image"]): r["points"] for r in result.per_image}
    assert set(points.values()) == {round(0.1 * 32 * 32)}


def test_nlpe_from_an_empty_raw_mask_gan_mask_is_an_error():
    config = EvaluationConfig(methods=("mg+nlpe+hd",), mg_density="raw")
    pipeline = evaluation_run._Pipeline(config, None)
    cache = {"mg": evaluation_run._MaskResult(np.zeros((1, 16, 16), bool), 0.0)}
    with pytest.raises(evaluation.EvaluationError, match="no point"):
        pipeline.masks("mg+nlpe", np.zeros((1, 16, 16, 3)), 0.1, [0], cache)
