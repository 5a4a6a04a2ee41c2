"""The Flow class: every builder returns one, its one-pass log_prob is TFP's density, it owns
its train/eval switch and its checkpoints, and it refuses a layer it cannot walk in one pass."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from conftest import perturb

from flowlib import checkpoint, flows, images, metrics, recipe, train
from flowlib.bijectors import AffineCoupling, half_mask
from flowlib.flow import Flow

tfb, tfd = tfp.bijectors, tfp.distributions

SMALL = dict(num_layers=4, hidden_units=(8,), seed=3)

BUILDERS = {
    "nice": lambda: flows.nice(**SMALL),
    "realnvp-batchnorm": lambda: flows.realnvp(normalization="batchnorm", **SMALL),
    "realnvp-actnorm-lu": lambda: flows.realnvp(normalization="actnorm", permutation="lu", **SMALL),
    "spline": lambda: flows.spline_flow(3, **SMALL),
    "maf": lambda: flows.maf(3, normalization="batchnorm", **SMALL),
    "iaf": lambda: flows.iaf(**SMALL),
    "recipe-affine": lambda: recipe.AFFINE.replace(num_layers=2, hidden_units=(8,)).build(seed=1),
    "recipe-spline": lambda: recipe.SPLINE.replace(num_layers=2, hidden_units=(8,)).build(seed=1),
    "multiscale": lambda: (
        images.multiscale_flow(4, 4, 1, num_scales=1, couplings_per_block=1, final_couplings=1, hidden=8).flow
    ),
    "with-preprocessing": lambda: images.with_preprocessing(
        images.multiscale_flow(4, 4, 1, num_scales=1, couplings_per_block=1, final_couplings=1, hidden=8).flow
    ),
}


def points_for(flow: Flow, n: int = 96, seed: int = 0) -> tf.Tensor:
    """Data-side points the flow gives a finite density (in (0, 1) for the Logit model)."""
    rng = np.random.default_rng(seed)
    if flow.name == "image_model":
        return tf.constant(rng.uniform(0.02, 0.98, (n, flow.dim)).astype(np.float32))
    return tf.constant((rng.normal(0.3, 1.4, (n, flow.dim))).astype(np.float32))


@pytest.mark.parametrize("name", list(BUILDERS))
def test_builders_return_a_flow_whose_layers_run_in_forward_order(name):
    flow = BUILDERS[name]()
    assert isinstance(flow, Flow) and isinstance(flow, tfd.TransformedDistribution)
    assert flows.layers(flow) == flow.layers and len(flow.layers) >= 2
    z = tf.constant(np.random.default_rng(1).normal(size=(5, flow.dim)).astype(np.float32))
    h = z
    for layer in flow.layers:  # latent to data, one layer after the other
        h = layer.forward(h)
    np.testing.assert_allclose(h.numpy(), flow.bijector.forward(tf.identity(z)).numpy(), atol=1e-5)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_log_prob_equals_tfps_transformed_distribution(name):
    flow = BUILDERS[name]()
    perturb(flow, scale=0.1, seed=5)
    x = points_for(flow)
    for training in (False, True):
        flow.train(training)
        expected = tfd.TransformedDistribution.log_prob(flow, tf.identity(x)).numpy()  # TFP's two walks
        flow.clear_caches()
        got = flow.log_prob(tf.identity(x)).numpy()
        assert got.shape == (len(x),) and np.all(np.isfinite(expected))
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=2e-4)
        np.testing.assert_allclose(flow.tfp_log_prob(tf.identity(x)).numpy(), expected, rtol=1e-6, atol=1e-5)
    flow.train(False)


def test_log_prob_runs_each_network_once():
    flow = flows.realnvp(num_layers=3, hidden_units=(8,), normalization="none", seed=0)
    couplings = [layer for layer in flow.layers if isinstance(layer, AffineCoupling)]
    calls = []
    for layer in couplings:
        network = layer.network
        layer.network = lambda h, network=network: calls.append(1) or network(h)
    x = tf.constant(np.random.default_rng(0).normal(size=(4, 2)).astype(np.float32))
    flow.log_prob(x)
    assert len(calls) == len(couplings)
    calls.clear()
    flow.tfp_log_prob(tf.identity(x))
    assert len(calls) == 2 * len(couplings)  # TFP: inverse, then inverse_log_det_jacobian


def test_train_switch_changes_batch_norm_behaviour():
    flow = flows.realnvp(num_layers=4, hidden_units=(8,), normalization="batchnorm", seed=0)
    perturb(flow, scale=0.2, seed=2)
    assert not flow.training and not flows.is_training(flow)
    rng = np.random.default_rng(4)
    x = rng.normal(2.0, 3.0, (64, 2)).astype(np.float32)
    evaluation = flow.log_prob(x).numpy()
    np.testing.assert_allclose(flow.log_prob(x[:1]).numpy(), evaluation[:1], rtol=1e-5)  # batch-free
    assert flow.train(True) is flow and flow.training and flows.is_training(flow)
    in_batch = flow.log_prob(x).numpy()
    alone = flow.log_prob(x[:2]).numpy()  # the batch's statistics: a point's value moves with its batch
    assert np.abs(in_batch - evaluation).max() > 1e-2
    assert np.abs(alone - in_batch[:2]).max() > 1e-2
    flows.set_training(flow, False)  # the thin function over flow.train
    assert not flow.training
    with pytest.raises(TypeError, match="mode"):
        flow.train("yes")


def test_metrics_share_the_chunked_helper_and_restore_the_mode():
    flow = flows.realnvp(num_layers=2, hidden_units=(8,), normalization="batchnorm", seed=0)
    perturb(flow, scale=0.2, seed=3)
    x = np.random.default_rng(5).normal(size=(50, 2)).astype(np.float32)
    whole = flow.log_prob(x).numpy().astype(np.float64)
    flow.train(True)
    chunked = metrics.log_prob(flow, x, batch_size=7)  # evaluation mode inside, 8 chunks
    assert flow.training  # switched back
    flow.train(False)
    np.testing.assert_allclose(chunked, whole, rtol=1e-6, atol=1e-6)


def test_save_and_load_round_trip(tmp_path):
    flow = flows.spline_flow(num_layers=2, hidden_units=(8,), seed=0)
    perturb(flow, scale=0.2, seed=1)
    x = points_for(flow, n=20)
    expected = flow.log_prob(x).numpy()
    assert flow.save(tmp_path / "spline") == tmp_path / "spline"
    other = flows.spline_flow(num_layers=2, hidden_units=(8,), seed=0)
    assert np.abs(other.log_prob(x).numpy() - expected).max() > 1e-3  # not already equal
    assert other.load(tmp_path / "spline") is other
    np.testing.assert_array_equal(other.log_prob(x).numpy(), expected)
    with pytest.raises(checkpoint.CheckpointError):
        flows.spline_flow(num_layers=3, hidden_units=(8,), seed=0).load(tmp_path / "spline")


def test_a_hand_built_distribution_converts_and_shares_its_variables():
    layers = [
        AffineCoupling(half_mask(2), hidden_units=(8,), seed=1),
        tfb.Permute([1, 0]),
        tfb.Shift([0.5, -1.0]),
    ]
    td = tfd.TransformedDistribution(flows.standard_normal(2), tfb.Chain(layers[::-1]))
    perturb(td, scale=0.2, seed=4)
    flow = flows.as_flow(td)
    assert isinstance(flow, Flow) and flow.layers == layers and flows.as_flow(flow) is flow
    assert {id(v) for v in flow.trainable_variables} == {id(v) for v in td.trainable_variables}
    x = np.random.default_rng(0).normal(size=(30, 2)).astype(np.float32)
    np.testing.assert_allclose(flow.log_prob(x).numpy(), td.log_prob(x).numpy(), rtol=1e-5, atol=1e-5)
    before = td.log_prob(x).numpy()
    data = np.random.default_rng(1).normal(1.0, 0.5, (500, 2)).astype(np.float32)
    train.fit(td, data, steps=10, steps_per_call=10, progress=False)  # trains td's own variables
    assert np.abs(td.log_prob(x).numpy() - before).max() > 1e-3


def test_a_layer_without_one_pass_inverse_is_refused():
    with pytest.raises(TypeError, match=r"layer 1, 'exp' \(Exp\).*FlowBijector"):
        Flow([tfb.Permute([1, 0]), tfb.Exp(name="exp")], flows.standard_normal(2))
    td = tfd.TransformedDistribution(
        flows.standard_normal(2), tfb.Chain([tfb.Invert(tfb.Permute([1, 0])), AffineCoupling(half_mask(2))])
    )
    data = np.random.default_rng(0).normal(size=(100, 2)).astype(np.float32)
    for use in (
        flows.as_flow,
        lambda d: train.fit(d, data, steps=5, progress=False),
        lambda d: metrics.nll(d, data),
    ):
        with pytest.raises(TypeError, match="Invert.*no one-pass inverse"):
            use(td)
    assert flows.one_pass_log_prob(td) is None
    with pytest.raises(TypeError, match="Bijector"):
        Flow(["not a layer"], flows.standard_normal(2))
    with pytest.raises(ValueError, match="at least one"):
        Flow([], flows.standard_normal(2))
    with pytest.raises(TypeError, match="base"):
        Flow([tfb.Shift(1.0)], tfd.Normal(0.0, 1.0))


def test_plain_distributions_keep_their_own_log_prob_in_metrics():
    gaussian = tfd.MultivariateNormalDiag(loc=[0.5, -0.5], scale_diag=[1.0, 2.0])
    x = np.random.default_rng(0).normal(size=(40, 2)).astype(np.float32)
    np.testing.assert_allclose(
        metrics.log_prob(gaussian, x, batch_size=9), gaussian.log_prob(x).numpy(), rtol=1e-6
    )


def test_sample_is_the_base_pushed_forward():
    """Shift by (1, -2), then scale by (3, 0.5): samples of N((3, -1), diag(9, 0.25)), and
    log_prob is that Gaussian's density (computed independently by TFP's Normal)."""
    flow = Flow([tfb.Shift([1.0, -2.0]), tfb.ScaleMatvecDiag([3.0, 0.5])], flows.standard_normal(2))
    samples = flow.sample(20000, seed=3).numpy()
    assert samples.shape == (20000, 2)
    np.testing.assert_allclose(samples.mean(0), [3.0, -1.0], atol=0.08)
    np.testing.assert_allclose(samples.std(0), [3.0, 0.5], rtol=0.03)
    x = np.random.default_rng(0).normal(size=(10, 2)).astype(np.float32)
    expected = tfd.Normal([3.0, -1.0], [3.0, 0.5]).log_prob(x).numpy().sum(-1)
    np.testing.assert_allclose(flow.log_prob(x).numpy(), expected, rtol=1e-5)
