"""The paper's comparisons on any image set: quality tables, runtime, figures.

A *method* is a mask method combined with an inpainting operator, written
``<mask>+<operator>``:

- mask methods: ``random`` (uniformly random mask with exactly round(D N)
  points), ``ps`` (probabilistic sparsification), ``ps+nlpe`` (PS followed by
  non-local pixel exchange), ``mg`` (the learned mask GAN of density D),
  ``analytic`` (Belhachmi et al.'s Laplacian-magnitude density, halftoned),
  and ``analytic+nlpe``, ``random+nlpe``, ``mg+nlpe`` (NLPE from that mask);
- inpainting operators: ``hd`` (homogeneous diffusion), ``wgain`` (the
  inpainting-only WGAN trained on random masks), ``mg`` (the generator trained
  jointly with the mask GAN of density D).

``mg`` alone means ``mg+mg``: the mask GAN's mask inpainted by its own
generator. PS and NLPE optimise the mask for homogeneous diffusion whatever
operator inpaints it afterwards.

Learned models are read from a folder laid out as::

    DIR/joint-<D>/export/mask_gan/      one joint training run per density,
    DIR/joint-<D>/export/inpainter/     <D> written as f"{D:g}", e.g. joint-0.05
    DIR/inpaint/export/inpainter/       inpainting-only WGAN (random masks)

Each is a SavedModel whose ``serving_default`` signature is called with
keyword arguments and returns a dict (see ``MASK_GAN_OUTPUTS`` and
``INPAINTER_OUTPUTS``).

``run_evaluation`` writes ``results.csv``, ``per_image.csv``, ``results.md``
(the Markdown tables, laid out like the paper's Tables 2-4), ``config.json``
and one figure per image (``figures/``) into the output folder.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wgimask import metrics

logger = logging.getLogger(__name__)

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
)
OPERATORS = ("hd", "wgain", "mg")
# Mask methods and operators that run a learned model.
LEARNED_MASKS = ("mg", "mg+nlpe")
LEARNED_OPERATORS = ("wgain", "mg")
MG_DENSITY_MODES = ("exact", "raw")
LEARNED_DEVICES = ("auto", "cpu")

MASK_GAN_OUTPUTS = ("mask", "confidence", "inpainted")
INPAINTER_OUTPUTS = ("inpainted",)

RESULT_COLUMNS = (
    "method",
    "density",
    "images",
    "psnr",
    "mae",
    "ssim",
    "seconds_per_image",
    "device",
    "mask_density",
    "seconds_per_image_batched",
)
PER_IMAGE_COLUMNS = (
    "image",
    "method",
    "density",
    "points",
    "mask_density",
    "psnr",
    "mae",
    "ssim",
    "seconds",
)


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


class MissingModelsError(FileNotFoundError):
    """Learned models that a requested method needs are not there."""


class EvaluationError(ValueError):
    """A run that cannot go on: no usable image, or unusable learned models."""


# --------------------------------------------------------------------------
# Methods


@dataclasses.dataclass(frozen=True)
class Method:
    """A mask method combined with an inpainting operator.

    Attributes:
        mask: One of ``MASK_METHODS``.
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
    def learned(self) -> bool:
        """Whether any part of the method runs a learned model."""
        return self.mask in LEARNED_MASKS or self.operator in LEARNED_OPERATORS

    @property
    def batchable(self) -> bool:
        """Whether every part runs on a batch (learned or trivially cheap)."""
        return self.mask in ("random", "mg") and self.operator in LEARNED_OPERATORS


def parse_method(name: str) -> Method:
    """Parses a method name such as ``ps+nlpe+hd``, ``random+wgain`` or ``mg``.

    Args:
        name: ``<mask>+<operator>`` with a mask method from ``MASK_METHODS``
            and an operator from ``OPERATORS``, or ``mg`` alone.

    Returns:
        The parsed method.

    Raises:
        ValueError: If the name is not a known combination.
    """
    text = name.strip().lower()
    if text == "mg":
        return Method("mg", "mg")
    mask, plus, operator = text.rpartition("+")
    if not plus or mask not in MASK_METHODS or operator not in OPERATORS:
        raise ValueError(
            f"unknown method {name!r}: write <mask>+<operator> with a mask method "
            f"from {', '.join(MASK_METHODS)} and an operator from "
            f"{', '.join(OPERATORS)} (e.g. ps+nlpe+hd, random+wgain), or 'mg'"
        )
    return Method(mask, operator)


