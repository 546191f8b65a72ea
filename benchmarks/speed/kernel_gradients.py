"""Kernel gradients of dilated 5x5 branches: shifted copies + GEMM vs space to batch.

    python -m benchmarks.speed.kernel_gradients

For the branch shapes of the small model's blocks (batch 16), times the two
ways `wgimask.nn.fused_conv` can compute the kernel gradient of a dilated branch on
the CPU: k*k shifted copies of the output gradient and one matmul
(`_kernel_gradients` without oneDNN), and space-to-batch + TensorFlow's
undilated filter-gradient op (`_space_to_batch_kernel_gradient`). It prints
both times and their largest relative difference; the blocks pick the second
where it is faster: dilation 2, feature maps of at least
32 pixels a side, or at most 8 output channels.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf

from wgimask.nn import fused_conv

# (input channels, branch output channels, side): the small model's blocks.
SHAPES = ((7, 8, 64), (32, 8, 64), (32, 16, 32), (64, 16, 16), (64, 32, 8))
BATCH = 16
KERNEL = 5


def _best_ms(function, *args, repeats: int = 5) -> float:
    function(*args).numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(*args).numpy()
        times.append(time.perf_counter() - start)
    return 1e3 * min(times)


def main() -> None:
    onednn_on = fused_conv._onednn_enabled()
    print(f"oneDNN on: {onednn_on}, batch {BATCH}, {KERNEL}x{KERNEL}")
    print(
        f"{'C_in':>5s} {'C':>4s} {'side':>5s} {'d':>2s} {'copies ms':>10s} "
        f"{'s2b ms':>8s} {'rel. diff':>10s}"
    )
    for c_in, c_out, side in SHAPES:
        x = tf.random.normal((BATCH, side, side, c_in), seed=1)
        g = tf.random.normal((BATCH, side, side, c_out), seed=2)
        for d in (2, 5):
            copies = tf.function(
                lambda x, g, d=d: fused_conv._kernel_gradients(x, [g], KERNEL, [d])[0]
            )
            s2b = tf.function(
                lambda x, g, d=d: fused_conv._space_to_batch_kernel_gradient(
                    x, g, KERNEL, d
                )
            )
            # Trace the copies with oneDNN's shortcuts off: that is the path
            # the blocks take without them.
            onednn = fused_conv._onednn_enabled
            fused_conv._onednn_enabled = lambda: False
            try:
                with_copies = copies(x, g)
            finally:
                fused_conv._onednn_enabled = onednn
            diff = tf.reduce_max(tf.abs(with_copies - s2b(x, g))) / tf.reduce_max(
                tf.abs(with_copies)
            )
            print(
                f"{c_in:5d} {c_out:4d} {side:5d} {d:2d} {_best_ms(copies, x, g):10.2f} "
                f"{_best_ms(s2b, x, g):8.2f} {float(diff):10.1e}"
            )


if __name__ == "__main__":
    main()
