"""Exact, differentiable homogeneous diffusion inpainting in TensorFlow.

The same model as `wgimask.baselines.inpaint` (5-point Laplacian, reflecting
image boundaries, one mask for all channels), batched, solved by conjugate
gradients inside a `tf.while_loop` and differentiated implicitly: the backward
pass is one adjoint solve of the same system, no iteration is stored. It runs
inside `tf.function` (also with XLA) and per replica under a
`tf.distribute` strategy.

Model. With A = -Laplacian, the positive semi-definite graph Laplacian of the
pixel grid with reflecting boundaries ((A u)_i = sum over the in-image
4-neighbours j of u_i - u_j), and a mask c in [0, 1]^N, the inpainting u of an
image f solves (continuous-mask form, Mainberger et al.)

    M(c) u = c * f,    M(c) = diag(c) + diag(1 - c) A.

For a binary c this is u = f on the mask and A u = 0 elsewhere, the model of
`baselines.inpaint`.

Solver. M(c) is not symmetric for a non-binary c, but it becomes so after two
steps: pixels with c_i = 1 are known (u_i = f_i) and leave the system, and
every other row i is divided by 1 - c_i > 0. With w_i = c_i / (1 - c_i) >= 0
the unknowns U = {i : c_i < 1} then solve

    (W + A_UU) u_U = W f_U - A_UK f_K,       W = diag(w_U),

whose matrix is symmetric, and positive definite as soon as one pixel has
c_i > 0 (the grid is connected). For a binary mask W = 0 and this is exactly
the reduced system of `wgimask.diffusion.inpainting`. It is solved by conjugate
gradients with one of two preconditioners:

* ``"jacobi"`` (default): diag(w_i + degree_i), which leaves CG unchanged for
  binary masks (the degree is 4 but at the border) and absorbs the large w_i
  of confidences close to 1; compiled with XLA;
* ``"multigrid"``: one symmetric V-cycle (damped Jacobi before and after) of
  an aggregation multigrid: 2x2 blocks of unknown pixels form the coarse
  unknowns, with the Galerkin coarse operators P^T L P (again a diagonal plus
  a weighted grid Laplacian) down to sides of 4. The V-cycle is symmetric
  positive definite, so CG stays CG; it needs 5-8x fewer iterations than
  Jacobi, at several times the cost per iteration, and pays for sparse
  masks and large images (docs/learned-masks.md has the measurements).

Every image and channel is its own CG column with its own step sizes; a
column stops once its residual has dropped to ``rtol`` times the norm of its
right-hand side (`wgimask.diffusion.inpainting.CG_RTOL` by default, the paper's
setting), the loop once all columns have. Both norms
are taken in the rows of M(c) u = c f (the symmetrised rows times 1 - c), so
confidences close to 1, whose rows carry a factor 1 / (1 - c), do not
dominate the test; for binary masks this is the plain relative residual of
the reduced system, as in `wgimask.diffusion.inpainting`.

Gradients. For a loss L(u) let lambda solve M(c)^T lambda = dL/du. Then

    dL/dc_i = lambda_i (f_i - u_i + (A u)_i)    (summed over the channels),
    dL/df_i = c_i lambda_i.

M(c)^T lambda = g is the same SPD system in disguise: with mu = (1 - c) lambda,
mu_K = 0 and (W + A_UU) mu_U = g_U, after which lambda_U = mu_U / (1 - c_U) and
lambda_K = g_K - (A mu)_K. So the backward pass is one more CG solve with the
same matrix and preconditioner.

Edge cases (documented choices, not errors):

* mask values outside [0, 1] (e.g. the paper's additive-noise binarisation
  reaches 1.5) are clipped to [0, 1] for the solve, and the gradient of the
  clipped value is passed to the unclipped one unchanged (straight-through);
* an image whose mask is zero everywhere has no data: its inpainting is zero
  and its gradients are zero (u jumps as soon as one c_i > 0, so there is no
  derivative to give);
* if a column has not converged after ``max_iterations`` the loop stops there;
  `solve` reports the iterations and the relative residuals reached.
"""

from __future__ import annotations

from typing import NamedTuple

import keras
import tensorflow as tf

from wgimask.diffusion.inpainting import CG_RTOL
from wgimask.nn import diffusion_multigrid as multigrid

__all__ = [
    "CG_RTOL",
    "PRECONDITIONERS",
    "DiffusionInpainting",
    "DiffusionSolution",
    "diffusion_inpaint",
    "solve",
]

