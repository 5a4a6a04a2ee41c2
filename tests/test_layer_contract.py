"""The layer contract, checked over ONE table of every layer kind flowlib builds.

Every layer, with non-trivial weights: ``inverse`` undoes ``forward`` (both ways round);
the log-determinants equal the ones autodiff measures (``batch_jacobian``); flowlib's
layers give the same answers through the one-pass protocol as through TFP's methods; a
flow of the one layer has the same density by :func:`flowlib.flows.one_pass_log_prob` as
by TFP's ``TransformedDistribution.log_prob``; points with the wrong number of
coordinates and bad constructor arguments are refused with an error that names them.
(normflows' ``FlowTest`` does the same over its flows.) A test at the end checks that
the table names every bijector class flowlib defines, so a new layer kind cannot be
added without meeting the contract; TFP's FFJORD, the layer flowlib.continuous builds,
has its row too.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from flowlib import autoregressive, bijectors, continuous, flows, images, splines
from flowlib.autoregressive import IAF, MADE, MAF
from flowlib.bijectors import MLP, ActNorm, AdditiveCoupling, AffineCoupling, BatchNormalization, half_mask
from flowlib.splines import SplineCoupling

tfb, tfd = tfp.bijectors, tfp.distributions


# --------------------------------------------------------------------------- helpers
def random_mlp(input_dim, output_dim, seed, scale=1.0):
    """A random network (its last layer not at zero), outputs scaled by ``scale``.

    For the splines ``scale=1`` keeps the slopes from about 0.04 to 6, far from the
    identity but not so steep that float32's resolution of ``y`` alone (2e-7 at
    ``|y| = 4``) becomes 1e-3 in ``x`` after the inverse: that would be the conditioning
    of the map, not an error of the inverse.
    """
    network = MLP(input_dim, output_dim, (32, 32), seed=seed, zero_last=False)
    return network if scale == 1.0 else (lambda x: scale * network(x))


def random_made(dim, seed):
    return MADE(dim, 2, (32, 32), seed=seed, zero_last=False)


def lu_layer(dim, seed):
    layer = flows.lu_linear(dim, seed=seed)
    rng = np.random.default_rng(seed)
    layer.lower_upper.assign(layer.lower_upper + 0.3 * rng.standard_normal((dim, dim)).astype(np.float32))
    return layer


def actnorm_layer():
    layer = ActNorm(3)
    layer.shift.assign([0.5, -1.0, 2.0])
    layer.log_scale.assign([0.3, -0.7, 0.1])
    return layer


def batch_norm_layer(training):
    layer = BatchNormalization(2, tf.Variable(training))
    layer.moving_mean.assign([0.4, -0.2])
    layer.moving_variance.assign([2.0, 0.3])
    layer.log_gamma.assign([0.2, -0.1])
    layer.beta.assign([0.1, 0.5])
    return layer


def image_coupling(kind, shape, mask, seed=0):
    network = (
        images.ConvNet(*shape, mask, hidden_channels=8, seed=seed)
        if kind == "conv"
        else images.DenseNet(*shape, mask, hidden_units=(16,), seed=seed)
    )
    layer = AffineCoupling(mask, network)
    for variable in layer.trainable_variables:  # not the identity (the last layer starts at zero)
        variable.assign(0.3 * np.random.default_rng(seed).standard_normal(variable.shape).astype(np.float32))
    return layer


def ffjord_layer():
    """``tfb.FFJORD`` as :func:`flowlib.continuous.continuous_flow` builds it (exact trace,
    RK4), on a random field. Its inverse and log-det are exact up to the solver's error
    (RK4 with 8 steps: about 2e-6 here, with points moved by up to 4), hence its tolerances."""
    field = continuous.VectorField(dim=2, hidden_units=(16,), seed=5)
    rng = np.random.default_rng(5)
    for variable in field.variables:  # the last layer starts at zero: the flow would be the identity
        variable.assign(variable + 0.4 * rng.standard_normal(variable.shape).astype(np.float32))
    return continuous.continuous_flow(field, num_steps=8).bijector


def autodiff_log_det(function, x):
    """``log|det J|`` of ``function`` at each point of ``x`` from autodiff, in float64."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = function(x)
    jacobian = tape.batch_jacobian(y, x)  # [batch, dim, dim]
    sign, log_abs_det = tf.linalg.slogdet(tf.cast(jacobian, tf.float64))
    assert np.all(sign.numpy() != 0)
    return log_abs_det.numpy()


