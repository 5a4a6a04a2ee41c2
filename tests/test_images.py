"""flowlib.images: data, dequantization, logit, squeeze, masks, image couplings, multi-scale.

The image layers (Logit, Squeeze, Unsqueeze, couplings on ConvNet and DenseNet) meet the
layer contract in tests/test_layer_contract.py; here: the multi-scale flow inverts exactly
with the log-density autodiff measures, the bits-per-dimension conversion is checked
against an independent computation, and bad input is refused before TensorFlow sees it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from conftest import perturb

from flowlib import flows, images, train
from flowlib.bijectors import AffineCoupling

tfb = tfp.bijectors


def full_log_det(bijector, x, direction):
    """log|det J| of forward (or inverse) at each point, from the full autodiff Jacobian."""
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = bijector.forward(x) if direction == "forward" else bijector.inverse(x)
    jacobian = tape.batch_jacobian(y, x).numpy().astype(np.float64)
    return np.linalg.slogdet(jacobian)[1]


def uniform_points(n, dim, low, high, seed=0):
    return np.random.default_rng(seed).uniform(low, high, (n, dim)).astype(np.float32)


# --------------------------------------------------------------------------- data
def test_digits_split_is_seeded_disjoint_and_in_range():
    split = images.load_digits()
    assert [len(a) for a in split[:3]] == [1350, 150, 297]
    assert split.shape == (8, 8, 1) and split.num_levels == 17
    assert all(a.shape[1] == 64 and a.min() >= 0 and a.max() <= 16 for a in split[:3])
    again = images.load_digits()
    np.testing.assert_array_equal(split.test, again.test)
    other = images.load_digits(seed=1)
    assert not np.array_equal(split.test, other.test)
    # Together the three parts are the 1,797 images (as multisets of rows).
    from sklearn.datasets import load_digits

    every = load_digits().images.reshape(-1, 64).astype(np.int64)
    pooled = np.concatenate(split[:3])
    assert sorted(map(bytes, pooled.astype(np.int8))) == sorted(map(bytes, every.astype(np.int8)))


def test_split_refuses_impossible_sizes():
    with pytest.raises(ValueError, match="num_train"):
        images.load_digits(num_train=1700, num_validation=100)


def test_dequantize_stays_in_each_images_cube():
    x = np.random.default_rng(0).integers(0, 17, (50, 64))
    y = images.dequantize(x, 17, seed=3, copies=2)
    assert y.shape == (100, 64) and y.dtype == np.float32
    assert y.min() >= 0 and y.max() < 1
    np.testing.assert_array_equal(images.quantize(y, 17), np.concatenate([x, x]))
    # The noise is uniform within the cube: its mean is 1/2 level.
    assert abs(float(np.mean(y * 17 - np.concatenate([x, x]))) - 0.5) < 0.01
    assert not np.array_equal(y, images.dequantize(x, 17, seed=4, copies=2))


@pytest.mark.parametrize(
    "bad,match",
    [
        (np.full((2, 4), 17), "0 .. 16"),
        (np.full((2, 4), -1), "0 .. 16"),
        (np.full((2, 4), 0.5), "whole grey levels"),
    ],
)
def test_dequantize_refuses_values_out_of_range(bad, match):
    with pytest.raises(ValueError, match=match):
        images.dequantize(bad, 17)


# --------------------------------------------------------------------------- bits per dim
def test_bits_per_dim_of_the_uniform_model_is_log2_of_the_levels():
    # A uniform density on [0, 1)^D has log q = 0 everywhere.
    assert images.bits_per_dim(0.0, 64, 17) == pytest.approx(math.log2(17))
    assert images.bits_per_dim(np.zeros(10), 784, 256) == pytest.approx(8.0)


def test_bits_per_dim_matches_a_discrete_histogram_model():
    # Independent per-pixel histograms: a discrete model whose bits/dim we compute directly;
    # its dequantized version is piecewise constant, density L * P(level) on [0, 1).
    split = images.load_digits()
    counts = np.stack([np.bincount(split.train[:, i], minlength=17) for i in range(64)]) + 1.0
    probs = counts / counts.sum(axis=1, keepdims=True)
    discrete_bits = -np.log2(probs[np.arange(64), split.test]).sum(axis=1).mean() / 64
    y = images.dequantize(split.test, 17, seed=0)
    log_q = np.log(17 * probs[np.arange(64), images.quantize(y, 17)]).sum(axis=1)
    assert images.bits_per_dim(-log_q.mean(), 64, 17) == pytest.approx(discrete_bits, rel=1e-9)
    assert 2.3 < discrete_bits < 2.5  # about 2.42, quoted in notebook 09


def test_bits_per_dim_refuses_bad_sizes():
    with pytest.raises(ValueError, match="num_dims"):
        images.bits_per_dim(1.0, 0, 17)
    with pytest.raises(ValueError, match="num_levels"):
        images.bits_per_dim(1.0, 64, 1)


# --------------------------------------------------------------------------- logit
def test_logit_keeps_the_logit_side_bounded():
    # (round trip, log-determinants and argument errors: tests/test_layer_contract.py)
    z = images.Logit(0.05).inverse(uniform_points(16, 64, 0.0, 1.0))
    assert np.all(np.abs(z.numpy()) <= math.log(0.95 / 0.05) + 1e-4)


# --------------------------------------------------------------------------- squeeze
def test_squeeze_matches_space_to_depth_and_unsqueeze_undoes_it():
    x = uniform_points(5, 4 * 6 * 3, -1, 1)
    squeezed = images.Squeeze(4, 6, 3).forward(x).numpy()
    expected = tf.nn.space_to_depth(x.reshape(5, 4, 6, 3), 2).numpy().reshape(5, -1)
    np.testing.assert_array_equal(squeezed, expected)
    np.testing.assert_array_equal(images.Unsqueeze(4, 6, 3).forward(squeezed), x)
    np.testing.assert_array_equal(images.Squeeze(4, 6, 3).inverse(squeezed), x)
    assert np.all(images.Squeeze(4, 6, 3).forward_log_det_jacobian(x, event_ndims=1).numpy() == 0)
    assert np.all(full_log_det(images.Squeeze(4, 6, 3), x, "forward") == pytest.approx(0.0, abs=1e-6))


def test_squeeze_leaves_trailing_coordinates_in_place():
    x = uniform_points(3, 16 + 5, -1, 1)
    y = images.Squeeze(4, 4, 1, num_coordinates=21).forward(x).numpy()
    np.testing.assert_array_equal(y[:, 16:], x[:, 16:])


# --------------------------------------------------------------------------- masks
def test_masks_as_pictures():
    board = images.checkerboard_mask(4, 4, 2, parity=0).reshape(4, 4, 2)
    np.testing.assert_array_equal(board[..., 0], board[..., 1])
    np.testing.assert_array_equal(board[..., 0], (np.add.outer(np.arange(4), np.arange(4)) % 2) == 0)
    np.testing.assert_array_equal(
        images.checkerboard_mask(4, 4, 2, parity=1), ~images.checkerboard_mask(4, 4, 2)
    )
    channels = images.channel_mask(2, 2, 4).reshape(2, 2, 4)
    assert channels[..., :2].all() and not channels[..., 2:].any()
    np.testing.assert_array_equal(
        images.channel_mask(2, 2, 4, first_half=False), ~images.channel_mask(2, 2, 4)
    )


def test_masks_refuse_bad_channels_and_parities():
    with pytest.raises(ValueError, match="even number"):
        images.channel_mask(4, 4, 3)
    with pytest.raises(ValueError, match="parity"):
        images.checkerboard_mask(4, 4, 1, parity=2)
    with pytest.raises(ValueError, match="one colour"):
        images.checkerboard_mask(1, 1, 1)


def test_as_images_refuses_a_wrong_channel_count():
    assert images.as_images(np.zeros((2, 64)), 8, 8).shape == (2, 8, 8, 1)
    with pytest.raises(ValueError, match="3 channel"):
        images.as_images(np.zeros((2, 64)), 8, 8, 3)


# --------------------------------------------------------------------------- image couplings
def test_conv_net_reads_only_kept_pixels_and_neighbours():
    mask = images.checkerboard_mask(8, 8, 1)
    network = images.ConvNet(8, 8, 1, mask, hidden_channels=4, num_hidden=1, seed=0)
    for variable in network.trainable_variables:
        variable.assign(np.random.default_rng(1).standard_normal(variable.shape).astype(np.float32))
    x1 = tf.constant(uniform_points(1, 32, -1, 1))
    with tf.GradientTape() as tape:
        tape.watch(x1)
        out = network(x1)
    jacobian = tape.jacobian(out, x1).numpy()[0, :, 0, :]  # [2 * 32 outputs, 32 inputs]
    kept, changed = np.flatnonzero(mask), np.flatnonzero(~mask)
    rows, cols = np.divmod(kept, 8)
    for output, pixel in enumerate(changed):
        r, c = divmod(pixel, 8)
        near = (np.abs(rows - r) <= 2) & (np.abs(cols - c) <= 2)  # two 3x3 layers: 5x5 reach
        assert np.all(jacobian[output, ~near] == 0)
        assert np.any(jacobian[output, near] != 0)


# --------------------------------------------------------------------------- multi-scale
@pytest.mark.parametrize("network", ["dense", "conv"])
def test_multiscale_round_trip_and_log_prob_against_autodiff(network):
    ms = images.multiscale_flow(
        8, 8, 1, network=network, hidden=8, num_hidden=1, couplings_per_block=1, final_couplings=1, seed=1
    )
    assert ms.num_couplings == 2 * (1 + 1) + 1
    perturb(ms.flow, scale=0.05, seed=2)
    model = images.with_preprocessing(ms.flow)
    y = uniform_points(2, 64, 0.01, 0.99)
    z = model.bijector.inverse(y)
    np.testing.assert_allclose(model.bijector.forward(tf.identity(z)).numpy(), y, atol=1e-4)
    # log p(y) = log N(z) + log|det dz/dy|, with the determinant from the full 64x64 Jacobian.
    expected = model.distribution.log_prob(z).numpy() + full_log_det(model.bijector, y, "inverse")
    np.testing.assert_allclose(model.log_prob(y).numpy(), expected, rtol=1e-4, atol=1e-2)


def test_multiscale_factors_out_half_at_each_scale():
    ms = images.multiscale_flow(8, 8, 1, num_scales=2, hidden=8, num_hidden=1)
    counts = np.bincount(ms.exit_scale.ravel())
    assert list(counts[1:]) == [32, 16, 16]
    # The layers work on ever fewer coordinates: every coupling at scale 2 keeps the 32 that left.
    layers = ms.flow.bijector.bijectors
    couplings = [layer for layer in layers if isinstance(layer, AffineCoupling)]
    assert [int((~layer.mask).sum()) for layer in couplings] == [32] * 6 + [16] * 6 + [8] * 4


def test_multiscale_latent_of_a_factored_pixel_ignores_later_layers():
    """Change the weights of the scale-2 couplings: latents that left at scale 1 do not move."""
    ms = images.multiscale_flow(8, 8, 1, num_scales=2, hidden=8, num_hidden=1, seed=0)
    perturb(ms.flow, scale=0.05, seed=0)
    y = uniform_points(4, 64, -1, 1)
    before = ms.flow.bijector.inverse(y).numpy()
    layers = ms.flow.bijector.bijectors
    later = layers[[layer.name for layer in layers].index("factor_out_1") + 1 :]
    for layer in later:
        for variable in layer.trainable_variables:
            variable.assign(variable + 0.5)
    after = ms.flow.bijector.inverse(tf.identity(y)).numpy()
    # Latent order: [final 16, left at scale 2 (16), left at scale 1 (32)].
    np.testing.assert_array_equal(before[:, 32:], after[:, 32:])
    assert np.max(np.abs(before[:, :32] - after[:, :32])) > 1e-3


def test_multiscale_refuses_sides_that_cannot_be_squeezed():
    with pytest.raises(ValueError, match="divisible by 4"):
        images.multiscale_flow(6, 6, 1, num_scales=2)
    with pytest.raises(ValueError, match="network must be one of 'dense', 'conv'"):
        images.multiscale_flow(network="resnet")


def test_fit_trains_the_multiscale_flow_in_one_pass():
    """fit() recognises every layer (couplings and permutations) and its loss goes down."""
    split = images.load_digits()
    ms = images.multiscale_flow(hidden=16, num_hidden=1, couplings_per_block=1, final_couplings=1)
    assert flows.one_pass_log_prob(ms.flow) is not None
    z = images.Logit().inverse(images.dequantize(split.train, 17, seed=0)).numpy()
    history = train.fit(ms.flow, z, steps=200, batch_size=64, learning_rate=2e-3, progress=False)
    assert np.mean(history.loss[-20:]) < np.mean(history.loss[:20]) - 5.0


# --------------------------------------------------------------------------- arguments (issue 20)
@pytest.mark.parametrize(
    "call,error,words",
    [
        # dequantize accepted 17.5 and True, and scaled by them
        (
            lambda: images.dequantize(np.zeros((2, 4), int), 17.5),
            TypeError,
            "num_levels must be an integer, got 17.5",
        ),
        (
            lambda: images.dequantize(np.zeros((2, 4), int), True),
            TypeError,
            "num_levels must be an integer, got True",
        ),
        # num_levels=0 said "images must lie in 0 .. -1"
        (
            lambda: images.dequantize(np.zeros((2, 4), int), 0),
            ValueError,
            "num_levels must be at least 2, got 0",
        ),
        (lambda: images.dequantize(np.zeros((2, 4), int), 17, seed=-1), ValueError, "seed"),
        (lambda: images.check_levels(np.zeros((2, 4), int), 2.0), TypeError, "num_levels"),
        # quantize(NaN) returned -9223372036854775808
        (
            lambda: images.quantize(np.array([0.2, np.nan]), 17),
            ValueError,
            "y contains NaN or infinite values",
        ),
        (lambda: images.quantize(np.array([0.2]), 17.0), TypeError, "num_levels"),
        (lambda: images.quantize(np.array([True]), 17), TypeError, "y must be a numeric array"),
        # load_digits(num_train=1.5) failed in a slice
        (lambda: images.load_digits(num_train=1.5), TypeError, "num_train must be an integer, got 1.5"),
        (
            lambda: images.load_digits(num_validation=0),
            ValueError,
            "num_validation must be a positive integer",
        ),
        (lambda: images.load_digits(seed=-1), ValueError, "seed"),
        (lambda: images.load_mnist(num_train="50000"), TypeError, "num_train"),  # before any download
        (lambda: images.Logit(alpha="0.05"), TypeError, "alpha must be a number"),
        (lambda: images.Logit(alpha=np.float32(0.5)), ValueError, "alpha must lie in (0, 0.5), got 0.5"),
        (lambda: images.checkerboard_mask(4, 4, 1, parity=True), TypeError, "parity must be an integer"),
        (lambda: images.channel_mask(2, 2, 4, first_half="yes"), TypeError, "first_half"),
        (lambda: images.ConvNet(4, 4, 1, images.checkerboard_mask(4, 4), seed=-1), ValueError, "seed"),
        (
            lambda: images.ConvNet(4, 4, 1, images.checkerboard_mask(4, 4), kernel_size=2.5),
            TypeError,
            "kernel_size",
        ),
        (lambda: images.multiscale_flow(seed=2**31), ValueError, "seed must be at most 2147483647"),
        (lambda: images.multiscale_flow(max_log_scale=-1.0), ValueError, "max_log_scale"),
        (lambda: images.multiscale_flow(num_scales=10**9), ValueError, "num_scales must be at most 4"),
        (
            lambda: images.multiscale_flow(final_couplings=10**6),
            ValueError,
            "final_couplings must be at most 1000",
        ),
        (lambda: images.with_preprocessing("flow"), TypeError, "flow must be a flow"),
        (lambda: images.Squeeze(4, 4, num_coordinates=17.5), TypeError, "num_coordinates must be an integer"),
    ],
)
def test_bad_arguments_are_named_before_any_work(call, error, words):
    with pytest.raises(error) as raised:
        call()
    assert words in str(raised.value)


def test_numpy_numbers_are_accepted():
    # Logit(alpha=np.float32(0.05)) was refused.
    assert images.Logit(alpha=np.float32(0.05)).alpha == pytest.approx(0.05)
    x = np.array([[0, 16, 3]])
    y = images.dequantize(x, np.int64(17), seed=np.int32(1), copies=np.uint8(2))
    np.testing.assert_array_equal(images.quantize(y, np.int16(17)), np.concatenate([x, x]))
    split = images.load_digits(num_train=np.int64(100), num_validation=np.int32(50), seed=np.int64(2))
    assert [len(part) for part in split[:2]] == [100, 50]


def test_multiscale_flow_builds_at_the_largest_seed():
    # Coupling networks were seeded with seed * 1000 + index, which overflowed int32.
    parts = [images.multiscale_flow(4, 4, num_scales=1, couplings_per_block=1, final_couplings=1, hidden=4, seed=s)
             for s in (2**31 - 1, 2**31 - 2)]  # fmt: skip
    kernels = [
        [v.numpy() for v in p.flow.trainable_variables if v.name.endswith("kernel_0:0")] for p in parts
    ]
    assert len(kernels[0]) == 3
    assert not np.array_equal(kernels[0][0], kernels[0][1])
    assert not np.array_equal(kernels[0][0], kernels[1][0])
