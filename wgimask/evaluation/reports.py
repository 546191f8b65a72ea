"""Evaluation I/O: the images, devices, progress, tables, CSVs and figures.

Split from `wgimask.evaluation`, which runs the methods; see its docstring.
"""

from __future__ import annotations

import csv
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wgimask.evaluation import metrics
from wgimask.evaluation.config import TABLE2_GROUPS

logger = logging.getLogger("wgimask.evaluation")


class EvaluationError(ValueError):
    """A run that cannot go on: no usable image, or unusable learned models."""


# --------------------------------------------------------------------------
# Images


def load_evaluation_images(
    data_dir: str | None, image_size: int, channels: int, max_images: int | None
) -> list[tuple[int, str, np.ndarray]]:
    """Loads and centre-crops the images to evaluate.

    Unreadable files are skipped with a warning (logged by ``wgimask.train.data``);
    images smaller than the crop are upscaled first (``data.fit_to_crop``,
    whose warning names them) and marked, so that `run_evaluation` keeps them
    out of the main averages and reports them separately.

    Args:
        data_dir: Folder of images (searched recursively), or ``None`` for the
            embedded photos.
        image_size: Side of the centre crop.
        channels: 1 or 3.
        max_images: Stop after this many usable images (``None``: all).

    Returns:
        ``(index, name, image, upscaled)``; ``index`` is the position in the
        sorted file listing (it seeds the random masks), ``name`` the path
        relative to ``data_dir`` (or the photo's name), ``image`` float32
        (S, S, C) in [0, 1], ``upscaled`` whether it was smaller than the crop.

    Raises:
        EvaluationError: If the folder holds no image file or none is usable.
    """
    from wgimask.train import data

    if data_dir is None:
        photos = data.embedded_photos(channels)
        candidates: list[tuple[str, Callable[[], list[np.ndarray]]]] = [
            (name, lambda photo=photo: [photo])
            for name, photo in zip(data.EMBEDDED_PHOTO_NAMES, photos, strict=True)
        ]
        source = "the embedded photos"
    else:
        try:
            paths = data.list_image_files(data_dir)
        except ValueError as error:
            raise EvaluationError(str(error)) from None
        candidates = [
            (
                p.relative_to(data_dir).as_posix()
                if p.is_relative_to(data_dir)
                else p.name,
                lambda p=p: data.load_images([p], channels)[0],
            )
            for p in map(Path, paths)
        ]
        source = str(data_dir)
    images = []
    for index, (name, load) in enumerate(candidates):
        if max_images is not None and len(images) >= max_images:
            break
        try:
            (image,) = load()
        except ValueError:
            continue  # unreadable; data.load_images has logged a warning
        try:
            upscaled = min(image.shape[:2]) < image_size
            # fit_to_crop's warning names the file; center_crop then cuts.
            (image,) = data.fit_to_crop([image], image_size, names=[name])
            image = data.center_crop(image, image_size)
        except ValueError as error:
            logger.warning("Skipping image %s: %s", name, error)
            continue
        images.append((index, name, np.asarray(image, np.float32), upscaled))
    if not images:
        raise EvaluationError(f"no usable image in {source}")
    return images


# --------------------------------------------------------------------------
# Devices


def cpu_description() -> str:
    """The CPU model and thread count (from ``wgimask.devices``)."""
    from wgimask import devices

    return devices.cpu_description()


def learned_device_description(device: str = "auto") -> str:
    """The device the learned models run on: the GPU's name, or the CPU."""
    if device == "auto":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            name = details.get("device_name", gpus[0].name)
            more = f" (+{len(gpus) - 1} more)" if len(gpus) > 1 else ""
            return f"GPU: {name}{more}"
    return cpu_description()


# --------------------------------------------------------------------------
# Progress


