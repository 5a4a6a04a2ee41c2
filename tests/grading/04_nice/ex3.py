"""Hidden tests for notebook 04, exercise 3: the trained word_flow is a NICE flow that beats its floor on fresh points."""

import inspect
import sys
from pathlib import Path

import numpy as np
import tensorflow_probability as tfp
from otter.test_files import test_case

from flowlib import bijectors, flows

tfb = tfp.bijectors

OK_FORMAT = False
name = "04_ex3"
points = 6


def _steps_fit_runs(steps):
    """The steps ``train.fit(steps=steps)`` runs in this kernel: all of them, or, when the test
    harness's fast mode (tests/harness/fast_mode.py) is installed and on, its shortened count."""
    harness = sys.modules.get("flowlib_test_harness_fast_mode")  # registered by its IPython start-up
    return harness.steps_run_for(steps) if harness is not None else steps


def _floor(target):
    delta = target.pixel_size
    left, _, _, top = target.extent
    share = target.ink.sum(axis=0) / target.ink.sum()
    x = left + (np.arange(target.ink.shape[1]) + 0.5) * delta
    y = top - (np.arange(target.ink.shape[0]) + 0.5) * delta
    m2 = np.sum(share * x**2) + delta**2 / 12
    var = np.array([np.var(y[c]) if c.any() else 0.0 for c in target.ink.T])
    v = np.sum(share * var) + delta**2 / 12
    return (
        0.5 * np.log(2 * np.pi * np.e * m2)
        + 0.5 * np.log(2 * np.pi * np.e * v)
        - np.log(np.count_nonzero(target.ink) * delta**2)
    )


def _replaced_functions(module_name):
    """The module-level functions of flowlib's ``module_name`` whose code, in this kernel, is
    not the code of the module's file: a submission that replaced ``train.fit`` (to train
    longer than the budget, say) shows here. The test harness's fast-mode wrapper
    (tests/harness/fast_mode.py) is looked through."""
    module = sys.modules[module_name]
    source = Path(module.__file__).read_text()
    compiled = compile(source, module.__file__, "exec")
    on_disk = {const.co_name: const for const in compiled.co_consts if inspect.iscode(const)}
    harness = sys.modules.get("flowlib_test_harness_fast_mode")
    harness_file = Path(harness.__file__).resolve() if harness is not None else None
    replaced = []
    for name, code in on_disk.items():
        current = getattr(module, name, None)
        if inspect.isclass(current):
            continue
        if getattr(current, "__flowlib_fast_mode__", False) and harness_file is not None:
            if Path(inspect.getfile(current)).resolve() == harness_file:
                current = current.__wrapped__
        found = getattr(current, "__code__", None)
        if found is None or (found.co_code, found.co_consts) != (code.co_code, code.co_consts):
            replaced.append(name)
    return replaced


@test_case(points=1, hidden=True)
def trained_by_flowlib_itself(word_flow):
    replaced = _replaced_functions("flowlib.train")
    assert not replaced, f"flowlib's training was replaced in this notebook ({', '.join(replaced)})"


@test_case(points=1, hidden=True)
def only_nice_layers(word_flow):
    kinds = (bijectors.AdditiveCoupling, tfb.Permute, tfb.ScaleMatvecDiag)
    layers = flows.layers(word_flow)
    assert all(isinstance(layer, kinds) for layer in layers), "not a NICE flow"
    order, transformed = np.arange(2), set()
    for layer in layers:
        if isinstance(layer, tfb.Permute):
            order = order[np.asarray(layer.permutation)]
        elif isinstance(layer, bijectors.AdditiveCoupling):
            transformed |= set(order[~np.asarray(layer.mask, dtype=bool)].tolist())
    assert transformed == {0, 1}, "the couplings never transform one of the coordinates"


@test_case(points=1, hidden=True)
def positive_learning_rate(word_learning_rate):
    assert np.isfinite(word_learning_rate) and word_learning_rate > 0, "the learning rate should be positive"


@test_case(points=1, hidden=True)
def trained_by_the_cell_within_the_budget(word_history):
    allowed = _steps_fit_runs(4000)  # the steps train.fit runs for the notebook's budget of 4000
    assert 0 < word_history.steps <= allowed, (
        f"{word_history.steps} training steps: the budget allows {allowed}"
    )


@test_case(points=1, hidden=True)
def standard_normal_base(word_flow):
    probe = np.random.default_rng(5).normal(scale=2.0, size=(200, 2)).astype(np.float32)
    expected = -0.5 * np.sum(probe.astype(np.float64) ** 2, axis=1) - np.log(2 * np.pi)
    np.testing.assert_allclose(word_flow.distribution.log_prob(probe).numpy(), expected, atol=1e-4)


@test_case(points=1, hidden=True)
def beats_floor_on_fresh_points(word_flow, word):
    fresh = word.sample(10_000, seed=123)
    # the gap computed here, from the ink itself: held-out NLL minus log(ink area)
    entropy = np.log(np.count_nonzero(word.ink) * word.pixel_size**2)
    gap = -np.mean(word_flow.log_prob(fresh).numpy().astype(np.float64)) - entropy
    assert gap < _floor(word), f"gap {gap:.3f} on fresh points is not below the permutation-free floor"
    fit = word.sample(20_000, seed=124).astype(np.float64)
    mean, covariance = fit.mean(axis=0), np.cov(fit, rowvar=False)
    centred = fresh - mean
    mahalanobis = np.sum(centred * np.linalg.solve(covariance, centred.T).T, axis=1)
    gaussian_gap = np.mean(0.5 * mahalanobis) + 0.5 * np.log(np.linalg.det(2 * np.pi * covariance)) - entropy
    assert gap < gaussian_gap, "not below the fitted Gaussian"
