"""The model-free inpainting operators by name: one registry for the command
and the evaluation.

=========  ==============================================================
``hd``     homogeneous diffusion (`wgimask.diffusion.inpainting`)
``eed``    edge-enhancing anisotropic diffusion (`wgimask.diffusion.eed`)
``bih``    biharmonic inpainting (`wgimask.diffusion.biharmonic`)
``cdd``    curvature-driven diffusion (`wgimask.diffusion.cdd`)
``ms``     Mumford-Shah inpainting, Ambrosio-Tortorelli approximation
           (`wgimask.diffusion.mumford_shah`)
``bpfa``   beta process factor analysis, a Gibbs sampler on overlapping
           patches (`wgimask.diffusion.bpfa`)
=========  ==============================================================

Every operator takes an (H, W) or (H, W, C) image in [0, 1] and an (H, W)
binary mask, keeps the known pixels exactly and imports no TensorFlow. Each
module is imported on first use (numba's kernels take a while to load).
"""

from __future__ import annotations

import importlib

import numpy as np

#: Operator name -> (module, function).
OPERATORS = {
    "hd": ("wgimask.diffusion.inpainting", "inpaint"),
    "eed": ("wgimask.diffusion.eed", "inpaint_eed"),
    "bih": ("wgimask.diffusion.biharmonic", "inpaint_biharmonic"),
    "cdd": ("wgimask.diffusion.cdd", "inpaint_cdd"),
    "ms": ("wgimask.diffusion.mumford_shah", "inpaint_ms"),
    "bpfa": ("wgimask.diffusion.bpfa", "inpaint_bpfa"),
}
#: Operators that take a ``progress(done, total)`` callback.
WITH_PROGRESS = ("bpfa",)


def model_free_inpaint(
    operator: str, image: np.ndarray, mask: np.ndarray, *, progress=None, **options
) -> np.ndarray:
    """The inpainting of `image` from `mask` by a model-free operator.

    Args:
        operator: One of `OPERATORS`.
        image: (H, W) or (H, W, C) image in [0, 1].
        mask: (H, W) binary mask, True/1 = known.
        progress: Optional ``progress(done, total)``, for the operators in
            `WITH_PROGRESS`; the others ignore it.
        **options: Further arguments of the operator's function.

    Returns:
        The inpainting, clipped to [0, 1], the shape of the image.

    Raises:
        ValueError: For an unknown operator, and as the operator does.
    """
    if operator not in OPERATORS:
        raise ValueError(
            f"inpainting operator must be one of {', '.join(OPERATORS)}, "
            f"received {operator!r}"
        )
    module, name = OPERATORS[operator]
    function = getattr(importlib.import_module(module), name)
    if progress is not None and operator in WITH_PROGRESS:
        options["progress"] = progress
    return np.clip(function(image, mask, **options), 0.0, 1.0)
