"""Bad input is refused at the door, the same way by every entry point.

Three parts: the checkers of flowlib.validation, tried by Hypothesis on the inputs nobody
lists; a table of the bad inputs that public functions used to accept silently (or refuse
late, from deep inside TensorFlow); and every "seeded" promise of a docstring, kept.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import tensorflow as tf
from conftest import perturb
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from flowlib import bijectors, checkpoint, data, flows, metrics, plotting, recipe, train, validation, widgets
from flowlib.autoregressive import MADE

NUMPY_INTEGERS = (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64)
NUMPY_FLOATS = (np.float16, np.float32, np.float64)
# Things that are not numbers, whatever they look like.
NOT_NUMBERS = st.one_of(
    st.text(max_size=5),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.just(np.bool_(True)),
    st.just(b"1"),
)


def integers_of_every_kind(values=st.integers(-(10**6), 10**6)):  # noqa: B008 (a strategy, built once)
    """Python ints and every numpy integer type that can hold the value."""

    def as_kind(value):
        kinds = [int] + [k for k in NUMPY_INTEGERS if np.iinfo(k).min <= value <= np.iinfo(k).max]
        return st.sampled_from(kinds).map(lambda kind: kind(value))

    return values.flatmap(as_kind)


# ---------------------------------------------------------------------- the checkers
@given(integers_of_every_kind())
def test_positive_int_accepts_every_integer_kind_and_refuses_non_positive(value):
    if value >= 1:
        result = validation.positive_int(value, "count")
        assert result == int(value) and type(result) is int
    else:
        with pytest.raises(ValueError, match=f"count must be a positive integer, got {int(value)}"):
            validation.positive_int(value, "count")


@given(st.one_of(NOT_NUMBERS, st.floats(allow_nan=True), st.sampled_from(NUMPY_FLOATS).map(lambda k: k(2.0))))
def test_positive_int_refuses_what_is_not_an_integer(value):
    with pytest.raises(TypeError, match="count must be an integer"):
        validation.positive_int(value, "count")


@given(
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.tuples(st.sampled_from(NUMPY_FLOATS), st.floats(-1e4, 1e4)).map(lambda p: p[0](p[1])),
        integers_of_every_kind(),
    )
)
def test_positive_float_accepts_finite_positive_numbers_only(value):
    as_float = float(value)
    if math.isfinite(as_float) and as_float > 0:
        assert validation.positive_float(value, "rate") == as_float
    else:
        with pytest.raises(ValueError, match="rate must be a"):
            validation.positive_float(value, "rate")


@given(NOT_NUMBERS)
def test_positive_float_refuses_what_is_not_a_number(value):
    with pytest.raises(TypeError, match="rate must be a number"):
        validation.positive_float(value, "rate")


@given(st.integers(-(2**40), 2**40))
def test_seed_is_an_integer_in_int32_range(value):
    if 0 <= value <= validation.MAX_SEED:
        assert validation.seed(value) == value
    else:
        with pytest.raises(ValueError, match="seed"):
            validation.seed(value)


def test_seed_none_is_refused_because_it_would_not_repeat():
    with pytest.raises(TypeError, match="seed must be an integer"):
        validation.seed(None)


@given(
    st.one_of(
        st.lists(integers_of_every_kind(st.integers(1, 512)), min_size=1, max_size=4),
        st.tuples(integers_of_every_kind(st.integers(1, 512))),
    )
)
def test_positive_ints_accepts_sequences_of_positive_integers(value):
    assert validation.positive_ints(value, "hidden_units") == tuple(int(v) for v in value)


@given(
    st.one_of(
        st.text(min_size=1, max_size=4),
        st.integers(),
        st.none(),
        st.floats(),
        st.lists(st.floats(allow_nan=False), min_size=1, max_size=3),
        st.lists(st.booleans(), min_size=1),
    )
)
def test_positive_ints_refuses_strings_numbers_and_floats(value):
    with pytest.raises(TypeError, match="hidden_units must be a sequence of positive integers"):
        validation.positive_ints(value, "hidden_units")


@given(st.lists(st.integers(-5, 5), min_size=1, max_size=4).filter(lambda v: min(v) <= 0))
def test_positive_ints_refuses_non_positive_entries(value):
    with pytest.raises(ValueError, match="hidden_units must contain positive integers only"):
        validation.positive_ints(value, "hidden_units")


@given(
    hnp.arrays(
        st.sampled_from([np.float32, np.float64]),
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=6),
        elements=st.floats(-1e6, 1e6, width=32),
    )
)
def test_points_returns_float32_copies_of_finite_arrays(array):
    result = validation.points(array, "x", dim=array.shape[1])
    assert result.dtype == np.float32 and result.shape == array.shape
    np.testing.assert_array_equal(result, array.astype(np.float32))


@given(
    hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=5),
        elements=st.floats(-10, 10),
    ),
    st.sampled_from([np.nan, np.inf, -np.inf, 1e39]),
    st.data(),
)
def test_points_refuses_any_non_finite_value(array, bad, data_):
    row = data_.draw(st.integers(0, array.shape[0] - 1))
    col = data_.draw(st.integers(0, array.shape[1] - 1))
    array[row, col] = bad
    with pytest.raises(ValueError, match="x contains NaN or infinite values"):
        validation.points(array, "x")


@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=0, max_dims=4, max_side=4)), st.integers(1, 4))
def test_points_refuses_every_other_shape(array, dim):
    assume(not (array.ndim == 2 and array.shape[1] == dim and array.shape[0] >= 1))
    with pytest.raises(ValueError, match=r"x (must have shape \[num_points, \d\]|needs at least)"):
        validation.points(array, "x", dim=dim)


@pytest.mark.parametrize(
    "value",
    [np.array([["a", "b"]]), np.array([[True, False]]), [[1 + 2j, 0]], np.array([[None, 1.0]], dtype=object)],
)
def test_points_refuses_non_numeric_arrays(value):
    with pytest.raises(TypeError, match="x must be a numeric array"):
        validation.points(value, "x")


def test_points_needs_enough_points():
    with pytest.raises(ValueError, match="x needs at least 2 points, got 1"):
        validation.points(np.zeros((1, 2)), "x", dim=2, min_points=2)


def test_choice_and_boolean_name_the_argument():
    with pytest.raises(ValueError, match="normalization must be one of 'a', 'b'; got 'c'"):
        validation.choice("c", "normalization", ("a", "b"))
    with pytest.raises(TypeError, match="scaling must be True or False, got 'False'"):
        validation.boolean("False", "scaling")
    assert validation.boolean(np.bool_(False), "scaling") is False


def test_num_layers_num_bins_and_spline_bound_refuse_the_edges():
    assert validation.num_layers(np.int64(1000)) == 1000
    with pytest.raises(ValueError, match="num_layers must be at most 1000, got 1001"):
        validation.num_layers(1001)
    with pytest.raises(ValueError, match="couplings must be a positive integer, got 0"):
        validation.num_layers(0, "couplings")
    with pytest.raises(TypeError, match="num_layers must be an integer, got True"):
        validation.num_layers(True)
    assert validation.num_bins(np.int16(999)) == 999
    for bad in (1, 1000):
        with pytest.raises(ValueError, match=f"num_bins must be .*, got {bad}"):
            validation.num_bins(bad)
    assert validation.spline_bound(np.float32(1e4)) == 1e4
    for bad, error in ((1.0001e4, ValueError), (0.0, ValueError), (math.nan, ValueError), ("4", TypeError)):
        with pytest.raises(error, match="bound"):
            validation.spline_bound(bad)


@pytest.mark.parametrize("value", [[0.1, 0.5], np.arange(6).reshape(2, 3), np.float32(0.3), [[1, 2]]])
def test_array_accepts_numeric_arrays_of_any_shape(value):
    np.testing.assert_array_equal(validation.array(value, "y"), np.asarray(value))


@pytest.mark.parametrize(
    "value,error,words",
    [
        ([0.1, math.nan], ValueError, "y contains NaN or infinite values"),
        ([math.inf], ValueError, "y contains NaN"),
        ([True, False], TypeError, "y must be a numeric array, got dtype bool"),
        (["0.5"], TypeError, "y must be a numeric array"),
        ([[1, 2], [3]], ValueError, "y must be a numeric array"),
    ],
)
def test_array_refuses_non_numbers_and_non_finite_values(value, error, words):
    with pytest.raises(error, match=words):
        validation.array(value, "y")


def test_array_keeps_non_finite_values_when_asked():
    assert np.isnan(validation.array([0.1, math.nan], "y", finite=False)).sum() == 1


# ---------------------------------------------------------------------- bijector properties
SMALL = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def coupling_case(draw):
    dim = draw(st.integers(2, 4))
    mask = draw(st.lists(st.booleans(), min_size=dim, max_size=dim).filter(lambda m: 0 < sum(m) < dim))
    x = draw(hnp.arrays(np.float32, (draw(st.integers(1, 5)), dim), elements=st.floats(-5, 5, width=32)))
    return mask, x, draw(st.integers(0, 1000)), draw(st.sampled_from([None, 0.5, 2.0]))


@SMALL
@given(coupling_case())
def test_affine_coupling_inverts_and_its_log_det_matches_autodiff(case):
    mask, x, seed, bound = case
    layer = bijectors.AffineCoupling(mask, hidden_units=(8,), max_log_scale=bound, seed=seed)
    layer.network.kernels[-1].assign(tf.random.stateless_normal(layer.network.kernels[-1].shape, [seed, 1]))
    x = tf.constant(x)
    y = layer.forward(x)
    np.testing.assert_allclose(layer.inverse(y).numpy(), x.numpy(), rtol=1e-4, atol=1e-4)
    # The Jacobian by forward-mode autodiff, one column per coordinate (new input tensors:
    # TFP's cache would hand back the y above, computed off the accumulator).
    columns = []
    for j in range(x.shape[1]):
        tangent = tf.one_hot(tf.fill([x.shape[0]], j), x.shape[1])
        x_j = tf.identity(x)
        with tf.autodiff.ForwardAccumulator(x_j, tangent) as accumulator:
            y = layer.forward(x_j)
        columns.append(accumulator.jvp(y).numpy())
    jacobian = np.stack(columns, axis=-1).astype(np.float64)  # [batch, dim_out, dim_in]
    expected = np.linalg.slogdet(jacobian)[1]
    np.testing.assert_allclose(
        layer.forward_log_det_jacobian(x, event_ndims=1).numpy(), expected, rtol=1e-4, atol=1e-4
    )
    if bound is not None:
        _, log_scale = layer.shift_and_log_scale(tf.gather(x, np.flatnonzero(mask), axis=-1))
        assert np.all(np.abs(log_scale.numpy()) <= bound + 1e-6)


@SMALL
@given(coupling_case())
def test_additive_coupling_inverts_and_preserves_volume(case):
    mask, x, seed, _ = case
    layer = bijectors.AdditiveCoupling(mask, hidden_units=(8,), seed=seed)
    layer.network.kernels[-1].assign(tf.random.stateless_normal(layer.network.kernels[-1].shape, [seed, 2]))
    y = layer.forward(tf.constant(x))
    np.testing.assert_allclose(layer.inverse(y).numpy(), x, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(layer.forward_log_det_jacobian(x, event_ndims=1).numpy(), 0.0)


# ---------------------------------------------------------------------- accepted silently before
@pytest.fixture(scope="module")
def tiny():
    flow = flows.realnvp(num_layers=2, hidden_units=(8,), normalization="none")
    perturb(flow, seed=5)
    return flow


@pytest.fixture(scope="module")
def hi():
    return data.PictureDistribution.from_text("Hi")


# (what, call, error, words the message must contain); `f` is a tiny flow, `t` a target.
BAD_INPUT = [
    (
        "realnvp max_log_scale=inf (NaN log_prob)",
        lambda f, t: flows.realnvp(max_log_scale=math.inf),
        ValueError,
        "max_log_scale must be a finite number",
    ),
    (
        "realnvp max_log_scale=nan",
        lambda f, t: flows.realnvp(max_log_scale=math.nan),
        ValueError,
        "max_log_scale",
    ),
    ("realnvp max_log_scale='2'", lambda f, t: flows.realnvp(max_log_scale="2"), TypeError, "max_log_scale"),
    (
        "realnvp hidden_units='64' (widths 6 and 4)",
        lambda f, t: flows.realnvp(hidden_units="64"),
        TypeError,
        "hidden_units must be a sequence",
    ),
    (
        "realnvp hidden_units=(64.5,)",
        lambda f, t: flows.realnvp(hidden_units=(64.5,)),
        TypeError,
        "hidden_units",
    ),
    (
        "realnvp hidden_units=(True,)",
        lambda f, t: flows.realnvp(hidden_units=(True, 8)),
        TypeError,
        "hidden_units",
    ),
    ("realnvp seed=-1", lambda f, t: flows.realnvp(seed=-1), ValueError, "seed must be a non-negative"),
    ("realnvp seed=None", lambda f, t: flows.realnvp(seed=None), TypeError, "seed"),
    ("realnvp seed=2.5", lambda f, t: flows.realnvp(seed=2.5), TypeError, "seed"),
    # Issue 20: every builder checks every argument itself, before any work.
    (
        "maf seed=-1 (was accepted)",
        lambda f, t: flows.maf(seed=-1),
        ValueError,
        "seed must be a non-negative integer, got -1",
    ),
    (
        "iaf seed=2**40 (was accepted)",
        lambda f, t: flows.iaf(seed=2**40),
        ValueError,
        "seed must be at most 2147483647",
    ),
    (
        "maf seed=1.5 (TF's InvalidArgumentError)",
        lambda f, t: flows.maf(seed=1.5),
        TypeError,
        "seed must be an integer, got 1.5",
    ),
    (
        "maf seed='0' (raw TypeError)",
        lambda f, t: flows.maf(seed="0"),
        TypeError,
        "seed must be an integer, got '0'",
    ),
    (
        "maf inverse='yes' (built an IAF)",
        lambda f, t: flows.maf(inverse="yes"),
        TypeError,
        "inverse must be True or False, got 'yes'",
    ),
    ("maf normalization checked", lambda f, t: flows.maf(normalization="layer"), ValueError, "normalization"),
    (
        "spline_flow seed=-1 (said got -1000)",
        lambda f, t: flows.spline_flow(seed=-1),
        ValueError,
        "seed must be a non-negative integer, got -1",
    ),
    (
        "spline_flow seed=None (raw TypeError)",
        lambda f, t: flows.spline_flow(seed=None),
        TypeError,
        "seed must be an integer",
    ),
    (
        "spline_flow permutation='bogus' with one layer (was accepted)",
        lambda f, t: flows.spline_flow(num_layers=1, permutation="bogus"),
        ValueError,
        "permutation must be one of 'reverse', 'random', 'lu'; got 'bogus'",
    ),
    (
        "spline_flow num_layers=10**9 (was not refused)",
        lambda f, t: flows.spline_flow(num_layers=10**9),
        ValueError,
        "num_layers must be at most 1000, got 1000000000",
    ),
    (
        "spline_flow bound=1e39 (failed in TF)",
        lambda f, t: flows.spline_flow(bound=1e39),
        ValueError,
        "bound must be at most 10000",
    ),
    (
        "spline_flow bound=1e15 (non-finite densities)",
        lambda f, t: flows.spline_flow(bound=1e15),
        ValueError,
        "got 1e+15",
    ),
    (
        "realnvp num_layers=2**40",
        lambda f, t: flows.realnvp(num_layers=2**40),
        ValueError,
        "num_layers must be at most 1000",
    ),
    (
        "nice num_layers=1001",
        lambda f, t: flows.nice(num_layers=1001),
        ValueError,
        "num_layers must be at most 1000, got 1001",
    ),
    ("lu_linear seed=-1 (numpy error)", lambda f, t: flows.lu_linear(2, seed=-1), ValueError, "seed"),
    (
        "MADE seed=-1 (issue 21: was accepted)",
        lambda f, t: MADE(2, 2, seed=-1),
        ValueError,
        "seed must be a non-negative integer, got -1",
    ),
    ("MADE seed=2.5", lambda f, t: MADE(2, 2, seed=2.5), TypeError, "seed"),
    (
        "Recipe batch_size=0 (caught late, in fit)",
        lambda f, t: recipe.Recipe(batch_size=0),
        ValueError,
        "batch_size must be a positive integer, got 0",
    ),
    (
        "Recipe learning_rate=-1 (caught late, in fit)",
        lambda f, t: recipe.Recipe(learning_rate=-1),
        ValueError,
        "learning_rate must be a positive number, got -1",
    ),
    (
        "Recipe num_layers=2**40 (said seed must be at most -1097364145)",
        lambda f, t: recipe.Recipe(num_layers=2**40),
        ValueError,
        "num_layers must be at most 1000, got 1099511627776",
    ),
    ("Recipe layer='glow'", lambda f, t: recipe.Recipe(layer="glow"), ValueError, "layer must be one of"),
    ("Recipe schedule='linear'", lambda f, t: recipe.Recipe(schedule="linear"), ValueError, "schedule"),
    ("Recipe jit_compile='yes'", lambda f, t: recipe.Recipe(jit_compile="yes"), TypeError, "jit_compile"),
    ("Recipe bound=1e39", lambda f, t: recipe.SPLINE.replace(bound=1e39), ValueError, "bound"),
    ("Recipe.build seed=-1", lambda f, t: recipe.SPLINE.build(seed=-1), ValueError, "seed"),
    (
        "from_text font_size=1 ('please report this')",
        lambda f, t: data.PictureDistribution.from_text("Flow", font_size=1),
        ValueError,
        "font_size must be at least 8, got 1",
    ),
    (
        "from_text font_size=10000 (41.7 GiB)",
        lambda f, t: data.PictureDistribution.from_text("Flow", font_size=10000),
        ValueError,
        "font_size must be at most 500, got 10000",
    ),
    (
        "from_text long text (huge canvas)",
        lambda f, t: data.PictureDistribution.from_text("a" * 1000),
        ValueError,
        "use a shorter text or a smaller font_size",
    ),
    (
        "from_text unknown font family (fell back silently)",
        lambda f, t: data.PictureDistribution.from_text("Flow", font_family="No Such Font"),
        ValueError,
        "font_family 'No Such Font' is not a font matplotlib can find",
    ),
    (
        "from_text font_weight='fat'",
        lambda f, t: data.PictureDistribution.from_text("Flow", font_weight="fat"),
        ValueError,
        "font_weight must be one of",
    ),
    (
        "from_text characters the font lacks (trained on boxes)",
        lambda f, t: data.PictureDistribution.from_text("Hi 漢字"),
        ValueError,
        "has characters the font 'DejaVu Sans' cannot draw ('漢', '字')",
    ),
    (
        "from_text width=0 (checked before rendering)",
        lambda f, t: data.PictureDistribution.from_text("Flow", width=0.0),
        ValueError,
        "width",
    ),
    (
        "from_image invert='yes'",
        lambda f, t: data.PictureDistribution.from_image(np.eye(4), invert="yes"),
        TypeError,
        "invert must be True or False",
    ),
    (
        "realnvp normalize_every=2.0",
        lambda f, t: flows.realnvp(normalize_every=2.0),
        TypeError,
        "normalize_every",
    ),
    (
        "nice permutation checked with one layer",
        lambda f, t: flows.nice(num_layers=1, permutation="shuffle"),
        ValueError,
        "permutation",
    ),
    ("nice scaling='no'", lambda f, t: flows.nice(scaling="no"), TypeError, "scaling"),
    ("set_training 'False' (was True)", lambda f, t: flows.set_training(f, "False"), TypeError, "training"),
    (
        "initialize_actnorm on 1 point (divides by 0)",
        lambda f, t: flows.initialize_actnorm(f, np.zeros((1, 2))),
        ValueError,
        "at least 2 points",
    ),
    (
        "trace of a non-flow",
        lambda f, t: flows.trace("flow", np.zeros((3, 2))),
        TypeError,
        "flow must be a flow",
    ),
    ("MLP hidden_units='64'", lambda f, t: bijectors.MLP(1, 2, "64"), TypeError, "hidden_units"),
    ("MLP seed=-3", lambda f, t: bijectors.MLP(1, 2, (4,), seed=-3), ValueError, "seed"),
    (
        "AffineCoupling max_log_scale=inf",
        lambda f, t: bijectors.AffineCoupling([True, False], max_log_scale=math.inf),
        ValueError,
        "max_log_scale",
    ),
    ("ActNorm dim=2.7 (was 2)", lambda f, t: bijectors.ActNorm(2.7), TypeError, "dim"),
    ("ActNorm dim='2'", lambda f, t: bijectors.ActNorm("2"), TypeError, "dim"),
    (
        "BatchNormalization dim=0",
        lambda f, t: bijectors.BatchNormalization(0, tf.Variable(False)),
        ValueError,
        "dim",
    ),
    (
        "BatchNormalization epsilon=inf",
        lambda f, t: bijectors.BatchNormalization(2, tf.Variable(False), epsilon=math.inf),
        ValueError,
        "epsilon",
    ),
    ("half_mask dim=2.5", lambda f, t: bijectors.half_mask(2.5), TypeError, "dim"),
    (
        "evaluate on 0 points (NaN gap)",
        lambda f, t: metrics.evaluate(f, t, np.zeros((0, 2))),
        ValueError,
        "points needs at least 2 points, got 0",
    ),
    (
        "evaluate on 1 point (NaN standard error)",
        lambda f, t: metrics.evaluate(f, t, np.zeros((1, 2))),
        ValueError,
        "at least 2 points",
    ),
    (
        "evaluate with a target without entropy",
        lambda f, t: metrics.evaluate(f, object(), np.zeros((4, 2))),
        TypeError,
        "entropy",
    ),
    ("nll on 0 points (NaN)", lambda f, t: metrics.nll(f, np.zeros((0, 2))), ValueError, "at least 1 point"),
    (
        "log_prob batch_size=2.0",
        lambda f, t: metrics.log_prob(f, np.zeros((3, 2)), batch_size=2.0),
        TypeError,
        "batch_size",
    ),
    (
        "fit learning_rate=inf",
        lambda f, t: train.fit(f, np.zeros((8, 2)), learning_rate=math.inf, progress=False),
        ValueError,
        "learning_rate must be a finite number",
    ),
    (
        "fit learning_rate=1e39 (inf in float32)",
        lambda f, t: train.fit(f, np.zeros((8, 2)), learning_rate=1e39, progress=False),
        ValueError,
        "learning_rate must lie between",
    ),
    (
        "fit learning_rate=nan",
        lambda f, t: train.fit(f, np.zeros((8, 2)), learning_rate=math.nan, progress=False),
        ValueError,
        "learning_rate",
    ),
    (
        "fit learning_rate='1e-3'",
        lambda f, t: train.fit(f, np.zeros((8, 2)), learning_rate="1e-3", progress=False),
        TypeError,
        "learning_rate",
    ),
    (
        "fit seed=-1 (numpy error before)",
        lambda f, t: train.fit(f, np.zeros((8, 2)), seed=-1, progress=False),
        ValueError,
        "seed",
    ),
    (
        "fit seed=2**40 (TensorFlow error before)",
        lambda f, t: train.fit(f, np.zeros((8, 2)), seed=2**40, progress=False),
        ValueError,
        "seed",
    ),
    (
        "fit seed=None",
        lambda f, t: train.fit(f, np.zeros((8, 2)), seed=None, progress=False),
        TypeError,
        "seed",
    ),
    (
        "fit max_seconds=inf",
        lambda f, t: train.fit(f, np.zeros((8, 2)), max_seconds=math.inf, progress=False),
        ValueError,
        "max_seconds",
    ),
    (
        "fit max_seconds='5'",
        lambda f, t: train.fit(f, np.zeros((8, 2)), max_seconds="5", progress=False),
        TypeError,
        "max_seconds",
    ),
    (
        "fit callback=3",
        lambda f, t: train.fit(f, np.zeros((8, 2)), callback=3, progress=False),
        TypeError,
        "callback",
    ),
    ("fit progress='no'", lambda f, t: train.fit(f, np.zeros((8, 2)), progress="no"), TypeError, "progress"),
    (
        "fit validation_data with 0 points",
        lambda f, t: train.fit(f, np.zeros((8, 2)), validation_data=np.zeros((0, 2)), progress=False),
        ValueError,
        "validation_data",
    ),
    ("fit on a non-flow", lambda f, t: train.fit(None, np.zeros((8, 2)), progress=False), TypeError, "flow"),
    ("sample seed=-1", lambda f, t: t.sample(5, seed=-1), ValueError, "seed"),
    ("sample seed=None (not repeatable)", lambda f, t: t.sample(5, seed=None), TypeError, "seed"),
    (
        "from_image threshold='0.5'",
        lambda f, t: data.PictureDistribution.from_image(np.eye(4), threshold="0.5"),
        TypeError,
        "threshold",
    ),
    (
        "from_image threshold=nan",
        lambda f, t: data.PictureDistribution.from_image(np.eye(4), threshold=math.nan),
        ValueError,
        "threshold",
    ),
    (
        "target log_prob of NaN (was -inf)",
        lambda f, t: t.log_prob(np.array([[np.nan, 0.0]])),
        ValueError,
        "NaN",
    ),
    ("target log_prob of strings", lambda f, t: t.log_prob(np.array([["1", "2"]])), TypeError, "numeric"),
    (
        "render_text font_size=72.0",
        lambda f, t: data.render_text("a", font_size=72.0),
        TypeError,
        "font_size",
    ),
    (
        "plot_layer_grid num_samples=np.int64(0)",
        lambda f, t: plotting.plot_layer_grid(f, num_samples=np.int64(0)),
        ValueError,
        "num_samples",
    ),
    (
        "plot_layer_grid seed=-1",
        lambda f, t: plotting.plot_layer_grid(f, num_samples=10, seed=-1),
        ValueError,
        "seed",
    ),
    (
        "plot_stages ncols=2.5",
        lambda f, t: plotting.plot_stages([("a", np.zeros((2, 2)))], None, ncols=2.5),
        TypeError,
        "ncols",
    ),
    (
        "density_grid resolution=0 (empty grid)",
        lambda f, t: plotting.density_grid(f, (0, 1, 0, 1), resolution=0),
        ValueError,
        "resolution",
    ),
    (
        "density_grid inverted extent",
        lambda f, t: plotting.density_grid(f, (1, 0, 0, 1)),
        ValueError,
        "extent",
    ),
    (
        "plot_density negative margin",
        lambda f, t: plotting.plot_density(f, t, margin=-9.0),
        ValueError,
        "margin",
    ),
    (
        "plot_points limit=0",
        lambda f, t: plotting.plot_points(np.zeros((2, 2)), limit=0.0),
        ValueError,
        "limit",
    ),
    (
        "layer_explorer num_samples=np.int64(0)",
        lambda f, t: widgets.layer_explorer(f, num_samples=np.int64(0)),
        ValueError,
        "num_samples",
    ),
    ("word_trainer steps=0", lambda f, t: widgets.word_trainer(steps=0, static=True), ValueError, "steps"),
    (
        "load_or_train with a non-callable",
        lambda f, t: checkpoint.load_or_train(f, "x", train=None),
        TypeError,
        "train",
    ),
]


@pytest.mark.parametrize("call,error,words", [pytest.param(*case[1:], id=case[0]) for case in BAD_INPUT])
def test_bad_input_is_refused_with_a_clear_error(tiny, hi, call, error, words):
    before = [v.numpy().copy() for v in tiny.variables]
    with pytest.raises(error) as raised:
        call(tiny, hi)
    assert words in str(raised.value)
    assert "\n" not in str(raised.value)
    for a, b in zip(before, tiny.variables):  # refused before any work
        np.testing.assert_array_equal(a, b.numpy())
    plt.close("all")


def test_numpy_numbers_are_accepted_where_python_numbers_are(hi):
    flow = flows.realnvp(
        num_layers=np.int64(2),
        hidden_units=np.array([8]),
        seed=np.int32(3),
        normalization="none",
        max_log_scale=np.float32(2.0),
    )
    points = hi.sample(np.int64(64), seed=np.uint8(1))
    history = train.fit(
        flow,
        points,
        steps=np.int64(3),
        batch_size=np.int32(16),
        learning_rate=np.float32(1e-3),
        seed=np.int64(0),
        steps_per_call=np.int16(3),
        progress=False,
    )
    assert history.steps == 3
    assert np.isfinite(metrics.log_prob(flow, points, batch_size=np.int64(10))).all()


# ---------------------------------------------------------------------- seeded promises
def test_realnvp_and_nice_seed_every_weight_and_permutation():
    for build in (
        lambda s: flows.realnvp(num_layers=3, hidden_units=(8,), permutation="random", dim=4, seed=s),
        lambda s: flows.nice(num_layers=3, hidden_units=(8,), permutation="random", dim=4, seed=s),
    ):
        a, b, c = build(7), build(7), build(8)
        for x, y in zip(a.variables, b.variables):
            np.testing.assert_array_equal(x.numpy(), y.numpy())
        orders = [
            [
                layer.permutation.numpy().tolist()
                for layer in flows.layers(f)
                if isinstance(layer, tfp_permute())
            ]
            for f in (a, b, c)
        ]
        assert orders[0] == orders[1]
        kernels = [[v.numpy() for v in f.trainable_variables if "kernel_0" in v.name] for f in (a, c)]
        assert not all(np.array_equal(x, y) for x, y in zip(*kernels))


def tfp_permute():
    import tensorflow_probability as tfp

    return tfp.bijectors.Permute


def test_fit_with_the_same_seed_draws_the_same_batches(hi):
    points = hi.sample(2000, seed=0)
    runs = []
    for seed in (4, 4, 5):
        flow = flows.realnvp(num_layers=2, hidden_units=(8,), normalization="none", seed=0)
        runs.append(
            train.fit(
                flow, points, steps=10, batch_size=64, seed=seed, steps_per_call=10, progress=False
            ).loss
        )
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_layer_grid_and_explorer_draw_the_same_seeded_points(tiny):
    def offsets(fig):
        return [ax.collections[0].get_offsets().data.copy() for ax in fig.axes if ax.collections]

    first, again = (offsets(plotting.plot_layer_grid(tiny, num_samples=200, seed=3)) for _ in range(2))
    other = offsets(plotting.plot_layer_grid(tiny, num_samples=200, seed=4))
    static = offsets(widgets.layer_explorer(tiny, num_samples=200, seed=3, static=True))
    plt.close("all")
    for a, b, c in zip(first, again, static):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    assert not np.array_equal(first[0], other[0])


def test_metrics_accept_any_tfp_distribution_over_vectors(hi):
    # Notebook 03 compares flows with Gaussian baselines through the same functions.
    import tensorflow_probability as tfp

    tfd = tfp.distributions
    points = hi.sample(100, seed=2)
    mixture = tfd.MixtureSameFamily(
        tfd.Categorical(logits=[0.0, 0.0]),
        tfd.MultivariateNormalDiag(loc=[[-1.0, 0.0], [1.0, 0.0]], scale_diag=[[1.0, 1.0]] * 2),
    )
    for model in (tfd.MultivariateNormalDiag(loc=[0.0, 0.0], scale_diag=[2.0, 1.0]), mixture):
        result = metrics.evaluate(model, hi, points)
        np.testing.assert_allclose(result.nll, -np.mean(model.log_prob(points).numpy()), rtol=1e-6)
    with pytest.raises(ValueError, match="vectors"):
        metrics.log_prob(tfd.Normal(0.0, 1.0), points)


def test_coordinates_is_the_one_check_of_the_last_axis():
    # The check every layer calls (issue 21: "expects points with N coordinates" once).
    validation.coordinates(tf.TensorShape([4, 3]), 3, "layer")
    validation.coordinates(tf.TensorShape(None), 3, "layer")  # unknown rank: checked later
    validation.coordinates(tf.TensorShape([None, None]), 3, "layer")  # unknown size: checked later
    validation.coordinates((7, 2, 3), 3, "layer")
    for shape in (tf.TensorShape([4, 2]), (5,), tf.TensorShape([])):
        with pytest.raises(ValueError, match=r"^layer expects points with 3 coordinates, got shape"):
            validation.coordinates(shape, 3, "layer")
