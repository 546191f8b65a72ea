"""wgimask: joint learning of inpainting and sparse masks with a Wasserstein GAN.

Importing the package registers its Keras layers and models, so
``keras.models.load_model("generator.keras")`` works after ``import wgimask``.
"""

import os

# TensorFlow turns its oneDNN CPU kernels on by default only on CPUs with
# AVX-512; on AVX2 CPUs they run the networks about 2x faster (README,
# "Performance"). This must run before TensorFlow is first imported, so it
# takes effect when wgimask is imported first (as train.py, evaluate.py and the
# wgimask command do); TF_ENABLE_ONEDNN_OPTS=0 keeps them off.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from wgimask.blocks import (  # noqa: E402
    BINARISATION_OPERATORS,
    Binarization,
    DilatedConv2DTranspose,
    FrobeniusNormConstraint,
    FunnelBlock,
    InpaintingConstraint,
    ParallelDilatedBlock,
    hard_sigmoid,
)
from wgimask.losses import critic_loss, generator_loss, mask_loss  # noqa: E402
from wgimask.networks import (  # noqa: E402
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
