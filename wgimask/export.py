"""Exports for TF Serving (SavedModel) and for plain Keras scripts (.keras).

``MODEL_DIR/export/`` holds, after training or `train.py --export_only`:

* ``mask_gan/``: SavedModel; ``serving_default`` takes ``image`` (float32,
  NHWC, values in [0, 1], any batch, sides multiples of 8) and returns ``mask``
  (binary, one channel), ``confidence`` (the mask generator's hard-sigmoid
  value before rounding) and ``inpainted``;
* ``inpainter/``: SavedModel; ``serving_default`` takes ``image`` and ``mask``
  (one channel, 1 = known) and returns ``inpainted``;
* ``generator.keras``, ``mask_generator.keras``, ``critic.keras``: the networks,
  which `keras.models.load_model` opens after ``import wgimask``.

The random seed inputs of the generators are drawn with fixed stateless seeds,
so a served model is a deterministic function of its inputs.

The directory is written next to its destination and renamed into place, so a
crash never leaves a half-written export.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import tempfile

import keras
import tensorflow as tf

from wgimask.blocks import round_straight_through
from wgimask.networks import InpaintingGenerator, MaskGenerator, draw_seed

# Fixed stateless seeds of the serving-time noise (mask generator, generator).
MASK_SEED = (20230, 1)
GENERATOR_SEED = (20230, 2)


def inpaint(generator: keras.Model, image: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Inference of the inpainting generator with the serving noise.

    Args:
        generator: An `InpaintingGenerator`.
        image: (batch, height, width, channels) in [0, 1]; only known pixels
            are used.
        mask: (batch, height, width, 1), 1 = known.

    Returns:
        The inpainting u (Eq. 1).
    """
    seed = draw_seed(tf.shape(image), mask, seed=GENERATOR_SEED)
    return generator(
        {"known": image * mask, "mask": mask, "seed": seed}, training=False
    )


def mask_gan(
    generator: keras.Model, confidence_model: keras.Model, image: tf.Tensor
) -> dict[str, tf.Tensor]:
    """Inference of the mask GAN: mask, confidence and inpainting.

    Args:
        generator: An `InpaintingGenerator`.
        confidence_model: `MaskGenerator.confidence_model()` of the mask
            generator.
        image: (batch, height, width, channels) in [0, 1].

    Returns:
        Dict with ``mask``, ``confidence`` and ``inpainted``.
    """
    seed = draw_seed(tf.shape(image), seed=MASK_SEED)
    confidence = confidence_model({"image": image, "seed": seed}, training=False)
    # The binarisation layer at inference: hard rounding.
    mask = round_straight_through(confidence)
    return {
        "mask": mask,
        "confidence": confidence,
        "inpainted": inpaint(generator, image, mask),
    }


def _image_spec(channels: int, name: str) -> tf.TensorSpec:
    return tf.TensorSpec([None, None, None, channels], tf.float32, name=name)


def save_inpainter(generator: InpaintingGenerator, path: str | os.PathLike) -> None:
    """Writes the ``inpainter`` SavedModel (inputs ``image``, ``mask``)."""
    # No archive.track(): the endpoint's trace captures the variables, and
    # track() would store every weight a second time (keras-team/keras#23553).
    archive = keras.export.ExportArchive()
    archive.add_endpoint(
        "serving_default",
        lambda image, mask: {"inpainted": inpaint(generator, image, mask)},
        input_signature=[
            _image_spec(generator.channels, "image"),
            _image_spec(1, "mask"),
        ],
    )
    archive.write_out(str(path), verbose=False)


def save_mask_gan(
    generator: InpaintingGenerator,
    mask_generator: MaskGenerator,
    path: str | os.PathLike,
) -> None:
    """Writes the ``mask_gan`` SavedModel (input ``image``)."""
    confidence_model = mask_generator.confidence_model()
    archive = keras.export.ExportArchive()  # no track(): see save_inpainter
    archive.add_endpoint(
        "serving_default",
        lambda image: mask_gan(generator, confidence_model, image),
        input_signature=[_image_spec(generator.channels, "image")],
    )
    archive.write_out(str(path), verbose=False)


def export_models(
    model_dir: str | os.PathLike,
    generator: InpaintingGenerator,
    mask_generator: MaskGenerator | None = None,
    critic: keras.Model | None = None,
) -> pathlib.Path:
    """Writes ``model_dir/export`` atomically (see the module docstring).

    Args:
        model_dir: The training run's folder.
        generator: The inpainting generator.
        mask_generator: The mask generator (None for an inpainting-only run:
            no ``mask_gan`` is written).
        critic: The critic, saved as a .keras file if given.

    Returns:
        The export directory.
    """
    model_dir = pathlib.Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    final = model_dir / "export"
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=".export-", dir=model_dir))
    try:
        save_inpainter(generator, tmp / "inpainter")
        generator.save(tmp / "generator.keras")
        if mask_generator is not None:
            save_mask_gan(generator, mask_generator, tmp / "mask_gan")
            mask_generator.save(tmp / "mask_generator.keras")
        if critic is not None:
            critic.save(tmp / "critic.keras")
        if final.exists():
            # Two renames: the old export stays complete until the new one is in.
            old = pathlib.Path(tempfile.mkdtemp(prefix=".export-old-", dir=model_dir))
            final.replace(old / "export")
            tmp.replace(final)
            shutil.rmtree(old)
        else:
            tmp.replace(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return final
