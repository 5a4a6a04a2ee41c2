"""Flow builders: normalised densities, layer order, tracing, batch-norm modes, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from conftest import perturb

from flowlib import flows, metrics
from flowlib.bijectors import ActNorm, AffineCoupling, half_mask

tfb, tfd = tfp.bijectors, tfp.distributions


def grid_integral(flow, *, n=500, seed=0):
    """Integral of exp(log_prob) over a square grid that covers the flow's samples."""
    samples = flow.sample(20_000, seed=seed).numpy()
    half = 1.25 * np.abs(samples).max()
    xs = np.linspace(-half, half, n)
    grid = np.stack(np.meshgrid(xs, xs), -1).reshape(-1, 2).astype(np.float32)
    density = np.exp(metrics.log_prob(flow, grid))
    return density.sum() * (xs[1] - xs[0]) ** 2


@pytest.mark.parametrize("normalization", ["batchnorm", "actnorm", "none"])
def test_realnvp_density_integrates_to_one(normalization):
    flow = flows.realnvp(num_layers=4, hidden_units=(16, 16), normalization=normalization)
    perturb(flow, scale=0.25, seed=1)
    assert grid_integral(flow) == pytest.approx(1.0, abs=0.01)


def test_nice_density_integrates_to_one():
    flow = flows.nice(num_layers=4, hidden_units=(16, 16))
    perturb(flow, scale=0.25, seed=2)
    assert grid_integral(flow) == pytest.approx(1.0, abs=0.01)


def test_perturbed_flow_is_not_gaussian():
    """Guard against a vacuous integral test: the perturbed flow really reshapes the base."""
    flow = flows.realnvp(num_layers=4, hidden_units=(16, 16))
    perturb(flow, scale=0.25, seed=1)
    x = flow.sample(5000, seed=0).numpy()
    base = tfd.MultivariateNormalDiag(tf.zeros(2))
    assert abs(np.mean(metrics.log_prob(flow, x)) - np.mean(base.log_prob(x).numpy())) > 0.1


def test_fresh_flow_is_the_base_distribution():
    # Zero-initialised couplings are identities; 7 swaps compose to one swap.
    flow = flows.realnvp(num_layers=8, normalization="none")
    z = np.random.default_rng(0).standard_normal((100, 2)).astype(np.float32)
    np.testing.assert_allclose(flow.bijector.forward(z).numpy(), z[:, ::-1], atol=1e-6)
    base = tfd.MultivariateNormalDiag(tf.zeros(2))
    np.testing.assert_allclose(metrics.log_prob(flow, z), base.log_prob(z).numpy(), atol=1e-5)


def test_realnvp_layer_order_matches_the_post():
    names = [layer.name for layer in flows.layers(flows.realnvp(num_layers=8))]
    assert sum(n.startswith("affine_coupling") for n in names) == 8
    assert sum(n.startswith("batch_norm") for n in names) == 4
    assert sum(n.startswith("permute") for n in names) == 7
    assert names[0] == "affine_coupling_0" and names[-1] == "batch_norm_7"


def test_swap_mirrors_about_the_diagonal():
    permute = [
        layer for layer in flows.layers(flows.realnvp(num_layers=2)) if layer.name.startswith("permute")
    ][0]
    np.testing.assert_array_equal(permute.forward(tf.constant([[1.0, 2.0]])).numpy(), [[2.0, 1.0]])


def test_trace_ends_where_forward_ends_and_inverse_returns():
    flow = flows.realnvp(num_layers=4, hidden_units=(16, 16))
    perturb(flow, seed=4)
    z = np.random.default_rng(0).standard_normal((50, 2)).astype(np.float32)
    stages = flows.trace(flow, z)
    assert len(stages) == len(flows.layers(flow)) + 1 and stages[0][0] == "base"
    np.testing.assert_allclose(stages[-1][1], flow.bijector.forward(z).numpy(), atol=1e-5)
    back = flows.trace_inverse(flow, stages[-1][1])
    np.testing.assert_allclose(back[-1][1], z, atol=1e-4)