class Progress:
    """Progress on stderr: a one-line bar on a terminal, else plain lines.

    When stderr is not a terminal (a log file, a pipe), a plain line is
    printed at most every `interval` seconds and at the end, instead of
    carriage-return updates that would pile up in the file.
    """

    def __init__(
        self,
        total: int,
        label: str = "images",
        enabled: bool = True,
        interval: float = 10.0,
    ) -> None:
        self.total = total
        self.label = label
        self.enabled = enabled
        self.interval = interval
        self.done = 0
        self._start = time.perf_counter()
        self._last_line = -float("inf")
        self._tty = sys.stderr.isatty()

    def update(self, note: str = "") -> None:
        """Marks one more item done."""
        self.done += 1
        if not self.enabled:
            return
        now = time.perf_counter()
        elapsed = now - self._start
        eta = elapsed / self.done * (self.total - self.done)
        last = self.done == self.total
        if not self._tty:
            if last or now - self._last_line >= self.interval:
                self._last_line = now
                print(
                    f"{self.done}/{self.total} {self.label}, {elapsed:.1f} s "
                    f"elapsed, ETA {eta:.1f} s {note}".rstrip(),
                    file=sys.stderr,
                    flush=True,
                )
            return
        width = 24
        filled = int(width * self.done / self.total)
        bar = (
            "=" * filled + (">" if filled < width else "") + "." * (width - filled - 1)
        )
        line = (
            f"[{bar[:width]}] {self.done}/{self.total} {self.label} "
            f"{elapsed:6.1f}s elapsed, ETA {eta:6.1f}s {note}"
        )
        print("\r" + line, end="\n" if last else "", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Reports


def density_label(density: float) -> str:
    """A density as the paper's tables write it, e.g. '5%'."""
    return f"{density * 100:g}%"


def summarise(
    per_image: Sequence[Mapping[str, Any]],
    methods: Sequence[str],
    densities: Sequence[float],
    devices: Mapping[str, str],
    batched: Mapping[tuple[str, float], float] | None = None,
) -> list[dict[str, Any]]:
    """Averages per-image rows into one row per method and density.

    Args:
        per_image: Rows with the keys of ``PER_IMAGE_COLUMNS``.
        methods: Method names, in table order.
        densities: Densities, in table order.
        devices: Device description per method name.
        batched: Batched seconds per image per (method, density), if timed.

    Returns:
        Rows with the keys of ``RESULT_COLUMNS``.
    """
    rows = []
    for method in methods:
        for density in densities:
            selected = [
                r
                for r in per_image
                if r["method"] == method and r["density"] == density
            ]
            if not selected:
                continue

            def mean(key: str, rows: list = selected) -> float:
                return float(np.mean([r[key] for r in rows]))

            rows.append(
                {
                    "method": method,
                    "density": density,
                    "images": len(selected),
                    "psnr": mean("psnr"),
                    "mae": mean("mae"),
                    "ssim": mean("ssim"),
                    "seconds_per_image": mean("seconds"),
                    "device": devices[method],
                    "mask_density": mean("mask_density"),
                    "seconds_per_image_batched": (batched or {}).get((method, density)),
                }
            )
    return rows


def _format(value: Any, key: str) -> str:
    """Formats one CSV cell."""
    if value is None:
        return ""
    if isinstance(value, float):
        # Densities as written on the command line; the rest with 10
        # significant digits (inf stays "inf" for identical images).
        return f"{value:g}" if key == "density" else f"{value:.10g}"
    return str(value)


def write_csv(
    path: str | Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]
) -> None:
    """Writes rows as CSV with the given column order."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_format(row.get(key), key) for key in columns])


def _table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    """A Markdown table; the first column left-aligned, the rest right-aligned."""
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def table2_report(rows: Sequence[Mapping[str, Any]], densities: Sequence[float]) -> str:
    """The paper's Table 2 layout of the methods that were evaluated.

    One table per group of `TABLE2_GROUPS` with any evaluated method: rows
    are densities, columns the group's operators, each cell the PSNR and the
    seconds per image; a method that was not evaluated is left empty.

    Args:
        rows: Summary rows from ``summarise`` (native-size images only).
        densities: Densities, in row order.

    Returns:
        Markdown text; empty when no Table 2 method was evaluated.
    """
    found = {
        (r["method"], r["density"]): r for r in rows if not r.get("upscaled", False)
    }
    parts = []
    for title, columns in TABLE2_GROUPS:
        if not any((m, d) in found for _, m in columns for d in densities):
            continue
        body = []
        for density in densities:
            cells = [density_label(density)]
            for _, method in columns:
                row = found.get((method, density))
                cells.append(
                    ""
                    if row is None
                    else f"{row['psnr']:.2f} ({row['seconds_per_image']:.2g} s)"
                )
            body.append(cells)
        header = ["Density"] + [f"{label} `{m}`" for label, m in columns]
        parts.append(f"**{title}**\n\n" + _table(header, body))
    if not parts:
        return ""
    return (
        "Layout of the paper's Table 2: PSNR in dB (seconds per image).\n\n"
        + "\n\n".join(parts)
        + "\n"
    )


def markdown_report(
    rows: Sequence[Mapping[str, Any]],
    methods: Sequence[str],
    densities: Sequence[float],
    *,
    images: int,
    image_size: int,
    channels: int,
    source: str,
    batch_size: int | None = None,
    upscaled: Sequence[str] = (),
) -> str:
    """The result tables in Markdown, laid out like the paper's Tables 2-4.

    Rows are densities and columns methods, as in the paper: PSNR (Table 2),
    MAE and SSIM side by side (Table 3), seconds per image with the device
    (Table 4), and the mean density the masks actually had.

    Args:
        rows: Summary rows from ``summarise``.
        methods: Method names, in column order.
        densities: Densities, in row order.
        images: Number of evaluated images.
        image_size: Side of the centre crop.
        channels: 1 or 3.
        source: Where the images came from.
        batch_size: Batch size of the batched timings, if any were taken.
        upscaled: Names of the images smaller than the crop, averaged apart.

    Returns:
        The Markdown text.
    """
    rows = [r for r in rows if not r.get("upscaled")]
    lookup = {(r["method"], r["density"]): r for r in rows}

    def cells(key: str, fmt: str) -> list[list[str]]:
        body = []
        for density in densities:
            line = [density_label(density)]
            for method in methods:
                value = lookup.get((method, density), {}).get(key)
                line.append("-" if value is None else format(value, fmt))
            body.append(line)
        return body

    colour = "colour" if channels == 3 else "grey"
    parts = [
        f"Evaluation on {images} {colour} image(s) from {source}, centre crop "
        f"{image_size}x{image_size}.",
        *(
            [
                "",
                f"Left out of these tables: {len(upscaled)} image(s) smaller than "
                f"the crop, upscaled ({', '.join(upscaled)}); their averages are "
                f"the rows with upscaled=True in results.csv.",
            ]
            if upscaled
            else []
        ),
        "",
        "PSNR in dB (higher is better; layout of Table 2):",
        "",
        _table(["Density", *methods], cells("psnr", ".2f")),
        "",
        "MAE on the 0-255 scale (lower is better) and SSIM (higher is better; "
        "layout of Table 3):",
        "",
    ]
    mae_ssim = [
        a + b[1:]
        for a, b in zip(cells("mae", ".2f"), cells("ssim", ".2f"), strict=True)
    ]
    parts += [
        _table(
            [
                "Density",
                *(f"MAE {m}" for m in methods),
                *(f"SSIM {m}" for m in methods),
            ],
            mae_ssim,
        ),
        "",
        "Seconds per image, one image at a time (layout of Table 4):",
        "",
        _table(["Density", *methods], cells("seconds_per_image", ".4g")),
        "",
    ]
    device_lines = []
    for method in methods:
        device = next((r["device"] for r in rows if r["method"] == method), None)
        if device is not None:
            device_lines.append(f"- {method}: {device}")
    parts += ["Devices:", "", *device_lines, ""]
    batched_methods = [
        m
        for m in methods
        if any(
            lookup.get((m, d), {}).get("seconds_per_image_batched") is not None
            for d in densities
        )
    ]
    if batched_methods:
        parts += [
            f"Seconds per image of the learned methods, batches of up to "
            f"{batch_size} (after a warm-up):",
            "",
            _table(
                ["Density", *batched_methods],
                [
                    [density_label(d)]
                    + [
                        "-"
                        if (
                            v := lookup.get((m, d), {}).get("seconds_per_image_batched")
                        )
                        is None
                        else format(v, ".4g")
                        for m in batched_methods
                    ]
                    for d in densities
                ],
            ),
            "",
        ]
    parts += [
        "Mean mask density the masks actually had:",
        "",
        _table(["Density", *methods], cells("mask_density", ".4f")),
        "",
        f"SSIM: {metrics.SSIM_IMPLEMENTATION}.",
    ]
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------
# Figures


def write_figure(
    path: str | Path,
    original: np.ndarray,
    panels: Mapping[float, Sequence[Mapping[str, Any]]],
    title: str,
) -> None:
    """Writes a comparison figure like the paper's Figs. 2-3 as a PNG.

    Per density, the first row shows the original and each method's result
    (MAE and SSIM below it) and the second row each method's mask (known
    pixels white on black, point count below it).

    Args:
        path: The PNG file to write.
        original: The image, (H, W, C) in [0, 1].
        panels: Per density, one dict per method with the keys ``method``,
            ``mask`` (bool (H, W)), ``result`` (H, W, C), ``mae``, ``ssim``.
        title: The figure title (the image name).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    densities = list(panels)
    columns = 1 + max(len(p) for p in panels.values())
    rows = 2 * len(densities)
    # Inches per panel; the extra height leaves room for the captions.
    width, height = 2.0, 2.4
    fig, axes = plt.subplots(
        rows,
        columns,
        figsize=(width * columns, height * rows + 0.4),
        squeeze=False,
        layout="constrained",
    )

    def show(ax: Any, image: np.ndarray) -> None:
        image = np.clip(np.asarray(image, np.float32), 0.0, 1.0)
        if image.ndim == 3 and image.shape[-1] == 1:
            image = image[..., 0]
        if image.ndim == 2:
            ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        else:
            ax.imshow(image, interpolation="nearest")

    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    for block, density in enumerate(densities):
        top, bottom = axes[2 * block], axes[2 * block + 1]
        show(top[0], original)
        top[0].set_title("original", fontsize=10)
        top[0].set_ylabel(f"density {density_label(density)}", fontsize=10)
        bottom[0].text(
            0.5,
            0.5,
            f"masks at\n{density_label(density)} density",
            ha="center",
            va="center",
            fontsize=10,
            transform=bottom[0].transAxes,
        )
        for column, panel in enumerate(panels[density], start=1):
            show(top[column], panel["result"])
            top[column].set_title(panel["method"], fontsize=10)
            top[column].set_xlabel(
                f"MAE {panel['mae']:.2f}  SSIM {panel['ssim']:.2f}", fontsize=9
            )
            bottom[column].imshow(
                np.asarray(panel["mask"], np.float32),
                cmap="gray",
                vmin=0.0,
                vmax=1.0,
                interpolation="nearest",
            )
            bottom[column].set_xlabel(
                f"{int(np.sum(panel['mask']))} points", fontsize=9
            )
    fig.suptitle(title, fontsize=11)
    fig.savefig(path, dpi=100)
    plt.close(fig)
