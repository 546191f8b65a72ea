"""Trains the mask GAN (or the inpainting WGAN alone) and exports it.

    python train.py --density=0.05                     # small CPU job, embedded photos
    python train.py --density=0.1 --preset=paper --data_dir=/data/imagenet64
    python train.py --model_dir=runs/default --export_only

Rerunning with the same --model_dir resumes from its latest checkpoint; a
--model_dir holding a run with other networks or objective is refused (use
another folder, or --overwrite to start over). Several workers: see
docs/many-machines.md.
"""

from __future__ import annotations

import dataclasses
import sys

from wgimask import _entry  # noqa: E402 (light: no TensorFlow yet)

# Quiet start-up (no TensorFlow log block); real errors still reach stderr.
_entry.import_tensorflow_quietly()

import tensorflow as tf  # noqa: E402 (imported quietly above)
from absl import flags, logging  # noqa: E402

from wgimask import run_folder  # noqa: E402
from wgimask.config import (  # noqa: E402
    BINARISATION_OPERATORS,
    LR_SCHEDULES,
    MODEL_SIZES,
    MODES,
    PRECISIONS,
    PRESETS,
    VALIDATION_CROPS,
    TrainingConfig,
)
from wgimask.train import cluster, loop, warm_start  # noqa: E402

_DEFAULTS = TrainingConfig()
FLAGS = flags.FLAGS

flags.DEFINE_float("density", _DEFAULTS.density, "Target mask density D in (0, 1).")
#: Dai et al.'s networks (the paper's Table 2 comparison), trained by
#: `wgimask.train.dai` rather than the mask GAN's trainer.
DAI_MODES = ("nete", "netm")
flags.DEFINE_enum(
    "mode",
    _DEFAULTS.mode,
    (*MODES, *DAI_MODES),
    "joint: mask GAN; inpaint: inpainting WGAN on uniformly random masks; "
    "mask: the mask generator alone against exact diffusion "
    "(needs --mask_operator=diffusion); nete: Dai et al.'s NetE on random "
    "masks; netm: Dai et al.'s NetM against a trained NetE (--init_from=its "
    "run folder). For nete/netm: steps = --epochs x --steps_per_epoch, "
    "--model_size sets NetE's width (paper: Dai's 64).",
)
flags.DEFINE_string(
    "data_dir",
    None,
    "Image folder (searched recursively); "
    "default: the photos shipped with scikit-image.",
)
flags.DEFINE_string(
    "validation_dir",
    None,
    "Folder of validation images; if given, all of --data_dir trains and "
    "--validation_fraction is not used.",
)
flags.DEFINE_integer(
    "image_size", _DEFAULTS.image_size, "Training crop side, a multiple of 8."
)
flags.DEFINE_enum("color", "rgb", ["rgb", "grey"], "Colour or greyscale networks.")
flags.DEFINE_integer("batch_size", _DEFAULTS.batch_size, "Global batch size.")
flags.DEFINE_integer("epochs", _DEFAULTS.epochs, "Number of epochs.")
flags.DEFINE_integer("steps_per_epoch", _DEFAULTS.steps_per_epoch, "Steps per epoch.")
flags.DEFINE_float("learning_rate", _DEFAULTS.learning_rate, "Adam learning rate.")
flags.DEFINE_enum(
    "lr_schedule",
    _DEFAULTS.lr_schedule,
    LR_SCHEDULES,
    "Learning-rate schedule.",
)
flags.DEFINE_float("alpha", _DEFAULTS.alpha, "Adversarial weight of Eq. 3.")
flags.DEFINE_float("beta", _DEFAULTS.beta, "Inpainting-error weight of Eq. 4.")
flags.DEFINE_enum(
    "binarisation",
    _DEFAULTS.binarisation,
    BINARISATION_OPERATORS,
    "Mask binarisation (Table 1).",
)
flags.DEFINE_enum(
    "model_size",
    _DEFAULTS.model_size,
    sorted(MODEL_SIZES),
    "Network width; 'paper' is the reference.",
)
flags.DEFINE_string(
    "model_dir", _DEFAULTS.model_dir, "Checkpoints, TensorBoard logs and exports."
)
flags.DEFINE_integer("seed", _DEFAULTS.seed, "Random seed.")
flags.DEFINE_float(
    "validation_fraction",
    _DEFAULTS.validation_fraction,
    "Fraction of images held out for validation.",
)
flags.DEFINE_enum(
    "validation_crops",
    _DEFAULTS.validation_crops,
    VALIDATION_CROPS,
    "center: one centre crop per validation image (the paper); tiles: a grid of "
    "crops; auto: tiles for the embedded photos, center for --data_dir.",
)
flags.DEFINE_integer(
    "checkpoint_every", _DEFAULTS.checkpoint_every, "Steps between checkpoints."
)
flags.DEFINE_boolean(
    "jit_compile",
    _DEFAULTS.jit_compile,
    "Compile the step with XLA (slower than oneDNN on CPUs; for GPUs).",
)
flags.DEFINE_enum(
    "precision",
    _DEFAULTS.precision,
    PRECISIONS,
    "Keras dtype policy; the mixed ones are for GPUs (float32 losses, mask, Eq. 1).",
)
# Not in the paper (docs/learned-masks.md); all off by default and in presets.
flags.DEFINE_enum(
    "mask_operator",
    "generator",
    ["generator", "diffusion"],
    "Inpainting operator of the mask generator's loss (Eq. 4): generator (the "
    "paper) or diffusion (exact homogeneous diffusion of its mask; g and d "
    "still train on its masks).",
)
flags.DEFINE_enum(
    "prefill",
    "none",
    ["none", "diffusion"],
    "diffusion: g learns a residual on the diffusion inpainting of its mask.",
)
flags.DEFINE_enum(
    "mask_prior",
    "none",
    ["none", "analytic"],
    "analytic: the mask generator learns a correction of the analytic density.",
)
flags.DEFINE_enum(
    "generator_masks",
    "network",
    ["network", "halftoned"],
    "Masks g and d train on: network (m's own, the paper) or halftoned (m's "
    "density halftoned as at inference; needs --mode=joint, "
    "--binarisation=ordered_dither, --mask_operator=diffusion and no "
    "--jit_compile).",
)
flags.DEFINE_enum(
    "mask_points",
    "network",
    ["network", "densify"],
    "Where m's points come from: network (its binarised mask) or densify "
    "(densification masks steered by m's learned correction; needs "
    "--mask_prior=analytic, --binarisation=ordered_dither, "
    "--mask_operator=diffusion and no --jit_compile).",
)
flags.DEFINE_enum(
    "mask_correction",
    "learned",
    ["learned", "off"],
    "With --mask_points=densify: learned (inference steers densification by "
    "m's correction) or off (inference makes the plain densification mask and "
    "runs no mask network; training is unchanged).",
)
flags.DEFINE_float(
    "prior_sigma", None, "Smoothing scale of the analytic prior (default: auto)."
)
flags.DEFINE_float(
    "prior_exponent", None, "Exponent of the analytic prior (default: 0.75)."
)
flags.DEFINE_multi_string(
    "init_from",
    None,
    "Warm start from an earlier run: RUN_DIR (every network it holds) or "
    "NETWORK=RUN_DIR (generator, critic, mask_generator); repeatable. A run "
    "folder (best, else latest checkpoint) or an export folder "
    "(e.g. wgimask/pretrained/inpaint).",
)
flags.DEFINE_enum(
    "preset",
    None,
    sorted(PRESETS),
    "The paper's settings; flags given explicitly still win.",
)
flags.DEFINE_boolean("export_only", False, "Export an existing --model_dir and stop.")
flags.DEFINE_boolean(
    "overwrite",
    False,
    "Start over in a --model_dir that holds another run (deletes its "
    "checkpoints, logs and export).",
)
flags.DEFINE_float(
    "peer_timeout",
    cluster.DEFAULT_PEER_TIMEOUT,
    "Seconds a worker of a TF_CONFIG cluster waits for the others to start.",
)


def config_from_flags() -> TrainingConfig:
    """Packs the flags into a validated `TrainingConfig`."""
    fields = {f.name for f in dataclasses.fields(TrainingConfig)}
    values = {name: FLAGS[name].value for name in fields if name in FLAGS}
    values["channels"] = 3 if FLAGS.color == "rgb" else 1
    # The flags spell "off" as a word; the config holds None.
    for name, off in (
        ("mask_operator", "generator"),
        ("prefill", "none"),
        ("mask_prior", "none"),
        ("generator_masks", "network"),
        ("mask_points", "network"),
        ("mask_correction", "learned"),
    ):
        if values[name] == off:
            values[name] = None
    values["init_from"] = tuple(FLAGS.init_from) if FLAGS.init_from else None
    if FLAGS.preset:
        for name, value in PRESETS[FLAGS.preset].items():
            if not FLAGS[name].present:
                values[name] = value
    return TrainingConfig(**values).validate()