def uniform(n, dim, low, high, seed=0):
    return tf.constant(np.random.default_rng(seed).uniform(low, high, (n, dim)).astype(np.float32))


# --------------------------------------------------------------------------- the table
@dataclass
class Case:
    """One layer of the table.

    ``kind``: the layer kind (a key of :data:`BAD_ARGUMENTS`); ``build``: makes the layer
    with non-trivial weights; ``dim``: its number of coordinates (None: any); ``scales``:
    latent points are drawn uniformly from ``[-scale, scale]`` (``low`` overrides the lower
    end); ``atol``, ``rtol``: round-trip tolerances, ``atol`` per unit of scale (float32's
    resolution grows with the points); ``log_det_*``: where and how closely the
    log-determinant is compared with autodiff. ``exact``: forward and inverse are exact
    inverses (not so for batch norm in training mode, whose ``inverse`` reads the batch);
    ``checks_coordinates``: refuses points with a wrong number of coordinates itself.
    """

    label: str
    kind: str
    build: Callable[[], tfb.Bijector]
    dim: int | None
    scales: tuple[float, ...] = (2.0, 10.0)
    atol: float = 2e-4
    rtol: float = 1e-5
    log_det_scale: float = 3.0
    log_det_atol: float = 1e-4
    log_det_rtol: float = 1e-7
    exact: bool = True
    checks_coordinates: bool = True
    volume_preserving: bool = False
    layer: tfb.Bijector | None = field(default=None, repr=False)

    def get(self) -> tfb.Bijector:
        if self.layer is None:
            self.layer = self.build()
        return self.layer


MASK5 = np.array([True, False, True, False, False])

STRICT = dict(atol=1e-5, rtol=0.0, log_det_scale=5.0, log_det_atol=2e-4)
IMAGE = dict(scales=(2.0,), atol=5e-5, rtol=0.0, log_det_scale=2.0, log_det_atol=1e-3, log_det_rtol=1e-4)

