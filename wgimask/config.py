"""The settings of a training run (`TrainingConfig`) and the paper's presets."""

from __future__ import annotations

import dataclasses
import math

# The choices of the settings below live here, not in the modules that act
# on them, so that reading or validating a config loads no TensorFlow.

#: Width factor of each model size relative to the paper's channel counts.
MODEL_SIZES = {"paper": 1.0, "medium": 0.5, "small": 0.25, "tiny": 0.125}
#: Three 2x2 poolings: image sides must be multiples of this.
DOWNSAMPLING = 8
#: Largest training crop: 4096 px crops ended in TensorFlow's "Cannot parse
#: tensor from proto" instead of training; the paper trains on 64 and 128 px,
#: and inference takes images of any size.
MAX_IMAGE_SIZE = 1024
#: Prefill options of the inpainting generator (None = the paper's g).
PREFILLS = (None, "diffusion")
#: Prior options of the mask generator (None = the paper's m).
MASK_PRIORS = (None, "analytic")
#: The paper's binarisation operators (Table 1).
PAPER_BINARISATION_OPERATORS = (
    "hard_rounding",
    "additive_noise",
    "stochastic_rounding",
)
#: All operators: the paper's and an ordered dither with an exact point count.
BINARISATION_OPERATORS = (*PAPER_BINARISATION_OPERATORS, "ordered_dither")
#: Where m's points come from: None = its binarisation (the paper's
#: operators or the ordered dither); "densify" = densification steered by
#: its correction (`wgimask.masks.point_placement`).
MASK_POINTS = (None, "densify")
#: Whether inference uses m's learned correction of a densified mask: None =
#: yes; "off" = no, the mask is the plain densification mask (no mask network
#: runs; the exported ``mask_gan`` still serves m, the paper's signature).
MASK_CORRECTIONS = (None, "off")
#: The paper's weights of the adversarial term (alpha, Eq. 3) and of the
#: mask's sparsity term (beta, Eq. 4).
DEFAULT_ALPHA = 0.005
DEFAULT_BETA = 1.0

#: joint: the mask GAN; inpaint: g and d on random masks; mask: m alone,
#: trained through exact diffusion (needs ``mask_operator="diffusion"``).
MODES = ("joint", "inpaint", "mask")
#: The inpainting operator of Eq. 4 (m's loss): None = g (the paper);
#: "diffusion" = exact homogeneous diffusion (`wgimask.nn.exact_diffusion`).
MASK_OPERATORS = (None, "diffusion")
#: Masks g and d train on: None = m's (the paper); "halftoned" = m's point
#: density halftoned as inference does (`wgimask.nn.dither.halftoned_masks`).
GENERATOR_MASKS = (None, "halftoned")
#: Networks that ``init_from`` can warm-start.
NETWORK_NAMES = ("generator", "critic", "mask_generator")
LR_SCHEDULES = ("constant", "cosine")
VALIDATION_CROPS = ("auto", "center", "tiles")
#: Keras dtype policies of the networks (`TrainingConfig.precision`).
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")