# --------------------------------------------------------------------------
# Configuration


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """Everything one evaluation run needs.

    Attributes:
        methods: Method names (see ``parse_method``), evaluated in this order.
        densities: Target mask densities in (0, 1).
        data_dir: Folder of images; ``None`` uses the embedded photos.
        image_size: Side of the centre crop (the paper uses 64 and 128);
            a multiple of 8 (the learned models need it), at least 16.
        channels: 1 (grey) or 3 (colour); ``None`` takes the channel count of
            the learned models, or 3 when no learned method runs.
        models_dir: Folder with the exported learned models (module docstring).
        output_dir: Where reports and figures are written.
        max_images: Use at most this many usable images; ``None`` uses all.
        seed: Seeds every random mask method; a seed repeats the results.
        mg_density: ``exact`` keeps the round(D N) most confident mask-GAN
            pixels; ``raw`` uses the mask GAN's binary mask as it comes.
        ps_candidate_fraction: PS's fraction p of mask points drawn as removal
            candidates per step; ``None`` keeps the baselines' default.
        ps_removal_fraction: PS's fraction q of the candidates removed per
            step; ``None`` keeps the baselines' default.
        nlpe_cycles: Non-local pixel exchange cycles (the paper uses 5); a
            fraction runs that share of a cycle (0.25 = |mask| / 4 swaps).
        batch_size: Batch size for the batched runtime of learned methods.
        figures: Whether to write one comparison figure per image.
        learned_device: ``auto`` (a GPU when TensorFlow sees one) or ``cpu``.
        progress: Whether to print a progress bar.
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
    ps_candidate_fraction: float | None = None
    ps_removal_fraction: float | None = None
    nlpe_cycles: float = 5
    batch_size: int = 32
    figures: bool = True
    learned_device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        # Normalise sequences so a list from a flag parser works too.
        object.__setattr__(self, "methods", tuple(self.methods))
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


# --------------------------------------------------------------------------
# Learned models


@dataclasses.dataclass(frozen=True)
class ModelRequirement:
    """One exported model that the requested methods need.

    Attributes:
        kind: ``mask_gan``, ``joint_inpainter`` or ``inpainter``.
        density: The joint run's density; ``None`` for the inpainting-only WGAN.
        methods: Names of the methods that need it.
    """

    kind: str
    density: float | None
    methods: tuple[str, ...]

    def path(self, models_dir: str | Path) -> Path:
        """Where the SavedModel lives under ``models_dir``."""
        return model_path(models_dir, self.kind, self.density)

    def describe(self) -> str:
        """A short human description, e.g. 'mask GAN for density 0.05'."""
        if self.kind == "mask_gan":
            return f"mask GAN for density {self.density:g}"
        if self.kind == "joint_inpainter":
            return f"jointly trained inpainter for density {self.density:g}"
        return "inpainting-only WGAN (trained on random masks)"

    def how_to_get(self) -> str:
        """What to train and export to provide this model."""
        if self.kind == "inpainter":
            return (
                "train the inpainting-only WGAN on random masks with train.py "
                "and export it to inpaint/export/inpainter"
            )
        return (
            f"train the joint mask GAN at density {self.density:g} with train.py "
            f"and export it to joint-{self.density:g}/export/"
        )


def model_path(models_dir: str | Path, kind: str, density: float | None) -> Path:
    """The path of one exported model under a models folder.

    Args:
        models_dir: The ``--models`` folder.
        kind: ``mask_gan``, ``joint_inpainter`` or ``inpainter``.
        density: The joint run's density (ignored for ``inpainter``).

    Returns:
        ``DIR/joint-<D>/export/mask_gan``, ``DIR/joint-<D>/export/inpainter``
        or ``DIR/inpaint/export/inpainter``.

    Raises:
        ValueError: For an unknown kind or a joint model without a density.
    """
    root = Path(models_dir)
    if kind == "inpainter":
        return root / "inpaint" / "export" / "inpainter"
    if kind not in ("mask_gan", "joint_inpainter"):
        raise ValueError(f"unknown model kind {kind!r}")
    if density is None:
        raise ValueError(f"a {kind} model needs a density, got None")
    leaf = "mask_gan" if kind == "mask_gan" else "inpainter"
    return root / f"joint-{density:g}" / "export" / leaf


def required_models(
    methods: Sequence[Method], densities: Sequence[float], mg_density: str = "exact"
) -> list[ModelRequirement]:
    """Lists the exported models that a set of methods needs.

    Args:
        methods: The methods to run.
        densities: The densities to run them at.
        mg_density: ``exact`` or ``raw`` (with ``raw``, ``mg`` takes the
            inpainting straight from the mask GAN and needs no separate
            inpainter).

    Returns:
        One requirement per model, in a stable order.
    """
    needs: dict[tuple[str, float | None], list[str]] = {}
    for method in methods:
        for density in densities:
            kinds = []
            if method.mask in LEARNED_MASKS:
                kinds.append(("mask_gan", density))
            if method.operator == "wgain":
                kinds.append(("inpainter", None))
            if method.operator == "mg" and not (
                method.mask == "mg" and mg_density == "raw"
            ):
                kinds.append(("joint_inpainter", density))
            for key in kinds:
                names = needs.setdefault(key, [])
                if method.name not in names:
                    names.append(method.name)
    return [ModelRequirement(k, d, tuple(m)) for (k, d), m in needs.items()]


def check_models(config: EvaluationConfig) -> list[ModelRequirement]:
    """Checks that every model the config's methods need is exported.

    Args:
        config: The evaluation config.

    Returns:
        The requirements (empty when no learned method runs).

    Raises:
        MissingModelsError: With one line per missing model that says which
            method needs it, where it was looked for and what to train.
    """
    needs = required_models(config.parsed_methods, config.densities, config.mg_density)
    if not needs:
        return needs
    if config.models_dir is None:
        learned = sorted({name for need in needs for name in need.methods})
        raise MissingModelsError(
            f"method(s) {', '.join(learned)} need learned models: pass the models "
            f"folder (--models=DIR) that holds joint-<D>/export/mask_gan/ and "
            f"joint-<D>/export/inpainter/ for each density and "
            f"inpaint/export/inpainter/; train and export them with train.py"
        )
    missing = [
        need
        for need in needs
        if not (need.path(config.models_dir) / "saved_model.pb").is_file()
    ]
    if missing:
        lines = [f"missing learned models under {config.models_dir}:"]
        for need in missing:
            lines.append(
                f"  {need.describe()} (for {', '.join(need.methods)}): no SavedModel "
                f"at {need.path(config.models_dir)}; {need.how_to_get()}"
            )
        raise MissingModelsError("\n".join(lines))
    return needs


class SavedModelFunction:
    """The ``serving_default`` signature of an exported model, numpy in and out.

    Args:
        path: The SavedModel folder.
        inputs: Input names the signature must take (e.g. ``("image",)``).
        outputs: Output keys it must return.
        device: ``auto`` or ``cpu`` (runs under ``tf.device('/CPU:0')``).

    Raises:
        EvaluationError: If the signature lacks an input or output, or its
            image input does not state a channel count of 1 or 3.
    """

    def __init__(
        self,
        path: str | Path,
        inputs: Sequence[str],
        outputs: Sequence[str],
        device: str = "auto",
    ) -> None:
        import tensorflow as tf

        self._tf = tf
        self.path = Path(path)
        self._device = "/CPU:0" if device == "cpu" else None
        # Keep the loaded object: the signature refers to its variables.
        self._loaded = tf.saved_model.load(str(self.path))
        try:
            self._fn = self._loaded.signatures["serving_default"]
        except KeyError:
            raise EvaluationError(
                f"{self.path} has no serving_default signature"
            ) from None
        specs = self._fn.structured_input_signature[1]
        missing = [name for name in inputs if name not in specs]
        if missing:
            raise EvaluationError(
                f"{self.path}: the signature takes {sorted(specs)}, "
                f"missing input(s) {missing}"
            )
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)
        returned = set(self._fn.structured_outputs)
        if not set(outputs) <= returned:
            raise EvaluationError(
                f"{self.path}: the signature returns {sorted(returned)}, "
                f"expected {list(outputs)}"
            )
        channels = specs["image"].shape[-1]
        if channels not in (1, 3):
            raise EvaluationError(
                f"{self.path}: the image input must have 1 or 3 channels, "
                f"the signature says {specs['image'].shape}"
            )
        self.channels = int(channels)

    def __call__(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Runs the signature on float32 NHWC batches."""
        tensors = {
            name: self._tf.constant(np.asarray(value, np.float32))
            for name, value in inputs.items()
        }
        if self._device is None:
            result = self._fn(**tensors)
        else:
            with self._tf.device(self._device):
                result = self._fn(**tensors)
        return {key: result[key].numpy() for key in self.outputs}

    def warm_up(self, size: int, batch: int = 1) -> None:
        """Runs once on zeros so later timings exclude tracing and set-up."""
        shape = (batch, size, size)
        feeds = {"image": np.zeros((*shape, self.channels), np.float32)}
        if "mask" in self.inputs:
            feeds["mask"] = np.ones((*shape, 1), np.float32)
        self(**feeds)


