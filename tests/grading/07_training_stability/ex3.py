"""Hidden tests for notebook 07, exercise 3: a tfb.BatchNormalization whose log_prob is the batch's likelihood."""

import numpy as np
from otter.test_files import test_case

OK_FORMAT = False
name = "07_ex3"
points = 3


def _flow(HonestBatchNormalization, dim, num_norms, seed):
    import tensorflow as tf
    import tensorflow_probability as tfp

    from flowlib import bijectors

    tfb, tfd = tfp.bijectors, tfp.distributions
    layers = []
    for k in range(num_norms):
        mask = np.arange(dim) < (k % (dim - 1)) + 1
        network = bijectors.MLP(
            int(mask.sum()), 2 * int((~mask).sum()), (8, 8), seed=100 * seed + k, zero_last=False
        )
        layers.append(bijectors.AffineCoupling(mask, network))
        layers.append(tfb.Permute(np.roll(np.arange(dim), 1)))
        layers.append(HonestBatchNormalization(training=True))
    base = tfd.MultivariateNormalDiag(tf.zeros(dim), tf.ones(dim))
    return tfd.TransformedDistribution(base, tfb.Chain(layers[::-1])), layers


def _batch_statistics_log_prob(layers, points):
    import tensorflow as tf
    import tensorflow_probability as tfp

    h, log_det = tf.constant(points), 0.0
    for layer in reversed(layers):
        if isinstance(layer, tfp.bijectors.BatchNormalization):
            keras_layer = layer.batchnorm
            mean, variance = tf.nn.moments(h, axes=[0])
            h = (h - mean) * tf.math.rsqrt(
                variance + keras_layer.epsilon
            ) * keras_layer.gamma + keras_layer.beta
            log_det += tf.reduce_sum(
                tf.math.log(keras_layer.gamma) - 0.5 * tf.math.log(variance + keras_layer.epsilon)
            )
        else:
            log_det += layer.inverse_log_det_jacobian(h, event_ndims=1)
            h = layer.inverse(h)
    dim = points.shape[-1]
    return -0.5 * tf.reduce_sum(h**2, axis=-1) - 0.5 * dim * np.log(2 * np.pi) + log_det


def _prepared(HonestBatchNormalization, dim, num_norms, n, seed):
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    flow, layers = _flow(HonestBatchNormalization, dim, num_norms, seed)
    points = (
        rng.normal(size=(n, dim)) * rng.uniform(0.2, 4.0, size=dim) + rng.normal(0, 3, size=dim)
    ).astype(np.float32)
    flow.log_prob(tf.constant(points[:7]))  # builds the variables
    for layer in layers:
        if hasattr(layer, "batchnorm"):
            layer.batchnorm.gamma.assign(rng.uniform(0.4, 2.5, size=dim))
            layer.batchnorm.beta.assign(rng.normal(size=dim))
            layer.batchnorm.moving_mean.assign(rng.normal(size=dim))
            layer.batchnorm.moving_variance.assign(rng.uniform(0.1, 6.0, size=dim))
    return flow, layers, points


@test_case(points=1, hidden=True)
def likelihood_of_the_batch_in_larger_flows(HonestBatchNormalization):
    import tensorflow as tf

    for dim, num_norms, n, seed in [(2, 3, 64, 1), (4, 2, 200, 2), (3, 1, 33, 3)]:
        flow, layers, points = _prepared(HonestBatchNormalization, dim, num_norms, n, seed)
        weights = [v for layer in layers if hasattr(layer, "network") for v in layer.trainable_variables]
        with tf.GradientTape(persistent=True) as tape:
            expected = _batch_statistics_log_prob(layers, points)
            first = flow.log_prob(tf.constant(points))
            losses = (
                -tf.reduce_mean(expected * np.linspace(0.5, 1.5, n)),
                -tf.reduce_mean(first * np.linspace(0.5, 1.5, n)),
            )
        for want, got in zip(tape.gradient(losses[0], weights), tape.gradient(losses[1], weights)):
            assert got is not None, "the loss does not depend on a coupling's weights"
            np.testing.assert_allclose(
                got, want, rtol=1e-3, atol=1e-4, err_msg=f"dim={dim}, {num_norms} batch norms: gradient"
            )
        expected = expected.numpy()
        for call in range(2):
            got = first.numpy() if call == 0 else flow.log_prob(tf.constant(points)).numpy()
            np.testing.assert_allclose(
                got,
                expected,
                rtol=1e-4,
                atol=2e-3,
                err_msg=f"dim={dim}, {num_norms} batch norms, call {call + 1}",
            )
        # one more call: the batch norm nearest the data sees the points, and TFP updates its
        # moving averages once per call
        keras_layer = layers[-1].batchnorm
        before_mean = np.array(keras_layer.moving_mean.numpy())
        before_variance = np.array(keras_layer.moving_variance.numpy())
        flow.log_prob(tf.constant(points))
        np.testing.assert_allclose(
            keras_layer.moving_variance.numpy(),
            0.99 * before_variance + 0.01 * points.astype(np.float64).var(axis=0),
            rtol=1e-4,
            err_msg="one log_prob call must update the moving variance once, as TFP does",
        )
        np.testing.assert_allclose(
            keras_layer.moving_mean.numpy(),
            0.99 * before_mean + 0.01 * points.astype(np.float64).mean(axis=0),
            rtol=1e-4,
            atol=1e-5,
            err_msg="one log_prob call must update the moving mean once, as TFP does",
        )


