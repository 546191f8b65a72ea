"""NetE and NetM of Dai et al. (2020), the paper's Table 2 comparison.

Q. Dai, H. Chopp, E. Pouyet, O. Cossairt, M. Walton, A. K. Katsaggelos:
"Adaptive image sampling using deep learning and its application on X-ray
fluorescence image reconstruction", IEEE Trans. Multimedia 22(10), 2020. Their
PyTorch code: GitHub ``usstdqq/deep-adaptive-sampling-mask`` (commit 9dd4963);
line numbers below refer to its files.

What is ported (``model.py`` unless named otherwise):

* `NetE` (``NetE``, lines 17-110): the inpainting network, a context encoder
  on 64x64 images. Four 4x4 stride-2 convolutions without bias (width, 2, 4, 8
  times width channels), each with batch norm and LeakyReLU 0.2, down to 4x4
  maps; a channel-wise fully connected layer, one ``Linear(16, 16)`` with
  bias per channel over its 4x4 map (lines 38-44, 72-77; `ChannelwiseDense`);
  three 4x4 stride-2 transposed convolutions without bias, batch norm and
  ReLU; a fourth to the image channels, then tanh. Initialisation as
  ``_initialize_weights`` (lines 85-110): convolution kernels N(0, 0.02),
  batch-norm scales N(1, 0.02), offsets 0; the channel-wise layers keep
  PyTorch's default ``Linear`` initialisation, U(-1/4, 1/4) for weights and
  biases.
* `NetM` (``NetM``, lines 151-198): the mask network. A 9x9 convolution to 64
  channels and LeakyReLU 0.2; eight residual blocks (``_Residual_Block``,
  lines 133-148: 3x3 convolution, instance norm with affine parameters,
  LeakyReLU 0.2, 3x3 convolution, instance norm, identity skip); a 3x3
  convolution with instance norm added to the stem's output; a 9x9
  convolution to one channel, batch norm, sigmoid; then the mean shift
  (`MeanShift`, ``Mean_Shift`` lines 114-130 and lines 190-196): x / mean(x) D,
  followed by 25 passes of clipping to [0, 1] and the same shift. No
  convolution has a bias; kernels are N(0, 2 / (k k out_channels)) (lines
  169-174, He normal over the fan-out).
* Their input and output ranges (``train_NetE.py`` lines 48-54, 102-121;
  ``train_NetM.py`` lines 110-138): images are normalised to [-1, 1]
  (``Normalize(0.5, 0.5)``) and unknown pixels are set to 0 *after* that,
  i.e. to mid-grey; NetM's input is the normalised image, NetE's the
  normalised image times the mask (``NetME.forward``, lines 207-215); the
  mask is not an input channel of NetE. Here both networks take images in
  [0, 1]: `SignedMaskedImage` computes mask (2 f - 1) (Dai's NetE input
  exactly, for binary and continuous masks alike), NetM's first layer 2 f - 1,
  and NetE's tanh output t is returned as (t + 1) / 2 in [0, 1], the scale in
  which Dai computes every loss and PSNR.
* Losses: `nete_loss`, Dai's ``MSELoss`` on the [0, 1] scale
  (``train_NetE.py`` line 121), with Bernoulli(D) training masks per pixel,
  shared by the colour channels (lines 107-114; `nete_training_masks`);
  `netm_loss`, the same MSE of the frozen NetE's reconstruction from NetM's *continuous*
  map used as the mask (``train_NetM.py`` lines 134-138). No term on the
  density: the mean shift fixes it (``mask_sparsity`` is only logged, line 136).
* Test time (``test_NetM_h5.py`` lines 116-131): NetM's map, rescaled once
  more to mean D (a no-op here: NetM's last operation is that shift), is
  binarised by Bernoulli sampling (`bernoulli_mask`); NetE inpaints the
  masked image, and its raw output is the result (known pixels are not
  re-inserted). `netm_nete_inpaint` does these steps.

Deviations:

* Channels: Dai's networks are colour only; ``channels=1`` changes only the
  first and last convolution.
* Widths: Dai hard-codes 512 channel-wise layers (``nef * 8`` at ``nef=64``)
  and NetM's 64 filters (it ignores its ``nef``); here the channel-wise layer
  has ``8 * width`` channels and NetM's ``filters`` and ``blocks`` are
  arguments (defaults: Dai's).
* Batch norm: PyTorch's momentum 0.1 and epsilon 1e-5 are Keras' momentum 0.9
  and epsilon 1e-5; Keras updates the moving variance with the biased batch
  variance (PyTorch: unbiased), a factor (n - 1) / n with n >= 16 pixels per
  channel times the batch.
* `MeanShift` divides by max(mean, 1e-12) (Dai: by the mean; a zero mean of
  sigmoids cannot occur in practice). Otherwise it is Dai's: its last
  operation is the shift, so the map's mean is D exactly, while its values
  may exceed 1 by what 25 passes leave unclipped. Untrained networks stay
  below 1 (largest value 0.44 at D = 0.2 on photo crops); saturated maps do
  not (synthetic sigmoid maps with few large values: up to 1.27 at D = 0.1
  after 25 passes). `bernoulli_mask` treats values above 1 as 1 (PyTorch's
  ``bernoulli`` would reject them), `topk_mask` only ranks them.
* `sampled_mask` and `topk_mask` (not Dai's): exactly round(D H W) known
  pixels, as every mask of the project, where Bernoulli masks have the
  density only in expectation. `sampled_mask` draws them without
  replacement with chances from the map, so they spread as Dai's Bernoulli
  points do; `topk_mask` keeps the largest values (ties to the lower pixel
  index), deterministic, but the peaks of a smooth map cluster: on the
  validation crops NetE lost 2-3 dB with them against Bernoulli or sampled
  masks (docs/evaluation.md, "NetM's masks"). All three are available
  (`BINARISATIONS`). Map values above 1 are weights like any other in
  `sampled_mask` (a larger chance, not certainty, unlike `bernoulli_mask`).
* Layouts: NHWC instead of NCHW; a transposed-convolution kernel is stored as
  Keras' (k, k, out, in) instead of PyTorch's (in, out, k, k). The padding
  matches: 'same' with a 4x4 kernel and stride 2 pads one pixel on each side,
  as Dai's ``padding=(1, 1)`` (checked against PyTorch's definition in the
  tests). A port of Dai's weights: conv kernels transposed (2, 3, 1, 0),
  transposed-conv kernels (2, 3, 1, 0) too, the channel-wise weights W_c as
  ``kernel[c] = W_c.T``.

Modules: `wgimask.nn.dai_layers` holds the registered Keras layers,
`wgimask.nn.dai_networks` the networks `NetE` and `NetM` with `build_nete`
and `build_netm`; this module the masks, losses and test pipeline, and it
re-exports the names of the other two (``from wgimask.nn import dai``
reaches all of them).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from wgimask.nn import dither
from wgimask.nn.dai_layers import (  # noqa: F401 - part of this module's API
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
    mean_shift,
)
from wgimask.nn.dai_networks import (  # noqa: F401 - part of this module's API
    NETE_IMAGE_SIZE,
    NETE_WIDTH,
    NETM_BLOCKS,
    NetE,
    NetM,
    build_nete,
    build_netm,
)

# --------------------------------------------------------------------------
# Masks
# --------------------------------------------------------------------------

#: How NetM's continuous map becomes a binary mask at test time: Dai's
#: Bernoulli draw, a weighted draw of the exact count, or the exact count of
#: the largest values.
BINARISATIONS = ("bernoulli", "sampled", "topk")


def _as_seed(seed) -> tf.Tensor:
    """A shape-[2] int64 seed from an int or a pair."""
    seed = tf.convert_to_tensor(seed)
    if seed.shape.rank == 0:
        return tf.stack([tf.cast(seed, tf.int64), tf.constant(0, tf.int64)])
    if seed.shape != (2,):
        raise ValueError(f"`seed` must be an int or a pair of ints, received {seed!r}.")
    return tf.cast(seed, tf.int64)


def bernoulli_mask(sampling_map, seed) -> tf.Tensor:
    """Dai's binarisation: each pixel known with probability its map value.

    ``corrupt_mask_conti.bernoulli()`` (``train_NetM.py`` line 200,
    ``test_NetM_h5.py`` line 127), as a stateless draw: the same seed gives
    the same mask. Values above 1 count as 1, below 0 as 0. The density is
    D only in expectation.

    Args:
        sampling_map: (B, H, W, 1) map (numpy or tensor).
        seed: An int or a pair of ints.

    Returns:
        float32 (B, H, W, 1) tensor of zeros and ones.
    """
    p = tf.cast(tf.convert_to_tensor(sampling_map), tf.float32)
    noise = tf.random.stateless_uniform(tf.shape(p), _as_seed(seed))
    return tf.cast(noise < p, tf.float32)


def topk_mask(sampling_map, density: float) -> tf.Tensor:
    """Exactly round(D H W) known pixels per image, the largest map values.

    Not Dai's (see the module docstring); deterministic, ties go to the lower
    pixel index (row-major).

    Args:
        sampling_map: (B, H, W, 1) map (numpy or tensor).
        density: D in (0, 1).

    Returns:
        float32 (B, H, W, 1) tensor with exactly max(1, round(D H W)) ones
        per image.

    Raises:
        ValueError: For a density outside (0, 1).
    """
    density = check_density(density)
    score = tf.cast(tf.convert_to_tensor(sampling_map), tf.float32)
    shape = tf.shape(score)
    return dither.exact_count_mask(
        score, dither.point_count(density, shape[1], shape[2])
    )


def sampled_mask(sampling_map, density: float, seed) -> tf.Tensor:
    """Exactly round(D H W) pixels drawn with probabilities from the map.

    Not Dai's (see the module docstring): a weighted draw without replacement
    (Efraimidis and Spirakis 2006: the largest keys log(u) / p, u uniform),
    so each pixel's chance grows with its map value as in `bernoulli_mask`,
    but the count is exact as in `topk_mask`. The points spread as Dai's
    Bernoulli points do; `topk_mask` takes the map's peaks, which cluster.
    The same seed gives the same mask.

    Args:
        sampling_map: (B, H, W, 1) map (numpy or tensor).
        density: D in (0, 1).
        seed: An int or a pair of ints.

    Returns:
        float32 (B, H, W, 1) tensor with exactly max(1, round(D H W)) ones
        per image.

    Raises:
        ValueError: For a density outside (0, 1).
    """
    density = check_density(density)
    p = tf.cast(tf.convert_to_tensor(sampling_map), tf.float32)
    # u in (0, 1): log(u) is finite and negative; a zero value ranks last.
    u = tf.random.stateless_uniform(
        tf.shape(p), _as_seed(seed), minval=1e-30, maxval=1.0
    )
    keys = tf.math.log(u) / tf.maximum(p, 1e-30)
    return topk_mask(keys, density)


def nete_training_masks(shape, density: float, seed) -> tf.Tensor:
    """Dai's NetE training masks: each pixel known with probability D.

    ``np.random.binomial(1, 1 - D)`` marks the unknown pixels, one draw per
    pixel, shared by the colours (``train_NetE.py`` lines 107-114).

    Args:
        shape: (B, H, W) or (B, H, W, C); the masks are (B, H, W, 1).
        density: D in (0, 1).
        seed: An int or a pair of ints.

    Returns:
        float32 (B, H, W, 1) masks.
    """
    density = check_density(density)
    shape = tf.convert_to_tensor(shape)
    return bernoulli_mask(tf.fill(tf.concat([shape[:3], [1]], 0), density), seed)


# --------------------------------------------------------------------------
# Losses and the two networks together
# --------------------------------------------------------------------------


def reconstruction_mse(image, inpainted) -> tf.Tensor:
    """Per-image mean squared error on the [0, 1] scale, shape (B,).

    Dai's ``nn.MSELoss()`` of ``(x + 1) / 2`` (``train_NetE.py`` line 121,
    ``train_NetM.py`` line 138) is the batch mean of these values.
    """
    diff = tf.cast(image, tf.float32) - tf.cast(inpainted, tf.float32)
    return tf.reduce_mean(tf.reshape(tf.square(diff), (tf.shape(diff)[0], -1)), axis=1)


def nete_loss(image, inpainted) -> tf.Tensor:
    """NetE's loss: `reconstruction_mse` of its inpainting, shape (B,)."""
    return reconstruction_mse(image, inpainted)


def netm_loss(nete: keras.Model, image, sampling_map) -> tf.Tensor:
    """NetM's loss: the MSE of the frozen NetE's inpainting from the map.

    NetE (inference mode, as Dai's ``netE.eval()``, ``train_NetM.py`` line
    100) gets the continuous map as its mask (``NetME.forward``, ``model.py``
    lines 207-215); no regularisation. Gradients reach the map through NetE.

    Args:
        nete: A trained `NetE`.
        image: (B, 64, 64, C) images in [0, 1].
        sampling_map: (B, 64, 64, 1) NetM output.

    Returns:
        (B,) per-image MSE.
    """
    inpainted = nete({"image": image, "mask": sampling_map}, training=False)
    return reconstruction_mse(image, inpainted)


def netm_nete_inpaint(
    netm: keras.Model,
    nete: keras.Model,
    image,
    *,
    binarisation: str = "bernoulli",
    seed=0,
):
    """Dai's test pipeline: NetM's map, a binary mask, NetE's inpainting.

    ``test_NetM_h5.py`` lines 116-136 (both networks in inference mode).

    Args:
        netm: A `NetM`.
        nete: A `NetE`.
        image: (B, 64, 64, C) images in [0, 1].
        binarisation: "bernoulli" (Dai's, `bernoulli_mask` with `seed`),
            "sampled" (exact density, `sampled_mask` with `seed`) or
            "topk" (exact density, `topk_mask`).
        seed: Seed of the Bernoulli or weighted draw.

    Returns:
        (mask, inpainted): (B, 64, 64, 1) binary masks and NetE's
        (B, 64, 64, C) output in [0, 1].

    Raises:
        ValueError: For an unknown binarisation.
    """
    if binarisation not in BINARISATIONS:
        raise ValueError(
            f"`binarisation` must be one of {', '.join(BINARISATIONS)}, "
            f"received {binarisation!r}."
        )
    image = tf.convert_to_tensor(image, tf.float32)
    sampling_map = netm({"image": image}, training=False)
    if binarisation == "bernoulli":
        mask = bernoulli_mask(sampling_map, seed)
    elif binarisation == "sampled":
        mask = sampled_mask(sampling_map, netm.density, seed)
    else:
        mask = topk_mask(sampling_map, netm.density)
    return mask, nete({"image": image * mask, "mask": mask}, training=False)
