"""Tests for wgimask.evaluation.metrics: PSNR, MAE (0-255) and SSIM."""

import numpy as np
import pytest

from wgimask.evaluation import metrics


def _smooth_image(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """A smooth random image in [0, 1] (a few low-frequency cosines)."""
    h, w = shape[:2]
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    channels = shape[2] if len(shape) == 3 else 1
    planes = []
    for _ in range(channels):
        a, b, c, d = rng.uniform(0.5, 3.0, size=4)
        planes.append(0.5 + 0.25 * np.cos(a * 6 * x + b) * np.cos(c * 6 * y + d))
    image = np.stack(planes, axis=-1)
    return image if len(shape) == 3 else image[..., 0]


def test_psnr_of_known_mse():
    reference = np.full((8, 8, 3), 0.5)
    # Every pixel off by 0.1 -> MSE 0.01 -> PSNR 20 dB.
    assert metrics.psnr(reference, reference + 0.1) == pytest.approx(20.0, abs=1e-9)
    # Half the pixels off by 0.2 -> MSE 0.02.
    test = reference.copy()
    test[:4] += 0.2
    assert metrics.mse(reference, test) == pytest.approx(0.02)
    assert metrics.psnr(reference, test) == pytest.approx(10 * np.log10(50.0))


def test_psnr_identical_is_infinite():
    image = np.linspace(0, 1, 64).reshape(8, 8)
    assert metrics.psnr(image, image) == float("inf")


def test_mae_is_on_the_255_scale():
    reference = np.zeros((4, 4))
    assert metrics.mae_255(reference, reference + 1.0) == pytest.approx(255.0)
    assert metrics.mae_255(reference, reference + 10 / 255) == pytest.approx(10.0)
    test = reference.copy()
    test[0, 0] = 1.0  # one pixel of 16 fully wrong
    assert metrics.mae_255(reference, test) == pytest.approx(255 / 16)


@pytest.mark.parametrize("shape", [(32, 32), (32, 32, 1), (24, 40, 3)])
def test_ssim_identical_is_one(shape):
    image = _smooth_image(np.random.default_rng(0), shape)
    assert metrics.ssim(image, image) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_agrees_with_tensorflow(channels):
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(1)
    values = []
    for noise in (0.02, 0.1, 0.3):
        reference = _smooth_image(rng, (40, 36, channels))
        test = np.clip(reference + rng.normal(0, noise, reference.shape), 0, 1)
        ours = metrics.ssim(reference, test)
        theirs = float(
            tf.image.ssim(
                tf.constant(reference, tf.float64),
                tf.constant(test, tf.float64),
                max_val=1.0,
                filter_size=11,
                filter_sigma=1.5,
                k1=0.01,
                k2=0.03,
            )
        )
        assert ours == pytest.approx(theirs, abs=1e-5)
        values.append(ours)
    # More noise, lower SSIM: the comparison covers a real range of values.
    assert values[0] > values[1] > values[2]
    assert values[2] < 0.5


def test_ssim_grey_equals_single_channel():
    rng = np.random.default_rng(2)
    reference = _smooth_image(rng, (20, 20))
    test = np.clip(reference + rng.normal(0, 0.05, reference.shape), 0, 1)
    assert metrics.ssim(reference, test) == pytest.approx(
        metrics.ssim(reference[..., None], test[..., None])
    )


def test_mean_metrics_averages_per_image_values():
    rng = np.random.default_rng(3)
    refs = [_smooth_image(rng, (16, 16, 3)) for _ in range(3)]
    tests = [
        np.clip(r + rng.normal(0, s, r.shape), 0, 1)
        for r, s in zip(refs, (0.01, 0.05, 0.1), strict=True)
    ]
    mean = metrics.mean_metrics(refs, tests)
    for key, fn in (
        ("psnr", metrics.psnr),
        ("mae", metrics.mae_255),
        ("ssim", metrics.ssim),
    ):
        expected = np.mean([fn(r, t) for r, t in zip(refs, tests, strict=True)])
        assert mean[key] == pytest.approx(expected)


@pytest.mark.parametrize(
    "a, b, match",
    [
        (np.zeros((4, 4)), np.zeros((4, 5)), "same shape"),
        (np.zeros((4, 4, 2)), np.zeros((4, 4, 2)), "C = 1 or 3"),
        (np.zeros(4), np.zeros(4), r"\(H, W\)"),
    ],
)
def test_bad_shapes_are_rejected(a, b, match):
    with pytest.raises(ValueError, match=match):
        metrics.mae_255(a, b)


def test_ssim_rejects_images_smaller_than_the_window():
    with pytest.raises(ValueError, match="at least 11x11"):
        metrics.ssim(np.zeros((8, 8)), np.zeros((8, 8)))


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("shape", [(60, 45, 3), (33, 70), (11, 11, 3)])
def test_ssim_in_strips_equals_scikit_image(shape, compiled, monkeypatch):
    from skimage.metrics import structural_similarity

    # Large images take the strips; small strips and a tiny threshold make
    # a small image take them too, across several strips. Both the compiled
    # kernel and scipy's filters (without numba) give scikit-image's value.
    monkeypatch.setattr(metrics, "STRIP_PIXELS", 0)
    monkeypatch.setattr(metrics, "STRIP_ROWS", 7)
    monkeypatch.setattr(metrics, "NUMBA", compiled and metrics.NUMBA)
    rng = np.random.default_rng(3)
    a = rng.random(shape)
    b = np.clip(a + 0.2 * rng.standard_normal(shape), 0.0, 1.0)
    expected = structural_similarity(
        a,
        b,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1.0,
        channel_axis=-1 if a.ndim == 3 else None,
    )
    assert metrics.ssim(a, b) == pytest.approx(expected, abs=1e-12)
