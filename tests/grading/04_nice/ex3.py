"""Hidden tests for notebook 04, exercise 3: the trained word_flow is a NICE flow that beats its floor on fresh points."""

import numpy as np
import tensorflow_probability as tfp
from otter.test_files import test_case

from flowlib import bijectors, config, flows, metrics

tfb = tfp.bijectors
tfd = tfp.distributions

OK_FORMAT = False
name = "04_ex3"
points = 4


def _floor(target):
    delta = target.pixel_size
    left, _, _, top = target.extent
    share = target.ink.sum(axis=0) / target.ink.sum()
    x = left + (np.arange(target.ink.shape[1]) + 0.5) * delta
    y = top - (np.arange(target.ink.shape[0]) + 0.5) * delta
    m2 = np.sum(share * x**2) + delta**2 / 12
    var = np.array([np.var(y[c]) if c.any() else 0.0 for c in target.ink.T])
    v = np.sum(share * var) + delta**2 / 12
    return 0.5 * np.log(2 * np.pi * np.e * m2) + 0.5 * np.log(2 * np.pi * np.e * v) - target.entropy()


@test_case(points=1, hidden=True)
def only_nice_layers(word_flow):
    kinds = (bijectors.AdditiveCoupling, tfb.Permute, tfb.ScaleMatvecDiag)
    layers = flows.layers(word_flow)
    assert all(isinstance(layer, kinds) for layer in layers), "not a NICE flow"
    assert sum(isinstance(layer, bijectors.AdditiveCoupling) for layer in layers) >= 2, (
        "NICE needs several couplings"
    )


@test_case(points=1, hidden=True)
def trained_by_the_cell_within_the_budget(word_history):
    allowed = config.shortened(4000)  # the steps train.fit runs for the notebook's budget of 4000
    assert 0 < word_history.steps <= allowed, (
        f"{word_history.steps} training steps: the budget allows {allowed}"
    )


@test_case(points=1, hidden=True)
def beats_floor_on_fresh_points(word_flow, word):
    fresh = word.sample(20_000, seed=123)
    result = metrics.evaluate(word_flow, word, fresh)
    assert result.gap < _floor(word), (
        f"gap {result.gap:.3f} on fresh points is not below the permutation-free floor"
    )
    fit = word.sample(20_000, seed=124)
    gaussian = tfd.MultivariateNormalTriL(
        loc=fit.mean(axis=0), scale_tril=np.linalg.cholesky(np.cov(fit, rowvar=False)).astype(np.float32)
    )
    assert result.gap < metrics.evaluate(gaussian, word, fresh).gap, "not below the fitted Gaussian"
