"""wgimask: a learned sparse mask of your image and its inpainting.

    wgimask --example                         # the shipped models on a photo
    wgimask photo.jpg --density=0.05 --diffusion
    wgimask photo.jpg --model=runs/d10 --output_dir=out

For each image and density D it writes, into --output_dir:
  NAME_dD_mask.png       the mask (known pixels white), exactly round(D H W) pixels
  NAME_dD_known.png      the known pixels on black
  NAME_dD_inpainted.png  the learned inpainting
  NAME_dD_diffusion.png  homogeneous diffusion from the same mask (--diffusion)
  NAME_dD_eed.png        another operator from the same mask (--inpainting=eed;
                         also bih, cdd, ms, bpfa)
(with --mask=random: NAME_random_dD_...), prints where each file went and one
line of metrics with the seconds per image. Existing files are never replaced
without --overwrite. Images larger than the model's training crop are
processed in tiles; those of the shipped models leave no trace (see
wgimask.inference), a model with the paper's pipeline may show its tiles (a
warning says so).
"""

from __future__ import annotations

import os
import pathlib
import sys
import time

from absl import flags

from wgimask import _entry
from wgimask.diffusion import operators

# The command's own flags, apart from absl's global ones: its --help lists
# only these, and tests can run it in-process next to other scripts' flags.
FLAGS = flags.FlagValues()

#: The photo of --example: scikit-image's cat (451x300), shipped in its wheel.
EXAMPLE_PHOTO = "chelsea"

#: Mask methods of --mask: name -> whether it needs a learned model. The
#: model-free ones are those of `wgimask.masks.registry` (PS aside: NLPE's
#: start, too slow for whole photos); they load no model when only diffusion
#: inpaints.
MASK_METHODS = {
    "learned": True,  # the mask generator's round(D H W) points (`Model.mask`)
    "random": False,  # uniformly random, exactly round(D H W) pixels
    "analytic": False,  # Belhachmi et al.'s Laplacian-magnitude density, dithered
    "electrostatic": False,  # the same density, halftoned electrostatically
    "densify": False,  # grown from an analytic start where diffusion fails most
}
#: --inpainting names: the model's generator, homogeneous diffusion, and the
#: other model-free operators of `wgimask.diffusion.operators` (output kind =
#: their name).
OTHER_OPERATORS = tuple(op for op in operators.OPERATORS if op != "hd")
INPAINTINGS = ("learned", "diffusion", *OTHER_OPERATORS)


class UsageError(ValueError):
    """A problem with the user's request, reported as one line."""


def _mask(method: str, image, density: float, model, seed: int, progress=None):
    """The bool (H, W) mask of one method; exactly round(D H W) pixels."""
    if method == "learned":
        # The inference module's mask, as in evaluate.py: tile-phase ranking
        # (no tile traces) or the dither of a dithered model.
        return model.mask(image[None], density, progress=progress)[0]
    from wgimask.masks.registry import model_free_mask

    options = {"progress": progress} if method == "densify" else {}
    return model_free_mask(method, image, density, seed=seed, **options)


def output_names(path: pathlib.Path, method: str, density: float, kinds) -> dict:
    """The output file names of one image: kind -> file name."""
    tag = f"d{density:g}" if method == "learned" else f"{method}_d{density:g}"
    return {kind: f"{path.stem}_{tag}_{kind}.png" for kind in kinds}


def check_output_dir(output_dir: pathlib.Path) -> None:
    """Creates the output folder, or raises UsageError saying why it cannot."""
    problem = _entry.output_dir_problem(output_dir)
    if problem:
        raise UsageError(f"--output_dir: {problem}")


