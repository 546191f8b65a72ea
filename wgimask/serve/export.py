"""Exports for TF Serving (SavedModel) and for plain Keras scripts (.keras).

``MODEL_DIR/export/`` holds, after training or `train.py --export_only`:

* ``mask_gan/``: SavedModel; ``serving_default`` takes ``image`` (float32,
  NHWC, values in [0, 1], any batch, sides of at least 8) and returns ``mask``
  (binary, one channel), ``confidence`` (the mask generator's hard-sigmoid
  value before rounding) and ``inpainted``; runs trained with
  ``--mask_points=densify`` serve their densification masks, made in the
  graph (`wgimask.nn.point_placement_graph.densify_graph`);
* ``inpainter/``: SavedModel; ``serving_default`` takes ``image`` and ``mask``
  (one channel, 1 = known) and returns ``inpainted``;
* ``generator.keras``, ``mask_generator.keras``, ``critic.keras``: the networks,
  which `keras.models.load_model` opens after ``import wgimask``;
* ``lite/``: LiteRT copies of the network parts that inference runs, so that
  the ``wgimask`` command and `wgimask.optimise_mask` need no TensorFlow
  (`wgimask.serve.lite`).

The random seed inputs of the generators are drawn with fixed stateless seeds,
so a served model is a deterministic function of its inputs.

The serving functions check their inputs inside the graph before any
convolution runs (`check_image`, `check_mask`): rank 4, the model's channel
count, a batch of at least one image, sides of at least 8 pixels, finite values
in [0, 1] and masks in {0, 1}. A bad request fails with an ``InvalidArgument``
error that names the expectation; it never aborts the serving process or
returns numbers computed from out-of-contract input. Sides that are not
multiples of 8 (the networks' downsampling) are padded by reflection and the
outputs cropped back.

Exports refuse networks with non-finite weights (`check_finite_weights`).

The directory is written next to its destination and renamed into place, so a
crash never leaves a half-written export.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import stat
import sys
import tempfile

import keras
import tensorflow as tf

from wgimask import run_folder
from wgimask.nn.dither import binarise_confidence
from wgimask.nn.networks import (
    DOWNSAMPLING,
    InpaintingGenerator,
    MaskGenerator,
    draw_seed,
)
from wgimask.nn.point_placement_graph import densify_graph
from wgimask.nn.stateless_noise import GENERATOR_SEED, MASK_SEED
from wgimask.pipeline import MaskPipeline
from wgimask.serve.lite import write_lite
from wgimask.serve.model_files import keras_file, replace_folder

#: Prefix of the temporary folders an export is written into (a kill leaves
#: them behind; `wgimask.run_folder.remove_leftovers` removes them).


def _checked(tensor: tf.Tensor, checks) -> tf.Tensor:
    """`tensor` once `checks` (assert ops) have passed.

    The explicit dependency matters: a convolution does not depend on an
    assertion by data flow, and oneDNN aborts the process on a tensor of the
    wrong rank before a parallel assertion could fail.
    """
    with tf.control_dependencies(checks):
        return tf.identity(tensor)


def check_image(
    image: tf.Tensor, channels: int, name: str = "image", value_range: bool = True
) -> tf.Tensor:
    """Checks a serving input image; returns it once the checks passed.

    The rank is checked first, and the rest only after it, so that no shape
    op runs on a tensor of the wrong rank.

    Args:
        image: The request's tensor.
        channels: The model's channel count.
        name: The input's name in the messages.
        value_range: Check that the values lie in [0, 1].

    Returns:
        `image`, with the checks as control dependencies.
    """
    image = tf.convert_to_tensor(image)
    # A signature call does not enforce its spec's rank, but Grappler folds
    # rank and shape ops to constants where the spec says rank 4. A shape
    # sent through SerializeTensor/ParseTensor (a few bytes) has no static
    # shape, so the checks stay in the graph.
    shape = tf.raw_ops.ParseTensor(
        serialized=tf.raw_ops.SerializeTensor(tensor=tf.shape(image)),
        out_type=tf.int32,
    )
    rank = tf.size(shape)
    rank_ok = tf.debugging.Assert(
        tf.equal(rank, 4),
        [
            f"{name} must have rank 4 (batch, height, width, channels), received rank",
            rank,
        ],
    )
    shape = _checked(shape, [rank_ok])
    checks = [
        tf.debugging.Assert(
            tf.equal(shape[3], channels),
            [
                f"{name} must have {channels} channel(s) (the model's), received",
                shape[3],
            ],
        ),
        tf.debugging.Assert(
            shape[0] >= 1,
            [f"{name} must hold a batch of at least 1 image, received batch", shape[0]],
        ),
        tf.debugging.Assert(
            tf.logical_and(shape[1] >= DOWNSAMPLING, shape[2] >= DOWNSAMPLING),
            [
                f"{name} sides must be at least {DOWNSAMPLING} pixels, received shape",
                shape,
            ],
        ),
    ]
    image = _checked(image, checks)
    finite = tf.reduce_all(tf.math.is_finite(image))
    checks = [
        tf.debugging.Assert(finite, [f"{name} must hold finite values (no NaN or inf)"])
    ]
    if value_range:
        checks.append(
            tf.debugging.Assert(
                tf.logical_or(
                    tf.logical_not(finite),
                    tf.logical_and(
                        tf.reduce_min(image) >= 0.0, tf.reduce_max(image) <= 1.0
                    ),
                ),
                [
                    f"{name} values must be in [0, 1] (divide 8-bit pixels by "
                    "255), received min/max",
                    tf.reduce_min(image),
                    tf.reduce_max(image),
                ],
            )
        )
    # The networks need the static rank and channels back (for shapes of
    # their custom gradients); the checks above have run by then.
    return tf.ensure_shape(_checked(image, checks), [None, None, None, channels])


def check_mask(mask: tf.Tensor, image: tf.Tensor) -> tf.Tensor:
    """Checks a serving mask against its (already checked) image.

    Args:
        mask: The request's mask, 1 = known.
        image: The checked image of the same request.

    Returns:
        `mask`, with the checks as control dependencies.
    """
    mask = check_image(mask, 1, name="mask", value_range=False)
    mask_shape = tf.raw_ops.Shape(input=mask)
    image_shape = tf.raw_ops.Shape(input=image)
    checks = [
        tf.debugging.Assert(
            tf.reduce_all(tf.equal(mask_shape[:3], image_shape[:3])),
            [
                "mask must have the image's batch, height and width: mask shape",
                mask_shape,
                "image shape",
                image_shape,
            ],
        ),
        tf.debugging.Assert(
            tf.reduce_all(tf.logical_or(tf.equal(mask, 0.0), tf.equal(mask, 1.0))),
            ["mask values must be 0 (unknown) or 1 (known)"],
        ),
    ]
    return _checked(mask, checks)


def _pad_to_multiple(x: tf.Tensor) -> tf.Tensor:
    """Reflect-pads height and width up to multiples of `DOWNSAMPLING`.

    Needs sides of at least `DOWNSAMPLING` (the pad is at most one less).
    """
    shape = tf.shape(x)
    pad_h = -shape[1] % DOWNSAMPLING
    pad_w = -shape[2] % DOWNSAMPLING
    return tf.pad(x, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]], mode="REFLECT")


def _crop_like(x: tf.Tensor, reference: tf.Tensor) -> tf.Tensor:
    shape = tf.shape(reference)
    return x[:, : shape[1], : shape[2], :]


def serve_inpainter(
    generator: keras.Model, image: tf.Tensor, mask: tf.Tensor
) -> dict[str, tf.Tensor]:
    """The ``inpainter`` signature: checked inputs, any side of at least 8."""
    image = check_image(image, generator.channels)
    mask = check_mask(mask, image)
    inpainted = inpaint(generator, _pad_to_multiple(image), _pad_to_multiple(mask))
    return {"inpainted": _crop_like(inpainted, image)}


def serve_mask_gan(
    generator: keras.Model,
    confidence_model: keras.Model,
    image: tf.Tensor,
    binarise=None,
) -> dict[str, tf.Tensor]:
    """The ``mask_gan`` signature: checked input, any side of at least 8."""
    image = check_image(image, generator.channels)
    result = mask_gan(generator, confidence_model, _pad_to_multiple(image), binarise)
    return {key: _crop_like(value, image) for key, value in result.items()}


def check_finite_weights(**networks: keras.Model | None) -> None:
    """Raises if any weight of the given networks is NaN or infinite.

    Args:
        **networks: Networks by name; None entries are skipped.

    Raises:
        ValueError: Naming the first network and weight that is not finite.
    """
    for name, network in networks.items():
        if network is None:
            continue
        for weight in network.weights:
            if not bool(tf.reduce_all(tf.math.is_finite(weight))):
                raise ValueError(
                    f"refusing to export: weight {weight.path} of the {name} "
                    "is not finite (NaN or inf)"
                )


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
    generator: keras.Model,
    confidence_model: keras.Model,
    image: tf.Tensor,
    binarise=None,
) -> dict[str, tf.Tensor]:
    """Inference of the mask GAN: mask, confidence and inpainting.

    Args:
        generator: An `InpaintingGenerator`.
        confidence_model: `MaskGenerator.confidence_model()` of the mask
            generator, or a model returning the confidence first and more
            outputs that `binarise` needs (see `save_mask_gan`).
        image: (batch, height, width, channels) in [0, 1].
        binarise: ``binarise(outputs, image) -> mask``, the inference mask
            from what `confidence_model` returned (see `save_mask_gan`);
            None for hard rounding (the paper's operators at inference).
            ``ordered_dither`` models need their `MaskGenerator.binarise`:
            exactly round(D N) points.

    Returns:
        Dict with ``mask``, ``confidence`` and ``inpainted``.
    """
    seed = draw_seed(tf.shape(image), seed=MASK_SEED)
    outputs = confidence_model({"image": image, "seed": seed}, training=False)
    confidence = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
    mask = (
        binarise_confidence(confidence)
        if binarise is None
        else binarise(outputs, image)
    )
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
        lambda image, mask: serve_inpainter(generator, image, mask),
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
    densify: bool = False,
) -> None:
    """Writes the ``mask_gan`` SavedModel (input ``image``).

    With `densify` (a run whose `wgimask.pipeline.MaskPipeline` points are
    ``"densify"``) the mask is the densification mask steered by m's
    correction (`wgimask.nn.point_placement_graph.densify_graph`), as the run
    was trained and as `wgimask.inference` makes it.
    """
    if densify:
        # One pass of m gives the confidence and the correction that steers
        # the densification.
        confidence_model = mask_generator.confidence_and_correction_model()

        def binarise(outputs, image):
            return densify_graph(image, outputs[1], mask_generator.density)

    else:
        confidence_model = mask_generator.confidence_model()

        def binarise(confidence, image):
            return mask_generator.binarise(confidence)

    archive = keras.export.ExportArchive()  # no track(): see save_inpainter
    archive.add_endpoint(
        "serving_default",
        lambda image: serve_mask_gan(generator, confidence_model, image, binarise),
        input_signature=[_image_spec(generator.channels, "image")],
    )
    archive.write_out(str(path), verbose=False)


def export_models(
    model_dir: str | os.PathLike,
    generator: InpaintingGenerator,
    mask_generator: MaskGenerator | None = None,
    critic: keras.Model | None = None,
    pipeline: MaskPipeline | None = None,
) -> pathlib.Path:
    """Writes ``model_dir/export`` atomically (see the module docstring).

    Args:
        model_dir: The training run's folder.
        generator: The inpainting generator.
        mask_generator: The mask generator (None for an inpainting-only run:
            no ``mask_gan`` is written).
        critic: The critic, saved as a .keras file if given.
        pipeline: The run's mask pipeline; None: the paper's (m's own
            binarisation).

    Returns:
        The export directory.

    Raises:
        ValueError: If a weight is not finite (nothing is written).
    """
    check_finite_weights(
        generator=generator, mask_generator=mask_generator, critic=critic
    )
    model_dir = pathlib.Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    final = model_dir / run_folder.EXPORT
    tmp = pathlib.Path(
        tempfile.mkdtemp(prefix=run_folder.EXPORT_TEMP_PREFIX, dir=model_dir)
    )
    # mkdtemp makes 0700 folders; the export gets the run folder's mode.
    tmp.chmod(stat.S_IMODE(model_dir.stat().st_mode))
    try:
        save_inpainter(generator, tmp / "inpainter")
        generator.save(keras_file(tmp, "generator"))
        if mask_generator is not None:
            save_mask_gan(
                generator,
                mask_generator,
                tmp / "mask_gan",
                pipeline is not None and pipeline.points == "densify",
            )
            mask_generator.save(keras_file(tmp, "mask_generator"))
        if critic is not None:
            critic.save(keras_file(tmp, "critic"))
        # LiteRT copies of the parts inference runs (`wgimask.serve.lite`). Best
        # effort: without them inference uses TensorFlow, so a failed
        # conversion must not cost the export.
        try:
            write_lite(tmp, generator, mask_generator)
        except Exception as error:  # noqa: BLE001 - any converter failure
            print(
                f"wgimask: export/lite not written ({type(error).__name__}: "
                f"{str(error).splitlines()[0] if str(error) else ''}); inference "
                f"will use TensorFlow",
                file=sys.stderr,
            )
        replace_folder(tmp, final, run_folder.EXPORT_OLD_PREFIX)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return final