class LearnedModels:
    """Loads each needed exported model once, checked and warmed up.

    Args:
        models_dir: The models folder.
        needs: What to load (from ``check_models``).
        image_size: Side of the evaluated images (for the warm-up).
        device: ``auto`` or ``cpu``.
    """

    def __init__(
        self,
        models_dir: str | Path,
        needs: Sequence[ModelRequirement],
        image_size: int,
        device: str = "auto",
    ) -> None:
        self._functions: dict[tuple[str, float | None], SavedModelFunction] = {}
        for need in needs:
            if need.kind == "mask_gan":
                inputs, outputs = ("image",), MASK_GAN_OUTPUTS
            else:
                inputs, outputs = ("image", "mask"), INPAINTER_OUTPUTS
            function = SavedModelFunction(
                need.path(models_dir), inputs, outputs, device
            )
            function.warm_up(image_size)
            self._functions[(need.kind, need.density)] = function
        channels = {f.channels for f in self._functions.values()}
        if len(channels) > 1:
            detail = ", ".join(
                f"{f.path} has {f.channels}" for f in self._functions.values()
            )
            raise EvaluationError(
                f"the learned models disagree on the channel count ({detail}); "
                f"evaluate grey and colour models in separate runs"
            )
        self.channels: int | None = channels.pop() if channels else None

    def get(self, kind: str, density: float | None) -> SavedModelFunction:
        """The loaded model of a kind (and density for joint models)."""
        return self._functions[(kind, None if kind == "inpainter" else density)]


