"""Hidden tests for notebook 01, exercise 2: merged_network on longer lists and new networks."""

import numpy as np
import tensorflow as tf
from otter.test_files import test_case

OK_FORMAT = False
name = "01_ex2"
points = 2


def _network(seed):
    rng = np.random.default_rng(seed)
    w1 = tf.constant(rng.normal(size=(1, 10)), tf.float32)
    b1 = tf.constant(rng.uniform(-3, 3, 10), tf.float32)
    w2 = tf.constant(rng.normal(size=(10, 1)), tf.float32)
    return lambda x1: tf.matmul(tf.nn.relu(tf.matmul(x1, w1) + b1), w2)


def _coupling(x, network):
    x1, x2 = x[:, :1], x[:, 1:]
    return tf.concat([x1, x2 + network(x1)], axis=1)


@test_case(points=2, hidden=True)
def one_layer_equals_the_stack(merged_network):
    for seed, count in enumerate([3, 5, 2]):
        networks = [_network(1000 + 17 * seed + k) for k in range(count)]
        x = tf.constant(np.random.default_rng(seed).uniform(-20, 15, (64, 2)), tf.float32)
        stacked = x
        for network in networks:
            stacked = _coupling(stacked, network)
        np.testing.assert_allclose(
            _coupling(x, merged_network(networks)),
            stacked,
            atol=1e-3,
            rtol=1e-5,
            err_msg=f"one coupling with the merged network differs from {count} stacked ones",
        )
