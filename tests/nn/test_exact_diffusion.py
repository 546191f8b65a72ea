"""Tests for the differentiable diffusion operator (wgimask.nn.exact_diffusion)."""

import os
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import photo_crop, run_python

from wgimask.baselines import inpaint, random_mask
from wgimask.nn.exact_diffusion import DiffusionInpainting, diffusion_inpaint, solve

PHOTOS = ("astronaut", "coffee", "chelsea")


def _photo_batch(size, density, dtype):
    images = np.stack([photo_crop(name, size) for name in PHOTOS])
    masks = np.stack(
        [random_mask((size, size), density, seed=i) for i in range(len(PHOTOS))]
    )
    return images.astype(dtype), masks[..., None].astype(dtype)


@pytest.mark.parametrize(
    "dtype, preconditioner",
    [(np.float32, "jacobi"), (np.float64, "jacobi"), (np.float32, "multigrid")],
)
@pytest.mark.parametrize("density", [0.05, 0.1, 0.2])
def test_equals_the_baseline_on_photo_crops(density, dtype, preconditioner):
    images, masks = _photo_batch(64, density, dtype)
    reference = np.stack(
        [inpaint(f, m[..., 0]) for f, m in zip(images, masks, strict=True)]
    )
    result = solve(images, masks, preconditioner=preconditioner)
    u = result.inpainted.numpy()
    assert u.dtype == dtype
    assert np.abs(u - reference).max() < 1e-4
    # Known pixels exactly; every column reached the tolerance.
    known = np.broadcast_to(masks == 1, u.shape)
    assert np.array_equal(u[known], images[known])
    assert result.residual.numpy().max() <= 1e-6
    assert 0 < int(result.iterations) < 200


def _loss_and_gradients(f, c, weights, **kwargs):
    f, c = tf.constant(f), tf.constant(c)
    with tf.GradientTape() as tape:
        tape.watch([f, c])
        loss = tf.reduce_sum(diffusion_inpaint(f, c, **kwargs) * weights)
    return loss, *tape.gradient(loss, [f, c])


def _loss(f, c, weights):
    return float(tf.reduce_sum(diffusion_inpaint(f, c, rtol=1e-13) * weights))


@pytest.mark.parametrize("preconditioner", ["jacobi", "multigrid"])
def test_gradients_match_finite_differences_for_continuous_masks(preconditioner):
    rng = np.random.default_rng(0)
    f = rng.uniform(size=(2, 6, 7, 2))
    c = rng.uniform(0.05, 0.95, size=(2, 6, 7, 1))
    c[0, 1, 2] = c[1, 3, 3] = 1.0
    c[0, 4, 4] = 0.0
    weights = rng.normal(size=f.shape)
    _, grad_f, grad_c = _loss_and_gradients(
        f, c, weights, rtol=1e-13, preconditioner=preconditioner
    )
    h = 1e-6
    for index in [(0, 0, 0, 0), (1, 5, 6, 0), (0, 2, 3, 0), (1, 0, 4, 0)]:
        plus, minus = c.copy(), c.copy()
        plus[index] += h
        minus[index] -= h
        numeric = (_loss(f, plus, weights) - _loss(f, minus, weights)) / (2 * h)
        assert grad_c.numpy()[index] == pytest.approx(numeric, rel=1e-5, abs=1e-8)
    # One-sided at the ends of [0, 1]: c = 1 (known) and c = 0.
    for index, step in [((0, 1, 2, 0), -h), ((1, 3, 3, 0), -h), ((0, 4, 4, 0), h)]:
        moved = c.copy()
        moved[index] += step
        numeric = (_loss(f, moved, weights) - _loss(f, c, weights)) / step
        assert grad_c.numpy()[index] == pytest.approx(numeric, rel=1e-4, abs=1e-7)
    for index in [(0, 1, 2, 1), (0, 0, 0, 0), (1, 2, 5, 1)]:
        plus, minus = f.copy(), f.copy()
        plus[index] += h
        minus[index] -= h
        numeric = (_loss(plus, c, weights) - _loss(minus, c, weights)) / (2 * h)
        assert grad_f.numpy()[index] == pytest.approx(numeric, rel=1e-6, abs=1e-9)


def test_binary_mask_gradient_is_the_adjoint_weighted_error():
    """At an unknown pixel of a binary mask, dL/dc = sum_C lambda (f - u)."""
    rng = np.random.default_rng(1)
    f = rng.uniform(size=(1, 8, 8, 3))
    c = (rng.uniform(size=(1, 8, 8, 1)) < 0.3).astype(np.float64)
    weights = rng.normal(size=f.shape)
    _, grad_f, grad_c = _loss_and_gradients(f, c, weights, rtol=1e-13)
    # Known values get the gradient, unknown ones none (they are not read).
    assert np.all(grad_f.numpy()[np.broadcast_to(c == 0, f.shape)] == 0)
    h = 1e-6
    for index in [tuple(i) for i in np.argwhere(c == 0)[:3]] + [
        tuple(i) for i in np.argwhere(c == 1)[:3]
    ]:
        step = h if c[index] == 0 else -h
        moved = c.copy()
        moved[index] += step
        numeric = (_loss(f, moved, weights) - _loss(f, c, weights)) / step
        assert grad_c.numpy()[index] == pytest.approx(numeric, rel=1e-4, abs=1e-7)


