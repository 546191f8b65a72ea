"""Input checks and small helpers shared by the baseline modules."""

from __future__ import annotations

import numpy as np


def as_image(image: np.ndarray) -> tuple[np.ndarray, bool]:
    """Returns the image as a float64 (H, W, C) array and whether it was 2-D.

    Args:
        image: array of shape (H, W) or (H, W, C) with real values.

    Returns:
        (image3, was_2d): the image with a channel axis, in float64, and a flag
        telling whether the input had no channel axis.

    Raises:
        ValueError: for a wrong number of dimensions, an empty image, a
            non-real dtype or non-finite values.
    """
    arr = np.asarray(image)
    if arr.ndim not in (2, 3):
        raise ValueError(
            f"image must have shape (H, W) or (H, W, C), got shape {arr.shape}"
        )
    if arr.shape[0] < 1 or arr.shape[1] < 1 or (arr.ndim == 3 and arr.shape[2] < 1):
        raise ValueError(f"image must not be empty, got shape {arr.shape}")
    if not (
        np.issubdtype(arr.dtype, np.floating)
        or np.issubdtype(arr.dtype, np.integer)
        or arr.dtype == np.bool_
    ):
        raise ValueError(f"image must hold real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError("image contains NaN or infinite values")
    was_2d = arr.ndim == 2
    if was_2d:
        arr = arr[:, :, None]
    return arr, was_2d


def as_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Checks a binary mask against an image size and returns it as bool.

    Args:
        mask: (H, W) array with values in {0, 1} (bool, integer or float).
        shape: the (H, W) the mask must have.

    Returns:
        The mask as a bool array of shape (H, W); True marks a known pixel.

    Raises:
        ValueError: for a shape mismatch or values other than 0 and 1.
    """
    arr = np.asarray(mask)
    if arr.shape != tuple(shape):
        raise ValueError(
            f"mask must have shape {tuple(shape)} (the image's H, W), "
            f"got shape {arr.shape}"
        )
    if arr.dtype == np.bool_:
        return arr.copy()
    if not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise ValueError(f"mask must be boolean or numeric, got dtype {arr.dtype}")
    binary = (arr == 0) | (arr == 1)
    if not np.all(binary):
        bad = np.unique(arr[~binary])[:5]
        raise ValueError(
            f"mask must be binary (0/1), found values such as {bad.tolist()}"
        )
    return arr == 1


def as_known_mask(
    mask: np.ndarray, shape: tuple[int, int], operator: str
) -> np.ndarray:
    """`as_mask` for an inpainting operator, which needs a known pixel.

    Args:
        mask: (H, W) binary mask.
        shape: the image's (H, W).
        operator: the operator's name for the message, e.g. "EED inpainting".

    Returns:
        The (H, W) bool mask.

    Raises:
        ValueError: as `as_mask`, and for a mask without a known pixel.
    """
    known = as_mask(mask, shape)
    if not known.any():
        raise ValueError(f"mask is empty: {operator} needs at least one known pixel")
    return known


def result_dtype(image) -> type:
    """The dtype an operator returns for an input image: float32 for float32
    images, float64 otherwise."""
    return np.float32 if np.asarray(image).dtype == np.float32 else np.float64


def check_density(density: float) -> float:
    """Checks that a density lies in the open interval (0, 1).

    Args:
        density: fraction of known pixels.

    Returns:
        The density as a float.

    Raises:
        ValueError: if the density is not a finite number in (0, 1).
    """
    try:
        d = float(density)
    except (TypeError, ValueError):
        raise ValueError(
            f"density must be a number in (0, 1), got {density!r}"
        ) from None
    if not (0.0 < d < 1.0):
        raise ValueError(f"density must lie in (0, 1), got {density!r}")
    return d


def target_count(density: float, n_pixels: int) -> int:
    """Number of mask points round(density * n_pixels), at least 1.

    Args:
        density: fraction in (0, 1).
        n_pixels: number of pixels H * W.

    Returns:
        The number of mask points.

    Raises:
        ValueError: if round(density * n_pixels) is 0 (the density is too
            small for the image size).
    """
    k = int(round(density * n_pixels))
    if k < 1:
        raise ValueError(
            f"density {density} keeps round({density} * {n_pixels}) = 0 pixels; "
            "it must keep at least one"
        )
    return k


def mae(u: np.ndarray, f: np.ndarray) -> float:
    """Mean absolute error over all pixels and channels."""
    return float(np.mean(np.abs(u - f)))
