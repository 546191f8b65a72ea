"""wgimask.masks.registry: one name -> model-free mask, for command and evaluation."""

import numpy as np
import pytest

from wgimask import baselines
from wgimask.masks.registry import MODEL_FREE, model_free_mask


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(3).random((24, 32, 3))


@pytest.mark.parametrize(
    "method, make",
    [
        ("random", lambda f, d, s: baselines.random_mask(f.shape[:2], d, seed=s)),
        ("analytic", lambda f, d, s: baselines.analytic_mask(f, d, seed=s)),
        ("electrostatic", lambda f, d, s: baselines.electrostatic_mask(f, d, seed=s)),
        ("densify", lambda f, d, s: baselines.densification_mask(f, d, seed=s)),
        (
            "ps",
            lambda f, d, s: baselines.probabilistic_sparsification(f, d, seed=s),
        ),
    ],
)
def test_each_name_gives_its_methods_mask(image, method, make):
    mask = model_free_mask(method, image, 0.1, seed=5)
    assert mask.dtype == bool and mask.shape == image.shape[:2]
    assert int(mask.sum()) == round(0.1 * 24 * 32)
    assert np.array_equal(mask, make(image, 0.1, 5))


def test_options_reach_the_method(image):
    default = model_free_mask("ps", image, 0.1, seed=1)
    other = model_free_mask("ps", image, 0.1, seed=1, candidate_fraction=0.5)
    assert int(other.sum()) == int(default.sum())
    assert not np.array_equal(default, other)


def test_unknown_method_is_one_line():
    with pytest.raises(ValueError, match="mask method must be one of") as error:
        model_free_mask("voronoi", np.zeros((4, 4)), 0.5)
    assert "\n" not in str(error.value)


def test_the_command_and_evaluation_name_only_registered_methods():
    from wgimask import cli
    from wgimask.evaluation.config import LEARNED_MASKS, MASK_METHODS, split_nlpe

    model_free = [name for name, learned in cli.MASK_METHODS.items() if not learned]
    assert set(model_free) <= set(MODEL_FREE)
    for name in MASK_METHODS:
        start = split_nlpe(name)[0].removesuffix("+nlpe")
        assert start in MODEL_FREE or start in LEARNED_MASKS, name