PACKAGE = "wgimask"


class DiffusionSolution(NamedTuple):
    """Result of `solve`.

    Attributes:
        inpainted: (B, H, W, C) inpainting u.
        iterations: int32 scalar, CG iterations of the slowest column.
        residual: (B, C) relative residual ||r|| / ||b|| reached per image and
            channel (recursively updated residual, as in the stopping test).
    """

    inpainted: tf.Tensor
    iterations: tf.Tensor
    residual: tf.Tensor


def _neighbour_sum(x):
    """Sum of the in-image 4-neighbours of every pixel (zero outside)."""
    padded = tf.pad(x, [[0, 0], [0, 0], [1, 1], [1, 1]])
    return (
        padded[:, :, :-2, 1:-1]
        + padded[:, :, 2:, 1:-1]
        + padded[:, :, 1:-1, :-2]
        + padded[:, :, 1:-1, 2:]
    )


def _degree(like):
    """Number of in-image 4-neighbours of every pixel, shape (1, 1, H, W)."""
    ones = tf.ones_like(like[:1, :1])
    return _neighbour_sum(ones)


def _laplacian(x, degree):
    """A x = degree * x - neighbour sum (reflecting boundaries)."""
    return degree * x - _neighbour_sum(x)


def _sum_hw(x):
    return tf.reduce_sum(x, axis=(2, 3), keepdims=True)


class _System(NamedTuple):
    """The SPD system (W + A_UU) on the unknowns of a batch of masks.

    Internally every tensor is channels-first, (B, C, H, W) for images and
    (B, 1, H, W) for masks: the image width is then the fastest axis, which
    the compiled loop vectorises (a last axis of 3 colours does not).
    """

    unknown: tf.Tensor  # (B, 1, H, W), 1 where c < 1
    known: tf.Tensor  # (B, 1, H, W), 1 where c == 1
    weight: tf.Tensor  # (B, 1, H, W), w = c / (1 - c) on U, 0 on K
    diagonal: tf.Tensor  # (B, 1, H, W), w + degree on U, 1 on K
    row_scale: tf.Tensor  # (B, 1, H, W), 1 - c on U, 0 on K
    degree: tf.Tensor  # (1, 1, H, W)
    has_data: tf.Tensor  # (B, 1, 1, 1), 1 where some c > 0

    def apply(self, x):
        """(W + A) x on U, zero on K, for x zero on K."""
        return self.unknown * (self.diagonal * x - _neighbour_sum(x))


def _system(c) -> _System:
    known = tf.cast(c >= 1.0, c.dtype)
    unknown = 1.0 - known
    # 1 - c > 0 on U; the where keeps the division finite on K.
    weight = tf.where(c < 1.0, c / tf.where(c < 1.0, 1.0 - c, 1.0), 0.0)
    degree = _degree(c)
    diagonal = tf.where(c < 1.0, weight + degree, 1.0)
    has_data = tf.cast(tf.reduce_max(c, axis=(1, 2, 3), keepdims=True) > 0, c.dtype)
    row_scale = unknown * (1.0 - c)
    return _System(unknown, known, weight, diagonal, row_scale, degree, has_data)


PRECONDITIONERS = ("multigrid", "jacobi")


