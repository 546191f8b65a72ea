"""Curvature-driven diffusion (CDD) inpainting after Chan and Shen (2001).

CDD ("Nontexture inpainting by curvature-driven diffusions", J. Visual
Communication and Image Representation 12(4), 2001) is one of the classical
inpainting operators of Dai et al. (2019) that the paper compares against in
its Table 2. On the unknown pixels it evolves

    u_t = div( g(|kappa|) / |grad u|_eps * grad u ),
    kappa = div( grad u / |grad u|_eps )          (the level lines' curvature),
    |grad u|_eps = sqrt(eps^2 + |grad u|^2),
    g(s) = a + s^p,   p >= 1, a > 0,

with the known pixels fixed and reflecting (homogeneous Neumann) image
boundaries, and its steady state is the inpainting. Chan and Shen's g(s) = s^p
vanishes on straight level lines, where the flow would stall; the constant a
keeps it diffusing there (and keeps every weight positive).

Discretisation (unit grid, as in Chan and Shen's scheme). Every grid edge
between neighbours i and j gets |grad u|_eps from the difference u_j - u_i
across it and the mean of the two central differences along it. The
curvature at a pixel is the conservative divergence
kappa_i = sum_j (u_j - u_i) / |grad u|_eps,ij over its in-image neighbours
(no flux across the image boundary), and the diffusion weight of an edge is
w_ij = (g(|kappa_i|) + g(|kappa_j|)) / 2 / |grad u|_eps,ij.

Iteration. The weights are large where the image is flat (up to about
(a + 4^p) / eps), so explicit steps with one global time step stable
everywhere take thousands of steps (measured on 64x64 crops with eps = 0.01,
p = a = 1: after 3000 global steps the image still changed by 5e-4 per 100
steps, after 3000 local ones by 2e-8). Since only the steady state is
wanted, each
unknown pixel takes its own largest stable explicit step instead (*local
time stepping*):

    u_i <- (1 - theta) u_i + theta * sum_j w_ij u_j / sum_j w_ij,

a damped nonlinear Jacobi step with the weights of the current iterate. Its
fixed points are exactly the steady states of the CDD flow; the intermediate
iterates do not follow the flow's time evolution. For theta in (0, 1] every
update is a convex combination of the pixel and its neighbours, so the
result obeys a discrete maximum principle: it lies between the smallest and
the largest known value (the homogeneous diffusion start does too). The
iteration starts from homogeneous diffusion inpainting
(`wgimask.diffusion.inpainting.inpaint`) and stops when a step changes the
image by less than ``tol`` relative to it (2-norms over all pixels and
channels), or after ``max_iter`` steps. A semi-implicit variant (lagged
weights, one sparse solve per step) was tried and not kept: with small a
(0.1) it oscillated instead of converging, as the local steps do, and each
of its steps (a sparse LU per channel) cost about as much as a hundred
local steps on a 64x64 crop.

Colour images are processed per channel: every channel evolves by its own
curvature and gradient (CDD is defined for scalar images; a joint gradient
would couple the channels' level lines, which Chan and Shen do not do).
Parameters refer to values in [0, 1] (eps is a grey-value difference).

Defaults (p = 1.5, eps = 0.01, a = 2, theta = 0.9, tol = 1e-5,
max_iter = 2000): chosen by ``python -m benchmarks.studies.cdd_ms_parameters``,
a grid search over p, eps, a and tol on training crops only (12 colour
crops 64x64 of skimage's astronaut, chelsea, coffee and rocket, random masks
of density 5%, 10%, 20%). There the mean PSNR was 25.05 / 27.00 / 28.87 dB
against 24.05 / 25.82 / 27.93 dB for homogeneous diffusion from the same
masks (+1.04 dB on average), in 0.075 s per crop; a 768x512 colour image
took 3.5 to 5.5 s (Intel(R) Xeon(R) Processor, one thread, cores shared with
other jobs; that module has the tables). theta was not searched. The first
call in a process compiles (once after installing) or loads the kernel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from wgimask.arrays import as_image, as_known_mask, result_dtype
from wgimask.diffusion.inpainting import inpaint
from wgimask.diffusion.jit import jit_sum

__all__ = [
    "CDDInfo",
    "DEFAULT_A",
    "DEFAULT_EPS",
    "DEFAULT_MAX_ITER",
    "DEFAULT_P",
    "DEFAULT_THETA",
    "DEFAULT_TOL",
    "check_count",
    "check_number",
    "inpaint_cdd",
]

#: Exponent p of g(s) = a + s^p (Chan and Shen: p >= 1).
DEFAULT_P = 1.5
#: Regularisation of |grad u| (a grey-value difference, values in [0, 1]).
DEFAULT_EPS = 0.01
#: Constant a of g(s) = a + s^p that keeps flat level lines diffusing.
DEFAULT_A = 2.0
#: Fraction theta of each pixel's largest stable local step.
DEFAULT_THETA = 0.9
#: Stop once a step changes the image by less than this, relatively.
DEFAULT_TOL = 1e-5
#: Bound on the number of steps.
DEFAULT_MAX_ITER = 2000


@dataclass(frozen=True)
class CDDInfo:
    """Convergence report of `inpaint_cdd`.

    Attributes:
        iterations: number of local time steps taken.
        relative_change: ||u_k - u_{k-1}|| / ||u_k|| of the last step
            (2-norms over all pixels and channels); 0.0 if no step was
            needed.
        converged: whether ``relative_change`` fell below ``tol`` (False if
            the iteration stopped at ``max_iter``).
    """

    iterations: int
    relative_change: float
    converged: bool


def check_number(
    name: str,
    value,
    low: float,
    high: float = math.inf,
    *,
    low_open: bool = True,
    high_open: bool = False,
) -> float:
    """Checks that a parameter is a real number in an interval.

    Args:
        name: the parameter's name, for the message.
        value: what was received.
        low: lower bound of the interval.
        high: upper bound (``inf`` for none).
        low_open: whether ``low`` itself is excluded.
        high_open: whether ``high`` itself is excluded (``inf`` always is).

    Returns:
        The value as a float.

    Raises:
        ValueError: (one line, showing the value) if it is not a real
            number in the interval; NaN never is.
    """
    left = "(" if low_open else "["
    right = ")" if high_open or math.isinf(high) else "]"
    interval = f"{left}{low:g}, {high:g}{right}"
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be a number in {interval}, got {value!r}"
        ) from None
    above = number > low if low_open else number >= low
    below = number < high if (high_open or math.isinf(high)) else number <= high
    if not (above and below):  # also false for NaN
        raise ValueError(f"{name} must lie in {interval}, got {value!r}")
    return number


def check_count(name: str, value, low: int = 1) -> int:
    """Checks that a parameter is an integer of at least ``low``.

    Raises:
        ValueError: (one line, showing the value) otherwise; floats with an
            integral value (such as 100.0) are accepted, bools are not.
    """
    ok = isinstance(value, (int, np.integer)) and not isinstance(
        value, (bool, np.bool_)
    )
    if not ok and isinstance(value, (float, np.floating)) and float(value).is_integer():
        ok = True
    if not ok or int(value) < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


@jit_sum
def _cdd_steps(u, known, eps2, a, p, theta, tol, max_iter, inv_x, inv_y, g, new):
    """Local CDD time steps of every channel of u (C, H, W), in place.

    Args:
        u: (C, H, W) float64 image, the start on entry, the result on exit.
        known: (H, W) bool mask; known pixels are never changed.
        eps2: eps^2.
        a, p: g(s) = a + s^p.
        theta: fraction of the local stable step, in (0, 1].
        tol: stop once a step's relative change is below it.
        max_iter: step limit.
        inv_x, inv_y, g, new: scratch arrays (H, W-1), (H-1, W), (H, W),
            (H, W).

    Returns:
        (steps taken, relative change of the last step).
    """
    c, h, w = u.shape
    change = 0.0
    for it in range(max_iter):
        dsq = 0.0
        usq = 0.0
        for k in range(c):
            uk = u[k]
            # 1 / |grad u|_eps on the edges: the difference across the edge
            # and the mean of the two central differences along it (with
            # reflected rows and columns at the image boundary).
            for i in range(h):
                im = max(i - 1, 0)
                ip = min(i + 1, h - 1)
                for j in range(w - 1):
                    dx = uk[i, j + 1] - uk[i, j]
                    dy = 0.25 * (uk[ip, j] - uk[im, j] + uk[ip, j + 1] - uk[im, j + 1])
                    inv_x[i, j] = 1.0 / np.sqrt(eps2 + dx * dx + dy * dy)
            for i in range(h - 1):
                for j in range(w):
                    jm = max(j - 1, 0)
                    jp = min(j + 1, w - 1)
                    dy = uk[i + 1, j] - uk[i, j]
                    dx = 0.25 * (uk[i, jp] - uk[i, jm] + uk[i + 1, jp] - uk[i + 1, jm])
                    inv_y[i, j] = 1.0 / np.sqrt(eps2 + dx * dx + dy * dy)
            # g(|kappa|) at the pixels, kappa the divergence of the unit
            # normals (no flux across the image boundary).
            for i in range(h):
                for j in range(w):
                    s = 0.0
                    if j > 0:
                        s += (uk[i, j - 1] - uk[i, j]) * inv_x[i, j - 1]
                    if j < w - 1:
                        s += (uk[i, j + 1] - uk[i, j]) * inv_x[i, j]
                    if i > 0:
                        s += (uk[i - 1, j] - uk[i, j]) * inv_y[i - 1, j]
                    if i < h - 1:
                        s += (uk[i + 1, j] - uk[i, j]) * inv_y[i, j]
                    s = abs(s)
                    # pow is slow; the common exponents get plain products.
                    if p == 1.0:
                        g[i, j] = a + s
                    elif p == 1.5:
                        g[i, j] = a + s * np.sqrt(s)
                    elif p == 2.0:
                        g[i, j] = a + s * s
                    else:
                        g[i, j] = a + s**p
            # Damped Jacobi: the weighted mean of the neighbours with the
            # current weights (a convex combination, hence max principle).
            # The factor 1/2 of the weights cancels in the mean.
            for i in range(h):
                for j in range(w):
                    if known[i, j]:
                        new[i, j] = uk[i, j]
                        continue
                    gi = g[i, j]
                    sw = 0.0
                    su = 0.0
                    if j > 0:
                        we = (gi + g[i, j - 1]) * inv_x[i, j - 1]
                        sw += we
                        su += we * uk[i, j - 1]
                    if j < w - 1:
                        we = (gi + g[i, j + 1]) * inv_x[i, j]
                        sw += we
                        su += we * uk[i, j + 1]
                    if i > 0:
                        we = (gi + g[i - 1, j]) * inv_y[i - 1, j]
                        sw += we
                        su += we * uk[i - 1, j]
                    if i < h - 1:
                        we = (gi + g[i + 1, j]) * inv_y[i, j]
                        sw += we
                        su += we * uk[i + 1, j]
                    new[i, j] = (1.0 - theta) * uk[i, j] + theta * (su / sw)
            for i in range(h):
                for j in range(w):
                    d = new[i, j] - uk[i, j]
                    dsq += d * d
                    usq += new[i, j] * new[i, j]
                    uk[i, j] = new[i, j]
        change = np.sqrt(dsq / usq) if usq > 0.0 else 0.0
        if change < tol:
            return it + 1, change
    return max_iter, change


def inpaint_cdd(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    p: float = DEFAULT_P,
    eps: float = DEFAULT_EPS,
    a: float = DEFAULT_A,
    theta: float = DEFAULT_THETA,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
    return_info: bool = False,
):
    """Curvature-driven diffusion (CDD) inpainting (Chan and Shen, 2001).

    Evolves u_t = div(g(|kappa|) / |grad u|_eps grad u) with g(s) = a + s^p
    on the unknown pixels to a steady state by local explicit time steps,
    from the homogeneous diffusion inpainting; the module docstring has the
    discretisation. Colour channels are inpainted independently.

    Args:
        image: (H, W) or (H, W, C) array, values in [0, 1] (the parameters
            refer to that range).
        mask: (H, W) binary array (bool, or 0/1 numbers); True/1 marks a
            known pixel.
        p: exponent of g, at least 1.
        eps: regularisation of |grad u|, > 0.
        a: constant of g, > 0 (with a = 0 flat regions would not diffuse).
        theta: fraction of each pixel's largest stable step, in (0, 1].
        tol: relative change of a step at which to stop, in (0, 1).
        max_iter: the most steps to take, an integer >= 1.
        return_info: also return a :class:`CDDInfo`.

    Returns:
        The inpainted image, same shape as ``image`` (float32 if the image is
        float32, else float64), or ``(image, info)`` if ``return_info``.
        Known pixels equal the input exactly; all values lie between the
        smallest and the largest known value of their channel.

    Raises:
        ValueError: for a bad image, a mask of another size, a non-binary or
            empty mask, or a parameter outside its range (one line each).
    """
    p = check_number("p", p, 1.0, low_open=False)
    eps = check_number("eps", eps, 0.0)
    a = check_number("a", a, 0.0)
    theta = check_number("theta", theta, 0.0, 1.0)
    tol = check_number("tol", tol, 0.0, 1.0, high_open=True)
    max_iter = check_count("max_iter", max_iter)
    if not isinstance(return_info, (bool, np.bool_)):
        raise ValueError(f"return_info must be True or False, got {return_info!r}")
    f, was_2d = as_image(image)
    h, w, c = f.shape
    known = as_known_mask(mask, (h, w), "CDD inpainting")
    start = inpaint(f, known)
    info = CDDInfo(0, 0.0, True)
    if known.all():
        u = f.copy()
    else:
        # Channel-first, so that each channel's planes are contiguous.
        planes = np.ascontiguousarray(np.moveaxis(start, 2, 0))
        steps, change = _cdd_steps(
            planes, known, eps * eps, a, p, theta, tol, max_iter,
            np.empty((h, max(w - 1, 0))), np.empty((max(h - 1, 0), w)),
            np.empty((h, w)), np.empty((h, w)),
        )  # fmt: skip
        u = np.moveaxis(planes, 0, 2)
        # Unchanged by the steps; set again so "exactly" does not rest on it.
        u[known] = f[known]
        info = CDDInfo(int(steps), float(change), bool(change < tol))
    if was_2d:
        u = u[:, :, 0]
    out_dtype = result_dtype(image)
    u = np.ascontiguousarray(u, dtype=out_dtype)
    return (u, info) if return_info else u
