"""Tests for densification masks (wgimask.masks.densification)."""

import numpy as np
import pytest
from helpers import photo_crop
from scipy.ndimage import maximum_filter

from wgimask.baselines import analytic_mask, densification_mask, inpaint
from wgimask.masks.densification import (
    _largest,
    _ranking_scores,
    densification_radius,
)


@pytest.mark.parametrize(
    ("shape", "density"), [((24, 24, 3), 0.05), ((17, 29), 0.1), ((20, 16, 3), 0.2)]
)
def test_has_the_exact_count(shape, density):
    rng = np.random.default_rng(0)
    f = rng.random(shape)
    mask = densification_mask(f, density, seed=1)
    assert mask.shape == shape[:2] and mask.dtype == bool
    assert mask.sum() == round(density * shape[0] * shape[1])


def _mse(f, mask):
    return float(np.mean((inpaint(f, mask) - f) ** 2))


def test_beats_the_analytic_mask_in_squared_error():
    # It adds points where the error is largest, so it lowers the squared
    # error (PSNR); at 5 % on such small crops it can lose (docs/baselines.md).
    for name in ("astronaut", "coffee", "rocket"):
        f = photo_crop(name, 48)
        for density in (0.1, 0.2):
            dense = densification_mask(f, density)
            assert _mse(f, dense) < _mse(f, analytic_mask(f, density))


def test_grey_colour_and_seeds():
    f = photo_crop("coffee", 32)
    colour = densification_mask(f, 0.1, seed=3)
    assert np.array_equal(colour, densification_mask(f, 0.1, seed=3))
    grey = densification_mask(f.mean(axis=2), 0.1, seed=3)
    assert grey.sum() == colour.sum()
    # The seed moves the analytic start, hence the grown points.
    assert any(
        not np.array_equal(colour, densification_mask(f, 0.1, seed=s))
        for s in (4, 5, 6)
    )


def test_points_go_where_diffusion_fails():
    # Left half flat, right half a fine texture: the grown points go right.
    rng = np.random.default_rng(2)
    f = np.full((32, 32), 0.5)
    f[:, 16:] = rng.random((32, 16))
    mask = densification_mask(f, 0.1)
    assert mask[:, 16:].sum() > 3 * mask[:, :16].sum()


def test_suppression_spreads_the_new_points():
    f = photo_crop("astronaut", 48)
    spread = densification_mask(f, 0.1, radius=2)
    crowded = densification_mask(f, 0.1, radius=0)

    def neighbours(mask):
        m = mask.astype(int)
        return int((m[1:, :] & m[:-1, :]).sum() + (m[:, 1:] & m[:, :-1]).sum())

    assert neighbours(spread) < neighbours(crowded)


def test_constant_image_still_gives_a_valid_mask():
    mask = densification_mask(np.full((16, 16, 3), 0.3), 0.1)
    assert mask.sum() == round(0.1 * 256)
    assert np.array_equal(mask, densification_mask(np.full((16, 16, 3), 0.3), 0.1))


def test_default_radius_follows_the_spacing():
    assert [densification_radius(d) for d in (0.05, 0.1, 0.2)] == [3, 2, 1]
    assert densification_radius(0.05, spacings=0.4) == 2
    assert densification_radius(0.1, spacings=0) == 0


def test_largest_breaks_ties_by_index():
    score = np.array([1.0, 3.0, 2.0, 3.0, 2.0, 2.0])
    assert sorted(_largest(score, 4).tolist()) == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": 0.0}, "start"),
        ({"start": 1.5}, "start"),
        ({"growth": 0.0}, "growth"),
        ({"growth": float("nan")}, "growth"),
        ({"radius": -1}, "radius"),
        ({"radius": 1.5}, "radius"),
        ({"radius": float("inf")}, "radius"),
        ({"radius": float("nan")}, "radius"),
        ({"start": None}, "start"),
        ({"growth": "fast"}, "growth"),
    ],
)
def test_bad_arguments_are_value_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        densification_mask(np.random.default_rng(0).random((8, 8)), 0.2, **kwargs)


def test_bad_images_are_value_errors():
    with pytest.raises(ValueError):
        densification_mask(np.full((8, 8), np.nan), 0.1)
    with pytest.raises(ValueError):
        densification_mask(np.zeros((0, 8)), 0.1)
    with pytest.raises(ValueError):
        densification_mask(np.zeros((8, 8)), 1.5)


def test_large_images_take_the_multigrid_path():
    # Above 256x256 pixels `inpaint` solves iteratively (to RANKING_RTOL).
    f = photo_crop("astronaut", 288)
    mask = densification_mask(f, 0.05)
    assert mask.sum() == round(0.05 * 288 * 288)
    assert _mse(f, mask) < _mse(f, analytic_mask(f, 0.05))


def test_unit_weights_are_plain_densification():
    f = photo_crop("astronaut", 32)
    for density in (0.05, 0.1, 0.2):
        plain = densification_mask(f, density, seed=2)
        ones = densification_mask(f, density, seed=2, weights=np.ones((32, 32)))
        assert np.array_equal(plain, ones)


def test_weights_steer_the_points():
    f = photo_crop("coffee", 32)
    weights = np.ones((32, 32))
    weights[:, :16] = 20.0
    steered = densification_mask(f, 0.1, weights=weights)
    plain = densification_mask(f, 0.1)
    assert steered.sum() == plain.sum()
    assert steered[:, :16].sum() > plain[:, :16].sum() + 10


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        (np.ones((8, 9)), "shape"),
        (np.zeros((8, 8)), "> 0"),
        (np.full((8, 8), np.nan), "finite"),
    ],
)
def test_bad_weights_are_value_errors(weights, message):
    with pytest.raises(ValueError, match=message):
        densification_mask(
            np.random.default_rng(0).random((8, 8)), 0.2, weights=weights
        )


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (5, 1), (3, 4), (37, 53)])
@pytest.mark.parametrize("radius", [0, 1, 2, 7])
def test_ranking_scores_equal_the_maximum_filters(shape, radius):
    # The compiled ranking must rank exactly as scipy's window maxima would:
    # ties (equal errors) included, windows clipped at the border.
    rng = np.random.default_rng(radius)
    error = rng.random(shape)
    error[rng.random(shape) < 0.2] = 0.5
    known = rng.random(error.size) < 0.3
    peak = maximum_filter(error, size=2 * radius + 1, mode="nearest")
    expected = np.where(error >= peak, error, error - peak - 1.0).ravel()
    expected[known] = -np.inf
    np.testing.assert_array_equal(_ranking_scores(error, radius, known), expected)