#: Causes of a failed write that are the storage's, not the program's.
_STORAGE = (
    "No space left on device",
    "Read-only file system",
    "Permission denied",
    "Disk quota exceeded",
    "Operation not permitted",
)


def _storage_problem(error: Exception) -> str | None:
    """The storage problem behind a failed write, in a few words (None: other)."""
    text = error.strerror if isinstance(error, OSError) and error.strerror else ""
    text = text or getattr(error, "message", "") or str(error)
    for cause in _STORAGE:
        if cause.lower() in text.lower() or (
            isinstance(error, (tf.errors.PermissionDeniedError, PermissionError))
            and cause == "Permission denied"
        ):
            return f"cannot write there ({cause})"
    return None


def _exit_for_data(error: Exception) -> None:
    """One line naming the folder a data error is about (--data_dir unless
    the message names --validation_dir), then exit."""
    message = str(error)
    if not message.startswith("validation_dir: "):
        message = f"data_dir: {message}"
    sys.exit(f"train.py: --{message}")


def dai_settings_from_flags(validating: bool = False):
    """Packs the flags into a validated `wgimask.train.dai.DaiSettings`.

    Args:
        validating: Whether the run has validation crops (then it validates
            once per ``--steps_per_epoch`` and keeps the best weights).
    """
    from wgimask.config import MODEL_SIZES
    from wgimask.train.dai import DaiSettings

    return DaiSettings(
        density=FLAGS.density,
        # NetE's bottleneck fixes 64 px; an explicit other size is refused.
        image_size=FLAGS.image_size if FLAGS["image_size"].present else 64,
        channels=3 if FLAGS.color == "rgb" else 1,
        batch_size=FLAGS.batch_size,
        steps=FLAGS.epochs * FLAGS.steps_per_epoch,
        learning_rate=FLAGS.learning_rate,
        seed=FLAGS.seed,
        # Dai's NetE is 64 wide: the paper size; the others scale it.
        width=max(1, round(64 * MODEL_SIZES[FLAGS.model_size])),
        netm_filters=max(1, round(64 * MODEL_SIZES[FLAGS.model_size])),
        checkpoint_every=FLAGS.checkpoint_every,
        # Dai validates every epoch; without validation images, never.
        validate_every=FLAGS.steps_per_epoch if validating else 0,
    ).validate()


def train_dai() -> None:
    """``--mode=nete`` / ``--mode=netm``: Dai et al.'s networks."""
    import keras

    from wgimask.train import dai, data, loop

    network = FLAGS.mode
    # The flags first, before any image is read.
    fraction = FLAGS.validation_fraction
    if not 0.0 <= fraction < 1.0:
        sys.exit(f"train.py: --validation_fraction must be in [0, 1), got {fraction}")
    try:
        settings = dai_settings_from_flags(
            validating=FLAGS.validation_dir is not None or fraction > 0
        )
        source = None
        if network == "netm":
            if not FLAGS.init_from or len(FLAGS.init_from) != 1:
                raise ValueError(
                    "--mode=netm needs --init_from=RUN_DIR, one trained NetE run"
                )
            # The weights NetE's run serves: its best when it validated.
            source = run_folder.served_dai_model(FLAGS.init_from[0], "nete")
            if not source.is_file():
                raise ValueError(f"--init_from: {source} does not exist")
    except ValueError as error:
        sys.exit(f"train.py: {error}")
    try:
        # The same split as the other modes: --validation_dir, else
        # --validation_fraction of --data_dir held out.
        images, validation_images, _ = data.source_split(
            FLAGS.data_dir,
            3 if FLAGS.color == "rgb" else 1,
            validation_dir=FLAGS.validation_dir,
            validation_fraction=FLAGS.validation_fraction,
            seed=FLAGS.seed,
        )
    except (ValueError, FileNotFoundError, NotADirectoryError) as error:
        _exit_for_data(error)
    try:
        validation = None
        if validation_images:
            mode = FLAGS.validation_crops
            if mode == "auto":
                mode = loop.validation_crop_mode_for(FLAGS.data_dir)
            validation = data.validation_crops(
                validation_images, settings.image_size, crops=mode
            )
        nete = None if source is None else keras.saving.load_model(source)
        batches = dai.crop_stream(settings, network, images=images)
    except (ValueError, FileNotFoundError, NotADirectoryError) as error:
        sys.exit(f"train.py: {error}")

    def progress(step, values):
        if step % 10 == 0 or step == settings.steps:
            print(
                f"{network} step {step}/{settings.steps}: loss "
                f"{float(values['loss']):.4g}, PSNR {float(values['psnr']):.2f} dB",
                flush=True,
            )

    try:
        if network == "nete":
            run = dai.train_nete(
                settings,
                batches,
                FLAGS.model_dir,
                progress=progress,
                validation=validation,
            )
        else:
            run = dai.train_netm(
                settings,
                nete,
                batches,
                FLAGS.model_dir,
                progress=progress,
                validation=validation,
            )
    except (ValueError, run_folder.RunFolderError, FloatingPointError) as error:
        sys.exit(f"train.py: {error}")
    except loop.TrainingInterruptedError as error:
        print(f"train.py: {error}", file=sys.stderr)
        sys.exit(128 + error.signum)  # as a shell reports a signal's death
    path = dai.model_path(FLAGS.model_dir, network)
    print(
        f"Exported {path} (step {run.step}) and the SavedModel {path.parent / network}"
    )


