"""`wgimask`: a learned sparse mask and its inpainting for your own images.

    wgimask photo.jpg --density=0.1 --model=runs/d10 --output_dir=out --diffusion

For each image it writes ``NAME_mask.png`` (known pixels white), ``NAME_known.png``
(the known pixels on black), ``NAME_inpainted.png`` (the learned inpainting)
and, with ``--diffusion``, ``NAME_diffusion.png`` (homogeneous diffusion from the
same mask), and prints one line of metrics.

Images of any size are processed in half-overlapping tiles of the model's
training crop size, blended with tent weights so that no seams show (a model
trained on small crops applied to a whole large image in one piece gives far
worse results). The mask keeps exactly round(D H W) pixels, those with the highest
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


DEFAULT_TILE = 64
# Tiles per call of a SavedModel: bounds memory on large images.
TILE_BATCH = 256


def training_size(export_dir: pathlib.Path) -> int:
    """The crop size a model was trained on (its tile size here)."""
    config = export_dir.parent / "config.json"
    if config.exists():
        size = json.loads(config.read_text()).get("image_size")
        if isinstance(size, int) and size % DOWNSAMPLING == 0:
            return size
    return DEFAULT_TILE


def _starts(length: int, tile: int) -> list[int]:
    # Half-overlapping windows, the last one flush with the border.
    step = tile // 2
    starts = list(range(0, max(length - tile, 0), step))
    return [*starts, max(length - tile, 0)]


def _window(tile: int) -> np.ndarray:
    # Tent weights: each pixel is a blend dominated by the tile whose centre
    # is nearest, which is what removes seams between tiles.
    ramp = np.minimum(np.arange(tile) + 0.5, tile - np.arange(tile) - 0.5)
    return np.outer(ramp, ramp)[..., None].astype(np.float32)


def run_tiled(function, tile: int, output: str, **arrays: np.ndarray) -> np.ndarray:
    """Runs a SavedModel over half-overlapping tiles and blends the results.

    The networks were trained on crops of `tile` pixels; applying them to the
    whole of a much larger image puts them far outside that regime (their
    outputs degrade badly), so large images are cut into such crops.

    Args:
        function: A `SavedModelFunction`.
        tile: Tile side, the model's training crop size.
        output: The output key to blend.
        **arrays: (H, W, C) inputs of equal height and width.

    Returns:
        The blended (H, W, C_out) output.
    """
    height, width = next(iter(arrays.values())).shape[:2]
    pad_h, pad_w = max(tile - height, 0), max(tile - width, 0)
    mode = "reflect" if pad_h < height and pad_w < width else "edge"
    padded = {
        k: np.pad(v, ((0, pad_h), (0, pad_w), (0, 0)), mode=mode)
        for k, v in arrays.items()
    }
    full_h, full_w = height + pad_h, width + pad_w
    corners = [(y, x) for y in _starts(full_h, tile) for x in _starts(full_w, tile)]
    window = _window(tile)
    total = None
    weight = np.zeros((full_h, full_w, 1), np.float32)
    for first in range(0, len(corners), TILE_BATCH):
        chunk = corners[first : first + TILE_BATCH]
        feeds = {
            k: np.stack([v[y : y + tile, x : x + tile] for y, x in chunk])
            for k, v in padded.items()
        }
        result = function(**feeds)[output]
        if total is None:
            total = np.zeros((full_h, full_w, result.shape[-1]), np.float32)
        for (y, x), values in zip(chunk, result, strict=True):
            total[y : y + tile, x : x + tile] += window * values
            weight[y : y + tile, x : x + tile] += window
    return (total / weight)[:height, :width]


def optimise_mask(
    image: np.ndarray,
    density: float,
    mask_gan: SavedModelFunction,
    inpainter: SavedModelFunction,
    tile: int = DEFAULT_TILE,
) -> tuple[np.ndarray, np.ndarray]:
    """Learned mask of an exact density and its learned inpainting.

    Args:
        image: (H, W, C) float image in [0, 1], any size.
        density: Fraction of pixels to keep, in (0, 1).
        mask_gan: The ``mask_gan`` SavedModel.
        inpainter: The ``inpainter`` SavedModel of the same run.
        tile: Tile side (the model's training crop size).

    Returns:
        The bool (H, W) mask with round(D H W) pixels and the (H, W, C)
        inpainting.
    """
    height, width = image.shape[:2]
    confidence = run_tiled(mask_gan, tile, "confidence", image=image)
    mask = top_confidence_mask(confidence, point_count(density, (height, width)))
    known = mask[..., None].astype(np.float32)
    inpainted = run_tiled(inpainter, tile, "inpainted", image=image, mask=known)
    # Blending cannot move known pixels (every tile keeps them), but make it exact.
    inpainted = np.where(mask[..., None], image, inpainted)
    return mask, np.clip(inpainted, 0.0, 1.0)


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
    tile: int = DEFAULT_TILE,
) -> str:
    """Writes the PNGs for one image and returns its metrics line."""
    image = data.load_image(path, mask_gan.channels)
    if min(image.shape[:2]) < 2:
        raise UsageError(f"{path}: image of {image.shape[1]}x{image.shape[0]} px")
    mask, learned = optimise_mask(image, density, mask_gan, inpainter, tile)
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
                process(
                    path,
                    density,
                    mask_gan,
                    inpainter,
                    output_dir,
                    FLAGS.diffusion,
                    training_size(export_dir),
                )
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
