"""Models with the analytic prior and a prefilled generator: halftoning and tiles.

    python -m benchmarks.studies.prior_models --crops=data/pretraining/validation \
        --photos='data/pretraining/validation/*_512.png'

Two measurements for the shipped models (or ``--models``, a folder of
``joint-<D>`` runs):

* ``--crops``: on the 64 px centre crops of a folder (as ``evaluate.py
  --image_size=64``), the mean PSNR of diffusion (``mg+hd``) and of the
  learned inpainting (``mg``) from the learned density halftoned three ways:
  the networks' own phase-0 Bayer dither (what the exported ``mask_gan``
  returns), ``halftone_density(..., halftoning="ordered")`` and
  ``halftone_density`` with its default (what `wgimask.inference` does);
  and the share of the learned mask's points that the analytic mask of the
  same crop also has;
* ``--photos``: on whole photos at 10 %, the PSNR of ``mg+hd`` and ``mg`` and
  the seconds of the mask and of the learned inpainting with the learned
  corrections' tiles overlapping by a quarter and by an eighth.

The CPU is named in the output; one thread per op unless TensorFlow's
defaults are changed in the environment.
"""

from __future__ import annotations

import glob
import pathlib
import time

import numpy as np
from absl import app, flags
from PIL import Image

flags.DEFINE_string("crops", None, "Folder whose images' 64 px centre crops to use.")
flags.DEFINE_string("photos", None, "Glob of whole photos for the tile overlaps.")
flags.DEFINE_string("models", None, "Folder of joint-<D> runs (default: shipped).")
FLAGS = flags.FLAGS


def _load(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), np.float32) / 255.0


def _model(density):
    from wgimask import inference

    if FLAGS.models is None:
        return inference.load(inference.shipped_models()[density])
    return inference.load(pathlib.Path(FLAGS.models) / f"joint-{density}")


def halftonings() -> None:
    from wgimask import baselines
    from wgimask.evaluation import metrics
    from wgimask.masks.analytic import halftone_density
    from wgimask.nn.dither import binarise_confidence
    from wgimask.train import data

    paths = sorted(p for p in pathlib.Path(FLAGS.crops).iterdir() if p.is_file())
    crops = [data.center_crop(_load(p), (64, 64)) for p in paths]
    print(f"{len(crops)} crops of {FLAGS.crops}, 64 px; PSNR dB mg+hd / mg")
    for density in (0.05, 0.1, 0.2):
        model = _model(density)
        results = {"network dither": [], "ordered": [], "default": []}
        shared = []
        for crop in crops:
            confidence = model.confidence(crop[None])[0]
            masks = {
                "network dither": np.asarray(
                    binarise_confidence(
                        confidence[None, ..., None], "ordered_dither", density
                    )
                )[0, ..., 0]
                > 0.5,
                "ordered": halftone_density(
                    confidence.astype(np.float64), density, halftoning="ordered"
                ),
                "default": halftone_density(confidence.astype(np.float64), density),
            }
            for name, mask in masks.items():
                diffused = np.clip(baselines.inpaint(crop, mask), 0.0, 1.0)
                learned = model.inpaint(crop[None], mask[None], diffused[None])[0]
                results[name].append(
                    (metrics.psnr(crop, diffused), metrics.psnr(crop, learned))
                )
            analytic = baselines.analytic_mask(crop, density)
            shared.append((masks["default"] & analytic).sum() / analytic.sum())
        line = " | ".join(
            f"{name} {np.mean([r[0] for r in rows]):.2f} / "
            f"{np.mean([r[1] for r in rows]):.2f}"
            for name, rows in results.items()
        )
        print(
            f"{100 * density:g} %: {line} | points shared with the analytic mask "
            f"{100 * np.mean(shared):.1f} %"
        )


def overlaps() -> None:
    from wgimask import baselines
    from wgimask.evaluation import metrics
    from wgimask.inference import arrays as inference_arrays

    model = _model(0.1)
    default_starts = inference_arrays.tile_starts
    print("whole photos, 10 %: mg+hd / mg PSNR dB (mask s + learned inpainting s)")
    for path in sorted(glob.glob(FLAGS.photos)):
        image = _load(path)
        parts = [f"{pathlib.Path(path).name} {image.shape[1]}x{image.shape[0]}"]
        for eighths in (2, 1):

            def starts(length, tile, eighths=eighths):
                step = tile - eighths * tile // 8
                return [*range(0, max(length - tile, 0), step), max(length - tile, 0)]

            inference_arrays.tile_starts = starts
            try:
                t0 = time.perf_counter()
                mask = model.mask(image[None], 0.1)[0]
                t1 = time.perf_counter()
                diffused = np.clip(baselines.inpaint(image, mask), 0.0, 1.0)
                t2 = time.perf_counter()
                learned = model.inpaint(image[None], mask[None], diffused[None])[0]
                t3 = time.perf_counter()
            finally:
                inference_arrays.tile_starts = default_starts
            parts.append(
                f"overlap {eighths}/8: {metrics.psnr(image, diffused):.2f} / "
                f"{metrics.psnr(image, learned):.2f} ({t1 - t0:.1f} + {t3 - t2:.1f} s)"
            )
        print(" | ".join(parts), flush=True)


def main(argv):
    del argv
    from wgimask.evaluation.reports import cpu_description

    print(f"CPU: {cpu_description()}")
    if FLAGS.crops:
        halftonings()
    if FLAGS.photos:
        overlaps()


if __name__ == "__main__":
    app.run(main)