@test_case(points=1, hidden=True)
def map_and_moving_averages_unchanged(HonestBatchNormalization):
    import tensorflow as tf
    import tensorflow_probability as tfp

    rng = np.random.default_rng(7)
    y = (rng.normal(size=(200, 3)) * [2.0, 0.5, 1.0] + [1.0, -2.0, 0.3]).astype(np.float32)
    honest = HonestBatchNormalization(training=True)
    honest.inverse(tf.constant(y[:5]))
    keras_layer = honest.batchnorm
    keras_layer.moving_variance.assign([3.0, 0.2, 1.5])
    before_mean, before_variance = keras_layer.moving_mean.numpy(), keras_layer.moving_variance.numpy()
    z = honest.inverse(tf.constant(y)).numpy()
    np.testing.assert_allclose(
        z,
        (y - y.mean(0)) / np.sqrt(y.var(0) + keras_layer.epsilon),
        rtol=1e-4,
        atol=1e-4,
        err_msg="the inverse map must stay TFP's (batch statistics in training mode)",
    )
    momentum = 0.99
    np.testing.assert_allclose(
        keras_layer.moving_variance.numpy(),
        momentum * before_variance + (1 - momentum) * y.var(0),
        rtol=1e-4,
        err_msg="the moving averages must keep TFP's update",
    )
    np.testing.assert_allclose(
        keras_layer.moving_mean.numpy(),
        momentum * before_mean + (1 - momentum) * y.mean(0),
        rtol=1e-4,
        atol=1e-6,
        err_msg="the moving averages must keep TFP's update",
    )
    plain = tfp.bijectors.BatchNormalization(keras_layer, training=True)
    latent = tf.constant(rng.normal(size=(50, 3)).astype(np.float32))
    np.testing.assert_allclose(
        honest.forward(latent).numpy(),
        plain.forward(tf.constant(latent.numpy())).numpy(),
        rtol=1e-5,
        atol=1e-5,
        err_msg="the forward map must stay TFP's",
    )


@test_case(points=1, hidden=True)
def evaluation_mode_still_consistent(HonestBatchNormalization):
    import tensorflow as tf
    import tensorflow_probability as tfp

    tfb, tfd = tfp.bijectors, tfp.distributions
    rng = np.random.default_rng(8)
    honest_training = HonestBatchNormalization(training=True)
    honest_training.inverse(tf.constant(rng.normal(size=(5, 2)).astype(np.float32)))
    keras_layer = honest_training.batchnorm
    keras_layer.moving_mean.assign([0.5, -1.0])
    keras_layer.moving_variance.assign([4.0, 0.3])
    keras_layer.gamma.assign([1.5, 0.7])
    evaluation = HonestBatchNormalization(keras_layer, training=False)
    base = tfd.MultivariateNormalDiag(tf.zeros(2), tf.ones(2))
    points = (rng.normal(size=(40, 2)) * [2.0, 0.5]).astype(np.float32)
    got = tfd.TransformedDistribution(base, evaluation).log_prob(tf.constant(points)).numpy()
    plain = tfd.TransformedDistribution(base, tfb.BatchNormalization(keras_layer, training=False))
    np.testing.assert_allclose(
        got,
        plain.log_prob(tf.constant(points)).numpy(),
        rtol=1e-5,
        atol=1e-4,
        err_msg="in evaluation mode the log-density must be the moving averages' one",
    )
