"""Electrostatic halftoning (Schmaltz, Gwosdek, Bruhn and Weickert, 2010).

The mask points are particles of negative charge that repel each other; the
probability map is a positive charge density that attracts them. Both
forces follow 2-D electrostatics (magnitude 1/r). At equilibrium the
particles are spread like the charge, with the even, blue-noise spacing of
repelling particles: better spread than an ordered dither where the
probability changes, better matched to it than a regular pattern.

Here the particles start at the ordered dither's points
(`wgimask.masks.halftoning.ordered_dither`, which also makes the result
depend on the seed only through the dither's phase), move along the net
force for a fixed number of steps with a step length that shrinks
geometrically, and are then rounded to distinct pixels (a particle whose
pixel is taken goes to the nearest free one). Forces are truncated at a
radius of `RADIUS_SPACINGS` mean point spacings: within it the attraction
comes from the pixels (one FFT correlation of the probability map with the
truncated kernel, read bilinearly) and the repulsion from the particles
(found with a cell grid), so a step costs O(P) for P points rather than
the O(P^2) of the full sums. Beyond the radius, charge and particles
nearly balance. Compiled with numba, like the multigrid solver.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from scipy.signal import fftconvolve

from wgimask.masks.halftoning import ordered_dither

#: Force cut-off, in mean point spacings 1 / sqrt(D). On the 76 training
#: crops (64 px, analytic density) 4 / 8 / 16 spacings gave 27.89 / 27.94 /
#: 28.00 dB at 5 % and 30.73 / 30.81 / 30.90 dB at 10 % (the full sums:
#: 27.96 / 30.89); the cost per step grows with the square of the radius.
RADIUS_SPACINGS = 8.0
#: Steps of the particle simulation.
STEPS = 60
#: Step length: force times this, at most the current maximal move.
STEP_SCALE = 1.0
#: Maximal move per step in pixels, first and last step (geometric between).
MAX_MOVE = (1.0, 0.05)


def _kernel(radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Truncated field kernel d / |d|^2 (0 at d = 0 and beyond `radius`)."""
    reach = int(math.ceil(radius))
    d = np.arange(-reach, reach + 1, dtype=np.float64)
    dy, dx = np.meshgrid(d, d, indexing="ij")
    r2 = dy**2 + dx**2
    inside = (r2 > 0) & (r2 <= radius**2)
    safe = np.where(inside, r2, 1.0)
    return np.where(inside, dy / safe, 0.0), np.where(inside, dx / safe, 0.0)


def attraction_field(probability: np.ndarray, radius: float):
    """Force of the charge `probability` on a unit test charge at each pixel.

    sum over pixels x within `radius` of y of p(x) (x - y) / |x - y|^2.

    Returns:
        (field_y, field_x), each (H, W) float64.
    """
    ky, kx = _kernel(radius)
    # fftconvolve(p, k)(y) = sum_x p(x) k(y - x), and k(y - x) = -k(x - y).
    fy = -fftconvolve(probability, ky, mode="same")
    fx = -fftconvolve(probability, kx, mode="same")
    return fy, fx


