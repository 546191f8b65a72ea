import json
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import run_python

from wgimask.nn.networks import Critic, InpaintingGenerator, MaskGenerator
from wgimask.serve import export


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("run")
    keras.utils.set_random_seed(7)
    g = InpaintingGenerator(None, 3, "tiny")
    m = MaskGenerator(None, 3, "tiny")
    d = Critic(32, 3, "tiny")
    path = export.export_models(model_dir, g, m, d)
    return path, g, m


@pytest.mark.slow
def test_export_layout_and_atomic_replacement(exported, tmp_path):
    path, g, m = exported
    assert sorted(p.name for p in path.iterdir()) == [
        "critic.keras",
        "generator.keras",
        "inpainter",
        "lite",
        "mask_gan",
        "mask_generator.keras",
    ]
    assert sorted(p.name for p in (path / "lite").iterdir()) == [
        "confidence.tflite",
        "generator.tflite",
        "manifest.json",
    ]
    # Leftover temporary folders would mean a non-atomic write.
    assert [p.name for p in path.parent.iterdir()] == ["export"]
    # Re-exporting replaces the folder; an inpainting-only run has no mask_gan.
    again = export.export_models(path.parent, g)
    assert sorted(p.name for p in again.iterdir()) == [
        "generator.keras",
        "inpainter",
        "lite",
    ]
    export.export_models(path.parent, g, m, None)


def _stored_values(saved_model) -> int:
    reader = tf.train.load_checkpoint(str(saved_model / "variables" / "variables"))
    shapes = reader.get_variable_to_shape_map()
    shapes.pop("_CHECKPOINTABLE_OBJECT_GRAPH")
    return sum(int(np.prod(shape)) for shape in shapes.values())


@pytest.mark.slow
def test_savedmodels_store_each_weight_once(exported):
    path, g, m = exported
    assert _stored_values(path / "inpainter") == g.count_params()
    assert _stored_values(path / "mask_gan") == g.count_params() + m.count_params()


@pytest.mark.slow
def test_savedmodels_match_in_memory_models_in_fresh_process(exported, tmp_path):
    path, g, m = exported
    rng = np.random.default_rng(0)
    image = rng.uniform(size=(2, 16, 24, 3)).astype(np.float32)
    mask = (rng.uniform(size=(2, 16, 24, 1)) < 0.2).astype(np.float32)
    np.save(tmp_path / "image.npy", image)
    np.save(tmp_path / "mask.npy", mask)
    expected = export.mask_gan(g, m.confidence_model(), tf.constant(image))
    expected_inpainter = export.inpaint(g, tf.constant(image), tf.constant(mask))

    script = textwrap.dedent(
        f"""
        import json, numpy as np, tensorflow as tf
        out = {{}}
        image = np.load({str(tmp_path / "image.npy")!r})
        mask = np.load({str(tmp_path / "mask.npy")!r})
        gan = tf.saved_model.load({str(path / "mask_gan")!r})
        result = gan.signatures["serving_default"](image=tf.constant(image))
        for key, value in result.items():
            np.save({str(tmp_path)!r} + "/gan_" + key + ".npy", value.numpy())
        inp = tf.saved_model.load({str(path / "inpainter")!r})
        result = inp.signatures["serving_default"](
            image=tf.constant(image), mask=tf.constant(mask))
        np.save({str(tmp_path)!r} + "/inpainted.npy", result["inpainted"].numpy())
        # Plain Keras: the .keras files open after importing the package.
        import keras, wgimask
        g = keras.models.load_model({str(path / "generator.keras")!r})
        u = g({{"known": image * mask, "mask": mask, "seed": np.zeros_like(image)}})
        np.save({str(tmp_path)!r} + "/keras_u.npy", np.asarray(u))
        print(json.dumps(sorted(result)))
        """
    )
    done = run_python(script)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == ["inpainted"]
    for key in ("mask", "confidence", "inpainted"):
        np.testing.assert_allclose(
            np.load(tmp_path / f"gan_{key}.npy"), expected[key], atol=1e-5
        )
    served_mask = np.load(tmp_path / "gan_mask.npy")
    assert set(np.unique(served_mask)) <= {0.0, 1.0}
    np.testing.assert_allclose(
        np.load(tmp_path / "inpainted.npy"), expected_inpainter, atol=1e-5
    )
    zero_seed = g({"known": image * mask, "mask": mask, "seed": np.zeros_like(image)})
    np.testing.assert_allclose(np.load(tmp_path / "keras_u.npy"), zero_seed, atol=1e-5)


@pytest.mark.slow
def test_serving_is_deterministic(exported):
    _, g, m = exported
    image = tf.random.uniform((1, 16, 16, 3))
    first = export.mask_gan(g, m.confidence_model(), image)
    second = export.mask_gan(g, m.confidence_model(), image)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])


