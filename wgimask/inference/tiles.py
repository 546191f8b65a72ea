"""Network parts on large images: bounded batches and tent-blended tiles.

`wgimask.inference.Model` runs its parts through these: `batched` feeds a
part in equal-sized calls of at most `TILE_BATCH` images (memory stays
bounded on large photos), `blended` runs one image whole or in tiles of the
training crop size overlapping by an eighth, blended with tent weights that
fall to zero at every tile border, and leaves out the tiles a gate closes.
"""

from __future__ import annotations

import numpy as np

from wgimask.inference import arrays

#: Three 2x2 poolings: the networks take sides that are multiples of this.
MULTIPLE = 8

#: Tiles (or images) per network call: bounds memory on large images.
TILE_BATCH = 64


def batched(parts, name: str, count: int, take, progress=None) -> np.ndarray:
    """A part on `count` images, in calls of at most TILE_BATCH images.

    Args:
        parts: ``parts(name, inputs)`` runs a part (`Model.parts`).
        name: The part.
        count: Number of images (or tiles).
        take: ``take(first, last)`` -> the part's inputs for images
            ``first:last`` (built per call, so memory stays bounded on
            large photos).
        progress: optional ``progress(done, count)`` after each call.

    The calls are of equal size (the last one padded with copies of its
    last image): LiteRT plans its memory again for every new input shape.
    """
    calls = max(-(-count // TILE_BATCH), 1)
    size = max(-(-count // calls), 1)
    outs = []
    for first in range(0, count, size):
        batch = take(first, min(first + size, count))
        short = size - len(batch[0])
        if short and calls > 1:
            batch = [np.concatenate([b, np.repeat(b[-1:], short, 0)]) for b in batch]
        outs.append(parts(name, batch)[: size - short])
        if progress is not None:
            progress(min(first + size, count), count)
    return np.concatenate(outs)


def blended(
    parts,
    name: str,
    inputs: list[np.ndarray],
    channels: int,
    tile: int | None,
    progress=None,
    active: np.ndarray | None = None,
) -> np.ndarray:
    """One image through a part, whole or in tent-blended tiles.

    Args:
        parts: ``parts(name, inputs)`` runs a part (`Model.parts`).
        name: The part (`wgimask.serve.parts`).
        inputs: Its (H, W, .) float32 inputs, in call order.
        channels: The output's channel count.
        tile: The tile side, or None for one whole-image pass.
        progress: optional ``progress(done, total)`` per batch of tiles.
        active: optional (H, W) bool: tiles with no active pixel do not
            run and contribute 0 (the caller zeroes those pixels anyway).

    Returns:
        (H, W, channels) float32.
    """
    height, width = inputs[0].shape[:2]
    if tile is None:
        padded = [arrays.pad_to_multiple(v[None], MULTIPLE)[0] for v in inputs]
        return parts(name, padded)[0, :height, :width]
    pad = ((0, max(tile - height, 0)), (0, max(tile - width, 0)), (0, 0))
    mode = "reflect" if pad[0][1] < height and pad[1][1] < width else "edge"
    inputs = [np.pad(v, pad, mode=mode) for v in inputs]
    full_h, full_w = inputs[0].shape[:2]
    corners = [
        (y, x)
        for y in arrays.tile_starts(full_h, tile)
        for x in arrays.tile_starts(full_w, tile)
    ]
    if active is not None:
        active = np.pad(active, pad[:2], mode="edge")
        corners = [
            (y, x) for y, x in corners if active[y : y + tile, x : x + tile].any()
        ]
        if not corners:
            return np.zeros((height, width, channels), np.float32)

    def take(first: int, last: int) -> list[np.ndarray]:
        return [
            np.stack([v[y : y + tile, x : x + tile] for y, x in corners[first:last]])
            for v in inputs
        ]

    outs = batched(parts, name, len(corners), take, progress)
    ramp = np.minimum(np.arange(tile) + 0.5, tile - np.arange(tile) - 0.5)
    window = np.outer(ramp, ramp)[..., None].astype(np.float32)
    total = np.zeros((full_h, full_w, channels), np.float32)
    weight = np.zeros((full_h, full_w, 1), np.float32)
    for (y, x), values in zip(corners, outs, strict=True):
        total[y : y + tile, x : x + tile] += window * values
        weight[y : y + tile, x : x + tile] += window
    # Pixels of skipped tiles only (weight 0) get 0.
    return np.divide(total, weight, out=np.zeros_like(total), where=weight > 0)[
        :height, :width
    ]