def test_higher_dimensions_work():
    flow = flows.realnvp(dim=6, num_layers=4, hidden_units=(16,), permutation="random", seed=3)
    perturb(flow, seed=5)
    x = flow.sample(10, seed=1)
    assert x.shape == (10, 6)
    assert np.all(np.isfinite(metrics.log_prob(flow, x.numpy())))


def manual_log_prob(flow, x):
    """Change of variables written out layer by layer: log N(z) + sum of inverse log-dets."""
    h, total = tf.constant(x), 0.0
    for layer in reversed(flows.layers(flow)):
        total += layer.inverse_log_det_jacobian(h, event_ndims=1)
        h = layer.inverse(h)
    return (tfd.MultivariateNormalDiag(tf.zeros(2)).log_prob(h) + total).numpy()


def test_training_mode_log_prob_is_the_normalised_batch_likelihood():
    flow = flows.realnvp(num_layers=4, hidden_units=(16, 16), normalization="batchnorm")
    perturb(flow, seed=6)
    x = np.random.default_rng(0).normal(1.0, 2.0, (512, 2)).astype(np.float32)
    flows.set_training(flow, True)
    first = flow.log_prob(tf.constant(x)).numpy()
    second = flow.log_prob(tf.constant(x)).numpy()  # moving averages moved in between
    np.testing.assert_allclose(first, second, atol=1e-5)
    np.testing.assert_allclose(first, manual_log_prob(flow, x), atol=1e-4)
    flows.set_training(flow, False)


def test_tfp_batch_norm_inside_a_flow_is_inconsistent_in_training_mode():
    """Documents why flowlib has its own batch norm: with tfb.BatchNormalization, log_prob
    in training mode depends on the moving averages (it changes from call to call). If this
    test starts failing, TFP fixed it and flowlib could use tfb.BatchNormalization again."""
    rng = np.random.default_rng(0)

    def mlp(seed):
        from flowlib.bijectors import MLP

        return MLP(1, 2, (16,), seed=seed, zero_last=False)

    layers = [
        AffineCoupling(half_mask(2), mlp(0)),
        tfb.BatchNormalization(),
        tfb.Permute([1, 0]),
        AffineCoupling(half_mask(2), mlp(1)),
        tfb.BatchNormalization(),
    ]
    flow = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(tf.zeros(2)), tfb.Chain(layers[::-1]))
    x = rng.normal(1.0, 2.0, (512, 2)).astype(np.float32)
    first = flow.log_prob(tf.constant(x)).numpy()
    second = flow.log_prob(tf.constant(x)).numpy()
    assert np.abs(first - second).max() > 1e-4


def test_set_training_switches_only_batch_norm_flows():
    flow = flows.realnvp(num_layers=2, normalization="batchnorm")
    assert not flows.is_training(flow)
    flows.set_training(flow, True)
    assert flows.is_training(flow)
    flows.set_training(flow, False)
    other = flows.realnvp(num_layers=2, hidden_units=(8,), normalization="actnorm")
    perturb(other, seed=2)
    x = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32)
    before = other.log_prob(tf.constant(x)).numpy()
    flows.set_training(other, True)  # no batch norm: the density does not depend on the mode
    np.testing.assert_array_equal(other.log_prob(tf.constant(x)).numpy(), before)
    flows.set_training(other, False)


def test_actnorm_initialisation_through_the_flow():
    flow = flows.realnvp(num_layers=4, hidden_units=(8,), normalization="actnorm")
    x = np.random.default_rng(0).normal([5.0, -3.0], [2.0, 0.5], (2000, 2)).astype(np.float32)
    flows.initialize_actnorm(flow, x)
    last = [layer for layer in flows.layers(flow) if isinstance(layer, ActNorm)][-1]
    z = last.inverse(tf.constant(x)).numpy()
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(z.std(0), 1.0, atol=1e-3)


