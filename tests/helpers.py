"""Small synthetic photos for tests: smooth colour fields with edges."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import numpy as np
from PIL import Image
from skimage import data

from wgimask.baselines import inpaint


def synthetic_image(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth random image in [0, 1] with one sharp edge, (H, W, 3) float32."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    channels = []
    for _ in range(3):
        a, b, c = rng.uniform(-1, 1, 3)
        field = 0.5 + 0.3 * np.sin(3 * a * x + 2 * b * y + c)
        field += 0.2 * (x * rng.uniform(-1, 1) + y * rng.uniform(-1, 1) > 0)
        channels.append(field)
    return np.clip(np.stack(channels, -1), 0, 1).astype(np.float32)


def write_images(
    folder: pathlib.Path, count: int = 6, size=(48, 64)
) -> list[pathlib.Path]:
    """Writes `count` synthetic PNG photos into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"photo_{i}.png"
        pixels = np.round(synthetic_image(*size, seed=i) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


def photo_crop(name: str, size: int) -> np.ndarray:
    """Centre crop of one of scikit-image's photos, float64 in [0, 1]."""
    img = getattr(data, name)()
    h, w = img.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return img[top : top + size, left : left + size].astype(np.float64) / 255.0


def diffusion_mae(f: np.ndarray, mask: np.ndarray) -> float:
    """MAE of homogeneous diffusion inpainting from `mask`."""
    return float(np.abs(inpaint(f, mask) - f).mean())


def run_python(script: str, *args: str, timeout: float = 300):
    """Runs `script` with ``python -c`` in a fresh process; text output captured."""
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
