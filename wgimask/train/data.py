"""Crops, training/validation splits, the `tf.data` input pipelines, masks.

Images are float32 numpy arrays in [0, 1] of shape (H, W, C) with C = 1 or 3,
as `wgimask.image_files` reads them (image folders, the embedded photos; its
names are re-exported here).

Small images: an image with a side shorter than the crop is upscaled (bicubic,
aspect ratio kept, result clipped to [0, 1]) to the smallest size that holds the
crop, so for a square crop its shorter side becomes the crop size. One warning
names the images affected. `fit_to_crop` does this for both the training and the
validation pipeline, and `center_crop` for a single image.

The training pipeline keeps every decoded image in memory once, packed into one
flat uint16 pixel table (exact for 8- and 16-bit sources, 2 bytes per channel),
and cuts whole batches of random crops from it with one vectorised gather per
batch: no Python runs per element or per step.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Sequence

import numpy as np
import tensorflow as tf
from PIL import Image

# Re-exported: the reading functions lived here before they moved to
# image_files, and user code, tests and docs import them from here.
from wgimask.image_files import (  # noqa: F401
    EMBEDDED_PHOTO_GROUPS,
    EMBEDDED_PHOTO_NAMES,
    IMAGE_EXTENSIONS,
    ImageReadError,
    embedded_photo_paths,
    embedded_photos,
    list_image_files,
    load_image,
    load_image_folder,
    load_images,
    source_images,
)

logger = logging.getLogger(__name__)

_STORE_SCALE = 65535.0  # uint16 pixel table of the training pipeline
_MAX_NAMES_IN_WARNING = 10


# --------------------------------------------------------------------------
# Crops (numpy) and the small-image rule
# --------------------------------------------------------------------------


def _crop_size(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        height = width = int(size)
    else:
        try:
            height, width = (int(s) for s in size)
        except (TypeError, ValueError):
            raise ValueError(
                f"crop size must be an int or (height, width), got {size!r}"
            ) from None
    if height < 1 or width < 1:
        raise ValueError(f"crop size must be positive, got {size!r}")
    return height, width


def _as_hwc(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3):
        raise ValueError(
            f"expected an image of shape (H, W), (H, W, 1) or (H, W, 3), got "
            f"shape {image.shape}"
        )
    return image


def _upscaled(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bicubic upscaling (aspect ratio kept) until `image` holds height x width."""
    h, w = image.shape[:2]
    scale = max(height / h, width / w)
    new_h = max(height, round(h * scale))
    new_w = max(width, round(w * scale))
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(image[:, :, c], np.float32)).resize(
                (new_w, new_h), Image.Resampling.BICUBIC
            )
        )
        for c in range(image.shape[-1])
    ]
    return np.clip(np.stack(channels, axis=-1), 0.0, 1.0).astype(np.float32)


def _describe(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_MAX_NAMES_IN_WARNING])
    more = len(names) - _MAX_NAMES_IN_WARNING
    return shown + (f" and {more} more" if more > 0 else "")


def fit_to_crop(
    images: Sequence[np.ndarray],
    size: int | Sequence[int],
    *,
    names: Sequence[str] | None = None,
) -> list[np.ndarray]:
    """Applies the small-image rule to a list of images.

    Images at least as large as the crop in both directions are returned as
    they are. Smaller ones are upscaled (bicubic, aspect ratio kept, clipped to
    [0, 1]) to the smallest size holding the crop; one warning names them.

    Args:
        images: Arrays (H, W) or (H, W, C).
        size: Crop size, int (square) or (height, width).
        names: Optional names for the warning (default: list positions).

    Returns:
        The images as float32 (H, W, C) arrays large enough for the crop.

    Raises:
        ValueError: bad crop size or image shape.
    """
    height, width = _crop_size(size)
    fitted: list[np.ndarray] = []
    small: list[str] = []
    for i, image in enumerate(images):
        image = _as_hwc(image)
        h, w = image.shape[:2]
        if h < height or w < width:
            label = str(names[i]) if names is not None else f"#{i}"
            small.append(f"{label} ({h}x{w})")
            image = _upscaled(image, height, width)
        fitted.append(np.asarray(image, dtype=np.float32))
    if small:
        logger.warning(
            "%d image(s) smaller than the %dx%d crop were upscaled (bicubic, "
            "aspect ratio kept): %s",
            len(small),
            height,
            width,
            _describe(small),
        )
    return fitted


