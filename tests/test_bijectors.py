"""What flowlib.bijectors promises beyond the layer contract (tests/test_layer_contract.py):
bounded log-scales, fresh couplings as the identity, ActNorm's data initialisation, batch
norm as TFP computes it (and its train/eval mismatch), composition with TFP's bijectors."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from conftest import perturb
from test_layer_contract import autodiff_log_det

from flowlib import flows
from flowlib.bijectors import MLP, ActNorm, AffineCoupling, BatchNormalization, half_mask, take_columns

tfb = tfp.bijectors


def random_mlp(input_dim, output_dim, seed):
    return MLP(input_dim, output_dim, (32, 32), seed=seed, zero_last=False)


def points(dim, scale, n=256, seed=0):
    return tf.constant(np.random.default_rng(seed).uniform(-scale, scale, (n, dim)).astype(np.float32))


def test_log_scale_is_bounded():
    def network(x1):
        return tf.concat([tf.zeros_like(x1), 1e4 * tf.ones_like(x1)], axis=-1)

    layer = AffineCoupling(half_mask(2), network, max_log_scale=1.5)
    _, log_scale = layer.shift_and_log_scale(tf.ones([4, 1]))
    np.testing.assert_allclose(log_scale.numpy(), 1.5, rtol=1e-6)
    assert np.all(np.isfinite(layer.forward(tf.ones([4, 2])).numpy()))


def test_fresh_coupling_is_the_identity():
    layer = AffineCoupling(half_mask(2), hidden_units=(16,))
    x = points(2, 3.0)
    np.testing.assert_array_equal(layer.forward(x).numpy(), x.numpy())
    np.testing.assert_array_equal(layer.forward_log_det_jacobian(x, event_ndims=1).numpy(), 0.0)


def test_pluggable_network_of_wrong_size_is_reported():
    layer = AffineCoupling(half_mask(2), lambda x1: tf.zeros([tf.shape(x1)[0], 3]))
    with pytest.raises(ValueError, match="expected 2"):
        layer.forward(tf.zeros([4, 2]))


def test_actnorm_initialisation_normalises_the_batch():
    rng = np.random.default_rng(0)
    y = (rng.standard_normal((5000, 3)) * [3.0, 0.1, 1.0] + [5.0, -2.0, 0.0]).astype(np.float32)
    layer = ActNorm(3)
    layer.initialize(y)
    z = layer.inverse(tf.constant(y)).numpy()
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(z.std(axis=0), 1.0, atol=1e-3)


def test_batch_norm_matches_tfp_one_layer_at_a_time():
    """flowlib's batch norm computes TFP's map (both modes) and TFP's log-det for one layer."""
    rng = np.random.default_rng(0)
    y = tf.constant((rng.standard_normal((512, 2)) * [3.0, 0.5] + [1.0, -2.0]).astype(np.float32))
    training = tf.Variable(True)
    ours = BatchNormalization(2, training)
    theirs = tfb.BatchNormalization(training=True)
    theirs.batchnorm.build((None, 2))
    theirs.batchnorm.gamma.assign([1.3, 0.7])
    theirs.batchnorm.beta.assign([0.2, -0.4])
    ours.log_gamma.assign(np.log([1.3, 0.7]).astype(np.float32))
    ours.beta.assign([0.2, -0.4])
    np.testing.assert_allclose(
        ours.inverse(tf.identity(y)).numpy(), theirs.inverse(tf.identity(y)).numpy(), atol=1e-5
    )
    # One inverse call each: both moved their moving averages the same way (momentum 0.99).
    np.testing.assert_allclose(ours.moving_mean.numpy(), theirs.batchnorm.moving_mean.numpy(), atol=1e-5)
    np.testing.assert_allclose(
        ours.moving_variance.numpy(), theirs.batchnorm.moving_variance.numpy(), rtol=1e-3
    )
    np.testing.assert_allclose(
        ours.inverse_log_det_jacobian(tf.identity(y), event_ndims=1).numpy(),
        theirs.inverse_log_det_jacobian(tf.identity(y), event_ndims=1).numpy(),
        atol=1e-5,
    )


def test_batch_norm_train_eval_mismatch_is_real():
    """In training mode inverse uses the batch, forward the moving averages: not inverses."""
    training = tf.Variable(True)
    layer = BatchNormalization(2, training)
    y = tf.constant(np.random.default_rng(1).normal(3.0, 2.0, (256, 2)).astype(np.float32))
    mismatch = np.abs(layer.forward(tf.identity(layer.inverse(y))).numpy() - y.numpy()).max()
    assert mismatch > 0.1
    training.assign(False)
    layer._cache.clear()
    np.testing.assert_allclose(
        layer.forward(tf.identity(layer.inverse(tf.identity(y)))).numpy(), y.numpy(), atol=1e-4
    )


