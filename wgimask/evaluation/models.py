"""The learned models an evaluation needs: which, where, and loading them.

Split from `wgimask.evaluation`. Models are loaded with `wgimask.inference`,
the same code the ``wgimask`` command runs, so an evaluation measures exactly
what the command computes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from wgimask import run_folder
from wgimask.evaluation.reports import EvaluationError

if TYPE_CHECKING:
    from wgimask.evaluation.config import EvaluationConfig, Method


class MissingModelsError(FileNotFoundError):
    """Learned models that a requested method needs are not there."""


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
        if self.kind == "nete":
            return f"Dai et al.'s NetE for density {self.density:g}"
        if self.kind == "netm":
            return f"Dai et al.'s NetM for density {self.density:g}"
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
        if self.kind in ("nete", "netm"):
            return (
                f"train it with train.py --mode={self.kind} "
                f"--density={self.density:g} --model_dir=DIR/{self.kind}-"
                f"{self.density:g}"
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
    if kind in ("nete", "netm"):
        if density is None:
            raise ValueError(f"a {kind} model needs a density, got None")
        # The run's served weights: its best when it validated.
        return run_folder.served_dai_model(root / f"{kind}-{density:g}", kind)
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
            if method.learned_mask:
                netm = method.mask.split("+")[0] == "netm"
                kinds.append(("netm" if netm else "mask_gan", density))
            if method.operator == "wgain":
                kinds.append(("inpainter", None))
            if method.operator == "nete":
                kinds.append(("nete", density))
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

    def present(need: ModelRequirement) -> bool:
        path = need.path(config.models_dir)
        return (path if path.suffix == ".keras" else path / "saved_model.pb").is_file()

    missing = [need for need in needs if not present(need)]
    if missing:
        lines = [f"missing learned models under {config.models_dir}:"]
        for need in missing:
            lines.append(
                f"  {need.describe()} (for {', '.join(need.methods)}): no model "
                f"at {need.path(config.models_dir)}; {need.how_to_get()}"
            )
        raise MissingModelsError("\n".join(lines))
    return needs


class LearnedModels:
    """Loads each needed model once with `wgimask.inference`, checked and warm.

    Args:
        models_dir: The models folder.
        needs: What to load (from ``check_models``).
        image_size: Side of the evaluated images (for the warm-up).
        device: ``auto`` or ``cpu`` (runs under ``tf.device('/CPU:0')``).

    Raises:
        EvaluationError: If a folder holds no usable model, a joint run has no
            mask generator, or the models disagree on the channel count.
    """

    def __init__(
        self,
        models_dir: str | Path,
        needs: Sequence[ModelRequirement],
        image_size: int,
        device: str = "auto",
    ) -> None:
        import numpy as np

        from wgimask import inference

        self._device = "/CPU:0" if device == "cpu" else None
        # LiteRT runs on the CPU only: with a GPU to use, the Keras runtime
        # (the same numbers to within float32 rounding, tests/serve/test_lite.py).
        runtime = "keras" if device == "auto" and _gpu_visible() else None
        self._models: dict[tuple[str, float | None], inference.Model] = {}
        for need in needs:
            run = need.path(models_dir).parent.parent
            try:
                if need.kind in ("nete", "netm"):
                    model = DaiModel.load(need.path(models_dir), image_size)
                else:
                    model = inference.load(run, runtime)
            except inference.ModelError as error:
                raise EvaluationError(str(error)) from None
            if need.kind == "mask_gan" and not model.has_mask:
                raise EvaluationError(f"{run} holds no mask generator")
            zeros = np.zeros((1, image_size, image_size, model.channels), np.float32)
            with self.device():  # warm-up: later timings exclude set-up
                if need.kind == "netm":
                    model.mask(zeros, need.density)
                elif need.kind == "mask_gan":
                    model.confidence(zeros)
                else:
                    model.inpaint(zeros, np.ones(zeros.shape[:3], bool))
            self._models[(need.kind, need.density)] = model
        channels = {m.channels for m in self._models.values()}
        if len(channels) > 1:
            detail = ", ".join(
                f"{m.path} has {m.channels}" for m in self._models.values()
            )
            raise EvaluationError(
                f"the learned models disagree on the channel count ({detail}); "
                f"evaluate grey and colour models in separate runs"
            )
        self.channels: int | None = channels.pop() if channels else None

    def get(self, kind: str, density: float | None):
        """The loaded `wgimask.inference.Model` of a kind (and density)."""
        return self._models[(kind, None if kind == "inpainter" else density)]

    def device(self):
        """A context that places the learned models' work on the chosen device."""
        import contextlib

        if self._device is None:
            return contextlib.nullcontext()
        import tensorflow as tf

        return tf.device(self._device)