# --------------------------------------------------------------------------
# Masks and inpainting


def point_count(density: float, shape: tuple[int, int]) -> int:
    """The number of mask points, round(D H W), used for exact densities."""
    return int(round(density * shape[0] * shape[1]))


def top_confidence_mask(confidence: np.ndarray, count: int) -> np.ndarray:
    """Keeps the ``count`` most confident pixels; ties go to the earlier pixel.

    Args:
        confidence: (H, W) or (H, W, 1) confidence values.
        count: Number of known pixels to keep.

    Returns:
        A bool (H, W) mask with exactly ``count`` true pixels.
    """
    conf = np.asarray(confidence, np.float64)
    if conf.ndim == 3:
        conf = conf[..., 0]
    flat = conf.ravel()
    count = int(min(max(count, 0), flat.size))
    # A stable sort of the negated values keeps raster order among ties.
    keep = np.argsort(-flat, kind="stable")[:count]
    mask = np.zeros(flat.size, bool)
    mask[keep] = True
    return mask.reshape(conf.shape)


def method_seed(seed: int, image_index: int, density: float, mask: str) -> int:
    """A seed per run seed, image, density and mask method.

    It does not depend on which other methods or densities run, so a subset
    of a run reproduces the same masks.
    """
    sequence = np.random.SeedSequence(
        [seed, image_index, int(round(density * 1e6)), MASK_METHODS.index(mask)]
    )
    return int(sequence.generate_state(1)[0])


@dataclasses.dataclass
class _MaskResult:
    """Masks for a batch, with their wall time and any by-products."""

    masks: np.ndarray  # bool (N, H, W)
    seconds: float
    inpainted: np.ndarray | None = None  # the mask GAN's own inpainting (raw)


class _Pipeline:
    """Computes masks and inpaintings for batches of images."""

    def __init__(self, config: EvaluationConfig, models: LearnedModels | None) -> None:
        self.config = config
        self.models = models

    def masks(
        self,
        mask: str,
        images: np.ndarray,
        density: float,
        image_indices: Sequence[int],
        cache: dict[str, _MaskResult] | None = None,
    ) -> _MaskResult:
        """The masks of one mask method for a batch (N, H, W, C)."""
        from wgimask import baselines

        if cache is not None and mask in cache:
            return cache[mask]
        seeds = [method_seed(self.config.seed, i, density, mask) for i in image_indices]
        shape = images.shape[1:3]
        # NLPE refines another method's mask: reuse it, and count its time as
        # NLPE's too.
        start_mask = (
            self.masks(mask[: -len("+nlpe")], images, density, image_indices, cache)
            if mask.endswith("+nlpe")
            else None
        )
        earlier = start_mask.seconds if start_mask is not None else 0.0
        start = time.perf_counter()
        inpainted = None
        if mask == "random":
            masks = np.stack(
                [baselines.random_mask(shape, density, seed=s) for s in seeds]
            )
        elif mask == "ps":
            options = {
                key: value
                for key, value in (
                    ("candidate_fraction", self.config.ps_candidate_fraction),
                    ("removal_fraction", self.config.ps_removal_fraction),
                )
                if value is not None
            }
            masks = np.stack(
                [
                    baselines.probabilistic_sparsification(
                        image, density, seed=s, **options
                    )
                    for image, s in zip(images, seeds, strict=True)
                ]
            )
        elif mask == "analytic":
            masks = np.stack(
                [
                    baselines.analytic_mask(image, density, seed=s)
                    for image, s in zip(images, seeds, strict=True)
                ]
            )
        elif start_mask is not None:
            if not start_mask.masks.any(axis=(1, 2)).all():
                # Only a raw mask-GAN mask can be empty; NLPE needs a point.
                raise EvaluationError(
                    f"{mask} at density {density:g}: a start mask has no point, "
                    f"so NLPE has nothing to exchange; use mg_density='exact'"
                )
            masks = np.stack(
                [
                    baselines.nonlocal_pixel_exchange(
                        image, first, cycles=self.config.nlpe_cycles, seed=s
                    )
                    for image, first, s in zip(
                        images, start_mask.masks, seeds, strict=True
                    )
                ]
            )
        elif mask == "mg":
            out = self.models.get("mask_gan", density)(image=images)
            if self.config.mg_density == "exact":
                count = point_count(density, shape)
                masks = np.stack(
                    [top_confidence_mask(c, count) for c in out["confidence"]]
                )
            else:
                masks = out["mask"][..., 0] > 0.5
                inpainted = out["inpainted"]
        else:  # pragma: no cover - parse_method rejects other names
            raise ValueError(f"unknown mask method {mask!r}")
        result = _MaskResult(
            np.asarray(masks, bool), time.perf_counter() - start + earlier, inpainted
        )
        if cache is not None:
            cache[mask] = result
        return result

    def inpaint(
        self, method: Method, images: np.ndarray, masks: _MaskResult, density: float
    ) -> tuple[np.ndarray, float]:
        """Inpaints a batch; returns the results and the operator's wall time."""
        from wgimask import baselines

        if method.operator == "hd" and not masks.masks.any(axis=(1, 2)).all():
            # Only a raw mask-GAN mask can be empty; diffusion needs a point.
            raise EvaluationError(
                f"{method.name} at density {density:g}: a mask has no point, so "
                f"homogeneous diffusion has nothing to inpaint from; use "
                f"mg_density='exact'"
            )
        start = time.perf_counter()
        if method.operator == "hd":
            results = np.stack(
                [
                    baselines.inpaint(image, mask)
                    for image, mask in zip(images, masks.masks, strict=True)
                ]
            )
        elif method.operator == "mg" and masks.inpainted is not None:
            results = masks.inpainted  # raw mask-GAN output, already inpainted
        else:
            kind = "inpainter" if method.operator == "wgain" else "joint_inpainter"
            results = self.models.get(kind, density)(
                image=images, mask=masks.masks[..., None].astype(np.float32)
            )["inpainted"]
        results = np.asarray(results, np.float32).reshape(images.shape)
        return results, time.perf_counter() - start


