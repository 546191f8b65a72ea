"""Central crops of scikit-image's colour photos, shared by the benchmarks."""

from __future__ import annotations

import numpy as np
from skimage import data


def crop(name: str, size: int) -> np.ndarray:
    """Central size x size crop of a scikit-image colour photo, in [0, 1].

    Args:
        name: a photo function of ``skimage.data`` (astronaut, chelsea,
            coffee, rocket, motorcycle_left).
        size: side of the square crop in pixels.

    Returns:
        (size, size, 3) float64 array.
    """
    img = getattr(data, name)()
    h, w = img.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return img[top : top + size, left : left + size, :3].astype(np.float64) / 255.0