def _conjugate_gradients(
    system: _System, b, x0, rtol, max_iterations, row_scale, preconditioner
):
    """Jacobi-preconditioned CG on every (image, channel) column at once.

    Args:
        system: The system.
        b: (B, C, H, W) right-hand sides, zero on K.
        x0: (B, C, H, W) start, zero on K.
        rtol: Relative residual at which a column stops (scalar tensor).
        max_iterations: Iteration limit (int32 scalar tensor).
        row_scale: (B, 1, H, W) factors of the residual's rows in the norm of
            the stopping test (zero on K).

    Returns:
        (x, iterations, relative residual (B, C)).
    """
    if preconditioner == "multigrid":
        # Fine level: (W + A_UU) = s + Laplacian of the unknown-unknown edges
        # with s = w + number of known neighbours.
        known_neighbours = _neighbour_sum(system.known) * system.unknown
        levels = multigrid.hierarchy(
            system.unknown, (system.weight + known_neighbours) * system.unknown
        )

        def precondition(r):
            return multigrid.v_cycle(levels, r)

    else:
        inverse_diagonal = system.unknown / system.diagonal

        def precondition(r):
            return r * inverse_diagonal

    scale2 = tf.square(row_scale)
    b_norm2 = _sum_hw(scale2 * b * b)
    # A column with b = 0 has the solution 0 whatever the start.
    x0 = tf.where(b_norm2 > 0, x0, tf.zeros_like(x0))
    r = b - system.apply(x0)
    z = precondition(r)
    tolerance2 = tf.square(rtol) * b_norm2
    zero = tf.zeros_like(b_norm2)

    def not_done(i, x, r, p, rz, rr):
        return tf.logical_and(i < max_iterations, tf.reduce_any(rr > tolerance2))

    def step(i, x, r, p, rz, rr):
        active = rr > tolerance2
        ap = system.apply(p)
        pap = _sum_hw(p * ap)
        ok = tf.logical_and(active, pap > 0)
        alpha = tf.where(ok, rz / tf.where(ok, pap, 1.0), zero)
        x = x + alpha * p
        r = r - alpha * ap
        z = precondition(r)
        rz_new = _sum_hw(r * z)
        ok = tf.logical_and(active, rz > 0)
        beta = tf.where(ok, rz_new / tf.where(ok, rz, 1.0), zero)
        p = z + beta * p
        return i + 1, x, r, p, rz_new, _sum_hw(scale2 * r * r)

    i, x, r, _, _, rr = tf.while_loop(
        not_done,
        step,
        (tf.constant(0), x0, r, z, _sum_hw(r * z), _sum_hw(scale2 * r * r)),
    )
    relative = tf.sqrt(rr / tf.where(b_norm2 > 0, b_norm2, 1.0))
    return x, i, relative[:, :, 0, 0]


def _forward(f, c, x0, rtol, max_iterations, preconditioner):
    """Solves M(c) u = c f; channels-first f, x0 (B, C, H, W), c (B, 1, H, W)."""
    system = _system(c)
    known_values = system.known * f
    b = system.unknown * (system.weight * f + _neighbour_sum(known_values))
    b = b * system.has_data
    # Residuals are measured in the rows of the original system M(c) u = c f,
    # i.e. times 1 - c: the symmetrised rows of confidences close to 1 carry
    # a factor 1 / (1 - c) that would otherwise dominate both norms.
    x, iterations, residual = _conjugate_gradients(
        system,
        b,
        system.unknown * x0,
        rtol,
        max_iterations,
        system.row_scale,
        preconditioner,
    )
    return known_values + x, iterations, residual


def _backward(f, c, u, g, rtol, max_iterations, preconditioner):
    """(dL/df, dL/dc) from g = dL/du by one adjoint solve; channels-first."""
    system = _system(c)
    b = system.unknown * g * system.has_data
    # With mu = (1 - c) lambda, M(c)^T lambda = g is (W + A) mu = g on U, mu = 0
    # on K; its rows are those of M(c)^T lambda = g, so no row scaling.
    mu, _, _ = _conjugate_gradients(
        system,
        b,
        tf.zeros_like(b),
        rtol,
        max_iterations,
        system.unknown,
        preconditioner,
    )
    lam = system.unknown * mu / tf.where(c < 1.0, 1.0 - c, 1.0) + system.known * (
        g - _laplacian(mu, system.degree)
    )
    residual = f - u + _laplacian(u, system.degree)
    d_mask = tf.reduce_sum(lam * residual, axis=1, keepdims=True)
    return c * lam, d_mask * system.has_data


# Compiled solves (the graph is built once per image size and preconditioner).
# XLA fuses the Jacobi loop body into a few kernels, faster on the CPU than the
# op-by-op loop; the multigrid V-cycle compiles to slower code than TensorFlow's
# own kernels run (docs/learned-masks.md), so it runs without XLA by default.
_SOLVES = {
    True: (
        tf.function(_forward, jit_compile=True),
        tf.function(_backward, jit_compile=True),
    ),
    False: (
        tf.function(_forward, jit_compile=False),
        tf.function(_backward, jit_compile=False),
    ),
}


