"""The paper's comparisons on any image set: quality tables, runtime, figures.

A *method* is a mask method combined with an inpainting operator, written
``<mask>+<operator>``:

- mask methods: ``random`` (uniformly random mask with exactly round(D N)
  points), ``ps`` (probabilistic sparsification), ``ps+nlpe`` (PS followed by
  non-local pixel exchange), ``mg`` (the learned mask GAN of density D),
  ``analytic`` (Belhachmi et al.'s Laplacian-magnitude density, halftoned),
  ``electrostatic`` (that density halftoned electrostatically), ``densify``
  (grown from a sparse analytic mask where diffusion fails most), and
  ``analytic+nlpe``, ``electrostatic+nlpe``, ``densify+nlpe``,
  ``random+nlpe``, ``mg+nlpe`` (NLPE from that mask;
  ``analytic+nlpe12`` runs 12 cycles, whatever ``nlpe_cycles`` says);
- inpainting operators: ``hd`` (homogeneous diffusion), ``eed``
  (edge-enhancing diffusion), ``bih`` (biharmonic), ``cdd`` (curvature-driven
  diffusion), ``ms`` (Mumford-Shah), ``bpfa`` (beta process factor analysis;
  the model-free ones: `wgimask.diffusion.operators`), ``wgain`` (the
  inpainting-only WGAN trained on random masks), ``mg`` (the generator trained
  jointly with the mask GAN of density D), ``nete`` (Dai et al.'s NetE of
  density D, ``DIR/nete-<D>/export/nete_best.keras``, or ``nete.keras`` for
  a run that did not validate; 64 px images only); the mask ``netm`` is Dai
  et al.'s NetM of density D (``DIR/netm-<D>/export/netm_best.keras``, or
  ``netm.keras``), its map binarised as
  ``netm_masks`` says (default: round(D N) pixels drawn with the map's
  chances).

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
and one figure per image (``figures/``) into the output folder. The method
registry and ``EvaluationConfig`` are in `wgimask.evaluation.config`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wgimask.evaluation import metrics

# Re-exported: the method registry and the configuration lived here before
# they moved to evaluation_config, and user code and tests import them here.
from wgimask.evaluation.config import (  # noqa: F401
    LEARNED_DEVICES,
    LEARNED_MASKS,
    LEARNED_OPERATORS,
    MASK_METHODS,
    MG_DENSITY_MODES,
    MODEL_FREE_OPERATORS,
    OPERATORS,
    ConfigError,
    EvaluationConfig,
    Method,
    parse_method,
    split_nlpe,
)
from wgimask.evaluation.models import (  # noqa: F401 - part of this module's API
    LearnedModels,
    MissingModelsError,
    ModelRequirement,
    check_models,
    model_path,
    required_models,
)
from wgimask.evaluation.reports import (  # noqa: F401 - part of this module's API
    EvaluationError,
    Progress,
    cpu_description,
    density_label,
    learned_device_description,
    load_evaluation_images,
    markdown_report,
    summarise,
    table2_report,
    write_csv,
    write_figure,
)
from wgimask.masks.exact_density import point_count, top_confidence_mask  # noqa: F401
from wgimask.masks.registry import MODEL_FREE, model_free_mask

logger = logging.getLogger(__name__)

MASK_GAN_OUTPUTS = ("mask", "confidence", "inpainted")
INPAINTER_OUTPUTS = ("inpainted",)

# What an evaluation writes into its output folder (and the trade-off
# figures, tradeoff_*pct.png).
RESULTS_CSV, PER_IMAGE_CSV, RESULTS_MD = "results.csv", "per_image.csv", "results.md"
SETTINGS_JSON, FIGURES = "config.json", "figures"
REPORT_FILES = (RESULTS_CSV, PER_IMAGE_CSV, RESULTS_MD, SETTINGS_JSON, FIGURES)

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
    "upscaled",
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
    "upscaled",
)


# --------------------------------------------------------------------------
# Masks and inpainting


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
        # analytic+nlpe12 draws as analytic+nlpe: the first steps are the same.
        base, own_cycles = split_nlpe(mask)
        seeds = [method_seed(self.config.seed, i, density, base) for i in image_indices]
        # NLPE refines another method's mask: reuse it, and count its time as
        # NLPE's too.
        start_mask = (
            self.masks(base[: -len("+nlpe")], images, density, image_indices, cache)
            if base.endswith("+nlpe")
            else None
        )
        cycles = self.config.nlpe_cycles if own_cycles is None else own_cycles
        earlier = start_mask.seconds if start_mask is not None else 0.0
        start = time.perf_counter()
        inpainted = None
        if mask in MODEL_FREE:
            options = {}
            if mask == "ps":
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
                    model_free_mask(mask, image, density, seed=s, **options)
                    for image, s in zip(images, seeds, strict=True)
                ]
            )
        elif start_mask is not None:
            if not start_mask.masks.any(axis=(1, 2)).all():
                # A raw mask-GAN mask or a Bernoulli NetM mask can be empty;
                # NLPE needs a point.
                raise EvaluationError(
                    f"{mask} at density {density:g}: a start mask has no point, "
                    f"so NLPE has nothing to exchange; use mg_density='exact' "
                    f"(netm_masks='sampled' for NetM)"
                )
            masks = np.stack(
                [
                    baselines.nonlocal_pixel_exchange(
                        image, first, cycles=cycles, seed=s
                    )
                    for image, first, s in zip(
                        images, start_mask.masks, seeds, strict=True
                    )
                ]
            )
        elif mask == "netm":
            model = self.models.get("netm", density)
            with self.models.device():
                masks = model.mask(images, density, self.config.netm_masks, seeds=seeds)
        elif mask == "mg":
            # wgimask.inference: the same code as the wgimask command.
            model = self.models.get("mask_gan", density)
            with self.models.device():
                if self.config.mg_density == "exact":
                    masks = model.mask(images, density)
                else:
                    masks = model.confidence(images) > 0.5
                    inpainted = model.inpaint(images, masks)
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

        model_free = method.operator in MODEL_FREE_OPERATORS
        if model_free and not masks.masks.any(axis=(1, 2)).all():
            # A raw mask-GAN mask or a Bernoulli NetM mask can be empty; the
            # operators need a point.
            raise EvaluationError(
                f"{method.name} at density {density:g}: a mask has no point, so "
                f"{method.operator} has nothing to inpaint from; use "
                f"mg_density='exact' (netm_masks='sampled' for NetM)"
            )
        start = time.perf_counter()
        if method.operator == "hd":
            results = np.stack(
                [
                    baselines.inpaint(image, mask)
                    for image, mask in zip(images, masks.masks, strict=True)
                ]
            )
        elif model_free:
            from wgimask.diffusion.operators import model_free_inpaint

            results = np.stack(
                [
                    model_free_inpaint(method.operator, image, mask)
                    for image, mask in zip(images, masks.masks, strict=True)
                ]
            )
        elif method.operator == "mg" and masks.inpainted is not None:
            results = masks.inpainted  # raw mask-GAN output, already inpainted
        else:
            kind = {"wgain": "inpainter", "nete": "nete"}.get(
                method.operator, "joint_inpainter"
            )
            with self.models.device():
                results = self.models.get(kind, density).inpaint(images, masks.masks)
        results = np.asarray(results, np.float32).reshape(images.shape)
        return results, time.perf_counter() - start


def method_device(method: Method, cpu: str, learned: str | None) -> str:
    """The device description of a method, naming both parts if they differ."""
    mask_device = learned if method.learned_mask else cpu
    operator_device = learned if method.operator in LEARNED_OPERATORS else cpu
    if mask_device == operator_device:
        return str(mask_device)
    return f"mask: {mask_device}; inpainting: {operator_device}"


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


def earlier_results(output_dir: Path) -> list[Path]:
    """What an evaluation wrote into `output_dir` (its reports and figures)."""
    found = [output_dir / n for n in REPORT_FILES if (output_dir / n).exists()]
    # tradeoff_figure_name's files, whatever their densities.
    return found + sorted(output_dir.glob("tradeoff_*pct.png"))


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
    from wgimask import _entry

    methods = config.parsed_methods
    problem = _entry.output_dir_problem(config.output_dir)
    if problem:
        raise EvaluationError(f"--output_dir: {problem}")
    earlier = earlier_results(Path(config.output_dir))
    if earlier and not config.overwrite:
        raise EvaluationError(
            f"--output_dir: {config.output_dir} holds an earlier evaluation "
            f"({earlier[0].name}{' and more' if len(earlier) > 1 else ''}); pass "
            "--overwrite to replace it or choose another --output_dir"
        )
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
    if all(item[3] for item in loaded):
        raise EvaluationError(
            f"every image is smaller than the {config.image_size}x"
            f"{config.image_size} crop: lower --image_size (upscaled images "
            f"are reported apart, never as the main result)"
        )
    output_dir = Path(config.output_dir)
    figure_dir = output_dir / FIGURES
    # No figure of the earlier run may stand beside the new results.
    for path in earlier_results(output_dir):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
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
    for index, name, image, upscaled in loaded:
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
                        "upscaled": upscaled,
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
    all_images = np.stack([item[2] for item in loaded])
    indices = [item[0] for item in loaded]
    for method in methods:
        if method.batchable:
            for density in config.densities:
                batched[(method.name, density)] = _batched_seconds(
                    pipeline, method, all_images, indices, density, config.batch_size
                )

    names = [m.name for m in methods]
    # Images smaller than the crop were upscaled: easier to inpaint, so they are
    # averaged apart (rows with upscaled=True) and kept out of the tables.
    native = [r for r in per_image if not r["upscaled"]]
    small = [r for r in per_image if r["upscaled"]]
    rows = [
        {**row, "upscaled": False}
        for row in summarise(native, names, config.densities, devices, batched)
    ] + [
        {**row, "upscaled": True, "seconds_per_image_batched": None}
        for row in summarise(small, names, config.densities, devices)
    ]
    upscaled_names = [item[1] for item in loaded if item[3]]
    source = config.data_dir or "the embedded photos"
    markdown = markdown_report(
        rows,
        names,
        config.densities,
        images=len(loaded) - len(upscaled_names),
        image_size=config.image_size,
        channels=channels,
        source=source,
        batch_size=config.batch_size if batched else None,
        upscaled=upscaled_names,
    )
    if config.table2:
        markdown += "\n" + table2_report(rows, config.densities)
    write_csv(output_dir / RESULTS_CSV, rows, RESULT_COLUMNS)
    from wgimask.evaluation.tradeoff import tradeoff_figure_name, write_tradeoff_figure

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
    write_csv(output_dir / PER_IMAGE_CSV, per_image, PER_IMAGE_COLUMNS)
    (output_dir / RESULTS_MD).write_text(markdown)
    settings = dataclasses.asdict(config)
    settings["channels_used"] = channels
    if any(split_nlpe(m.mask)[0] in ("ps", "ps+nlpe") for m in methods):
        from wgimask import baselines

        # Record the PS step sizes in effect, defaults included.
        settings["ps_fractions_used"] = {
            "candidate_fraction": config.ps_candidate_fraction
            or baselines.DEFAULT_CANDIDATE_FRACTION,
            "removal_fraction": config.ps_removal_fraction
            or baselines.DEFAULT_REMOVAL_FRACTION,
        }
    settings["images_used"] = [item[1] for item in loaded]
    settings["images_upscaled"] = upscaled_names
    settings["ssim"] = metrics.SSIM_IMPLEMENTATION
    (output_dir / SETTINGS_JSON).write_text(json.dumps(settings, indent=2) + "\n")
    return EvaluationResult(rows, per_image, markdown, output_dir, figures)
