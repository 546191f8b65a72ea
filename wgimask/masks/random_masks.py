"""Random masks of an exact density."""

from __future__ import annotations

import numpy as np

from wgimask.arrays import check_density, target_count

__all__ = ["random_mask"]


def random_mask(shape: tuple[int, ...], density: float, *, seed: int = 0) -> np.ndarray:
    """Uniformly random mask with exactly round(D * H * W) points.

    Args:
        shape: (H, W), or an image shape (H, W, C) whose first two entries
            are used.
        density: fraction D in (0, 1) of known pixels.
        seed: seed of the random generator; equal seeds give equal masks.

    Returns:
        (H, W) bool mask.

    Raises:
        ValueError: for a bad shape, a density outside (0, 1) or one that
            keeps no pixel.
    """
    if len(shape) not in (2, 3) or any(int(s) != s or s < 1 for s in shape):
        raise ValueError(
            f"shape must be (H, W) or (H, W, C) of positive ints, got {shape!r}"
        )
    h, w = int(shape[0]), int(shape[1])
    d = check_density(density)
    k = target_count(d, h * w)
    rng = np.random.default_rng(seed)
    mask = np.zeros(h * w, dtype=bool)
    mask[rng.choice(h * w, size=k, replace=False)] = True
    return mask.reshape(h, w)
