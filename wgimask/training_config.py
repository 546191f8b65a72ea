"""The settings of a training run (`TrainingConfig`) and the paper's presets."""

from __future__ import annotations

import dataclasses
import math

from wgimask import losses
from wgimask.blocks import BINARISATION_OPERATORS
from wgimask.networks import DOWNSAMPLING, MODEL_SIZES

MODES = ("joint", "inpaint")
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
        alpha=losses.DEFAULT_ALPHA,
        beta=losses.DEFAULT_BETA,
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
        mode: "joint" (mask GAN) or "inpaint" (inpainting WGAN, random masks).
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
    alpha: float = losses.DEFAULT_ALPHA
    beta: float = losses.DEFAULT_BETA
    binarisation: str = "hard_rounding"
    model_size: str = "tiny"
    model_dir: str = "runs/default"
    seed: int = 0
    validation_fraction: float = 0.2
    validation_crops: str = "auto"
    checkpoint_every: int = 50
    jit_compile: bool = False
    precision: str = "float32"

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
        if self.image_size < DOWNSAMPLING or self.image_size % DOWNSAMPLING:
            fail("image_size", f"a positive multiple of {DOWNSAMPLING}")
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
        if self.seed < 0:
            fail("seed", "non-negative")
        if self.precision not in PRECISIONS:
            fail("precision", f"one of {PRECISIONS}")
        return self

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch
