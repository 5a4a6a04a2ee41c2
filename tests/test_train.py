"""Training lowers the NLL; the guard never leaves non-finite weights behind."""

from __future__ import annotations

import time

import numpy as np
import pytest
import tensorflow as tf

from flowlib import flows, metrics, train


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    # two Gaussian blobs: a small problem a small flow learns in a few hundred steps
    centres = rng.choice([-2.0, 2.0], size=(4000, 1))
    points = np.concatenate(
        [centres + 0.3 * rng.standard_normal((4000, 1)), 0.5 * rng.standard_normal((4000, 1))], axis=1
    )
    return points.astype(np.float32)


@pytest.mark.parametrize("normalization", ["batchnorm", "actnorm", "none"])
def test_fit_lowers_the_held_out_nll(data, normalization):
    flow = flows.realnvp(num_layers=4, hidden_units=(32, 32), normalization=normalization, seed=1)
    held_out = data[:1000]
    before = metrics.nll(flow, held_out)
    history = train.fit(flow, data[1000:], steps=300, batch_size=256, learning_rate=3e-3, progress=False)
    after = metrics.nll(flow, held_out)
    assert history.steps == 300 and len(history.loss) == 300 and not history.stopped
    assert after < before - 0.5, (before, after)
    assert np.mean(history.loss[-50:]) < np.mean(history.loss[:50])
    assert not flows.is_training(flow)  # back in evaluation mode


@pytest.mark.parametrize(
    "build",
    [
        lambda: flows.spline_flow(num_layers=2, hidden_units=(16,), num_bins=6),
        lambda: flows.realnvp(num_layers=2, hidden_units=(16,), normalization="batchnorm"),
        lambda: flows.maf(num_layers=2, hidden_units=(16,), normalization="actnorm"),
    ],
    ids=["spline", "realnvp-batchnorm", "maf-actnorm"],
)
def test_xla_steps_equal_plain_steps(data, build):
    """fit(jit_compile=True) (the headline's setting) takes the same steps as without XLA."""
    losses, log_densities = [], []
    for jit_compile in (False, True):
        flow = build()
        untrained = flow.log_prob(data[:256]).numpy()
        history = train.fit(
            flow,
            data,
            steps=40,
            steps_per_call=20,
            learning_rate=3e-3,
            seed=3,
            jit_compile=jit_compile,
            progress=False,
        )
        losses.append(np.asarray(history.loss))
        log_densities.append(flow.log_prob(data[:256]).numpy())
    # the weights moved, so the comparison is not vacuous
    assert np.mean(np.abs(log_densities[0] - untrained)) > 0.05
    np.testing.assert_allclose(losses[1], losses[0], rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(log_densities[1], log_densities[0], rtol=2e-3, atol=2e-3)


def test_fit_is_repeatable_with_a_seed(data):
    results = []
    for _ in range(2):
        flow = flows.realnvp(num_layers=2, hidden_units=(16,), normalization="none", seed=0)
        results.append(train.fit(flow, data, steps=50, batch_size=128, seed=5, progress=False).loss)
    np.testing.assert_allclose(results[0], results[1], rtol=1e-4)


def test_validation_is_recorded(data):
    flow = flows.realnvp(num_layers=2, hidden_units=(16,), normalization="none")
    history = train.fit(flow, data, steps=60, steps_per_call=20, validation_data=data[:500], progress=False)
    assert history.validation_steps == [20, 40, 60]
    assert len(history.validation_nll) == 3 and all(np.isfinite(history.validation_nll))


def all_finite(flow):
    return all(np.all(np.isfinite(v.numpy())) for v in flow.variables if v.dtype.is_floating)


def test_guard_rescues_an_absurd_learning_rate(data):
    flow = flows.realnvp(num_layers=4, hidden_units=(32, 32), normalization="batchnorm", max_log_scale=None)
    history = train.fit(
        flow, data * 50, steps=200, learning_rate=50.0, schedule="constant", max_retries=30, progress=False
    )
    assert history.rescues >= 1, "the absurd learning rate did not trigger the guard: test is vacuous"
    assert all(event.startswith(("rescue", "stopped")) for event in history.events)
    assert history.learning_rate < 50.0
    assert all_finite(flow)
    assert np.all(np.isfinite(history.loss))  # only losses of steps that were kept
    assert np.isfinite(metrics.nll(flow, data[:100] * 50))


def test_guard_stops_when_out_of_retries(data):
    flow = flows.realnvp(num_layers=4, hidden_units=(32, 32), normalization="none", max_log_scale=None)
    history = train.fit(
        flow, data * 50, steps=300, learning_rate=1e4, schedule="constant", max_retries=0, progress=False
    )
    assert history.stopped and history.steps < 300
    assert history.events and history.events[-1].startswith("stopped")
    assert all_finite(flow)


def test_time_budget_stops_training(data):
    flow = flows.realnvp(num_layers=2, hidden_units=(8,), normalization="none")
    history = train.fit(flow, data, steps=100_000, steps_per_call=10, max_seconds=0.5, progress=False)
    assert history.stopped and 0 < history.steps < 100_000


@pytest.mark.parametrize(
    "kwargs,error",
    [
        (dict(steps=0), ValueError),
        (dict(steps=1.5), TypeError),
        (dict(batch_size=-1), ValueError),
        (dict(learning_rate=0.0), ValueError),
        (dict(learning_rate=float("nan")), ValueError),
        (dict(schedule="linear"), ValueError),
        (dict(steps_per_call=0), ValueError),
        (dict(max_retries=-1), ValueError),
        (dict(max_seconds=0), ValueError),
    ],
)
def test_fit_rejects_bad_arguments(data, kwargs, error):
    flow = flows.realnvp(num_layers=2, hidden_units=(8,))
    with pytest.raises(error):
        train.fit(flow, data, progress=False, **kwargs)


@pytest.mark.parametrize(
    "bad,match",
    [
        (np.zeros((10, 3)), "shape"),
        (np.zeros(10), "shape"),
        (np.array([[0.0, np.nan]] * 4), "NaN"),
        (np.zeros((1, 2)), "at least 2"),
        (np.array([["a", "b"]] * 4), "numeric"),
    ],
)
def test_fit_rejects_bad_data(bad, match):
    flow = flows.realnvp(num_layers=2, hidden_units=(8,))
    with pytest.raises((ValueError, TypeError), match=match):
        train.fit(flow, bad, steps=1, progress=False)


def test_callback_sees_every_kept_call(data):
    seen = []
    flow = flows.realnvp(num_layers=2, hidden_units=(8,), normalization="none")
    history = train.fit(
        flow,
        data,
        steps=50,
        steps_per_call=20,
        progress=False,
        callback=lambda step, losses: seen.append((step, len(losses))),
    )
    assert seen == [(20, 20), (40, 20), (50, 10)]
    assert history.steps == 50


def test_repeated_fits_do_not_leak_traced_graphs(data):
    """TFP's global bijector cache kept every traced graph of a finished fit alive (~16 MB
    per fit; notebook 07's sweep grew past 4 GB). Graphs are counted, not memory: with the
    cache left full, each of these fits leaves 5 graphs behind."""
    import gc

    import tensorflow as tf

    def live_graphs():
        gc.collect()
        return sum(isinstance(thing, tf.Graph) for thing in gc.get_objects())

    def one_fit(seed):
        flow = flows.realnvp(num_layers=2, hidden_units=(8,), seed=seed)
        train.fit(flow, data, steps=20, steps_per_call=10, progress=False)

    one_fit(0)  # graphs made once per process
    before = live_graphs()
    one_fit(1)
    one_fit(2)
    assert live_graphs() <= before, f"{live_graphs() - before} traced graphs outlived their fits"


def test_fit_trains_the_steps_it_is_asked_whatever_the_environment(data, monkeypatch):
    """The notebooks' fast mode is the test harness's (tests/harness/): flowlib ignores its switch."""
    monkeypatch.setenv("FLOWLIB_FAST", "1")
    monkeypatch.setenv("CI", "true")
    flow = flows.realnvp(num_layers=2, hidden_units=(16,), normalization="none", seed=0)
    history = train.fit(flow, data, steps=60, batch_size=64, steps_per_call=10, progress=False)
    assert history.steps == 60 and len(history.loss) == 60


def test_fit_refuses_a_layer_without_one_pass_inverse_and_never_warns(data):
    """No slower path: a layer a Flow cannot walk is refused before any work, naming the
    layer and the fix; flowlib's flows and hand-built ones of supported layers train silently."""
    import warnings

    import tensorflow as tf
    import tensorflow_probability as tfp

    from flowlib.bijectors import AffineCoupling, half_mask

    tfb, tfd = tfp.bijectors, tfp.distributions
    shift = tf.Variable([0.0, 0.0])
    layers = [
        AffineCoupling(half_mask(2), hidden_units=(8,)),
        tfb.Shift(shift),
        tfb.Invert(tfb.Permute([1, 0])),
    ]
    flow = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(tf.zeros(2)), tfb.Chain(layers[::-1]))
    with pytest.raises(TypeError, match="Invert.*no one-pass inverse.*FlowBijector"):
        train.fit(flow, data, steps=20, steps_per_call=10, progress=False)
    np.testing.assert_array_equal(shift.numpy(), [0.0, 0.0])  # nothing trained
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hand_built = tfd.TransformedDistribution(
            tfd.MultivariateNormalDiag(tf.zeros(2)), tfb.Chain(layers[1::-1])
        )
        history = train.fit(hand_built, data, steps=20, steps_per_call=10, progress=False)
        assert history.steps == 20 and np.all(np.isfinite(history.loss))
        assert np.abs(shift.numpy()).max() > 0  # the hand-built flow's own variable moved
        for build in (flows.realnvp, flows.spline_flow, flows.maf):
            train.fit(
                build(num_layers=2, hidden_units=(8,)), data, steps=10, steps_per_call=10, progress=False
            )


