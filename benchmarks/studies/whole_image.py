"""Whole-image pass and tilings of the learned mask and inpainting, on photos.

    python -m benchmarks.studies.whole_image --density=0.1 PHOTO.png ...

For each photo, the learned mask (exact density) and inpainting of the shipped
model computed three ways: ``whole``, one fully convolutional pass over the
whole image; ``tiles-old``, the earlier command's half-overlapping tiles of
the training crop size blended with tent weights and ranked by confidence
alone; ``tiles``, what `wgimask.inference` does (non-overlapping tiles ranked
by tile phase for the mask, quarter-overlapping blended tiles for the
inpainting). It
prints the PSNR of the learned inpainting and of homogeneous diffusion from
the same mask, the seconds of each, and the tile-periodic part of the mask's
column and row densities (`tile_periodicity`: 1 = no structure at the tile
period, larger = seams).
"""

from __future__ import annotations

import dataclasses
import sys
import time

import numpy as np
from absl import app, flags

from wgimask import baselines, inference
from wgimask.evaluation import metrics
from wgimask.train import data

flags.DEFINE_float("density", 0.1, "Mask density.")
flags.DEFINE_integer("tile", 64, "Tile side of the tiled variant.")
FLAGS = flags.FLAGS


def _starts(length: int, tile: int) -> list[int]:
    step = tile // 2
    return [*range(0, max(length - tile, 0), step), max(length - tile, 0)]


def tiled(function, tile: int, *arrays: np.ndarray) -> np.ndarray:
    """The earlier tiling: half-overlapping tiles blended with tent weights."""
    height, width = arrays[0].shape[:2]
    ramp = np.minimum(np.arange(tile) + 0.5, tile - np.arange(tile) - 0.5)
    window = np.outer(ramp, ramp)[..., None]
    corners = [(y, x) for y in _starts(height, tile) for x in _starts(width, tile)]
    batch = [
        np.stack([a[y : y + tile, x : x + tile] for y, x in corners]) for a in arrays
    ]
    result = function(*batch)
    result = result.reshape(*result.shape[:3], -1)
    total = np.zeros((height, width, result.shape[-1]))
    weight = np.zeros((height, width, 1))
    for (y, x), values in zip(corners, result, strict=True):
        total[y : y + tile, x : x + tile] += window * values
        weight[y : y + tile, x : x + tile] += window
    return (total / weight).astype(np.float32)


def tile_periodicity(mask: np.ndarray, tile: int) -> float:
    """How much the mask's column/row densities repeat with the tile period.

    The density profile along each axis is folded modulo half the tile (where
    half the tiles have a border); the spread of the folded means is compared
    with the spread expected from the profile's own noise. About 1 means no
    structure at that period; seams give values far above 1.
    """
    period = tile // 2
    ratios = []
    for axis in (0, 1):
        profile = mask.mean(axis=axis).astype(np.float64)
        usable = len(profile) // period * period
        folded = profile[:usable].reshape(-1, period)
        spread = folded.mean(axis=0).std()
        noise = profile.std() / np.sqrt(folded.shape[0])
        ratios.append(spread / max(noise, 1e-12))
    return float(max(ratios))


def main(argv: list[str]) -> None:
    paths = argv[1:]
    if not paths:
        sys.exit("give photo files")
    density = FLAGS.density
    model = inference.load(inference.choose_model(None, density))
    tile = FLAGS.tile
    print(f"model {model.path.name}, density {density:g}, tile {tile}")
    print("photo | variant | learned PSNR | diffusion PSNR | periodicity | seconds")
    for path in paths:
        image = data.load_image(path, model.channels)
        count = inference.point_count(density, image.shape)
        whole = dataclasses.replace(model, config={**model.config, "image_size": None})
        for variant in ("whole", "tiles-old", "tiles"):
            start = time.perf_counter()
            if variant == "whole":
                mask, learned = whole.optimise_mask(image, density)
            elif variant == "tiles":
                mask, learned = model.optimise_mask(image, density)
            else:
                conf = tiled(whole.confidence, tile, image)[..., 0]
                mask = inference.top_confidence_mask(conf, count)
                learned = tiled(
                    whole.inpaint,
                    tile,
                    image,
                    mask[..., None].astype(np.float32),
                )
                learned = np.where(mask[..., None], image, learned)
            seconds = time.perf_counter() - start
            smooth = np.clip(baselines.inpaint(image, mask), 0, 1)
            print(
                f"{path.rsplit('/', 1)[-1]} | {variant} | "
                f"{metrics.psnr(image, learned):.2f} | "
                f"{metrics.psnr(image, smooth):.2f} | "
                f"{tile_periodicity(mask, tile):.1f} | {seconds:.2f}"
            )


if __name__ == "__main__":
    app.run(main)
