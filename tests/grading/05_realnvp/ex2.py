"""Hidden tests for notebook 05, exercise 2: the masked affine coupling's log-determinant against autodiff on new cases."""

import numpy as np
import tensorflow as tf
from otter.test_files import test_case

OK_FORMAT = False
name = "05_ex2"
points = 3


def _network(dim, seed, scale):
    rng = np.random.default_rng(seed)
    w1 = tf.constant(rng.normal(size=(dim, 12)), tf.float32)
    b1 = tf.constant(rng.normal(size=12), tf.float32)
    w2 = tf.constant(rng.normal(scale=scale, size=(12, 2 * dim)), tf.float32)
    b2 = tf.constant(rng.normal(scale=0.5, size=2 * dim), tf.float32)

    def network(h):
        out = tf.tanh(tf.convert_to_tensor(h, tf.float32) @ w1 + b1) @ w2 + b2
        return out[:, :dim], out[:, dim:]

    return network


def _autodiff_log_det(network, mask, x):
    points = tf.constant(x)
    b = tf.cast(mask, tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(points)
        shift, log_scale = network(b * points)
        y = b * points + (1 - b) * (points * tf.exp(log_scale) + shift)
        outputs = [y[:, i] for i in range(len(mask))]
    jacobian = tf.stack([tape.gradient(output, points) for output in outputs], axis=1)
    return tf.linalg.slogdet(tf.cast(jacobian, tf.float64))[1].numpy()


def _check(affine_coupling_log_det, mask, n, seed, scale=0.6, spread=2.0):
    mask = np.array(mask)
    network = _network(mask.size, seed, scale)
    rng = np.random.default_rng(seed + 7)
    x = rng.normal(loc=rng.uniform(-2, 2, mask.size), scale=spread, size=(n, mask.size)).astype(np.float32)
    answer = np.asarray(affine_coupling_log_det(network, mask.copy(), x.copy()), dtype=np.float64)
    where = f"d = {mask.size}, mask {mask.astype(int)}, {n} points"
    assert answer.shape == (n,), f"{where}: expected shape {(n,)}, got {answer.shape}"
    np.testing.assert_allclose(answer, _autodiff_log_det(network, mask, x), atol=2e-3, err_msg=where)


@test_case(points=1, hidden=True)
def new_dimensions_and_masks(affine_coupling_log_det):
    for mask, n, seed in [
        ([False, False, False, True], 11, 61),
        ([True, True, True, True, False, True], 3, 62),
        ([False, True, False, True, False, True, True], 50, 63),
        ([True, False, True], 1, 64),
    ]:
        _check(affine_coupling_log_det, mask, n, seed)


@test_case(points=1, hidden=True)
def strong_scales_and_far_points(affine_coupling_log_det):
    _check(affine_coupling_log_det, [False, True, True, False, False], 64, 71, scale=1.5)
    _check(affine_coupling_log_det, [True, False], 200, 72, scale=1.2, spread=8.0)


@test_case(points=1, hidden=True)
def kept_last_and_many_points(affine_coupling_log_det):
    _check(affine_coupling_log_det, [False, False, True, True], 1000, 81)
    _check(affine_coupling_log_det, [False, True], 257, 82)
