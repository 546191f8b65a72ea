"""Inference: a run's networks on LiteRT or Keras, exact density, traceless tiles.

`Model` (in `wgimask.inference.model`) is the one inference path that the
``wgimask`` command, `evaluate.py` and the tests share; `optimise_mask` is its
one-call form. `wgimask.inference.arrays` holds the model-free array helpers
(input checks, padding, tile origins, the generators' seed inputs). Importing
this package does not load TensorFlow.
"""

from wgimask.inference.model import Model, load, optimise_mask
from wgimask.masks.exact_density import check_density, point_count, top_confidence_mask
from wgimask.serve.model_files import (
    PRETRAINED_DIR,
    ModelError,
    choose_model,
    export_dir,
    read_config,
    shipped_models,
)

__all__ = [
    "PRETRAINED_DIR",
    "Model",
    "ModelError",
    "check_density",
    "choose_model",
    "export_dir",
    "load",
    "optimise_mask",
    "point_count",
    "read_config",
    "shipped_models",
    "top_confidence_mask",
]
