"""The three networks of the mask GAN (paper, Fig. 1): g, m and d.

* `InpaintingGenerator` g(known, mask, seed) -> u, the WGAIN hourglass with the
  inpainting constraint of Eq. 1 as its last layer;
* `MaskGenerator` m(image, seed) -> b, the same hourglass whose output layer is
  replaced by the binarisation block (Sec. 3.1);
* `Critic` d(image, mask) -> scalar, five funnel blocks and a linear head.

Channel counts are the reference's times the width of a named model size
(`MODEL_SIZES`); "paper" is the reference itself.

Two options that are not in the paper (off by default, docs/learned-masks.md):

* ``InpaintingGenerator(prefill="diffusion")``: g also receives the exact
  homogeneous diffusion inpainting of its mask and learns a residual on it,
  zero at initialisation, so an untrained g returns the diffusion inpainting;
* ``MaskGenerator(prior="analytic", density=D)``: m learns a log-space
  correction of the analytic density (Belhachmi et al.), zero at
  initialisation, so an untrained m returns the analytic density's mask under
  its binarisation.
"""

# ruff: noqa: E402 - TensorFlow is imported quietly before the other imports.
from __future__ import annotations

import math

from wgimask import _entry

# A script that opens the networks first (README's Keras snippet) gets
# TensorFlow without its start-up lines; a no-op once TensorFlow is loaded.
_entry.import_tensorflow_quietly()

import keras
import tensorflow as tf

from wgimask.config import DOWNSAMPLING, MASK_PRIORS, MODEL_SIZES, PREFILLS
from wgimask.nn.analytic_prior import DEFAULT_EXPONENT, AnalyticDensity, auto_sigma
from wgimask.nn.blocks import (
    PACKAGE,
    DilatedConv2DTranspose,
    FrobeniusNormConstraint,
    FunnelBlock,
    ParallelDilatedBlock,
    hard_sigmoid,
)
from wgimask.nn.exact_diffusion import DiffusionInpainting
from wgimask.nn.mask_layers import (
    Binarization,
    ClippedResidual,
    InpaintingConstraint,
    PriorConfidence,
)
from wgimask.nn.stateless_noise import SEED_STDDEV  # noqa: F401 - re-exported

# Reference output channels of E1, E2, E3, bottleneck, D1, D2, D3 (hourglass)
# and of the five critic funnel blocks.
HOURGLASS_CHANNELS = (128, 128, 256, 512, 256, 128, 128)
CRITIC_CHANNELS = (64, 128, 256, 256, 512)
HEAD_CHANNELS = 8


