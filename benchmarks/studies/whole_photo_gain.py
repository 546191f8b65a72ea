"""Learned inpainting against diffusion on whole photos, per photo, for runs.

    python -m benchmarks.studies.whole_photo_gain --density=0.1 \
        --runs=wgimask/pretrained/joint-0.1,runs/residual/joint-0.1 \
        data/pretraining/validation/*_512.png

For each photo: the command's mask (the densification mask, seed 0), the
PSNR of homogeneous diffusion from it, and for every run the learned
inpainting's PSNR minus diffusion's, without and with the residual gate
(`wgimask.inference.Model.gated`). No timings (the CPU does not matter).
"""

from __future__ import annotations

import pathlib

import numpy as np
from absl import app, flags

from wgimask import baselines, image_files, inference
from wgimask.evaluation import metrics
from wgimask.masks.densification import densification_mask

flags.DEFINE_float("density", 0.1, "Mask density.")
flags.DEFINE_list("runs", None, "Run folders (or exports) to compare.")
FLAGS = flags.FLAGS


def main(argv: list[str]) -> None:
    photos = [pathlib.Path(p) for p in argv[1:]]
    if not photos or not FLAGS.runs:
        raise app.UsageError("give --runs and one or more photos")
    models = [inference.load(run) for run in FLAGS.runs]
    print("photo | diffusion PSNR | per run: ungated / gated gain (dB)")
    for path in photos:
        image = image_files.load_image(path, 3)
        mask = densification_mask(image, FLAGS.density)
        diffused = np.clip(baselines.inpaint(image, mask), 0.0, 1.0).astype(np.float32)
        base = metrics.psnr(image, diffused)
        gains = []
        for model in models:
            for gated in (False, True):
                model.gated = gated
                learned = model.inpaint(image[None], mask[None], diffused[None])[0]
                gains.append(f"{metrics.psnr(image, learned) - base:+.2f}")
        pairs = [" / ".join(gains[i : i + 2]) for i in range(0, len(gains), 2)]
        print(f"{path.name} | {base:.2f} | " + " | ".join(pairs), flush=True)


if __name__ == "__main__":
    app.run(main)
