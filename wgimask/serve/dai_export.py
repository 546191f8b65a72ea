"""SavedModels for TF Serving of Dai et al.'s NetE and NetM runs.

A ``train.py --mode=nete`` run folder's ``export/`` holds, beside
``nete.keras`` (and ``nete_best.keras``):

* ``nete/``: SavedModel; ``serving_default`` takes ``image`` (float32, NHWC,
  64x64, values in [0, 1]) and ``mask`` (one channel, 1 = known) and returns
  ``inpainted``: NetE's output with the known pixels kept, as the
  evaluation's operator ``nete`` (Dai returns the network's output
  everywhere; `wgimask.nn.dai.NetE` gives that).

A ``--mode=netm`` run folder's ``export/`` holds, beside ``netm.keras``:

* ``netm/``: SavedModel; ``serving_default`` takes ``image`` (64x64) and
  returns ``mask`` (exactly round(D H W) known pixels drawn with the
  chances of NetM's map, `wgimask.nn.dai.sampled_mask` with the fixed seed
  `SERVING_SEED`, as the evaluation's default mask ``netm``: the same
  request gets the same masks, though an image's mask depends on its place
  in the batch; Dai samples a Bernoulli mask instead) and
  ``inpainted`` (the frozen NetE
  the run was trained against, known pixels kept): Dai's test pipeline
  (`wgimask.nn.dai.netm_nete_inpaint`) with the exact density.

Both weigh the best validated weights when the run validated, else the
latest. NetE's fully connected bottleneck ties both to 64x64 inputs (the
signatures' shape; a request of another size is refused before the graph
runs); the checks of `wgimask.serve.export.check_image` (rank, channels,
finite values in [0, 1]) run in the graph. The folders are written beside
their destination and renamed into place.
"""

from __future__ import annotations

import pathlib
import shutil
import tempfile

import keras
import tensorflow as tf

from wgimask.nn import dai
from wgimask.serve.export import check_image, check_mask
from wgimask.serve.model_files import replace_folder

# Prefix of the temporary folders a SavedModel is written into.
_TEMP_PREFIX = ".dai-export-"


def _spec(channels: int, name: str) -> tf.TensorSpec:
    side = dai.NETE_IMAGE_SIZE
    return tf.TensorSpec([None, side, side, channels], tf.float32, name=name)


def _fixed(image: tf.Tensor, channels: int) -> tf.Tensor:
    """The checked image with NetE's static 64x64 shape back."""
    side = dai.NETE_IMAGE_SIZE
    return tf.ensure_shape(check_image(image, channels), [None, side, side, channels])


def _inpaint(nete: keras.Model, image: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """NetE's inpainting with the known pixels kept."""
    out = nete({"image": image * mask, "mask": mask}, training=False)
    return tf.where(mask > 0.5, image, out)


#: The seed of the ``netm`` signature's weighted draw (a request's mask is
#: reproducible).
SERVING_SEED = 0


def serve_nete(nete: keras.Model, image: tf.Tensor, mask: tf.Tensor) -> dict:
    """The ``nete`` signature: NetE's inpainting, known pixels kept."""
    image = _fixed(image, nete.channels)
    return {"inpainted": _inpaint(nete, image, check_mask(mask, image))}


def serve_netm(netm: keras.Model, nete: keras.Model, image: tf.Tensor) -> dict:
    """The ``netm`` signature: NetM's exact-density mask and NetE's inpainting."""
    image = _fixed(image, netm.channels)
    mask = dai.sampled_mask(
        netm({"image": image}, training=False), netm.density, SERVING_SEED
    )
    return {"mask": mask, "inpainted": _inpaint(nete, image, mask)}


def _save(endpoint, specs, path: str | pathlib.Path) -> pathlib.Path:
    """Writes a SavedModel whose ``serving_default`` is ``endpoint`` beside
    `path` and renames it into place."""
    final = pathlib.Path(path)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=_TEMP_PREFIX, dir=final.parent))
    try:
        archive = keras.export.ExportArchive()  # no track(): see save_inpainter
        archive.add_endpoint("serving_default", endpoint, input_signature=specs)
        archive.write_out(str(tmp / final.name), verbose=False)
        replace_folder(tmp / final.name, final, _TEMP_PREFIX)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def save_nete(nete: keras.Model, path: str | pathlib.Path) -> pathlib.Path:
    """Writes the ``nete`` SavedModel (inputs ``image``, ``mask``) to `path`."""
    return _save(
        lambda image, mask: serve_nete(nete, image, mask),
        [_spec(nete.channels, "image"), _spec(1, "mask")],
        path,
    )


def save_netm(
    netm: keras.Model, nete: keras.Model, path: str | pathlib.Path
) -> pathlib.Path:
    """Writes the ``netm`` SavedModel (input ``image``) to `path`."""
    return _save(
        lambda image: serve_netm(netm, nete, image),
        [_spec(netm.channels, "image")],
        path,
    )
