"""Coarse-to-fine densification of large photos: time against quality.

    python -m benchmarks.studies.coarse_densification PHOTO ... \
        [--densities=0.05,0.1] [--coarse_pixels=1000000,250000] \
        [--fine_steps=0,1,2] [--crop=2048x1536]

For every photo (a centre crop of ``--crop`` at its native resolution, the
content of a camera photo) and density it prints the seconds of the plain
densification mask and the PSNR of homogeneous diffusion from it (compiled
multigrid to 1e-6), then the same for every coarse-to-fine setting: the
densification of the block-averaged photo (at most COARSE_PIXELS pixels),
halftoned to the full size as the start of FINE_STEPS full-size steps
(`wgimask.masks.densification.grow_mask`), with the PSNR difference to the
plain mask. Choose the settings on training photos. The CPU is named in the
output; run it on an otherwise idle machine for timings.

Result (docs/performance.md): 3-5 dB worse than the plain mask at native
resolution, so the package does not densify coarse to fine.
"""

from __future__ import annotations

import math
import pathlib
import time

import numpy as np
from absl import app, flags
from scipy.ndimage import gaussian_filter

from wgimask import baselines, image_files
from wgimask.arrays import target_count
from wgimask.devices import cpu_description
from wgimask.evaluation import metrics
from wgimask.masks import densification
from wgimask.masks.analytic import halftone_density

flags.DEFINE_list("densities", ["0.05", "0.1"], "Mask densities.")
flags.DEFINE_list("coarse_pixels", ["1000000", "250000"], "Coarse sizes.")
flags.DEFINE_list("fine_steps", ["0", "1", "2"], "Full-size steps after it.")
flags.DEFINE_string("crop", "2048x1536", "WIDTHxHEIGHT centre crop; '' for all.")
FLAGS = flags.FLAGS


def _crop(image: np.ndarray) -> np.ndarray:
    if not FLAGS.crop:
        return image
    width, height = (int(v) for v in FLAGS.crop.split("x"))
    h, w = image.shape[:2]
    y, x = max(0, (h - height) // 2), max(0, (w - width) // 2)
    return image[y : y + height, x : x + width]


def coarse_factor(n_pixels: int, pixels: int) -> int:
    """The smallest block factor s with n_pixels / s**2 <= pixels."""
    return max(1, math.ceil(math.sqrt(n_pixels / pixels) - 1e-9))


def _block_mean(f: np.ndarray, s: int) -> np.ndarray:
    """Means of s x s blocks, the image's last rows and columns repeated."""
    h, w, c = f.shape
    hc, wc = -(-h // s), -(-w // s)
    padded = np.pad(f, ((0, hc * s - h), (0, wc * s - w), (0, 0)), mode="edge")
    return padded.reshape(hc, s, wc, s, c).mean(axis=(1, 3))


def coarse_to_fine(f: np.ndarray, d: float, pixels: int, steps: int) -> np.ndarray:
    """The coarse-to-fine mask: a halftoned coarse start, then ``steps`` steps.

    The s x s block means are densified at the same density D; the coarse
    mask, smoothed over half a point spacing and repeated to the full size,
    is the point density that is halftoned to target / 1.15**steps points.
    """
    h, w, _ = f.shape
    factor = coarse_factor(h * w, pixels)
    coarse = densification.densification_mask(_block_mean(f, factor), d)
    rho = gaussian_filter(coarse.astype(np.float64), 0.5 / math.sqrt(d))
    rho = np.repeat(np.repeat(rho, factor, axis=0), factor, axis=1)[:h, :w]
    target = target_count(d, h * w)
    growth = densification.DEFAULT_GROWTH
    start = max(1, int(round(target / (1 + growth) ** steps)))
    known = halftone_density(rho + 1e-12, start / (h * w)).ravel().copy()
    return densification.grow_mask(
        f, known, target, growth=growth, radius=densification.densification_radius(d)
    )


def _psnr(image, mask) -> float:
    u = np.clip(baselines.inpaint(image, mask), 0.0, 1.0)
    return metrics.psnr(image, u)


def main(argv: list[str]) -> None:
    photos = [pathlib.Path(p) for p in argv[1:]]
    if not photos:
        raise app.UsageError("give one or more photos")
    print(f"CPU: {cpu_description()}")
    for path in photos:
        image = _crop(image_files.load_image(path, 3))
        height, width = image.shape[:2]
        for density in (float(d) for d in FLAGS.densities):
            t = time.perf_counter()
            mask = densification.densification_mask(image, density)
            seconds = time.perf_counter() - t
            plain = _psnr(image, mask)
            print(
                f"{path.name} {width}x{height} D={density:g} plain: "
                f"{seconds:.1f} s, PSNR {plain:.3f} dB",
                flush=True,
            )
            for pixels in (int(p) for p in FLAGS.coarse_pixels):
                for steps in (int(s) for s in FLAGS.fine_steps):
                    t = time.perf_counter()
                    mask = coarse_to_fine(image, density, pixels, steps)
                    seconds = time.perf_counter() - t
                    psnr = _psnr(image, mask)
                    factor = coarse_factor(height * width, pixels)
                    print(
                        f"{path.name} {width}x{height} D={density:g} coarse "
                        f"1/{factor} + {steps} steps: {seconds:.1f} s, PSNR "
                        f"{psnr:.3f} dB ({psnr - plain:+.3f})",
                        flush=True,
                    )


if __name__ == "__main__":
    app.run(main)
