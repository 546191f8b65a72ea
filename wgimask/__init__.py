"""wgimask: joint learning of inpainting and sparse masks with a Wasserstein GAN.

The main entry for Python users::

    mask, inpainting = wgimask.optimise_mask(image, 0.1)  # see wgimask.inference

Imports are lazy: ``import wgimask.baselines``, ``wgimask.evaluation.metrics`` and
``wgimask.devices`` do not load TensorFlow. The networks and layers below load
it on first use; importing ``wgimask.nn.networks`` (or touching any of them, e.g.
``wgimask.MaskGenerator``) registers the Keras layers, so that
``keras.models.load_model("generator.keras")`` works afterwards; so does
``import wgimask`` after ``import keras``.
"""

import importlib
import os
import sys

# TensorFlow turns its oneDNN CPU kernels on by default only on CPUs with
# AVX-512; on AVX2 CPUs they run the networks about 2x faster (docs/
# performance.md). This must run before TensorFlow is first imported, so it
# takes effect when wgimask is imported first (as train.py, evaluate.py and the
# wgimask command do); TF_ENABLE_ONEDNN_OPTS=0 keeps them off.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"

# Public name -> module that defines it (imported on first access).
_LAZY = {
    "BINARISATION_OPERATORS": "wgimask.config",
    "Binarization": "wgimask.nn.mask_layers",
    "DilatedConv2DTranspose": "wgimask.nn.blocks",
    "FrobeniusNormConstraint": "wgimask.nn.blocks",
    "FunnelBlock": "wgimask.nn.blocks",
    "InpaintingConstraint": "wgimask.nn.mask_layers",
    "ParallelDilatedBlock": "wgimask.nn.blocks",
    "hard_sigmoid": "wgimask.nn.blocks",
    "critic_loss": "wgimask.nn.losses",
    "generator_loss": "wgimask.nn.losses",
    "mask_loss": "wgimask.nn.losses",
    "MODEL_SIZES": "wgimask.config",
    "Critic": "wgimask.nn.networks",
    "InpaintingGenerator": "wgimask.nn.networks",
    "MaskGenerator": "wgimask.nn.networks",
    "draw_seed": "wgimask.nn.networks",
    "Model": "wgimask.inference",
    "optimise_mask": "wgimask.inference",
}

__all__ = sorted(_LAZY)


if "keras" in sys.modules:
    # Keras is loaded already (and TensorFlow with it), so registering the
    # layers costs nothing: `import keras, wgimask` then `load_model` works.
    importlib.import_module("wgimask.nn.networks")


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'wgimask' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY])
