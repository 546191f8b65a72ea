"""Where the `wgimask` command's time and memory go on one photo, stage by stage.

    python -m benchmarks.speed.command_breakdown PHOTO [--density=0.1]
    python -m benchmarks.speed.command_breakdown PHOTO --mask=densify --no_learned
    python -m benchmarks.speed.command_breakdown PHOTO --solver=multigrid  # one solver

Without --solver: the stages of ``wgimask PHOTO --diffusion`` (or, with
``--mask=densify --no_learned``, of ``wgimask PHOTO --mask=densify
--inpainting=diffusion``) in one process, through the functions the command
calls: start-up (imports), decoding, loading the shipped model, the mask,
diffusion, the learned inpainting, writing the four PNGs and the metrics.
Each stage prints its wall time and the peak resident memory of the process
during it (the kernel's high-water mark, reset before each stage through
/proc/self/clear_refs; Linux only); the last line is the whole run's peak.
With --solver: three diffusion solves of the same photo and mask with that
solver, so the first call's extra cost (loading compiled kernels) shows.
The CPU is named in the output; run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import pathlib
import platform
import tempfile
import time

started = time.perf_counter()

import numpy as np  # noqa: E402

from wgimask import baselines, image_files, inference  # noqa: E402
from wgimask.devices import cpu_description  # noqa: E402
from wgimask.evaluation import metrics  # noqa: E402
from wgimask.masks.registry import model_free_mask  # noqa: E402


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as out:
            out.write("5")
        return True
    except OSError:
        return False


def _peak_gb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1e6
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo")
    parser.add_argument("--density", type=float, default=0.1)
    parser.add_argument("--mask", default="learned", choices=["learned", "densify"])
    parser.add_argument("--no_learned", action="store_true")
    parser.add_argument("--solver", default=None, help="time this solver only")
    args = parser.parse_args()
    print(f"CPU: {cpu_description()} ({platform.machine()})")
    path = pathlib.Path(args.photo)
    if args.solver is not None:
        image = image_files.load_image(path, 3)
        mask = baselines.random_mask(image.shape[:2], args.density, seed=0)
        for call in range(1, 4):
            t = time.perf_counter()
            baselines.inpaint(image, mask, solver=args.solver)
            print(f"{args.solver} call {call}: {time.perf_counter() - t:.2f} s")
        return
    print(f"start-up (imports): {time.perf_counter() - started:.1f} s")
    whole = time.perf_counter()
    overall = 0.0

    def stage(name, function):
        nonlocal overall
        _reset_peak()
        t = time.perf_counter()
        result = function()
        peak = _peak_gb()
        overall = max(overall, peak)
        print(f"{name}: {time.perf_counter() - t:.1f} s, peak {peak:.2f} GB")
        return result

    image = stage("decode", lambda: image_files.load_image(path, 3))
    model = None
    if args.mask == "learned" or not args.no_learned:
        model = stage(
            "load model",
            lambda: inference.load(inference.choose_model(None, args.density)),
        )
    if args.mask == "learned":
        mask = stage("mask", lambda: model.mask(image[None], args.density)[0])
    else:
        mask = stage(
            "mask", lambda: model_free_mask("densify", image, args.density, seed=0)
        )
    results = {}
    results["diffusion"] = stage(
        "diffusion", lambda: np.clip(baselines.inpaint(image, mask), 0.0, 1.0)
    )
    if not args.no_learned:
        results["inpainted"] = stage(
            "learned inpainting",
            lambda: model.inpaint(image[None], mask[None], results["diffusion"][None])[
                0
            ],
        )
    with tempfile.TemporaryDirectory() as folder:
        out = pathlib.Path(folder)
        stage(
            "write PNGs",
            lambda: image_files.save_pngs(
                {
                    out / "mask.png": mask[..., None].astype(np.float32),
                    out / "known.png": image * mask[..., None],
                    **{out / f"{k}.png": v for k, v in results.items()},
                },
                True,
            ),
        )
    stage(
        "metrics",
        lambda: [
            (metrics.psnr(image, r), metrics.mae_255(image, r), metrics.ssim(image, r))
            for r in results.values()
        ],
    )
    print(
        f"total after start-up: {time.perf_counter() - whole:.1f} s, "
        f"peak {overall:.2f} GB"
    )


if __name__ == "__main__":
    main()
