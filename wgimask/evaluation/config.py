"""The evaluation's methods and settings: the method registry and its config.

A *method* is a mask method combined with an inpainting operator,
``<mask>+<operator>`` (`parse_method`; the list is in `wgimask.evaluation`'s
docstring). `EvaluationConfig` holds everything one evaluation run needs and
checks it on construction, raising `ConfigError` with the field at fault.
`wgimask.evaluation` runs it and re-exports these names. This module does not
import TensorFlow.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

from wgimask.diffusion import operators
from wgimask.masks.exact_density import point_count

# New mask methods go at the end: the index seeds the masks (method_seed).
MASK_METHODS = (
    "random",
    "ps",
    "ps+nlpe",
    "mg",
    "analytic",
    "analytic+nlpe",
    "random+nlpe",
    "mg+nlpe",
    "electrostatic",
    "electrostatic+nlpe",
    "densify",
    "densify+nlpe",
    "netm",
)
#: Model-free operators (`wgimask.diffusion.operators`) and the learned ones.
MODEL_FREE_OPERATORS = tuple(operators.OPERATORS)
OPERATORS = (*MODEL_FREE_OPERATORS, "wgain", "mg", "nete")
#: An NLPE mask method with its own cycle count: ``analytic+nlpe12`` runs 12
#: cycles (``--nlpe_cycles`` for the others), so methods with different
#: budgets compare in one run.
_NLPE_CYCLES = re.compile(r"^(?P<start>[a-z]+)\+nlpe(?P<cycles>[0-9]+(\.[0-9]+)?)$")


def split_nlpe(mask: str) -> tuple[str, float | None]:
    """A mask method's name in `MASK_METHODS` and its own NLPE cycles.

    ``analytic+nlpe12`` gives ``("analytic+nlpe", 12.0)``; names without a
    cycle count give ``(mask, None)``.
    """
    match = _NLPE_CYCLES.match(mask)
    if match is None:
        return mask, None
    return f"{match['start']}+nlpe", float(match["cycles"])


# Mask methods and operators that run a learned model.
LEARNED_MASKS = ("mg", "mg+nlpe", "netm")
LEARNED_OPERATORS = ("wgain", "mg", "nete")
#: Dai et al.'s networks (`wgimask.nn.dai`): model kind -> network name.
DAI_KINDS = ("nete", "netm")
MG_DENSITY_MODES = ("exact", "raw")
#: `wgimask.nn.dai.BINARISATIONS`, the default first (no TensorFlow import).
NETM_MASK_MODES = ("sampled", "bernoulli", "topk")
LEARNED_DEVICES = ("auto", "cpu")


class ConfigError(ValueError):
    """An invalid evaluation setting.

    Args:
        field: The ``EvaluationConfig`` field at fault.
        message: What is wrong, without the field's name.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# --------------------------------------------------------------------------
# Methods


@dataclasses.dataclass(frozen=True)
class Method:
    """A mask method combined with an inpainting operator.

    Attributes:
        mask: One of ``MASK_METHODS``, or an NLPE one with its own cycle
            count such as ``analytic+nlpe12`` (`split_nlpe`).
        operator: One of ``OPERATORS``.
    """

    mask: str
    operator: str

    @property
    def name(self) -> str:
        """The canonical name, e.g. ``ps+nlpe+hd``; ``mg`` for ``mg+mg``."""
        if self.mask == "mg" and self.operator == "mg":
            return "mg"
        return f"{self.mask}+{self.operator}"

    @property
    def learned_mask(self) -> bool:
        """Whether the mask method runs the mask GAN (``mg``, ``mg+nlpe``)."""
        return split_nlpe(self.mask)[0] in LEARNED_MASKS

    @property
    def learned(self) -> bool:
        """Whether any part of the method runs a learned model."""
        return self.learned_mask or self.operator in LEARNED_OPERATORS

    @property
    def batchable(self) -> bool:
        """Whether every part runs on a batch (learned or trivially cheap)."""
        return self.mask in ("random", "mg") and self.operator in LEARNED_OPERATORS


