"""Hidden tests for notebook 01, exercise 1: general_inverse on new dimensions, index orders and networks."""

import numpy as np
import tensorflow as tf
from otter.test_files import test_case

OK_FORMAT = False
name = "01_ex1"
points = 3


def _network(seed, num_in, num_out, as_numpy=False):
    rng = np.random.default_rng(seed)
    w1 = rng.normal(size=(num_in, 12)).astype(np.float32)
    b1 = rng.uniform(-2, 2, 12).astype(np.float32)
    w2 = rng.normal(size=(12, num_out)).astype(np.float32)
    if as_numpy:
        return lambda x: np.maximum(np.asarray(x, np.float32) @ w1 + b1, 0) @ w2
    return lambda x: tf.matmul(tf.nn.relu(tf.matmul(tf.cast(x, tf.float32), w1) + b1), w2)


def _forward(x, network, kept, changed):
    y = np.array(x, np.float32)
    y[:, changed] = x[:, changed] + np.asarray(network(x[:, kept]))
    return y


def _refuse(*args, **kwargs):
    raise AssertionError(
        "the inverse is the exercise: write it, do not hand the network to a library coupling"
    )


def _answer(general_inverse, y, network, kept, changed):
    """The answer, called while flowlib's couplings and TFP's RealNVP (which, behind a column
    reordering, do the whole exercise) refuse to run."""
    from unittest import mock

    import tensorflow_probability as tfp

    from flowlib import bijectors

    with (
        mock.patch.object(bijectors.Coupling, "forward_and_log_det", _refuse),
        mock.patch.object(bijectors.Coupling, "inverse_and_log_det", _refuse),
        mock.patch.object(tfp.bijectors.RealNVP, "_forward", _refuse),
        mock.patch.object(tfp.bijectors.RealNVP, "_inverse", _refuse),
    ):
        return general_inverse(y, network, kept, changed)


CASES = [
    (2, [1], [0]),
    (4, [2, 0], [3, 1]),
    (7, [6, 2, 4], [5, 0, 3, 1]),
    (5, [0, 1, 2, 3], [4]),
    (9, [8, 0, 6, 2, 4], [7, 1, 5, 3]),
]


@test_case(points=2, hidden=True)
def round_trips_on_new_layouts(general_inverse):
    for seed, (dim, kept, changed) in enumerate(CASES):
        rng = np.random.default_rng(2024 + seed)
        network = _network(seed, len(kept), len(changed))
        x = rng.uniform(-100, 100, (33, dim)).astype(np.float32)
        back = np.asarray(
            _answer(general_inverse, _forward(x, network, kept, changed), network, kept, changed)
        )
        np.testing.assert_allclose(
            back, x, atol=2e-3, err_msg=f"inverse(forward(x)) != x for kept {kept}, changed {changed}"
        )
        y = rng.normal(-3, 5, (19, dim)).astype(np.float32)
        again = _forward(
            np.asarray(_answer(general_inverse, y, network, kept, changed)), network, kept, changed
        )
        np.testing.assert_allclose(
            again, y, atol=1e-3, err_msg=f"forward(inverse(y)) != y for kept {kept}, changed {changed}"
        )


@test_case(points=1, hidden=True)
def numpy_network_and_untouched_input(general_inverse):
    kept, changed = [3, 1], [0, 4, 2]
    network = _network(99, 2, 3, as_numpy=True)
    x = np.random.default_rng(7).normal(size=(11, 5)).astype(np.float32)
    y = _forward(x, network, kept, changed)
    y_before = y.copy()
    back = np.asarray(_answer(general_inverse, y, network, kept, changed))
    np.testing.assert_array_equal(y, y_before, err_msg="general_inverse changed its input array in place")
    np.testing.assert_allclose(
        back, x, atol=1e-4, err_msg="wrong inverse with a network that returns NumPy arrays"
    )