def _as_inputs(image, mask, initial):
    image = tf.convert_to_tensor(image)
    mask = tf.convert_to_tensor(mask)
    if image.shape.rank != 4:
        raise ValueError(
            f"image must have shape (batch, height, width, channels), got shape "
            f"{image.shape}"
        )
    if mask.shape.rank != 4 or mask.shape[-1] not in (1, None):
        raise ValueError(
            f"mask must have shape (batch, height, width, 1), got shape {mask.shape}"
        )
    if not image.shape[:3].is_compatible_with(mask.shape[:3]):
        raise ValueError(
            f"mask shape {mask.shape} does not match image shape {image.shape} "
            "in (batch, height, width)"
        )
    if not (image.dtype.is_floating and mask.dtype.is_floating):
        raise ValueError(
            f"image and mask must be floating point, got {image.dtype.name} and "
            f"{mask.dtype.name}"
        )
    # float64 where either is float64, else float32 (half precision would
    # not reach the usual tolerances).
    dtype = tf.float64 if tf.float64 in (image.dtype, mask.dtype) else tf.float32
    image, mask = tf.cast(image, dtype), tf.cast(mask, dtype)
    if initial is None:
        initial = tf.zeros(tf.shape(image), dtype)
    else:
        initial = tf.stop_gradient(tf.cast(tf.convert_to_tensor(initial), dtype))
        if not initial.shape.is_compatible_with(image.shape):
            raise ValueError(
                f"initial must have the image's shape {image.shape}, got shape "
                f"{initial.shape}"
            )
    return image, mask, initial


def _check_rtol(rtol) -> float:
    if not (isinstance(rtol, (int, float)) and 0 < rtol < 1):
        raise ValueError(f"rtol must be a number in (0, 1), got {rtol!r}")
    return float(rtol)


def _check_max_iterations(max_iterations):
    if max_iterations is not None and (
        isinstance(max_iterations, bool)
        or not isinstance(max_iterations, int)
        or max_iterations < 1
    ):
        raise ValueError(
            f"max_iterations must be a positive integer, got {max_iterations!r}"
        )
    return max_iterations


def _iteration_limit(image, max_iterations):
    if max_iterations is not None:
        return tf.constant(max_iterations, tf.int32)
    # CG needs O(largest hole diameter) iterations on the masked Laplacian;
    # 20 (H + W) leaves a wide margin even for a single known pixel.
    shape = tf.shape(image)
    return 20 * (shape[1] + shape[2]) + 100


def _channels_first(x):
    return tf.transpose(x, (0, 3, 1, 2))


def _channels_last(x):
    return tf.transpose(x, (0, 2, 3, 1))


def _check_preconditioner(preconditioner: str) -> str:
    if preconditioner not in PRECONDITIONERS:
        raise ValueError(
            f"preconditioner must be one of {PRECONDITIONERS}, got {preconditioner!r}"
        )
    return preconditioner


def _prepare(image, mask, rtol, max_iterations, initial, preconditioner, jit_compile):
    f, c, x0 = _as_inputs(image, mask, initial)
    rtol = tf.constant(_check_rtol(rtol), f.dtype)
    limit = _iteration_limit(f, _check_max_iterations(max_iterations))
    _check_preconditioner(preconditioner)
    if jit_compile is None:
        jit_compile = preconditioner == "jacobi"
    forward, backward = _SOLVES[bool(jit_compile)]
    return f, c, x0, rtol, limit, forward, backward


def solve(
    image,
    mask,
    *,
    rtol: float = CG_RTOL,
    max_iterations: int | None = None,
    initial=None,
    preconditioner: str = "jacobi",
    jit_compile: bool | None = None,
) -> DiffusionSolution:
    """Homogeneous diffusion inpainting with solver statistics, no gradient.

    Args:
        image: (B, H, W, C) float tensor f.
        mask: (B, H, W, 1) float tensor c, binary or in [0, 1] (see the module
            doc for values outside).
        rtol: Relative residual at which each (image, channel) column stops.
        max_iterations: CG iteration limit; default 20 (H + W) + 100.
        initial: Optional (B, H, W, C) start (warm start), for example the
            previous step's inpainting; only its values at pixels with c < 1
            are used.
        preconditioner: ``"jacobi"`` (default) or ``"multigrid"`` (one
            symmetric V-cycle of 2x2 aggregation multigrid per CG iteration:
            5-8x fewer iterations, each dearer; it pays for sparse masks and
            large images, see docs/learned-masks.md).
        jit_compile: Compile the solver with XLA; None (default) does so for
            the Jacobi preconditioner only (the faster choice for each).

    Returns:
        A `DiffusionSolution`.

    Raises:
        ValueError: For inputs of the wrong rank, shape or dtype, or a bad
            `rtol` or `max_iterations`.
    """
    f, c, x0, rtol, limit, forward, _ = _prepare(
        image, mask, rtol, max_iterations, initial, preconditioner, jit_compile
    )
    c = tf.clip_by_value(c, 0.0, 1.0)
    u, iterations, residual = forward(
        _channels_first(tf.stop_gradient(f)),
        _channels_first(tf.stop_gradient(c)),
        _channels_first(x0),
        rtol,
        limit,
        preconditioner,
    )
    return DiffusionSolution(_channels_last(u), iterations, residual)


