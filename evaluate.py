r"""Reproduces the paper's comparisons (Tables 2-4, Figs. 2-3) on any image set.

Example:
    python evaluate.py --image_size=64 --methods=random+hd,ps+hd,ps+nlpe+hd \
        --max_images=4

Writes results.csv, per_image.csv, results.md, config.json and figures/ into
--output_dir and prints the Markdown tables. Learned methods run through
wgimask.inference, exactly as the wgimask command does. Images smaller than
the crop are upscaled, named in a warning, marked upscaled=true in the CSVs
and averaged apart from the others. See docs/evaluation.md.
"""

from __future__ import annotations

import sys

from absl import flags

from wgimask import _entry, evaluation

FLAGS = flags.FLAGS

flags.DEFINE_string(
    "data_dir", None, "Folder of images to evaluate; default: the embedded photos."
)
flags.DEFINE_integer(
    "image_size", 64, "Side of the centre crop (the paper uses 64 and 128)."
)
flags.DEFINE_enum(
    "channels",
    "auto",
    ["auto", "1", "3"],
    "1 = grey, 3 = colour; auto = the learned models' channel count, else colour.",
)
flags.DEFINE_list("densities", ["0.05", "0.1", "0.2"], "Target mask densities.")
flags.DEFINE_list(
    "methods",
    ["random+hd", "ps+hd", "ps+nlpe+hd"],
    "Methods <mask>+<operator>; masks: random, ps, ps+nlpe, mg, analytic, "
    "electrostatic, densify, analytic+nlpe, electrostatic+nlpe, densify+nlpe, "
    "random+nlpe, mg+nlpe, netm (Dai et al.'s NetM, DIR/netm-<D>) "
    "(+nlpe12: 12 NLPE cycles for that method, whatever --nlpe_cycles says); "
    "operators: hd (homogeneous diffusion), eed (edge-enhancing diffusion), "
    "bih (biharmonic), cdd (curvature-driven diffusion), ms (Mumford-Shah), "
    "bpfa (beta process factor analysis), wgain (inpainting-only WGAN), mg "
    "(the joint generator), nete (Dai et al.'s NetE, DIR/nete-<D>, 64 px); "
    "'mg' alone = mask GAN with its own generator; 'table2' = the paper's "
    "Table 2 (random+nete, random+wgain, netm+nete/cdd/bpfa/ms, mg) and its "
    "operators on densify and ps+nlpe masks, with a report in its layout. E.g. "
    "random+wgain,mg,mg+hd,random+hd,ps+hd,ps+nlpe+hd.",
)
flags.DEFINE_string(
    "models",
    None,
    "Folder with joint-<D>/export/{mask_gan,inpainter}/ per density and "
    "inpaint/export/inpainter/ (needed by the learned methods).",
)
flags.DEFINE_string("output_dir", "eval_out", "Where reports and figures go.")
flags.DEFINE_bool(
    "overwrite",
    False,
    "Replace an earlier evaluation in --output_dir (its figures are removed).",
)
flags.DEFINE_integer("max_images", None, "Evaluate at most this many images.")
flags.DEFINE_integer("seed", 0, "Seed of the random mask methods.")
flags.DEFINE_enum(
    "mg_density",
    "exact",
    list(evaluation.MG_DENSITY_MODES),
    "exact: keep the round(D*N) most confident mask-GAN pixels; raw: the mask "
    "GAN's mask as produced.",
)
flags.DEFINE_enum(
    "netm_masks",
    "sampled",
    list(evaluation.NETM_MASK_MODES),
    "How NetM's map becomes a mask: sampled (round(D*N) pixels drawn with the "
    "map's chances), bernoulli (Dai's; the density only in expectation) or "
    "topk (the round(D*N) largest values).",
)
flags.DEFINE_float(
    "ps_candidate_fraction",
    None,
    "PS: fraction of mask points drawn as removal candidates per step "
    "(default: the baselines' default).",
)
flags.DEFINE_float(
    "ps_removal_fraction",
    None,
    "PS: fraction of the candidates removed per step (default: the baselines' "
    "default).",
)
flags.DEFINE_float(
    "nlpe_cycles",
    5,
    "Non-local pixel exchange cycles; fractions allowed (0.25 = a quarter "
    "cycle, |mask| / 4 swaps).",
)
flags.DEFINE_integer(
    "batch_size", 32, "Batch size for the batched runtime of learned methods."
)
flags.DEFINE_bool("figures", True, "Write one comparison figure per image.")
flags.DEFINE_enum(
    "learned_device",
    "auto",
    list(evaluation.LEARNED_DEVICES),
    "Where learned models run: auto (a GPU if there is one) or cpu.",
)
flags.DEFINE_bool("progress", True, "Show a progress bar.")


def _densities(values: list[str]) -> tuple[float, ...]:
    """Parses --densities; exits with a one-line message on bad numbers."""
    try:
        return tuple(float(v) for v in values)
    except ValueError:
        sys.exit(f"evaluate.py: --densities: not a list of numbers: {values}")


def main(argv: list[str]) -> None:
    """Validates the flags into a config and runs the evaluation."""
    if len(argv) > 1:
        sys.exit(f"evaluate.py: unexpected arguments: {' '.join(argv[1:])}")
    _entry.import_tensorflow_quietly()
    fields = {"models_dir": "models"}  # config field -> flag, where they differ
    try:
        config = evaluation.EvaluationConfig(
            methods=tuple(FLAGS.methods),
            densities=_densities(FLAGS.densities),
            data_dir=FLAGS.data_dir,
            image_size=FLAGS.image_size,
            channels=None if FLAGS.channels == "auto" else int(FLAGS.channels),
            models_dir=FLAGS.models,
            output_dir=FLAGS.output_dir,
            max_images=FLAGS.max_images,
            seed=FLAGS.seed,
            mg_density=FLAGS.mg_density,
            netm_masks=FLAGS.netm_masks,
            ps_candidate_fraction=FLAGS.ps_candidate_fraction,
            ps_removal_fraction=FLAGS.ps_removal_fraction,
            nlpe_cycles=FLAGS.nlpe_cycles,
            batch_size=FLAGS.batch_size,
            figures=FLAGS.figures,
            learned_device=FLAGS.learned_device,
            progress=FLAGS.progress,
            overwrite=FLAGS.overwrite,
        )
    except evaluation.ConfigError as error:
        sys.exit(
            f"evaluate.py: --{fields.get(error.field, error.field)}: {error.message}"
        )
    try:
        result = evaluation.run_evaluation(config)
    except (evaluation.MissingModelsError, evaluation.EvaluationError) as error:
        sys.exit(f"evaluate.py: {error}")
    except OSError as error:  # e.g. the disk filled up while writing
        sys.exit(f"evaluate.py: {error}")
    print(result.markdown)
    print(
        f"Wrote {result.output_dir}/results.csv, per_image.csv, results.md and "
        f"{len(result.figures)} figure(s) in {result.output_dir}/figures"
    )
    print(f"Trade-off figures: {result.output_dir}/tradeoff_*pct.png")


if __name__ == "__main__":
    _entry.run_script(main)