def parse_method(name: str) -> Method:
    """Parses a method name such as ``ps+nlpe+hd``, ``random+wgain`` or ``mg``.

    Args:
        name: ``<mask>+<operator>`` with a mask method from ``MASK_METHODS``
            and an operator from ``OPERATORS``, or ``mg`` alone. An NLPE mask
            method may name its cycle count: ``analytic+nlpe12+hd``.

    Returns:
        The parsed method.

    Raises:
        ValueError: If the name is not a known combination.
    """
    text = name.strip().lower()
    if text == "mg":
        return Method("mg", "mg")
    mask, plus, operator = text.rpartition("+")
    base, cycles = split_nlpe(mask)
    if not plus or base not in MASK_METHODS or operator not in OPERATORS:
        raise ValueError(
            f"unknown method {name!r}: write <mask>+<operator> with a mask method "
            f"from {', '.join(MASK_METHODS)} and an operator from "
            f"{', '.join(OPERATORS)} (e.g. ps+nlpe+hd, analytic+nlpe12+hd for "
            f"12 NLPE cycles, random+wgain), or 'mg'"
        )
    if cycles is not None:
        if not cycles > 0:
            raise ValueError(f"method {name!r}: NLPE needs more than 0 cycles")
        # One spelling per budget (nlpe012, nlpe12.0 -> nlpe12): a method
        # given twice is caught as a repeat.
        mask = f"{base}{cycles:g}"
    return Method(mask, operator)


# --------------------------------------------------------------------------
# Configuration


