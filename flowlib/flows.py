"""Builders for flow stacks, and tools to look inside them layer by layer.

Every builder returns a :class:`~flowlib.flow.Flow` (re-exported here as ``flows.Flow``):
a ``tfd.TransformedDistribution`` with a standard normal *base* over ``R^dim`` pushed
through the layers. ``flow.sample`` draws ``z`` from the base and applies the layers'
``forward`` (latent to data); ``flow.log_prob(x)`` undoes them once, from the data side,
and applies the change-of-variables formula

.. math::  \\log p_X(x) = \\log p_Z(f^{-1}(x)) + \\log|\\det J_{f^{-1}}(x)|.

:func:`layers` lists the bijectors in the order ``forward`` applies them, and
:func:`trace` follows points through them, which is what the layer-by-layer figures show.
The functions here also accept a hand-built ``tfd.TransformedDistribution``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Literal

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from flowlib import validation
from flowlib.bijectors import ActNorm, AdditiveCoupling, AffineCoupling, BatchNormalization, half_mask
from flowlib.flow import Flow, _batch_norm_flag, as_flow

tfb = tfp.bijectors
tfd = tfp.distributions

Normalization = Literal["batchnorm", "actnorm", "none"]
Permutation = Literal["reverse", "random", "lu"]

# Defaults chosen by the sweep in bench/sweep.py (see README, "Defaults"): the lowest
# held-out gap after 60 s of training on 2 CPU cores (bench/results/sweep.txt). Deeper
# and narrower won: 12 couplings of (64, 64) beat 8 of (128, 128), 0.30 vs 0.35 nats
# at batch 512. The sweep also chose normalization="none" (0.35, against 0.38 for
# actnorm and 0.53 for batchnorm, whose moving averages lag in short runs); realnvp()
# keeps "batchnorm" as its default because the post's stack has batch-norm layers (flowlib's
# consistent batch norm, not tfb.BatchNormalization: see notebook 07), so the recipes
# (flowlib.recipe, which the demo trains) pass normalization="none" explicitly.
DEFAULT_NUM_LAYERS = 12
DEFAULT_HIDDEN_UNITS = (64, 64)
DEFAULT_MAX_LOG_SCALE = 2.0


def _check_dim(dim: int) -> int:
    return validation.integer(dim, "dim", minimum=2)


def _check_layers(num_layers: int) -> int:
    return validation.num_layers(num_layers)


def _check_hidden(hidden_units: Sequence[int]) -> tuple[int, ...]:
    return validation.positive_ints(hidden_units, "hidden_units")


PERMUTATIONS = validation.PERMUTATIONS
NORMALIZATIONS = validation.NORMALIZATIONS

_MASK64 = 2**64 - 1


def layer_seed(seed: int, index: int) -> int:
    """The seed of layer ``index``'s network (or LU map) in a flow built with ``seed``.

    ``seed * 1000 + index`` while that is a valid seed (``<= 2**31 - 1``): so for every
    seed up to 2,147,482 a flow's layers are the ones flowlib has always built. Beyond,
    ``seed`` and ``index`` are mixed (SplitMix64's finaliser, Steele et al. 2014) into
    ``[0, 2**31 - 1]``, so that every seed from 0 to ``2**31 - 1`` builds every flow; two
    layers of one flow then share a seed only by a one-in-2**31 accident.

        >>> layer_seed(3, 1)
        3001
    """
    seed, index = validation.seed(seed), validation.non_negative_int(index, "index")
    if seed * 1000 + index <= validation.MAX_SEED:
        return seed * 1000 + index
    z = (seed * 2**32 + index + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (z ^ (z >> 31)) & validation.MAX_SEED


def lu_linear(dim: int, *, seed: int = 0, name: str = "lu_linear") -> tfb.ScaleMatvecLU:
    """A learned invertible linear map ``x = W z`` with ``W = P L U`` (Glow's 1x1 convolution in ``R^dim``).

    ``tfb.ScaleMatvecLU`` stores ``L`` (unit lower triangular) and ``U`` (upper) in one
    trainable ``[dim, dim]`` matrix and keeps ``P`` fixed; ``log|det W| = sum log|diag U|``
    costs ``O(dim)`` and the inverse is two triangular solves. ``W`` starts as a random
    rotation drawn from ``seed`` (as in Glow): a rotation maps the standard normal base to
    itself, so a fresh flow is still the base distribution, and the layer already mixes
    the coordinates, like a permutation that training can then adjust.
    """
    dim, seed = _check_dim(dim), validation.seed(seed)
    rotation, _ = np.linalg.qr(np.random.default_rng([seed, 7]).standard_normal((dim, dim)))
    lower_upper, permutation = tf.linalg.lu(tf.constant(rotation, tf.float32))
    return tfb.ScaleMatvecLU(tf.Variable(lower_upper, name=f"{name}_lower_upper"), permutation, name=name)


def _permutation(dim: int, kind: str, seed: int, index: int) -> tfb.Bijector:
    if kind == "lu":
        return lu_linear(dim, seed=layer_seed(seed, index), name=f"lu_linear_{index}")
    if kind == "reverse":
        order = np.arange(dim)[::-1]
    elif kind == "random":
        order = np.random.default_rng([seed, index]).permutation(dim)
    else:
        raise ValueError(f"permutation must be 'reverse', 'random' or 'lu', got {kind!r}")
    # In 2-D, 'reverse' is the swap [1, 0]: it mirrors the plane about the line y = x.
    return tfb.Permute(permutation=order.astype(np.int32), name=f"permute_{index}")


def standard_normal(dim: int) -> tfd.Distribution:
    """The base of every flow here: the standard normal over ``R^dim`` (named ``"base"``)."""
    return tfd.MultivariateNormalDiag(loc=tf.zeros([dim]), scale_diag=tf.ones([dim]), name="base")


def _assemble(
    forward_layers: list[tfb.Bijector], dim: int, name: str, training: tf.Variable | None = None
) -> Flow:
    return Flow(forward_layers, standard_normal(dim), training=training, name=name)


def _interleave(
    make_layer: Callable[[int], tfb.Bijector],
    dim: int,
    num_layers: int,
    *,
    permutation: str,
    seed: int,
    normalization: str = "none",
    normalize_after: Collection[int] = (),
    training: tf.Variable | None = None,
) -> list[tfb.Bijector]:
    """Forward order ``layer_0, [norm_0], mix_0, layer_1, [norm_1], mix_1, …, layer_{L-1}``.

    A normalisation layer follows layer ``i`` when ``i`` is in ``normalize_after`` (and
    ``normalization`` is not ``"none"``); batch-norm layers share the flag ``training``.
    The arguments were checked by the caller (before any work).
    """
    layers: list[tfb.Bijector] = []
    for i in range(num_layers):
        layers.append(make_layer(i))
        if normalization != "none" and i in normalize_after:
            if normalization == "batchnorm":
                layers.append(BatchNormalization(dim, training, name=f"batch_norm_{i}"))
            else:
                layers.append(ActNorm(dim, name=f"act_norm_{i}"))
        if i < num_layers - 1:
            layers.append(_permutation(dim, permutation, seed, i))
    return layers


def _stack(
    make_layer: Callable[[int], tfb.Bijector],
    dim: int,
    num_layers: int,
    *,
    normalization: str,
    normalize_after: Collection[int],
    permutation: str,
    seed: int,
    name: str,
) -> Flow:
    """:func:`_interleave`'s layers as a flow, with its shared train/eval switch."""
    training = tf.Variable(False, trainable=False, name="training")
    layers = _interleave(
        make_layer,
        dim,
        num_layers,
        permutation=permutation,
        seed=seed,
        normalization=normalization,
        normalize_after=normalize_after,
        training=training,
    )
    return _assemble(layers, dim, name, training)


def nice(
    dim: int = 2,
    *,
    num_layers: int = 4,
    hidden_units: Sequence[int] = DEFAULT_HIDDEN_UNITS,
    permutation: Permutation = "reverse",
    scaling: bool = True,
    seed: int = 0,
) -> Flow:
    """A NICE flow (Dinh et al., 2014): additive couplings with permutations in between.

    Forward order (latent to data): ``coupling_0, permute_0, coupling_1, …,
    coupling_{L-1}`` and, with ``scaling=True``, a final learned diagonal scaling (NICE's
    only non-volume-preserving layer, ``x = exp(s) * h``).

    Returns a :class:`~flowlib.flow.Flow` over ``R^dim`` with a standard normal base.
    """
    dim, num_layers, hidden_units = _check_dim(dim), _check_layers(num_layers), _check_hidden(hidden_units)
    permutation = validation.choice(permutation, "permutation", PERMUTATIONS)
    scaling = validation.boolean(scaling, "scaling")
    seed = validation.seed(seed)
    layers = _interleave(
        lambda i: AdditiveCoupling(
            half_mask(dim), hidden_units=hidden_units, seed=layer_seed(seed, i), name=f"additive_coupling_{i}"
        ),
        dim,
        num_layers,
        permutation=permutation,
        seed=seed,
    )
    if scaling:
        log_scale = tf.Variable(tf.zeros([dim]), name="log_scale")
        layers.append(
            tfb.ScaleMatvecDiag(scale_diag=tfp.util.DeferredTensor(log_scale, tf.exp), name="scaling")
        )
    return _assemble(layers, dim, "nice")


def _check_stack(dim, num_layers, hidden_units, permutation, normalization, seed) -> tuple:
    """The arguments every stacked flow takes, checked (before any work) and in plain form."""
    return (
        _check_dim(dim),
        _check_layers(num_layers),
        _check_hidden(hidden_units),
        validation.choice(permutation, "permutation", PERMUTATIONS),
        validation.choice(normalization, "normalization", NORMALIZATIONS),
        validation.seed(seed),
    )


def realnvp(
    dim: int = 2,
    *,
    num_layers: int = DEFAULT_NUM_LAYERS,
    hidden_units: Sequence[int] = DEFAULT_HIDDEN_UNITS,
    normalization: Normalization = "batchnorm",
    normalize_every: int = 2,
    normalize_after: Sequence[int] | None = None,
    permutation: Permutation = "reverse",
    max_log_scale: float | None = DEFAULT_MAX_LOG_SCALE,
    seed: int = 0,
) -> Flow:
    """A RealNVP flow (Dinh et al., 2017): affine couplings, normalisation and permutations.

    Forward order (latent to data), for ``normalize_every=2``::

        coupling_0, permute_0, coupling_1, norm_1, permute_1, coupling_2, permute_2, …

    i.e. a normalisation layer after every second coupling (the post's "8 RealNVP layers
    with 4 batch-norm layers"), so the last layer on the data side is a normalisation:
    read in the ``inverse`` direction, the data are normalised first.

    Args:
        dim: dimension of the data (and of the latent space: a flow keeps it).
        num_layers: number of affine coupling layers.
        hidden_units: widths of each coupling network's hidden layers.
        normalization: ``"batchnorm"`` (default, as in the post's stack; flowlib's
            :class:`~flowlib.bijectors.BatchNormalization`, whose training-mode ``log_prob``
            is consistent, unlike ``tfb.BatchNormalization``'s inside a flow),
            ``"actnorm"`` (data-initialised, no train/eval mismatch) or ``"none"``.
        normalize_every: one normalisation layer after every this many couplings.
        normalize_after: instead of ``normalize_every``, the indices of the couplings
            (0 = latent side) followed by a normalisation layer; the post's code has
            ``(0, 2, 4, 6)``, so its layer next to the data is a coupling.
        permutation: ``"reverse"`` (in 2-D the swap, a mirror about ``y = x``),
            ``"random"`` (a fixed random order per layer, seeded) or ``"lu"`` (a learned
            invertible linear map, :func:`lu_linear`).
        max_log_scale: bound on each coupling's log-scale; ``None`` for unbounded.
        seed: seeds every network's initial weights (and random permutations): the same
            seed builds an identical flow. An integer from 0 to ``2**31 - 1``; layer
            ``i``'s network is seeded with :func:`layer_seed` ``(seed, i)``.

    Returns a :class:`~flowlib.flow.Flow` over ``R^dim`` with a standard normal base.
    """
    dim, num_layers, hidden_units, permutation, normalization, seed = _check_stack(
        dim, num_layers, hidden_units, permutation, normalization, seed
    )
    normalize_every = validation.positive_int(normalize_every, "normalize_every")
    max_log_scale = validation.optional_positive_float(max_log_scale, "max_log_scale")
    if normalize_after is None:
        normalize_after = range(normalize_every - 1, num_layers, normalize_every)
    normalize_after = set(validation.indices(normalize_after, "normalize_after", num_layers))
    return _stack(
        lambda i: AffineCoupling(
            half_mask(dim),
            hidden_units=hidden_units,
            max_log_scale=max_log_scale,
            seed=layer_seed(seed, i),
            name=f"affine_coupling_{i}",
        ),
        dim,
        num_layers,
        normalization=normalization,
        normalize_after=normalize_after,
        permutation=permutation,
        seed=seed,
        name="realnvp",
    )


def spline_flow(
    dim: int = 2,
    *,
    num_layers: int = 8,
    hidden_units: Sequence[int] = DEFAULT_HIDDEN_UNITS,
    num_bins: int = 8,
    bound: float = 4.0,
    permutation: Permutation = "reverse",
    normalization: Normalization = "none",
    seed: int = 0,
) -> Flow:
    """A neural spline flow (Durkan et al., 2019): rational-quadratic spline couplings.

    Forward order (latent to data): ``spline_coupling_0, permute_0, spline_coupling_1, …``,
    with a normalisation layer after every second coupling unless ``normalization="none"``.

    Args:
        dim: dimension of the data.
        num_layers: number of spline couplings.
        hidden_units: widths of each coupling network's hidden layers.
        num_bins: spline bins per coordinate (see :class:`~flowlib.splines.SplineCoupling`).
        bound: the splines act on ``[-bound, bound]`` and are the identity outside: data
            should mostly lie inside (standardise it first). At most ``1e4``.
        permutation: ``"reverse"``, ``"random"`` or ``"lu"`` (learned linear mixing).
        normalization: ``"none"`` (default), ``"actnorm"`` or ``"batchnorm"``.
        seed: seeds every network's initial weights (and random permutations), an
            integer from 0 to ``2**31 - 1`` (see :func:`layer_seed`).

    Returns a :class:`~flowlib.flow.Flow` over ``R^dim`` with a standard normal base; a
    fresh one *is* the base distribution (up to the fixed permutations).
    """
    from flowlib.splines import SplineCoupling

    dim, num_layers, hidden_units, permutation, normalization, seed = _check_stack(
        dim, num_layers, hidden_units, permutation, normalization, seed
    )
    num_bins = validation.num_bins(num_bins)
    bound = validation.spline_bound(bound)
    mask = half_mask(dim)
    return _stack(
        lambda i: SplineCoupling(
            mask,
            num_bins=num_bins,
            bound=bound,
            hidden_units=hidden_units,
            seed=layer_seed(seed, i),
            name=f"spline_coupling_{i}",
        ),
        dim,
        num_layers,
        normalization=normalization,
        normalize_after=range(1, num_layers, 2),
        permutation=permutation,
        seed=seed,
        name="spline_flow",
    )


def maf(
    dim: int = 2,
    *,
    num_layers: int = 8,
    hidden_units: Sequence[int] = DEFAULT_HIDDEN_UNITS,
    permutation: Permutation = "reverse",
    normalization: Normalization = "none",
    max_log_scale: float | None = DEFAULT_MAX_LOG_SCALE,
    inverse: bool = False,
    seed: int = 0,
) -> Flow:
    """A masked autoregressive flow (Papamakarios et al., 2017), or with ``inverse=True`` an IAF.

    Forward order: ``maf_0, permute_0, maf_1, …`` (``iaf_*`` for IAF). A MAF evaluates
    densities in one network pass per layer and samples in ``dim`` passes; an IAF the
    other way round (see :mod:`flowlib.autoregressive`). Arguments as in :func:`realnvp`.
    """
    from flowlib.autoregressive import IAF, MAF

    dim, num_layers, hidden_units, permutation, normalization, seed = _check_stack(
        dim, num_layers, hidden_units, permutation, normalization, seed
    )
    max_log_scale = validation.optional_positive_float(max_log_scale, "max_log_scale")
    inverse = validation.boolean(inverse, "inverse")
    kind, prefix = (IAF, "iaf") if inverse else (MAF, "maf")
    return _stack(
        lambda i: kind(
            dim,
            max_log_scale=max_log_scale,
            hidden_units=hidden_units,
            seed=layer_seed(seed, i),
            name=f"{prefix}_{i}",
        ),
        dim,
        num_layers,
        normalization=normalization,
        normalize_after=range(1, num_layers, 2),
        permutation=permutation,
        seed=seed,
        name=prefix,
    )


def iaf(dim: int = 2, **kwargs) -> Flow:
    """An inverse autoregressive flow: :func:`maf` with ``inverse=True`` (same arguments)."""
    return maf(dim, inverse=True, **kwargs)


# --------------------------------------------------------------------------- one-pass log-density
def one_pass_log_prob(
    flow: tfd.TransformedDistribution, *, strict: bool = False
) -> Callable[[tf.Tensor], tf.Tensor] | None:
    """The one-pass ``x -> log p(x)`` of ``flow``: :meth:`Flow.log_prob <flowlib.flow.Flow.log_prob>`.

    For a :class:`~flowlib.flow.Flow` this is ``flow.log_prob``; a hand-built
    ``TransformedDistribution`` is converted (:func:`as_flow`, same layers and variables).
    ``TransformedDistribution.log_prob`` asks every layer for ``inverse`` and then, in a
    second walk, for ``inverse_log_det_jacobian``: a coupling's network runs twice; this
    runs each layer once (:func:`flowlib.bijectors.inverse_and_log_det`).

    Returns None (or, with ``strict=True``, raises ``TypeError``) for a distribution that
    cannot be a Flow: a layer that is neither a flowlib layer nor one of TFP's plain
    bijectors (:data:`flowlib.bijectors.PLAIN_BIJECTORS`), or a base not over vectors.
    ``x``: ``[..., dim]``; the result ``[...]``.
    """
    try:
        return as_flow(flow).log_prob
    except TypeError:
        if strict:
            raise
        return None


def one_pass_unsupported_reason(flow: tfd.TransformedDistribution) -> str | None:
    """Why ``flow`` cannot be a :class:`~flowlib.flow.Flow` (so has no one-pass density), or None."""
    try:
        as_flow(flow)
    except TypeError as error:
        return str(error)
    return None


# --------------------------------------------------------------------------- inspection
def layers(flow: tfd.TransformedDistribution) -> list[tfb.Bijector]:
    """The bijectors of ``flow`` in the order ``forward`` applies them (latent to data)."""
    if isinstance(flow, Flow):
        return flow.layers
    bijector = flow.bijector
    # tfb.Chain of non-composite bijectors is an instance of a private base class,
    # so we ask for the component list rather than test the type.
    components = getattr(bijector, "bijectors", None)
    return list(reversed(components)) if components is not None else [bijector]


def _as_points(points, dim: int, name: str, min_points: int = 1) -> tf.Tensor:
    return tf.constant(validation.points(points, name, dim=dim, min_points=min_points), dtype=tf.float32)


def event_dim(flow: tfd.TransformedDistribution) -> int:
    """The dimension of the points the flow models."""
    return int(flow.event_shape[-1])


def trace(flow: tfd.TransformedDistribution, z) -> list[tuple[str, np.ndarray]]:
    """Follow latent points through every layer, latent to data.

    ``z``: ``[num_points, dim]``. Returns ``[("base", z), (layer_name, h_1), …]``, one
    entry per layer plus the start, each array ``[num_points, dim]``; the last is
    ``flow.bijector.forward(z)``.
    """
    h = _as_points(z, event_dim(validation.flow(flow)), "z")
    stages = [("base", h.numpy())]
    for layer in layers(flow):
        h = layer.forward(h)
        stages.append((layer.name, h.numpy()))
    return stages


def trace_inverse(flow: tfd.TransformedDistribution, x) -> list[tuple[str, np.ndarray]]:
    """Follow data points through every layer backwards, data to latent.

    Returns ``[("data", x), (layer_name, h), …]``; the name is the layer just undone and
    the last entry is ``flow.bijector.inverse(x)``.
    """
    h = _as_points(x, event_dim(validation.flow(flow)), "x")
    stages = [("data", h.numpy())]
    for layer in reversed(layers(flow)):
        h = layer.inverse(h)
        stages.append((layer.name, h.numpy()))
    return stages


def clear_caches(flow: tfd.TransformedDistribution) -> None:
    """Forget TFP's cached forward/inverse results of every bijector of ``flow``.

    TFP remembers ``y = forward(x)`` per input tensor so that ``inverse(y)`` is free. When
    a layer's behaviour changes without new inputs (batch norm switched between modes,
    weights restored), those memories are stale.
    """
    if isinstance(flow, Flow):
        flow.clear_caches()
        return
    flow.bijector._cache.clear()
    for layer in layers(flow):
        layer._cache.clear()


def set_training(flow: tfd.TransformedDistribution, training: bool) -> None:
    """Switch the batch-norm layers of ``flow`` between training and evaluation mode.

    Training mode: ``inverse`` normalises with the current batch's statistics and
    updates the moving averages. Evaluation mode (the default of a new flow): both
    directions use the moving averages, so ``log_prob`` is a fixed, normalised density.
    Flows without batch norm are unaffected. For a :class:`~flowlib.flow.Flow` this is
    ``flow.train(training)``; in a hand-built ``TransformedDistribution`` it sets the flag
    shared by flowlib's batch-norm layers.
    """
    training = validation.boolean(training, "training")
    if isinstance(flow, Flow):
        flow.train(training)
        return
    flag = _batch_norm_flag(layers(flow))
    if flag is not None:
        flag.assign(training)
    clear_caches(flow)


def is_training(flow: tfd.TransformedDistribution) -> bool:
    """True if ``flow``'s batch-norm layers are in training mode (``flow.training`` of a Flow)."""
    if isinstance(flow, Flow):
        return flow.training
    flag = _batch_norm_flag(layers(flow))
    return bool(flag.numpy()) if flag is not None else False


def actnorm_layers(flow: tfd.TransformedDistribution) -> list[ActNorm]:
    return [layer for layer in layers(flow) if isinstance(layer, ActNorm)]


def initialize_actnorm(flow: tfd.TransformedDistribution, x) -> None:
    """Data-dependent initialisation of every :class:`ActNorm` layer of ``flow``.

    Runs ``x`` (data, ``[batch, dim]``) backwards through the flow; each ActNorm layer,
    when reached, is set so that its output has zero mean and unit variance.
    """
    # One point has no spread to normalise: ActNorm would divide by ~0.
    h = _as_points(x, event_dim(validation.flow(flow)), "x", min_points=2)
    for layer in reversed(layers(flow)):
        if isinstance(layer, ActNorm):
            layer.initialize(h)
        h = layer.inverse(h)
    clear_caches(flow)


def num_parameters(flow: tfd.TransformedDistribution) -> int:
    """Number of trainable scalars in ``flow``."""
    return int(sum(np.prod(v.shape) for v in flow.trainable_variables))
