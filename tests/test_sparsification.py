"""Tests for probabilistic sparsification (wgimask.baselines.sparsification)."""

import numpy as np
import pytest
from skimage import data

from wgimask.baselines import inpaint, probabilistic_sparsification, random_mask


def _photo(name: str, size: int) -> np.ndarray:
    img = getattr(data, name)()
    h, w = img.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return img[top : top + size, left : left + size].astype(np.float64) / 255.0


def _mae(f, mask):
    return float(np.abs(inpaint(f, mask) - f).mean())


@pytest.mark.parametrize("density", [0.05, 0.1, 0.37])
def test_exact_point_count(density):
    f = _photo("chelsea", 24)
    mask = probabilistic_sparsification(f, density, seed=1)
    assert mask.shape == (24, 24) and mask.dtype == bool
    assert mask.sum() == round(density * 24 * 24)


def test_beats_random_masks_on_a_photo():
    f = _photo("astronaut", 40)
    mask = probabilistic_sparsification(f, 0.1, seed=0)
    ps_error = _mae(f, mask)
    random_errors = [_mae(f, random_mask(f.shape, 0.1, seed=s)) for s in range(4)]
    assert ps_error < min(random_errors)


def test_repeats_exactly_for_a_seed():
    f = _photo("coffee", 24)
    a = probabilistic_sparsification(f, 0.1, seed=5)
    b = probabilistic_sparsification(f, 0.1, seed=5)
    c = probabilistic_sparsification(f, 0.1, seed=6)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_grey_image_and_literature_fractions():
    f = _photo("camera", 20)
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
