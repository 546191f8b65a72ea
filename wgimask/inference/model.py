"""Inference with trained models: one path for the command, evaluation and users.

A *model* is a training run folder (``train.py --model_dir``), its ``export/``
folder, or one of the runs shipped in ``wgimask/pretrained``. `Model.load`
reads the run's ``config.json`` (density, mode, crop size, channels, model
size) and loads the network parts that inference runs
(`wgimask.serve.parts`) with one of two runtimes, which give the same
numbers to within float32 rounding:

* ``litert``: the parts converted at export into ``export/lite``
  (`wgimask.serve.lite`), run by the LiteRT interpreter. TensorFlow is never
  imported, which saves 2.1-3.3 s of every command (docs/performance.md);
* ``keras``: the Keras networks built from the config with a free image size
  and filled with the weights read straight from the SavedModels' variable
  files (their function graphs are never deserialised, which took about 10 s
  for two models). Used for runs without a current ``export/lite``.

The seed inputs r are TensorFlow's stateless draws computed in numpy
(`wgimask.nn.stateless_noise`), the same as the exported SavedModels draw.

Images up to the training crop size go through the networks in one pass
(padded by reflection to multiples of 8, three 2x2 poolings). Larger images
are processed in tiles of the crop size, because the networks were trained on
such crops and degrade on much larger inputs (measured on six held-out
768x512 photos with the shipped 64 px models: learned inpainting 2-12 dB
worse in one whole-image pass; docs/performance.md). The tiling leaves no
trace:

* the mask generator runs once per pixel, on non-overlapping tiles; its
  confidence depends on where a pixel sits in its tile, so pixels are ranked
  first within their *tile phase* (the position inside the tile, over all
  tiles) and only then by confidence. Every tile position gets the same share
  of mask points, so no row or column of the tile grid is left empty or
  crowded, while points still move to the tiles whose content needs them;
* the inpainting generator runs on tiles overlapping by an eighth, blended
  with tent weights that fall to zero at every tile border.

The mask keeps exactly round(D H W) pixels: those with the highest confidence
of the mask generator (`top_confidence_mask`), so its density is the requested
one whatever density the model was trained for.

Models trained with the analytic prior and the ordered dither
(``--mask_prior=analytic --binarisation=ordered_dither``) and with a prefilled
generator (``--prefill=diffusion``) split their work the other way round: the
parts that see the whole image run on the whole image, and only the learned
corrections run in blended tiles. The analytic density of the whole photo is
multiplied by m's correction (tiles overlapping by an eighth, tent-blended in
log space), rescaled to mean D over the whole image and dithered once, so
points go wherever the photo needs them; g's residual (blended tiles) is added
to the whole-image diffusion inpainting of the mask (`wgimask.baselines`),
computed once. Tile borders reach neither the density nor the diffusion.
Models trained with densified points (``--mask_points=densify``) make the
whole-image densification mask instead, its start and its ranking weighted by
exp(r) (`wgimask.masks.point_placement`).

Example:
    >>> import numpy as np, wgimask
    >>> image = np.random.default_rng(0).random((120, 90, 3), np.float32)
    >>> mask, inpainting = wgimask.optimise_mask(image, 0.1)
    >>> int(mask.sum()) == round(0.1 * 120 * 90)
    True
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
import sys
from collections.abc import Callable

import numpy as np

from wgimask import run_folder
from wgimask.inference import arrays, tiles
from wgimask.inference.tiles import MULTIPLE, TILE_BATCH  # noqa: F401 - API
from wgimask.masks.analytic import auto_sigma
from wgimask.masks.exact_density import (  # noqa: F401 - part of this module's API
    check_density,
    phase_rank,
    point_count,
    top_confidence_mask,
)
from wgimask.pipeline import MaskPipeline
from wgimask.serve.model_files import (  # noqa: F401 - part of this module's API
    PRETRAINED_DIR,
    ModelError,
    choose_model,
    export_dir,
    read_config,
    shipped_models,
)

#: The runtimes `Model.load` can run a model's parts with (None: choose).
RUNTIMES = (None, "litert", "keras")


# --------------------------------------------------------------------------
# Models


@dataclasses.dataclass
class Model:
    """A trained run's networks, ready for whole images of any size.

    Attributes:
        path: The run folder.
        config: Its training config (``config.json``).
        parts: Runs a network part (`wgimask.serve.parts`) on a batch:
            ``parts(name, [arrays in PART_INPUTS order]) -> array``.
        runtime: ``"litert"`` (the converted parts in ``export/lite``, no
            TensorFlow) or ``"keras"`` (Keras networks on TensorFlow).
        gated: Whether a prefilled generator's correction goes through
            `arrays.residual_gate` (default; False: everywhere, as the
            exported ``inpainter`` SavedModel serves it).
    """

    path: pathlib.Path
    config: dict
    parts: Callable[[str, list[np.ndarray]], np.ndarray]
    runtime: str
    gated: bool = True

    @functools.cached_property
    def pipeline(self) -> MaskPipeline:
        """How the run makes masks and inpaintings, decoded from its config."""
        return MaskPipeline.from_config(self.config)

    @property
    def has_mask(self) -> bool:
        """Whether the run has a mask generator (False: inpainting only)."""
        return self.pipeline.has_mask_network

    @property
    def density(self) -> float | None:
        """The density the mask generator was trained for (None: inpainting only)."""
        return float(self.config["density"]) if self.has_mask else None

    @property
    def channels(self) -> int:
        """1 (grey) or 3 (colour)."""
        return int(self.config["channels"])

    @property
    def crop_size(self) -> int | None:
        """The side of the training crops."""
        return self.config.get("image_size")

    @classmethod
    def load(cls, path: str | pathlib.Path, runtime: str | None = None) -> Model:
        """Loads a run's network parts for one of the two runtimes.

        Args:
            path: A run folder or its export folder.
            runtime: ``"litert"``, ``"keras"``, or None: LiteRT when the run's
                ``export/lite`` matches its weights and ai-edge-litert is
                installed, else Keras (with a one-line note on stderr when the
                lite folder exists but is out of date or unusable).

        Returns:
            The model.

        Raises:
            ModelError: In one line, for a folder without an export or a config,
                weights that do not fit the config's networks, an unknown
                runtime, or ``runtime="litert"`` where it cannot serve.
        """
        from wgimask.serve import lite

        if runtime not in RUNTIMES:
            raise ModelError(f"runtime must be one of {RUNTIMES}, received {runtime!r}")
        exported = export_dir(path)
        config = read_config(exported)
        root = exported.parent if exported.name == run_folder.EXPORT else exported
        names = MaskPipeline.from_config(config).parts
        if runtime != "keras":
            problem = lite.lite_problem(exported, config)
            if problem is None and not lite.available():
                # Not a problem of the run: no note, the Keras runtime serves.
                if runtime == "litert":
                    raise ModelError(
                        "cannot use the LiteRT runtime: the package "
                        "ai-edge-litert is not installed"
                    )
            elif problem is None:
                try:
                    parts = lite.LiteParts(exported / lite.LITE_DIR, names)
                    return cls(root, config, parts, "litert")
                except (ValueError, RuntimeError) as error:
                    problem = f"{exported / lite.LITE_DIR} is unusable ({error})"
            if problem is not None:
                if runtime == "litert":
                    raise ModelError(f"cannot run {root} with LiteRT: {problem}")
                if (exported / lite.LITE_DIR).exists():
                    print(
                        f"wgimask: {problem}; using TensorFlow (rebuild it with "
                        f"`python -m wgimask.serve.lite {root}`)",
                        file=sys.stderr,
                    )
        return cls(root, config, _keras_parts(exported, config, names), "keras")

    def _check(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images, np.float32)
        if images.ndim != 4 or images.shape[-1] != self.channels or not len(images):
            raise ValueError(
                f"expected images of shape (N, H, W, {self.channels}) with N >= 1, "
                f"received {images.shape}"
            )
        return images

    @property
    def tile(self) -> int | None:
        """Tile side for large images: the training crop size (None: whole)."""
        size = self.config.get("image_size")
        return size if isinstance(size, int) and size % MULTIPLE == 0 else None

    def _tiled(self, height: int, width: int) -> bool:
        return self.tile is not None and (height > self.tile or width > self.tile)

    def _batched(self, name: str, count: int, take, progress=None) -> np.ndarray:
        """`tiles.batched` with this model's parts."""
        return tiles.batched(self.parts, name, count, take, progress)

    def _batched_arrays(self, name: str, inputs: list[np.ndarray]) -> np.ndarray:
        """`_batched` on inputs that are already (N, H, W, .) arrays."""
        return self._batched(
            name, len(inputs[0]), lambda first, last: [a[first:last] for a in inputs]
        )

    @property
    def prior(self) -> bool:
        """Whether m learned a correction of the analytic density."""
        return self.pipeline.prior

    @property
    def prefilled(self) -> bool:
        """Whether g refines the diffusion inpainting (``--prefill=diffusion``,
        or a mask-only run's untrained g, which returns it unchanged)."""
        return self.pipeline.residual

    def _blended(
        self,
        name: str,
        inputs: list[np.ndarray],
        channels: int,
        progress=None,
        active: np.ndarray | None = None,
    ) -> np.ndarray:
        """`tiles.blended` with this model's parts and tile."""
        height, width = inputs[0].shape[:2]
        tile = self.tile if self._tiled(height, width) else None
        return tiles.blended(self.parts, name, inputs, channels, tile, progress, active)

    def _mask_pass(self, name: str, images: np.ndarray) -> np.ndarray:
        """A mask-generator part on images up to the crop size, in one pass."""
        padded, crop = arrays.pad_to_multiple(images, MULTIPLE)
        return self._batched_arrays(
            name, [padded, arrays.seed_noise(padded.shape, "mask")]
        )[crop]

    def _corrections(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W, 1) log-space correction r of a prior model (blended tiles)."""
        height, width = images.shape[1:3]
        noise = arrays.seed_noise(images.shape, "mask")
        if self._tiled(height, width):
            return np.stack(
                [
                    self._blended("correction", [i, n], 1)
                    for i, n in zip(images, noise, strict=True)
                ]
            )
        return self._mask_pass("correction", images)

    def _prior_confidences(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W) confidence of a prior model: whole-image density, blended r."""
        height, width = images.shape[1:3]
        corrections = self._corrections(images)
        # The analytic density's reflecting filter needs sides of at least its
        # reach: smaller images are padded by their edge values, then cropped.
        sigma = self.config.get("prior_sigma")
        sigma = auto_sigma(float(self.config["density"])) if sigma is None else sigma
        side = int(4.0 * float(sigma) + 0.5) + 1
        pad = ((0, 0), (0, max(side - height, 0)), (0, max(side - width, 0)), (0, 0))
        confidence = self._batched_arrays(
            "prior_confidence",
            [np.pad(images, pad, mode="edge"), np.pad(corrections, pad, mode="edge")],
        )
        return confidence[:, :height, :width, 0]

    def confidence(self, images: np.ndarray) -> np.ndarray:
        """The mask generator's confidence in [0, 1].

        Images up to the crop size go through in one pass; larger ones in
        non-overlapping tiles of the crop size (rank them with
        ``top_confidence_mask(..., tile=model.tile)``, as `mask` does). A
        prior model's analytic density always sees the whole image.

        Args:
            images: (N, H, W, C) float in [0, 1], any H and W of at least 2.

        Returns:
            (N, H, W) float32.
        """
        if not self.has_mask:
            raise ModelError(f"{self.path} is an inpainting-only model: no mask")
        images = self._check(images)
        height, width = images.shape[1:3]
        if self.prior:
            return self._prior_confidences(images)
        if not self._tiled(height, width):
            return self._mask_pass("confidence", images)[..., 0]
        tile = self.tile
        padded, crop = arrays.pad_to_multiple(images, tile)
        rows, cols = padded.shape[1] // tile, padded.shape[2] // tile
        tiles = padded.reshape(len(images), rows, tile, cols, tile, -1)
        tiles = tiles.transpose(0, 1, 3, 2, 4, 5).reshape(-1, tile, tile, self.channels)
        # Noise drawn for the whole padded image and cut like it: every tile
        # gets its own, as every training crop did.
        noise = arrays.seed_noise(padded.shape, "mask")
        noise = noise.reshape(len(images), rows, tile, cols, tile, -1)
        noise = noise.transpose(0, 1, 3, 2, 4, 5).reshape(tiles.shape)
        out = self._batched_arrays("confidence", [tiles, noise])[..., 0]
        out = out.reshape(len(images), rows, cols, tile, tile)
        out = out.transpose(0, 1, 3, 2, 4).reshape(padded.shape[:3])
        return out[crop]

    def mask(self, images: np.ndarray, density: float, progress=None) -> np.ndarray:
        """Exact-density learned masks: (N, H, W) bool, round(D H W) points each.

        ``progress(done, total)``, if given, hears of a densified mask's steps.
        """
        images = self._check(images)
        count = check_density(density, images.shape[1:3])
        points = self.pipeline.points
        if points == "densify":
            # Trained on densified points: the whole-image densification
            # mask, its start and its ranking weighted by exp(r).
            from wgimask.masks.point_placement import densified_mask

            if not self.pipeline.correction:
                # mask_correction="off": r = 0, the plain densification mask;
                # m does not run.
                from wgimask.masks.densification import densification_mask

                return np.stack(
                    [densification_mask(i, density, progress=progress) for i in images]
                )
            return np.stack(
                [
                    densified_mask(image, r[..., 0], density, progress=progress)
                    for image, r in zip(images, self._corrections(images), strict=True)
                ]
            )
        confidence = self.confidence(images)
        if points == "halftone":
            # Trained with the dither: the confidence is a point density, to
            # be spread, not ranked (a top-k would cluster the points). It is
            # halftoned exactly as the analytic masks halftone the analytic
            # density, so that the learned correction is the only difference
            # from them. On the 18 validation crops the shipped models' masks
            # gave 0.15-0.58 dB more with diffusion this way (5-20 %) than
            # with the networks' own phase-0 Bayer dither (the exported
            # mask_gan's), which rescales differently (six clamp passes) and
            # has no error diffusion from 15 %.
            from wgimask.masks.analytic import halftone_density

            return np.stack(
                [halftone_density(c.astype(np.float64), density) for c in confidence]
            )
        return np.stack([top_confidence_mask(c, count, self.tile) for c in confidence])

    def inpaint(
        self,
        images: np.ndarray,
        masks: np.ndarray,
        diffused: np.ndarray | None = None,
        progress=None,
    ) -> np.ndarray:
        """The learned inpainting of images from masks.

        Images up to the crop size go through in one pass; larger ones in
        tiles of the crop size overlapping by an eighth, blended with tent
        weights. A prefilled generator adds its (blended) residual to the
        whole-image diffusion inpainting.

        Args:
            images: (N, H, W, C) float in [0, 1]; only known pixels are used.
            masks: (N, H, W) or (N, H, W, 1), true/1 = known.
            diffused: For a prefilled generator, the homogeneous diffusion
                inpaintings of these images and masks if already computed
                (`wgimask.baselines.inpaint`); ignored by other generators.
            progress: optional ``progress(done, total)`` per batch of tiles.

        Returns:
            (N, H, W, C) float32 in [0, 1], equal to the image where known.
        """
        images = self._check(images)
        masks = np.asarray(masks, np.float32).reshape(*images.shape[:3], 1)
        if self.prefilled:
            out = self._prefilled_inpaint(images, masks, diffused, progress)
        else:
            out = self._generator_pass("generator", images, masks, None, progress)
        known = masks > 0.5
        return np.clip(np.where(known, images, out), 0.0, 1.0)

    def _prefilled_inpaint(
        self,
        images: np.ndarray,
        masks: np.ndarray,
        diffused: np.ndarray | None,
        progress=None,
    ) -> np.ndarray:
        """Whole-image diffusion plus g's (blended) residual, clipped to [0, 1]."""
        from wgimask import baselines

        if diffused is None:
            diffused = np.stack(
                [
                    baselines.inpaint(i, m[..., 0] > 0.5)
                    for i, m in zip(images, masks, strict=True)
                ]
            )
        diffused = np.asarray(diffused, np.float32).reshape(images.shape)
        if not self.gated:
            gates = np.ones((*images.shape[:3], 1), np.float32)
        else:
            # The correction stays out where diffusion is already close to
            # the image (smooth content); tiles it leaves out do not run.
            gates = arrays.residual_gate(diffused, self.tile or MULTIPLE)
        residual = self._generator_pass(
            "residual", images, masks, diffused, progress, gates
        )
        return np.clip(diffused + gates * residual, 0.0, 1.0)

    def _generator_pass(
        self,
        name: str,
        images: np.ndarray,
        masks: np.ndarray,
        diffused: np.ndarray | None = None,
        progress=None,
        gates: np.ndarray | None = None,
    ) -> np.ndarray:
        """A generator part (``generator`` or ``residual``) on a batch.

        Its inputs are the known pixels, the mask and the noise in the unknown
        pixels only (as export.inpaint), plus the diffusion inpaintings for
        ``residual``: in one pass up to the crop size, else per image in
        blended tiles. Where ``gates`` (N, H, W, 1) is 0 over a whole image
        or tile, that image or tile does not run (its output is 0, which the
        gate would make of it anyway).
        """
        extra = [] if diffused is None else [diffused]
        height, width = images.shape[1:3]
        if self._tiled(height, width):
            noise = arrays.seed_noise((1, *images.shape[1:]), "generator")[0]
            if gates is None:
                gates = np.ones((*images.shape[:3], 1), np.float32)
            return np.stack(
                [
                    self._blended(
                        name,
                        [i * m, m, noise * (1.0 - m), *e],
                        self.channels,
                        progress,
                        active=g[..., 0] > 0,
                    )
                    for i, m, g, *e in zip(images, masks, gates, *extra, strict=True)
                ]
            )
        if gates is not None and not (gates > 0).any():
            return np.zeros(images.shape, np.float32)
        # Padded pixels are unknown-or-mirrored alike: the mask reflects too,
        # so border points are mirrored as in a larger image.
        padded, crop = arrays.pad_to_multiple(images, MULTIPLE)
        padded_masks, *padded_extra = (
            arrays.pad_to_multiple(a, MULTIPLE)[0] for a in (masks, *extra)
        )
        noise = arrays.seed_noise(padded.shape, "generator") * (1.0 - padded_masks)
        inputs = [padded * padded_masks, padded_masks, noise, *padded_extra]
        return self._batched_arrays(name, inputs)[crop]

    def optimise_mask(
        self, image: np.ndarray, density: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """The exact-density learned mask of one image and its inpainting.

        See `optimise_mask`.
        """
        image = arrays.as_image(image, self.channels)
        mask = self.mask(image[None], density)
        return mask[0], self.inpaint(image[None], mask)[0]


def _keras_parts(exported: pathlib.Path, config: dict, names: tuple[str, ...]):
    """The ``keras`` runtime: the parts of the Keras networks, on TensorFlow."""
    from wgimask import _entry

    _entry.import_tensorflow_quietly()
    import tensorflow as tf

    from wgimask.serve.parts import keras_parts, load_networks

    parts = keras_parts(*load_networks(exported, config))
    if set(parts) != set(names):
        raise ModelError(
            f"{exported}: networks with parts {sorted(parts)}, not {names}"
        )

    def run(name: str, arrays: list[np.ndarray]) -> np.ndarray:
        tensors = [tf.constant(a, tf.float32) for a in arrays]
        return np.asarray(parts[name](tensors, training=False))

    return run


_LOADED: dict[tuple[pathlib.Path, str | None], Model] = {}


def load(path: str | pathlib.Path, runtime: str | None = None) -> Model:
    """`Model.load`, cached per folder and runtime for the life of the process."""
    key = (pathlib.Path(path).resolve(), runtime)
    if key not in _LOADED:
        _LOADED[key] = Model.load(key[0], runtime)
    return _LOADED[key]


def optimise_mask(
    image: np.ndarray,
    density: float,
    model: str | pathlib.Path | Model | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A learned sparse mask of exactly the requested density, and its inpainting.

    This is what the ``wgimask`` command computes, as a Python function.

    Args:
        image: (H, W) or (H, W, C) float image in [0, 1], any size of at least
            2x2 (grey images are repeated for colour models, colour images
            turned to luma for grey ones).
        density: Fraction of pixels to keep, in (0, 1); it must keep at least
            one pixel.
        model: A run or export folder, a loaded `Model`, or None for the shipped
            model trained for the nearest density.

    Returns:
        ``(mask, inpainting)``: a bool (H, W) mask with round(D H W) true pixels
        and the float32 (H, W, C) learned inpainting, equal to the image at
        known pixels.

    Raises:
        ValueError: For a bad image or density (one line).
        ModelError: For a folder that holds no usable model.
    """
    if not isinstance(model, Model):
        model = load(choose_model(model, float(density)))
    return model.optimise_mask(image, density)