def test_num_parameters_counts_weights():
    flow = flows.realnvp(num_layers=2, hidden_units=(4,), normalization="none")
    # each coupling: 1->4 (8) + 4->2 (10) = 18 parameters
    assert flows.num_parameters(flow) == 36


@pytest.mark.parametrize(
    "kwargs,error",
    [
        (dict(dim=1), ValueError),
        (dict(dim=2.0), TypeError),
        (dict(num_layers=0), ValueError),
        (dict(num_layers="8"), TypeError),
        (dict(hidden_units=()), ValueError),
        (dict(hidden_units=(64, -1)), ValueError),
        (dict(hidden_units=7), TypeError),
        (dict(normalization="layernorm"), ValueError),
        (dict(normalize_every=0), ValueError),
        (dict(permutation="shuffle"), ValueError),
        (dict(max_log_scale=-1.0), ValueError),
        (dict(num_layers=1001), ValueError),
        (dict(normalize_after=(0, 12)), ValueError),
        (dict(normalize_after=("0",)), TypeError),  # int("a") failed raw before
        (dict(normalize_after=3), TypeError),
    ],
)
def test_realnvp_rejects_bad_arguments(kwargs, error):
    with pytest.raises(error, match=next(iter(kwargs))):
        flows.realnvp(**kwargs)


def test_nice_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_layers"):
        flows.nice(num_layers=0)
    with pytest.raises(ValueError, match="permutation"):
        flows.nice(permutation="backwards")


@pytest.mark.parametrize("bad", [np.zeros((5, 3)), np.zeros(5), np.full((4, 2), np.nan)])
def test_trace_rejects_bad_points(bad):
    with pytest.raises(ValueError):
        flows.trace(flows.realnvp(num_layers=2), bad)


# --------------------------------------------------------------------------- the one-pass log-density
ONE_PASS_FLOWS = {
    **{
        f"realnvp-{n}": (lambda n=n: flows.realnvp(num_layers=4, hidden_units=(8,), normalization=n))
        for n in ("batchnorm", "actnorm", "none")
    },
    "realnvp-lu-random": lambda: flows.realnvp(
        dim=3, num_layers=3, hidden_units=(8,), permutation="lu", normalization="actnorm"
    ),
    "realnvp-random-5d": lambda: flows.realnvp(dim=5, num_layers=3, hidden_units=(8,), permutation="random"),
    "nice": lambda: flows.nice(num_layers=3, hidden_units=(8,)),
    **{
        f"spline-{n}": (
            lambda n=n: flows.spline_flow(num_layers=4, hidden_units=(8,), num_bins=5, normalization=n)
        )
        for n in ("batchnorm", "actnorm", "none")
    },
    "spline-lu-3d": lambda: flows.spline_flow(dim=3, num_layers=3, hidden_units=(8,), permutation="lu"),
    **{
        f"maf-{n}": (lambda n=n: flows.maf(num_layers=4, hidden_units=(8,), normalization=n))
        for n in ("batchnorm", "actnorm", "none")
    },
    "iaf": lambda: flows.iaf(dim=3, num_layers=3, hidden_units=(8,)),
}


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("name", list(ONE_PASS_FLOWS))
def test_one_pass_log_prob_equals_log_prob(name, training):
    flow = ONE_PASS_FLOWS[name]()
    dim = flows.event_dim(flow)
    perturb(flow, scale=0.2, seed=11)
    x = tf.constant(np.random.default_rng(0).normal(0.5, 1.5, (256, dim)).astype(np.float32))
    log_prob = flows.one_pass_log_prob(flow)
    assert log_prob is not None
    flows.set_training(flow, training)
    expected = flow.tfp_log_prob(tf.identity(x)).numpy()  # (training mode: moves the moving averages,
    flows.clear_caches(flow)
    got = log_prob(tf.identity(x)).numpy()  # which both then read the batch's statistics)
    flows.set_training(flow, False)
    assert np.all(np.isfinite(expected))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=2e-4)


def test_one_pass_log_prob_declines_unknown_layers():
    layers = [AffineCoupling(half_mask(2), hidden_units=(4,)), tfb.Exp()]
    flow = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(tf.zeros(2)), tfb.Chain(layers[::-1]))
    assert flows.one_pass_log_prob(flow) is None
    with pytest.raises(TypeError, match="Exp"):
        flows.one_pass_log_prob(flow, strict=True)


def test_lu_linear_is_learned_mixing():
    layer = flows.lu_linear(2, seed=0)
    assert len(layer.trainable_variables) == 1
    w = layer.forward(tf.eye(2)).numpy()
    np.testing.assert_allclose(w @ w.T, np.eye(2), atol=1e-5)  # starts as a rotation
    assert np.abs(w - np.diag(np.diag(w))).max() > 1e-2  # which mixes the coordinates


# --------------------------------------------------------------------------- layer seeds (issue 20)
def test_layer_seed_is_unchanged_for_small_seeds_and_mixed_beyond():
    # The layers every notebook builds (seeds 0 .. 2,147,482, up to 1000 layers): seed * 1000 + i.
    assert [flows.layer_seed(s, i) for s in (0, 1, 7) for i in (0, 1, 999)] == [
        0, 1, 999, 1000, 1001, 1999, 7000, 7001, 7999,
    ]  # fmt: skip
    assert flows.layer_seed(2_147_482, 999) == 2_147_482_999
    assert flows.layer_seed(2_147_483, 647) == 2**31 - 1  # the last one that fits
    # Beyond, a mix of seed and index: a valid seed, different per layer and per seed.
    big = [flows.layer_seed(s, i) for s in (2_147_483, 10**7, 2**31 - 2, 2**31 - 1) for i in range(648, 1000)]
    assert all(0 <= value <= 2**31 - 1 for value in big)
    assert len(set(big)) == len(big)
    with pytest.raises(ValueError, match="seed"):
        flows.layer_seed(2**31, 0)


def test_small_seeds_build_the_same_layers_as_seed_times_1000_plus_index():
    flow = flows.realnvp(num_layers=3, hidden_units=(4,), normalization="none", seed=3)
    couplings = [layer for layer in flows.layers(flow) if isinstance(layer, AffineCoupling)]
    for i, layer in enumerate(couplings):
        reference = AffineCoupling(half_mask(2), hidden_units=(4,), seed=3000 + i)
        np.testing.assert_array_equal(layer.network.kernels[0].numpy(), reference.network.kernels[0].numpy())


BUILDERS = {
    "nice": lambda seed: flows.nice(num_layers=2, hidden_units=(4,), seed=seed),
    "realnvp lu": lambda seed: flows.realnvp(num_layers=2, hidden_units=(4,), permutation="lu", seed=seed),
    "spline_flow": lambda seed: flows.spline_flow(num_layers=2, hidden_units=(4,), seed=seed),
    "maf": lambda seed: flows.maf(num_layers=2, hidden_units=(4,), seed=seed),
    "iaf": lambda seed: flows.iaf(num_layers=2, hidden_units=(4,), seed=seed),
}


@pytest.mark.parametrize("build", BUILDERS.values(), ids=BUILDERS.keys())
def test_every_documented_seed_builds_every_flow_with_distinct_layers(build):
    # seed * 1000 + i overflowed int32 before: the CLI's --seed 2147483647 gave a traceback.
    first_kernels = {}
    for seed in (2**31 - 1, 2**31 - 2, 2_147_483):
        flow = build(seed)
        kernels = [v.numpy() for v in flow.trainable_variables if v.name.endswith("kernel_0:0")]
        assert len(kernels) == 2 and not np.array_equal(kernels[0], kernels[1])
        first_kernels[seed] = kernels[0]
    assert not np.array_equal(first_kernels[2**31 - 1], first_kernels[2**31 - 2])
