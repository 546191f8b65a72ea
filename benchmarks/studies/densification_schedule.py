"""How many densification steps a large photo needs: time against quality.

    python -m benchmarks.studies.densification_schedule PHOTO ... \
        [--densities=0.05,0.1,0.2] [--settings=0.1:0.15,0.1:0.3,0.2:0.5]

Each setting is START:GROWTH of `wgimask.masks.densification_mask` (the
start's fraction of the points and the growth per step; the defaults are
0.1:0.15, about 17 inpaintings), optionally followed by ``:grey``: the mask
is then grown on the photo's channel mean (one channel to solve per step
instead of three), and judged, as every setting, by colour diffusion; and
by ``:rSPACINGS``, the suppression radius in mean point spacings (default
`RADIUS_SPACINGS`, 0.6). For
every photo, density and setting it prints the number of ranking
inpaintings, the seconds of the mask and the PSNR of homogeneous diffusion
from it (the compiled multigrid to 1e-6), and the PSNR difference to the
first setting. Photos are read as the command reads them
(`wgimask.image_files.load_image`, colour). The CPU is named in the output;
run it on an otherwise idle machine for timings.
"""

from __future__ import annotations

import pathlib
import time

import numpy as np
from absl import app, flags

from wgimask import baselines, image_files
from wgimask.devices import cpu_description
from wgimask.diffusion import inpainting
from wgimask.evaluation import metrics
from wgimask.masks.densification import (
    RADIUS_SPACINGS,
    densification_mask,
    densification_radius,
)

flags.DEFINE_list("densities", ["0.05", "0.1", "0.2"], "Mask densities.")
flags.DEFINE_list(
    "settings",
    ["0.1:0.15", "0.1:0.3", "0.2:0.5"],
    "START:GROWTH[:grey][:rSPACINGS] settings.",
)
FLAGS = flags.FLAGS


def _setting(text: str) -> tuple[float, float, bool, float]:
    """START:GROWTH[:grey][:rSPACINGS] as (start, growth, grey, spacings)."""
    parts = text.split(":")
    grey, spacings = False, RADIUS_SPACINGS
    try:
        start, growth = float(parts[0]), float(parts[1])
        for part in parts[2:]:
            if part == "grey" and not grey:
                grey = True
            elif part.startswith("r"):
                spacings = float(part[1:])
            else:
                raise ValueError(part)
    except (IndexError, ValueError):
        raise app.UsageError(
            f"--settings: {text!r} is not START:GROWTH[:grey][:rSPACINGS]"
        ) from None
    return start, growth, grey, spacings


def main(argv: list[str]) -> None:
    photos = [pathlib.Path(p) for p in argv[1:]]
    if not photos:
        raise app.UsageError("give one or more photos")
    settings = [_setting(setting) for setting in FLAGS.settings]
    print(f"CPU: {cpu_description()}")
    solves = []
    solve = inpainting.solve_checked

    def counted(*args, **kwargs):
        solves.append(1)
        return solve(*args, **kwargs)

    # densification_mask looks the solver up in its module on every call.
    import wgimask.masks.densification as densification

    densification.solve_checked = counted
    for path in photos:
        image = image_files.load_image(path, 3)
        height, width = image.shape[:2]
        for density in (float(d) for d in FLAGS.densities):
            first = None
            for start, growth, grey, spacings in settings:
                solves.clear()
                t = time.perf_counter()
                source = image.mean(axis=2, keepdims=True) if grey else image
                radius = densification_radius(density, spacings)
                mask = densification_mask(
                    source, density, start=start, growth=growth, radius=radius
                )
                seconds = time.perf_counter() - t
                u = np.clip(baselines.inpaint(image, mask), 0.0, 1.0)
                psnr = metrics.psnr(image, u)
                first = psnr if first is None else first
                print(
                    f"{path.name} {width}x{height} D={density:g} "
                    f"start={start:g} growth={growth:g} radius={radius}"
                    f"{' grey' if grey else ''}: {len(solves)} "
                    f"inpaintings, {seconds:.1f} s, PSNR {psnr:.3f} dB "
                    f"({psnr - first:+.3f})",
                    flush=True,
                )


if __name__ == "__main__":
    app.run(main)
