"""Prints parameters and forward GFLOP per image of every model size.

    python -m benchmarks.speed.model_sizes

FLOPs are counted analytically (`wgimask.nn.networks.forward_flops`, 2 per
multiply-add, convolutions and dense layers only) for colour images.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from wgimask.nn.networks import (
    MODEL_SIZES,
    Critic,
    InpaintingGenerator,
    MaskGenerator,
    forward_flops,
)


def main() -> None:
    print(
        "| size | width | g params | m params | d params | g+m GFLOP @64 | "
        "g+m GFLOP @128 |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, width in MODEL_SIZES.items():
        flops = {}
        for px in (64, 128):
            g, m = InpaintingGenerator(px, 3, name), MaskGenerator(px, 3, name)
            flops[px] = (forward_flops(g) + forward_flops(m)) / 1e9
        d = Critic(128, 3, name)
        print(
            f"| {name} | {width:g} | {g.count_params():,} | {m.count_params():,} | "
            f"{d.count_params():,} | {flops[64]:.2f} | {flops[128]:.2f} |"
        )


if __name__ == "__main__":
    main()
