"""Array helpers of `wgimask.inference`: input checks, padding, tiles, seeds.

Kept apart from the model logic so that `wgimask.inference` reads as the one
inference path; none of these depends on a model.
"""

from __future__ import annotations

import numpy as np

from wgimask.nn.stateless_noise import (
    GENERATOR_SEED,
    MASK_SEED,
    SEED_STDDEV,
    stateless_normal,
)


def seed_noise(shape: tuple[int, ...], network: str) -> np.ndarray:
    """The seed input r of the ``mask`` or ``generator`` network, serving seeds.

    One draw of the shape of a single image, repeated for every image of a
    batch: an image's result never depends on its batch (the exported
    SavedModels draw for the whole batch, so theirs does), and equals the
    SavedModels' for a batch of one (`stateless_normal` is TensorFlow's
    stateless draw in numpy; a prefilled generator's diffusion inpainting
    comes from `wgimask.baselines` here, from its own graph there, equal to
    the solvers' tolerance). Tiles are cut from the whole image's draw, so
    each tile gets its own noise, as each training crop did (the same noise
    in every tile gave masks 6 dB worse for the learned inpainting on a
    768x512 photo at 5 %).
    """
    seed = MASK_SEED if network == "mask" else GENERATOR_SEED
    one = stateless_normal((1, *shape[1:]), seed, stddev=SEED_STDDEV)
    return np.broadcast_to(one, shape)


def tile_starts(length: int, tile: int) -> list[int]:
    """Tile origins overlapping by an eighth of a tile, the last flush.

    An eighth costs 1.31x the pixels of the image against 1.78x for a quarter;
    on the six 512 px validation photos at 10 % the shipped model's PSNR was
    the same within 0.02 dB, 0.05-0.07 dB better on one photo
    (benchmarks/studies/prior_models.py, docs/performance.md).
    """
    step = tile - tile // 8
    return [*range(0, max(length - tile, 0), step), max(length - tile, 0)]


def pad_to_multiple(
    images: np.ndarray, multiple: int
) -> tuple[np.ndarray, tuple[slice, ...]]:
    """Pads (N, H, W, C) by reflection to sides that are multiples of `multiple`."""
    height, width = images.shape[1:3]
    pad_h, pad_w = -height % multiple, -width % multiple
    crop = (slice(None), slice(0, height), slice(0, width))
    if not pad_h and not pad_w:
        return images, crop
    # Reflection needs a side longer than the padding; tiny images repeat edges.
    mode = "reflect" if pad_h < height and pad_w < width else "edge"
    padded = np.pad(images, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode=mode)
    return padded, crop


def as_image(image: np.ndarray, channels: int) -> np.ndarray:
    """(H, W) or (H, W, C) in [0, 1] as float32 (H, W, channels)."""
    image = np.asarray(image)
    if np.issubdtype(image.dtype, np.integer):
        raise ValueError(
            f"expected a float image in [0, 1], received {image.dtype} values "
            f"(divide 8-bit images by 255)"
        )
    image = image.astype(np.float32)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or min(image.shape[:2]) < 2:
        raise ValueError(
            f"expected an (H, W) or (H, W, C) image of at least 2x2 pixels, "
            f"received shape {image.shape}"
        )
    finite = np.isfinite(image)
    if not finite.all():
        bad = image.size - int(finite.sum())
        raise ValueError(
            f"expected finite values in [0, 1], received {bad} NaN or infinite value(s)"
        )
    if image.min() < 0.0 or image.max() > 1.0:
        raise ValueError(
            f"expected finite values in [0, 1], received values in "
            f"[{image.min():g}, {image.max():g}]"
        )
    if image.shape[-1] == channels:
        return image
    if image.shape[-1] == 1 and channels == 3:
        return np.repeat(image, 3, axis=-1)
    if image.shape[-1] == 3 and channels == 1:
        weights = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601 luma
        return (image @ weights)[..., None]
    raise ValueError(f"expected 1 or {channels} channels, received shape {image.shape}")


#: The residual gate's ramp (`residual_gate`): a prefilled generator's
#: correction is off where the diffusion inpainting's mean gradient magnitude
#: over a tile-sized window is below the first value and fully on above the
#: second (intensities in [0, 1] per pixel). Chosen on the training photos
#: (docs/notes/residual-gate.md): the correction lost 0.4-0.8 dB to diffusion
#: on the smoothest tenth of their 64 px tiles and gained on the rest.
GATE_RAMP = (0.004, 0.006)


def residual_gate(diffused: np.ndarray, window: int) -> np.ndarray:
    """Where a prefilled generator's correction of diffusion may act.

    Diffusion is close to the image where the image is smooth at the scale
    of the mask points (flat regions, photos at camera resolution); there
    the learned correction only adds error. The gate measures smoothness by
    the mean gradient magnitude of the diffusion inpainting (its channel
    mean) over a ``window`` x ``window`` neighbourhood and ramps from 0 to 1
    across `GATE_RAMP`.

    Args:
        diffused: (N, H, W, C) diffusion inpaintings in [0, 1].
        window: Side of the averaging window (the model's tile).

    Returns:
        (N, H, W, 1) float32 gate in [0, 1].
    """
    from scipy.ndimage import uniform_filter

    low, high = GATE_RAMP
    gates = []
    for u in np.asarray(diffused, np.float32):
        grey = u.mean(axis=2)
        gy, gx = np.gradient(grey) if min(grey.shape) > 1 else (grey * 0, grey * 0)
        magnitude = np.hypot(gx, gy)
        local = uniform_filter(magnitude, size=window, mode="nearest")
        gates.append(np.clip((local - low) / (high - low), 0.0, 1.0))
    return np.stack(gates)[..., None].astype(np.float32)