# --------------------------------------------------------------------------
# Images


def load_evaluation_images(
    data_dir: str | None, image_size: int, channels: int, max_images: int | None
) -> list[tuple[int, str, np.ndarray]]:
    """Loads and centre-crops the images to evaluate.

    Unreadable files are skipped with a warning (logged by ``wgimask.data``);
    images smaller than the crop are upscaled first (``data.center_crop``).

    Args:
        data_dir: Folder of images (searched recursively), or ``None`` for the
            embedded photos.
        image_size: Side of the centre crop.
        channels: 1 or 3.
        max_images: Stop after this many usable images (``None``: all).

    Returns:
        ``(index, name, image)`` triples; ``index`` is the position in the
        sorted file listing (it seeds the random masks), ``name`` the path
        relative to ``data_dir`` (or the photo's name), ``image`` float32
        (S, S, C) in [0, 1].

    Raises:
        EvaluationError: If the folder holds no image file or none is usable.
    """
    from wgimask import data

    if data_dir is None:
        photos = data.embedded_photos(channels)
        candidates: list[tuple[str, Callable[[], list[np.ndarray]]]] = [
            (name, lambda photo=photo: [photo])
            for name, photo in zip(data.EMBEDDED_PHOTO_NAMES, photos, strict=True)
        ]
        source = "the embedded photos"
    else:
        try:
            paths = data.list_image_files(data_dir)
        except ValueError as error:
            raise EvaluationError(str(error)) from None
        candidates = [
            (
                p.relative_to(data_dir).as_posix()
                if p.is_relative_to(data_dir)
                else p.name,
                lambda p=p: data.load_images([p], channels)[0],
            )
            for p in map(Path, paths)
        ]
        source = str(data_dir)
    images = []
    for index, (name, load) in enumerate(candidates):
        if max_images is not None and len(images) >= max_images:
            break
        try:
            (image,) = load()
        except ValueError:
            continue  # unreadable; data.load_images has logged a warning
        try:
            image = data.center_crop(image, image_size)
        except ValueError as error:
            logger.warning("Skipping image %s: %s", name, error)
            continue
        images.append((index, name, np.asarray(image, np.float32)))
    if not images:
        raise EvaluationError(f"no usable image in {source}")
    return images


# --------------------------------------------------------------------------
# Devices


def cpu_description() -> str:
    """The CPU model and thread count (from ``wgimask.devices``)."""
    from wgimask import devices

    return devices.cpu_description()


def learned_device_description(device: str = "auto") -> str:
    """The device the learned models run on: the GPU's name, or the CPU."""
    if device == "auto":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            name = details.get("device_name", gpus[0].name)
            more = f" (+{len(gpus) - 1} more)" if len(gpus) > 1 else ""
            return f"GPU: {name}{more}"
    return cpu_description()


def method_device(method: Method, cpu: str, learned: str | None) -> str:
    """The device description of a method, naming both parts if they differ."""
    mask_device = learned if method.mask in LEARNED_MASKS else cpu
    operator_device = learned if method.operator in LEARNED_OPERATORS else cpu
    if mask_device == operator_device:
        return str(mask_device)
    return f"mask: {mask_device}; inpainting: {operator_device}"


# --------------------------------------------------------------------------
# Progress