def _check_density(density, needed_for: str | None):
    """Returns the density as a float (None if not given and not needed)."""
    if density is None and needed_for is None:
        return None
    if isinstance(density, bool) or not (
        isinstance(density, (int, float)) and 0.0 < density < 1.0
    ):
        raise ValueError(
            f"`density` must be a number in (0, 1)"
            f"{f' for {needed_for}' if needed_for else ''}, received {density!r}."
        )
    return float(density)


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

    With ``prefill="diffusion"`` (not in the paper) the network first computes
    the exact homogeneous diffusion inpainting v of ``known`` from ``mask``
    (`wgimask.nn.exact_diffusion`, layer ``diffusion``), takes it as a fourth
    input channel group of the hourglass, and outputs clip(v + r, 0, 1) where
    the residual r comes from a 3x3 output layer with zero initial weights
    (layer ``residual``): an untrained g returns exactly v. The inputs (and
    hence exported signatures) are those of the paper's g; the first block
    has C more input channels, so its weights do not load into the paper's
    g and back. Gradients reach the mask through v (implicit
    differentiation).

    Args:
        image_size: Side (int) or (height, width), multiples of 8; None accepts
            any such size (the network is fully convolutional).
        channels: 3 for colour, 1 for grey.
        model_size: A key of `MODEL_SIZES`; "paper" has about 11.5 M parameters.
        prefill: One of `PREFILLS`: None (the paper) or "diffusion".
        **kwargs: `keras.Model` arguments such as `name`.

    Raises:
        ValueError: For an invalid size, channel count, model size or prefill.
    """

    _config_fields = (*_Network._config_fields, "prefill")

    def __init__(
        self,
        image_size=None,
        channels: int = 3,
        model_size: str = "paper",
        prefill: str | None = None,
        **kwargs,
    ):
        shape = _image_shape(image_size, channels, fixed=False)
        _width(model_size)
        if prefill not in PREFILLS:
            raise ValueError(
                f"`prefill` must be one of {PREFILLS}, received {prefill!r}."
            )
        # === Layers and functional model ===
        known = keras.Input(shape, name="known")
        mask = keras.Input((*shape[:2], 1), name="mask")
        seed = keras.Input(shape, name="seed")
        if prefill == "diffusion":
            # float32: the CG solve needs it under mixed precision too.
            diffused = DiffusionInpainting(name="diffusion", dtype="float32")(
                [known, mask]
            )
            x0 = keras.layers.Concatenate(name="input_concat")(
                [known, mask, seed, diffused]
            )
            x = _hourglass(x0, model_size)
            residual = DilatedConv2DTranspose(
                channels, 3, kernel_initializer="zeros", name="residual"
            )(x)
            generated = ClippedResidual(name="output", dtype="float32")(
                [diffused, residual]
            )
        else:
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
        self.prefill = prefill


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskGenerator(_Network):
    """Mask generator m(r, f) -> b (Sec. 3.1-3.2).

    The WGAIN hourglass on [image, seed], whose output layer is replaced by the
    binarisation block: a 3x3 transposed convolution to one channel, the hard
    sigmoid (the layer named ``confidence``), then `Binarization`.

    With ``prior="analytic"`` (not in the paper) the 3x3 output layer
    (``correction``, zero initial weights, no activation) gives a log-space
    correction r of the analytic density rho of the image (layer
    ``analytic_density``, `wgimask.nn.analytic_prior`), and the ``confidence``
    layer is normalise_density(rho exp(r), D) in [0, 1] with mean D
    (`wgimask.nn.mask_layers.PriorConfidence`). An untrained m therefore gives the
    analytic density's mask under its binarisation; with ``ordered_dither``
    that is `analytic_dither_mask`.

    Args:
        image_size: As for `InpaintingGenerator`.
        channels: 3 for colour, 1 for grey.
        model_size: A key of `MODEL_SIZES`.
        binarisation: One of `wgimask.config.BINARISATION_OPERATORS`.
        density: Target density D in (0, 1); needed by ``ordered_dither`` and
            by the prior, else optional and unused.
        prior: One of `MASK_PRIORS`: None (the paper) or "analytic".
        prior_sigma: Smoothing scale of the analytic density in pixels; None
            for `wgimask.nn.analytic_prior.auto_sigma` of the density.
        prior_exponent: Exponent of the analytic density.
        **kwargs: `keras.Model` arguments.

    Raises:
        ValueError: For an invalid argument.
    """

    _config_fields = (
        *_Network._config_fields,
        "binarisation",
        "density",
        "prior",
        "prior_sigma",
        "prior_exponent",
    )

    def __init__(
        self,
        image_size=None,
        channels: int = 3,
        model_size: str = "paper",
        binarisation: str = "hard_rounding",
        density: float | None = None,
        prior: str | None = None,
        prior_sigma: float | None = None,
        prior_exponent: float = DEFAULT_EXPONENT,
        **kwargs,
    ):
        shape = _image_shape(image_size, channels, fixed=False)
        _width(model_size)
        if prior not in MASK_PRIORS:
            raise ValueError(
                f"`prior` must be one of {MASK_PRIORS}, received {prior!r}."
            )
        needs = (
            "the ordered_dither binarisation"
            if binarisation == "ordered_dither"
            else ("the analytic prior" if prior else None)
        )
        density = _check_density(density, needs)
        # === Layers and functional model ===
        image = keras.Input(shape, name="image")
        seed = keras.Input(shape, name="seed")
        x0 = keras.layers.Concatenate(name="input_concat")([image, seed])
        x = _hourglass(x0, model_size)
        if prior == "analytic":
            sigma = auto_sigma(density) if prior_sigma is None else prior_sigma
            rho = AnalyticDensity(
                sigma, prior_exponent, name="analytic_density", dtype="float32"
            )(image)
            correction = DilatedConv2DTranspose(
                1, 3, kernel_initializer="zeros", name="correction"
            )(x)
            confidence = PriorConfidence(density, name="confidence", dtype="float32")(
                [rho, correction]
            )
        else:
            confidence = DilatedConv2DTranspose(
                1, 3, activation=hard_sigmoid, name="confidence"
            )(x)
        mask = Binarization(
            binarisation, density=density, name="binarization", dtype="float32"
        )(confidence)
        kwargs.setdefault("name", "mask_generator")
        super().__init__(inputs={"image": image, "seed": seed}, outputs=mask, **kwargs)
        # === Config ===
        self.image_size = _as_config_size(image_size)
        self.channels = channels
        self.model_size = model_size
        self.binarisation = binarisation
        self.density = density
        self.prior = prior
        self.prior_sigma = prior_sigma
        self.prior_exponent = prior_exponent

    def confidence_model(self) -> keras.Model:
        """A model sharing these weights that returns the confidence c in [0, 1]."""
        return keras.Model(
            self.inputs, self.get_layer("confidence").output, name="mask_confidence"
        )

    def mask_and_confidence_model(self) -> keras.Model:
        """A model sharing these weights that returns (mask, confidence c).

        Both from one pass; the mask is this network's own output, binarised
        as in training or inference by ``training``.
        """
        return keras.Model(
            self.inputs,
            [self.output, self.get_layer("confidence").output],
            name="mask_and_confidence",
        )

    def confidence_and_correction_model(self) -> keras.Model:
        """A model sharing these weights that returns (confidence, correction r).

        Only for ``prior="analytic"``: the point density and the log-space
        correction it comes from, from one pass.
        """
        if self.prior != "analytic":
            raise ValueError(
                "confidence_and_correction_model needs prior='analytic', "
                f"received prior={self.prior!r}"
            )
        return keras.Model(
            self.inputs,
            [self.get_layer("confidence").output, self.get_layer("correction").output],
            name="confidence_and_correction",
        )

    def binarise(self, confidence: tf.Tensor) -> tf.Tensor:
        """The inference-time mask of a confidence from `confidence_model`.

        Hard rounding for the paper's operators, the phase-0 ordered dither
        with exactly round(D N) points for ``ordered_dither``: the mask this
        network returns with ``training=False``.
        """
        return self.get_layer("binarization")(confidence, training=False)


def analytic_dither_mask(
    image,
    density: float,
    sigma: float | None = None,
    exponent: float = DEFAULT_EXPONENT,
):
    """The analytic mask under the ordered-dither binarisation (phase 0).

    What an untrained ``MaskGenerator(prior="analytic",
    binarisation="ordered_dither")`` returns at inference: the analytic density
    rescaled to mean D, dithered to exactly round(D N) points.

    Args:
        image: (B, H, W, C) float tensor.
        density: Target density D in (0, 1).
        sigma: Smoothing scale; None for `auto_sigma` of the density.
        exponent: Exponent of the analytic density.

    Returns:
        (B, H, W, 1) float32 binary mask.
    """
    density = _check_density(density, "the analytic mask")
    sigma = auto_sigma(density) if sigma is None else sigma
    rho = AnalyticDensity(sigma, exponent)(image)
    confidence = PriorConfidence(density)([rho, tf.zeros_like(rho)])
    return Binarization("ordered_dither", density=density)(confidence, training=False)


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
