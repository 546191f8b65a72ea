"""Builds the training and validation folders of the shipped models.

    sudo apt-get install mate-backgrounds lomiri-wallpapers-16.04
    python recipes/prepare_pretraining_data.py --output_dir=data/pretraining

Sources (nothing is downloaded; the Debian packages are installed beforehand,
as a step of the training recipe, never at run time):

* the six photos embedded in scikit-image's wheel (`wgimask.train.data`), training only;
* Debian's ``mate-backgrounds``, folder ``nature/`` (12 photos, GPL-2+);
* Debian's ``lomiri-wallpapers-16.04`` (15 photos, CC BY-SA / CC BY; authors in
  the file names and the package's copyright file).

`VALIDATION_PHOTOS` (6 of the 27 package photos) go to ``validation/``, all
other photos to ``train/``: the two sets share no photo. No standard benchmark
photo (Kodak, Set5/14, BSDS, ...) is used.

Each photo is written as PNG at several scales (short side `SCALES` pixels,
Lanczos downscaling, never upscaled): the wallpapers are 1-17 megapixels, and
a 64 px crop of a full-size photo is almost flat, far from the statistics of
downscaled whole images that the paper trains on (ImageNet at 64 px).
"""

from __future__ import annotations

import pathlib
import sys

from absl import app, flags
from PIL import Image

MATE_NATURE = pathlib.Path("/usr/share/backgrounds/mate/nature")
LOMIRI = pathlib.Path("/usr/share/backgrounds")
#: The Lomiri photos (top level of /usr/share/backgrounds; its subfolders
#: belong to other packages).
LOMIRI_PHOTOS = (
    "Bridge_by_Sander_Klootwijk.jpg",
    "Dragonfly_by_Bolly.jpg",
    "Picture_0B_by_freespace.jpg",
    "Picture_1A_by_freespace.jpg",
    "Wine_by_Jakkub_Mede.jpg",
    "aitzgorri_by_Aitzol_Berasategi.jpg",
    "analogpattern_by_Peter_Nerlich.jpg",
    "free_by_Peter_Nerlich.jpg",
    "friends_by_Aitzol_Berasategi.jpg",
    "greentock_by_Peter_Nerlich.jpg",
    "life_by_Aitzol_Berasategi.jpg",
    "picosdeeuropa_by_Aitzol_Berasategi.jpg",
    "seeding_by_Clements_Engelhardt.jpg",
    "sunset_by_Aitzol_Berasategi.jpg",
    "umang_by_Abhishek_Mudgal.jpg",
)
#: Held out for validation and for the comparison in docs/model-card.md:
#: textured and smooth scenes, from both packages.
VALIDATION_PHOTOS = (
    "Picture_1A_by_freespace.jpg",
    "friends_by_Aitzol_Berasategi.jpg",
    "picosdeeuropa_by_Aitzol_Berasategi.jpg",
    "LadyBird.jpg",
    "Storm.jpg",
    "YellowFlower.jpg",
)
#: Short sides (pixels) at which every photo is written.
SCALES = (128, 256, 512)

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", "data/pretraining", "Folder to create.")


def package_photos() -> list[pathlib.Path]:
    """The 27 photos of the two Debian packages.

    Returns:
        Their paths.

    Raises:
        FileNotFoundError: If a package is not installed (names the package).
    """
    photos = sorted(MATE_NATURE.glob("*.jpg")) if MATE_NATURE.is_dir() else []
    if not photos:
        raise FileNotFoundError(
            f"no photos in {MATE_NATURE}: install Debian's mate-backgrounds"
        )
    missing = [name for name in LOMIRI_PHOTOS if not (LOMIRI / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} photo(s) missing from {LOMIRI} (first: {missing[0]}): "
            "install Debian's lomiri-wallpapers-16.04"
        )
    return photos + [LOMIRI / name for name in LOMIRI_PHOTOS]


def write_scales(image: Image.Image, stem: str, folder: pathlib.Path) -> int:
    """Writes `image` at each of `SCALES` (downscaling only) as PNG.

    Returns:
        The number of files written.
    """
    image = image.convert("RGB")
    written = 0
    for short in SCALES:
        factor = short / min(image.size)
        if factor > 1:
            continue
        size = (round(image.width * factor), round(image.height * factor))
        image.resize(size, Image.Resampling.LANCZOS).save(
            folder / f"{stem}_{short}.png"
        )
        written += 1
    return written


def main(argv):
    del argv
    from wgimask.train import data  # absl first, then TensorFlow via wgimask

    try:
        photos = package_photos()
    except FileNotFoundError as error:
        sys.exit(f"prepare_pretraining_data.py: {error}")
    out = pathlib.Path(FLAGS.output_dir)
    folders = {"train": out / "train", "validation": out / "validation"}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.png"):
            old.unlink()
    counts = {"train": 0, "validation": 0}
    for path in photos:
        split = "validation" if path.name in VALIDATION_PHOTOS else "train"
        with Image.open(path) as image:
            counts[split] += write_scales(image, path.stem, folders[split])
    embedded = zip(data.EMBEDDED_PHOTO_NAMES, data.embedded_photo_paths(), strict=True)
    for name, path in embedded:
        with Image.open(path) as image:
            counts["train"] += write_scales(image, f"skimage_{name}", folders["train"])
    for split, count in counts.items():
        print(f"{folders[split]}: {count} images")


if __name__ == "__main__":
    app.run(main)
