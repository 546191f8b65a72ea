"""Tests for wgimask.train.data: files, decoding, crops, split, pipelines, masks."""

import logging
import pathlib

import numpy as np
import pytest
import tensorflow as tf
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from wgimask.train import data

LOGGER = "wgimask.train.data"


def _save(path: pathlib.Path, array: np.ndarray, fmt: str) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)
    return path


def _rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)


def _warnings(caplog) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING
    ]


# ---------------------------------------------------------------- files


def test_list_image_files_recursive_any_case(tmp_path):
    wanted = [
        _save(tmp_path / "a.PNG", _rgb(4, 5), "PNG"),
        _save(tmp_path / "sub" / "b.JpG", _rgb(4, 5), "JPEG"),
        _save(tmp_path / "sub" / "deeper" / "c.bmp", _rgb(4, 5), "BMP"),
        _save(tmp_path / "sub" / "d.tiff", _rgb(4, 5), "TIFF"),
        _save(tmp_path / "e.JPEG", _rgb(4, 5), "JPEG"),
        _save(tmp_path / "other" / "f.Tif", _rgb(4, 5), "TIFF"),
    ]
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "sub" / "png").write_text("no suffix")
    found = data.list_image_files(tmp_path)
    assert found == sorted(wanted)
    images, paths = data.load_images(found, 3)
    assert paths == found
    assert all(im.shape == (4, 5, 3) for im in images)


def test_missing_and_empty_folders_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.list_image_files(tmp_path / "missing")
    empty = tmp_path / "empty"
    (empty / "nested").mkdir(parents=True)
    (empty / "nested" / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match="holds no image") as info:
        data.list_image_files(empty)
    assert str(empty) in str(info.value) and ".tiff" in str(info.value)
    file_path = _save(tmp_path / "x.png", _rgb(3, 3), "PNG")
    with pytest.raises(NotADirectoryError):
        data.list_image_files(file_path)
    with pytest.raises(FileNotFoundError):
        data.source_images(tmp_path / "missing", 3)


# ---------------------------------------------------------------- decoding


def test_grey_to_rgb_repeats_and_rgb_to_grey_is_luma(tmp_path):
    grey = np.arange(20, dtype=np.uint8).reshape(4, 5) * 12
    path = _save(tmp_path / "g.png", grey, "PNG")
    rgb = data.load_image(path, 3)
    assert rgb.shape == (4, 5, 3) and rgb.dtype == np.float32
    for c in range(3):
        np.testing.assert_array_equal(rgb[:, :, c], grey / np.float32(255))
    one = data.load_image(path, 1)
    np.testing.assert_array_equal(one[:, :, 0], grey / np.float32(255))

    colour = _rgb(6, 7, seed=1)
    path = _save(tmp_path / "c.png", colour, "PNG")
    luma = data.load_image(path, 1)
    assert luma.shape == (6, 7, 1)
    pillow_l = np.asarray(Image.fromarray(colour).convert("L")) / 255.0
    np.testing.assert_allclose(luma[:, :, 0], pillow_l, atol=0.5 / 255 + 1e-6)
    np.testing.assert_array_equal(data.load_image(path, 3), colour / np.float32(255))


def test_alpha_is_dropped(tmp_path):
    rgba = np.random.default_rng(2).integers(0, 256, (5, 4, 4), np.uint8)
    path = _save(tmp_path / "a.png", rgba, "PNG")
    np.testing.assert_array_equal(
        data.load_image(path, 3), rgba[:, :, :3] / np.float32(255)
    )
    la = Image.fromarray(rgba[:, :, 0]).convert("LA")
    la.putalpha(Image.fromarray(rgba[:, :, 3]))
    la.save(tmp_path / "la.png")
    np.testing.assert_array_equal(
        data.load_image(tmp_path / "la.png", 1)[:, :, 0],
        rgba[:, :, 0] / np.float32(255),
    )


def test_palette_and_bilevel_images(tmp_path):
    palette_rgb = np.array([[255, 0, 0], [0, 128, 255], [10, 20, 30]], np.uint8)
    index = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    image = Image.fromarray(index).convert("P")
    image.putpalette(palette_rgb.ravel().tolist())
    image.save(tmp_path / "p.png")
    loaded = data.load_image(tmp_path / "p.png", 3)
    np.testing.assert_array_equal(loaded, palette_rgb[index] / np.float32(255))
    # A palette with a transparent entry goes through RGBA; alpha is dropped.
    image.info["transparency"] = 0
    image.save(tmp_path / "pt.png", transparency=0)
    np.testing.assert_array_equal(data.load_image(tmp_path / "pt.png", 3), loaded)

    bits = Image.fromarray(np.array([[0, 255], [255, 0]], np.uint8)).convert("1")
    bits.save(tmp_path / "b.bmp")
    loaded = data.load_image(tmp_path / "b.bmp", 3)
    assert loaded.shape == (2, 2, 3)
    np.testing.assert_array_equal(loaded[:, :, 0], [[0, 1], [1, 0]])