@numba.njit(cache=True, fastmath={"contract"}, boundscheck=False)
def _simulate(py, px, fy, fx, radius, steps, scale, first_move, last_move):
    """Moves the particles (py, px) in place under attraction and repulsion."""
    h, w = fy.shape
    n = py.size
    cell = max(radius, 1.0)
    rows = int(h / cell) + 1
    cols = int(w / cell) + 1
    head = np.empty(rows * cols, np.int64)
    link = np.empty(n, np.int64)
    gy = np.empty(n)
    gx = np.empty(n)
    r2max = radius * radius
    for step in range(steps):
        ratio = step / max(steps - 1, 1)
        move = first_move * (last_move / first_move) ** ratio
        head[:] = -1
        for i in range(n):
            c = int(py[i] / cell) * cols + int(px[i] / cell)
            link[i] = head[c]
            head[c] = i
        for i in range(n):
            y = py[i]
            x = px[i]
            # Bilinear read of the attraction field.
            y0 = min(int(y), h - 2) if h > 1 else 0
            x0 = min(int(x), w - 2) if w > 1 else 0
            y1 = min(y0 + 1, h - 1)
            x1 = min(x0 + 1, w - 1)
            ty = y - y0
            tx = x - x0
            ay = (1 - ty) * ((1 - tx) * fy[y0, x0] + tx * fy[y0, x1]) + ty * (
                (1 - tx) * fy[y1, x0] + tx * fy[y1, x1]
            )
            ax = (1 - ty) * ((1 - tx) * fx[y0, x0] + tx * fx[y0, x1]) + ty * (
                (1 - tx) * fx[y1, x0] + tx * fx[y1, x1]
            )
            # Repulsion of the particles within the radius (3x3 cells).
            cy = int(y / cell)
            cx = int(x / cell)
            for ny in range(max(cy - 1, 0), min(cy + 2, rows)):
                for nx in range(max(cx - 1, 0), min(cx + 2, cols)):
                    j = head[ny * cols + nx]
                    while j >= 0:
                        if j != i:
                            dy = y - py[j]
                            dx = x - px[j]
                            r2 = dy * dy + dx * dx
                            if r2 <= r2max:
                                r2 += 1e-6
                                ay += dy / r2
                                ax += dx / r2
                        j = link[j]
            gy[i] = ay
            gx[i] = ax
        for i in range(n):
            my = scale * gy[i]
            mx = scale * gx[i]
            length = math.sqrt(my * my + mx * mx)
            if length > move:
                my *= move / length
                mx *= move / length
            py[i] = min(max(py[i] + my, 0.0), h - 1.0)
            px[i] = min(max(px[i] + mx, 0.0), w - 1.0)


@numba.njit(cache=True, boundscheck=False)
def _to_pixels(py, px, order, h, w):
    """Rounds particles, in `order`, to distinct pixels (nearest free one)."""
    mask = np.zeros((h, w), np.bool_)
    for i in order:
        y = py[i]
        x = px[i]
        iy = min(max(int(math.floor(y + 0.5)), 0), h - 1)
        ix = min(max(int(math.floor(x + 0.5)), 0), w - 1)
        if not mask[iy, ix]:
            mask[iy, ix] = True
            continue
        best_y = -1
        best_x = -1
        best = np.inf
        ring = 1
        while best_y < 0 or ring <= math.sqrt(best) + 1:
            for yy in range(max(iy - ring, 0), min(iy + ring, h - 1) + 1):
                for xx in range(max(ix - ring, 0), min(ix + ring, w - 1) + 1):
                    if max(abs(yy - iy), abs(xx - ix)) != ring or mask[yy, xx]:
                        continue
                    d = (yy - y) ** 2 + (xx - x) ** 2
                    if d < best:
                        best = d
                        best_y = yy
                        best_x = xx
            ring += 1
            if ring > h + w:
                break
        mask[best_y, best_x] = True
    return mask


def electrostatic_halftone(
    probability: np.ndarray, count: int, *, seed: int = 0, steps: int = STEPS
) -> np.ndarray:
    """Electrostatic halftoning of a probability map to exactly ``count`` points.

    Args:
        probability: (H, W) array with values in [0, 1], summing to about
            ``count`` (as `_scale_to_mean` makes it).
        count: number of points wanted, 0 <= count <= H * W.
        seed: phase of the ordered dither the particles start from.
        steps: steps of the particle simulation (0: the ordered dither).

    Returns:
        (H, W) bool mask with exactly ``count`` True pixels.
    """
    probability = np.clip(np.asarray(probability, np.float64), 0.0, 1.0)
    h, w = probability.shape
    start = ordered_dither(probability, count, seed=seed)
    if count == 0 or count == h * w or steps == 0:
        return start
    # At most the image's diagonal: beyond it the cut-off changes nothing.
    radius = min(RADIUS_SPACINGS / math.sqrt(count / (h * w)), math.hypot(h, w))
    fy, fx = attraction_field(probability, radius)
    py, px = (a.astype(np.float64) for a in np.nonzero(start))
    _simulate(py, px, fy, fx, radius, steps, STEP_SCALE, *MAX_MOVE)
    # Particles on the likeliest pixels claim theirs first.
    rounded = probability[
        np.clip(np.floor(py + 0.5).astype(np.int64), 0, h - 1),
        np.clip(np.floor(px + 0.5).astype(np.int64), 0, w - 1),
    ]
    order = np.argsort(-rounded, kind="stable")
    return _to_pixels(py, px, order, h, w)