CASES = [
    # coupling layers (bijectors.py)
    Case(
        "additive-2d",
        "additive",
        lambda: AdditiveCoupling(half_mask(2), random_mlp(1, 1, 0)),
        2,
        volume_preserving=True,
    ),
    Case(
        "additive-5d",
        "additive",
        lambda: AdditiveCoupling(MASK5, random_mlp(2, 3, 1)),
        5,
        volume_preserving=True,
    ),
    Case("affine-2d", "affine", lambda: AffineCoupling(half_mask(2), random_mlp(1, 2, 2)), 2),
    Case("affine-5d", "affine", lambda: AffineCoupling(MASK5, random_mlp(2, 6, 3)), 5),
    Case(
        "affine-unbounded",
        "affine",
        lambda: AffineCoupling(half_mask(2), random_mlp(1, 2, 4), max_log_scale=None),
        2,
    ),
    Case(
        "affine-keep-last",
        "affine",
        lambda: AffineCoupling(half_mask(3, keep_first=False), random_mlp(1, 4, 5)),
        3,
    ),
    # normalisation layers
    Case("actnorm", "actnorm", actnorm_layer, 3),
    Case("batchnorm-eval", "batchnorm", lambda: batch_norm_layer(False), 2),
    Case("batchnorm-train", "batchnorm", lambda: batch_norm_layer(True), 2, exact=False),
    # spline couplings (splines.py): points from [-10, 10] reach into the identity tails
    Case(
        "spline-2d",
        "spline",
        lambda: SplineCoupling(half_mask(2), random_mlp(1, 23, 0), num_bins=8, bound=4.0),
        2,
        **STRICT,
    ),
    Case(
        "spline-5d",
        "spline",
        lambda: SplineCoupling(MASK5, random_mlp(2, 3 * 14, 1), num_bins=5, bound=3.0),
        5,
        **STRICT,
    ),
    Case(
        "spline-keep-last",
        "spline",
        lambda: SplineCoupling(
            half_mask(3, keep_first=False), random_mlp(1, 2 * 11, 2), num_bins=4, bound=5.0
        ),
        3,
        **STRICT,
    ),
    Case(
        "spline-two-bins",
        "spline",
        lambda: SplineCoupling(half_mask(2), random_mlp(1, 5, 3), num_bins=2, bound=2.0),
        2,
        **STRICT,
    ),
    # autoregressive layers (autoregressive.py)
    Case("maf-2d", "maf", lambda: MAF(2, random_made(2, 4)), 2, **STRICT),
    Case("maf-5d", "maf", lambda: MAF(5, random_made(5, 5)), 5, **STRICT),
    Case("iaf-2d", "iaf", lambda: IAF(2, random_made(2, 6)), 2, **STRICT),
    Case("iaf-4d", "iaf", lambda: IAF(4, random_made(4, 7), max_log_scale=None), 4, **STRICT),
    # learned linear mixing (flows.lu_linear: TFP's ScaleMatvecLU, which checks shapes its own way)
    Case("lu-3d", "lu", lambda: lu_layer(3, 8), 3, checks_coordinates=False, **STRICT),
    # continuous-time flows (continuous.py): TFP's FFJORD, which checks shapes its own way
    Case(
        "ffjord",
        "ffjord",
        ffjord_layer,
        2,
        scales=(2.0,),
        atol=2e-5,
        log_det_atol=5e-5,
        log_det_rtol=0.0,
        checks_coordinates=False,
    ),
    # image layers (images.py); Logit acts on any number of coordinates (64 here)
    Case(
        "logit",
        "logit",
        lambda: images.Logit(0.05),
        None,
        scales=(2.5,),
        log_det_scale=2.5,
        log_det_atol=1e-3,
        log_det_rtol=1e-4,
    ),
    Case("squeeze", "squeeze", lambda: images.Squeeze(4, 6, 3), 72, volume_preserving=True),
    Case(
        "unsqueeze-trailing",
        "unsqueeze",
        lambda: images.Unsqueeze(4, 4, 1, num_coordinates=21),
        21,
        volume_preserving=True,
    ),
    Case(
        "image-conv-checkerboard",
        "image-coupling",
        lambda: image_coupling("conv", (8, 8, 1), images.checkerboard_mask(8, 8, 1)),
        64,
        **IMAGE,
    ),
    Case(
        "image-conv-channels",
        "image-coupling",
        lambda: image_coupling("conv", (4, 4, 4), images.channel_mask(4, 4, 4, first_half=False)),
        64,
        **IMAGE,
    ),
    Case(
        "image-dense-checkerboard",
        "image-coupling",
        lambda: image_coupling("dense", (8, 8, 1), images.checkerboard_mask(8, 8, 1, parity=1)),
        64,
        **IMAGE,
    ),
    Case(
        "image-dense-channels",
        "image-coupling",
        lambda: image_coupling("dense", (4, 4, 4), images.channel_mask(4, 4, 4)),
        64,
        **IMAGE,
    ),
]


def cases(predicate=lambda case: True):
    chosen = [case for case in CASES if predicate(case)]
    return pytest.mark.parametrize("case", chosen, ids=[case.label for case in chosen])


