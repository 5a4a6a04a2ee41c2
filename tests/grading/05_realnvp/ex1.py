"""Hidden tests for notebook 05, exercise 1: the masked affine coupling's inverse on new dimensions, masks and networks."""

import numpy as np
import tensorflow as tf
from otter.test_files import test_case

OK_FORMAT = False
name = "05_ex1"
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


def _forward(network, mask, x):
    x = tf.convert_to_tensor(x, tf.float32)
    b = tf.cast(mask, tf.float32)
    shift, log_scale = network(b * x)
    return (b * x + (1 - b) * (x * tf.exp(log_scale) + shift)).numpy()


def _check(affine_coupling_inverse, mask, n, seed, scale=0.6, spread=2.0):
    mask = np.array(mask)
    network = _network(mask.size, seed, scale)
    rng = np.random.default_rng(seed + 7)
    x = rng.normal(loc=rng.uniform(-2, 2, mask.size), scale=spread, size=(n, mask.size)).astype(np.float32)
    y = _forward(network, mask, x)
    given = y.copy()
    answer = np.asarray(affine_coupling_inverse(network, mask.copy(), given), dtype=np.float32)
    where = f"d = {mask.size}, mask {mask.astype(int)}, {n} points"
    assert answer.shape == y.shape, f"{where}: expected shape {y.shape}, got {answer.shape}"
    assert np.array_equal(given, y), f"{where}: the function should not change its input in place"
    np.testing.assert_allclose(
        answer[:, mask], y[:, mask], atol=1e-6, err_msg=f"{where}: kept coordinates changed"
    )
    np.testing.assert_allclose(
        _forward(network, mask, answer), y, rtol=1e-4, atol=1e-3, err_msg=f"{where}: not the inverse"
    )


@test_case(points=1, hidden=True)
def new_dimensions_and_masks(affine_coupling_inverse):
    for mask, n, seed in [
        ([False, False, False, True], 11, 31),
        ([True, True, True, True, False, True], 3, 32),
        ([False, True, False, True, False, True, True], 50, 33),
        ([True, False, True], 1, 34),
    ]:
        _check(affine_coupling_inverse, mask, n, seed)


@test_case(points=1, hidden=True)
def strong_scales_and_far_points(affine_coupling_inverse):
    # log-scales reaching beyond +-3 (no bound may be applied) and points far from the origin
    _check(affine_coupling_inverse, [False, True, True, False, False], 64, 41, scale=1.5)
    _check(affine_coupling_inverse, [True, False], 200, 42, scale=1.2, spread=8.0)


@test_case(points=1, hidden=True)
def kept_last_and_many_points(affine_coupling_inverse):
    _check(affine_coupling_inverse, [False, False, True, True], 1000, 51)
    _check(affine_coupling_inverse, [False, True], 257, 52)
