"""Hidden tests for notebook 05, exercise 3: the largest |s| along the inverse path, on flows of other dimensions and layers."""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from otter.test_files import test_case

from flowlib import bijectors, flows

OK_FORMAT = False
name = "05_ex3"
points = 3
tfb, tfd = tfp.bijectors, tfp.distributions


def _expected(flow, x):
    h = np.asarray(x, dtype=np.float32)
    largest = 0.0
    for layer in reversed(flows.layers(flow)):
        if isinstance(layer, bijectors.AffineCoupling):
            _, log_scale = layer.shift_and_log_scale(tf.constant(h[:, layer.mask]))
            largest = max(largest, float(np.abs(log_scale.numpy()).max()))
        h = layer.inverse(tf.constant(h)).numpy()
    return largest


def _kick(flow, seed):
    """Give every coupling network a non-zero last layer, so that the couplings act."""
    rng = np.random.default_rng(seed)
    for layer in flows.layers(flow):
        if isinstance(layer, bijectors.AffineCoupling):
            kernel = layer.network.kernels[-1]
            kernel.assign(rng.normal(scale=0.3, size=kernel.shape).astype(np.float32))
    return flow


def _check(largest_log_scale, flow, x, where):
    answer = float(largest_log_scale(flow, x))
    np.testing.assert_allclose(answer, _expected(flow, x), rtol=1e-5, err_msg=where)


@test_case(points=1, hidden=True)
def three_dimensions_random_permutations(largest_log_scale):
    flow = _kick(
        flows.realnvp(
            3,
            num_layers=3,
            hidden_units=(8,),
            normalization="none",
            permutation="random",
            max_log_scale=None,
            seed=5,
        ),
        5,
    )
    x = (
        np.random.default_rng(5)
        .normal(loc=[1.0, -2.0, 0.5], scale=[2.0, 0.5, 1.0], size=(300, 3))
        .astype(np.float32)
    )
    _check(largest_log_scale, flow, x, "3-D flow with random permutations")


@test_case(points=1, hidden=True)
def with_normalisation_layers(largest_log_scale):
    flow = _kick(flows.realnvp(2, num_layers=4, hidden_units=(8,), normalization="actnorm", seed=6), 6)
    for layer in flows.layers(flow):
        if isinstance(layer, bijectors.ActNorm):
            layer.shift.assign([0.7, -1.3])
            layer.log_scale.assign([0.9, -0.6])
    x = np.random.default_rng(6).uniform(-4, 3, size=(400, 2)).astype(np.float32)
    _check(largest_log_scale, flow, x, "2-D flow with ActNorm layers between the couplings")


@test_case(points=1, hidden=True)
def uneven_masks(largest_log_scale):
    layers = [
        bijectors.AffineCoupling(
            [False, True, False, True, True],
            bijectors.MLP(3, 4, (8,), seed=1, zero_last=False),
            max_log_scale=1.5,
        ),
        tfb.Permute([4, 2, 0, 1, 3]),
        bijectors.AffineCoupling(
            [True, False, False, False, False],
            bijectors.MLP(1, 8, (8,), seed=2, zero_last=False),
            max_log_scale=None,
        ),
    ]
    flow = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(tf.zeros(5), tf.ones(5)), tfb.Chain(layers))
    x = np.random.default_rng(7).normal(scale=[3.0, 0.2, 1.0, 2.0, 0.5], size=(250, 5)).astype(np.float32)
    _check(largest_log_scale, flow, x, "5-D flow with uneven masks")


@test_case(points=1, hidden=True)
def the_largest_in_any_coupling(largest_log_scale):
    # one coupling at a time acts strongly, so that the largest |s| sits first, in the middle or last
    x = (
        np.random.default_rng(8)
        .normal(loc=[0.5, -1.0, 2.0], scale=[1.0, 3.0, 0.4], size=(200, 3))
        .astype(np.float32)
    )
    for strong in range(3):
        flow = flows.realnvp(
            3,
            num_layers=3,
            hidden_units=(8,),
            normalization="none",
            permutation="random",
            max_log_scale=None,
            seed=9,
        )
        rng = np.random.default_rng(10 + strong)
        couplings = [layer for layer in flows.layers(flow) if isinstance(layer, bijectors.AffineCoupling)]
        for k, layer in enumerate(couplings):
            kernel = layer.network.kernels[-1]
            scale = 0.8 if k == strong else 0.05
            kernel.assign(rng.normal(scale=scale, size=kernel.shape).astype(np.float32))
        _check(largest_log_scale, flow, x, f"3-D flow whose coupling {strong} acts strongly")
