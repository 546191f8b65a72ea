"""The quality-versus-time trade-off figure of an evaluation, one per density.

Each method is one point: its mean PSNR (left panel) or SSIM (right panel)
against its mean seconds per image on a log axis. The Pareto front (the
methods that no other method beats in both quality and time) is drawn as a
step line and its points are filled; dominated methods are hollow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["pareto_front", "write_tradeoff_figure", "tradeoff_figure_name"]

# A time floor for the log axis: methods faster than this (a random mask
# takes microseconds) are drawn at it.
_MIN_SECONDS = 1e-5


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points that no other point dominates.

    A point (seconds, quality) dominates another if it is at most as slow and
    at least as good, and strictly better in one of the two.

    Args:
        points: (seconds, quality) pairs.

    Returns:
        Indices of the non-dominated points, fastest first.
    """
    front = []
    for i, (t, q) in enumerate(points):
        dominated = any(
            (t2 <= t and q2 >= q) and (t2 < t or q2 > q)
            for j, (t2, q2) in enumerate(points)
            if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (points[i][0], -points[i][1]))


def tradeoff_figure_name(density: float) -> str:
    """File name of the trade-off figure of a density, e.g. tradeoff_5pct.png."""
    return f"tradeoff_{density * 100:g}pct.png"


def write_tradeoff_figure(
    path: str | Path,
    rows: Sequence[Mapping[str, Any]],
    density: float,
    title: str = "",
) -> Path:
    """Writes the PSNR and SSIM versus seconds-per-image figure of one density.

    Args:
        path: PNG file to write (its folder must exist).
        rows: Summary rows with keys ``method``, ``density``, ``psnr``,
            ``ssim`` and ``seconds_per_image`` (``evaluation.summarise``);
            rows of other densities are ignored.
        density: The density to draw.
        title: Figure title (the density is appended).

    Returns:
        The path written.

    Raises:
        ValueError: If no row has this density.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    selected = [r for r in rows if r["density"] == density]
    if not selected:
        raise ValueError(f"no summary row has density {density!r}")
    names = [str(r["method"]) for r in selected]
    seconds = [max(float(r["seconds_per_image"]), _MIN_SECONDS) for r in selected]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for ax, key, label in ((axes[0], "psnr", "PSNR (dB)"), (axes[1], "ssim", "SSIM")):
        quality = [float(r[key]) for r in selected]
        points = list(zip(seconds, quality, strict=True))
        front = pareto_front(points)
        # The front as a staircase: quality only improves with more time.
        fx = [seconds[i] for i in front]
        fy = [quality[i] for i in front]
        ax.step(
            fx,
            fy,
            where="post",
            color="tab:red",
            lw=1.2,
            alpha=0.7,
            label="Pareto front",
        )
        for i, (t, q) in enumerate(points):
            on = i in front
            ax.scatter(
                [t],
                [q],
                s=46,
                zorder=3,
                facecolors="tab:red" if on else "none",
                edgecolors="tab:red" if on else "tab:gray",
            )
            ax.annotate(
                names[i], (t, q), xytext=(5, 4), textcoords="offset points", fontsize=8
            )
        ax.set_xscale("log")
        ax.set_xlabel("seconds per image (log scale)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    heading = (
        f"{title} — density {density * 100:g}%"
        if title
        else (f"density {density * 100:g}%")
    )
    fig.suptitle(heading)
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
