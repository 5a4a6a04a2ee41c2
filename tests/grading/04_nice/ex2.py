"""Hidden tests for notebook 04, exercise 2: log|det J| by autodiff on new maps in 2 to 4 dimensions."""

import numpy as np
import tensorflow as tf
from otter.test_files import test_case

OK_FORMAT = False
name = "04_ex2"
points = 3


def _finite_differences(f, z, h=1e-5):
    z = np.asarray(z, np.float64)
    d = z.shape[1]
    jac = np.empty((len(z), d, d))
    for j in range(d):
        e = np.zeros(d)
        e[j] = h
        jac[:, :, j] = (f(z + e) - f(z - e)) / (2 * h)
    return np.linalg.slogdet(jac)[1]


@test_case(points=1, hidden=True)
def mixing_map_in_four_dimensions(log_abs_det_jacobian):
    rng = np.random.default_rng(40)
    w = rng.normal(scale=0.4, size=(4, 4))
    w_t = tf.constant(w, tf.float32)

    def forward(x):
        x = tf.convert_to_tensor(x, tf.float32)
        return x + 0.3 * tf.tanh(x @ tf.transpose(w_t))

    z = rng.normal(size=(200, 4)).astype(np.float32)
    expected = _finite_differences(lambda p: p + 0.3 * np.tanh(p @ w.T), z)
    got = np.asarray(log_abs_det_jacobian(forward, z), np.float64)
    assert got.shape == (200,)
    np.testing.assert_allclose(got, expected, atol=1e-3)


@test_case(points=1, hidden=True)
def decreasing_elementwise_map(log_abs_det_jacobian):
    def forward(x):  # derivative -(3 z^2 + 1) < 0 in each coordinate
        x = tf.convert_to_tensor(x, tf.float32)
        return -(x**3) - x

    z = np.random.default_rng(41).uniform(-2, 2, size=(150, 3)).astype(np.float32)
    expected = np.sum(np.log(3 * z.astype(np.float64) ** 2 + 1), axis=1)
    np.testing.assert_allclose(np.asarray(log_abs_det_jacobian(forward, z)), expected, rtol=1e-4, atol=1e-4)


@test_case(points=1, hidden=True)
def single_point_and_rotation(log_abs_det_jacobian):
    angle = 0.7
    rotation = tf.constant([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], tf.float32)

    def forward(x):
        return 3.0 * tf.convert_to_tensor(x, tf.float32) @ tf.transpose(rotation)

    got = np.asarray(log_abs_det_jacobian(forward, np.array([[0.5, -1.5]], np.float32)))
    assert got.shape == (1,)
    np.testing.assert_allclose(got, [np.log(9.0)], atol=1e-5)