#: The paper's settings (Sec. 4.1), for users with a GPU and a real data set.
PRESETS = {
    "paper": dict(
        model_size="paper",
        image_size=64,
        batch_size=128,
        learning_rate=5e-5,
        lr_schedule="constant",
        alpha=DEFAULT_ALPHA,
        beta=DEFAULT_BETA,
        epochs=1000,
    ),
}
PRESETS["paper128"] = {**PRESETS["paper"], "image_size": 128, "batch_size": 32}


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Everything a training run needs; `validate` checks it.

    The defaults are a small job that finishes on a 2-core CPU in minutes; see
    `PRESETS` for the paper's settings.

    Attributes:
        density: Target mask density D in (0, 1).
        mode: "joint" (mask GAN), "inpaint" (inpainting WGAN, random masks) or
            "mask" (m alone against exact diffusion; needs
            ``mask_operator="diffusion"``; g is the untrained prefilled
            generator, i.e. exactly diffusion, and there is no critic).
        data_dir: Image folder, or None for the photos embedded in scikit-image.
        validation_dir: Folder of validation images. If given, every image of
            the training source trains and `validation_fraction` is not used.
        image_size: Side of the square training crops, a multiple of 8.
        channels: 3 (colour) or 1 (grey).
        batch_size: Global batch size (split over devices).
        epochs: Number of epochs.
        steps_per_epoch: Steps per epoch (crops are drawn at random, so an epoch
            is a number of steps, not a pass over the data).
        learning_rate: Adam learning rate of all three networks.
        lr_schedule: "constant" (the paper) or "cosine" (decay to 0 at the end,
            which settles the mask density on short CPU runs).
        alpha: Weight of the adversarial term in Eq. 3.
        beta: Weight of the inpainting error in Eq. 4.
        binarisation: Mask binarisation operator (Table 1).
        model_size: Width of the networks, a key of `MODEL_SIZES`.
        model_dir: Where checkpoints, summaries and exports go.
        seed: Seed of initialisation, data split, crops and noise.
        validation_fraction: Fraction of the images kept for validation.
        validation_crops: "center" (one centre crop per image, as in the paper),
            "tiles" (a grid of crops per image), or "auto": tiles for the few
            large embedded photos (one centre crop each would make a noisy
            validation set of one or two crops), centre crops for a folder.
        checkpoint_every: Steps between checkpoints (also saved at epoch ends).
        jit_compile: Compile the training step with XLA. On CPUs it is slower
            than TensorFlow's own (oneDNN) kernels; it may help on GPUs.
        precision: Keras dtype policy of the networks: "float32", or the mixed
            policies for GPUs, "mixed_float16" (float16 compute with float32
            weights and dynamic loss scaling) and "mixed_bfloat16". Eq. 1, the
            mask and the critic's score are float32 in every policy, and so are
            the losses.
        mask_operator: Inpainting operator of m's loss (Eq. 4): None (the
            paper: g's inpainting) or "diffusion" (the exact homogeneous
            diffusion inpainting of m's mask). In ``joint`` mode g and d still
            train on m's masks as in the paper; only m's loss changes.
        prefill: None (the paper's g) or "diffusion": g learns a residual on
            the diffusion inpainting of its mask (`InpaintingGenerator`).
        mask_prior: None (the paper's m) or "analytic": m learns a correction
            of the analytic density (`MaskGenerator`).
        prior_sigma: Smoothing scale of the analytic prior; None for
            `wgimask.nn.analytic_prior.auto_sigma` of the density.
        prior_exponent: Exponent of the analytic prior.
        generator_masks: None (the paper: g and d train on m's masks) or
            "halftoned": on m's point density halftoned exactly as
            `wgimask.inference` halftones it (Bayer below 15 %,
            Floyd-Steinberg from 15 %;
            `wgimask.masks.analytic.halftone_density`),
            so g learns on the masks it gets at inference. m still trains on
            its own dithered masks through exact diffusion; needs
            ``binarisation="ordered_dither"``, ``mask_operator="diffusion"``
            and no XLA (the halftoning runs in numpy).
        mask_points: None (m's points are its binarised mask) or "densify":
            densification masks steered by m's learned correction
            (`wgimask.masks.point_placement`), for m's loss and for g and d. Needs
            ``mask_prior="analytic"``, ``binarisation="ordered_dither"``,
            ``mask_operator="diffusion"``, no ``generator_masks`` and no XLA
            (the masks are made in numpy).
        mask_correction: None (inference steers densification by m's
            correction) or "off": inference makes the plain densification
            mask and runs no mask network (the shipped models: their
            correction measured no better than none, docs/model-card.md).
            Training is unchanged. Needs ``mask_points="densify"``.
        init_from: Warm start (only when the run starts, not when it
            resumes): entries "RUN_DIR" (every network this run has that the
            source holds) or "NETWORK=RUN_DIR" (one of `NETWORK_NAMES`); a
            RUN_DIR is a run folder (best weights, else the latest
            checkpoint) or an export folder (`wgimask.train.warm_start`).
    """

    density: float = 0.05
    mode: str = "joint"
    data_dir: str | None = None
    validation_dir: str | None = None
    image_size: int = 32
    channels: int = 3
    batch_size: int = 16
    epochs: int = 5
    steps_per_epoch: int = 100
    learning_rate: float = 1e-3
    lr_schedule: str = "cosine"
    alpha: float = DEFAULT_ALPHA
    beta: float = DEFAULT_BETA
    binarisation: str = "hard_rounding"
    model_size: str = "tiny"
    model_dir: str = "runs/default"
    seed: int = 0
    validation_fraction: float = 0.2
    validation_crops: str = "auto"
    checkpoint_every: int = 50
    jit_compile: bool = False
    precision: str = "float32"
    # Not in the paper (docs/learned-masks.md); None keeps configs of earlier
    # versions resumable (a missing field equals None, `run_folder`).
    mask_operator: str | None = None
    prefill: str | None = None
    mask_prior: str | None = None
    prior_sigma: float | None = None
    prior_exponent: float | None = None
    init_from: tuple[str, ...] | None = None
    generator_masks: str | None = None
    mask_points: str | None = None
    mask_correction: str | None = None

    def __post_init__(self):
        # JSON turns the tuple into a list; keep one hashable form.
        if isinstance(self.init_from, list):
            object.__setattr__(self, "init_from", tuple(self.init_from))

    def validate(self) -> TrainingConfig:
        """Checks every field.

        Returns:
            The config itself.

        Raises:
            ValueError: Naming the first invalid field and its value.
        """

        def fail(name, requirement):
            raise ValueError(
                f"{name} must be {requirement}, received {getattr(self, name)!r}"
            )

        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, float) and not math.isfinite(value):
                fail(field.name, "a finite number")
        if not 0.0 < self.density < 1.0:
            fail("density", "in (0, 1)")
        if self.mode not in MODES:
            fail("mode", f"one of {MODES}")
        if (
            not DOWNSAMPLING <= self.image_size <= MAX_IMAGE_SIZE
            or self.image_size % DOWNSAMPLING
        ):
            fail(
                "image_size",
                f"a positive multiple of {DOWNSAMPLING}, at most {MAX_IMAGE_SIZE}",
            )
        if self.channels not in (1, 3):
            fail("channels", "1 or 3")
        for name in ("batch_size", "epochs", "steps_per_epoch", "checkpoint_every"):
            if getattr(self, name) < 1:
                fail(name, "a positive integer")
        if not self.learning_rate > 0:
            fail("learning_rate", "positive")
        if self.lr_schedule not in LR_SCHEDULES:
            fail("lr_schedule", f"one of {LR_SCHEDULES}")
        if self.alpha < 0:
            fail("alpha", "non-negative")
        if self.beta < 0:
            fail("beta", "non-negative")
        if self.binarisation not in BINARISATION_OPERATORS:
            fail("binarisation", f"one of {BINARISATION_OPERATORS}")
        if self.model_size not in MODEL_SIZES:
            fail("model_size", f"one of {sorted(MODEL_SIZES)}")
        if not 0.0 <= self.validation_fraction < 1.0:
            fail("validation_fraction", "in [0, 1)")
        if self.validation_crops not in VALIDATION_CROPS:
            fail("validation_crops", f"one of {VALIDATION_CROPS}")
        if not 0 <= self.seed < 2**32:
            # Numpy's and TensorFlow's seeds are 32-bit.
            fail("seed", "in [0, 2^32)")
        if self.precision not in PRECISIONS:
            fail("precision", f"one of {PRECISIONS}")
        if self.mask_operator not in MASK_OPERATORS:
            fail("mask_operator", f"one of {MASK_OPERATORS}")
        if self.prefill not in PREFILLS:
            fail("prefill", f"one of {PREFILLS}")
        if self.mask_prior not in MASK_PRIORS:
            fail("mask_prior", f"one of {MASK_PRIORS}")
        if self.prior_sigma is not None and not self.prior_sigma >= 0:
            fail("prior_sigma", "non-negative or None")
        if self.prior_exponent is not None and not self.prior_exponent > 0:
            fail("prior_exponent", "positive or None")
        if self.mode == "mask" and self.mask_operator != "diffusion":
            fail(
                "mode",
                'used with mask_operator="diffusion" when "mask" (m '
                "trains without g, so Eq. 4 needs the exact operator)",
            )
        if self.mode == "inpaint":
            for name in ("mask_operator", "mask_prior"):
                if getattr(self, name) is not None:
                    fail(name, 'None in mode "inpaint" (there is no mask generator)')
        if self.mode == "mask" and self.prefill is not None:
            fail("prefill", 'None in mode "mask" (g is not trained there)')
        if self.generator_masks not in GENERATOR_MASKS:
            fail("generator_masks", f"one of {GENERATOR_MASKS}")

        def require(option, needs):
            """Fails on the first field that `option`, when set, needs otherwise."""
            if getattr(self, option) is None:
                return
            for name, value in needs.items():
                if getattr(self, name) != value:
                    fail(name, f"{value!r} with {option}={getattr(self, option)!r}")

        require(
            "generator_masks",
            {
                "mode": "joint",
                "binarisation": "ordered_dither",
                "mask_operator": "diffusion",
                "jit_compile": False,
            },
        )
        if self.mask_points not in MASK_POINTS:
            fail("mask_points", f"one of {MASK_POINTS}")
        require(
            "mask_points",
            {
                "mask_prior": "analytic",
                "binarisation": "ordered_dither",
                "mask_operator": "diffusion",
                "generator_masks": None,
                "jit_compile": False,
            },
        )
        if self.mask_correction not in MASK_CORRECTIONS:
            fail("mask_correction", f"one of {MASK_CORRECTIONS}")
        require("mask_correction", {"mask_points": "densify"})
        for entry in self.init_from or ():
            if not isinstance(entry, str) or not entry:
                fail("init_from", "a list of RUN_DIR or NETWORK=RUN_DIR strings")
            name, sep, _ = entry.partition("=")
            if sep and name not in NETWORK_NAMES:
                fail(
                    "init_from",
                    f"entries NETWORK=RUN_DIR with NETWORK in {NETWORK_NAMES}",
                )
        return self

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch
