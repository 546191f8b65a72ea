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


# The files of the longest tests, run first: with --dist=loadfile each file
# goes to one test worker, and a long file handed out last keeps the suite
# waiting for it alone (the two-worker kill-and-resume test took 97 s).
SLOWEST_FILES = (
    "train/test_multiworker_resume.py",
    "train/test_multiworker.py",
    "train/test_training_steps.py",
    "train/test_train_script.py",
    "train/test_reliability.py",
    "train/test_multiworker_faults.py",
)


def pytest_collection_modifyitems(config, items):
    def rank(item):
        path = item.nodeid.split("::", 1)[0]
        for index, name in enumerate(SLOWEST_FILES):
            if path.endswith(name):
                return index
        return len(SLOWEST_FILES)

    items.sort(key=rank)  # stable: the other files keep their order
