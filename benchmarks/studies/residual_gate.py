"""Where the shipped generators' correction helps: per-tile gain against smoothness.

    python -m benchmarks.studies.residual_gate data/pretraining/train/*_512.png
    python -m benchmarks.studies.residual_gate data/pretraining/validation/*_512.png

For each photo and density (5, 10, 20 %) it makes the command's mask (the
densification mask), diffusion u and the ungated learned inpainting
(`wgimask.inference.Model` with ``gated=False``), cuts both into 64 px tiles
and records per tile the mean gradient magnitude of u (the statistic of
`wgimask.inference.arrays.residual_gate`) and the squared errors of
diffusion and of the learned inpainting. It prints, per density, the gain
(dB) of the learned inpainting over diffusion in each tenth of the tiles
sorted by the statistic, and the total gain without a gate and with a hard
gate at several thresholds; then per photo the gain without and with the
gate's ramp (the thresholds' midpoint as a hard cut). The CPU does not
matter here (no timings).
"""

from __future__ import annotations

import pathlib

import numpy as np
from absl import app, flags

from wgimask import baselines, image_files, inference
from wgimask.masks.densification import densification_mask

flags.DEFINE_list("ramp", ["0.004", "0.006"], "The gate's ramp to report.")
FLAGS = flags.FLAGS
TILE = 64
DENSITIES = (0.05, 0.1, 0.2)


def tile_rows(path: pathlib.Path, density: float) -> list[dict]:
    image = image_files.load_image(path, 3)
    model = inference.load(inference.choose_model(None, density))
    model.gated = False
    mask = densification_mask(image, density)
    u = np.clip(baselines.inpaint(image, mask), 0.0, 1.0).astype(np.float32)
    learned = model.inpaint(image[None], mask[None], u[None])[0]
    gy, gx = np.gradient(u.mean(axis=2))
    gradient = np.hypot(gx, gy)
    rows = []
    height, width = mask.shape
    for y in range(0, height - TILE + 1, TILE):
        for x in range(0, width - TILE + 1, TILE):
            window = (slice(y, y + TILE), slice(x, x + TILE))
            rows.append(
                dict(
                    photo=path.name,
                    grad=float(gradient[window].mean()),
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
    cut = float(np.mean([float(v) for v in FLAGS.ramp]))
    for density in DENSITIES:
        rows = [r for p in photos for r in tile_rows(p, density)]
        g = np.array([r["grad"] for r in rows])
        ed = np.array([r["diffusion"] for r in rows])
        el = np.array([r["learned"] for r in rows])
        edges = np.quantile(g, np.linspace(0, 1, 11))
        tenth = np.clip(np.digitize(g, edges[1:-1]), 0, 9)
        print(f"D={density:g}: {len(rows)} tiles; gain (dB) per tenth, smoothest 1st:")
        print("  " + " ".join(gain(ed[tenth == i], el[tenth == i]) for i in range(10)))
        cuts = [0.0, 0.002, 0.004, 0.005, 0.006, 0.008, 0.01, 0.015, 0.02]
        print(
            "  gated at "
            + ", ".join(
                f"{c:g}: {gain(ed, np.where(g >= c, el, ed))} "
                f"({(g >= c).mean():.0%} on)"
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