class Progress:
    """A one-line progress bar on stderr (plain lines when not a terminal)."""

    def __init__(self, total: int, label: str = "images", enabled: bool = True) -> None:
        self.total = total
        self.label = label
        self.enabled = enabled
        self.done = 0
        self._start = time.perf_counter()
        self._tty = sys.stderr.isatty()

    def update(self, note: str = "") -> None:
        """Marks one more item done."""
        self.done += 1
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self._start
        eta = elapsed / self.done * (self.total - self.done)
        width = 24
        filled = int(width * self.done / self.total)
        bar = (
            "=" * filled + (">" if filled < width else "") + "." * (width - filled - 1)
        )
        line = (
            f"[{bar[:width]}] {self.done}/{self.total} {self.label} "
            f"{elapsed:6.1f}s elapsed, ETA {eta:6.1f}s {note}"
        )
        if self._tty:
            end = "\n" if self.done == self.total else ""
            print("\r" + line, end=end, file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Reports


def density_label(density: float) -> str:
    """A density as the paper's tables write it, e.g. '5%'."""
    return f"{density * 100:g}%"


def summarise(
    per_image: Sequence[Mapping[str, Any]],
    methods: Sequence[str],
    densities: Sequence[float],
    devices: Mapping[str, str],
    batched: Mapping[tuple[str, float], float] | None = None,
) -> list[dict[str, Any]]:
    """Averages per-image rows into one row per method and density.

    Args:
        per_image: Rows with the keys of ``PER_IMAGE_COLUMNS``.
        methods: Method names, in table order.
        densities: Densities, in table order.
        devices: Device description per method name.
        batched: Batched seconds per image per (method, density), if timed.

    Returns:
        Rows with the keys of ``RESULT_COLUMNS``.
    """
    rows = []
    for method in methods:
        for density in densities:
            selected = [
                r
                for r in per_image
                if r["method"] == method and r["density"] == density
            ]
            if not selected:
                continue

            def mean(key: str, rows: list = selected) -> float:
                return float(np.mean([r[key] for r in rows]))

            rows.append(
                {
                    "method": method,
                    "density": density,
                    "images": len(selected),
                    "psnr": mean("psnr"),
                    "mae": mean("mae"),
                    "ssim": mean("ssim"),
                    "seconds_per_image": mean("seconds"),
                    "device": devices[method],
                    "mask_density": mean("mask_density"),
                    "seconds_per_image_batched": (batched or {}).get((method, density)),
                }
            )
    return rows


def _format(value: Any, key: str) -> str:
    """Formats one CSV cell."""
    if value is None:
        return ""
    if isinstance(value, float):
        # Densities as written on the command line; the rest with 10
        # significant digits (inf stays "inf" for identical images).
        return f"{value:g}" if key == "density" else f"{value:.10g}"
    return str(value)


def write_csv(
    path: str | Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]
) -> None:
    """Writes rows as CSV with the given column order."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_format(row.get(key), key) for key in columns])


def _table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    """A Markdown table; the first column left-aligned, the rest right-aligned."""
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def markdown_report(
    rows: Sequence[Mapping[str, Any]],
    methods: Sequence[str],
    densities: Sequence[float],
    *,
    images: int,
    image_size: int,
    channels: int,
    source: str,
    batch_size: int | None = None,
) -> str:
    """The result tables in Markdown, laid out like the paper's Tables 2-4.

    Rows are densities and columns methods, as in the paper: PSNR (Table 2),
    MAE and SSIM side by side (Table 3), seconds per image with the device
    (Table 4), and the mean density the masks actually had.

    Args:
        rows: Summary rows from ``summarise``.
        methods: Method names, in column order.
        densities: Densities, in row order.
        images: Number of evaluated images.
        image_size: Side of the centre crop.
        channels: 1 or 3.
        source: Where the images came from.
        batch_size: Batch size of the batched timings, if any were taken.

    Returns:
        The Markdown text.
    """
    lookup = {(r["method"], r["density"]): r for r in rows}

    def cells(key: str, fmt: str) -> list[list[str]]:
        body = []
        for density in densities:
            line = [density_label(density)]
            for method in methods:
                value = lookup.get((method, density), {}).get(key)
                line.append("-" if value is None else format(value, fmt))
            body.append(line)
        return body

    colour = "colour" if channels == 3 else "grey"
    parts = [
        f"Evaluation on {images} {colour} image(s) from {source}, centre crop "
        f"{image_size}x{image_size}.",
        "",
        "PSNR in dB (higher is better; layout of Table 2):",
        "",
        _table(["Density", *methods], cells("psnr", ".2f")),
        "",
        "MAE on the 0-255 scale (lower is better) and SSIM (higher is better; "
        "layout of Table 3):",
        "",
    ]
    mae_ssim = [
        a + b[1:]
        for a, b in zip(cells("mae", ".2f"), cells("ssim", ".2f"), strict=True)
    ]
    parts += [
        _table(
            [
                "Density",
                *(f"MAE {m}" for m in methods),
                *(f"SSIM {m}" for m in methods),
            ],
            mae_ssim,
        ),
        "",
        "Seconds per image, one image at a time (layout of Table 4):",
        "",
        _table(["Density", *methods], cells("seconds_per_image", ".4g")),
        "",
    ]
    device_lines = []
    for method in methods:
        device = next((r["device"] for r in rows if r["method"] == method), None)
        if device is not None:
            device_lines.append(f"- {method}: {device}")
    parts += ["Devices:", "", *device_lines, ""]
    batched_methods = [
        m
        for m in methods
        if any(
            lookup.get((m, d), {}).get("seconds_per_image_batched") is not None
            for d in densities
        )
    ]
    if batched_methods:
        parts += [
            f"Seconds per image of the learned methods, batches of up to "
            f"{batch_size} (after a warm-up):",
            "",
            _table(
                ["Density", *batched_methods],
                [
                    [density_label(d)]
                    + [
                        "-"
                        if (
                            v := lookup.get((m, d), {}).get("seconds_per_image_batched")
                        )
                        is None
                        else format(v, ".4g")
                        for m in batched_methods
                    ]
                    for d in densities
                ],
            ),
            "",
        ]
    parts += [
        "Mean mask density the masks actually had:",
        "",
        _table(["Density", *methods], cells("mask_density", ".4f")),
        "",
        f"SSIM: {metrics.SSIM_IMPLEMENTATION}.",
    ]
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------
# Figures


def write_figure(
    path: str | Path,
    original: np.ndarray,
    panels: Mapping[float, Sequence[Mapping[str, Any]]],
    title: str,
) -> None:
    """Writes a comparison figure like the paper's Figs. 2-3 as a PNG.

    Per density, the first row shows the original and each method's result
    (MAE and SSIM below it) and the second row each method's mask (known
    pixels white on black, point count below it).

    Args:
        path: The PNG file to write.
        original: The image, (H, W, C) in [0, 1].
        panels: Per density, one dict per method with the keys ``method``,
            ``mask`` (bool (H, W)), ``result`` (H, W, C), ``mae``, ``ssim``.
        title: The figure title (the image name).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    densities = list(panels)
    columns = 1 + max(len(p) for p in panels.values())
    rows = 2 * len(densities)
    # Inches per panel; the extra height leaves room for the captions.
    width, height = 2.0, 2.4
    fig, axes = plt.subplots(
        rows,
        columns,
        figsize=(width * columns, height * rows + 0.4),
        squeeze=False,
        layout="constrained",
    )

    def show(ax: Any, image: np.ndarray) -> None:
        image = np.clip(np.asarray(image, np.float32), 0.0, 1.0)
        if image.ndim == 3 and image.shape[-1] == 1:
            image = image[..., 0]
        if image.ndim == 2:
            ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        else:
            ax.imshow(image, interpolation="nearest")

    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    for block, density in enumerate(densities):
        top, bottom = axes[2 * block], axes[2 * block + 1]
        show(top[0], original)
        top[0].set_title("original", fontsize=10)
        top[0].set_ylabel(f"density {density_label(density)}", fontsize=10)
        bottom[0].text(
            0.5,
            0.5,
            f"masks at\n{density_label(density)} density",
            ha="center",
            va="center",
            fontsize=10,
            transform=bottom[0].transAxes,
        )
        for column, panel in enumerate(panels[density], start=1):
            show(top[column], panel["result"])
            top[column].set_title(panel["method"], fontsize=10)
            top[column].set_xlabel(
                f"MAE {panel['mae']:.2f}  SSIM {panel['ssim']:.2f}", fontsize=9
            )
            bottom[column].imshow(
                np.asarray(panel["mask"], np.float32),
                cmap="gray",
                vmin=0.0,
                vmax=1.0,
                interpolation="nearest",
            )
            bottom[column].set_xlabel(
                f"{int(np.sum(panel['mask']))} points", fontsize=9
            )
    fig.suptitle(title, fontsize=11)
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --------------------------------------------------------------------------
# Running


