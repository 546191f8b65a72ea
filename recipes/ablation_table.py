"""Table and PSNR curve of the learned-mask ablation (recipes/ablation.sh).

    python recipes/ablation_table.py --runs=runs/ablation \
        --curve=docs/ablation_psnr_10pct.png

Reads each run folder's ``validation.jsonl`` (one line per validation, written
by training), ``best/best.json`` and ``config.json``, and prints a Markdown
table: validation PSNR/SSIM of ``mg`` (the run's g on its m's masks) and
``mg+hd`` (exact homogeneous diffusion on the same masks) at the step the run
exports (its best validation Eq. 4) and at its last step, the density of m's
raw masks there, and the wall and CPU time of the training steps (all threads
of the process; validation excluded). Unfinished runs are shown with the steps
they have. The curve plots validation PSNR against steps, mg solid, mg+hd
dashed.
"""

from __future__ import annotations

import json
import pathlib

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("runs", "runs/ablation", "Folder of the ablation's runs.")
flags.DEFINE_string(
    "curve", None, "Write the PSNR-vs-step curve to this PNG (e.g. docs/...)."
)
flags.DEFINE_string(
    "rows",
    "recipe warm_start diffusion prefill prior dither best mask_only",
    "Row order (run folder names); others found are appended.",
)


def read_run(folder: pathlib.Path) -> dict | None:
    """The history, best step and config of one run folder (None if empty)."""
    history_path = folder / "validation.jsonl"
    if not history_path.exists():
        return None
    history = [
        json.loads(line) for line in history_path.read_text().splitlines() if line
    ]
    if not history:
        return None
    config = json.loads((folder / "config.json").read_text())
    best_path = folder / "best" / "best.json"
    best_step = (
        json.loads(best_path.read_text())["step"] if best_path.exists() else None
    )
    best = next((row for row in history if row["step"] == best_step), history[-1])
    return {
        "name": folder.name,
        "config": config,
        "history": history,
        "best": best,
        "last": history[-1],
        "total_steps": config["epochs"] * config["steps_per_epoch"],
    }


def table(runs: list[dict]) -> str:
    lines = [
        "| row | steps | exported step | mg PSNR / SSIM | mg+hd PSNR / SSIM "
        "| last: mg PSNR | last: mg+hd PSNR | density (exported / last) "
        "| wall s | CPU s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        best, last = run["best"], run["last"]
        mode = run["config"]["mode"]
        mg = (
            "n/a (no g)"
            if mode == "mask"
            else f"{best['psnr']:.2f} / {best['ssim']:.3f}"
        )
        mg_last = "n/a" if mode == "mask" else f"{last['psnr']:.2f}"
        lines.append(
            f"| {run['name']} | {last['step']}/{run['total_steps']} | {best['step']} "
            f"| {mg} | {best['psnr_hd']:.2f} / {best['ssim_hd']:.3f} | {mg_last} "
            f"| {last['psnr_hd']:.2f} | {best['density']:.4f} / {last['density']:.4f} "
            f"| {last['train_seconds']:.0f} | {last['train_cpu_seconds']:.0f} |"
        )
    return "\n".join(lines)


def plot(runs: list[dict], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, run in enumerate(runs):
        color = f"C{i % 10}"
        steps = [row["step"] for row in run["history"]]
        if run["config"]["mode"] != "mask":
            psnr = [row["psnr"] for row in run["history"]]
            ax.plot(steps, psnr, "-o", ms=3, color=color, label=f"{run['name']} mg")
        hd = [row["psnr_hd"] for row in run["history"]]
        ax.plot(steps, hd, "--", color=color, label=f"{run['name']} mg+hd")
    ax.set_xlabel("training step")
    ax.set_ylabel("validation PSNR (dB)")
    ax.set_title("Learned masks at D = 10 %, 64 px: mg (solid), mg+hd (dashed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main(argv):
    del argv
    root = pathlib.Path(FLAGS.runs)
    order = FLAGS.rows.split()
    folders = [root / name for name in order if (root / name).is_dir()]
    folders += (
        sorted(p for p in root.iterdir() if p.is_dir() and p.name not in order)
        if root.is_dir()
        else []
    )
    runs = [run for run in map(read_run, folders) if run is not None]
    if not runs:
        raise SystemExit(f"ablation_table.py: no validated runs in {root}")
    print(table(runs))
    if FLAGS.curve:
        plot(runs, pathlib.Path(FLAGS.curve))
        print(f"\nCurve written to {FLAGS.curve}")


if __name__ == "__main__":
    app.run(main)
