"""Model folders: finding runs and exports, their configs, and their weights.

Used by `wgimask.inference`. A run folder (``train.py --model_dir``) holds
``config.json`` and ``export/``; the weights are read from the exported
SavedModels' variable files without deserialising their graphs.
`replace_folder` puts a newly written export (or its ``lite/``) in place.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import tempfile

import numpy as np

from wgimask import run_folder

#: The runs shipped inside the package: joint-<D>/ per density, inpaint/.
PRETRAINED_DIR = pathlib.Path(__file__).parents[1] / "pretrained"


class ModelError(ValueError):
    """A model folder that cannot be used, described in one line."""


# --------------------------------------------------------------------------
# Writing folders


def replace_folder(new: pathlib.Path, final: pathlib.Path, prefix: str) -> None:
    """Moves the folder `new` to `final`, replacing a folder there.

    Two renames: an existing `final` goes into a temporary folder (named with
    `prefix`, beside it) and stays complete until the new one is in, so a
    reader never sees a half-written folder.
    """
    if final.exists():
        old = pathlib.Path(tempfile.mkdtemp(prefix=prefix, dir=final.parent))
        final.replace(old / final.name)
        new.replace(final)
        shutil.rmtree(old)
    else:
        new.replace(final)


# --------------------------------------------------------------------------
# Finding models


def export_dir(path: str | pathlib.Path) -> pathlib.Path:
    """The export folder of a run folder or of an export folder itself.

    Raises:
        ModelError: If neither holds an exported inpainter.
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise ModelError(f"model folder {path} does not exist")
    for candidate in (path, path / run_folder.EXPORT):
        if (candidate / "inpainter" / "saved_model.pb").is_file():
            return candidate
    raise ModelError(
        f"{path} holds no exported model (expected inpainter/ and, for a mask "
        f"GAN, mask_gan/ in it or in its export/ folder); train one with "
        f"`python train.py --density=D --model_dir={path}` or export an existing "
        f"run with `python train.py --export_only --model_dir={path}`"
    )


def read_config(path: str | pathlib.Path) -> dict:
    """The training config of a run, from its ``config.json``.

    Args:
        path: A run folder or its export folder.

    Raises:
        ModelError: If there is no readable config.json next to the export.
    """
    exported = export_dir(path)
    for candidate in (
        exported.parent / run_folder.CONFIG,
        exported / run_folder.CONFIG,
    ):
        if candidate.is_file():
            try:
                config = json.loads(candidate.read_text())
            except (OSError, ValueError) as error:
                raise ModelError(f"{candidate}: unreadable ({error})") from None
            break
    else:
        raise ModelError(
            f"{exported.parent} has no config.json (written by train.py); it says "
            f"which networks to build"
        )
    # Runs written before these fields existed used these values.
    return {"mode": "joint", "channels": 3, "model_size": "paper", **config}


def shipped_models() -> dict[float, pathlib.Path]:
    """The joint runs shipped in the package, by training density."""
    found = {}
    for run in sorted(PRETRAINED_DIR.glob("joint-*")):
        config = run / run_folder.CONFIG
        if config.is_file() and (run / run_folder.EXPORT / "mask_gan").is_dir():
            found[float(json.loads(config.read_text())["density"])] = run
    return found


def choose_model(model: str | pathlib.Path | None, density: float) -> pathlib.Path:
    """The run folder to use: `model`, else the shipped one of nearest density.

    Raises:
        ModelError: If `model` is not a model folder, or nothing is shipped.
    """
    if model is not None:
        path = pathlib.Path(model)
        export_dir(path)  # one-line error if it is not a model
        return path
    shipped = shipped_models()
    if not shipped:
        raise ModelError(
            "this installation ships no trained models; train one with "
            "`python train.py --density=D --model_dir=runs/dD` and pass "
            "--model=runs/dD"
        )
    return shipped[min(shipped, key=lambda d: abs(d - density))]


# --------------------------------------------------------------------------
# Weights from a SavedModel's variable files


def saved_variables(saved_model: pathlib.Path) -> dict[str, list[np.ndarray]]:
    """The variables of a SavedModel by Keras path, read without its graphs.

    A SavedModel written by `keras.export.ExportArchive` stores its variables
    as ``_all_variables/<i>`` in the checkpoint; the object graph in
    ``saved_model.pb`` (a protocol buffer, parsed without building any
    function) gives each one's Keras path such as ``encoder_1/conv_d1/kernel``.
    Two networks in one SavedModel share layer names, so a path can map to
    several arrays.
    """
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString((saved_model / "saved_model.pb").read_bytes())
        reader = tf.train.load_checkpoint(str(saved_model / "variables" / "variables"))
    except (OSError, ValueError, tf.errors.OpError) as error:
        raise ModelError(f"{saved_model}: unreadable SavedModel ({error})") from None
    graph = proto.meta_graphs[0].object_graph_def
    children = {c.local_name: c.node_id for c in graph.nodes[0].children}
    if "_all_variables" not in children:
        raise ModelError(
            f"{saved_model}: not written by wgimask's export (no _all_variables)"
        )
    found: dict[str, list[np.ndarray]] = {}
    for child in graph.nodes[children["_all_variables"]].children:
        node = graph.nodes[child.node_id]
        key = f"_all_variables/{child.local_name}/.ATTRIBUTES/VARIABLE_VALUE"
        found.setdefault(node.variable.name, []).append(reader.get_tensor(key))
    return found


def assign_weights(
    network, variables: dict[str, list[np.ndarray]], exclude=None
) -> None:
    """Sets each weight of `network` from `variables` by path and shape.

    Args:
        network: A Keras model.
        variables: From `saved_variables`.
        exclude: Optional {path: array} of another network's weights in the
            same SavedModel: where a path is ambiguous, the array equal to the
            other network's is not this network's.

    Raises:
        ModelError: If a weight has no match or an unresolvable one.
    """
    for weight in network.weights:
        candidates = [
            a for a in variables.get(weight.path, []) if a.shape == tuple(weight.shape)
        ]
        if len(candidates) > 1 and exclude is not None and weight.path in exclude:
            other = exclude[weight.path]
            distinct = [
                a
                for a in candidates
                if a.shape != other.shape or not np.array_equal(a, other)
            ]
            # All equal: either array is this network's.
            candidates = distinct or candidates[:1]
        if len(candidates) > 1 and all(
            np.array_equal(candidates[0], a) for a in candidates[1:]
        ):
            candidates = candidates[:1]
        if len(candidates) != 1:
            raise ModelError(
                f"the export has {len(candidates)} weights for "
                f"{network.name}/{weight.path} of shape {tuple(weight.shape)}; it "
                f"was made for other networks than its config.json describes"
            )
        weight.assign(candidates[0])