@pytest.mark.parametrize("fmt,suffix", [("PNG", "png"), ("TIFF", "tif")])
def test_16_bit_grey(tmp_path, fmt, suffix):
    values = np.array([[0, 1, 257], [30000, 65534, 65535]], np.uint16)
    path = _save(tmp_path / f"deep.{suffix}", values, fmt)
    loaded = data.load_image(path, 1)
    assert loaded.dtype == np.float32 and loaded.shape == (2, 3, 1)
    np.testing.assert_allclose(loaded[:, :, 0], values / 65535.0, rtol=0, atol=1e-7)
    assert loaded.min() == 0.0 and loaded.max() == 1.0
    assert data.load_image(path, 3).shape == (2, 3, 3)


def test_jpeg_range(tmp_path):
    path = _save(tmp_path / "j.jpg", _rgb(16, 16), "JPEG")
    loaded = data.load_image(path, 3)
    assert loaded.shape == (16, 16, 3)
    assert loaded.min() >= 0.0 and loaded.max() <= 1.0


def test_corrupt_file_skipped_with_one_warning(tmp_path, caplog):
    good = _save(tmp_path / "good.png", _rgb(6, 6), "PNG")
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"this is not an image at all")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(
        _save(tmp_path / "t.png", _rgb(64, 64), "PNG").read_bytes()[:200]
    )
    with pytest.raises(data.ImageReadError, match="garbage.png"):
        data.load_image(garbage, 3)
    assert issubclass(data.ImageReadError, ValueError)

    caplog.set_level(logging.WARNING, logger=LOGGER)
    images, paths = data.load_images([garbage, good, truncated], 3)
    assert paths == [good] and len(images) == 1
    messages = [r.getMessage() for r in _warnings(caplog)]
    assert len(messages) == 2
    assert sum("garbage.png" in m for m in messages) == 1
    assert sum("truncated.png" in m for m in messages) == 1

    with pytest.raises(ValueError, match="could be read"):
        data.load_images([garbage], 3)


def test_bad_channels_rejected(tmp_path):
    path = _save(tmp_path / "x.png", _rgb(3, 3), "PNG")
    with pytest.raises(ValueError, match="channels"):
        data.load_image(path, 2)


# ---------------------------------------------------------------- crops


def test_center_crop_is_the_centre():
    image = np.arange(7 * 9, dtype=np.float32).reshape(7, 9, 1) / 100
    np.testing.assert_array_equal(data.center_crop(image, 3), image[2:5, 3:6])
    # Odd differences start at the floor of half the difference.
    np.testing.assert_array_equal(data.center_crop(image, (4, 2)), image[1:5, 3:5])
    np.testing.assert_array_equal(data.center_crop(image[:, :, 0], 7), image[:, 1:8])
    with pytest.raises(ValueError, match="crop size"):
        data.center_crop(image, 0)