def center_crop(image: np.ndarray, size: int | Sequence[int]) -> np.ndarray:
    """Cuts the central window of an image.

    For an odd size difference the window starts at floor((H - h) / 2) (and
    likewise for the width). An image smaller than the crop is first upscaled
    by the small-image rule (see `fit_to_crop`), with a warning.

    Args:
        image: Array (H, W) or (H, W, C).
        size: Crop size, int (square) or (height, width).

    Returns:
        float32 array (height, width, C).

    Raises:
        ValueError: bad crop size or image shape.
    """
    height, width = _crop_size(size)
    (image,) = fit_to_crop([image], (height, width))
    top = (image.shape[0] - height) // 2
    left = (image.shape[1] - width) // 2
    return np.array(image[top : top + height, left : left + width], dtype=np.float32)


def _tiles(image: np.ndarray, height: int, width: int) -> list[np.ndarray]:
    """All non-overlapping windows of a centred grid over the image."""
    rows, cols = image.shape[0] // height, image.shape[1] // width
    top = (image.shape[0] - rows * height) // 2
    left = (image.shape[1] - cols * width) // 2
    return [
        image[
            top + r * height : top + (r + 1) * height,
            left + c * width : left + (c + 1) * width,
        ]
        for r in range(rows)
        for c in range(cols)
    ]


# --------------------------------------------------------------------------
# Split
# --------------------------------------------------------------------------


def split_indices(
    count: int,
    validation_fraction: float,
    seed: int,
    *,
    groups: Sequence[Hashable] | None = None,
) -> tuple[list[int], list[int]]:
    """Seeded split of image positions into training and validation.

    Args:
        count: Number of images.
        validation_fraction: Fraction in [0, 1) of images (of groups, when
            given) for validation; 0 means no validation. When positive, the
            validation side gets round(fraction * count), but at least one and
            at most count - 1.
        seed: Seed of the permutation; the same seed gives the same split.
        groups: Optional label per image; images with equal labels (e.g. views
            of one scene) always land on the same side.

    Returns:
        Sorted training and validation positions.

    Raises:
        ValueError: fraction outside [0, 1), no images, fewer than two images
            (groups) with a positive fraction, or `groups` of the wrong length.
    """
    fraction = float(validation_fraction)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(
            f"validation_fraction must be in [0, 1), got {validation_fraction!r}"
        )
    if count < 1:
        raise ValueError("cannot split an empty list of images")
    if groups is None:
        groups = list(range(count))
    elif len(groups) != count:
        raise ValueError(f"got {len(groups)} group labels for {count} images")
    labels = list(dict.fromkeys(groups))  # first-seen order: deterministic
    if fraction == 0.0:
        return list(range(count)), []
    if len(labels) < 2:
        raise ValueError(
            f"a validation split needs at least 2 images (distinct groups), got "
            f"{len(labels)}"
        )
    n_val = min(max(round(fraction * len(labels)), 1), len(labels) - 1)
    order = np.random.default_rng(seed).permutation(len(labels))
    val_labels = {labels[i] for i in order[:n_val]}
    train = [i for i, g in enumerate(groups) if g not in val_labels]
    val = [i for i, g in enumerate(groups) if g in val_labels]
    return train, val


def split_images(
    images: Sequence[np.ndarray],
    validation_fraction: float,
    seed: int,
    *,
    groups: Sequence[Hashable] | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Splits images (not crops) into training and validation sets.

    Crops are cut afterwards from each side, so no validation pixel is ever
    seen in training. See `split_indices` for the rule.

    Args:
        images: The images.
        validation_fraction: Fraction in [0, 1) for validation (0: none).
        seed: Seed; the same seed gives the same split.
        groups: Optional label per image kept together (e.g.
            `EMBEDDED_PHOTO_GROUPS`).

    Returns:
        Training images and validation images, each in their original order.

    Raises:
        ValueError: see `split_indices`.
    """
    train, val = split_indices(len(images), validation_fraction, seed, groups=groups)
    return [images[i] for i in train], [images[i] for i in val]


def source_split(
    data_dir: str | None,
    channels: int,
    *,
    validation_dir: str | None = None,
    validation_fraction: float = 0.0,
    seed: int = 0,
) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """A run's training and validation images: the one rule every mode uses.

    With ``validation_dir`` all of ``data_dir`` trains; otherwise
    `split_images` holds out ``validation_fraction`` of it (the embedded
    photos keep the views of one scene on one side).

    Args:
        data_dir: The training folder; None: the embedded photos.
        channels: 1 or 3.
        validation_dir: An optional folder of validation images.
        validation_fraction: Fraction in [0, 1) held out without
            ``validation_dir`` (0: no validation).
        seed: Seed of the split.

    Returns:
        (training images, validation images, training names).

    Raises:
        FileNotFoundError, NotADirectoryError, ValueError: for a missing, wrong
            or empty folder (prefixed "validation_dir: " for that one).
    """
    images, names = source_images(data_dir, channels)
    if validation_dir is not None:
        try:
            validation, _ = source_images(validation_dir, channels)
        except (FileNotFoundError, NotADirectoryError, ValueError) as error:
            # Name the field: the same exceptions come from data_dir above.
            raise type(error)(f"validation_dir: {error}") from error
        return images, validation, names
    groups = EMBEDDED_PHOTO_GROUPS if data_dir is None else None
    train, val = split_indices(len(images), validation_fraction, seed, groups=groups)
    return (
        [images[i] for i in train],
        [images[i] for i in val],
        [names[i] for i in train],
    )


# --------------------------------------------------------------------------
# tf.data pipelines
# --------------------------------------------------------------------------


def _common_channels(images: Sequence[np.ndarray]) -> int:
    channels = {image.shape[-1] for image in images}
    if len(channels) != 1:
        raise ValueError(
            f"all images must have the same number of channels, got {sorted(channels)}"
        )
    return channels.pop()


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")


def training_dataset(
    images: Sequence[np.ndarray],
    image_size: int | Sequence[int],
    batch_size: int,
    *,
    seed: int,
    flip: bool = True,
    start_step: int = 0,
    names: Sequence[str] | None = None,
) -> tf.data.Dataset:
    """Infinite stream of batches of random crops.

    Each batch draws `batch_size` images uniformly (with replacement), a
    uniform crop position in each, and, when `flip` is set, a horizontal flip
    with probability 1/2. Batch `n` depends only on (`seed`, `n`) through
    stateless random ops, so a seed gives the same stream every time and
    `start_step` resumes it in the middle. Images smaller than the crop follow
    the small-image rule (`fit_to_crop`).

    The decoded images are packed once into an in-memory uint16 pixel table;
    each batch is one vectorised gather run by `map(num_parallel_calls=AUTOTUNE)`,
    followed by `prefetch(AUTOTUNE)`.

    Args:
        images: Training images (H, W) or (H, W, C), values in [0, 1], all
            with the same number of channels.
        image_size: Crop size, int (square) or (height, width).
        batch_size: Crops per batch (every batch is full).
        seed: Seed of the stream.
        flip: Random horizontal flips.
        start_step: Index of the first batch (to resume a stream).
        names: Optional image names for the small-image warning.

    Returns:
        A `tf.data.Dataset` of float32 tensors (batch_size, height, width, C)
        in [0, 1].

    Raises:
        ValueError: no images, mixed channel counts, bad size or batch size.
    """
    if len(images) == 0:
        raise ValueError("training_dataset needs at least one image")
    _check_batch_size(batch_size)
    height, width = _crop_size(image_size)
    fitted = fit_to_crop(images, (height, width), names=names)
    channels = _common_channels(fitted)

    heights = np.array([im.shape[0] for im in fitted], dtype=np.int64)
    widths = np.array([im.shape[1] for im in fitted], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(heights * widths)[:-1]]).astype(np.int64)
    table = np.concatenate(
        [
            np.rint(np.clip(im, 0.0, 1.0) * _STORE_SCALE)
            .astype(np.uint16)
            .reshape(-1, channels)
            for im in fitted
        ]
    )

    pixels = tf.constant(table)
    heights_t = tf.constant(heights)
    widths_t = tf.constant(widths)
    offsets_t = tf.constant(offsets)
    count = tf.constant(len(fitted), tf.int64)
    base_seed = tf.constant(int(seed), tf.int64)
    rows = tf.range(height, dtype=tf.int64)
    cols = tf.range(width, dtype=tf.int64)

    def uniform_below(bound: tf.Tensor, seed_pair: tf.Tensor) -> tf.Tensor:
        # Full-range 64-bit draws reduced modulo the bound: bias < bound / 2**63.
        bits = tf.random.stateless_uniform(
            [batch_size], seed_pair, minval=None, maxval=None, dtype=tf.int64
        )
        return tf.math.floormod(bits, bound)

    def make_batch(step: tf.Tensor) -> tf.Tensor:
        keys = tf.random.experimental.stateless_split(tf.stack([base_seed, step]), 4)
        index = uniform_below(count, keys[0])
        img_h = tf.gather(heights_t, index)
        img_w = tf.gather(widths_t, index)
        start = tf.gather(offsets_t, index)
        top = uniform_below(img_h - height + 1, keys[1])
        left = uniform_below(img_w - width + 1, keys[2])
        col_offsets = tf.broadcast_to(cols, [batch_size, width])
        if flip:
            flipped = tf.random.stateless_uniform([batch_size, 1], keys[3]) < 0.5
            col_offsets = tf.where(flipped, width - 1 - col_offsets, col_offsets)
        y = top[:, None] + rows[None, :]  # (B, h)
        x = left[:, None] + col_offsets  # (B, w)
        flat = (
            start[:, None, None] + y[:, :, None] * img_w[:, None, None] + x[:, None, :]
        )  # (B, h, w) pixel numbers in the table
        batch = tf.gather(pixels, flat)  # (B, h, w, C) uint16
        # A true division (not a reciprocal product) returns k / 255 for
        # 8-bit sources bit-exactly, as `load_image` computed it.
        return tf.cast(batch, tf.float32) / _STORE_SCALE

    dataset = tf.data.Dataset.counter(start=int(start_step), dtype=tf.int64)
    dataset = dataset.map(
        make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


def validation_crops(
    images: Sequence[np.ndarray],
    image_size: int | Sequence[int],
    *,
    crops: str = "center",
    names: Sequence[str] | None = None,
) -> np.ndarray:
    """Deterministic validation crops as one array.

    Args:
        images: Validation images (H, W) or (H, W, C), same channel count.
        image_size: Crop size, int (square) or (height, width).
        crops: "center": the centre crop of each image (as in the paper);
            "tiles": every window of a centred grid of non-overlapping crops
            (more validation crops from few large images).
        names: Optional image names for the small-image warning.

    Returns:
        float32 array (N, height, width, C).

    Raises:
        ValueError: no images, mixed channels, bad size or `crops` value.
    """
    if len(images) == 0:
        raise ValueError("validation needs at least one image")
    if crops not in ("center", "tiles"):
        raise ValueError(f"crops must be 'center' or 'tiles', got {crops!r}")
    height, width = _crop_size(image_size)
    fitted = fit_to_crop(images, (height, width), names=names)
    _common_channels(fitted)
    if crops == "center":
        windows = [center_crop(im, (height, width)) for im in fitted]
    else:
        windows = [t for im in fitted for t in _tiles(im, height, width)]
    return np.stack(windows).astype(np.float32)


def validation_dataset(
    images: Sequence[np.ndarray],
    image_size: int | Sequence[int],
    batch_size: int,
    *,
    crops: str = "center",
    names: Sequence[str] | None = None,
) -> tf.data.Dataset:
    """Finite, deterministic batches of validation crops.

    Args:
        images: Validation images (H, W) or (H, W, C), same channel count.
        image_size: Crop size, int (square) or (height, width).
        batch_size: Crops per batch; the last batch may be smaller.
        crops: "center" (one centre crop per image) or "tiles" (see
            `validation_crops`).
        names: Optional image names for the small-image warning.

    Returns:
        A `tf.data.Dataset` of float32 tensors (<= batch_size, height, width, C).

    Raises:
        ValueError: see `validation_crops`, or a bad batch size.
    """
    _check_batch_size(batch_size)
    windows = validation_crops(images, image_size, crops=crops, names=names)
    dataset = tf.data.Dataset.from_tensor_slices(windows)
    return dataset.batch(batch_size, drop_remainder=False).prefetch(tf.data.AUTOTUNE)


# --------------------------------------------------------------------------
# Random masks
# --------------------------------------------------------------------------


def random_masks(
    batch: int | tf.Tensor,
    height: int | tf.Tensor,
    width: int | tf.Tensor,
    density: float | tf.Tensor,
    seed: Sequence[int] | tf.Tensor,
) -> tf.Tensor:
    """Uniformly random masks with an exact number of known pixels.

    Each mask has exactly round(density * height * width) ones (half to even,
    as Python's `round`), at the positions of the largest values of stateless
    uniform noise. Pure TensorFlow: usable inside `tf.function` with tensor
    arguments.

    Args:
        batch: Number of masks.
        height: Mask height.
        width: Mask width.
        density: Fraction of known pixels, in (0, 1).
        seed: Shape-[2] integer seed of the stateless random ops.

    Returns:
        float32 tensor (batch, height, width, 1) of zeros and ones.

    Raises:
        ValueError: `density` is a Python number outside (0, 1).
    """
    if isinstance(density, (int, float, np.floating, np.integer)) and not (
        0.0 < float(density) < 1.0
    ):
        raise ValueError(f"density must be in (0, 1), got {density!r}")
    size = tf.cast(height, tf.int64) * tf.cast(width, tf.int64)
    known = tf.cast(
        tf.round(tf.cast(density, tf.float64) * tf.cast(size, tf.float64)), tf.int32
    )
    noise_shape = tf.stack([tf.cast(batch, tf.int64), size])
    noise = tf.random.stateless_uniform(noise_shape, seed)
    _, positions = tf.math.top_k(noise, k=known, sorted=False)  # (B, k), distinct
    positions = tf.cast(positions, tf.int64)
    image_ids = tf.broadcast_to(
        tf.range(tf.cast(batch, tf.int64), dtype=tf.int64)[:, None], tf.shape(positions)
    )
    masks = tf.scatter_nd(
        tf.stack([image_ids, positions], axis=-1),
        tf.ones(tf.shape(positions), tf.float32),
        noise_shape,
    )
    shape = [tf.cast(n, tf.int32) for n in (batch, height, width)] + [1]
    return tf.reshape(masks, tf.stack(shape))
