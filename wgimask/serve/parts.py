"""The parts of a run's networks that inference runs, as Keras models.

Inference (`wgimask.inference`) never calls a whole generator: it calls the
parts below, each a Keras model with a list of float32 (N, H, W, .) inputs in
the order `PART_INPUTS` gives and one output, any H and W that are multiples
of 8. The same parts are converted to LiteRT (`wgimask.serve.lite`), so both
runtimes compute the same function.

* ``confidence`` [image, seed] -> (N, H, W, 1): m's confidence in [0, 1]
  (mask generators without a prior);
* ``correction`` [image, seed] -> (N, H, W, 1): m's log-space correction of
  the analytic density (``--mask_prior=analytic``), and
  ``prior_confidence`` [image, correction] -> (N, H, W, 1): the analytic
  density of the image times exp(correction), rescaled to mean D
  (`wgimask.nn.mask_layers.PriorConfidence`), run on the whole image;
* ``generator`` [known, mask, seed] -> (N, H, W, C): g's inpainting u;
* ``residual`` [known, mask, seed, diffused] -> (N, H, W, C): a prefilled
  g's learned residual on the diffusion inpainting ``diffused``
  (``--prefill=diffusion``).
"""

from __future__ import annotations

import dataclasses
import pathlib

from wgimask.pipeline import MaskPipeline

#: Input names of each part, in call order.
PART_INPUTS = {
    "confidence": ("image", "seed"),
    "correction": ("image", "seed"),
    "prior_confidence": ("image", "correction"),
    "generator": ("known", "mask", "seed"),
    "residual": ("known", "mask", "seed", "diffused"),
}


def input_channels(part: str, channels: int) -> tuple[int, ...]:
    """Channel count of each input of a part, for images of `channels`."""
    one = {"mask", "correction"}
    return tuple(1 if name in one else channels for name in PART_INPUTS[part])


def keras_parts(generator, mask_generator=None) -> dict:
    """The parts of free-size networks, sharing their weights.

    Args:
        generator: An `InpaintingGenerator` built with ``image_size=None``.
        mask_generator: A `MaskGenerator` built likewise, or None.

    Returns:
        part name -> list-input `keras.Model`.
    """
    import keras

    parts = {}
    if mask_generator is not None:
        net = mask_generator
        image, seed = net.input["image"], net.input["seed"]
        if net.prior == "analytic":
            parts["correction"] = keras.Model(
                [image, seed], net.get_layer("correction").output, name="correction"
            )
            whole = keras.Input((None, None, net.channels), name="image")
            correction = keras.Input((None, None, 1), name="correction")
            rho = net.get_layer("analytic_density")(whole)
            parts["prior_confidence"] = keras.Model(
                [whole, correction],
                net.get_layer("confidence")([rho, correction]),
                name="prior_confidence",
            )
        else:
            parts["confidence"] = keras.Model(
                [image, seed], net.get_layer("confidence").output, name="confidence"
            )
    inputs = dict(generator.input)
    known, mask, seed = inputs["known"], inputs["mask"], inputs["seed"]
    if generator.prefill == "diffusion":
        # The diffusion layer's output serves as the input `diffused`: the
        # caller computes it once on the whole image (`wgimask.baselines`).
        parts["residual"] = keras.Model(
            [known, mask, seed, generator.get_layer("diffusion").output],
            generator.get_layer("residual").output,
            name="residual",
        )
    else:
        parts["generator"] = keras.Model(
            [known, mask, seed], generator.output, name="generator"
        )
    return parts


def load_networks(exported: pathlib.Path, config: dict):
    """Free-size Keras networks of a run, filled with its exported weights.

    The networks are built from the run's config (as training built them)
    and take their weights from the export's ``.keras`` files
    (`wgimask.serve.model_files.keras_file`), which plain Keras opens too.

    Args:
        exported: The run's export folder.
        config: Its training config.

    Returns:
        ``(generator, mask_generator)``; the mask generator is None for an
        inpainting-only run.

    Raises:
        ModelError: For a config the networks cannot be built from, or weights
            that do not fit them.
    """
    from wgimask.config import TrainingConfig
    from wgimask.nn.build import build_networks
    from wgimask.serve.model_files import ModelError, keras_file

    # The networks exactly as training built them (prefill, analytic prior,
    # binarisation): one builder for training and inference.
    fields = {field.name for field in dataclasses.fields(TrainingConfig)}
    try:
        networks = build_networks(
            TrainingConfig(**{k: v for k, v in config.items() if k in fields}),
            with_critic=False,
        )
    except (TypeError, ValueError) as error:
        raise ModelError(f"{exported.parent}/config.json: {error}") from None
    names = ["generator"]
    if MaskPipeline.from_config(config).has_mask_network:
        names.append("mask_generator")
    for name in names:
        path = keras_file(exported, name)
        if not path.is_file():
            raise ModelError(
                f"{exported} has no {path.name} although config.json describes "
                f"a {name}; export the run again with `python train.py "
                f"--export_only --model_dir={exported.parent}`"
            )
        try:
            networks[name].load_weights(path)
        except (OSError, ValueError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise ModelError(
                f"{path}: its weights do not fit the networks config.json "
                f"describes ({first})"
            ) from None
    return networks["generator"], networks.get("mask_generator")
