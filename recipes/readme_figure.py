"""The README's figure: mask, learned inpainting and diffusion of the example.

    python recipes/readme_figure.py [--density=0.1] [--output=FIGURE.jpg]

Runs what ``wgimask --example --diffusion`` runs (the shipped model nearest
the density on scikit-image's cat photo, through `wgimask.inference`) and
puts the mask, the learned inpainting and the diffusion inpainting side by
side in one JPEG.
"""

from __future__ import annotations

import numpy as np
from absl import app, flags
from PIL import Image

flags.DEFINE_float("density", 0.1, "Mask density.")
flags.DEFINE_string("output", "docs/wgimask_chelsea_10pct.jpg", "The figure.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from skimage import data

    from wgimask import baselines, inference

    image = data.chelsea().astype(np.float32) / 255.0
    model = inference.load(inference.choose_model(None, FLAGS.density))
    mask = model.mask(image[None], FLAGS.density)[0]
    diffused = np.clip(baselines.inpaint(image, mask), 0.0, 1.0)
    learned = model.inpaint(image[None], mask[None], diffused[None])[0]
    shown = np.repeat(mask[..., None].astype(np.float32), 3, axis=-1)
    panel = np.concatenate([shown, learned, diffused], axis=1)
    Image.fromarray(np.round(panel * 255).astype(np.uint8)).save(
        FLAGS.output, quality=90
    )
    print(f"wrote {FLAGS.output} ({model.path.name}, {int(mask.sum())} points)")


if __name__ == "__main__":
    app.run(main)
