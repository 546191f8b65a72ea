"""TensorFlow's stateless normal draws, in numpy (no TensorFlow needed).

`stateless_normal(shape, seed)` returns the numbers of
``tf.random.stateless_normal(shape, seed)`` on the CPU (algorithm
"auto_select", i.e. Philox4x32-10 with TensorFlow's key scrambling and
Box-Muller transform) to within a few float32 rounding steps: numpy's float32
``log``/``sin``/``cos`` may differ from glibc's by an ulp. Inference
(`wgimask.inference`) draws the generators' seed input r with it, so the
exported SavedModels (which draw inside their graph with TensorFlow) and the
TensorFlow-free LiteRT path (`wgimask.serve.lite`) see the same noise.
"""

from __future__ import annotations

import numpy as np

#: Fixed stateless seeds of the serving-time noise: mask generator, generator
#: (the exported signatures, `wgimask.serve.export`, and `wgimask.inference`).
MASK_SEED = (20230, 1)
GENERATOR_SEED = (20230, 2)
#: Standard deviation of the generators' random seed input r (reference:
#: N(0, 0.1)).
SEED_STDDEV = 0.1

_W32A, _W32B = np.uint32(0x9E3779B9), np.uint32(0xBB67AE85)
_M4x32A, _M4x32B = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_LOW = np.uint64(0xFFFFFFFF)


def _philox(counter: list[np.ndarray], key: tuple[np.uint32, np.uint32]):
    """Philox4x32 with 10 rounds on arrays of counters (4 uint32 words each)."""
    c0, c1, c2, c3 = (np.asarray(c, np.uint32) for c in counter)
    k0, k1 = np.uint32(key[0]), np.uint32(key[1])
    with np.errstate(over="ignore"):
        for _ in range(10):
            p0 = _M4x32A * c0.astype(np.uint64)
            p1 = _M4x32B * c2.astype(np.uint64)
            hi0, lo0 = (
                (p0 >> np.uint64(32)).astype(np.uint32),
                (p0 & _LOW).astype(np.uint32),
            )
            hi1, lo1 = (
                (p1 >> np.uint64(32)).astype(np.uint32),
                (p1 & _LOW).astype(np.uint32),
            )
            c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
            k0, k1 = k0 + _W32A, k1 + _W32B
    return c0, c1, c2, c3


def _key_counter(seed) -> tuple[tuple[np.uint32, np.uint32], tuple[int, int]]:
    """TensorFlow's GenerateKey: scrambles a two-number seed into key and counter."""
    seed0, seed1 = (int(np.int64(s)) & 0xFFFFFFFFFFFFFFFF for s in seed)
    counter = [
        np.uint32(seed0 & 0xFFFFFFFF),
        np.uint32(seed0 >> 32),
        np.uint32(seed1 & 0xFFFFFFFF),
        np.uint32(seed1 >> 32),
    ]
    mix = _philox(counter, (np.uint32(0x3EC8F720), np.uint32(0x02461E29)))
    return (mix[0], mix[1]), (int(mix[2]), int(mix[3]))


def _uint32_to_float(x: np.ndarray) -> np.ndarray:
    """A float32 in [0, 1) from the 23 low bits of x (TensorFlow's conversion)."""
    bits = (x & np.uint32(0x7FFFFF)) | np.uint32(127 << 23)
    return bits.view(np.float32) - np.float32(1.0)


def stateless_normal(shape, seed, stddev: float = 1.0) -> np.ndarray:
    """``tf.random.stateless_normal(shape, seed, stddev=stddev)`` in numpy.

    Args:
        shape: Output shape.
        seed: Two integers, as TensorFlow's stateless ops take them.
        stddev: Standard deviation (mean 0).

    Returns:
        float32 array of `shape`.

    Raises:
        ValueError: If `seed` is not two integers.
    """
    seed = tuple(seed)
    if len(seed) != 2 or not all(isinstance(s, (int, np.integer)) for s in seed):
        raise ValueError(f"seed must be two integers, received {seed!r}")
    size = int(np.prod(shape, dtype=np.int64))
    key, (high0, high1) = _key_counter(seed)
    # One Philox call per four outputs; call g runs on counter (g, 0, c2, c3)
    # with the 64-bit low part carried (never for fewer than 2**32 calls).
    groups = np.arange((size + 3) // 4, dtype=np.uint64)
    words = _philox(
        [
            (groups & _LOW).astype(np.uint32),
            (groups >> np.uint64(32)).astype(np.uint32),
            np.full(groups.shape, high0, np.uint32),
            np.full(groups.shape, high1, np.uint32),
        ],
        key,
    )
    # Box-Muller on the pairs (x0, x1) and (x2, x3) of each call.
    out = np.empty((len(groups), 4), np.float32)
    for first, second in ((0, 1), (2, 3)):
        u1 = np.maximum(_uint32_to_float(words[first]), np.float32(1.0e-7))
        # TensorFlow: float 2.0f * double M_PI * float u, rounded once.
        v1 = (2.0 * np.pi * _uint32_to_float(words[second]).astype(np.float64)).astype(
            np.float32
        )
        radius = np.sqrt(np.float32(-2.0) * np.log(u1))
        out[:, first] = np.sin(v1) * radius
        out[:, second] = np.cos(v1) * radius
    return (out.reshape(-1)[:size] * np.float32(stddev)).reshape(shape)
