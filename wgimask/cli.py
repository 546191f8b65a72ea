"""`wgimask`: a learned sparse mask and its inpainting for your own images.

    wgimask photo.jpg --density=0.1 --model=runs/d10 --output_dir=out --diffusion

For each image it writes ``NAME_mask.png`` (known pixels white), ``NAME_known.png``
(the known pixels on black), ``NAME_inpainted.png`` (the learned inpainting)
and, with ``--diffusion``, ``NAME_diffusion.png`` (homogeneous diffusion from the
same mask), and prints one line of metrics.

Images of any size are processed fully convolutionally in one piece (padded
by reflection to a multiple of 8, then cropped back), so there are no tile
seams. The mask keeps exactly round(D H W) pixels, those with the highest
confidence of the mask generator, so its density is the requested one.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from PIL import Image  # noqa: E402

from wgimask import data, metrics  # noqa: E402
from wgimask.evaluation import (  # noqa: E402
    SavedModelFunction,
    point_count,
    top_confidence_mask,
)
from wgimask.networks import DOWNSAMPLING  # noqa: E402

#: Exported models shipped inside the package, one training run per folder.
PRETRAINED_DIR = pathlib.Path(__file__).parent / "pretrained"

FLAGS = flags.FLAGS


class UsageError(ValueError):
    """A problem with the user's request, reported as one line."""


def _export_dir(model: pathlib.Path) -> pathlib.Path:
    for candidate in (model, model / "export"):
        if (candidate / "mask_gan").is_dir() and (candidate / "inpainter").is_dir():
            return candidate
    raise UsageError(
        f"{model} holds no exported mask GAN (expected mask_gan/ and inpainter/ "
        f"in it or in its export/ folder); train one with "
        f"`python train.py --density=D --model_dir={model}`"
    )


def trained_density(export_dir: pathlib.Path) -> float | None:
    """The density a model was trained for, from its run's config.json."""
    config = export_dir.parent / "config.json"
    if not config.exists():
        return None
    return float(json.loads(config.read_text())["density"])


def shipped_models() -> dict[float, pathlib.Path]:
    """The exported joint models shipped in the package, by training density."""
    found = {}
    for export_dir in sorted(PRETRAINED_DIR.glob("joint-*/export")):
        density = trained_density(export_dir)
        if density is not None:
            found[density] = export_dir
    return found


def choose_model(model: str | None, density: float) -> pathlib.Path:
    """The export folder to use: `model`, else the nearest shipped density.

    Raises:
        UsageError: No such model, or none shipped.
    """
    if model is not None:
        path = pathlib.Path(model)
        if not path.exists():
            raise UsageError(f"--model {model} does not exist")
        return _export_dir(path)
    shipped = shipped_models()
    if not shipped:
        raise UsageError(
            "this installation ships no trained models; train one with "
            "`python train.py --density=D --model_dir=runs/dD` and pass "
            "--model=runs/dD"
        )
    nearest = min(shipped, key=lambda d: abs(d - density))
    return shipped[nearest]


