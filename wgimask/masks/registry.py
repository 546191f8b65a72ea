"""One registry of the model-free mask methods, for the command and evaluation.

`MODEL_FREE` names each method; `model_free_mask` makes its mask of exactly
round(D H W) points. The ``wgimask`` command (``--mask``) and `evaluate.py`
(``<mask>+<operator>``) both call it, so a method added here is one name in
both. NLPE refines any of these masks (`wgimask.masks.exchange`); learned
masks come from `wgimask.inference`.
"""

from __future__ import annotations

import numpy as np

#: Model-free mask methods, in the order the command lists them.
MODEL_FREE = ("random", "analytic", "electrostatic", "densify", "ps")


def model_free_mask(
    method: str, image: np.ndarray, density: float, *, seed: int = 0, **options
) -> np.ndarray:
    """The (H, W) bool mask of a model-free method, round(D H W) points.

    Args:
        method: One of `MODEL_FREE`.
        image: (H, W) or (H, W, C) in [0, 1].
        density: Fraction of pixels to keep, in (0, 1).
        seed: Seed of the method's random choices.
        **options: Further arguments of the method's function (PS:
            ``candidate_fraction``, ``removal_fraction``).

    Raises:
        ValueError: For an unknown method, and as the method's function does.
    """
    # Imported on first use: the compiled methods load numba.
    if method == "random":
        from wgimask.masks.random_masks import random_mask

        return random_mask(np.shape(image)[:2], density, seed=seed, **options)
    if method == "analytic":
        from wgimask.masks.analytic import analytic_mask

        return analytic_mask(image, density, seed=seed, **options)
    if method == "electrostatic":
        from wgimask.masks.analytic import electrostatic_mask

        return electrostatic_mask(image, density, seed=seed, **options)
    if method == "densify":
        from wgimask.masks.densification import densification_mask

        return densification_mask(image, density, seed=seed, **options)
    if method == "ps":
        from wgimask.masks.sparsification import probabilistic_sparsification

        return probabilistic_sparsification(image, density, seed=seed, **options)
    raise ValueError(f"mask method must be one of {MODEL_FREE}, received {method!r}")