def test_inside_tf_function_and_as_a_layer():
    images, masks = _photo_batch(32, 0.1, np.float32)
    eager = solve(images, masks).inpainted

    @tf.function(jit_compile=False)
    def traced(f, c):
        with tf.GradientTape() as tape:
            tape.watch(c)
            u = diffusion_inpaint(f, c)
            loss = tf.reduce_mean(tf.abs(u - f))
        return u, tape.gradient(loss, c)

    u, grad = traced(tf.constant(images), tf.constant(masks))
    assert np.abs(u.numpy() - eager.numpy()).max() < 1e-6
    assert grad.shape == masks.shape and np.all(np.isfinite(grad.numpy()))
    # Adding a pixel lowers the error (negative gradient) at most places.
    assert np.mean(grad.numpy()[masks == 0] < 0) > 0.5

    layer = DiffusionInpainting(rtol=1e-6, preconditioner="multigrid", dtype="float32")
    clone = DiffusionInpainting.from_config(layer.get_config())
    assert (clone.rtol, clone.preconditioner) == (1e-6, "multigrid")
    # Another preconditioner: equal up to the solver's tolerance.
    assert np.abs(clone([images, masks]).numpy() - eager.numpy()).max() < 1e-4
    assert isinstance(clone, keras.layers.Layer)


def test_warm_start_and_edge_cases():
    images, masks = _photo_batch(32, 0.1, np.float64)
    cold = solve(images, masks)
    warm = solve(images, masks, initial=cold.inpainted)
    assert int(warm.iterations) < int(cold.iterations)
    assert np.abs(warm.inpainted.numpy() - cold.inpainted.numpy()).max() < 1e-5
    # An empty mask gives zeros and zero gradients; values above 1 count as 1
    # with a straight-through gradient.
    masks[0] = 0.0
    masks[1, 0, 0] = 1.5
    clipped = masks.copy()
    clipped[1, 0, 0] = 1.0
    weights = np.ones_like(images)
    _, _, grad_c = _loss_and_gradients(images, masks, weights)
    _, _, grad_clipped = _loss_and_gradients(images, clipped, weights)
    u = diffusion_inpaint(images, masks).numpy()
    assert np.all(u[0] == 0) and np.all(grad_c.numpy()[0] == 0)
    assert np.allclose(grad_c.numpy()[1:], grad_clipped.numpy()[1:])


def test_bad_inputs_raise_clear_errors():
    image = np.zeros((1, 8, 8, 3), np.float32)
    mask = np.zeros((1, 8, 8, 1), np.float32)
    with pytest.raises(ValueError, match="image must have shape"):
        diffusion_inpaint(image[0], mask)
    with pytest.raises(ValueError, match="mask must have shape"):
        diffusion_inpaint(image, mask[..., 0])
    with pytest.raises(ValueError, match="does not match"):
        diffusion_inpaint(image, mask[:, :4])
    with pytest.raises(ValueError, match="rtol must be"):
        diffusion_inpaint(image, mask, rtol=0)
    with pytest.raises(ValueError, match="max_iterations must be"):
        solve(image, mask, max_iterations=0)
    with pytest.raises(ValueError, match="floating point"):
        solve(image.astype(np.int32), mask)
    with pytest.raises(ValueError, match="preconditioner must be"):
        solve(image, mask, preconditioner="ilu")


@pytest.mark.slow
def test_mirrored_strategy_matches_one_device():
    """Gradients summed over two logical CPUs equal the one-device gradient."""
    script = textwrap.dedent(
        f"""
        import numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import sys; sys.path.insert(0, {os.path.dirname(os.path.dirname(__file__))!r})
        from helpers import photo_crop
        from wgimask.baselines import random_mask
        from wgimask.nn.exact_diffusion import diffusion_inpaint
        f = np.stack([photo_crop(n, 16) for n in ("astronaut", "coffee")])
        c = np.stack([random_mask((16, 16), 0.2, seed=i) for i in range(2)])
        f, c = tf.constant(f, tf.float32), tf.constant(c[..., None], tf.float32)

        def per_replica(f, c):
            with tf.GradientTape() as tape:
                tape.watch(c)
                loss = tf.reduce_sum(tf.abs(diffusion_inpaint(f, c) - f))
            return tape.gradient(loss, c)

        one = per_replica(f, c).numpy()
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        dataset = tf.data.Dataset.from_tensor_slices((f, c)).batch(2)
        batch = next(iter(strategy.experimental_distribute_dataset(dataset)))
        run = tf.function(lambda b: strategy.run(per_replica, args=b))
        parts = strategy.experimental_local_results(run(batch))
        assert len(parts) == 2 and all(p.shape[0] == 1 for p in parts)
        two = np.concatenate([p.numpy() for p in parts])
        print("max difference", np.abs(one - two).max())
        assert np.abs(one - two).max() < 1e-5
        """
    )
    result = run_python(script)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "max difference" in result.stdout
