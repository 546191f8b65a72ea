"""LiteRT copies of a run's networks: inference without TensorFlow.

Every export (`wgimask.serve.export.export_models`) also writes ``export/lite/``:
one LiteRT (TensorFlow Lite) flatbuffer per part that inference runs
(`wgimask.serve.parts`), any batch and image size, and ``manifest.json``
with the parts and a digest of the SavedModels' variable files they were
converted from. `wgimask.inference` runs these with the ``ai-edge-litert``
interpreter (XNNPACK on the CPU) when they are present and match the
weights, so the ``wgimask`` command and `wgimask.optimise_mask` never import
TensorFlow: that import alone took 2.1-3.3 s of the command's 7-10 s on the
2-core development CPU (docs/performance.md). ``evaluate.py`` uses the same
parts on the CPU. Otherwise inference builds the Keras networks (the
``keras`` runtime); both give the same numbers to within float32 rounding
(tests/serve/test_lite.py).

The manifest ties the parts to the exported weights, not to the layer code:
a change to how a part computes (for example the analytic density) must
raise `FORMAT`, so that older folders are rebuilt.

Runs exported before ``lite/`` existed get it with::

    python -m wgimask.serve.lite RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pathlib
import shutil
import sys
import tempfile

import numpy as np

from wgimask import _entry
from wgimask.devices import usable_cpu_count
from wgimask.pipeline import MaskPipeline
from wgimask.serve.model_files import (
    ModelError,
    export_dir,
    read_config,
    replace_folder,
)
from wgimask.serve.parts import PART_INPUTS, input_channels

#: Folder of the LiteRT parts inside an export folder.
LITE_DIR = "lite"
MANIFEST = "manifest.json"
FORMAT = 1


# --------------------------------------------------------------------------
# Which weights a lite folder belongs to


def weights_digest(exported: pathlib.Path) -> str:
    """SHA-256 over the exported SavedModels' variable files (names and bytes)."""
    digest = hashlib.sha256()
    for model in ("inpainter", "mask_gan"):
        folder = exported / model / "variables"
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            digest.update(f"{model}/{path.name}\n".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def lite_problem(exported: pathlib.Path, config: dict) -> str | None:
    """Why ``exported/lite`` cannot serve this run (None: it can)."""
    folder = exported / LITE_DIR
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        return f"{folder} does not exist"
    except (OSError, ValueError) as error:
        return f"{folder / MANIFEST} is unreadable ({error})"
    if manifest.get("format") != FORMAT:
        return f"{folder} has format {manifest.get('format')!r}, not {FORMAT}"
    wanted = set(MaskPipeline.from_config(config).parts)
    missing = sorted(p for p in wanted if not (folder / f"{p}.tflite").is_file())
    if missing:
        return f"{folder} lacks parts this run needs: {', '.join(missing)}"
    if set(manifest.get("parts", ())) != wanted:
        return (
            f"{folder} holds parts {sorted(manifest.get('parts', ()))}, this run "
            f"needs {sorted(wanted)}"
        )
    if manifest.get("weights") != weights_digest(exported):
        return f"{folder} was converted from other weights than the export's"
    return None


# --------------------------------------------------------------------------
# Conversion (needs TensorFlow)


@contextlib.contextmanager
def _deprecation_warning_dropped():
    """Drops the converter's warning about its path without a trackable object."""
    import logging

    def keep(record) -> bool:
        return "trackable_obj" not in record.getMessage()

    logger = logging.getLogger("absl")
    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


def convert_parts(parts: dict, channels: int, folder: pathlib.Path) -> None:
    """Writes ``<part>.tflite`` for each Keras part into `folder`.

    Args:
        parts: Part name -> list-input Keras model (`network_parts.keras_parts`).
        channels: Image channels of the networks.
        folder: Where to write; created if needed.
    """
    import tensorflow as tf

    from wgimask.nn import fused_conv

    folder.mkdir(parents=True, exist_ok=True)
    for name, model in parts.items():
        specs = [
            tf.TensorSpec([None, None, None, c], tf.float32, name=n)
            for n, c in zip(
                PART_INPUTS[name], input_channels(name, channels), strict=True
            )
        ]
        # Plain dilated conv2d ops: the converter maps them onto LiteRT's own
        # CONV_2D; the training path's strips, tf.cond and custom gradients
        # do not convert.
        with fused_conv.plain_forward_ops():
            function = tf.function(
                lambda *xs, model=model: model(list(xs), training=False),
                input_signature=specs,
            )
            concrete = function.get_concrete_function()
        # Without the model as trackable object, the converter freezes the
        # weights into constants (with it, they stay variables, and LiteRT's
        # CONV_2D rejects a dilated convolution of a variable filter). It
        # warns that this path is deprecated: that warning is dropped.
        with _deprecation_warning_dropped():
            converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
            flatbuffer = converter.convert()
        (folder / f"{name}.tflite").write_bytes(flatbuffer)


def _float32_copy(network):
    """`network` itself if it computes in float32, else a float32 copy.

    Mixed-precision runs (``--precision``) train networks that compute in
    float16 or bfloat16 with float32 weights; inference, and so the LiteRT
    parts, computes in float32 as the Keras runtime does.
    """
    import keras

    if network is None or network.dtype_policy.name == "float32":
        return network
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        copy = type(network).from_config(network.get_config())
    finally:
        keras.config.set_dtype_policy(previous)
    copy.set_weights(network.get_weights())
    return copy


def write_lite(exported: pathlib.Path, generator, mask_generator=None) -> None:
    """Converts free-size networks into ``exported/lite`` for the export there.

    Call after the SavedModels are written: the manifest records their
    variables' digest. The folder is written next to its place and renamed
    into it, so a process reading the old parts never sees half-written ones.

    Args:
        exported: An export folder holding ``inpainter/`` (and ``mask_gan/``).
        generator: The `InpaintingGenerator` (``image_size=None``).
        mask_generator: The `MaskGenerator`, or None.
    """
    from wgimask.serve.parts import keras_parts

    generator, mask_generator = _float32_copy(generator), _float32_copy(mask_generator)
    parts = keras_parts(generator, mask_generator)
    folder = exported / LITE_DIR
    staging = pathlib.Path(tempfile.mkdtemp(prefix=".lite-", dir=exported))
    try:
        convert_parts(parts, generator.channels, staging)
        manifest = {
            "format": FORMAT,
            "parts": sorted(parts),
            "weights": weights_digest(exported),
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        staging.chmod(0o755)
        replace_folder(staging, folder, ".lite-old-")
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def rebuild(path: str | pathlib.Path) -> pathlib.Path:
    """(Re)writes ``export/lite`` of a run from its exported weights.

    Returns:
        The lite folder.

    Raises:
        ModelError: For a folder without a usable export.
    """
    from wgimask.serve.parts import load_networks

    _entry.import_tensorflow_quietly()
    exported = export_dir(path)
    generator, mask_generator = load_networks(exported, read_config(exported))
    write_lite(exported, generator, mask_generator)
    return exported / LITE_DIR


# --------------------------------------------------------------------------
# Runtime (no TensorFlow)


def available() -> bool:
    """Whether the LiteRT interpreter (package ai-edge-litert) is installed."""
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return False
    return True


def _threads() -> int:
    """OMP_NUM_THREADS if set (benchmarks pin one thread), else the usable cores."""
    try:
        return max(int(os.environ["OMP_NUM_THREADS"]), 1)
    except (KeyError, ValueError):
        return usable_cpu_count()


class LiteParts:
    """Runs the parts in ``export/lite`` with the LiteRT interpreter.

    Args:
        folder: The lite folder of a run.
        names: The parts to load.
    """

    def __init__(self, folder: pathlib.Path, names: tuple[str, ...]):
        from ai_edge_litert.interpreter import Interpreter

        self._parts = {}
        for name in names:
            path = folder / f"{name}.tflite"
            interpreter = Interpreter(model_path=str(path), num_threads=_threads())
            inputs = {
                _input_name(d["name"]): d["index"]
                for d in interpreter.get_input_details()
            }
            if set(inputs) != set(PART_INPUTS[name]):
                raise ModelError(
                    f"{path} takes inputs {sorted(inputs)}, not "
                    f"{sorted(PART_INPUTS[name])}"
                )
            order = [inputs[n] for n in PART_INPUTS[name]]
            output = interpreter.get_output_details()[0]["index"]
            self._parts[name] = (interpreter, order, output)

    def __call__(self, name: str, arrays: list[np.ndarray]) -> np.ndarray:
        """One part on a batch: float32 (N, H, W, .) inputs in call order."""
        interpreter, order, output = self._parts[name]
        arrays = [np.ascontiguousarray(a, np.float32) for a in arrays]
        details = {d["index"]: d for d in interpreter.get_input_details()}
        if any(
            tuple(details[i]["shape"]) != a.shape
            for i, a in zip(order, arrays, strict=True)
        ):
            for index, array in zip(order, arrays, strict=True):
                interpreter.resize_tensor_input(index, array.shape)
            # The first allocation in a process announces XNNPACK on stderr.
            with _entry.benign_stderr_dropped():
                interpreter.allocate_tensors()
        for index, array in zip(order, arrays, strict=True):
            interpreter.set_tensor(index, array)
        interpreter.invoke()
        return interpreter.get_tensor(output)


def _input_name(tensor_name: str) -> str:
    """``serving_default_image:0`` or ``image`` -> ``image``."""
    return tensor_name.split(":")[0].removeprefix("serving_default_")


def main(argv: list[str]) -> int:
    """``python -m wgimask.serve.lite RUN_DIR ...``: (re)converts each run's export."""
    usage = "usage: python -m wgimask.serve.lite RUN_DIR [RUN_DIR ...]"
    if len(argv) >= 2 and argv[1] in ("-h", "--help"):
        print(__doc__.strip().splitlines()[0])
        print(usage)
        return 0
    if len(argv) < 2:
        print(
            f"wgimask.serve.lite: give one or more run folders\n{usage}",
            file=sys.stderr,
        )
        return 2
    failed = 0
    for path in argv[1:]:
        try:
            print(f"wrote {rebuild(path)}", flush=True)
        except ModelError as error:
            print(f"wgimask.serve.lite: {error}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
