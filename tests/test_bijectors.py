"""Every bijector inverts exactly and reports the log-determinant that autodiff measures."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from conftest import perturb

from flowlib import flows
from flowlib.bijectors import MLP, ActNorm, AdditiveCoupling, AffineCoupling, BatchNormalization, half_mask

tfb = tfp.bijectors


def random_mlp(input_dim, output_dim, seed):
    return MLP(input_dim, output_dim, (32, 32), seed=seed, zero_last=False)


def make_bijectors():
    """(label, bijector, dim): each with non-trivial weights."""
    mask5 = np.array([True, False, True, False, False])
    items = [
        ("additive-2d", AdditiveCoupling(half_mask(2), random_mlp(1, 1, 0)), 2),
        ("additive-5d", AdditiveCoupling(mask5, random_mlp(2, 3, 1)), 5),
        ("affine-2d", AffineCoupling(half_mask(2), random_mlp(1, 2, 2)), 2),
        ("affine-5d", AffineCoupling(mask5, random_mlp(2, 6, 3)), 5),
        ("affine-unbounded", AffineCoupling(half_mask(2), random_mlp(1, 2, 4), max_log_scale=None), 2),
        ("affine-keep-last", AffineCoupling(half_mask(3, keep_first=False), random_mlp(1, 4, 5)), 3),
    ]
    actnorm = ActNorm(3)
    actnorm.shift.assign([0.5, -1.0, 2.0])
    actnorm.log_scale.assign([0.3, -0.7, 0.1])
    items.append(("actnorm", actnorm, 3))
    training = tf.Variable(False)
    batch_norm = BatchNormalization(2, training)
    batch_norm.moving_mean.assign([0.4, -0.2])
    batch_norm.moving_variance.assign([2.0, 0.3])
    batch_norm.log_gamma.assign([0.2, -0.1])
    batch_norm.beta.assign([0.1, 0.5])
    items.append(("batchnorm-eval", batch_norm, 2))
    return items


BIJECTORS = make_bijectors()
IDS = [label for label, _, _ in BIJECTORS]


def points(dim, scale, n=256, seed=0):
    return tf.constant(np.random.default_rng(seed).uniform(-scale, scale, (n, dim)).astype(np.float32))


@pytest.mark.parametrize("label,bijector,dim", BIJECTORS, ids=IDS)
@pytest.mark.parametrize("scale", [2.0, 10.0])
def test_inverse_undoes_forward(label, bijector, dim, scale):
    x = points(dim, scale)
    y = bijector.forward(x)
    assert np.max(np.abs(y.numpy() - x.numpy())) > 1e-3, "the bijector is the identity: test is vacuous"
    # Fresh tensors, so TFP's cache cannot answer for the bijector.
    x_back = bijector.inverse(tf.identity(y))
    np.testing.assert_allclose(x_back.numpy(), x.numpy(), rtol=1e-5, atol=2e-4 * scale)
    y_again = bijector.forward(tf.identity(bijector.inverse(tf.identity(y))))
    np.testing.assert_allclose(y_again.numpy(), y.numpy(), rtol=1e-5, atol=2e-4 * scale)


def autodiff_log_det(function, x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = function(x)
    jacobian = tape.batch_jacobian(y, x)  # [batch, dim, dim]
    sign, log_abs_det = tf.linalg.slogdet(tf.cast(jacobian, tf.float64))
    assert np.all(sign.numpy() != 0)
    return log_abs_det.numpy()


@pytest.mark.parametrize("label,bijector,dim", BIJECTORS, ids=IDS)
def test_log_det_jacobian_matches_autodiff(label, bijector, dim):
    x = points(dim, 3.0, n=64, seed=1)
    expected = autodiff_log_det(lambda v: bijector.forward(v), x)
    fldj = bijector.forward_log_det_jacobian(tf.identity(x), event_ndims=1).numpy()
    np.testing.assert_allclose(np.broadcast_to(fldj, expected.shape), expected, atol=1e-4)
    y = tf.identity(bijector.forward(x))
    expected_inverse = autodiff_log_det(lambda v: bijector.inverse(v), tf.identity(y))
    ildj = bijector.inverse_log_det_jacobian(tf.identity(y), event_ndims=1).numpy()
    np.testing.assert_allclose(np.broadcast_to(ildj, expected_inverse.shape), expected_inverse, atol=1e-4)
    if label.startswith("additive"):
        np.testing.assert_allclose(expected, 0.0, atol=1e-5)  # volume preserving


def test_coupling_keeps_the_masked_coordinates():
    mask = np.array([True, False, True, False, False])
    layer = AffineCoupling(mask, random_mlp(2, 6, 0))
    x = points(5, 2.0)
    y = layer.forward(x).numpy()
    np.testing.assert_array_equal(y[:, mask], x.numpy()[:, mask])
    assert np.all(np.abs(y[:, ~mask] - x.numpy()[:, ~mask]).max(axis=0) > 1e-3)


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


def test_input_of_wrong_dimension_is_reported():
    layer = AffineCoupling(half_mask(2), hidden_units=(8,))
    with pytest.raises(ValueError, match="2 coordinates"):
        layer.forward(tf.zeros([4, 3]))


@pytest.mark.parametrize("mask", [[True, True], [False, False], [True], [[True, False]], [0, 2]])
def test_bad_masks_are_rejected(mask):
    with pytest.raises(ValueError, match="mask"):
        AdditiveCoupling(mask)


def test_non_callable_network_is_rejected():
    with pytest.raises(TypeError, match="network"):
        AffineCoupling(half_mask(2), network="not a network")


def test_bad_sizes_are_rejected():
    with pytest.raises(ValueError, match="positive"):
        MLP(1, 2, (0,))
    with pytest.raises(ValueError, match="max_log_scale"):
        AffineCoupling(half_mask(2), max_log_scale=0.0)
    with pytest.raises(ValueError, match="dim"):
        half_mask(1)
    with pytest.raises(TypeError, match="training"):
        BatchNormalization(2, training=True)


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