#: The methods name that stands for the paper's Table 2 layout.
TABLE2 = "table2"
#: The paper's Table 2 (a: random masks; b: NetM's masks, and the mask GAN)
#: and, beside it, the same operators on the model-based masks: groups of
#: (column label, method).
TABLE2_GROUPS = (
    ("(a) random masks", (("NetE", "random+nete"), ("WGAN", "random+wgain"))),
    (
        "(b) NetM masks",
        (
            ("NetE", "netm+nete"),
            ("CDD", "netm+cdd"),
            ("BPFA", "netm+bpfa"),
            ("MS", "netm+ms"),
            ("MG", "mg"),
        ),
    ),
    (
        "densification masks",
        (
            ("NetE", "densify+nete"),
            ("CDD", "densify+cdd"),
            ("BPFA", "densify+bpfa"),
            ("MS", "densify+ms"),
            ("HD", "densify+hd"),
        ),
    ),
    (
        "PS + NLPE masks",
        (
            ("NetE", "ps+nlpe+nete"),
            ("CDD", "ps+nlpe+cdd"),
            ("BPFA", "ps+nlpe+bpfa"),
            ("MS", "ps+nlpe+ms"),
            ("HD", "ps+nlpe+hd"),
        ),
    ),
)
TABLE2_METHODS = [method for _, columns in TABLE2_GROUPS for _, method in columns]


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """Everything one evaluation run needs.

    Attributes:
        methods: Method names (see ``parse_method``), evaluated in this order;
            ``"table2"`` stands for `TABLE2_METHODS`.
        densities: Target mask densities in (0, 1).
        data_dir: Folder of images; ``None`` uses the embedded photos.
        image_size: Side of the centre crop (the paper uses 64 and 128);
            a multiple of 8 (the learned models need it), at least 16.
        channels: 1 (grey) or 3 (colour); ``None`` takes the channel count of
            the learned models, or 3 when no learned method runs.
        models_dir: Folder with the exported learned models (module docstring).
        output_dir: Where reports and figures are written.
        overwrite: Whether an earlier evaluation's results in `output_dir`
            may be replaced (its figures are removed first).
        max_images: Use at most this many usable images; ``None`` uses all.
        seed: Seeds every random mask method; a seed repeats the results.
        mg_density: ``exact`` keeps the round(D N) most confident mask-GAN
            pixels; ``raw`` uses the mask GAN's binary mask as it comes.
        netm_masks: How NetM's map becomes a mask (`wgimask.nn.dai`):
            ``sampled`` (round(D N) pixels drawn with the map's chances, the
            default), ``bernoulli`` (Dai's; the density only in expectation)
            or ``topk`` (the round(D N) largest values).
        ps_candidate_fraction: PS's fraction p of mask points drawn as removal
            candidates per step; ``None`` keeps the baselines' default.
        ps_removal_fraction: PS's fraction q of the candidates removed per
            step; ``None`` keeps the baselines' default.
        nlpe_cycles: Non-local pixel exchange cycles (the paper uses 5); a
            fraction runs that share of a cycle (0.25 = |mask| / 4 swaps).
            A method that names its own count (``analytic+nlpe12+hd``) runs
            that many instead.
        batch_size: Batch size for the batched runtime of learned methods.
        figures: Whether to write one comparison figure per image.
        learned_device: ``auto`` (a GPU when TensorFlow sees one) or ``cpu``.
        progress: Whether to print a progress bar.
        table2: Whether the report adds the paper's Table 2 layout
            (`reports.table2_report`); set by the methods name ``"table2"``.
    """

    methods: tuple[str, ...] = ("random+hd", "ps+hd", "ps+nlpe+hd")
    densities: tuple[float, ...] = (0.05, 0.1, 0.2)
    data_dir: str | None = None
    image_size: int = 64
    channels: int | None = None
    models_dir: str | None = None
    output_dir: str = "eval_out"
    max_images: int | None = None
    seed: int = 0
    mg_density: str = "exact"
    netm_masks: str = "sampled"
    ps_candidate_fraction: float | None = None
    ps_removal_fraction: float | None = None
    nlpe_cycles: float = 5
    batch_size: int = 32
    figures: bool = True
    learned_device: str = "auto"
    progress: bool = True
    overwrite: bool = False
    table2: bool = False

    def __post_init__(self) -> None:
        # Normalise sequences so a list from a flag parser works too.
        methods = []
        for name in self.methods:
            # "table2": the methods of the paper's Table 2 layout.
            methods += TABLE2_METHODS if name == TABLE2 else [name]
        if TABLE2 in self.methods:
            object.__setattr__(self, "table2", True)
        object.__setattr__(self, "methods", tuple(dict.fromkeys(methods)))
        object.__setattr__(self, "densities", tuple(float(d) for d in self.densities))
        if not self.methods:
            raise ConfigError("methods", "give at least one method")
        parsed = []
        for name in self.methods:
            try:
                parsed.append(parse_method(name))
            except ValueError as error:
                raise ConfigError("methods", str(error)) from None
        names = [m.name for m in parsed]
        if len(set(names)) != len(names):
            raise ConfigError("methods", f"repeated: {', '.join(self.methods)}")
        object.__setattr__(self, "methods", tuple(names))
        # The crop size first: the densities are checked against it.
        if (
            isinstance(self.image_size, bool)
            or not isinstance(self.image_size, int)
            or self.image_size < 16
            or self.image_size % 8
        ):
            raise ConfigError(
                "image_size",
                f"must be a multiple of 8 and at least 16 "
                f"(the paper uses 64 or 128), got {self.image_size!r}",
            )
        if not self.densities:
            raise ConfigError("densities", "give at least one density")
        for density in self.densities:
            if not 0.0 < density < 1.0:
                raise ConfigError(
                    "densities", f"each density must be in (0, 1), got {density:g}"
                )
        for density in self.densities:
            if (
                isinstance(self.image_size, int)
                and point_count(density, (self.image_size, self.image_size)) < 1
            ):
                raise ConfigError(
                    "densities",
                    f"density {density:g} gives no mask point on "
                    f"{self.image_size}x{self.image_size} images",
                )
        if len(set(self.densities)) != len(self.densities):
            raise ConfigError("densities", f"repeated: {self.densities}")
        if self.channels not in (None, 1, 3):
            raise ConfigError(
                "channels",
                f"must be 1 (grey) or 3 (colour), got {self.channels!r}",
            )
        if self.max_images is not None and self.max_images < 1:
            raise ConfigError(
                "max_images", f"must be at least 1, got {self.max_images}"
            )
        if self.mg_density not in MG_DENSITY_MODES:
            raise ConfigError(
                "mg_density",
                f"must be one of {', '.join(MG_DENSITY_MODES)}, "
                f"got {self.mg_density!r}",
            )
        if self.netm_masks not in NETM_MASK_MODES:
            raise ConfigError(
                "netm_masks",
                f"must be one of {', '.join(NETM_MASK_MODES)}, got {self.netm_masks!r}",
            )
        for field in ("ps_candidate_fraction", "ps_removal_fraction"):
            value = getattr(self, field)
            if value is not None and not 0.0 < value <= 1.0:
                raise ConfigError(field, f"must be in (0, 1], got {value!r}")
        if not (np.isfinite(self.nlpe_cycles) and self.nlpe_cycles > 0):
            raise ConfigError(
                "nlpe_cycles", f"must be a number > 0, got {self.nlpe_cycles}"
            )
        if self.batch_size < 1:
            raise ConfigError(
                "batch_size", f"must be at least 1, got {self.batch_size}"
            )
        if self.learned_device not in LEARNED_DEVICES:
            raise ConfigError(
                "learned_device",
                f"must be one of {', '.join(LEARNED_DEVICES)}, "
                f"got {self.learned_device!r}",
            )
        if self.data_dir is not None and not Path(self.data_dir).is_dir():
            raise ConfigError("data_dir", f"not a folder: {self.data_dir!r}")
        if self.models_dir is not None and not Path(self.models_dir).is_dir():
            raise ConfigError("models_dir", f"not a folder: {self.models_dir!r}")
        if not self.output_dir:
            raise ConfigError("output_dir", "must not be empty")

    @property
    def parsed_methods(self) -> tuple[Method, ...]:
        """The methods as ``Method`` objects."""
        return tuple(parse_method(name) for name in self.methods)
