"""Settings, data and run-folder paths of the NetE and NetM training runs.

`DaiSettings` is the settings group of a run (defaults: Dai et al.'s, see
`wgimask.train.dai`), with the constants it is checked against and the
settings a resumed run may change (`RESUMABLE_SETTINGS`); `crop_stream` is a
run's data, `model_path` where a run folder keeps its trained network. The
training itself: `wgimask.train.dai` (`train_nete`, `train_netm`) and
`wgimask.train.dai_trainer`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from wgimask import run_folder
from wgimask.nn import dai
from wgimask.train import data

#: The two networks, by the names used in run folders and settings.
NETWORKS = ("nete", "netm")
#: Dai's steps: 800 epochs x ceil(100,000 / 128) batches.
DAI_STEPS = 800 * math.ceil(100_000 / 128)
#: Dai's Adam beta_1 per network (NetE: 0.5; NetM: PyTorch's default 0.9).
DAI_BETA_1 = {"nete": 0.5, "netm": 0.9}
#: NetE's training masks.
NETE_MASKS = ("bernoulli", "exact")
#: The trained network as a .keras file in the run's `run_folder.EXPORT`
#: folder: latest weights, and the best validated ones (when validated).
MODEL_FILE = run_folder.DAI_MODEL_FILE
BEST_MODEL_FILE = run_folder.DAI_BEST_MODEL_FILE
#: Settings a run may change when it resumes (how long, how fast, how often).
RESUMABLE_SETTINGS = frozenset(
    {
        "steps",
        "batch_size",
        "learning_rate",
        "beta_1",
        "beta_2",
        "seed",
        "optimizer_reset_every",
        "checkpoint_every",
        "keep_checkpoints",
        "validate_every",
    }
)


def _positive_int(name, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer, received {value!r}.")


def _non_negative_int(name, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"`{name}` must be an integer >= 0, received {value!r}.")


@dataclasses.dataclass(frozen=True)
class DaiSettings:
    """Settings of a NetE or NetM training run (defaults: Dai's).

    Attributes:
        density: Sampling density D in (0, 1) (Dai's ``sample_rate``, 0.2);
            one NetE and one NetM per density.
        image_size: Crop side; NetE needs 64.
        channels: 3 (Dai's) or 1.
        batch_size: Global batch (128), a multiple of the replicas.
        steps: Total steps of the run (a resumed run stops there too).
        learning_rate: Adam's learning rate (2e-4).
        beta_1: Adam's beta_1; None for Dai's (`DAI_BETA_1`: 0.5 for NetE,
            0.9 for NetM).
        beta_2: Adam's beta_2 (0.999).
        seed: Seed of the weights, the data stream and the masks (123).
        width: NetE's ``nef`` (64); for a NetM run, the width of its NetE.
        netm_filters: NetM's channels (64).
        netm_blocks: NetM's residual blocks (8).
        mean_shift_iterations: NetM's clip-and-shift passes (25).
        nete_masks: "bernoulli" (Dai's) or "exact" (round(D N) known pixels).
        optimizer_reset_every: Reset Adam's moments and step count every
            this many steps (Dai: 782, once per epoch); 0: never.
        checkpoint_every: Steps between checkpoints (and one at the end).
        keep_checkpoints: Checkpoints kept.
        validate_every: Steps between validations; 0: none.
    """

    density: float = 0.2
    image_size: int = dai.NETE_IMAGE_SIZE
    channels: int = 3
    batch_size: int = 128
    steps: int = DAI_STEPS
    learning_rate: float = 2e-4
    beta_1: float | None = None
    beta_2: float = 0.999
    seed: int = 123
    width: int = dai.NETE_WIDTH
    netm_filters: int = dai.NETM_FILTERS
    netm_blocks: int = dai.NETM_BLOCKS
    mean_shift_iterations: int = dai.MEAN_SHIFT_ITERATIONS
    nete_masks: str = "bernoulli"
    optimizer_reset_every: int = 0
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    validate_every: int = 0

    def validate(self) -> DaiSettings:
        """Checks every field; returns self.

        Raises:
            ValueError: One line naming the field and the value received.
        """
        dai.check_density(self.density)
        if self.image_size != dai.NETE_IMAGE_SIZE or isinstance(self.image_size, bool):
            raise ValueError(
                f"`image_size` must be {dai.NETE_IMAGE_SIZE} (NetE's only size), "
                f"received {self.image_size!r}."
            )
        if isinstance(self.channels, bool) or self.channels not in (1, 3):
            raise ValueError(f"`channels` must be 1 or 3, received {self.channels!r}.")
        for name in (
            "batch_size",
            "steps",
            "width",
            "netm_filters",
            "checkpoint_every",
            "keep_checkpoints",
        ):
            _positive_int(name, getattr(self, name))
        for name in (
            "netm_blocks",
            "mean_shift_iterations",
            "optimizer_reset_every",
            "validate_every",
        ):
            _non_negative_int(name, getattr(self, name))
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise ValueError(f"`seed` must be an integer, received {self.seed!r}.")
        if not 0 <= self.seed < 2**32:
            # numpy's generators and the data stream's keys take 32 bits.
            raise ValueError(f"`seed` must be in [0, 2^32), received {self.seed!r}.")
        if not (
            isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0
        ):
            raise ValueError(
                f"`learning_rate` must be a positive number, received "
                f"{self.learning_rate!r}."
            )
        for name in ("beta_1", "beta_2"):
            value = getattr(self, name)
            if name == "beta_1" and value is None:
                continue
            if not (isinstance(value, (int, float)) and 0.0 <= value < 1.0):
                raise ValueError(f"`{name}` must be in [0, 1), received {value!r}.")
        if self.nete_masks not in NETE_MASKS:
            raise ValueError(
                f"`nete_masks` must be one of {NETE_MASKS}, received "
                f"{self.nete_masks!r}."
            )
        return self

    def adam_beta_1(self, network: str) -> float:
        """beta_1, or Dai's for `network` when not set."""
        return DAI_BETA_1[network] if self.beta_1 is None else float(self.beta_1)

    def as_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict."""
        return dataclasses.asdict(self)


def crop_stream(
    settings: DaiSettings,
    network: str,
    *,
    data_dir: str | os.PathLike | None = None,
    images: list[np.ndarray] | None = None,
) -> Callable[[int], tf.data.Dataset]:
    """The data of a run: a function from the first step to a crop stream.

    Random 64x64 crops (`wgimask.train.data.training_dataset`, keyed on
    (seed, step)), with random horizontal flips for NetE only, as Dai's
    scripts. Pass the result as ``batches``: a resumed run asks for the
    stream from its next step.

    Args:
        settings: The run's settings (image size, channels, batch, seed).
        network: "nete" or "netm".
        data_dir: An image folder; None with no `images`: the embedded photos.
        images: Images (H, W, C) in [0, 1] instead of a folder.

    Returns:
        ``start_step -> tf.data.Dataset`` of float32 (batch, 64, 64, C).

    Raises:
        ValueError: For an unknown network; FileNotFoundError and the like
            for a bad folder (at once, not at the first step).
    """
    _check_network(network)
    if images is None:
        images, _ = data.source_images(data_dir, settings.channels)

    def stream(start_step: int) -> tf.data.Dataset:
        return data.training_dataset(
            images,
            settings.image_size,
            settings.batch_size,
            seed=settings.seed,
            flip=network == "nete",
            start_step=start_step,
        )

    return stream


def model_path(run_dir: str | os.PathLike, network: str, best: bool = False):
    """Where a run folder keeps its trained network as a .keras file."""
    _check_network(network)
    name = (BEST_MODEL_FILE if best else MODEL_FILE).format(network=network)
    return pathlib.Path(run_dir) / run_folder.EXPORT / name


def _check_network(network: str) -> None:
    if network not in NETWORKS:
        raise ValueError(f"`network` must be one of {NETWORKS}, received {network!r}.")