def test_small_images_are_upscaled_with_one_warning(caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    small = np.full((10, 20, 3), 0.25, np.float32)
    small[:, :10] = 0.75
    big = np.zeros((20, 20, 3), np.float32)
    fitted = data.fit_to_crop([small, big], 16, names=["tiny.png", "big.png"])
    assert fitted[0].shape == (16, 32, 3)  # shorter side -> crop size, aspect kept
    assert fitted[1] is big
    assert fitted[0].min() >= 0.0 and fitted[0].max() <= 1.0
    warnings = _warnings(caplog)
    assert len(warnings) == 1
    assert "tiny.png" in warnings[0].getMessage()
    assert "big.png" not in warnings[0].getMessage()
    # Constant regions stay constant under bicubic upscaling.
    np.testing.assert_allclose(fitted[0][:, :8], 0.75, atol=1e-6)
    np.testing.assert_allclose(fitted[0][:, 24:], 0.25, atol=1e-6)

    caplog.clear()
    crop = data.center_crop(small, 16)
    assert crop.shape == (16, 16, 3) and len(_warnings(caplog)) == 1

    caplog.clear()
    batch = next(iter(data.training_dataset([small], 16, 4, seed=0)))
    assert batch.shape == (4, 16, 16, 3) and len(_warnings(caplog)) == 1
    # A non-square crop needs both sides: 10 x 20 for an 8 x 30 crop -> 15 x 30.
    assert data.fit_to_crop([small], (8, 30))[0].shape == (15, 30, 3)


def _source_images():
    rng = np.random.default_rng(5)
    # Values k/255 are stored exactly by the pipeline's uint16 table.
    return [
        (rng.integers(0, 256, shape) / np.float32(255)).astype(np.float32)
        for shape in [(20, 30, 3), (25, 17, 3), (16, 16, 3)]
    ]


def _is_window(crop: np.ndarray, images, flips: bool) -> bool:
    candidates = [crop, crop[:, ::-1]] if flips else [crop]
    for image in images:
        windows = sliding_window_view(image, crop.shape)
        for candidate in candidates:
            if np.all(windows == candidate, axis=(-3, -2, -1)).any():
                return True
    return False


@pytest.mark.parametrize("flip", [False, True])
def test_training_crops_are_sub_windows(flip):
    images = _source_images()
    dataset = data.training_dataset(images, 8, 16, seed=3, flip=flip)
    assert dataset.element_spec.shape == (16, 8, 8, 3)
    batches = [b.numpy() for b in dataset.take(3)]
    for batch in batches:
        assert batch.shape == (16, 8, 8, 3) and batch.dtype == np.float32
        assert batch.min() >= 0.0 and batch.max() <= 1.0
        for crop in batch:
            assert _is_window(crop, images, flips=flip)
    crops = np.concatenate(batches)
    # Some crops come unflipped from each of the three source images.
    for image in images:
        assert any(_is_window(crop, [image], flips=False) for crop in crops)
    if flip:
        assert any(not _is_window(crop, images, flips=False) for crop in crops)


def test_training_non_square_and_grey():
    images = [im[:, :, :1] for im in _source_images()]
    batch = next(iter(data.training_dataset(images, (5, 11), 4, seed=0))).numpy()
    assert batch.shape == (4, 5, 11, 1)
    assert all(_is_window(crop, images, flips=True) for crop in batch)


def test_training_stream_is_seeded():
    images = _source_images()

    def first(seed, n=3, **kwargs):
        dataset = data.training_dataset(images, 8, 8, seed=seed, **kwargs)
        return np.stack([b.numpy() for b in dataset.take(n)])

    same_a, same_b = first(7), first(7)
    np.testing.assert_array_equal(same_a, same_b)
    assert not np.array_equal(same_a, first(8))
    # Batches differ from step to step, and start_step resumes the stream.
    assert not np.array_equal(same_a[0], same_a[1])
    np.testing.assert_array_equal(first(7, n=1, start_step=2)[0], same_a[2])


def test_training_rejects_bad_input():
    images = _source_images()
    with pytest.raises(ValueError, match="at least one image"):
        data.training_dataset([], 8, 4, seed=0)
    with pytest.raises(ValueError, match="batch_size"):
        data.training_dataset(images, 8, 0, seed=0)
    with pytest.raises(ValueError, match="same number of channels"):
        data.training_dataset([images[0], images[1][:, :, :1]], 8, 4, seed=0)


def test_validation_dataset_centre_crops_finite_deterministic():
    images = _source_images()
    dataset = data.validation_dataset(images, 8, 2)
    batches = [b.numpy() for b in dataset]
    assert [b.shape[0] for b in batches] == [2, 1]  # last partial batch kept
    crops = np.concatenate(batches)
    for crop, image in zip(crops, images, strict=True):
        np.testing.assert_array_equal(crop, data.center_crop(image, 8))
    again = np.concatenate([b.numpy() for b in dataset])
    np.testing.assert_array_equal(crops, again)

    tiles = data.validation_crops(images, 8, crops="tiles")
    # 20x30 -> 2x3 tiles, 25x17 -> 3x2, 16x16 -> 2x2.
    assert tiles.shape == (6 + 6 + 4, 8, 8, 3)
    np.testing.assert_array_equal(tiles[0], images[0][2:10, 3:11])


# ---------------------------------------------------------------- split


def test_split_is_disjoint_deterministic_and_by_image():
    images = [np.full((4, 4, 1), i, np.float32) for i in range(10)]
    train, val = data.split_images(images, 0.3, seed=1)
    assert len(val) == 3 and len(train) == 7
    ids = lambda part: {id(im) for im in part}  # noqa: E731
    assert ids(train).isdisjoint(ids(val))
    assert ids(train) | ids(val) == ids(images)
    again_train, again_val = data.split_images(images, 0.3, seed=1)
    assert ids(again_train) == ids(train) and ids(again_val) == ids(val)
    others = {
        frozenset(ids(data.split_images(images, 0.3, seed=s)[1])) for s in range(6)
    }
    assert len(others) > 1

    # Tiny fractions still give one validation image; 0 gives none.
    assert len(data.split_images(images[:2], 0.01, seed=0)[1]) == 1
    assert len(data.split_images(images[:2], 0.9, seed=0)[0]) == 1
    train, val = data.split_images(images, 0.0, seed=0)
    assert len(train) == 10 and val == []


def test_split_groups_stay_together():
    groups = ["a", "b", "c", "m", "m", "d"]
    for seed in range(10):
        train, val = data.split_indices(6, 0.34, seed, groups=groups)
        assert (3 in val) == (4 in val)
        assert sorted(train + val) == list(range(6))


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5])
def test_split_rejects_bad_fractions(fraction):
    with pytest.raises(ValueError, match="validation_fraction"):
        data.split_images([np.zeros((2, 2))] * 3, fraction, seed=0)


