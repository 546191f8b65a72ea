"""Image quality metrics used in the paper's comparisons: PSNR, MAE, SSIM.

All functions take numpy images in [0, 1] of shape (H, W) or (H, W, C) and
return a Python float. The reference and the test image must have the same
shape.

- PSNR in dB with peak value 1 (the [0, 1] range), infinite for identical
  images.
- MAE on the 0-255 scale, as the paper reports it (Table 3).
- SSIM (Wang et al. 2004) with the standard Gaussian window: 11 x 11,
  sigma 1.5, K1 = 0.01, K2 = 0.03, population (not sample) covariances,
  averaged over the valid window positions and over channels. Computed with
  scikit-image's ``structural_similarity``; the tests check it against
  ``tf.image.ssim`` with the same window.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from skimage.metrics import structural_similarity

from wgimask.diffusion.jit import NUMBA, jit_sum

# The Gaussian SSIM window of Wang et al.: sigma 1.5, truncated at 3.5 sigma,
# which scikit-image turns into an 11 x 11 window.
SSIM_SIGMA = 1.5
SSIM_WINDOW = 11
#: Its radius: the rows and columns of the border that the mean leaves out.
SSIM_RADIUS = (SSIM_WINDOW - 1) // 2
#: Images above this many pixels get their SSIM in strips of this many rows
#: (`_ssim_in_strips`: bounded memory, the same value).
STRIP_PIXELS = 1 << 20
STRIP_ROWS = 256
SSIM_IMPLEMENTATION = (
    "scikit-image structural_similarity (Gaussian window 11x11, sigma 1.5, "
    "K1=0.01, K2=0.03, population covariance, data range 1)"
)


def _pair(reference: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Checks shapes and returns both images as float64 arrays."""
    reference = np.asarray(reference, dtype=np.float64)
    test = np.asarray(test, dtype=np.float64)
    if reference.shape != test.shape:
        raise ValueError(
            f"images must have the same shape, got {reference.shape} and {test.shape}"
        )
    if reference.ndim not in (2, 3) or (
        reference.ndim == 3 and reference.shape[-1] not in (1, 3)
    ):
        raise ValueError(
            f"images must have shape (H, W) or (H, W, C) with C = 1 or 3, "
            f"got {reference.shape}"
        )
    if reference.size == 0:
        raise ValueError(f"images must not be empty, got shape {reference.shape}")
    return reference, test


def mse(reference: np.ndarray, test: np.ndarray) -> float:
    """Mean squared error on the [0, 1] scale.

    Args:
        reference: Original image in [0, 1], shape (H, W) or (H, W, C).
        test: Reconstructed image, same shape.

    Returns:
        The mean of the squared differences over all pixels and channels.

    Raises:
        ValueError: If the shapes differ or are not image shapes.
    """
    reference, test = _pair(reference, test)
    return float(np.mean((reference - test) ** 2))


