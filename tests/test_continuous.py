"""Continuous-time flows (flowlib.continuous): the log-determinant against autodiff of the
plain RK4 map, the exact trace against autodiff and TFP's, a density that integrates to one,
flow matching's loss and its held-out gap on a word, and clear errors for bad arguments. The
layer contract (tests/test_layer_contract.py) checks FFJORD's round trip, its log-det against
autodiff of its own forward, and its one-pass density like every other layer's."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from flowlib import continuous, data


def perturb(field, *, scale: float = 0.3, seed: int = 0) -> None:
    """Add seeded noise to every weight of ``field`` (a fresh field is zero: its flow is the identity)."""
    rng = np.random.default_rng(seed)
    for variable in field.variables:
        variable.assign(variable.numpy() + scale * rng.standard_normal(variable.shape).astype(np.float32))


@pytest.fixture(scope="module")
def random_field():
    field = continuous.VectorField(dim=2, hidden_units=(16, 16), seed=3)
    perturb(field, scale=0.5, seed=4)  # the last layer starts at zero: make the field non-trivial
    return field


@pytest.fixture(scope="module")
def trained_field():
    """Flow matching on the word "Flow": 3000 steps of batch 256 (about 4 s on 2 cores)."""
    target = data.PictureDistribution.from_text("Flow")
    field = continuous.VectorField(seed=0)
    continuous.fit_flow_matching(field, target.sample(50_000, seed=0), steps=3000, seed=0, progress=False)
    return target, field


def test_log_det_matches_autodiff_of_the_ode_map(random_field):
    """FFJORD's log-det (the integrated exact trace) against the Jacobian of the ODE map itself.

    The map is the same RK4 solve of the field alone, without the trace, differentiated by
    autodiff (eagerly: no second-order graph to compile)."""
    x = tf.constant(np.random.default_rng(1).normal(size=(5, 2)).astype(np.float32))
    solve = continuous.rk4_solver(32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = solve(random_field, 0.0, x, [1.0]).states[0]
        outputs = [y[:, 0], y[:, 1]]
    jacobian = tf.stack([tape.gradient(output, x) for output in outputs], axis=1).numpy().astype(np.float64)
    expected = np.log(np.abs(np.linalg.det(jacobian)))
    assert np.abs(expected).max() > 0.05, "the map should change volume"
    flow = continuous.continuous_flow(random_field, num_steps=32)
    forward, log_det = tf.function(
        lambda x: (flow.bijector.forward(x), flow.bijector.forward_log_det_jacobian(x, event_ndims=1))
    )(x)
    np.testing.assert_allclose(forward.numpy(), y.numpy(), atol=1e-5)
    np.testing.assert_allclose(log_det.numpy(), expected, atol=2e-3)


def test_exact_trace_needs_the_number_of_coordinates_when_traced():
    """A state whose last dimension is unknown at tracing time gets a ValueError saying what to
    fix, not an error from deep inside TensorFlow; with it known, the same call traces."""

    def diagonal(x):  # v(x) = sin(x) coordinate-wise: the Jacobian's diagonal is cos(x)
        return continuous.exact_trace(lambda t, y: tf.sin(y), None, None)(0.0, (x, tf.zeros(1)))[1]

    unknown = tf.function(diagonal, input_signature=[tf.TensorSpec([None, None], tf.float32)])
    with pytest.raises(ValueError, match="last dimension of the state must be known"):
        unknown.get_concrete_function()
    known = tf.function(diagonal, input_signature=[tf.TensorSpec([None, 3], tf.float32)])
    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    np.testing.assert_allclose(known(tf.constant(x)).numpy(), np.cos(x), atol=1e-6)


@pytest.mark.parametrize("compiled", [False, True])
def test_exact_trace_is_the_jacobian_diagonal_and_tfps(compiled):
    """continuous.exact_trace against autodiff's full Jacobian and TFP's trace_jacobian_exact,
    in 3-D (no symmetry between coordinates), eagerly and compiled, with its gradient too."""
    import tensorflow_probability as tfp

    field = continuous.VectorField(dim=3, hidden_units=(8,), seed=1)
    perturb(field, scale=0.5, seed=2)
    x = tf.constant(np.random.default_rng(3).normal(size=(7, 3)).astype(np.float32))

    def both(x):
        state = (x, tf.zeros(7))
        ours = continuous.exact_trace(field, None, None)(0.4, state)
        tfps = tfp.bijectors.ffjord.trace_jacobian_exact(field, None, None)(0.4, state)
        with tf.GradientTape() as tape:
            tape.watch(x)
            v = field(0.4, x)
        diagonal = tf.linalg.diag_part(tape.batch_jacobian(v, x))
        return ours, tfps, v, diagonal

    (ours_v, ours_diag), (_, tfps_diag), v, diagonal = (tf.function(both) if compiled else both)(x)
    assert np.abs(diagonal.numpy()).min() > 1e-4, "the field should have a non-trivial diagonal"
    np.testing.assert_allclose(ours_v.numpy(), v.numpy(), atol=1e-6)
    np.testing.assert_allclose(ours_diag.numpy(), diagonal.numpy(), atol=1e-5)
    np.testing.assert_allclose(ours_diag.numpy(), np.reshape(tfps_diag.numpy(), (7, 3)), atol=1e-5)

    def trace_gradient(trace_fn):
        with tf.GradientTape() as tape:
            total = tf.reduce_sum(trace_fn(field, None, None)(0.4, (x, tf.zeros(7)))[1] ** 2)
        return tape.gradient(total, field.trainable_variables)

    ours, tfps = (
        trace_gradient(continuous.exact_trace),
        trace_gradient(tfp.bijectors.ffjord.trace_jacobian_exact),
    )
    assert [a is None for a in ours] == [b is None for b in tfps]  # the last bias does not move the diagonal
    assert sum(a is not None for a in ours) >= 3
    for a, b in zip(ours, tfps):
        if a is not None:
            np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)


def test_fixed_step_and_adaptive_solvers_agree(trained_field):
    target, field = trained_field
    y = target.sample(50, seed=3)
    rk4 = tf.function(continuous.continuous_flow(field, num_steps=32).log_prob)(y).numpy()
    dopri_flow = continuous.continuous_flow(field, solver="dopri", rtol=1e-6, atol=1e-6)
    dopri = tf.function(dopri_flow.log_prob)(y).numpy()
    np.testing.assert_allclose(rk4, dopri, atol=1e-3)


def test_log_prob_is_base_density_minus_log_det(random_field):
    flow = continuous.continuous_flow(random_field, num_steps=16)
    y = np.random.default_rng(2).normal(size=(50, 2)).astype(np.float32)
    z, ildj, log_prob = tf.function(
        lambda y: (
            flow.bijector.inverse(y),
            flow.bijector.inverse_log_det_jacobian(y, event_ndims=1),
            flow.log_prob(y),
        )
    )(tf.constant(y))
    base = -0.5 * np.sum(z.numpy().astype(np.float64) ** 2, axis=1) - np.log(2 * np.pi)
    np.testing.assert_allclose(log_prob.numpy(), base + ildj.numpy(), atol=1e-4)


def test_flow_matching_loss_against_numpy():
    field = continuous.VectorField(dim=3, hidden_units=(8,), seed=1)
    perturb(field, seed=2)
    rng = np.random.default_rng(5)
    x, z = rng.normal(size=(2, 7, 3)).astype(np.float32)
    t = rng.uniform(size=7).astype(np.float32)
    x_t = (1 - t[:, None]) * z + t[:, None] * x
    v = np.stack([field(float(ti), xi[None])[0].numpy() for ti, xi in zip(t, x_t)])  # one point at a time
    expected = np.mean(np.sum((v - (x - z)) ** 2, axis=1))
    got = float(continuous.flow_matching_loss(field, x, z, t))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_trained_density_integrates_to_one(trained_field):
    _, field = trained_field
    flow = continuous.continuous_flow(field, num_steps=8)
    step = 0.05
    xs, ys = np.arange(-7, 7, step) + step / 2, np.arange(-6, 6, step) + step / 2
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2).astype(np.float32)
    log_prob = tf.function(flow.log_prob)
    density = np.concatenate(
        [np.exp(log_prob(tf.constant(grid[i : i + 20_000])).numpy()) for i in range(0, len(grid), 20_000)]
    )
    total = density.sum() * step**2
    assert abs(total - 1.0) < 0.01, f"the density integrates to {total:.4f} on the grid"


GAP_BOUND = 1.0  # nats; measured 0.79 after these 3000 steps (the untrained field, the base itself: ~2.3)


def test_flow_matching_gap_on_the_word(trained_field):
    target, field = trained_field
    flow = continuous.continuous_flow(field, num_steps=8)
    points = target.sample(5000, seed=1)
    gap = float(-np.mean(tf.function(flow.log_prob)(tf.constant(points)).numpy())) - target.entropy()
    untrained = continuous.continuous_flow(continuous.VectorField(seed=0), num_steps=2)
    untrained_gap = (
        float(-np.mean(tf.function(untrained.log_prob)(tf.constant(points)).numpy())) - target.entropy()
    )
    assert untrained_gap > 1.5
    assert 0.0 < gap < GAP_BOUND, f"held-out gap {gap:.3f} nats after 3000 flow-matching steps"


def test_sample_shape_and_finite(random_field):
    flow = continuous.continuous_flow(random_field, num_steps=4)
    samples = tf.function(lambda: flow.sample(100, seed=0))().numpy()
    assert samples.shape == (100, 2) and np.all(np.isfinite(samples))


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda f: continuous.continuous_flow(lambda t, x: x), TypeError, "vector_field"),
        (lambda f: continuous.continuous_flow(f, num_steps=0), ValueError, "num_steps"),
        (lambda f: continuous.continuous_flow(f, num_steps=2.5), TypeError, "num_steps"),
        (lambda f: continuous.continuous_flow(f, solver="euler"), ValueError, "solver"),
        (lambda f: continuous.continuous_flow(f, solver="dopri", rtol=0.0), ValueError, "rtol"),
        (lambda f: continuous.continuous_flow(f, solver="dopri", atol=2.0), ValueError, "atol"),
        (lambda f: continuous.fit_flow_matching(f, np.zeros((10, 3)), steps=5), ValueError, "data"),
        (lambda f: continuous.fit_flow_matching(f, np.zeros((10, 2)), steps=0), ValueError, "steps"),
        (
            lambda f: continuous.fit_flow_matching(f, np.zeros((10, 2)), steps=5, batch_size=-1),
            ValueError,
            "batch_size",
        ),
        (
            lambda f: continuous.fit_flow_matching(f, np.zeros((10, 2)), steps=5, max_seconds=0),
            ValueError,
            "max_seconds",
        ),
        (
            lambda f: continuous.fit_flow_matching("field", np.zeros((10, 2)), steps=5),
            TypeError,
            "vector_field",
        ),
        (
            lambda f: continuous.flow_matching_loss(np.sum, np.zeros((4, 2)), np.zeros((4, 2)), np.zeros(4)),
            TypeError,
            "vector_field",
        ),
        (lambda f: continuous.VectorField(dim=0), ValueError, "dim"),
        (lambda f: continuous.VectorField(hidden_units=(8, 0)), ValueError, "hidden_units"),
    ],
)
def test_bad_arguments_raise_clear_errors(random_field, call, error, words):
    with pytest.raises(error, match=words):
        call(random_field)


def test_the_continuous_flow_is_a_flow_whose_one_pass_log_prob_is_tfps(random_field):
    """continuous_flow returns flowlib's Flow; its log_prob (one augmented solve per point,
    map and log-determinant together) equals TFP's own TransformedDistribution.log_prob."""
    from flowlib.flow import Flow

    flow = continuous.continuous_flow(random_field, num_steps=8)
    assert isinstance(flow, Flow)
    x = tf.constant(np.random.default_rng(5).normal(1.0, 1.5, size=(33, 2)).astype(np.float32))
    ours = tf.function(flow.log_prob)(x).numpy()
    theirs = tf.function(flow.tfp_log_prob)(tf.identity(x)).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
