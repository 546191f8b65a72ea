"""Image files and the embedded photos: finding, decoding, converting.

Images are float32 numpy arrays in [0, 1] of shape (H, W, C) with C = 1 or 3.

Reading (`load_image`) goes through Pillow:

* 8-bit data is divided by 255, 16-bit data ("I;16" modes, e.g. 16-bit grey
  PNG or TIFF) by 65535. Pillow reads 16-bit *colour* PNGs as 8-bit RGB, so
  their low byte is lost. 32-bit integer images ("I") are divided by 65535
  when their values fit in 16 bits, otherwise by 2**31 - 1. 32-bit float images
  ("F") are taken as already in [0, 1] and clipped to it.
* Palette, CMYK, YCbCr and other colour modes are converted to RGB by Pillow;
  bilevel ("1") images become grey.
* Alpha is dropped (RGBA -> RGB, LA -> L): the colour values are kept as
  stored, not composited on a background.
* Grey -> RGB repeats the grey value; RGB -> grey uses the ITU-R 601 luma
  weights of Pillow's "L" conversion (0.299 R + 0.587 G + 0.114 B), computed in
  float without rounding to 8 bits.
* Multi-frame files (animated images, multi-page TIFF) use their first frame;
  EXIF orientation is applied.

Unreadable files are skipped with a warning on the ``wgimask.train.data`` logger,
the name these functions logged under before they moved here from
`wgimask.train.data` (which still re-exports them). This module does not import
TensorFlow.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import pathlib
import tempfile
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageOps

# The logger of `wgimask.train.data`, which users and the docs filter on.
logger = logging.getLogger("wgimask.train.data")

#: Accepted file suffixes (compared case-insensitively).
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

#: The natural colour photographs of scikit-image's wheel used without --data_dir.
EMBEDDED_PHOTO_NAMES: tuple[str, ...] = (
    "astronaut",
    "chelsea",
    "coffee",
    "motorcycle_left",
    "motorcycle_right",
    "rocket",
)

#: Scene of each embedded photo (aligned with `EMBEDDED_PHOTO_NAMES`): the two
#: motorcycle photos are a stereo pair of one scene. Pass as `groups` to
#: `split_images` so that they never sit on both sides of a split.
EMBEDDED_PHOTO_GROUPS: tuple[str, ...] = (
    "astronaut",
    "chelsea",
    "coffee",
    "motorcycle",
    "motorcycle",
    "rocket",
)

_EMBEDDED_PHOTO_FILES: dict[str, str] = {
    "astronaut": "astronaut.png",
    "chelsea": "chelsea.png",
    "coffee": "coffee.png",
    "motorcycle_left": "motorcycle_left.png",
    "motorcycle_right": "motorcycle_right.png",
    "rocket": "rocket.jpg",
}

# ITU-R 601 luma weights, as in Pillow's RGB -> "L" conversion.
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


class ImageReadError(ValueError):
    """An image file could not be opened or decoded."""


def _check_channels(channels: int) -> None:
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")


def list_image_files(data_dir: str | os.PathLike) -> list[pathlib.Path]:
    """Lists the image files below a folder, recursively.

    Args:
        data_dir: Folder to search. Sub-folders are searched too (symbolic links
            to folders are not followed).

    Returns:
        The sorted paths of all files whose suffix, in any case, is one of
        `IMAGE_EXTENSIONS`.

    Raises:
        FileNotFoundError: `data_dir` does not exist.
        NotADirectoryError: `data_dir` is not a folder.
        ValueError: the folder holds no image file.
    """
    root = pathlib.Path(data_dir).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"Image folder {str(root)!r} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"Image folder {str(root)!r} is not a folder")
    files = [
        pathlib.Path(dirpath) / name
        for dirpath, _, names in os.walk(root)
        for name in names
        if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS
    ]
    if not files:
        raise ValueError(
            f"Image folder {str(root)!r} (searched recursively) holds no image "
            f"file with one of the extensions {', '.join(IMAGE_EXTENSIONS)} "
            "(any case)"
        )
    return sorted(files)


def _pil_to_array(image: Image.Image) -> np.ndarray:
    """Converts a Pillow image to float32 (H, W, 1) or (H, W, 3) in [0, 1]."""
    mode = image.mode
    if mode.startswith("I;16"):
        data = np.asarray(image).astype(np.float32) / 65535.0
    elif mode == "I":
        raw = np.asarray(image)
        scale = 65535.0 if raw.min() >= 0 and raw.max() <= 65535 else 2.0**31 - 1
        data = np.clip(raw.astype(np.float64) / scale, 0.0, 1.0).astype(np.float32)
    elif mode == "F":
        data = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    else:
        if mode in ("1", "L", "LA", "La"):
            target = "L"
        elif mode == "P" and "transparency" in image.info:
            # Pillow asks for RGBA here; the alpha is dropped below.
            image = image.convert("RGBA")
            target = "RGB"
        else:
            target = "RGB"
        if image.mode != target:
            image = image.convert(target)
        data = np.asarray(image).astype(np.float32) / 255.0
    if data.ndim == 2:
        data = data[:, :, None]
    return np.ascontiguousarray(data, dtype=np.float32)


def _to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """Converts a (H, W, 1|3) float image to `channels` channels."""
    if image.shape[-1] == channels:
        return image
    if channels == 3:
        return np.repeat(image, 3, axis=-1)
    luma = image @ _LUMA_WEIGHTS
    return np.clip(luma, 0.0, 1.0)[:, :, None].astype(np.float32)


def load_image(path: str | os.PathLike, channels: int) -> np.ndarray:
    """Reads one image file as float32 in [0, 1].

    See the module docstring for the conversions (bit depths, palette, alpha,
    grey <-> RGB).

    Args:
        path: Image file in any format Pillow reads.
        channels: 1 (grey) or 3 (RGB).

    Returns:
        Array of shape (H, W, channels), dtype float32, values in [0, 1].

    Raises:
        ValueError: `channels` is not 1 or 3.
        ImageReadError: the file is missing, unreadable, truncated or not an
            image.
    """
    _check_channels(channels)
    try:
        with Image.open(path) as image:
            image.seek(0)
            image.load()
            image = ImageOps.exif_transpose(image)
            data = _pil_to_array(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ImageReadError(f"Cannot read image {str(path)!r}: {err}") from err
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise ImageReadError(f"Cannot read image {str(path)!r}: it has no pixels")
    return _to_channels(data, channels)


def load_images(
    paths: Sequence[str | os.PathLike], channels: int
) -> tuple[list[np.ndarray], list[pathlib.Path]]:
    """Reads image files, skipping those that cannot be read.

    Each unreadable or corrupt file is skipped with one warning (logger
    `wgimask.train.data`) that names it.

    Args:
        paths: Image files.
        channels: 1 (grey) or 3 (RGB).

    Returns:
        The images (as `load_image` returns them) and, aligned with them, the
        paths that were read.

    Raises:
        ValueError: `channels` is not 1 or 3, or no file could be read.
    """
    _check_channels(channels)
    images: list[np.ndarray] = []
    read: list[pathlib.Path] = []
    for path in paths:
        try:
            images.append(load_image(path, channels))
        except ImageReadError as err:
            logger.warning(
                "Skipping unreadable image file %s (%s)", path, err.__cause__
            )
            continue
        read.append(pathlib.Path(path))
    if not images:
        raise ValueError(f"None of the {len(paths)} image file(s) could be read")
    return images, read


def load_image_folder(
    data_dir: str | os.PathLike, channels: int
) -> tuple[list[np.ndarray], list[pathlib.Path]]:
    """Reads every image below a folder (`list_image_files` + `load_images`).

    Args:
        data_dir: Folder, searched recursively.
        channels: 1 (grey) or 3 (RGB).

    Returns:
        The images that could be read and their paths.

    Raises:
        FileNotFoundError: the folder does not exist.
        NotADirectoryError: `data_dir` is not a folder.
        ValueError: the folder holds no image file, or none could be read.
    """
    return load_images(list_image_files(data_dir), channels)


def _embedded_photo_dir() -> pathlib.Path:
    spec = importlib.util.find_spec("skimage.data")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "scikit-image is not installed: its photos are the default training "
            "images (or pass a data folder)"
        )
    return pathlib.Path(next(iter(spec.submodule_search_locations)))


def embedded_photo_paths() -> list[pathlib.Path]:
    """The files of the embedded photos, in the order of `EMBEDDED_PHOTO_NAMES`.

    Returns:
        Paths inside scikit-image's installed package.

    Raises:
        FileNotFoundError: scikit-image or one of its photo files is missing.
    """
    folder = _embedded_photo_dir()
    paths = []
    for name in EMBEDDED_PHOTO_NAMES:
        path = folder / _EMBEDDED_PHOTO_FILES[name]
        if not path.is_file():
            raise FileNotFoundError(
                f"scikit-image's photo {name!r} is missing from its package "
                f"folder ({str(path)!r}); reinstall scikit-image or pass a data "
                "folder"
            )
        paths.append(path)
    return paths


@functools.lru_cache(maxsize=2)
def _embedded_photos_cached(channels: int) -> tuple[np.ndarray, ...]:
    photos = []
    for path in embedded_photo_paths():
        photo = load_image(path, channels)
        photo.setflags(write=False)  # shared by the cache
        photos.append(photo)
    return tuple(photos)


def embedded_photos(channels: int) -> list[np.ndarray]:
    """Loads the natural colour photographs shipped in scikit-image's wheel.

    They are read from the files in `skimage.data`'s package folder; nothing is
    downloaded. The order is that of `EMBEDDED_PHOTO_NAMES`. The Hubble deep
    field picture is left out: it is mostly black sky with small galaxies, far
    from natural-image statistics.

    Args:
        channels: 1 (grey, ITU-R 601 luma) or 3 (RGB).

    Returns:
        Six read-only float32 arrays (H, W, channels) in [0, 1], between
        300 x 451 and 500 x 741 pixels.

    Raises:
        ValueError: `channels` is not 1 or 3.
        FileNotFoundError: scikit-image or one of its photo files is missing.
    """
    _check_channels(channels)
    return list(_embedded_photos_cached(channels))


def source_images(
    data_dir: str | os.PathLike | None, channels: int
) -> tuple[list[np.ndarray], list[str]]:
    """Training images: a folder's images, or the embedded photos without one.

    Call this before building a model: missing or empty folders fail here.

    Args:
        data_dir: Image folder (searched recursively), or None for
            `embedded_photos`.
        channels: 1 (grey) or 3 (RGB).

    Returns:
        The images and a name for each (file path or embedded photo name).

    Raises:
        FileNotFoundError: the folder does not exist.
        NotADirectoryError: `data_dir` is not a folder.
        ValueError: the folder holds no readable image file.
    """
    if data_dir is None:
        return embedded_photos(channels), list(EMBEDDED_PHOTO_NAMES)
    images, paths = load_image_folder(data_dir, channels)
    return images, [str(p) for p in paths]


def _place_new(temporary: pathlib.Path, final: pathlib.Path) -> None:
    """Renames `temporary` to `final` unless an entry named `final` exists."""
    try:
        # A hard link fails where any entry (file or link) exists, atomically.
        os.link(temporary, final)
    except FileExistsError:
        raise
    except OSError:
        # A file system without hard links (FAT, some network shares): the
        # check and the rename are two steps there.
        if os.path.lexists(final):
            raise FileExistsError(f"{final} exists") from None
        os.replace(temporary, final)
        return
    temporary.unlink()


def save_pngs(images: dict[pathlib.Path, np.ndarray], overwrite: bool) -> None:
    """Writes 8-bit PNGs all or none, never through a link at a destination.

    Each image is encoded to a hidden temporary file in its destination's
    folder; only when all of them are complete are they renamed into place
    (`os.replace` replaces a link at the destination, never its target).
    An error or an interrupt (Ctrl-C) on the way removes the temporary files,
    so no half-written PNG is left to block a rerun, and a full disk leaves
    none of the set. Without `overwrite` a destination that appeared since
    the caller checked (another process writing the same folder) is not
    replaced: `FileExistsError`.

    Args:
        images: destination -> array in [0, 1], (H, W), (H, W, 1) or (H, W, 3).
        overwrite: Whether existing destinations may be replaced.
    """
    written: dict[pathlib.Path, pathlib.Path] = {}
    try:
        for final, array in images.items():
            pixels = np.round(np.clip(array, 0, 1) * 255).astype(np.uint8)
            if pixels.ndim == 3 and pixels.shape[-1] == 1:
                pixels = pixels[..., 0]
            handle, temporary = tempfile.mkstemp(
                prefix=f".{final.name}.", suffix=".tmp", dir=final.parent
            )
            written[final] = pathlib.Path(temporary)
            with os.fdopen(handle, "wb") as file:
                # zlib level 1: a 768x512 colour photo in 0.05 s against
                # 0.29 s at Pillow's default level, 16 % larger, same pixels.
                Image.fromarray(pixels).save(file, format="PNG", compress_level=1)
        for final, temporary in list(written.items()):
            if overwrite:
                os.replace(temporary, final)
            else:
                _place_new(temporary, final)
            del written[final]
    finally:
        for temporary in written.values():
            temporary.unlink(missing_ok=True)