def latent_points(case, scale, n=512, seed=0):
    return uniform(n, case.dim or 64, -scale, scale, seed)


# --------------------------------------------------------------------------- the contract
@cases(lambda case: case.exact)
def test_inverse_undoes_forward(case):
    layer = case.get()
    for scale in case.scales:
        x = latent_points(case, scale)
        y = layer.forward(x)
        assert np.max(np.abs(y.numpy() - x.numpy())) > 1e-3, "the layer is the identity: test is vacuous"
        # Fresh tensors, so TFP's cache cannot answer for the layer.
        atol, rtol = case.atol * scale, case.rtol
        np.testing.assert_allclose(layer.inverse(tf.identity(y)).numpy(), x.numpy(), rtol=rtol, atol=atol)
        y_again = layer.forward(tf.identity(layer.inverse(tf.identity(y))))
        np.testing.assert_allclose(y_again.numpy(), y.numpy(), rtol=rtol, atol=atol)
        if case.kind != "logit":  # and from data-side points (Logit's data live in [0, 1])
            x_back = layer.inverse(tf.identity(x))
            np.testing.assert_allclose(
                layer.forward(tf.identity(x_back)).numpy(), x.numpy(), rtol=rtol, atol=atol
            )


@cases(lambda case: case.exact)
def test_log_det_matches_autodiff(case):
    layer = case.get()
    x = latent_points(case, case.log_det_scale, n=4 if (case.dim or 64) > 8 else 64, seed=1)
    expected = autodiff_log_det(lambda v: layer.forward(v), x)
    fldj = layer.forward_log_det_jacobian(tf.identity(x), event_ndims=1).numpy()
    tolerance = dict(rtol=case.log_det_rtol, atol=case.log_det_atol)
    np.testing.assert_allclose(np.broadcast_to(fldj, expected.shape), expected, **tolerance)
    y = tf.identity(layer.forward(x))
    expected_inverse = autodiff_log_det(lambda v: layer.inverse(v), tf.identity(y))
    ildj = layer.inverse_log_det_jacobian(tf.identity(y), event_ndims=1).numpy()
    np.testing.assert_allclose(np.broadcast_to(ildj, expected_inverse.shape), expected_inverse, **tolerance)
    if case.volume_preserving:
        np.testing.assert_allclose(expected, 0.0, atol=1e-5)
    else:
        assert np.abs(expected).max() > 1e-2, "log|det J| is zero: test is vacuous"


@cases(lambda case: isinstance(case.get(), bijectors.FlowBijector) and case.exact)
def test_protocol_agrees_with_tfp_methods(case):
    layer = case.get()
    x = latent_points(case, case.log_det_scale, n=64, seed=2)
    y, log_det = layer.forward_and_log_det(x)
    np.testing.assert_allclose(y.numpy(), layer.forward(tf.identity(x)).numpy(), atol=1e-6)
    np.testing.assert_allclose(
        log_det.numpy(), layer.forward_log_det_jacobian(tf.identity(x), 1).numpy(), atol=1e-5
    )
    back, inverse_log_det = layer.inverse_and_log_det(tf.identity(y))
    np.testing.assert_allclose(back.numpy(), x.numpy(), atol=1e-4)
    np.testing.assert_allclose(inverse_log_det.numpy(), -log_det.numpy(), atol=1e-4)


@cases()
def test_one_pass_log_prob_equals_tfps_log_prob(case):
    layer = case.get()
    dim = case.dim or 64
    flow = tfd.TransformedDistribution(flows.standard_normal(dim), layer)
    log_prob = flows.one_pass_log_prob(flow)  # every layer kind has one (tests/test_flow.py: refusals)
    x = tf.identity(layer.forward(latent_points(case, 2.0, n=128, seed=3)))
    expected = flow.log_prob(tf.identity(x)).numpy()
    flows.clear_caches(flow)
    got = log_prob(tf.identity(x)).numpy()
    assert np.all(np.isfinite(expected))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=2e-4)


