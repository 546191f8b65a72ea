"""Where the `wgimask` command's time goes on one photo, and first-call costs.

    python -m benchmarks.speed.command_breakdown PHOTO [--density=0.1]
    python -m benchmarks.speed.command_breakdown PHOTO --runtime=keras  # on TensorFlow
    python -m benchmarks.speed.command_breakdown PHOTO --solver=multigrid  # one solver

Without --solver: one process times the import of wgimask, the import of the
runtime (LiteRT's interpreter by default, as the command uses for the shipped
models; with --runtime=keras TensorFlow's, as `_entry.import_tensorflow_quietly`
does it), loading the shipped model nearest the density, the learned mask,
homogeneous diffusion
(`solver="auto"`) and the learned inpainting (which refines that diffusion
inpainting for a prefilled generator, as in the command), then the mask and
inpainting again (warm).
With --solver: three diffusion solves of the same photo and mask with that
solver, so the first call's extra cost (loading compiled kernels, scipy's
set-up) shows. Run each in its own process; the CPU is named in the output.
"""

from __future__ import annotations

import argparse
import platform
import time

started = time.perf_counter()

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from wgimask import _entry, baselines, inference  # noqa: E402
from wgimask.evaluation.reports import cpu_description  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo")
    parser.add_argument("--density", type=float, default=0.1)
    parser.add_argument("--solver", default=None, help="time this solver only")
    parser.add_argument(
        "--runtime", default="litert", choices=["litert", "keras"], help="see docstring"
    )
    args = parser.parse_args()
    print(f"CPU: {cpu_description()} ({platform.machine()})")
    image = np.asarray(Image.open(args.photo).convert("RGB"), np.float32) / 255
    if args.solver is not None:
        mask = baselines.random_mask(image.shape[:2], args.density, seed=0)
        for call in range(1, 4):
            t = time.perf_counter()
            baselines.inpaint(image, mask, solver=args.solver)
            print(f"{args.solver} call {call}: {time.perf_counter() - t:.2f} s")
        return
    t0 = time.perf_counter()
    if args.runtime == "keras":
        _entry.import_tensorflow_quietly()
    else:
        import ai_edge_litert.interpreter  # noqa: F401
    t1 = time.perf_counter()
    model = inference.load(inference.choose_model(None, args.density), args.runtime)
    t2 = time.perf_counter()
    mask = model.mask(image[None], args.density)[0]
    t3 = time.perf_counter()
    # As the command: diffusion first, the prefilled generator refines it.
    diffused = np.clip(baselines.inpaint(image, mask), 0.0, 1.0)
    t4 = time.perf_counter()
    model.inpaint(image[None], mask[None], diffused[None])
    t5 = time.perf_counter()
    mask = model.mask(image[None], args.density)[0]
    t6 = time.perf_counter()
    model.inpaint(image[None], mask[None], diffused[None])
    t7 = time.perf_counter()
    print(
        f"import {t0 - started:.1f} s, {args.runtime} runtime {t1 - t0:.1f} s, "
        f"load {t2 - t1:.1f} s, mask {t3 - t2:.1f} s, "
        f"diffusion {t4 - t3:.1f} s, learned inpainting {t5 - t4:.1f} s; "
        f"again: mask {t6 - t5:.1f} s, learned inpainting {t7 - t6:.1f} s"
    )


if __name__ == "__main__":
    main()
