"""Model-based baselines: homogeneous diffusion inpainting, analytic masks, PS, NLPE.

Homogeneous diffusion inpainting (``inpaint``), analytic masks after
Belhachmi et al. (2009) (``analytic_mask``; ``electrostatic_mask`` halftones
their density electrostatically), probabilistic sparsification
(``probabilistic_sparsification``) and non-local pixel exchange
(``nonlocal_pixel_exchange``) after Mainberger et al. (2012), plus
``random_mask`` for masks of an exact density. Only numpy and scipy are used
here (no TensorFlow).

Example:
    >>> from skimage import data
    >>> from wgimask.baselines import (inpaint, nonlocal_pixel_exchange,
    ...                                probabilistic_sparsification)
    >>> f = data.astronaut()[100:164, 180:244] / 255.0
    >>> mask = probabilistic_sparsification(f, 0.1, seed=0)
    >>> mask = nonlocal_pixel_exchange(f, mask, seed=0)
    >>> u = inpaint(f, mask)
"""

from wgimask.diffusion.inpainting import CG_RTOL, inpaint
from wgimask.masks.analytic import analytic_mask, electrostatic_mask
from wgimask.masks.densification import densification_mask
from wgimask.masks.exchange import (
    DEFAULT_CANDIDATES,
    DEFAULT_CYCLES,
    nonlocal_pixel_exchange,
)
from wgimask.masks.random_masks import random_mask
from wgimask.masks.sparsification import (
    DEFAULT_CANDIDATE_FRACTION,
    DEFAULT_REMOVAL_FRACTION,
    probabilistic_sparsification,
)

__all__ = [
    "CG_RTOL",
    "DEFAULT_CANDIDATES",
    "DEFAULT_CANDIDATE_FRACTION",
    "DEFAULT_CYCLES",
    "DEFAULT_REMOVAL_FRACTION",
    "analytic_mask",
    "densification_mask",
    "electrostatic_mask",
    "inpaint",
    "nonlocal_pixel_exchange",
    "probabilistic_sparsification",
    "random_mask",
]