@dataclasses.dataclass
class EvaluationResult:
    """What ``run_evaluation`` produced.

    Attributes:
        rows: One summary row per method and density (``RESULT_COLUMNS``).
        per_image: One row per image, method and density (``PER_IMAGE_COLUMNS``).
        markdown: The Markdown tables.
        output_dir: Where the files were written.
        figures: Paths of the written figures.
    """

    rows: list[dict[str, Any]]
    per_image: list[dict[str, Any]]
    markdown: str
    output_dir: Path
    figures: list[Path]


def _batched_seconds(
    pipeline: _Pipeline,
    method: Method,
    images: np.ndarray,
    indices: Sequence[int],
    density: float,
    batch_size: int,
) -> float:
    """Seconds per image of a batchable method in batches, after a warm-up."""
    chunks = [
        (images[i : i + batch_size], indices[i : i + batch_size])
        for i in range(0, len(images), batch_size)
    ]

    def run(batch: np.ndarray, batch_indices: Sequence[int]) -> None:
        masks = pipeline.masks(method.mask, batch, density, batch_indices)
        pipeline.inpaint(method, batch, masks, density)

    run(*chunks[0])  # warm-up at the batch shape
    start = time.perf_counter()
    for batch, batch_indices in chunks:
        run(batch, batch_indices)
    return (time.perf_counter() - start) / len(images)