@cases(lambda case: case.dim is not None and case.checks_coordinates)
def test_points_with_a_wrong_number_of_coordinates_are_refused(case):
    layer = case.get()
    for wrong in (case.dim - 1, case.dim + 1):
        for direction in ("forward", "inverse"):
            with pytest.raises(ValueError, match=f"expects points with {case.dim} coordinates, got shape"):
                getattr(layer, direction)(tf.zeros([4, wrong]))


# Constructor errors, per layer kind: each names the argument.
BAD_ARGUMENTS = {
    "additive": [
        *[
            (lambda m=m: AdditiveCoupling(m), ValueError, "mask")
            for m in ([True, True], [False, False], [True])
        ],
        *[(lambda m=m: AdditiveCoupling(m), ValueError, "mask") for m in ([[True, False]], [0, 2])],
        (lambda: AdditiveCoupling(half_mask(2), hidden_units=(0,)), ValueError, "positive"),
    ],
    "affine": [
        (lambda: AffineCoupling(half_mask(2), network="not a network"), TypeError, "network"),
        (lambda: AffineCoupling(half_mask(2), max_log_scale=0.0), ValueError, "max_log_scale"),
        (lambda: half_mask(1), ValueError, "dim"),
        (lambda: MLP(1, 2, (0,)), ValueError, "positive"),
        (lambda: MLP(1, 2, seed=-1), ValueError, "seed"),
        (lambda: MLP(1, 2, zero_last="no"), TypeError, "zero_last"),
    ],
    "actnorm": [(lambda: ActNorm(0), ValueError, "dim"), (lambda: ActNorm(2.0), TypeError, "dim")],
    "batchnorm": [
        (lambda: BatchNormalization(2, training=True), TypeError, "training"),
        (lambda: BatchNormalization(2, tf.Variable(False), momentum=1.0), ValueError, "momentum"),
        (lambda: BatchNormalization(2, tf.Variable(False), epsilon=0.0), ValueError, "epsilon"),
    ],
    "spline": [
        (lambda: SplineCoupling(half_mask(2), num_bins=0), ValueError, "num_bins"),
        (lambda: SplineCoupling(half_mask(2), num_bins=1), ValueError, "num_bins"),
        (lambda: SplineCoupling(half_mask(2), num_bins=2.5), TypeError, "num_bins"),
        (lambda: SplineCoupling(half_mask(2), bound=0.0), ValueError, "bound"),
        (lambda: SplineCoupling(half_mask(2), bound=-3.0), ValueError, "bound"),
        (lambda: SplineCoupling(half_mask(2), bound=float("inf")), ValueError, "bound"),
        (lambda: SplineCoupling(half_mask(2), bound=float("nan")), ValueError, "bound"),
        (lambda: SplineCoupling(half_mask(2), bound=None), TypeError, "bound"),
        (lambda: SplineCoupling(half_mask(2), hidden_units=(0,)), ValueError, "hidden_units"),
        (lambda: SplineCoupling(half_mask(2), hidden_units=(16, 2.5)), TypeError, "hidden_units"),
        (lambda: SplineCoupling(half_mask(2), hidden_units="64"), TypeError, "hidden_units"),
    ],
    "maf": [
        (lambda: MAF(1), ValueError, "dim"),
        (lambda: MAF(2.0), TypeError, "dim"),
        (lambda: MAF(2, hidden_units=(-4,)), ValueError, "hidden_units"),
        (lambda: MAF(2, max_log_scale=0.0), ValueError, "max_log_scale"),
        (lambda: MAF(2, network=3), TypeError, "network"),
    ],
    "iaf": [(lambda: IAF(1), ValueError, "dim"), (lambda: IAF(2, seed=-1), ValueError, "seed")],
    "lu": [
        (lambda: flows.lu_linear(1), ValueError, "dim"),
        (lambda: flows.lu_linear(2, seed=1.5), TypeError, "seed"),
    ],
    "logit": [
        (lambda: images.Logit(0.5), ValueError, "alpha"),
        (lambda: images.Logit(0.0), ValueError, "alpha"),
        (lambda: images.Logit(0.05).inverse(np.full((2, 4), 3.0, np.float32)), ValueError, r"\[0, 1\]"),
        (
            lambda: images.Logit().inverse_log_det_jacobian(np.full((2, 4), -0.1, np.float32), event_ndims=1),
            ValueError,
            r"\[0, 1\]",
        ),
    ],
    "squeeze": [
        (lambda: images.Squeeze(7, 8), ValueError, "even height and width"),
        (lambda: images.Squeeze(8, 8, 0), ValueError, "channels must be a positive integer"),
        (lambda: images.Squeeze("8", 8), TypeError, "height must be an integer"),
        (lambda: images.Squeeze(4, 4, num_coordinates=17.5), TypeError, "num_coordinates must be an integer"),
        (lambda: images.Squeeze(4, 4, num_coordinates=15), ValueError, "num_coordinates"),
    ],
    "unsqueeze": [(lambda: images.Unsqueeze(4, 5), ValueError, "even height and width")],
    "ffjord": [
        (lambda: continuous.VectorField(0), ValueError, "dim"),
        (lambda: continuous.VectorField(2, hidden_units=(0,)), ValueError, "hidden_units"),
        (lambda: continuous.continuous_flow("a field"), TypeError, "vector_field"),
        (lambda: continuous.continuous_flow(continuous.VectorField(2), num_steps=0), ValueError, "num_steps"),
        (lambda: continuous.continuous_flow(continuous.VectorField(2), solver="euler"), ValueError, "solver"),
        (
            lambda: continuous.continuous_flow(continuous.VectorField(2), solver="dopri", rtol=2.0),
            ValueError,
            "rtol",
        ),
    ],
    "image-coupling": [
        (lambda: images.ConvNet(8, 8, 1, np.ones(63, bool)), ValueError, "64 entries"),
        (lambda: images.DenseNet(8, 8, 1, np.ones(128, bool)), ValueError, "64 entries"),
        (
            lambda: images.ConvNet(8, 8, 1, images.checkerboard_mask(8, 8, 1), hidden_channels=0),
            ValueError,
            "hidden_channels",
        ),
    ],
}


