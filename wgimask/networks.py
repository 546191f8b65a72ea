"""The three networks of the mask GAN (paper, Fig. 1): g, m and d.

* `InpaintingGenerator` g(known, mask, seed) -> u, the WGAIN hourglass with the
  inpainting constraint of Eq. 1 as its last layer;
* `MaskGenerator` m(image, seed) -> b, the same hourglass whose output layer is
  replaced by the binarisation block (Sec. 3.1);
* `Critic` d(image, mask) -> scalar, five funnel blocks and a linear head.

Channel counts are the reference's times the width of a named model size
(`MODEL_SIZES`); "paper" is the reference itself.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from wgimask.blocks import (
    PACKAGE,
    Binarization,
    DilatedConv2DTranspose,
    FrobeniusNormConstraint,
    FunnelBlock,
    InpaintingConstraint,
    ParallelDilatedBlock,
    hard_sigmoid,
)

# Width factor of each model size relative to the reference channel counts.
MODEL_SIZES = {"paper": 1.0, "medium": 0.5, "small": 0.25, "tiny": 0.125}

# Reference output channels of E1, E2, E3, bottleneck, D1, D2, D3 (hourglass)
# and of the five critic funnel blocks.
HOURGLASS_CHANNELS = (128, 128, 256, 512, 256, 128, 128)
CRITIC_CHANNELS = (64, 128, 256, 256, 512)
HEAD_CHANNELS = 8
# Three 2x2 poolings: image sides must be multiples of this.
DOWNSAMPLING = 8
# Standard deviation of the generators' random seed input (reference: N(0, 0.1)).
SEED_STDDEV = 0.1


def _width(model_size: str) -> float:
    if model_size not in MODEL_SIZES:
        raise ValueError(
            f"`model_size` must be one of {sorted(MODEL_SIZES)}, "
            f"received {model_size!r}."
        )
    return MODEL_SIZES[model_size]


def scaled_channels(channels: tuple[int, ...], model_size: str) -> tuple[int, ...]:
    """Reference channel counts scaled to a model size, kept multiples of 4.

    Args:
        channels: Reference channel counts.
        model_size: A key of `MODEL_SIZES`.

    Returns:
        The scaled channel counts.
    """
    width = _width(model_size)
    return tuple(max(4, 4 * round(c * width / 4)) for c in channels)


def _image_shape(image_size, channels: int, *, fixed: bool) -> tuple:
    if channels not in (1, 3):
        raise ValueError(f"`channels` must be 1 or 3, received {channels!r}.")
    if image_size is None:
        if fixed:
            raise ValueError("The critic needs a fixed `image_size`, received None.")
        return (None, None, channels)
    size = (image_size, image_size) if isinstance(image_size, int) else image_size
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise ValueError(
            f"`image_size` must be an int or (height, width), received {image_size!r}."
        )
    if not fixed and any(s % DOWNSAMPLING for s in size):
        raise ValueError(
            f"`image_size` must be divisible by {DOWNSAMPLING} (three 2x2 "
            f"poolings), received {image_size!r}."
        )
    return (*size, channels)


def _as_config_size(image_size):
    # JSON turns tuples into lists; keep one canonical form in configs.
    return (
        image_size
        if image_size is None or isinstance(image_size, int)
        else tuple(image_size)
    )


def _hourglass(x0, model_size: str):
    """Encoder-bottleneck-decoder of WGAIN up to (and including) the 8-ch head."""
    e1, e2, e3, bottleneck, d1, d2, d3 = scaled_channels(HOURGLASS_CHANNELS, model_size)
    skips = []
    x = x0
    for i, filters in enumerate((e1, e2, e3), start=1):
        x = ParallelDilatedBlock(filters, name=f"encoder_{i}")(x)
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool_{i}")(x)
    x = ParallelDilatedBlock(bottleneck, name="bottleneck")(x)
    for i, filters in enumerate((d1, d2, d3), start=1):
        x = keras.layers.UpSampling2D(2, name=f"upsample_{i}")(x)
        x = keras.layers.Concatenate(name=f"skip_{i}")([x, skips[-i]])
        x = ParallelDilatedBlock(filters, transposed=True, name=f"decoder_{i}")(x)
    x = keras.layers.Concatenate(name="skip_input")([x, x0])
    return DilatedConv2DTranspose(HEAD_CHANNELS, 3, activation="elu", name="head")(x)


class _Network(keras.Model):
    """A functional network whose config is its constructor arguments."""

    _config_fields: tuple[str, ...] = ("image_size", "channels", "model_size")

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            **{field: getattr(self, field) for field in self._config_fields},
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package=PACKAGE)
class InpaintingGenerator(_Network):
    """Inpainting generator g of WGAIN, returning u of Eq. 1.

    Inputs (in this order, as in the reference): ``known`` = C f (the image,
    zero where unknown), ``mask`` (1 channel, 1 = known) and ``seed`` (random,
    see `draw_seed`). Output: u = (1 - c) g + C f, so known pixels equal f.

    Args:
        image_size: Side (int) or (height, width), multiples of 8; None accepts
            any such size (the network is fully convolutional).
        channels: 3 for colour, 1 for grey.
        model_size: A key of `MODEL_SIZES`; "paper" has about 11.5 M parameters.
        **kwargs: `keras.Model` arguments such as `name`.

    Raises:
        ValueError: For an invalid size, channel count or model size.
    """

    def __init__(
        self,
        image_size=None,
        channels: int = 3,
        model_size: str = "paper",
        **kwargs,
    ):
        shape = _image_shape(image_size, channels, fixed=False)
        _width(model_size)
        # === Layers and functional model ===
        known = keras.Input(shape, name="known")
        mask = keras.Input((*shape[:2], 1), name="mask")
        seed = keras.Input(shape, name="seed")
        x0 = keras.layers.Concatenate(name="input_concat")([known, mask, seed])
        x = _hourglass(x0, model_size)
        generated = DilatedConv2DTranspose(
            channels, 3, activation=hard_sigmoid, name="output"
        )(x)
        # float32 under a mixed-precision policy too: known pixels stay exact.
        inpainted = InpaintingConstraint(name="inpainting_constraint", dtype="float32")(
            [generated, known, mask]
        )
        kwargs.setdefault("name", "inpainting_generator")
        super().__init__(
            inputs={"known": known, "mask": mask, "seed": seed},
            outputs=inpainted,
            **kwargs,
        )
        # === Config ===
        self.image_size = _as_config_size(image_size)
        self.channels = channels
        self.model_size = model_size


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskGenerator(_Network):
    """Mask generator m(r, f) -> b (Sec. 3.1-3.2).

    The WGAIN hourglass on [image, seed], whose output layer is replaced by the
    binarisation block: a 3x3 transposed convolution to one channel, the hard
    sigmoid (the layer named ``confidence``), then `Binarization`.

    Args:
        image_size: As for `InpaintingGenerator`.
        channels: 3 for colour, 1 for grey.
        model_size: A key of `MODEL_SIZES`.
        binarisation: One of `wgimask.blocks.BINARISATION_OPERATORS`.
        **kwargs: `keras.Model` arguments.

    Raises:
        ValueError: For an invalid argument.
    """

    _config_fields = (*_Network._config_fields, "binarisation")

    def __init__(
        self,
        image_size=None,
        channels: int = 3,
        model_size: str = "paper",
        binarisation: str = "hard_rounding",
        **kwargs,
    ):
        shape = _image_shape(image_size, channels, fixed=False)
        _width(model_size)
        # === Layers and functional model ===
        image = keras.Input(shape, name="image")
        seed = keras.Input(shape, name="seed")
        x0 = keras.layers.Concatenate(name="input_concat")([image, seed])
        x = _hourglass(x0, model_size)
        confidence = DilatedConv2DTranspose(
            1, 3, activation=hard_sigmoid, name="confidence"
        )(x)
        mask = Binarization(binarisation, name="binarization", dtype="float32")(
            confidence
        )
        kwargs.setdefault("name", "mask_generator")
        super().__init__(inputs={"image": image, "seed": seed}, outputs=mask, **kwargs)
        # === Config ===
        self.image_size = _as_config_size(image_size)
        self.channels = channels
        self.model_size = model_size
        self.binarisation = binarisation

    def confidence_model(self) -> keras.Model:
        """A model sharing these weights that returns the confidence c in [0, 1]."""
        return keras.Model(
            self.inputs, self.get_layer("confidence").output, name="mask_confidence"
        )


@keras.saving.register_keras_serializable(package=PACKAGE)
class Critic(_Network):
    """Wasserstein critic d(image, mask) -> one unbounded score per image.

    Five funnel blocks (5x5, stride 2, LeakyReLU 0.3) with 64/128/256/256/512
    reference channels, then Flatten and Dense(1). Every conv and dense kernel is
    kept at Frobenius norm <= 1 after each update.

    Sizes: the reference uses 'valid' padding at 128 px (128 -> 62 -> 29 -> 13 ->
    5 -> 1). Below 128 px a 'valid' block would leave no pixel, so a block whose
    input is smaller than the 5x5 kernel uses 'same' padding instead: at 64 px
    the sides go 64 -> 30 -> 13 -> 5 -> 1 -> 1, at 32 px 32 -> 14 -> 5 -> 1 -> 1
    -> 1. All five blocks and their channels are kept; at 128 px and above the
    network is exactly the reference. Non-square sizes follow the same rule per
    side.

    Args:
        image_size: Side (int) or (height, width); fixed, as Dense needs it.
        channels: 3 for colour, 1 for grey.
        model_size: A key of `MODEL_SIZES`.
        **kwargs: `keras.Model` arguments.

    Raises:
        ValueError: For an invalid argument.
    """

    def __init__(
        self,
        image_size=64,
        channels: int = 3,
        model_size: str = "paper",
        **kwargs,
    ):
        shape = _image_shape(image_size, channels, fixed=True)
        # === Layers and functional model ===
        image = keras.Input(shape, name="image")
        mask = keras.Input((*shape[:2], 1), name="mask")
        x = keras.layers.Concatenate(name="input_concat")([image, mask])
        sides = shape[:2]
        for i, filters in enumerate(scaled_channels(CRITIC_CHANNELS, model_size), 1):
            padding = "valid" if min(sides) >= 5 else "same"
            x = FunnelBlock(filters, padding=padding, name=f"funnel_{i}")(x)
            sides = tuple(
                (s - 5) // 2 + 1 if padding == "valid" else math.ceil(s / 2)
                for s in sides
            )
        x = keras.layers.Flatten(name="flatten")(x)
        score = keras.layers.Dense(
            1,
            kernel_constraint=FrobeniusNormConstraint(1.0),
            name="score",
            dtype="float32",  # the Wasserstein losses in float32 (mixed precision)
        )(x)
        kwargs.setdefault("name", "critic")
        super().__init__(inputs={"image": image, "mask": mask}, outputs=score, **kwargs)
        # === Config ===
        self.image_size = _as_config_size(image_size)
        self.channels = channels
        self.model_size = model_size


def draw_seed(shape, mask=None, *, seed=None):
    """Random seed input r of the generators, N(0, 0.1) as in the reference.

    The paper calls r "uniformly random"; the reference implementation draws it
    from N(0, 0.1) and, for g, places it only in unknown pixels. Both are kept.

    Args:
        shape: Shape (batch, height, width, channels) of the seed.
        mask: Optional (batch, height, width, 1) mask; where it is 1 the seed is 0.
        seed: A shape-[2] int seed for a stateless draw (reproducible inside
            `tf.function`), or None for a stateful one.

    Returns:
        A float32 tensor of `shape`.
    """
    if seed is None:
        noise = tf.random.normal(shape, stddev=SEED_STDDEV)
    else:
        noise = tf.random.stateless_normal(shape, seed=seed, stddev=SEED_STDDEV)
    return noise if mask is None else noise * (1.0 - mask)


def forward_flops(model: keras.Model) -> int:
    """Analytical FLOPs of one forward pass of one image (2 per multiply-add).

    Counts convolutions and dense layers, which dominate; activations, pooling
    and concatenations are ignored. The model must have a fixed input size.

    Args:
        model: A network of this module built with a fixed `image_size`.

    Returns:
        The FLOP count per image.

    Raises:
        ValueError: If the model's spatial size is not fixed.
    """
    total = 0
    for layer in model.layers:
        kernels = [
            w for w in layer.weights if w.path.endswith("kernel") and len(w.shape) == 4
        ]
        if kernels:
            # Every conv inside one of our blocks runs at the block's output size.
            height, width = layer.output.shape[1:3]
            if height is None or width is None:
                raise ValueError("forward_flops needs a model with a fixed image_size.")
            total += sum(2 * height * width * math.prod(k.shape) for k in kernels)
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * math.prod(layer.kernel.shape)
    return int(total)