def diffusion_inpaint(
    image,
    mask,
    *,
    rtol: float = CG_RTOL,
    max_iterations: int | None = None,
    initial=None,
    preconditioner: str = "jacobi",
    jit_compile: bool | None = None,
):
    """Differentiable homogeneous diffusion inpainting of a batch.

    Solves M(c) u = c f (module doc) by preconditioned CG; the gradient with
    respect to the image and the mask is one adjoint solve of the same system
    (implicit differentiation). Usable eagerly, inside `tf.function` and per
    replica under a `tf.distribute` strategy.

    Args:
        image: (B, H, W, C) float tensor f.
        mask: (B, H, W, 1) float tensor c: binary or a confidence in [0, 1],
            shared by all channels. Values outside [0, 1] are clipped, with a
            straight-through gradient.
        rtol: Relative residual of the forward and the adjoint solve.
        max_iterations: CG iteration limit per solve; default 20 (H + W) + 100.
        initial: Optional (B, H, W, C) warm start of the forward solve (no
            gradient flows into it).
        preconditioner: ``"jacobi"`` (default) or ``"multigrid"``, as for
            `solve`; the adjoint solve uses the same.
        jit_compile: Compile both solves with XLA; None (default) does so for
            the Jacobi preconditioner only.

    Returns:
        The (B, H, W, C) inpainting u, float64 if image or mask is float64,
        else float32. Pixels with c = 1 equal f exactly.

    Raises:
        ValueError: For inputs of the wrong rank, shape or dtype, or a bad
            `rtol` or `max_iterations`.
    """
    f, c_raw, x0, rtol, limit, forward, backward = _prepare(
        image, mask, rtol, max_iterations, initial, preconditioner, jit_compile
    )

    @tf.custom_gradient
    def op(f, c_raw):
        # stop_gradient: no gradient (and no stored loop state) is ever
        # needed from the solves themselves.
        f = _channels_first(tf.stop_gradient(f))
        c = _channels_first(tf.stop_gradient(tf.clip_by_value(c_raw, 0.0, 1.0)))
        u, _, _ = forward(f, c, _channels_first(x0), rtol, limit, preconditioner)

        def grad(upstream):
            g = _channels_first(tf.cast(upstream, u.dtype))
            d_image, d_mask = backward(f, c, u, g, rtol, limit, preconditioner)
            # The mask's gradient passes the clipping unchanged.
            return _channels_last(d_image), _channels_last(d_mask)

        return _channels_last(u), grad

    return op(f, c_raw)


@keras.saving.register_keras_serializable(package=PACKAGE)
class DiffusionInpainting(keras.layers.Layer):
    """Keras layer around `diffusion_inpaint`: ``[image, mask] -> u``.

    No weights. Computes in float32 (or float64 for float64 inputs) whatever
    the dtype policy, so it is best created with ``dtype="float32"``.

    Args:
        rtol: Relative residual of the forward and adjoint CG solves.
        max_iterations: CG iteration limit, None for the default.
        preconditioner: ``"jacobi"`` or ``"multigrid"`` (see `solve`).
        **kwargs: Base layer arguments.

    Raises:
        ValueError: For a bad `rtol`, `max_iterations` or `preconditioner`.
    """

    def __init__(
        self,
        rtol: float = CG_RTOL,
        max_iterations: int | None = None,
        preconditioner: str = "jacobi",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.rtol = _check_rtol(rtol)
        self.max_iterations = _check_max_iterations(max_iterations)
        self.preconditioner = _check_preconditioner(preconditioner)

    def call(self, inputs):
        image, mask = inputs
        u = diffusion_inpaint(
            image,
            mask,
            rtol=self.rtol,
            max_iterations=self.max_iterations,
            preconditioner=self.preconditioner,
        )
        return tf.cast(u, image.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {
            **super().get_config(),
            "rtol": self.rtol,
            "max_iterations": self.max_iterations,
            "preconditioner": self.preconditioner,
        }
