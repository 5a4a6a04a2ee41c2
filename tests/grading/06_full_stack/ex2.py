"""Hidden tests for notebook 06, exercise 2: names of the identity permutations, in flows of other dimensions and seeds."""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from otter.test_files import test_case

from flowlib import bijectors, flows

OK_FORMAT = False
name = "06_ex2"
points = 2
tfb, tfd = tfp.bijectors, tfp.distributions


def _expected(flow, dim):
    x = np.random.default_rng(0).normal(size=(10, dim)).astype(np.float32)
    return {
        layer.name
        for layer in flows.layers(flow)
        if isinstance(layer, tfb.Permute) and np.array_equal(layer.forward(x).numpy(), x)
    }


@test_case(points=1, hidden=True)
def other_dimensions_and_seeds(identity_permutations):
    for dim, seed in [(3, 2), (3, 5), (4, 6), (5, 2), (2, 12), (2, 40)]:
        flow = flows.realnvp(
            dim, num_layers=6, hidden_units=(4,), normalization="none", permutation="random", seed=seed
        )
        names = list(identity_permutations(flow))
        assert len(names) == len(set(names)), f"{dim}-D, seed {seed}: repeated names"
        assert set(names) == _expected(flow, dim), f"{dim}-D, seed {seed}"


@test_case(points=1, hidden=True)
def hand_made_chain(identity_permutations):
    layers = [
        tfb.Permute([0, 1, 2, 3, 4, 5], name="keep_all"),
        bijectors.AffineCoupling([True, False, True, False, True, False]),
        tfb.Permute([0, 1, 2, 3, 5, 4], name="swap_last_two"),
        tfb.Permute([5, 4, 3, 2, 1, 0], name="reverse"),
        tfb.Permute([0, 1, 2, 3, 4, 5], name="keep_all_again"),
    ]
    flow = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(tf.zeros(6), tf.ones(6)), tfb.Chain(layers))
    assert sorted(identity_permutations(flow)) == ["keep_all", "keep_all_again"]
