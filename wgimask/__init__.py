"""wgimask: joint learning of inpainting and sparse masks with a Wasserstein GAN."""

__version__ = "0.1.0"