@dataclasses.dataclass
class DaiModel:
    """Dai et al.'s NetE or NetM, with the methods the evaluation calls.

    NetM's masks: its map binarised by `wgimask.nn.dai` (``sampled`` by
    default: exactly round(D H W) pixels, as every mask of the evaluation,
    drawn with the map's chances; Dai's ``bernoulli``; or ``topk``). NetE's
    inpainting keeps the known
    pixels (Dai returns the network's output everywhere), as every operator
    of the evaluation does.
    """

    path: Path
    network: object
    channels: int

    @classmethod
    def load(cls, path: Path, image_size: int) -> DaiModel:
        from wgimask import inference

        if path.stem == "nete" and image_size != 64:
            raise EvaluationError(
                f"{path}: NetE takes 64x64 images only (its fully connected "
                f"bottleneck); use image_size=64, got {image_size}"
            )
        import keras

        import wgimask.nn.dai  # noqa: F401 - registers the layers

        try:
            network = keras.saving.load_model(path)
        except (OSError, ValueError) as error:
            raise inference.ModelError(f"{path}: {error}") from None
        image = network.input["image"] if isinstance(network.input, dict) else None
        channels = int((image if image is not None else network.inputs[0]).shape[-1])
        return cls(path, network, channels)

    def mask(
        self,
        images,
        density: float,
        binarisation: str = "sampled",
        *,
        seeds=None,
    ):
        """NetM's map binarised.

        Args:
            images: (N, H, W, C) images in [0, 1].
            density: D.
            binarisation: One of `wgimask.nn.dai.BINARISATIONS`.
            seeds: One seed per image for the random binarisations (default
                0 for each); an image's mask depends on its seed only.

        Returns:
            (N, H, W) bool masks.

        Raises:
            ValueError: For an unknown binarisation.
        """
        import numpy as np

        from wgimask.nn import dai

        sampling_map = self.network({"image": images}, training=False)
        if binarisation == "topk":
            return np.asarray(dai.topk_mask(sampling_map, density))[..., 0] > 0.5
        if binarisation not in dai.BINARISATIONS:
            raise ValueError(
                f"`binarisation` must be one of {', '.join(dai.BINARISATIONS)}, "
                f"received {binarisation!r}."
            )
        seeds = [0] * len(images) if seeds is None else list(seeds)
        masks = []
        for one_map, seed in zip(sampling_map, seeds, strict=True):
            # A stateless draw's key is a pair of int64s: an evaluation seed
            # (uint32, `run.method_seed`) is its first half, as
            # `dai.sampled_mask(map, D, seed)` takes an int seed.
            pair = [int(seed) % 2**63, int(seed) >> 63]
            one_map = one_map[None]
            if binarisation == "sampled":
                masks.append(dai.sampled_mask(one_map, density, pair))
            else:
                masks.append(dai.bernoulli_mask(one_map, pair))
        return np.concatenate([np.asarray(m) for m in masks])[..., 0] > 0.5

    def inpaint(self, images, masks):
        """NetE's inpainting, the known pixels kept."""
        import numpy as np

        masks = np.asarray(masks, np.float32).reshape(*np.shape(images)[:3], 1)
        out = self.network({"image": images, "mask": masks}, training=False)
        return np.where(masks > 0.5, images, np.asarray(out))


def _gpu_visible() -> bool:
    """Whether TensorFlow sees a GPU (imports TensorFlow, as evaluate.py does)."""
    from wgimask import _entry

    _entry.import_tensorflow_quietly()
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))