BAD_REQUESTS = {
    # case: (signature, inputs, words the message must contain)
    "rank 2": ("mask_gan", {"image": "np.zeros((16, 16))"}, "rank 4"),
    "rank 3": ("mask_gan", {"image": "np.zeros((16, 16, 3))"}, "rank 4"),
    "grey for colour": ("mask_gan", {"image": "np.zeros((1, 16, 16, 1))"}, "3 channel"),
    "batch 0": ("mask_gan", {"image": "np.zeros((0, 16, 16, 3))"}, "at least 1 image"),
    "side below 8": ("mask_gan", {"image": "np.zeros((1, 5, 9, 3))"}, "at least 8"),
    "0..255": ("mask_gan", {"image": "np.full((1, 16, 16, 3), 200.0)"}, "in [0, 1]"),
    "NaN pixel": (
        "mask_gan",
        {
            "image": "np.where(np.eye(16)[None, :, :, None] > 0, np.nan, "
            "np.full((1, 16, 16, 3), 0.5))"
        },
        "finite",
    ),
    "mask 0/255": (
        "inpainter",
        {
            "image": "np.full((1, 16, 16, 3), 0.5)",
            "mask": "np.full((1, 16, 16, 1), 255.0)",
        },
        "0 (unknown) or 1 (known)",
    ),
    "mask shape": (
        "inpainter",
        {"image": "np.full((1, 16, 16, 3), 0.5)", "mask": "np.ones((1, 8, 16, 1))"},
        "batch, height and width",
    ),
    "mask rank": (
        "inpainter",
        {"image": "np.full((1, 16, 16, 3), 0.5)", "mask": "np.ones((16, 16))"},
        "mask must have rank 4",
    ),
}


@pytest.mark.slow
def test_bad_requests_fail_with_named_cause_and_the_process_survives(exported):
    """Each bad input gets an InvalidArgument naming the expectation.

    One subprocess runs all cases: it must survive each (oneDNN aborts the
    process on a rank-2 image unless the check runs first) and then still
    serve a good request.
    """
    path, _, _ = exported
    cases = {name: (sig, inputs) for name, (sig, inputs, _) in BAD_REQUESTS.items()}
    script = textwrap.dedent(
        f"""
        import json, numpy as np, tensorflow as tf
        models = {{n: tf.saved_model.load({str(path)!r} + "/" + n)
                  for n in ("mask_gan", "inpainter")}}
        out = {{}}
        for name, (sig, inputs) in {cases!r}.items():
            fn = models[sig].signatures["serving_default"]
            args = {{k: tf.constant(eval(v), tf.float32) for k, v in inputs.items()}}
            try:
                fn(**args)
                out[name] = "no error"
            except tf.errors.InvalidArgumentError as error:
                out[name] = error.message
        good = models["mask_gan"].signatures["serving_default"](
            image=tf.fill([1, 13, 21, 3], 0.5))
        out["good shape"] = good["mask"].shape.as_list()
        print(json.dumps(out))
        """
    )
    done = run_python(script)
    assert done.returncode == 0, done.stderr[-3000:]
    messages = json.loads(done.stdout.strip().splitlines()[-1])
    for name, (_, _, words) in BAD_REQUESTS.items():
        assert words in messages[name], (name, messages[name])
    assert messages["good shape"] == [1, 13, 21, 1]


@pytest.mark.slow
def test_sides_not_multiple_of_8_are_reflect_padded_and_cropped(exported):
    _, g, m = exported
    image = tf.random.uniform((2, 13, 21, 3), seed=3)
    served = export.serve_mask_gan(g, m.confidence_model(), image)
    padded = tf.pad(image, [[0, 0], [0, 3], [0, 3], [0, 0]], mode="REFLECT")
    direct = export.mask_gan(g, m.confidence_model(), padded)
    for key in ("mask", "confidence", "inpainted"):
        assert served[key].shape[1:3] == (13, 21)
        np.testing.assert_allclose(served[key], direct[key][:, :13, :21], atol=1e-6)
    mask = tf.cast(tf.random.uniform((2, 13, 21, 1), seed=4) < 0.3, tf.float32)
    inpainted = export.serve_inpainter(g, image, mask)["inpainted"]
    assert inpainted.shape == (2, 13, 21, 3)
    # Sides that are multiples of 8 are not padded: the plain inference.
    image16 = image[:, :8, :16]
    np.testing.assert_allclose(
        export.serve_mask_gan(g, m.confidence_model(), image16)["mask"],
        export.mask_gan(g, m.confidence_model(), image16)["mask"],
    )


@pytest.mark.slow
def test_export_folder_has_the_run_folder_mode(tmp_path):
    model_dir = tmp_path / "run"
    model_dir.mkdir(mode=0o755)
    model_dir.chmod(0o755)
    path = export.export_models(model_dir, InpaintingGenerator(None, 3, "tiny"))
    assert oct(path.stat().st_mode & 0o777) == oct(0o755)