def _figure_name(index: int, name: str) -> str:
    """A file name for an image's figure, unique by its listing index."""
    stem = Path(name).stem or "image"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)
    return f"{index:04d}_{safe}.png"


def run_evaluation(config: EvaluationConfig) -> EvaluationResult:
    """Runs every method at every density on every image and writes reports.

    Args:
        config: The evaluation config.

    Returns:
        The summary and per-image rows, the Markdown tables and the paths.

    Raises:
        MissingModelsError: If a method's learned models are not exported.
        EvaluationError: If no usable image is left, or the learned models
            disagree on the channel count or with ``config.channels``.
    """
    methods = config.parsed_methods
    needs = check_models(config)
    models = (
        LearnedModels(
            config.models_dir, needs, config.image_size, config.learned_device
        )
        if needs
        else None
    )
    channels = config.channels
    if models is not None and models.channels is not None:
        if channels is not None and channels != models.channels:
            raise EvaluationError(
                f"channels={channels} but the learned models take "
                f"{models.channels}-channel images"
            )
        channels = models.channels
    channels = channels or 3
    loaded = load_evaluation_images(
        config.data_dir, config.image_size, channels, config.max_images
    )
    output_dir = Path(config.output_dir)
    figure_dir = output_dir / "figures"
    output_dir.mkdir(parents=True, exist_ok=True)
    if config.figures:
        figure_dir.mkdir(exist_ok=True)

    cpu = cpu_description()
    learned = (
        learned_device_description(config.learned_device)
        if models is not None
        else None
    )
    devices = {m.name: method_device(m, cpu, learned) for m in methods}
    pipeline = _Pipeline(config, models)
    per_image: list[dict[str, Any]] = []
    figures: list[Path] = []
    progress = Progress(len(loaded), enabled=config.progress)
    for index, name, image in loaded:
        batch = image[None]
        panels: dict[float, list[dict[str, Any]]] = {}
        for density in config.densities:
            cache: dict[str, _MaskResult] = {}
            panels[density] = []
            for method in methods:
                masks = pipeline.masks(method.mask, batch, density, [index], cache)
                result, seconds = pipeline.inpaint(method, batch, masks, density)
                mask, result = masks.masks[0], result[0]
                scores = metrics.all_metrics(image, result)
                per_image.append(
                    {
                        "image": name,
                        "method": method.name,
                        "density": density,
                        "points": int(mask.sum()),
                        "mask_density": float(mask.mean()),
                        **scores,
                        "seconds": masks.seconds + seconds,
                    }
                )
                panels[density].append(
                    {"method": method.name, "mask": mask, "result": result, **scores}
                )
        if config.figures:
            path = figure_dir / _figure_name(index, name)
            write_figure(path, image, panels, f"{name} ({config.image_size}px)")
            figures.append(path)
        progress.update()

    batched: dict[tuple[str, float], float] = {}
    all_images = np.stack([image for _, _, image in loaded])
    indices = [index for index, _, _ in loaded]
    for method in methods:
        if method.batchable:
            for density in config.densities:
                batched[(method.name, density)] = _batched_seconds(
                    pipeline, method, all_images, indices, density, config.batch_size
                )

    names = [m.name for m in methods]
    rows = summarise(per_image, names, config.densities, devices, batched)
    source = config.data_dir or "the embedded photos"
    markdown = markdown_report(
        rows,
        names,
        config.densities,
        images=len(loaded),
        image_size=config.image_size,
        channels=channels,
        source=source,
        batch_size=config.batch_size if batched else None,
    )
    write_csv(output_dir / "results.csv", rows, RESULT_COLUMNS)
    from wgimask.tradeoff import tradeoff_figure_name, write_tradeoff_figure

    # Quality against time, one figure per density (PSNR and SSIM panels).
    tradeoff_title = f"{len(loaded)} images, {config.image_size}px"
    for density in config.densities:
        if any(r["density"] == density for r in rows):
            write_tradeoff_figure(
                output_dir / tradeoff_figure_name(density),
                rows,
                density,
                tradeoff_title,
            )
    write_csv(output_dir / "per_image.csv", per_image, PER_IMAGE_COLUMNS)
    (output_dir / "results.md").write_text(markdown)
    settings = dataclasses.asdict(config)
    settings["channels_used"] = channels
    if any(m.mask in ("ps", "ps+nlpe") for m in methods):
        from wgimask import baselines

        # Record the PS step sizes in effect, defaults included.
        settings["ps_fractions_used"] = {
            "candidate_fraction": config.ps_candidate_fraction
            or baselines.DEFAULT_CANDIDATE_FRACTION,
            "removal_fraction": config.ps_removal_fraction
            or baselines.DEFAULT_REMOVAL_FRACTION,
        }
    settings["images_used"] = [name for _, name, _ in loaded]
    settings["ssim"] = metrics.SSIM_IMPLEMENTATION
    (output_dir / "config.json").write_text(json.dumps(settings, indent=2) + "\n")
    return EvaluationResult(rows, per_image, markdown, output_dir, figures)
