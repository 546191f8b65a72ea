"""Densification with tiled ranking solves against whole-image ones.

    python -m benchmarks.studies.tiled_ranking PHOTO ... [--densities=0.05,0.1]

For every photo and density it prints the seconds of the densification mask
and the PSNR of homogeneous diffusion from it (the compiled multigrid to
1e-6), once with every warm-started ranking solve on the whole image and
once in overlapping tiles (`wgimask.diffusion.tiled`), whatever the photo's
size (`densification.TILED_PIXELS` is set for each run), and how many of
the masks' points differ. Photos are read as the command reads them
(colour). The CPU is named in the output; run it on an otherwise idle
machine for timings.
"""

from __future__ import annotations

import pathlib
import time

import numpy as np
from absl import app, flags

from wgimask import baselines, image_files
from wgimask.devices import cpu_description
from wgimask.evaluation import metrics
from wgimask.masks import densification

flags.DEFINE_list("densities", ["0.05", "0.1"], "Mask densities.")
FLAGS = flags.FLAGS


def main(argv: list[str]) -> None:
    photos = [pathlib.Path(p) for p in argv[1:]]
    if not photos:
        raise app.UsageError("give one or more photos")
    print(f"CPU: {cpu_description()}")
    densification.densification_mask(np.zeros((64, 64, 3)), 0.1)  # load kernels
    for path in photos:
        image = image_files.load_image(path, 3)
        height, width = image.shape[:2]
        for density in (float(d) for d in FLAGS.densities):
            masks, psnrs = [], []
            for name, pixels in (("whole", 1 << 62), ("tiled", 0)):
                densification.TILED_PIXELS = pixels
                t = time.perf_counter()
                mask = densification.densification_mask(image, density)
                seconds = time.perf_counter() - t
                u = np.clip(baselines.inpaint(image, mask), 0.0, 1.0)
                masks.append(mask)
                psnrs.append(metrics.psnr(image, u))
                print(
                    f"{path.name} {width}x{height} D={density:g} {name}: "
                    f"{seconds:.1f} s, PSNR {psnrs[-1]:.3f} dB",
                    flush=True,
                )
            moved = int(np.count_nonzero(masks[0] & ~masks[1]))
            print(
                f"{path.name} D={density:g}: tiled - whole {psnrs[1] - psnrs[0]:+.3f} "
                f"dB, {moved} of {int(masks[0].sum())} points elsewhere",
                flush=True,
            )


if __name__ == "__main__":
    app.run(main)