def _pad(array: np.ndarray) -> np.ndarray:
    height, width = array.shape[:2]
    pad_h = -height % DOWNSAMPLING
    pad_w = -width % DOWNSAMPLING
    return np.pad(array, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect")


def optimise_mask(
    image: np.ndarray,
    density: float,
    mask_gan: SavedModelFunction,
    inpainter: SavedModelFunction,
) -> tuple[np.ndarray, np.ndarray]:
    """Learned mask of an exact density and its learned inpainting.

    Args:
        image: (H, W, C) float image in [0, 1], any size.
        density: Fraction of pixels to keep, in (0, 1).
        mask_gan: The ``mask_gan`` SavedModel.
        inpainter: The ``inpainter`` SavedModel of the same run.

    Returns:
        The bool (H, W) mask with round(D H W) pixels and the (H, W, C)
        inpainting.
    """
    height, width = image.shape[:2]
    padded = _pad(image)[None]
    confidence = mask_gan(image=padded)["confidence"][0, :height, :width]
    mask = top_confidence_mask(confidence, point_count(density, (height, width)))
    padded_mask = np.zeros(padded.shape[1:3] + (1,), np.float32)
    padded_mask[:height, :width, 0] = mask
    inpainted = inpainter(image=padded, mask=padded_mask[None])["inpainted"]
    return mask, np.clip(inpainted[0, :height, :width], 0.0, 1.0)


def _save(array: np.ndarray, path: pathlib.Path) -> None:
    pixels = np.round(np.clip(array, 0, 1) * 255).astype(np.uint8)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    Image.fromarray(pixels).save(path)


def _metrics_text(name: str, image: np.ndarray, result: np.ndarray) -> str:
    values = metrics.all_metrics(image, result)
    return (
        f"{name} PSNR {values['psnr']:.2f} dB, MAE {values['mae']:.2f}, "
        f"SSIM {values['ssim']:.3f}"
    )


def process(
    path: pathlib.Path,
    density: float,
    mask_gan: SavedModelFunction,
    inpainter: SavedModelFunction,
    output_dir: pathlib.Path,
    diffusion: bool,
) -> str:
    """Writes the PNGs for one image and returns its metrics line."""
    image = data.load_image(path, mask_gan.channels)
    if min(image.shape[:2]) < 2:
        raise UsageError(f"{path}: image of {image.shape[1]}x{image.shape[0]} px")
    mask, learned = optimise_mask(image, density, mask_gan, inpainter)
    stem = output_dir / path.stem
    _save(mask[..., None].astype(np.float32), stem.with_name(stem.name + "_mask.png"))
    _save(image * mask[..., None], stem.with_name(stem.name + "_known.png"))
    _save(learned, stem.with_name(stem.name + "_inpainted.png"))
    height, width = mask.shape
    parts = [
        f"{path.name}: {width}x{height}, {int(mask.sum())} known pixels "
        f"({100 * mask.mean():.2f} %)",
        _metrics_text("learned", image, learned),
    ]
    if diffusion:
        from wgimask.baselines import inpaint

        smooth = np.clip(inpaint(image, mask), 0.0, 1.0)
        _save(smooth, stem.with_name(stem.name + "_diffusion.png"))
        parts.append(_metrics_text("diffusion", image, smooth))
    return " | ".join(parts)


def main(argv: list[str]) -> None:
    paths = [pathlib.Path(p) for p in argv[1:]]
    if not paths:
        raise app.UsageError("give one or more image files")
    density = FLAGS.density
    try:
        if not 0.0 < density < 1.0:
            raise UsageError(f"--density must be in (0, 1), received {density}")
        export_dir = choose_model(FLAGS.model, density)
    except UsageError as error:
        sys.exit(f"wgimask: {error}")
    trained = trained_density(export_dir)
    if trained is not None and abs(trained - density) > 1e-9:
        logging.warning(
            "the model in %s was trained for density %g; its mask confidence is "
            "used to keep the %g most confident fraction",
            export_dir,
            trained,
            density,
        )
    mask_gan = SavedModelFunction(
        export_dir / "mask_gan", ("image",), ("mask", "confidence", "inpainted")
    )
    inpainter = SavedModelFunction(
        export_dir / "inpainter", ("image", "mask"), ("inpainted",)
    )
    output_dir = pathlib.Path(FLAGS.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    failed = 0
    for path in paths:
        try:
            print(
                process(path, density, mask_gan, inpainter, output_dir, FLAGS.diffusion)
            )
        except (OSError, ValueError) as error:
            # Report and go on with the other images; the exit code says so.
            failed += 1
            print(f"wgimask: skipped {path}: {error}", file=sys.stderr)
    if failed:
        sys.exit(f"wgimask: {failed} of {len(paths)} images failed")


def _define_flags() -> None:
    # Defined when the command runs, not on import, so that importing this
    # module (tests, notebooks) never clashes with other scripts' flags.
    flags.DEFINE_float("density", 0.1, "Fraction of pixels to keep, in (0, 1).")
    flags.DEFINE_string(
        "model",
        None,
        "A training run folder (train.py --model_dir) or its export/ folder; "
        "default: the shipped model trained for the nearest density.",
    )
    flags.DEFINE_string("output_dir", "wgimask_out", "Where the PNGs go.")
    flags.DEFINE_boolean(
        "diffusion", False, "Also inpaint the same mask with homogeneous diffusion."
    )


def run() -> None:
    """Console-script entry point."""
    _define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
