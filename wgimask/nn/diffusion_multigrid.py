"""Aggregation multigrid preconditioner for the masked diffusion system.

Used by `wgimask.nn.exact_diffusion` with ``preconditioner="multigrid"``. A level
holds an operator (L x)_i = s_i x_i + sum_j e_ij (x_i - x_j) over the grid
edges of its active pixels, channels-first: vectors (B, C, h, w), coefficients
(B, 1, h, w). The fine level is the reduced system (W + A_UU); coarse levels
are the Galerkin products P^T L P for P piecewise constant on the active
pixels of 2x2 blocks, which have the same form (the edges inside a block
cancel, those between blocks add up, s adds up). See docs/learned-masks.md.
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf


class _Level(NamedTuple):
    """One level of the multigrid preconditioner: s x + weighted Laplacian.

    The operator is (L x)_i = s_i x_i + sum_j e_ij (x_i - x_j) over the grid
    edges, on the active pixels (``active`` = 1); inactive pixels keep x = 0.
    """

    active: tf.Tensor  # (B, 1, h, w)
    diagonal_term: tf.Tensor  # s, (B, 1, h, w), 0 where inactive
    across: tf.Tensor  # e of the edges (y, x)-(y, x+1), (B, 1, h, w - 1)
    down: tf.Tensor  # e of the edges (y, x)-(y+1, x), (B, 1, h - 1, w)
    inverse_diagonal: tf.Tensor  # active / (s + sum of incident e)

    def apply(self, x):
        flux_x = self.across * (x[..., 1:] - x[..., :-1])
        flux_y = self.down * (x[:, :, 1:] - x[:, :, :-1])
        zero_x = tf.zeros_like(x[..., :1])
        zero_y = tf.zeros_like(x[:, :, :1])
        return self.active * (
            self.diagonal_term * x
            - tf.concat([flux_x, zero_x], axis=3)
            + tf.concat([zero_x, flux_x], axis=3)
            - tf.concat([flux_y, zero_y], axis=2)
            + tf.concat([zero_y, flux_y], axis=2)
        )


def _level(active, diagonal_term, across, down) -> _Level:
    zero_x = tf.zeros_like(active[..., :1])
    zero_y = tf.zeros_like(active[:, :, :1])
    incident = (
        tf.concat([across, zero_x], axis=3)
        + tf.concat([zero_x, across], axis=3)
        + tf.concat([down, zero_y], axis=2)
        + tf.concat([zero_y, down], axis=2)
    )
    diagonal = diagonal_term + incident
    inverse = tf.where(active > 0, 1.0 / tf.where(diagonal > 0, diagonal, 1.0), 0.0)
    return _Level(active, diagonal_term, across, down, inverse)


def _pad_even(x):
    """Pads the last two axes to even sizes with zeros (inactive pixels)."""
    return tf.pad(x, [[0, 0], [0, 0], [0, x.shape[2] % 2], [0, x.shape[3] % 2]])


def _blocks(x):
    """(B, C, h, w) with even h, w -> (B, C, h/2, 2, w/2, 2) (2x2 blocks)."""
    b, c, h, w = (tf.shape(x)[0], x.shape[1], x.shape[2], x.shape[3])
    return tf.reshape(x, (b, c, h // 2, 2, w // 2, 2))


def _restrict(x):
    """Sum over 2x2 blocks (P^T for piecewise-constant P), odd sides padded."""
    return tf.reduce_sum(_blocks(_pad_even(x)), axis=(3, 5))


def _prolong(x, height: int, width: int):
    """Each coarse value on its 2x2 block (P), cropped to height x width."""
    b, c, h, w = (tf.shape(x)[0], x.shape[1], x.shape[2], x.shape[3])
    up = tf.broadcast_to(x[:, :, :, None, :, None], (b, c, h, 2, w, 2))
    return tf.reshape(up, (b, c, 2 * h, 2 * w))[:, :, :height, :width]


def _coarsen(level: _Level) -> _Level:
    """Galerkin coarse level P^T L P for 2x2 aggregates, P = active indicator."""
    active = _pad_even(level.active)
    h, w = active.shape[2], active.shape[3]
    # Edges inside an aggregate cancel (x is constant on it); the others add
    # up. Padded to h x w, the edge (y, x)-(y, x+1) sits at (y, x); the edges
    # between aggregates leave odd columns (rows for the vertical ones).
    across = tf.pad(
        level.across,
        [
            [0, 0],
            [0, 0],
            [0, h - level.across.shape[2]],
            [0, w - level.across.shape[3]],
        ],
    )
    down = tf.pad(
        level.down,
        [[0, 0], [0, 0], [0, h - level.down.shape[2]], [0, w - level.down.shape[3]]],
    )
    coarse_across = tf.reduce_sum(_blocks(across)[..., 1], axis=3)[..., :-1]
    coarse_down = tf.reduce_sum(_blocks(down)[:, :, :, 1], axis=-1)[:, :, :-1]
    coarse_active = tf.cast(_restrict(active) > 0, active.dtype)
    return _level(
        coarse_active, _restrict(level.diagonal_term), coarse_across, coarse_down
    )


def hierarchy(active, diagonal_term, coarsest: int = 4) -> list[_Level]:
    """The levels of 2x2 aggregation, down to sides <= `coarsest`.

    Args:
        active: (B, 1, H, W), 1 at the unknown pixels of the fine system.
        diagonal_term: (B, 1, H, W) s of the fine operator s x + L_U x, where
            L_U is the grid Laplacian of the edges between active pixels
            (zero where inactive).
        coarsest: Largest side of the coarsest level.

    Returns:
        The levels, finest first; H and W must be static.
    """
    pair_x = active[..., 1:] * active[..., :-1]
    pair_y = active[:, :, 1:] * active[:, :, :-1]
    levels = [_level(active, diagonal_term, pair_x, pair_y)]
    while max(levels[-1].active.shape[2], levels[-1].active.shape[3]) > coarsest:
        levels.append(_coarsen(levels[-1]))
    return levels


def v_cycle(levels, r, index=0, omega=2.0 / 3.0):
    """Symmetric V-cycle from zero: one damped Jacobi sweep before and after.

    With the smoother S = omega D^-1 and coarse solve B_c, it applies
    (2 S - S A S) + (I - S A) P B_c P^T (I - A S), symmetric positive definite
    for omega < 1, so it can precondition CG. The coarsest level is a
    Jacobi solve.

    Args:
        levels: From `hierarchy`.
        r: (B, C, H, W) residuals.
        index: The level `r` lives on.
        omega: Jacobi damping.

    Returns:
        (B, C, H, W) preconditioned residual.
    """
    level = levels[index]
    if index == len(levels) - 1:
        return level.inverse_diagonal * r
    x = omega * level.inverse_diagonal * r
    coarse_r = _restrict(r - level.apply(x))
    correction = v_cycle(levels, coarse_r, index + 1, omega)
    x = x + level.active * _prolong(correction, r.shape[2], r.shape[3])
    return x + omega * level.inverse_diagonal * (r - level.apply(x))
