"""Where the shipped generators' correction helps: per-tile gain against smoothness.

    python -m benchmarks.studies.residual_gate data/pretraining/train/*_512.png
    python -m benchmarks.studies.residual_gate data/pretraining/validation/*_512.png
    python -m benchmarks.studies.residual_gate PHOTOS --upscale=4 --statistic=lap \
        --densities=0.1

For each photo and density (5, 10, 20 %) it makes the command's mask (the
densification mask), diffusion u and the ungated learned inpainting
(`wgimask.inference.Model` with ``gated=False``), cuts both into 64 px tiles
and records per tile a smoothness statistic of u and the squared errors of
diffusion and of the learned inpainting. The statistic is ``grad``, the
mean gradient magnitude of u's channel mean (that of
`wgimask.inference.arrays.residual_gate`), or ``lap``, the mean magnitude
of its 5-point Laplacian: off the mask u is harmonic, so that is how far
the known pixels stand from what diffusion predicts around them, which
falls with the square of an enlargement where the gradient falls with it.
It prints, per density, the gain (dB) of the learned inpainting over
diffusion in each tenth of the tiles sorted by the statistic, and the total
gain without a gate and with a hard gate at several thresholds of either
statistic; then per
photo the gain without and with a hard cut at ``--cut`` (for ``grad`` by
default the midpoint of the gate's ramp). ``--upscale=k`` enlarges every
photo k times (Lanczos) first, which makes it as smooth at the scale of the
mask points as a camera-resolution photo. The CPU does not matter here (no
timings).
"""

from __future__ import annotations

import pathlib

import numpy as np
from absl import app, flags

from wgimask import baselines, image_files, inference
from wgimask.masks.densification import densification_mask

flags.DEFINE_list("ramp", ["0.004", "0.006"], "The gate's ramp to report.")
flags.DEFINE_enum("statistic", "grad", ["grad", "lap"], "Smoothness statistic.")
flags.DEFINE_float("cut", None, "Per-photo hard cut (default: the ramp's midpoint).")
flags.DEFINE_integer("upscale", 1, "Enlarge every photo this many times first.")
flags.DEFINE_list("densities", ["0.05", "0.1", "0.2"], "Mask densities.")
FLAGS = flags.FLAGS
TILE = 64
CUTS = {
    "grad": [0.0, 0.002, 0.004, 0.005, 0.006, 0.008, 0.01, 0.015, 0.02],
    "lap": [0.0, 0.0005, 0.001, 0.002, 0.003, 0.004, 0.006, 0.008, 0.012],
}


def load(path: pathlib.Path) -> np.ndarray:
    """The photo as the command reads it, enlarged ``--upscale`` times."""
    image = image_files.load_image(path, 3)
    if FLAGS.upscale == 1:
        return image
    from PIL import Image

    pixels = Image.fromarray(np.round(image * 255).astype(np.uint8))
    size = (pixels.width * FLAGS.upscale, pixels.height * FLAGS.upscale)
    return np.asarray(pixels.resize(size, Image.LANCZOS), np.float64) / 255.0


def tile_rows(path: pathlib.Path, density: float) -> list[dict]:
    image = load(path)
    model = inference.load(inference.choose_model(None, density))
    model.gated = False
    mask = densification_mask(image, density)
    u = np.clip(baselines.inpaint(image, mask), 0.0, 1.0).astype(np.float32)
    learned = model.inpaint(image[None], mask[None], u[None])[0]
    grey = u.mean(axis=2)
    gy, gx = np.gradient(grey)
    gradient = np.hypot(gx, gy)
    laplacian = np.zeros_like(grey)
    laplacian[1:-1, 1:-1] = np.abs(
        4 * grey[1:-1, 1:-1]
        - grey[:-2, 1:-1]
        - grey[2:, 1:-1]
        - grey[1:-1, :-2]
        - grey[1:-1, 2:]
    )
    rows = []
    height, width = mask.shape
    for y in range(0, height - TILE + 1, TILE):
        for x in range(0, width - TILE + 1, TILE):
            window = (slice(y, y + TILE), slice(x, x + TILE))
            rows.append(
                dict(
                    photo=path.name,
                    grad=float(gradient[window].mean()),
                    lap=float(laplacian[window].mean()),
                    diffusion=float(((u[window] - image[window]) ** 2).sum()),
                    learned=float(((learned[window] - image[window]) ** 2).sum()),
                )
            )
    return rows


def gain(diffusion, learned) -> str:
    return f"{10 * np.log10(np.sum(diffusion) / np.sum(learned)):+.2f}"


def main(argv: list[str]) -> None:
    photos = [pathlib.Path(p) for p in argv[1:]]
    if not photos:
        raise app.UsageError("give one or more photos")
    if FLAGS.upscale < 1:
        raise app.UsageError(f"--upscale must be >= 1, got {FLAGS.upscale}")
    cut = FLAGS.cut
    if cut is None:
        if FLAGS.statistic != "grad":
            raise app.UsageError("--statistic=lap needs --cut")
        cut = float(np.mean([float(v) for v in FLAGS.ramp]))
    for density in (float(d) for d in FLAGS.densities):
        rows = [r for p in photos for r in tile_rows(p, density)]
        g = np.array([r[FLAGS.statistic] for r in rows])
        ed = np.array([r["diffusion"] for r in rows])
        el = np.array([r["learned"] for r in rows])
        edges = np.quantile(g, np.linspace(0, 1, 11))
        tenth = np.clip(np.digitize(g, edges[1:-1]), 0, 9)
        print(
            f"D={density:g}, x{FLAGS.upscale}, {FLAGS.statistic}: {len(rows)} tiles; "
            "gain (dB) per tenth, smoothest 1st:"
        )
        print("  " + " ".join(gain(ed[tenth == i], el[tenth == i]) for i in range(10)))
        for name, cuts in CUTS.items():
            v = np.array([r[name] for r in rows])
            print(
                f"  {name} gated at "
                + ", ".join(
                    f"{c:g}: {gain(ed, np.where(v >= c, el, ed))} "
                    f"({(v >= c).mean():.0%} on)"
                    for c in cuts
                )
            )
        for photo in sorted({r["photo"] for r in rows}):
            pick = np.array([r["photo"] == photo for r in rows])
            print(
                f"  {photo}: ungated {gain(ed[pick], el[pick])}, gated "
                f"{gain(ed[pick], np.where(g[pick] >= cut, el[pick], ed[pick]))}"
            )


if __name__ == "__main__":
    app.run(main)
