"""Warm starts: a new run's networks begin with the weights of earlier runs.

``TrainingConfig.init_from`` holds entries ``RUN_DIR`` or ``NETWORK=RUN_DIR``.
A ``RUN_DIR`` may be

* a training run folder (``config.json`` and ``checkpoints/``): its best
  weights (``best/``) if validation chose some, else its latest checkpoint;
* an export folder, or a folder holding ``export/`` (for example the shipped
  ``wgimask/pretrained/inpaint``): the ``NETWORK.keras`` files, and for the
  generator also the ``inpainter`` SavedModel, whose variables carry the
  generator's weight paths.

A bare ``RUN_DIR`` warm-starts every network of the new run that it holds; a
``NETWORK=RUN_DIR`` entry the one network, and fails if the source lacks it.
Later entries win over earlier ones. Weights are copied by their paths inside
the network; any difference in the set of weights or in a shape is an error
that names the first difference (for example the first block of a prefilled
generator, which has C more input channels than the paper's).
"""

from __future__ import annotations

import json
import os
import pathlib

import keras
import numpy as np
import tensorflow as tf

from wgimask import run_folder
from wgimask.config import NETWORK_NAMES, TrainingConfig
from wgimask.serve.model_files import keras_file


class WarmStartError(ValueError):
    """A warm start that cannot be done as asked (one-line message)."""


def parse_entries(entries) -> list[tuple[str | None, pathlib.Path]]:
    """Splits ``init_from`` entries into (network or None, folder)."""
    parsed = []
    for entry in entries or ():
        name, sep, path = entry.partition("=")
        if sep and name in NETWORK_NAMES:
            parsed.append((name, pathlib.Path(path)))
        else:
            parsed.append((None, pathlib.Path(entry)))
    return parsed


def _checkpoint_weights(folder: pathlib.Path, names) -> dict[str, dict]:
    """Weights of the networks `names` from a run folder's best/latest checkpoint."""
    from wgimask.train.trainer import Trainer  # (import cycle)

    saved = json.loads((folder / run_folder.CONFIG).read_text())
    config = TrainingConfig(**{**saved, "model_dir": os.fspath(folder)})
    # The source run's own Trainer restores exactly as resuming it would
    # (a bare tf.train.Checkpoint of the networks alone restored the fused
    # blocks' kernels wrongly); only trained networks are in checkpoints.
    source = Trainer(config, tf.distribute.get_strategy())
    if not source.restore():
        raise WarmStartError(f"init_from: {folder} holds no checkpoint")
    source.restore_best()
    return {
        name: {w.path: np.asarray(w.numpy()) for w in net.weights}
        for name, net in source.networks.items()
        if name in names
    }


def _export_weights(folder: pathlib.Path, names) -> dict[str, dict]:
    """Weights from an export folder's .keras files (and ``inpainter``)."""
    weights = {}
    for name in names:
        path = keras_file(folder, name)
        if path.exists():
            import wgimask.nn.networks  # noqa: F401 (registers the custom layers)

            net = keras.models.load_model(path, compile=False)
            weights[name] = {w.path: np.asarray(w.numpy()) for w in net.weights}
        elif name == "generator" and (folder / "inpainter").is_dir():
            # The SavedModel's variables are named by their weight paths.
            loaded = tf.saved_model.load(str(folder / "inpainter"))
            function = loaded.signatures["serving_default"]
            weights[name] = {
                v.name.rsplit(":", 1)[0]: v.numpy() for v in function.variables
            }
    return weights


def source_weights(folder: pathlib.Path, names) -> dict[str, dict]:
    """The weights of the networks `names` that `folder` holds, by weight path.

    Raises:
        WarmStartError: If `folder` is neither a run folder nor an export.
    """
    if not folder.is_dir():
        raise WarmStartError(f"init_from: {folder} is not a folder")
    if (folder / run_folder.CHECKPOINTS).is_dir() and (
        folder / run_folder.CONFIG
    ).exists():
        return _checkpoint_weights(folder, names)
    export = (
        folder / run_folder.EXPORT if (folder / run_folder.EXPORT).is_dir() else folder
    )
    weights = _export_weights(export, names)
    if not any((export / n).exists() for n in ("inpainter", "mask_gan")) and not (
        list(export.glob("*.keras"))
    ):
        raise WarmStartError(
            f"init_from: {folder} is neither a run folder (config.json and "
            "checkpoints/) nor an export folder (.keras files or inpainter/)"
        )
    return weights


def _describe(name: str, source: pathlib.Path, target: keras.Model) -> str:
    hint = ""
    if name == "generator" and getattr(target, "prefill", None):
        hint = (
            " (a prefilled generator, prefill="
            f"{target.prefill!r}, has {target.channels} more input channels than "
            "the paper's g: the weights of one do not fit the other)"
        )
    return f"init_from: the {name} of {source} does not fit this run's {name}{hint}"


def copy_weights(
    name: str, source: pathlib.Path, weights: dict, target: keras.Model
) -> None:
    """Assigns `weights` (by path) to `target`; every weight must fit.

    Raises:
        WarmStartError: Naming the first missing, extra or misshapen weight.
    """
    wanted = {w.path: w for w in target.weights}
    missing = sorted(set(wanted) - set(weights))
    extra = sorted(set(weights) - set(wanted))
    if missing or extra:
        which = (
            f"this run's weight {missing[0]} is not in the source"
            if missing
            else f"the source's weight {extra[0]} is not in this run's"
        )
        raise WarmStartError(f"{_describe(name, source, target)}: {which}")
    for path, variable in wanted.items():
        value = weights[path]
        if tuple(value.shape) != tuple(variable.shape):
            raise WarmStartError(
                f"{_describe(name, source, target)}: weight {path} has shape "
                f"{tuple(value.shape)} there and {tuple(variable.shape)} here"
            )
    for path, variable in wanted.items():
        variable.assign(weights[path].astype(variable.dtype))


def warm_start(entries, networks: dict[str, keras.Model]) -> dict[str, str]:
    """Copies weights of earlier runs into `networks`.

    Args:
        entries: ``init_from`` entries (see the module docstring).
        networks: This run's networks by name (`NETWORK_NAMES`).

    Returns:
        For each warm-started network, the folder its weights came from.

    Raises:
        WarmStartError: For a missing folder, a ``NETWORK=`` source that lacks
            the network or a network of this run it names not, or weights that
            do not fit.
    """
    loaded = {}
    for name, folder in parse_entries(entries):
        if name is not None and name not in networks:
            raise WarmStartError(
                f"init_from: this run has no {name} (it has {sorted(networks)}), "
                f"received {name}={folder}"
            )
        names = [name] if name else list(networks)
        weights = source_weights(folder, names)
        if name is not None and name not in weights:
            raise WarmStartError(f"init_from: {folder} holds no {name}")
        if not weights:
            raise WarmStartError(
                f"init_from: {folder} holds none of this run's networks "
                f"({sorted(networks)})"
            )
        for net_name, net_weights in weights.items():
            copy_weights(net_name, folder, net_weights, networks[net_name])
            loaded[net_name] = os.fspath(folder)
    return loaded