def test_split_rejects_too_few_images():
    with pytest.raises(ValueError, match="at least 2"):
        data.split_images([np.zeros((2, 2))], 0.2, seed=0)
    with pytest.raises(ValueError, match="empty"):
        data.split_images([], 0.0, seed=0)


# ---------------------------------------------------------------- masks


@pytest.mark.parametrize("density", [0.05, 0.1, 0.125, 0.5, 0.9])
def test_random_masks_exact_density(density):
    height, width = 12, 20
    masks = data.random_masks(5, height, width, density, tf.constant([4, 2]))
    assert masks.shape == (5, height, width, 1) and masks.dtype == tf.float32
    values = masks.numpy()
    assert set(np.unique(values)) <= {0.0, 1.0}
    np.testing.assert_array_equal(
        values.sum(axis=(1, 2, 3)), round(density * height * width)
    )


def test_random_masks_seeded_and_in_tf_function():
    a = data.random_masks(3, 8, 8, 0.25, [1, 2]).numpy()
    np.testing.assert_array_equal(a, data.random_masks(3, 8, 8, 0.25, [1, 2]).numpy())
    assert not np.array_equal(a, data.random_masks(3, 8, 8, 0.25, [1, 3]).numpy())
    assert not np.array_equal(a[0], a[1])

    @tf.function
    def masks_like(images, seed, density):
        shape = tf.shape(images)
        return data.random_masks(shape[0], shape[1], shape[2], density, seed)

    out = masks_like(tf.zeros([2, 6, 10, 3]), tf.constant([5, 6]), tf.constant(0.3))
    assert out.shape == (2, 6, 10, 1)
    np.testing.assert_array_equal(tf.reduce_sum(out, [1, 2, 3]).numpy(), [18, 18])


@pytest.mark.parametrize("density", [0.0, 1.0, -0.2, 1.5])
def test_random_masks_rejects_bad_density(density):
    with pytest.raises(ValueError, match="density"):
        data.random_masks(1, 4, 4, density, [0, 0])


# ---------------------------------------------------------------- embedded


def test_embedded_photos():
    photos = data.embedded_photos(3)
    assert len(photos) == len(data.EMBEDDED_PHOTO_NAMES) >= 5
    assert len(data.EMBEDDED_PHOTO_GROUPS) == len(photos)
    for photo in photos:
        assert photo.dtype == np.float32 and photo.ndim == 3 and photo.shape[2] == 3
        assert min(photo.shape[:2]) >= 256
        assert photo.min() >= 0.0 and photo.max() <= 1.0
        assert photo.std() > 0.05  # real pictures, not flat fields
        # Colour photos: the channels differ.
        assert np.abs(photo[:, :, 0] - photo[:, :, 2]).mean() > 0.01
    grey = data.embedded_photos(1)
    assert [g.shape[:2] for g in grey] == [p.shape[:2] for p in photos]
    assert all(g.shape[2] == 1 for g in grey)

    images, names = data.source_images(None, 1)
    assert names == list(data.EMBEDDED_PHOTO_NAMES) and len(images) == len(grey)