def test_bijectors_compose_with_tfp():
    """A flowlib coupling inside tfb.Chain with tfb.Permute and tfb.Shift behaves as a bijector."""
    layer = AffineCoupling(half_mask(2), random_mlp(1, 2, 7))
    chain = tfb.Chain([tfb.Shift([1.0, -1.0]), tfb.Permute([1, 0]), layer])
    x = points(2, 2.0)
    expected = layer.forward(x).numpy()[:, ::-1] + [1.0, -1.0]
    np.testing.assert_allclose(chain.forward(x).numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(chain.inverse(tf.identity(chain.forward(x))).numpy(), x.numpy(), atol=1e-4)
    np.testing.assert_allclose(
        chain.forward_log_det_jacobian(x, event_ndims=1).numpy(),
        autodiff_log_det(chain.forward, x),
        atol=1e-4,
    )


def test_whole_flow_log_det_matches_autodiff():
    flow = flows.realnvp(num_layers=4, hidden_units=(16, 16), normalization="batchnorm")
    perturb(flow, seed=3)
    x = points(2, 2.0, n=64)
    np.testing.assert_allclose(
        flow.bijector.forward_log_det_jacobian(x, event_ndims=1).numpy(),
        autodiff_log_det(flow.bijector.forward, tf.identity(x)),
        atol=2e-4,
    )


@pytest.mark.parametrize("shape", [(7,), (5, 7), (3, 4, 7)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_take_columns_is_the_gather_exactly(shape, dtype):
    """Values and gradients equal tf.gather's bit for bit, on any rank, repeats included."""
    rng = np.random.default_rng(len(shape))
    index = np.array([4, 0, 6, 6, 2])  # unordered, with a repeat and a column left out
    x = tf.constant(rng.normal(0, 3, shape).astype(dtype))
    weights = tf.constant(rng.normal(size=shape[:-1] + (len(index),)).astype(dtype))
    take = take_columns(index, shape[-1])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ours, gathered = take(x), tf.gather(x, index, axis=-1)
        ours_loss, gathered_loss = tf.reduce_sum(weights * ours**3), tf.reduce_sum(weights * gathered**3)
    assert ours.dtype == x.dtype and ours.shape == gathered.shape
    np.testing.assert_array_equal(ours.numpy(), gathered.numpy())
    np.testing.assert_array_equal(
        tape.gradient(ours_loss, x).numpy(), tape.gradient(gathered_loss, x).numpy()
    )


def graph_ops(function, x):
    return {op.type for op in tf.function(function).get_concrete_function(x).graph.get_operations()}


def test_take_columns_falls_back_to_the_gather_when_the_matrix_is_large():
    """Small selections are a product, large ones (over 2**18 matrix entries) the gather."""
    index = np.arange(600)[::-1]  # a 600 x 600 matrix: over 2**18 entries
    x = tf.constant(np.random.default_rng(0).normal(size=(3, 600)).astype(np.float32))
    take = take_columns(index, 600)
    np.testing.assert_array_equal(take(x).numpy(), x.numpy()[:, ::-1])
    assert "GatherV2" in graph_ops(take, x) and "MatMul" not in graph_ops(take, x)
    small = take_columns(index[:4], 600)  # 600 x 4: a product
    assert "MatMul" in graph_ops(small, x) and "GatherV2" not in graph_ops(small, x)


@pytest.mark.parametrize("index", [[0, 3], [-1], [[0, 1]]])
def test_take_columns_rejects_columns_out_of_range(index):
    with pytest.raises(ValueError, match="columns in"):
        take_columns(index, 3)


def test_coupling_with_a_mask_that_does_not_keep_the_first_coordinates():
    """A coupling that selects columns (mask [F, T, F, T, T]) inverts and matches autodiff's log-det."""
    mask = np.array([False, True, False, True, True])
    layer = AffineCoupling(mask, random_mlp(3, 4, seed=3), max_log_scale=None)
    x = points(5, 2.0, n=64, seed=4)
    y = layer.forward(x)
    np.testing.assert_array_equal(y.numpy()[:, mask], x.numpy()[:, mask])
    assert np.abs(y.numpy()[:, ~mask] - x.numpy()[:, ~mask]).max() > 1e-2
    np.testing.assert_allclose(layer.inverse(y).numpy(), x.numpy(), atol=1e-5)
    fresh = tf.identity(x)  # not the tensor TFP cached the forward pass of, which autodiff could not follow
    np.testing.assert_allclose(
        layer.forward_log_det_jacobian(x, event_ndims=1).numpy(),
        autodiff_log_det(layer.forward, fresh),
        rtol=1e-4,
        atol=1e-4,
    )
