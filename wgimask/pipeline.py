"""The mask pipeline a run's settings describe, decoded once.

A run's config has eight fields that together say how images become masks
and inpaintings: ``mode``, ``binarisation``, ``mask_points``,
``mask_prior``, ``prefill``, ``generator_masks``, ``mask_operator`` and
``mask_correction``.
`MaskPipeline.from_config` reads them once; training
(`wgimask.train.trainer`), export (`wgimask.serve.export`), the network parts
(`wgimask.serve.parts`, `wgimask.serve.lite`) and inference
(`wgimask.inference`) branch on its named attributes, never on the raw
fields, so that a new setting is decoded in one place.

`wgimask.config.TrainingConfig.validate` refuses the combinations that make
no pipeline; this module assumes a validated config (or a ``config.json``
written by one). Importing it loads no TensorFlow.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

#: Where a run's mask points come from:
#: ``random``: no mask network (``mode="inpaint"``): random masks of the
#: density in training, the caller's masks otherwise;
#: ``rank``: m's binarised confidence (the paper's operators) in training;
#: at inference the round(D H W) most confident pixels;
#: ``halftone``: m's confidence is a point density (``ordered_dither``),
#: halftoned at inference as the analytic masks are;
#: ``densify``: densification steered by m's learned correction
#: (``mask_points="densify"``).
POINTS = ("random", "rank", "halftone", "densify")


@dataclasses.dataclass(frozen=True)
class MaskPipeline:
    """How a run turns images into masks and inpaintings.

    Attributes:
        points: One of `POINTS`.
        prior: True when m corrects the analytic density
            (``mask_prior="analytic"``): its parts are ``correction`` and
            ``prior_confidence``; else ``confidence``.
        residual: True when g refines the diffusion inpainting
            (``prefill="diffusion"``, and always in ``mode="mask"``): its
            part is ``residual``; else ``generator``.
        halftoned_generator_masks: True when g and d train on m's density
            halftoned as at inference (``generator_masks="halftoned"``)
            rather than on m's own masks.
        diffusion_operator: True when Eq. 4 takes exact homogeneous
            diffusion (``mask_operator="diffusion"``) rather than g.
        correction: False when inference leaves m's correction out
            (``mask_correction="off"``): densified points are then the plain
            densification mask and no mask network runs.
    """

    points: str
    prior: bool = False
    residual: bool = False
    halftoned_generator_masks: bool = False
    diffusion_operator: bool = False
    correction: bool = True

    def __post_init__(self) -> None:
        if self.points not in POINTS:
            raise ValueError(
                f"points must be one of {POINTS}, received {self.points!r}"
            )

    @classmethod
    def from_config(cls, config: Mapping | object) -> MaskPipeline:
        """The pipeline of a `TrainingConfig` or of its dict (``config.json``).

        Fields missing from an older ``config.json`` take the values runs
        had before those fields existed (the paper's pipeline).
        """
        if not isinstance(config, Mapping):
            config = dataclasses.asdict(config)
        mode = config.get("mode", "joint")
        if mode == "inpaint":
            points = "random"
        elif config.get("mask_points") == "densify":
            points = "densify"
        elif config.get("binarisation") == "ordered_dither":
            points = "halftone"
        else:
            points = "rank"
        return cls(
            points=points,
            prior=points != "random" and config.get("mask_prior") == "analytic",
            # A mask-only run exports the untrained prefilled g: exactly
            # diffusion.
            residual=config.get("prefill") == "diffusion" or mode == "mask",
            halftoned_generator_masks=config.get("generator_masks") == "halftoned",
            diffusion_operator=config.get("mask_operator") == "diffusion",
            correction=config.get("mask_correction") != "off",
        )

    @property
    def has_mask_network(self) -> bool:
        """Whether the run has a mask generator m."""
        return self.points != "random"

    @property
    def runs_mask_network(self) -> bool:
        """Whether inference runs m to make a mask."""
        return self.has_mask_network and self.correction

    @property
    def mask_parts(self) -> tuple[str, ...]:
        """The parts of m that the exports hold (`wgimask.serve.parts`)."""
        if not self.has_mask_network:
            return ()
        return ("correction", "prior_confidence") if self.prior else ("confidence",)

    @property
    def generator_part(self) -> str:
        """The part of g that inference runs: ``residual`` or ``generator``."""
        return "residual" if self.residual else "generator"

    @property
    def parts(self) -> tuple[str, ...]:
        """Every part inference runs, mask parts first."""
        return (*self.mask_parts, self.generator_part)
