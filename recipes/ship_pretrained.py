"""Copies the exported pretraining runs into the package (wgimask/pretrained).

    python recipes/ship_pretrained.py --runs=runs/pretrained
    python recipes/ship_pretrained.py --names=joint-0.05,joint-0.1,joint-0.2

    python recipes/ship_pretrained.py --runs=runs/dai --names=nete-0.1,netm-0.1

For each run (joint-0.05, joint-0.1, joint-0.2, inpaint) it copies the run's
config.json, the SavedModels of its export folder (``mask_gan/`` for the
joint runs, ``inpainter/``) and their LiteRT parts (``lite/``), and writes
``training.json``: the steps done, the wall time read off the run's
train.log (first to last timestamped line; the training steps' wall time
when the log has no span), and the training steps' wall and CPU time from
its validation.jsonl.
It also copies the generators' ``.keras`` files, from which inference loads
the Keras networks; the critic stays in the run folder: the package ships
what the ``wgimask`` command and evaluate.py load, a few MB per run.

For Dai et al.'s runs (nete-<D>, netm-<D>, `ship_dai`) it copies the served
``.keras`` file, the serving SavedModel and config.json, and writes
``training.json`` from the run's validation.jsonl.
"""

from __future__ import annotations

import datetime
import json
import pathlib
import re
import shutil
import sys

from absl import app, flags

from wgimask import run_folder
from wgimask.serve.model_files import keras_file

DENSITIES = ("0.05", "0.1", "0.2")
RUN_NAMES = ("joint-0.05", "joint-0.1", "joint-0.2", "inpaint")
#: Dai et al.'s networks of the paper's Table 2 (``train.py --mode=nete|netm``).
DAI_RUN_NAMES = tuple(
    f"{network}-{density}" for network in ("nete", "netm") for density in DENSITIES
)
PACKAGE_DIR = pathlib.Path(__file__).resolve().parents[1] / "wgimask" / "pretrained"
# absl's log prefix: I1124 00:02:07.096596
_LOG_TIME = re.compile(rb"^[IWEF](\d{4}) (\d\d:\d\d:\d\d\.\d+) ", re.MULTILINE)

FLAGS = flags.FLAGS
flags.DEFINE_string("runs", "runs/pretrained", "Folder of the pretraining runs.")
flags.DEFINE_list("names", list(RUN_NAMES), "The runs to ship (the others stay).")


def wall_seconds(log: pathlib.Path) -> float:
    """Seconds from the first to the last timestamped line of an absl log."""
    stamps = _LOG_TIME.findall(log.read_bytes())
    if len(stamps) < 2:
        raise ValueError(f"{log} has fewer than two timestamped lines")
    year = datetime.date.today().year

    def parse(stamp):
        day, clock = (s.decode() for s in stamp)
        return datetime.datetime.strptime(f"{year}{day} {clock}", "%Y%m%d %H:%M:%S.%f")

    first, last = parse(stamps[0]), parse(stamps[-1])
    if last < first:  # the log crossed New Year
        last = last.replace(year=year + 1)
    return (last - first).total_seconds()


