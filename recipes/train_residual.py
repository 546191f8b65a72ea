"""Fine-tunes the shipped generators as corrections of diffusion (cached inputs).

    python recipes/train_residual.py --densities=0.05,0.1,0.2 --steps=3000
    python recipes/train_residual.py --ship   # copy the results into the package

For each density: builds the cache of `wgimask.train.residual` (once) from
the training photos of ``recipes/prepare_pretraining_data.py`` (every scale
in ``--data_dir``) and from ``--native_regions`` 512x512 regions of every
training photo at its full resolution (the Debian packages, installed
beforehand; the validation photos are left out), trains the shipped model's
generator on it (resumable: run it again after an interruption), and exports
the run to ``--work_dir/joint-D``. With ``--ship`` the exports replace the
shipped ones (``wgimask/pretrained/joint-D/export``) and the training facts
go to their ``training.json`` under ``residual``.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import sys
import time

import numpy as np
from absl import app, flags
from PIL import Image

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import prepare_pretraining_data as sources  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("densities", ["0.05", "0.1", "0.2"], "Densities to train.")
flags.DEFINE_string("data_dir", "data/pretraining/train", "Training photos.")
flags.DEFINE_integer(
    "native_regions", 2, "512x512 full-resolution regions per training photo."
)
flags.DEFINE_string("work_dir", "runs/residual", "Caches, checkpoints, exports.")
flags.DEFINE_integer("steps", 3000, "Training steps per density.")
flags.DEFINE_integer("batch_size", 32, "Crops per step.")
flags.DEFINE_float("learning_rate", 1e-4, "Adam's step size.")
flags.DEFINE_boolean("ship", False, "Copy the exports into wgimask/pretrained.")

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "wgimask" / "pretrained"


def training_images():
    """(name, float32 image) of the training photos and native regions."""
    for path in sorted(pathlib.Path(FLAGS.data_dir).glob("*.png")):
        yield path.stem, np.asarray(Image.open(path).convert("RGB"), np.float32) / 255
    rng = np.random.default_rng(0)
    for path in sources.package_photos():
        if path.name in sources.VALIDATION_PHOTOS:
            continue
        with Image.open(path) as photo:
            photo = photo.convert("RGB")
            for k in range(FLAGS.native_regions):
                x = int(rng.integers(0, photo.width - 512 + 1))
                y = int(rng.integers(0, photo.height - 512 + 1))
                region = photo.crop((x, y, x + 512, y + 512))
                yield (
                    f"{path.stem}_native{k}",
                    np.asarray(region, np.float32) / 255,
                )


def main(argv):
    del argv
    from wgimask.train import residual

    work = pathlib.Path(FLAGS.work_dir)
    for density in (float(d) for d in FLAGS.densities):
        name = f"joint-{density:g}"
        out = work / name
        if FLAGS.ship:
            export = out / "export"
            if not export.is_dir():
                sys.exit(f"train_residual.py: {export} does not exist; train first")
            target = PACKAGE / name
            shutil.rmtree(target / "export")
            shutil.copytree(export, target / "export", ignore=_not_shipped)
            facts = json.loads((target / "training.json").read_text())
            facts["residual"] = json.loads((out / "facts.json").read_text())
            (target / "training.json").write_text(json.dumps(facts, indent=2) + "\n")
            print(f"shipped {export} -> {target / 'export'}")
            continue
        cache_path = work / f"cache-{density:g}.npz"
        if not cache_path.is_file():
            started = time.perf_counter()
            residual.build_cache(training_images(), density, cache_path)
            print(f"cache {cache_path}: {time.perf_counter() - started:.0f} s")
        cache = residual.load_cache(cache_path)
        settings = residual.ResidualSettings(
            density=density,
            steps=FLAGS.steps,
            batch_size=FLAGS.batch_size,
            learning_rate=FLAGS.learning_rate,
        )
        started = time.perf_counter()
        networks = residual.train_residual(
            PACKAGE / name, cache, settings, out / "work", progress=print
        )
        seconds = time.perf_counter() - started
        residual.export_residual(*networks, out)
        (out / "facts.json").write_text(
            json.dumps(
                {
                    "steps": settings.steps,
                    "batch_size": settings.batch_size,
                    "learning_rate": settings.learning_rate,
                    "crops": len(cache["image"]),
                    "wall_seconds_last_session": round(seconds),
                },
                indent=2,
            )
            + "\n"
        )
        print(f"exported {out / 'export'}")


def _not_shipped(folder, names):
    # The critic stays out of the package (as recipes/ship_pretrained.py).
    return [n for n in names if n.startswith("critic")]


if __name__ == "__main__":
    app.run(main)