def main(argv):
    if len(argv) > 1:
        # One line, not absl's page of usage: flags are --name=value.
        sys.exit(
            f"train.py: unexpected argument(s) {' '.join(argv[1:])!r}; flags are "
            "given as --name=value (python train.py --help lists them)"
        )
    if FLAGS.mode in DAI_MODES:
        train_dai()
        return
    try:
        config = config_from_flags()
    except ValueError as error:
        # One line naming the flag: the field names are the flag names.
        sys.exit(f"train.py: --{error}")
    # Our own progress lines; TensorFlow's INFO chatter (checkpoint sharding)
    # stays out of the log (_entry.import_tensorflow_quietly).
    logging.set_verbosity(logging.INFO)
    if FLAGS.export_only:
        try:
            print(f"Exported {loop.export_run(config.model_dir)}")
        except (FileNotFoundError, ValueError) as error:
            sys.exit(f"train.py: --export_only: {error}")
        except (OSError, tf.errors.OpError) as error:
            problem = _storage_problem(error)
            if problem is None:
                raise
            sys.exit(f"train.py: --export_only: {config.model_dir}: {problem}")
        return
    try:
        # Data problems are reported before any model is built.
        images = loop.prepare_images(config)
    except (FileNotFoundError, NotADirectoryError, ValueError) as error:
        _exit_for_data(error)
    try:
        # Refused before the workers wait for each other (a worker refused
        # later would leave its peers waiting).
        cluster.check_global_batch(config.batch_size)
        strategy = cluster.default_strategy(peer_timeout=FLAGS.peer_timeout)
        trainer = loop.train(config, strategy, images=images, overwrite=FLAGS.overwrite)
    except (
        run_folder.RunFolderError,
        loop.NonFiniteError,
        warm_start.WarmStartError,
        cluster.ClusterConfigError,
    ) as error:
        print(flush=True)  # end the progress bar's line
        sys.exit(f"train.py: {error}")
    except tf.errors.UnavailableError as error:
        # A worker of the cluster is gone; anything else keeps its traceback.
        message = cluster.lost_peer(error)
        if message is None:
            raise
        print(flush=True)
        sys.exit(f"train.py: {message}")
    except (OSError, tf.errors.OpError) as error:
        # The run folder cannot be written (read-only, full disk, ...): one
        # line; anything else is a bug and keeps its traceback.
        problem = _storage_problem(error)
        if problem is None:
            raise
        print(flush=True)
        sys.exit(f"train.py: --model_dir {config.model_dir}: {problem}")
    except (loop.TrainingInterruptedError, cluster.WaitInterruptedError) as error:
        print(flush=True)
        if isinstance(error, loop.TrainingInterruptedError):
            # The others of a cluster stopped after the same step: the chief,
            # host of the coordination service, leaves last, this line last.
            cluster.say_last(f"train.py: {error}")
        else:  # still waiting for the others: no TensorFlow server yet
            print(f"train.py: {error}", file=sys.stderr, flush=True)
        sys.exit(128 + error.signum)  # as a shell reports a signal's death
    if trainer.is_chief:
        print(f"Exported models to {config.model_dir}/export")


if __name__ == "__main__":
    _entry.run_script(main)  # --help: this script's flags, exit 0