def ship_dai(run: pathlib.Path, target: pathlib.Path) -> dict:
    """Copies a NetE or NetM run's served network into `target`.

    The served weights (the best validated ones, else the latest;
    `run_folder.served_dai_model`) as the ``.keras`` file that evaluate.py
    loads, and the run's serving SavedModel, which holds the same weights.

    Args:
        run: A finished ``train.py --mode=nete|netm`` run folder named
            ``nete-<D>`` or ``netm-<D>``.
        target: The package's folder of that name (replaced).

    Returns:
        The training facts written to ``training.json``: steps, the best
        validation, and the training steps' wall and CPU seconds that the
        run's ``validation.jsonl`` records.
    """
    network = run.name.split("-")[0]
    served = run_folder.served_dai_model(run, network)
    export = run / run_folder.EXPORT
    config_file = run / run_folder.CONFIG
    for path in (served, export / network / "saved_model.pb", config_file):
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing")
    if target.exists():
        shutil.rmtree(target)
    (target / run_folder.EXPORT).mkdir(parents=True)
    shutil.copy2(config_file, target / run_folder.CONFIG)
    shutil.copy2(served, target / run_folder.EXPORT / served.name)
    shutil.copytree(export / network, target / run_folder.EXPORT / network)
    config = json.loads(config_file.read_text())
    best = run / run_folder.BEST / run_folder.BEST_RECORD
    facts = {
        "steps": config["steps"],
        "best": json.loads(best.read_text()) if best.exists() else None,
    }
    validation = run / run_folder.HISTORY
    rows = validation.read_text().splitlines() if validation.exists() else []
    if rows:
        last = json.loads(rows[-1])
        for key in ("train_seconds", "train_cpu_seconds"):
            if key in last:
                facts[key] = round(last[key])
    (target / "training.json").write_text(json.dumps(facts, indent=2) + "\n")
    return facts


def ship(run: pathlib.Path, target: pathlib.Path) -> dict:
    """Copies one run's exports into `target`; returns its training facts."""
    if run.name.startswith(("nete-", "netm-")):
        return ship_dai(run, target)
    export = run / "export"
    leaves = ["inpainter"] + (["mask_gan"] if run.name.startswith("joint") else [])
    for leaf in leaves:
        if not (export / leaf / "saved_model.pb").is_file():
            raise FileNotFoundError(f"{export / leaf} holds no SavedModel")
    if not (export / "lite" / "manifest.json").is_file():
        raise FileNotFoundError(
            f"{export / 'lite'} is missing; write it with "
            f"`python -m wgimask.serve.lite {run}`"
        )
    leaves.append("lite")
    networks = ["generator"] + (["mask_generator"] if "mask_gan" in leaves else [])
    for network in networks:
        if not keras_file(export, network).is_file():
            raise FileNotFoundError(f"{keras_file(export, network)} is missing")
    if target.exists():
        shutil.rmtree(target)
    (target / "export").mkdir(parents=True)
    shutil.copy2(run / "config.json", target / "config.json")
    for leaf in leaves:
        shutil.copytree(export / leaf, target / "export" / leaf)
    for network in networks:
        shutil.copy2(
            keras_file(export, network), keras_file(target / "export", network)
        )
    config = json.loads((run / "config.json").read_text())
    best = run / "best" / "best.json"
    facts = {
        "steps": config["epochs"] * config["steps_per_epoch"],
        "wall_seconds": round(wall_seconds(run / "train.log")),
        "best": json.loads(best.read_text()) if best.exists() else None,
    }
    validation = run / "validation.jsonl"
    if validation.exists():
        # The training steps' own times (validation excluded), which the
        # trainer records; a log whose only timestamped lines are at the
        # start gives no wall time.
        last = json.loads(validation.read_text().splitlines()[-1])
        facts["train_seconds"] = round(last["train_seconds"])
        facts["train_cpu_seconds"] = round(last["train_cpu_seconds"])
        if facts["wall_seconds"] == 0:
            facts["wall_seconds"] = facts["train_seconds"]
    (target / "training.json").write_text(json.dumps(facts, indent=2) + "\n")
    return facts


def main(argv):
    del argv
    runs = pathlib.Path(FLAGS.runs)
    try:
        unknown = sorted(set(FLAGS.names) - set(RUN_NAMES + DAI_RUN_NAMES))
        if unknown:
            sys.exit(
                f"ship_pretrained.py: --names: unknown {unknown}; use "
                f"{RUN_NAMES + DAI_RUN_NAMES}"
            )
        for name in FLAGS.names:
            facts = ship(runs / name, PACKAGE_DIR / name)
            print(f"{name}: {facts}")
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f"ship_pretrained.py: {error}")


if __name__ == "__main__":
    app.run(main)
