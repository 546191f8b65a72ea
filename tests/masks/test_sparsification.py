"""Tests for probabilistic sparsification (wgimask.masks.sparsification)."""

import numpy as np
import pytest
from helpers import diffusion_mae, photo_crop

from wgimask.baselines import probabilistic_sparsification, random_mask


@pytest.mark.parametrize("density", [0.05, 0.1, 0.37])
def test_exact_point_count(density):
    f = photo_crop("chelsea", 24)
    mask = probabilistic_sparsification(f, density, seed=1)
    assert mask.shape == (24, 24) and mask.dtype == bool
    assert mask.sum() == round(density * 24 * 24)


def test_beats_random_masks_on_aphoto_crop():
    f = photo_crop("astronaut", 40)
    mask = probabilistic_sparsification(f, 0.1, seed=0)
    ps_error = diffusion_mae(f, mask)
    random_errors = [
        diffusion_mae(f, random_mask(f.shape, 0.1, seed=s)) for s in range(4)
    ]
    assert ps_error < min(random_errors)


def test_repeats_exactly_for_a_seed():
    f = photo_crop("coffee", 24)
    a = probabilistic_sparsification(f, 0.1, seed=5)
    b = probabilistic_sparsification(f, 0.1, seed=5)
    c = probabilistic_sparsification(f, 0.1, seed=6)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_grey_image_and_literature_fractions():
    f = photo_crop("camera", 20)
    mask = probabilistic_sparsification(
        f, 0.1, candidate_fraction=0.02, removal_fraction=0.02, seed=0
    )
    assert mask.sum() == 40


@pytest.mark.parametrize("density", [0.0, 1.0, -0.1, 1.5, float("nan"), "x"])
def test_bad_density_is_rejected(density):
    with pytest.raises(ValueError, match="density"):
        probabilistic_sparsification(np.zeros((8, 8)), density)


def test_bad_fractions_and_tiny_density_are_rejected():
    f = np.zeros((8, 8))
    with pytest.raises(ValueError, match="candidate_fraction"):
        probabilistic_sparsification(f, 0.5, candidate_fraction=0.0)
    with pytest.raises(ValueError, match="removal_fraction"):
        probabilistic_sparsification(f, 0.5, removal_fraction=1.5)
    with pytest.raises(ValueError, match="at least one"):
        probabilistic_sparsification(f, 0.001)


def test_random_mask_has_the_exact_count():
    mask = random_mask((13, 17, 3), 0.3, seed=2)
    assert mask.shape == (13, 17) and mask.dtype == bool
    assert mask.sum() == round(0.3 * 13 * 17)
    assert np.array_equal(mask, random_mask((13, 17), 0.3, seed=2))
    with pytest.raises(ValueError, match="density"):
        random_mask((4, 4), 1.0)
    with pytest.raises(ValueError, match="shape"):
        random_mask((4,), 0.5)
