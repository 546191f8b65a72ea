"""The networks of a run, built from its settings: one builder for all.

Training (`wgimask.train.trainer`), serving (`wgimask.serve`) and inference
build a run's networks here, so that they agree on the prefill, the analytic
prior and the binarisation a config describes.
"""

from __future__ import annotations

import keras

from wgimask.config import TrainingConfig
from wgimask.nn.analytic_prior import DEFAULT_EXPONENT
from wgimask.nn.networks import Critic, InpaintingGenerator, MaskGenerator


def build_networks(
    config: TrainingConfig, with_critic: bool = True
) -> dict[str, keras.Model | None]:
    """The networks of a run's config: ``generator``, ``critic``, ``mask_generator``.

    Built in the current scope and dtype policy; None for a network the mode
    does not have (m in ``inpaint`` mode, d in ``mask`` mode), and for d when
    ``with_critic`` is False (inference needs no critic). In ``mask``
    mode g is the prefilled generator, which returns exactly the diffusion
    inpainting untrained (it is not trained there, only exported).
    """
    prefill = "diffusion" if config.mode == "mask" else config.prefill
    generator = InpaintingGenerator(
        None, config.channels, config.model_size, prefill=prefill
    )
    critic = (
        Critic(config.image_size, config.channels, config.model_size)
        if config.mode != "mask" and with_critic
        else None
    )
    mask_generator = None
    if config.mode != "inpaint":
        needs_density = (
            config.binarisation == "ordered_dither" or config.mask_prior is not None
        )
        mask_generator = MaskGenerator(
            None,
            config.channels,
            config.model_size,
            config.binarisation,
            density=config.density if needs_density else None,
            prior=config.mask_prior,
            prior_sigma=config.prior_sigma,
            prior_exponent=(
                DEFAULT_EXPONENT
                if config.prior_exponent is None
                else config.prior_exponent
            ),
        )
    return {
        "generator": generator,
        "critic": critic,
        "mask_generator": mask_generator,
    }
