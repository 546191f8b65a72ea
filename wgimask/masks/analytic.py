"""Analytic masks for homogeneous diffusion inpainting.

Belhachmi, Bucur, Burgeth and Weickert (2009): "How to choose interpolation
data in images", SIAM J. Appl. Math. 70(1), pp. 333-352 (reference [5] of the
paper). Their shape analysis shows that, for homogeneous diffusion, the local
density of known pixels should grow with the magnitude of the image's
Laplacian. The practical recipe, as in their paper:

1. density: ``rho = (sum_c |LoG_sigma(f_c)|) ** exponent``, the Laplacian of
   the Gaussian-smoothed image (smoothing makes it robust to noise), summed
   over the colour channels so one mask serves all of them;
2. scale ``rho`` to mean D, clipping at 1 (the clipped mass goes to the other
   pixels, so the mean stays D);
3. halftone ``rho`` to a binary mask with exactly round(D N) points: an
   ordered (Bayer) dither below 15 % density, Floyd-Steinberg error
   diffusion (Pillow's, in C) from 15 % on (``halftoning="auto"``; measured
   on training photos, docs/baselines.md). ``halftoning="electrostatic"``
   (`electrostatic_mask`, `wgimask.masks.electrostatic`) spreads the
   points better below 15 % at 10-20x the cost.

Constant-image rule: where the Laplacian magnitude is zero everywhere (a
constant image, or a linear ramp), nothing prefers any pixel, so the density
is uniform and the halftoning spreads the points evenly over the image.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from wgimask.arrays import as_image, check_density, target_count
from wgimask.masks.halftoning import halftone, ordered_dither

__all__ = [
    "analytic_density",
    "analytic_mask",
    "halftone_density",
    "HALFTONINGS",
    "ORDERED_BELOW",
    "DEFAULT_SIGMA",
    "DEFAULT_EXPONENT",
    "auto_sigma",
    "electrostatic_mask",
    "electrostatic_sigma",
    "ELECTROSTATIC_EXPONENT",
]

#: Default standard deviation (pixels) of the Gaussian before the Laplacian:
#: ``"auto"`` = ``auto_sigma(density)``, chosen on the validation photos at
#: 64 px (docs/baselines.md).
DEFAULT_SIGMA = "auto"
#: Default exponent applied to the Laplacian magnitude (docs/baselines.md).
DEFAULT_EXPONENT = 0.75
#: Halftoning methods of `analytic_mask`: ``"auto"`` is ``"ordered"`` below
#: `ORDERED_BELOW` density and ``"error_diffusion"`` from it on;
#: ``"electrostatic"`` (`wgimask.masks.electrostatic`) is better spread
#: but 10-20x slower, so it is not part of ``"auto"``.
HALFTONINGS = ("auto", "ordered", "error_diffusion", "electrostatic")
#: Density below which ``halftoning="auto"`` uses the ordered dither. On the
#: training photos (64 px) the ordered dither won at 5 % (+0.8 to +0.9 dB)
#: and 10 % (+0.1 dB), Floyd-Steinberg at 20 % (+0.6 dB); 15 % is the middle,
#: not a measured crossover.
ORDERED_BELOW = 0.15
# A Laplacian magnitude at most this (relative to the image's value range)
# counts as zero everywhere: the constant-image rule applies.
_FLAT = 1e-9


def auto_sigma(density: float) -> float:
    """The default smoothing scale: 0.1 / density, clipped to [0.7, 2] px.

    That is 2 px up to 5 % density, 1 px at 10 % and 0.7 px from about 14 %.
    Sparser masks space their points further apart, and a wider Gaussian
    spreads their density over the smooth regions between edges. Measured
    at 64 px (docs/baselines.md): sigma 2 was best at 5 % and sigma 1 at 10 %
    (validation and training photos), and at 20 % sigma 0.7 beat sigma 1 by
    0.4 to 1.2 dB on the training photos (0.5 was worse than both).
    """
    return float(min(2.0, max(0.7, 0.1 / float(density))))


def analytic_density(
    image: np.ndarray,
    *,
    sigma: float = 1.0,
    exponent: float = DEFAULT_EXPONENT,
) -> np.ndarray:
    """Unnormalised point density ``(sum_c |LoG_sigma f_c|) ** exponent``.

    Args:
        image: (H, W) or (H, W, C) image with finite values.
        sigma: Gaussian standard deviation in pixels (>= 0; 0 = the plain
            5-point Laplacian of the unsmoothed image).
        exponent: power applied to the Laplacian magnitude (> 0).

    Returns:
        (H, W) float64 array, >= 0; all zeros for an image whose Laplacian
        vanishes (a constant image).

    Raises:
        ValueError: for a bad image, a negative or non-finite sigma or a
            non-positive exponent.
    """
    f, _ = as_image(image)
    sigma = float(sigma)
    exponent = float(exponent)
    if not (np.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma!r}")
    if not (np.isfinite(exponent) and exponent > 0):
        raise ValueError(f"exponent must be a finite number > 0, got {exponent!r}")
    magnitude = np.zeros(f.shape[:2])
    for k in range(f.shape[2]):
        # Mean removed: the truncated LoG kernel does not sum to exactly 0,
        # so a constant would otherwise leave a small non-zero response.
        channel = f[:, :, k] - f[:, :, k].mean()
        if sigma > 0:
            lap = ndimage.gaussian_laplace(channel, sigma, mode="reflect")
        else:
            lap = ndimage.laplace(channel, mode="reflect")
        magnitude += np.abs(lap)
    scale = max(float(np.ptp(f)), 1.0)
    if magnitude.max() <= _FLAT * scale:
        return np.zeros_like(magnitude)
    return magnitude**exponent


def _scale_to_mean(rho: np.ndarray, density: float, ceiling: float = 1.0) -> np.ndarray:
    """Scales a density map to mean ``density`` with values clipped at ``ceiling``.

    Pixels that would exceed the ceiling are set to it and the remaining
    mass is spread over the others in proportion to their density (a few
    rounds). The ceiling is raised to ``density`` if lower (else the mean
    could not be reached).
    """
    n = rho.size
    ceiling = min(1.0, max(float(ceiling), density))
    if rho.max() <= 0:
        return np.full(rho.shape, density)
    p = np.zeros_like(rho)
    free = np.ones(rho.shape, dtype=bool)
    for _ in range(64):
        # Mass left for the free pixels.
        mass = density * n - ceiling * (n - free.sum())
        total = rho[free].sum()
        if total <= 0:  # all structure saturated: spread the rest evenly
            p[free] = mass / max(free.sum(), 1)
            break
        p[free] = rho[free] * (mass / total)
        over = free & (p > ceiling)
        if not over.any():
            break
        p[over] = ceiling
        free &= ~over
    return np.clip(p, 0.0, ceiling)


def analytic_mask(
    image: np.ndarray,
    density: float,
    *,
    seed: int = 0,
    sigma: float | str = DEFAULT_SIGMA,
    exponent: float = DEFAULT_EXPONENT,
    halftoning: str = "auto",
) -> np.ndarray:
    """Analytic mask of Belhachmi et al. (2009) with exactly round(D N) points.

    Args:
        image: (H, W) or (H, W, C) image, values usually in [0, 1]; colour
            channels share one mask (their Laplacian magnitudes are summed).
        density: fraction D in (0, 1) of known pixels.
        seed: seed of the halftoning's rounding and tie order; equal seeds
            give equal masks.
        sigma: Gaussian standard deviation (pixels) before the Laplacian, or
            ``"auto"`` for ``auto_sigma(density)``.
        exponent: power applied to the Laplacian magnitude.
        halftoning: ``"ordered"`` (Bayer dither, `ordered_dither`),
            ``"error_diffusion"`` (Floyd-Steinberg, `halftone`),
            ``"electrostatic"`` (particles, `electrostatic_halftone`) or
            ``"auto"``: ordered below `ORDERED_BELOW` density, error
            diffusion from it on.

    Returns:
        (H, W) bool mask with exactly round(D * H * W) True pixels. A
        constant image (zero Laplacian) gets evenly spread points.

    Raises:
        ValueError: for a bad image (wrong rank, empty, NaN or infinite
            values), a density outside (0, 1) or one that keeps no pixel, or
            bad sigma / exponent / halftoning.
    """
    d = check_density(density)
    if halftoning not in HALFTONINGS:
        raise ValueError(f"halftoning must be one of {HALFTONINGS}, got {halftoning!r}")
    if isinstance(sigma, str):
        if sigma != "auto":
            raise ValueError(f"sigma must be a number >= 0 or 'auto', got {sigma!r}")
        sigma = auto_sigma(d)
    rho = analytic_density(image, sigma=sigma, exponent=exponent)
    return halftone_density(rho, d, seed=seed, halftoning=halftoning)


#: Exponent of the analytic density for `electrostatic_mask` (the ordered
#: dither's is 0.75): chosen on the 76 training crops (docs/baselines.md).
ELECTROSTATIC_EXPONENT = 1.0


def electrostatic_sigma(density: float) -> float:
    """Smoothing of the analytic density for `electrostatic_mask`, in pixels.

    min(1.4, max(0.7, 0.1 / D)): 1.4 px at 5 %, 1 px at 10 %; the analytic
    masks' rule (`auto_sigma`) starts at 2 px. Chosen on the 76 training
    crops (docs/baselines.md).
    """
    return min(1.4, max(0.7, 0.1 / density))


def electrostatic_mask(
    image: np.ndarray, density: float, *, seed: int = 0
) -> np.ndarray:
    """The analytic density, halftoned electrostatically: round(D N) points.

    `wgimask.baselines.analytic_mask` with ``halftoning="electrostatic"``,
    the smoothing `electrostatic_sigma` and the exponent
    `ELECTROSTATIC_EXPONENT`. Better than the analytic mask below 15 %
    density (on the validation crops, docs/baselines.md), worse above, and
    10-20x its time.

    Args:
        image: (H, W) or (H, W, C) image in [0, 1].
        density: fraction D in (0, 1) of known pixels.
        seed: phase of the ordered dither the particles start from.

    Returns:
        (H, W) bool mask with exactly round(D * H * W) True pixels.

    Raises:
        ValueError: as `analytic_mask`.
    """
    sigma = electrostatic_sigma(check_density(density))
    return analytic_mask(
        image,
        density,
        seed=seed,
        sigma=sigma,
        exponent=ELECTROSTATIC_EXPONENT,
        halftoning="electrostatic",
    )


def halftone_density(
    rho: np.ndarray,
    density: float,
    *,
    seed: int = 0,
    halftoning: str = "auto",
) -> np.ndarray:
    """Halftones a point density to a mask of exactly round(D N) points.

    Steps 2 and 3 of `analytic_mask` for any density map: it is scaled to
    mean D with values clipped at 1 (the clipped mass goes to the other
    pixels), then dithered. `wgimask.inference` halftones the learned
    densities of mask generators trained with the ordered dither this way,
    so that a learned density equal to the analytic one gives the analytic
    mask.

    Args:
        rho: (H, W) non-negative finite density (any scale; all zeros means
            uniform).
        density: fraction D in (0, 1) of points.
        seed: seed of the halftoning (the ordered dither's phase, the error
            diffusion's rounding and tie order).
        halftoning: as for `analytic_mask`.

    Returns:
        (H, W) bool mask with exactly round(D * H * W) True pixels.

    Raises:
        ValueError: for a density outside (0, 1), a bad halftoning, or a
            density map that is not 2-D, finite and non-negative.
    """
    d = check_density(density)
    if halftoning not in HALFTONINGS:
        raise ValueError(f"halftoning must be one of {HALFTONINGS}, got {halftoning!r}")
    rho = np.asarray(rho, np.float64)
    if rho.ndim != 2 or not np.isfinite(rho).all() or (rho < 0).any():
        raise ValueError(
            f"rho must be a finite, non-negative (H, W) array, received shape "
            f"{rho.shape}"
        )
    k = target_count(d, rho.size)
    if halftoning == "auto":
        halftoning = "ordered" if d < ORDERED_BELOW else "error_diffusion"
    if halftoning == "electrostatic":
        # Imported on first use: the particle simulation is compiled with numba,
        # which takes a while to load.
        from wgimask.masks.electrostatic import electrostatic_halftone

        dither = electrostatic_halftone
    else:
        dither = ordered_dither if halftoning == "ordered" else halftone
    return dither(_scale_to_mean(rho, d), k, seed=seed)
