"""Does the shipped mask generators' learned density beat the analytic one
under electrostatic halftoning too?

    python -m benchmarks.studies.learned_density_halftoning \\
        --crops=data/pretraining/validation

For each density, the shipped model nearest it gives its confidence (the
analytic density times its learned correction, `wgimask.inference`) on the
64 px centre crops; that density and the analytic density with the models'
prior settings (sigma `auto_sigma`, exponent 0.75) are halftoned as
inference does (ordered dither below 15 %, Floyd-Steinberg from 15 %) and
electrostatically (`wgimask.masks.electrostatic`). Printed: the mean
PSNR of homogeneous diffusion from each mask. One thread is enough.
"""

from __future__ import annotations

import argparse
import glob
import os
import platform

import numpy as np

from wgimask import baselines, inference
from wgimask.evaluation import metrics
from wgimask.evaluation.reports import cpu_description
from wgimask.image_files import load_image
from wgimask.masks import analytic
from wgimask.masks.electrostatic import electrostatic_halftone
from wgimask.train.data import center_crop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crops", default="data/pretraining/validation")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--densities", default="0.05,0.1,0.2")
    args = parser.parse_args()
    print(f"CPU: {cpu_description()} ({platform.machine()})")
    files = sorted(glob.glob(os.path.join(args.crops, "*.png")))
    if not files:
        raise SystemExit(f"no PNG files in {args.crops}")
    images = np.stack([center_crop(load_image(f, 3), args.size) for f in files])
    for density in (float(d) for d in args.densities.split(",")):
        model = inference.load(inference.choose_model(None, density))
        learned = model.confidence(images.astype(np.float32))
        psnrs = []
        for image, confidence in zip(images, learned, strict=True):
            count = analytic.target_count(density, confidence.size)
            prior = analytic.analytic_density(
                image, sigma=analytic.auto_sigma(density), exponent=0.75
            )
            row = []
            for rho in (prior, confidence.astype(np.float64)):
                for mask in (
                    analytic.halftone_density(rho, density),
                    electrostatic_halftone(
                        analytic._scale_to_mean(rho, density), count
                    ),
                ):
                    inpainted = np.clip(baselines.inpaint(image, mask), 0.0, 1.0)
                    row.append(metrics.psnr(image, inpainted))
            psnrs.append(row)
        a, a_es, m, m_es = np.mean(psnrs, axis=0)
        print(
            f"D={density:g} ({len(files)} crops, PSNR dB): analytic density "
            f"{a:.2f} (inference's halftoning) / {a_es:.2f} (electrostatic); "
            f"learned density {m:.2f} / {m_es:.2f}"
        )


if __name__ == "__main__":
    main()