def psnr(reference: np.ndarray, test: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB with peak value 1.

    Args:
        reference: Original image in [0, 1], shape (H, W) or (H, W, C).
        test: Reconstructed image, same shape.

    Returns:
        ``10 * log10(1 / MSE)``; ``inf`` when the images are identical.

    Raises:
        ValueError: If the shapes differ or are not image shapes.
    """
    error = mse(reference, test)
    if error == 0.0:
        return float("inf")
    return float(10.0 * np.log10(1.0 / error))


def mae_255(reference: np.ndarray, test: np.ndarray) -> float:
    """Mean absolute error on the 0-255 scale (the paper's MAE).

    Args:
        reference: Original image in [0, 1], shape (H, W) or (H, W, C).
        test: Reconstructed image, same shape.

    Returns:
        ``255 * mean(|reference - test|)`` over all pixels and channels.

    Raises:
        ValueError: If the shapes differ or are not image shapes.
    """
    reference, test = _pair(reference, test)
    return float(255.0 * np.mean(np.abs(reference - test)))


def ssim(reference: np.ndarray, test: np.ndarray) -> float:
    """Structural similarity with the standard 11 x 11 Gaussian window.

    Uses scikit-image (``gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1``); for colour images the SSIM
    of each channel is averaged, as ``tf.image.ssim`` does.

    Args:
        reference: Original image in [0, 1], shape (H, W) or (H, W, C); both
            sides must be at least 11 pixels.
        test: Reconstructed image, same shape.

    Returns:
        The mean SSIM, 1.0 for identical images.

    Raises:
        ValueError: If the shapes differ, are not image shapes, or are smaller
            than the window.
    """
    reference, test = _pair(reference, test)
    if min(reference.shape[:2]) < SSIM_WINDOW:
        raise ValueError(
            f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, "
            f"got {reference.shape[:2]}"
        )
    if reference.ndim == 3 and reference.shape[-1] == 1:
        reference, test = reference[..., 0], test[..., 0]
    if reference.shape[0] * reference.shape[1] > STRIP_PIXELS:
        return _ssim_in_strips(reference, test)
    return float(
        structural_similarity(
            reference,
            test,
            gaussian_weights=True,
            sigma=SSIM_SIGMA,
            use_sample_covariance=False,
            data_range=1.0,
            channel_axis=-1 if reference.ndim == 3 else None,
        )
    )


def _gaussian_weights() -> np.ndarray:
    """scipy's `gaussian_filter` taps for sigma 1.5, truncated at 3.5 sigma."""
    offsets = np.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=np.float64)
    weights = np.exp(-0.5 * (offsets / SSIM_SIGMA) ** 2)
    return weights / weights.sum()


@jit_sum
def _ssim_rows_sum(x, y, weights, first, last):  # pragma: no cover - compiled
    """Sum of one channel's SSIM map over the output rows [first, last) and
    the valid columns: the five Gaussian means along the rows, then down the
    columns, in one pass without full-size temporaries."""
    taps = weights.shape[0]
    radius = (taps - 1) // 2
    cols = x.shape[1] - 2 * radius
    rows = last - first + 2 * radius
    h = np.zeros((5, rows, cols))
    for i in range(rows):
        r = first - radius + i
        for k in range(taps):
            w = weights[k]
            for j in range(cols):
                a = x[r, j + k]
                b = y[r, j + k]
                h[0, i, j] += w * a
                h[1, i, j] += w * b
                h[2, i, j] += w * (a * a)
                h[3, i, j] += w * (b * b)
                h[4, i, j] += w * (a * b)
    c1, c2 = 0.01**2, 0.03**2
    acc = np.empty((5, cols))
    total = 0.0
    for i in range(last - first):
        acc[:] = 0.0
        for k in range(taps):
            w = weights[k]
            for q in range(5):
                for j in range(cols):
                    acc[q, j] += w * h[q, i + k, j]
        for j in range(cols):
            ux, uy = acc[0, j], acc[1, j]
            vx = acc[2, j] - ux * ux
            vy = acc[3, j] - uy * uy
            vxy = acc[4, j] - ux * uy
            total += ((2 * ux * uy + c1) * (2 * vxy + c2)) / (
                (ux * ux + uy * uy + c1) * (vx + vy + c2)
            )
    return total


def _ssim_in_strips(reference: np.ndarray, test: np.ndarray) -> float:
    """`ssim` of a large image, `STRIP_ROWS` output rows at a time.

    With numba, each strip and channel is one compiled pass
    (`_ssim_rows_sum`), the strips side by side on the usable cores;
    without it, scipy's `gaussian_filter` filters each strip (below).

    scikit-image's SSIM map filters whole float64 images (about 40 bytes per
    pixel and channel: 1.5 GB for a 12-megapixel colour photo). The mean
    covers the rows and columns at least the window's radius from the
    border, whose filtered values need no boundary rule; each strip is
    filtered with `SSIM_RADIUS` rows of context on either side, so its
    valid rows are exactly those of the whole image's map (the separable
    filter does the same sums per pixel) and only the final mean is summed
    in another order.
    """
    from scipy.ndimage import gaussian_filter

    radius = SSIM_RADIUS
    c1, c2 = (0.01 * 1.0) ** 2, (0.03 * 1.0) ** 2
    if reference.ndim == 2:
        reference, test = reference[..., None], test[..., None]
    height, width, channels = reference.shape
    count = (height - 2 * radius) * (width - 2 * radius)
    if NUMBA:
        from concurrent.futures import ThreadPoolExecutor

        from wgimask.devices import usable_cpu_count

        weights = _gaussian_weights()
        tasks = [
            (k, first, min(first + STRIP_ROWS, height - radius))
            for k in range(channels)
            for first in range(radius, height - radius, STRIP_ROWS)
        ]

        def strip(task):
            # One channel's rows of the strip and its context, contiguous
            # (a few MB, not a copy of the image).
            k, first, last = task
            rows = slice(first - radius, last + radius)
            x = np.ascontiguousarray(reference[rows, :, k])
            y = np.ascontiguousarray(test[rows, :, k])
            return k, _ssim_rows_sum(x, y, weights, radius, radius + last - first)

        totals = np.zeros(channels)
        # The kernel releases the interpreter: the strips share the cores.
        with ThreadPoolExecutor(max(1, usable_cpu_count())) as pool:
            for k, value in pool.map(strip, tasks):
                totals[k] += value
        return float(np.mean(totals / count))
    totals = np.zeros(channels)
    for first in range(radius, height - radius, STRIP_ROWS):
        last = min(first + STRIP_ROWS, height - radius)
        rows = slice(first - radius, last + radius)
        for k in range(channels):
            x = reference[rows, :, k]
            y = test[rows, :, k]

            def blur(a):
                return gaussian_filter(a, SSIM_SIGMA, mode="reflect", truncate=3.5)

            ux, uy = blur(x), blur(y)
            vx = blur(x * x) - ux * ux
            vy = blur(y * y) - uy * uy
            vxy = blur(x * y) - ux * uy
            value = ((2 * ux * uy + c1) * (2 * vxy + c2)) / (
                (ux * ux + uy * uy + c1) * (vx + vy + c2)
            )
            totals[k] += value[radius:-radius, radius : width - radius].sum()
    return float(np.mean(totals / count))


def all_metrics(reference: np.ndarray, test: np.ndarray) -> dict[str, float]:
    """PSNR, MAE (0-255) and SSIM of one image pair.

    Args:
        reference: Original image in [0, 1], shape (H, W) or (H, W, C).
        test: Reconstructed image, same shape.

    Returns:
        A dict with the keys ``psnr``, ``mae`` and ``ssim``.
    """
    return {
        "psnr": psnr(reference, test),
        "mae": mae_255(reference, test),
        "ssim": ssim(reference, test),
    }


def mean_metrics(
    references: Sequence[np.ndarray], tests: Sequence[np.ndarray]
) -> dict[str, float]:
    """Per-image PSNR, MAE and SSIM averaged over a set of images.

    Each metric is computed per image and then averaged, the way the paper's
    tables average over a test set (so PSNR is a mean of dB values, not the
    PSNR of the mean MSE).

    Args:
        references: Original images.
        tests: Reconstructions, one per original, same shapes.

    Returns:
        A dict with the keys ``psnr``, ``mae`` and ``ssim``.

    Raises:
        ValueError: If the sequences are empty or of different lengths.
    """
    if len(references) != len(tests):
        raise ValueError(
            f"need one reconstruction per image, got {len(references)} images "
            f"and {len(tests)} reconstructions"
        )
    if not references:
        raise ValueError("need at least one image, got none")
    rows = [all_metrics(r, t) for r, t in zip(references, tests, strict=True)]
    return {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}