def test_fused_adam_matches_the_reference_update():
    """train.Adam (fused ResourceApplyAdam) against Adam written out in float64 numpy."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    start = rng.standard_normal((3, 4)).astype(np.float32)
    variable = tf.Variable(start)
    optimizer = train.Adam([variable], 0.01)
    w, m, v = start.astype(np.float64), np.zeros((3, 4)), np.zeros((3, 4))
    for t in range(1, 7):
        gradient = rng.standard_normal((3, 4)).astype(np.float32)
        optimizer.apply([tf.constant(gradient)])
        m = 0.9 * m + 0.1 * gradient
        v = 0.999 * v + 0.001 * gradient.astype(np.float64) ** 2
        rate = 0.01 * np.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        w = w - rate * m / (np.sqrt(v) + 1e-7)
    assert np.abs(w - start).max() > 0.01, "the update did nothing: test is vacuous"
    np.testing.assert_allclose(variable.numpy(), w, rtol=1e-5, atol=1e-6)


def test_fit_owns_its_defaults_and_the_affine_recipe_states_the_same():
    """train does not read flowlib.recipe (the engine does not depend on the app); the
    affine recipe and a bare Recipe state the same optimiser settings as fit's defaults."""
    import inspect

    from flowlib import recipe

    parameters = inspect.signature(train.fit).parameters
    assert parameters["learning_rate"].default == train.DEFAULT_LEARNING_RATE == 7e-4
    assert parameters["batch_size"].default == train.DEFAULT_BATCH_SIZE == 256
    for chosen in (recipe.AFFINE, recipe.Recipe()):
        assert (chosen.learning_rate, chosen.batch_size) == (
            train.DEFAULT_LEARNING_RATE,
            train.DEFAULT_BATCH_SIZE,
        )
    assert "recipe" not in train.__dict__


def _parts(flow, learning_rate=0.01, schedule="constant", steps=10):
    optimizer = train.Adam(flow.trainable_variables, learning_rate)
    rate = train._LearningRate(learning_rate, schedule, steps)
    return optimizer, rate


def test_the_guard_alone_restores_the_saved_state_and_halves_the_rate():
    """_Guard without the loop: a non-finite loss brings back the saved weights and
    optimizer moments, halves the rate and records a rescue; out of retries it stops."""
    flow = flows.realnvp(num_layers=2, hidden_units=(8,), normalization="none", seed=0)
    optimizer, rate = _parts(flow, learning_rate=0.4)
    state = list(flow.variables) + optimizer.variables
    events = []
    guard = train._Guard(flow, state, rate, max_retries=1, report=events.append)
    guard.save()
    saved = [v.numpy().copy() for v in state]
    for variable in flow.trainable_variables:
        variable.assign(variable + 1.0)
    optimizer.iterations.assign(7.0)
    assert guard.judge(np.array([1.0, 2.0]), True, step=30, steps=100) == "keep"
    assert float(optimizer.iterations.numpy()) == 7.0 and not events  # a healthy call is left alone
    assert guard.judge(np.array([1.0, np.nan, 3.0]), True, step=30, steps=100) == "retry"
    for variable, before in zip(state, saved):
        np.testing.assert_array_equal(variable.numpy(), before)
    assert float(rate.base.numpy()) == np.float32(0.2)
    assert events == [
        "rescue 1: loss became nan at step 31; restored the weights of step 30 and halved the learning rate to 0.2"
    ]
    # finite losses but non-finite weights are rescued too; the second rescue is one too many
    flow.trainable_variables[0].assign(flow.trainable_variables[0] * np.inf)
    assert guard.judge(np.array([1.0, 2.0]), False, step=30, steps=100) == "stop"
    assert all_finite(flow) and float(rate.base.numpy()) == np.float32(0.2)
    assert events[-1].startswith("stopped: the loss was still 2.0 after 1 rescues; kept 30 of 100 steps")