@pytest.mark.parametrize("kind", list(BAD_ARGUMENTS))
def test_bad_constructor_arguments_are_named(kind):
    for make, error, match in BAD_ARGUMENTS[kind]:
        with pytest.raises(error, match=match):
            make()


def test_the_table_covers_every_layer_kind():
    """Every bijector class flowlib defines has a row (and constructor errors) in the table."""
    kinds = {case.kind for case in CASES}
    assert kinds == set(BAD_ARGUMENTS), "a layer kind without constructor checks, or the reverse"
    in_table = {type(case.get()) for case in CASES}
    for module in (bijectors, splines, autoregressive, images, flows, continuous):
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__ or not issubclass(cls, tfb.Bijector):
                continue
            if name.startswith("_") or name == "FlowBijector" or name == "Coupling":
                continue  # private or abstract bases: their subclasses are in the table
            assert cls in in_table, f"{module.__name__}.{name} is not in the contract table"
    # and the couplings keep their kept coordinates, change the others
    for case in CASES:
        layer = case.get()
        if isinstance(layer, bijectors.Coupling):
            x = latent_points(case, 2.0)
            y = layer.forward(x).numpy()
            np.testing.assert_array_equal(y[:, layer.mask], x.numpy()[:, layer.mask], err_msg=case.label)
            assert np.all(np.abs(y[:, ~layer.mask] - x.numpy()[:, ~layer.mask]).max(axis=0) > 1e-3), (
                case.label
            )
