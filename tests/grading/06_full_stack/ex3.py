"""Hidden tests for notebook 06, exercise 3: largest round-trip error of batch norms in both modes and of plain layers."""

import numpy as np
import tensorflow as tf
from otter.test_files import test_case

from flowlib import bijectors

OK_FORMAT = False
name = "06_ex3"
points = 3


def _batch_norm(mean, variance, log_gamma, beta, training):
    layer = bijectors.BatchNormalization(len(mean), tf.Variable(training))
    for variable, value in [
        (layer.moving_mean, mean),
        (layer.moving_variance, variance),
        (layer.log_gamma, log_gamma),
        (layer.beta, beta),
    ]:
        variable.assign(np.asarray(value, dtype=np.float32))
    return layer


def _expected(layer, x, training):
    mean, variance, log_gamma, beta = (
        v.numpy().astype(np.float64)
        for v in (layer.moving_mean, layer.moving_variance, layer.log_gamma, layer.beta)
    )
    m, eps = layer.momentum, layer.epsilon
    if training:
        batch_mean, batch_variance = x.mean(0), x.var(0)
        z = (x - batch_mean) / np.sqrt(batch_variance + eps) * np.exp(log_gamma) + beta
        mean, variance = m * mean + (1 - m) * batch_mean, m * variance + (1 - m) * batch_variance
    else:
        z = (x - mean) / np.sqrt(variance + eps) * np.exp(log_gamma) + beta
    return np.abs((z - beta) * np.sqrt(variance + eps) / np.exp(log_gamma) + mean - x).max()


@test_case(points=1, hidden=True)
def batch_norms_of_other_shapes(round_trip_error):
    rng = np.random.default_rng(31)
    for dim, n in [(4, 1000), (1, 50), (2, 7)]:
        params = (
            rng.normal(size=dim),
            rng.uniform(0.01, 9.0, dim),
            rng.normal(scale=0.5, size=dim),
            rng.normal(size=dim),
        )
        x = rng.normal(loc=rng.uniform(-10, 10, dim), scale=rng.uniform(0.05, 5, dim), size=(n, dim)).astype(
            np.float32
        )
        for training in (False, True):
            layer = _batch_norm(*params, training)
            expected = _expected(layer, x.astype(np.float64), training)
            answer = float(round_trip_error(layer, x.copy()))
            assert abs(answer - expected) <= 1e-4 + 0.005 * expected, (
                f"{dim}-D batch norm, training={training}"
            )


class _Exact:
    def inverse(self, y):
        return tf.convert_to_tensor(y) * 2.0 - 3.0

    def forward(self, z):
        return (tf.convert_to_tensor(z) + 3.0) / 2.0


class _OnePoint:
    """Exact except at the points whose first coordinate exceeds 5, which come back moved by 0.25."""

    def inverse(self, y):
        return tf.convert_to_tensor(y) + 1.0

    def forward(self, z):
        z = tf.convert_to_tensor(z)
        return z - 1.0 + tf.where(z[:, :1] - 1.0 > 5.0, 0.25, 0.0)


@test_case(points=1, hidden=True)
def plain_layers(round_trip_error):
    x = np.random.default_rng(32).normal(scale=2.0, size=(100, 3)).astype(np.float32)
    assert float(round_trip_error(_Exact(), x)) < 1e-5, "an exact pair should give (almost) zero"
    x[17, 0] = 6.0
    assert abs(float(round_trip_error(_OnePoint(), x)) - 0.25) < 1e-5, "one point off by 0.25"


@test_case(points=1, hidden=True)
def negative_errors_count_too(round_trip_error):
    class Shrinks:
        def inverse(self, y):
            return tf.convert_to_tensor(y)

        def forward(self, z):
            return tf.convert_to_tensor(z) * 0.5

    x = np.array([[4.0, -1.0], [0.5, 0.25]], dtype=np.float32)  # forward(inverse(x)) - x = -x / 2
    assert abs(float(round_trip_error(Shrinks(), x)) - 2.0) < 1e-6
