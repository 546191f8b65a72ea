"""wgimask: joint learning of inpainting and sparse masks with a Wasserstein GAN.

Importing the package registers its Keras layers and models, so
``keras.models.load_model("generator.keras")`` works after ``import wgimask``.
"""

from wgimask.blocks import (
    BINARISATION_OPERATORS,
    Binarization,
    DilatedConv2DTranspose,
    FrobeniusNormConstraint,
    FunnelBlock,
    InpaintingConstraint,
    ParallelDilatedBlock,
    hard_sigmoid,
)
from wgimask.losses import critic_loss, generator_loss, mask_loss
from wgimask.networks import (
    MODEL_SIZES,
    Critic,
    InpaintingGenerator,
    MaskGenerator,
    draw_seed,
)

__version__ = "0.1.0"

__all__ = [
    "BINARISATION_OPERATORS",
    "MODEL_SIZES",
    "Binarization",
    "Critic",
    "DilatedConv2DTranspose",
    "FrobeniusNormConstraint",
    "FunnelBlock",
    "InpaintingConstraint",
    "InpaintingGenerator",
    "MaskGenerator",
    "ParallelDilatedBlock",
    "critic_loss",
    "draw_seed",
    "generator_loss",
    "hard_sigmoid",
    "mask_loss",
]
