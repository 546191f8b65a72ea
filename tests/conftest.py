"""Shared test setup: quiet TensorFlow, deterministic seeds."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # One worker process per core (pytest-xdist, setup.cfg): one thread each,
    # or the workers' thread pools fight over the cores.
    for _name in (
        "TF_NUM_INTRAOP_THREADS",
        "TF_NUM_INTEROP_THREADS",
        "OMP_NUM_THREADS",
    ):
        os.environ.setdefault(_name, "1")

from wgimask import _entry  # noqa: E402

# TensorFlow's start-up lines (oneDNN, CUDA drivers) are noise in test output
# as in the entry points.
_entry.import_tensorflow_quietly()

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One exported run of tiny untrained networks (joint, density 0.1, 32 px).

    Exporting takes seconds, so test files share this one; copy it before
    changing anything in it.
    """
    import json

    from wgimask.nn.networks import InpaintingGenerator, MaskGenerator
    from wgimask.serve import export

    run = tmp_path_factory.mktemp("tiny_run")
    keras.utils.set_random_seed(7)
    export.export_models(
        run, InpaintingGenerator(None, 3, "tiny"), MaskGenerator(None, 3, "tiny")
    )
    config = {"density": 0.1, "mode": "joint", "channels": 3, "model_size": "tiny"}
    (run / "config.json").write_text(json.dumps({**config, "image_size": 32}))
    return run
