"""Model folders: finding runs and exports, their configs, and their weights.

Used by `wgimask.inference`. A run folder (``train.py --model_dir``) holds
``config.json`` and ``export/``; each network's weights are in the export's
``.keras`` file (`keras_file`). `replace_folder` puts a newly written export
(or its ``lite/``) in place.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import tempfile

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


def keras_file(exported: pathlib.Path, network: str) -> pathlib.Path:
    """The Keras file of a network (``generator``, ``mask_generator``,
    ``critic``) in an export folder: its architecture and weights, which
    `keras.models.load_model` opens after ``import wgimask.nn.networks``."""
    return exported / f"{network}.keras"


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