def test_the_compiled_steps_alone_are_seeded_and_report_non_finite_weights(data):
    """_compile_steps without the guard or the loop: the same (seed, step) gives the same
    batches, so two flows built alike take the same losses; the finiteness flag is honest."""
    results = []
    for _ in range(2):
        flow = flows.realnvp(num_layers=2, hidden_units=(8,), normalization="none", seed=0)
        optimizer, rate = _parts(flow)
        call = train._compile_steps(flow.log_prob, optimizer, rate, data, batch_size=32, seed=3)
        losses, finite = call(tf.constant(5, tf.int32), tf.constant(4, tf.int32))
        assert losses.shape == (4,) and bool(finite.numpy())
        results.append(losses.numpy())
    np.testing.assert_array_equal(results[0], results[1])
    assert float(optimizer.iterations.numpy()) == 4.0
    flow.trainable_variables[0].assign(flow.trainable_variables[0] * np.nan)
    _, finite = call(tf.constant(0, tf.int32), tf.constant(1, tf.int32))
    assert not bool(finite.numpy())


def test_the_learning_rate_alone_follows_the_cosine_and_the_time_budget():
    rate = train._LearningRate(0.1, "cosine", total_steps=100)
    at = [float(rate.at(tf.constant(step)).numpy()) for step in (0, 50, 100)]
    np.testing.assert_allclose(at, [0.1, 0.05, 0.0], atol=1e-7)
    rate.time_fraction.assign(0.5)  # schedule_by_time: half the budget spent at step 0
    assert float(rate.at(tf.constant(0)).numpy()) == pytest.approx(0.05)
    rate.halve()
    assert float(rate.at(tf.constant(100)).numpy()) == pytest.approx(0.0, abs=1e-8)
    constant = train._LearningRate(0.1, "constant", total_steps=100)
    assert float(constant.at(tf.constant(99)).numpy()) == pytest.approx(0.1)


def test_the_loop_alone_retries_keeps_and_stops_as_the_guard_says():
    """_loop with a stand-in for the compiled steps and the guard: a retried call is run
    again from the same step and its losses are not kept; a stop ends training."""
    calls, verdicts = [], iter(["keep", "retry", "keep", "stop"])

    def call(first_step, num_steps):
        calls.append((int(first_step), int(num_steps)))
        return tf.fill([num_steps], float(len(calls))), tf.constant(True)

    class Guard:
        def judge(self, losses, weights_finite, step, steps):
            return next(verdicts)

    plan = train._check_arguments(
        steps=50, batch_size=8, learning_rate=0.1, schedule="constant", seed=0, steps_per_call=20, max_retries=4,
        max_seconds=None, jit_compile=False, progress=False, schedule_by_time=False, callback=None,
    )  # fmt: skip
    history = train.History()
    rate = train._LearningRate(0.1, "constant", 50)
    step = train._loop(call, Guard(), rate, plan, train._Progress(history, 50, False), start=0.0)
    assert calls == [(0, 20), (20, 20), (20, 20), (40, 10)]
    assert step == 40 and history.stopped
    assert history.loss == [1.0] * 20 + [3.0] * 20 and len(history.times) == 2


def test_a_time_budget_spent_by_the_set_up_still_trains_one_call_at_the_peak_rate(data):
    """schedule_by_time with a budget already spent before the loop: the first call must run
    at the peak rate (it used to run at rate 0: steps counted, weights unchanged)."""
    fractions = []
    rate = train._LearningRate(0.1, "cosine", 1000)

    def call(first_step, num_steps):
        fractions.append(float(rate.time_fraction.numpy()))
        return tf.fill([num_steps], 1.0), tf.constant(True)

    class Guard:
        def judge(self, losses, weights_finite, step, steps):
            return "keep"

    plan = train._check_arguments(
        steps=1000, batch_size=8, learning_rate=0.1, schedule="cosine", seed=0, steps_per_call=10, max_retries=4,
        max_seconds=1.0, jit_compile=False, progress=False, schedule_by_time=True, callback=None,
    )  # fmt: skip
    history = train.History()
    start = time.perf_counter() - 5.0  # the set-up took 5 s of a 1 s budget
    step = train._loop(call, Guard(), rate, plan, train._Progress(history, 1000, False), start=start)
    assert fractions == [0.0] and step == 10 and history.stopped

    flow = flows.realnvp(num_layers=2, hidden_units=(8,), normalization="none", seed=0)
    before = [v.numpy().copy() for v in flow.trainable_variables]
    history = train.fit(flow, data, steps=1000, steps_per_call=10, max_seconds=1e-6, schedule_by_time=True,
                        progress=False)  # fmt: skip
    assert history.steps == 10 and history.stopped
    assert any(not np.array_equal(b, v.numpy()) for b, v in zip(before, flow.trainable_variables))
