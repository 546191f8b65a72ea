"""Dai et al.'s networks NetE and NetM as functional Keras models.

`NetE` (the context-encoder inpainting network, 64x64 only) and `NetM` (the
mask network, image -> continuous sampling map of mean D), registered under
the package ``"wgimask"``, with `build_nete` and `build_netm` and the checks
of their arguments. Their layers are in `wgimask.nn.dai_layers`; the masks,
losses and test pipeline, and where each piece comes from in Dai's code and
how it deviates, in `wgimask.nn.dai`.
"""

from __future__ import annotations

import keras

from wgimask.nn.dai_layers import (
    BATCH_NORM,
    MEAN_SHIFT_ITERATIONS,
    NEGATIVE_SLOPE,
    NETM_FILTERS,
    PACKAGE,
    ChannelwiseDense,
    DownBlock,
    MeanShift,
    ResidualBlock,
    SignedMaskedImage,
    UpBlock,
    check_density,
    instance_norm,
    is_int,
    netm_conv,
    non_negative_int,
    positive_int,
)

#: NetE's only image size: four stride-2 convolutions down to 4x4 maps.
NETE_IMAGE_SIZE = 64
#: Dai's ``nef``: channels of NetE's first convolution.
NETE_WIDTH = 64
#: NetM's residual blocks (``model.py`` line 158).
NETM_BLOCKS = 8


# --------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------


def _check_channels(channels) -> int:
    if isinstance(channels, bool) or channels not in (1, 3):
        raise ValueError(f"`channels` must be 1 or 3, received {channels!r}.")
    return int(channels)


def _sides(image_size):
    """(height, width) of an int or a pair of positive ints, else None."""
    size = (image_size, image_size) if is_int(image_size) else image_size
    if (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(is_int(s) and s > 0 for s in size)
    ):
        return int(size[0]), int(size[1])
    return None


def _nete_size(image_size) -> int:
    if _sides(image_size) != (NETE_IMAGE_SIZE, NETE_IMAGE_SIZE):
        raise ValueError(
            f"`image_size` must be {NETE_IMAGE_SIZE} for NetE (four stride-2 "
            f"convolutions down to the 4x4 maps of its channel-wise layer), "
            f"received {image_size!r}."
        )
    return NETE_IMAGE_SIZE


def _netm_size(image_size):
    """None, an int or a (height, width) tuple, as the config keeps it."""
    if image_size is None:
        return None
    sides = _sides(image_size)
    if sides is None:
        raise ValueError(
            f"`image_size` must be None, a positive int or (height, width), "
            f"received {image_size!r}."
        )
    return int(image_size) if is_int(image_size) else sides


def _policy_name(dtype):
    """None, or the name of a dtype policy (a string the config keeps)."""
    if dtype is None:
        return None
    try:
        return keras.dtype_policies.get(dtype).name
    except (ValueError, TypeError):
        raise ValueError(
            f"`dtype` must be None or a Keras dtype policy name, received {dtype!r}."
        ) from None


def _float32_under_mixed(dtype):
    """float32 for output layers under a mixed policy, else `dtype` itself."""
    policy = (
        keras.config.dtype_policy()
        if dtype is None
        else keras.dtype_policies.get(dtype)
    )
    return "float32" if policy.compute_dtype != policy.variable_dtype else dtype


# --------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------


class _DaiNetwork(keras.Model):
    """A functional network whose config is its constructor arguments."""

    _config_fields: tuple[str, ...] = ()

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
class NetE(_DaiNetwork):
    """Dai's inpainting network NetE (context encoder), 64x64 only.

    Inputs: ``image`` (B, 64, 64, C) in [0, 1] (the full image or C f) and
    ``mask`` (B, 64, 64, 1), binary or NetM's continuous map. The encoder
    sees only mask (2 f - 1) (`SignedMaskedImage`), as Dai's. Output: the
    inpainted image (B, 64, 64, C) in [0, 1], (tanh + 1) / 2 of Dai's
    output; every pixel is generated (known pixels are not re-inserted).
    Batch norm follows ``training`` (Dai: ``train()`` / ``eval()``).

    Args:
        image_size: 64 or (64, 64).
        channels: 3 for colour (Dai's), 1 for grey.
        width: Dai's ``nef``, channels of the first convolution (64); the
            stages have width x (1, 2, 4, 8) channels.
        dtype: Keras dtype policy of the layers (None: the global policy);
            under a mixed policy the output layer computes in float32.
        **kwargs: `keras.Model` arguments such as ``name``.

    Raises:
        ValueError: For another size, channel count, a bad width or dtype.
    """

    _config_fields = ("image_size", "channels", "width", "dtype_name")

    def __init__(
        self,
        image_size=NETE_IMAGE_SIZE,
        channels: int = 3,
        width: int = NETE_WIDTH,
        dtype_name=None,
        **kwargs,
    ):
        size = _nete_size(image_size)
        channels = _check_channels(channels)
        width = positive_int("width", width)
        dtype_name = _policy_name(dtype_name)
        # === Layers and functional model ===
        image = keras.Input((size, size, channels), name="image")
        mask = keras.Input((size, size, 1), name="mask")
        x = SignedMaskedImage(name="masked_input", dtype=dtype_name)([image, mask])
        for i, factor in enumerate((1, 2, 4, 8), start=1):
            x = DownBlock(width * factor, name=f"encoder_{i}", dtype=dtype_name)(x)
        x = ChannelwiseDense(name="channelwise_fc", dtype=dtype_name)(x)
        for i, factor in enumerate((4, 2, 1), start=1):
            x = UpBlock(width * factor, name=f"decoder_{i}", dtype=dtype_name)(x)
        out_dtype = _float32_under_mixed(dtype_name)
        x = UpBlock(channels, last=True, name="decoder_4", dtype=out_dtype)(x)
        inpainted = keras.layers.Rescaling(
            0.5, offset=0.5, name="inpainted", dtype=out_dtype
        )(x)
        kwargs.setdefault("name", "nete")
        super().__init__(
            inputs={"image": image, "mask": mask}, outputs=inpainted, **kwargs
        )
        # === Config ===
        self.image_size = NETE_IMAGE_SIZE
        self.channels = channels
        self.width = width
        self.dtype_name = dtype_name


@keras.saving.register_keras_serializable(package=PACKAGE)
class NetM(_DaiNetwork):
    """Dai's mask network NetM: image -> continuous sampling map of mean D.

    Input: ``image`` (B, H, W, C) in [0, 1] (mapped to Dai's [-1, 1] by the
    first layer). Output: the sampling map (B, H, W, 1), mean D per image
    (`MeanShift`), values in [0, 1] up to what the last clip-and-shift pass
    leaves (see the module docstring). Fully convolutional. The final batch
    norm follows ``training``; the instance norms use each image's statistics
    always. Binarise with `bernoulli_mask` (Dai) or `topk_mask`.

    Args:
        image_size: None (any size), a side or (height, width).
        channels: 3 (Dai's) or 1.
        density: Sampling density D in (0, 1) (Dai's ``sample_rate``).
        filters: Channels of the stem and the residual blocks (Dai: 64).
        blocks: Number of residual blocks (Dai: 8).
        mean_shift_iterations: Clip-and-shift passes (Dai: 25).
        dtype_name: Keras dtype policy of the layers (None: the global
            policy); under a mixed policy the output layers compute in
            float32.
        **kwargs: `keras.Model` arguments such as ``name``.

    Raises:
        ValueError: For an invalid argument.
    """

    _config_fields = (
        "image_size",
        "channels",
        "density",
        "filters",
        "blocks",
        "mean_shift_iterations",
        "dtype_name",
    )

    def __init__(
        self,
        image_size=NETE_IMAGE_SIZE,
        channels: int = 3,
        density: float = 0.2,
        filters: int = NETM_FILTERS,
        blocks: int = NETM_BLOCKS,
        mean_shift_iterations: int = MEAN_SHIFT_ITERATIONS,
        dtype_name=None,
        **kwargs,
    ):
        image_size = _netm_size(image_size)
        channels = _check_channels(channels)
        density = check_density(density)
        filters = positive_int("filters", filters)
        blocks = non_negative_int("blocks", blocks)
        mean_shift_iterations = non_negative_int(
            "mean_shift_iterations", mean_shift_iterations
        )
        dtype_name = _policy_name(dtype_name)
        side = (None, None) if image_size is None else _sides(image_size)
        # === Layers and functional model ===
        image = keras.Input((*side, channels), name="image")
        x = keras.layers.Rescaling(
            2.0, offset=-1.0, name="signed_input", dtype=dtype_name
        )(image)
        x = netm_conv(filters, 9, "conv_input", dtype_name)(x)
        stem = keras.layers.LeakyReLU(NEGATIVE_SLOPE, name="stem", dtype=dtype_name)(x)
        x = stem
        for i in range(1, blocks + 1):
            x = ResidualBlock(filters, name=f"residual_{i}", dtype=dtype_name)(x)
        x = netm_conv(filters, 3, "conv_mid", dtype_name)(x)
        x = instance_norm("norm_mid", dtype_name)(x)
        x = keras.layers.Add(name="global_skip", dtype=dtype_name)([x, stem])
        out_dtype = _float32_under_mixed(dtype_name)
        x = netm_conv(1, 9, "conv_output", out_dtype)(x)
        x = keras.layers.BatchNormalization(
            name="norm_output", dtype=out_dtype, **BATCH_NORM
        )(x)
        x = keras.layers.Activation("sigmoid", name="sigmoid", dtype=out_dtype)(x)
        sampling_map = MeanShift(
            density, mean_shift_iterations, name="sampling_map", dtype=out_dtype
        )(x)
        kwargs.setdefault("name", "netm")
        super().__init__(inputs={"image": image}, outputs=sampling_map, **kwargs)
        # === Config ===
        self.image_size = image_size
        self.channels = channels
        self.density = density
        self.filters = filters
        self.blocks = blocks
        self.mean_shift_iterations = mean_shift_iterations
        self.dtype_name = dtype_name


def build_nete(
    image_size=NETE_IMAGE_SIZE,
    channels: int = 3,
    width: int = NETE_WIDTH,
    dtype=None,
    name: str = "nete",
) -> NetE:
    """Dai's NetE (see `NetE`): {"image", "mask"} -> inpainted image in [0, 1].

    Args:
        image_size: 64 (NetE's only size) or (64, 64).
        channels: 3 or 1.
        width: Dai's ``nef`` (64: 5,653,248 trainable parameters).
        dtype: Keras dtype policy of the layers, or None.
        name: Model name.

    Returns:
        The functional `NetE` model.

    Raises:
        ValueError: For an invalid argument (one line naming what was received).
    """
    return NetE(image_size, channels, width, dtype_name=dtype, name=name)


def build_netm(
    image_size=NETE_IMAGE_SIZE,
    channels: int = 3,
    density: float = 0.2,
    filters: int = NETM_FILTERS,
    blocks: int = NETM_BLOCKS,
    mean_shift_iterations: int = MEAN_SHIFT_ITERATIONS,
    dtype=None,
    name: str = "netm",
) -> NetM:
    """Dai's NetM (see `NetM`): {"image"} -> sampling map of mean D.

    Args:
        image_size: None (any size), a side or (height, width).
        channels: 3 or 1.
        density: Sampling density D in (0, 1).
        filters: Channels (Dai: 64; 649,602 trainable parameters).
        blocks: Residual blocks (Dai: 8).
        mean_shift_iterations: Clip-and-shift passes (Dai: 25).
        dtype: Keras dtype policy of the layers, or None.
        name: Model name.

    Returns:
        The functional `NetM` model.

    Raises:
        ValueError: For an invalid argument.
    """
    return NetM(
        image_size,
        channels,
        density,
        filters,
        blocks,
        mean_shift_iterations,
        dtype_name=dtype,
        name=name,
    )
