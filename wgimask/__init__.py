"""wgimask: joint learning of inpainting and sparse masks with a Wasserstein GAN."""

import os

# TensorFlow turns its oneDNN CPU kernels on by default only on CPUs with
# AVX-512; on AVX2 CPUs they run the networks 1.5-2x faster (see
# docs/README-speed.md). This takes effect only if TensorFlow is imported after
# wgimask; TF_ENABLE_ONEDNN_OPTS=0 keeps them off.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"
