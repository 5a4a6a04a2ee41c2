"""Hidden tests for notebook 02, exercise 4: the LeakyReLU bijector for new alphas, shapes, compositions."""

import numpy as np
import tensorflow_probability as tfp
from otter.test_files import test_case

tfb, tfd = tfp.bijectors, tfp.distributions

OK_FORMAT = False
name = "02_ex4"
points = 3


def _leaky(x, alpha):
    return np.where(x >= 0, x, alpha * x)


@test_case(points=1, hidden=True)
def maps_and_log_dets_for_new_alphas(LeakyReLU):
    for seed, alpha in enumerate([0.01, 1.0, 10.0, 1.7]):
        bijector = LeakyReLU(alpha)
        assert not bijector.is_constant_jacobian, "the slope depends on x: the Jacobian is not constant"
        x = np.random.default_rng(seed).normal(-0.3, 4.0, size=(2, 3, 4)).astype(np.float32)
        x[0, 0, :2] = [0.0, -1e-3]  # forward and inverse at exactly 0; log|f'| is not defined there
        np.testing.assert_allclose(
            bijector.forward(x), _leaky(x, alpha), rtol=1e-6, err_msg=f"forward, alpha {alpha}"
        )
        y = np.asarray(_leaky(x, alpha), np.float32)
        np.testing.assert_allclose(
            bijector.inverse(y), x, rtol=1e-5, atol=1e-6, err_msg=f"inverse, alpha {alpha}"
        )
        x = np.where(x == 0, np.float32(2e-3), x)
        y = np.asarray(_leaky(x, alpha), np.float32)
        slope_log = np.where(x >= 0, 0.0, np.log(alpha))
        np.testing.assert_allclose(bijector.forward_log_det_jacobian(x, event_ndims=0), slope_log, atol=1e-5)
        np.testing.assert_allclose(bijector.inverse_log_det_jacobian(y, event_ndims=0), -slope_log, atol=1e-5)
        np.testing.assert_allclose(
            bijector.forward_log_det_jacobian(x, event_ndims=2),
            slope_log.sum(axis=(1, 2)),
            atol=1e-4,
            err_msg="log-dets must add up over event dimensions",
        )


@test_case(points=1, hidden=True)
def composes_like_a_bijector(LeakyReLU):
    two = tfb.Chain([LeakyReLU(0.5), LeakyReLU(3.0)])  # slopes multiply: one leaky ReLU with alpha 1.5
    x = np.random.default_rng(5).normal(size=(50,)).astype(np.float32)
    np.testing.assert_allclose(two.forward(x), _leaky(x, 1.5), rtol=1e-5)
    np.testing.assert_allclose(
        two.forward_log_det_jacobian(x, event_ndims=1), np.sum(np.where(x >= 0, 0.0, np.log(1.5))), atol=1e-4
    )
    inverted = tfb.Invert(LeakyReLU(0.25))
    np.testing.assert_allclose(inverted.forward(x), np.where(x >= 0, x, x / 0.25), rtol=1e-5)


@test_case(points=1, hidden=True)
def transformed_density_is_right(LeakyReLU):
    base = tfd.MultivariateNormalDiag(loc=[-1.0, 0.5, 2.0], scale_diag=[0.5, 2.0, 1.0])
    alpha = 0.2
    flow = tfd.TransformedDistribution(base, LeakyReLU(alpha))
    y = np.random.default_rng(8).normal(0.0, 2.0, size=(40, 3)).astype(np.float32)
    x = np.where(y >= 0, y, y / alpha)
    expected = base.log_prob(x).numpy() - np.sum(np.where(x >= 0, 0.0, np.log(alpha)), axis=1)
    np.testing.assert_allclose(
        flow.log_prob(y), expected, atol=1e-4, err_msg="log_prob of the pushed normal is wrong"
    )