def image_header(
    path: pathlib.Path, max_pixels: int | None = None
) -> tuple[int, int, str]:
    """(height, width, Pillow mode) of an image file from its header.

    Raises:
        UsageError: For anything but a regular file (a FIFO would block the
            command), an unreadable image, or one over `max_pixels` pixels
            (its header is read, its pixels are not: decoding them could take
            more memory than the machine has).
    """
    import stat

    from PIL import Image, UnidentifiedImageError

    try:
        mode = path.stat().st_mode
    except OSError as error:
        raise UsageError(f"{path}: {error.strerror or error}") from None
    if not stat.S_ISREG(mode):
        raise UsageError(f"{path}: not a regular file")
    # Pillow's own bomb check would refuse the header before ours names the
    # size and the flag: off while only the header is read.
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with Image.open(path) as image:
            width, height = image.size
            mode = image.mode
    except Image.DecompressionBombError:
        raise UsageError(
            f"{path}: its header claims too many pixels to decode"
        ) from None
    except (OSError, UnidentifiedImageError) as error:
        raise UsageError(f"{path}: not a readable image ({error})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    if max_pixels is not None and width * height > max_pixels:
        raise UsageError(
            f"{path}: {width}x{height} px ({width * height / 1e6:.0f} Mpx) is over "
            f"--max_megapixels={max_pixels / 1e6:g}"
        )
    return height, width, mode


def input_notes(path: pathlib.Path, mode: str) -> list[str]:
    """What the command does not keep of an input, one line each."""
    notes = []
    # Pillow's alpha modes end in A (RGBA, LA, PA) or a (premultiplied).
    if mode.endswith(("A", "a")):
        notes.append(f"{path.name}: its alpha channel is ignored ({mode})")
    if mode.startswith("I;16") or mode in ("I", "F"):
        notes.append(
            f"{path.name}: read with its full precision ({mode}); the outputs "
            "are 8-bit PNGs"
        )
    return notes


def plan(paths, density, method, kinds, output_dir, overwrite, max_pixels=None):
    """Checks every image before any file is written.

    The one rule for small images: the networks and the mask need at least
    2x2 pixels and one known pixel (round(D H W) >= 1), else the whole run
    stops here; SSIM, which needs 11x11 pixels, is reported as n/a for smaller
    images while PSNR and MAE are given.

    Returns:
        (jobs, problems): jobs as (path, {kind: output path}) for readable
        images; problems as one-line messages for unreadable files.

    Raises:
        UsageError: For an image the density cannot be met on, or outputs that
            exist without --overwrite.
    """
    from wgimask import inference

    jobs, problems, existing = [], [], []
    for path in paths:
        try:
            height, width, mode = image_header(path, max_pixels)
        except UsageError as error:
            problems.append(str(error))
            continue
        for note in input_notes(path, mode):
            print(f"wgimask: {note}", file=sys.stderr)
        if min(height, width) < 2:
            raise UsageError(f"{path}: {width}x{height} px; images need at least 2x2")
        try:
            inference.check_density(density, (height, width))
        except ValueError as error:
            raise UsageError(f"--density: {path.name}: {error}") from None
        names = output_names(path, method, density, kinds)
        outputs = {kind: output_dir / name for kind, name in names.items()}
        # lexists: a link at an output name counts, even a dangling one.
        existing += [p for p in outputs.values() if os.path.lexists(p)]
        jobs.append((path, outputs))
    clashes = existing
    taken = {}
    for path, outputs in jobs:
        for out in outputs.values():
            if out in taken:
                raise UsageError(
                    f"{path} and {taken[out]} would both write {out}; rename one"
                )
            taken[out] = path
    if clashes and not overwrite:
        more = f" and {len(clashes) - 1} more" if len(clashes) > 1 else ""
        raise UsageError(
            f"{clashes[0]}{more} exist(s); pass --overwrite to replace them or "
            f"choose another --output_dir"
        )
    return jobs, problems


def tile_note(model, method: str, inpaintings, jobs) -> str | None:
    """A warning when a model's tiles may show on these images, else None.

    Only the learned corrections of models with the analytic prior and a
    prefilled generator (the shipped ones) run in tiles, on top of whole-image
    densification and diffusion, so their tiles leave no trace. A model with
    the paper's pipeline makes its mask and its whole inpainting tile by tile:
    how much the tiles show depends on how well it was trained (a short run
    shows seams and lines of mask points at the tile period).
    """
    tile = model.tile
    if tile is None:
        return None
    learned_mask = method == "learned" and model.pipeline.runs_mask_network
    mask_tiles = learned_mask and not model.prior
    inpaint_tiles = "learned" in inpaintings and not model.prefilled
    if not (mask_tiles or inpaint_tiles):
        return None
    larger = [path.name for path, _ in jobs if max(image_header(path)[:2]) > tile]
    if not larger:
        return None
    parts = " and ".join(
        part for part, on in (("mask", mask_tiles), ("inpainting", inpaint_tiles)) if on
    )
    return (
        f"{model.path} makes its {parts} in {tile} px tiles (the paper's pipeline); "
        f"on {larger[0]}{' and larger images' if len(larger) > 1 else ''} they "
        "may show at the tile period; models trained with --mask_prior=analytic "
        "--prefill=diffusion (the shipped ones) leave no tile traces"
    )


def metrics_text(name: str, image, result) -> str:
    """PSNR, MAE and SSIM of one result; SSIM n/a below its 11x11 window."""
    from wgimask.evaluation import metrics

    text = (
        f"{name} PSNR {metrics.psnr(image, result):.2f} dB, "
        f"MAE {metrics.mae_255(image, result):.2f}"
    )
    if min(image.shape[:2]) < metrics.SSIM_WINDOW:
        return (
            text + f", SSIM n/a (needs {metrics.SSIM_WINDOW}x{metrics.SSIM_WINDOW} px)"
        )
    return text + f", SSIM {metrics.ssim(image, result):.3f}"


def process(path, outputs, density, method, model, channels, seed, overwrite) -> str:
    """Computes and writes one image's outputs (all or none); returns its report."""
    import numpy as np

    from wgimask import image_files
    from wgimask.progress import Progress

    start = time.perf_counter()
    progress = Progress(path.name)
    with progress.stage("reading"):
        image = image_files.load_image(path, channels)
    with progress.stage(f"{method} mask"):
        mask = _mask(method, image, density, model, seed, progress.step)
    results = {}
    if "diffusion" in outputs:
        from wgimask import baselines

        with progress.stage("diffusion inpainting"):
            results["diffusion"] = np.clip(baselines.inpaint(image, mask), 0.0, 1.0)
    if "inpainted" in outputs:
        # A prefilled generator builds on this same diffusion inpainting.
        diffused = results["diffusion"][None] if "diffusion" in results else None
        with progress.stage("learned inpainting"):
            results["inpainted"] = model.inpaint(
                image[None], mask[None], diffused, progress=progress.step
            )[0]
    for operator in OTHER_OPERATORS:
        if operator in outputs:
            from wgimask.diffusion.operators import model_free_inpaint

            with progress.stage(f"{operator} inpainting"):
                results[operator] = model_free_inpaint(
                    operator, image, mask, progress=progress.step
                )
    order = ("inpainted", "diffusion", *OTHER_OPERATORS)
    results = {k: results[k] for k in order if k in results}
    seconds = time.perf_counter() - start
    with progress.stage("writing"):
        image_files.save_pngs(
            {
                outputs["mask"]: mask[..., None].astype(np.float32),
                outputs["known"]: image * mask[..., None],
                **{outputs[kind]: result for kind, result in results.items()},
            },
            overwrite,
        )
    height, width = mask.shape
    with progress.stage("metrics"):
        scores = [
            metrics_text("learned" if k == "inpainted" else k, image, r)
            for k, r in results.items()
        ]
    parts = [
        f"{path.name}: {width}x{height}, {int(mask.sum())} known pixels "
        f"({100 * mask.mean():.2f} %)",
        *scores,
        f"{seconds:.2f} s",
    ]
    wrote = "  wrote " + ", ".join(str(p) for p in outputs.values())
    return " | ".join(parts) + "\n" + wrote


def main(argv: list[str]) -> None:
    """Runs the command on the images named in argv."""
    started = time.perf_counter()
    # No TensorFlow here: the shipped models run on LiteRT (`wgimask.serve.lite`);
    # a model without its lite/ folder imports it quietly when loaded.
    paths = [pathlib.Path(p) for p in argv[1:]]
    try:
        if FLAGS.example:
            from wgimask import image_files

            index = image_files.EMBEDDED_PHOTO_NAMES.index(EXAMPLE_PHOTO)
            paths.append(image_files.embedded_photo_paths()[index])
        if not paths:
            raise UsageError("give one or more image files, or --example")
        density = FLAGS.density
        if not 0.0 < density < 1.0:
            raise UsageError(f"--density must be in (0, 1), received {density}")
        inpaintings = set(FLAGS.inpainting) | (
            {"diffusion"} if FLAGS.diffusion else set()
        )
        unknown = inpaintings - set(INPAINTINGS)
        if unknown:
            raise UsageError(
                f"--inpainting: unknown {', '.join(sorted(unknown))}; choose from "
                f"{', '.join(INPAINTINGS)}"
            )
        method = FLAGS.mask
        kinds = ["mask", "known"]
        kinds += ["inpainted"] * ("learned" in inpaintings)
        kinds += ["diffusion"] * ("diffusion" in inpaintings)
        kinds += [op for op in OTHER_OPERATORS if op in inpaintings]
        output_dir = pathlib.Path(FLAGS.output_dir)
        jobs, problems = plan(
            paths,
            density,
            method,
            kinds,
            output_dir,
            FLAGS.overwrite,
            int(FLAGS.max_megapixels * 1e6),
        )
        if jobs:
            # Created only when there is something to write into it.
            check_output_dir(output_dir)
        model, channels = None, 3
        if MASK_METHODS[method] or "learned" in inpaintings:
            from wgimask import inference

            model = inference.load(inference.choose_model(FLAGS.model, density))
            channels = model.channels
            trained = model.density
            if method == "learned" and trained is None:
                raise UsageError(
                    f"{model.path} is an inpainting-only model; it makes no mask "
                    f"(use --mask=random, or a joint model)"
                )
            print(
                f"model {model.path} (trained for density {trained}); "
                f"start-up {time.perf_counter() - started:.1f} s",
                flush=True,
            )
            note = tile_note(model, method, inpaintings, jobs)
            if note:
                print(f"wgimask: {note}", file=sys.stderr)
    except (UsageError, ValueError) as error:
        sys.exit(f"wgimask: {error}")
    failed = len(problems)
    for problem in problems:
        print(f"wgimask: skipped {problem}", file=sys.stderr)
    for path, outputs in jobs:
        try:
            report = process(
                path,
                outputs,
                density,
                method,
                model,
                channels,
                FLAGS.seed,
                FLAGS.overwrite,
            )
        except KeyboardInterrupt:
            # save_pngs removed this image's temporary files; earlier images
            # are complete.
            print(
                f"wgimask: interrupted at {path}; no partial file left", file=sys.stderr
            )
            sys.exit(130)
        except (OSError, ValueError) as error:
            # Report and go on with the other images; the exit code says so.
            failed += 1
            print(f"wgimask: skipped {path}: {error}", file=sys.stderr)
            continue
        # Outside the try: a closed stdout is not an image's failure.
        print(report, flush=True)
    if failed:
        sys.exit(f"wgimask: {failed} of {len(paths)} images failed")


def _define_flags() -> None:
    flags.DEFINE_float(
        "density", 0.1, "Fraction of pixels to keep, in (0, 1).", flag_values=FLAGS
    )
    flags.DEFINE_string(
        "model",
        None,
        "A training run folder (train.py --model_dir) or its export/ folder; "
        "default: the shipped model trained for the nearest density.",
        flag_values=FLAGS,
    )
    flags.DEFINE_enum(
        "mask",
        "learned",
        list(MASK_METHODS),
        "learned: the model's mask (the shipped models: the densification "
        "mask, without running their mask generator, whose correction measured "
        "no better); random: uniformly random; "
        "analytic: Laplacian-magnitude density, dithered (the model-free bar the "
        "learned masks must clear); electrostatic: that density halftoned "
        "electrostatically (better below 15 %, slower); densify: grown from a "
        "sparse analytic mask where diffusion inpainting fails most (the best "
        "model-free mask from 5 %, about 17 inpaintings); the model-free masks "
        "need no model with --inpainting=diffusion.",
        flag_values=FLAGS,
    )
    flags.DEFINE_list(
        "inpainting",
        ["learned"],
        "Inpaintings to write: learned (the model's generator), diffusion "
        "(homogeneous diffusion), eed (edge-enhancing diffusion), bih "
        "(biharmonic), cdd (curvature-driven diffusion), ms (Mumford-Shah), "
        "bpfa (beta process factor analysis; slow on whole photos).",
        flag_values=FLAGS,
    )
    flags.DEFINE_boolean(
        "diffusion",
        False,
        "Also inpaint with homogeneous diffusion (adds it to --inpainting).",
        flag_values=FLAGS,
    )
    flags.DEFINE_string(
        "output_dir", "wgimask_out", "Where the PNGs go.", flag_values=FLAGS
    )
    flags.DEFINE_boolean(
        "overwrite", False, "Replace existing output files.", flag_values=FLAGS
    )
    flags.DEFINE_float(
        "max_megapixels",
        50.0,
        "Images whose header claims more pixels are skipped (decoding them "
        "could exhaust the memory: a 100-megapixel image needs about 5 GB; a "
        "12-megapixel photo is well below).",
        lower_bound=0.0,
        flag_values=FLAGS,
    )
    flags.DEFINE_boolean(
        "example",
        False,
        f"Also process scikit-image's {EXAMPLE_PHOTO!r} photo.",
        flag_values=FLAGS,
    )
    flags.DEFINE_integer(
        "seed",
        0,
        "Seed of the model-free masks (--mask=random, analytic, electrostatic, "
        "densify).",
        flag_values=FLAGS,
    )


_define_flags()


def run(argv: list[str] | None = None) -> None:
    """Runs the command on argv; exits (SystemExit) with its status.

    The console script is `console`, which ends the process at once after
    this; tests call `run` in-process.
    """
    argv = list(sys.argv if argv is None else argv)
    if _entry.help_requested(argv):
        _entry.print_help(__doc__, FLAGS)
        sys.exit(0)
    FLAGS.unparse_flags()  # a second run in one process starts afresh
    try:
        argv = FLAGS(argv)
    except flags.Error as error:
        sys.exit(f"wgimask: {error}")
    try:
        main(argv)
    except KeyboardInterrupt:
        # Ctrl-C before or between images: nothing is half-written (outputs
        # are renamed into place whole), so one line is all there is to say.
        print("wgimask: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(0)


def console() -> None:
    """The ``wgimask`` console script: `run`, then an immediate exit.

    TensorFlow's teardown at a normal exit takes about a second when a model
    ran on the Keras runtime (`_entry.exit_at_once`).
    """
    _entry.exit_at_once(run)


if __name__ == "__main__":
    console()
