"""Tests for the analytic density in TensorFlow (wgimask.nn.analytic_prior)."""

import keras
import numpy as np
import pytest
from helpers import photo_crop
from scipy import ndimage

from wgimask.nn.analytic_prior import AnalyticDensity, analytic_importance, auto_sigma


def _scipy_density(image, sigma, exponent):
    """The definition of the numpy analytic masks, written out with scipy."""
    magnitude = np.zeros(image.shape[:2])
    for k in range(image.shape[2]):
        channel = image[:, :, k] - image[:, :, k].mean()
        if sigma > 0:
            lap = ndimage.gaussian_laplace(channel, sigma, mode="reflect")
        else:
            lap = ndimage.laplace(channel, mode="reflect")
        magnitude += np.abs(lap)
    return magnitude**exponent


@pytest.mark.parametrize("sigma, exponent", [(0.0, 1.0), (1.0, 0.75), (2.0, 1.0)])
def test_matches_scipy_laplacian_of_gaussian(sigma, exponent):
    images = np.stack([photo_crop(name, 32) for name in ("astronaut", "coffee")])
    got = analytic_importance(images, sigma, exponent).numpy()[..., 0]
    expected = np.stack([_scipy_density(f, sigma, exponent) for f in images])
    assert got.shape == (2, 32, 32)
    assert np.abs(got - expected).max() < 1e-5 * max(expected.max(), 1.0)


def test_flat_images_give_zero_and_layer_round_trips():
    images = np.full((2, 16, 16, 3), 0.3, np.float32)
    images[1, :, :, 0] = np.linspace(0, 1, 16)[None, :] ** 2
    density = analytic_importance(images, 1.0, 1.0).numpy()
    assert np.all(density[0] == 0) and density[1].max() > 0
    layer = AnalyticDensity(2.0, 0.5, name="rho")
    inputs = keras.Input((16, 16, 3))
    model = keras.Model(inputs, layer(inputs))
    clone = AnalyticDensity.from_config(layer.get_config())
    assert (clone.sigma, clone.exponent) == (2.0, 0.5)
    np.testing.assert_allclose(model(images), clone(images), atol=0)
    # The numpy analytic masks' rule, so the prior starts at their mask.
    from wgimask.masks import analytic

    assert auto_sigma is analytic.auto_sigma
    assert auto_sigma(0.05) == 2.0 and auto_sigma(0.1) == 1.0
    with pytest.raises(ValueError, match="sigma must be"):
        AnalyticDensity(-1.0)
    with pytest.raises(ValueError, match="exponent must be"):
        analytic_importance(images, 1.0, 0.0)
