"""Builders for flow stacks, and tools to look inside them layer by layer.

A flow here is a ``tfd.TransformedDistribution``: a standard normal *base* over
``R^dim`` pushed through a ``tfb.Chain`` of bijectors. ``flow.sample`` draws ``z`` from
the base and applies the chain's ``forward`` (latent to data); ``flow.log_prob(x)``
applies ``inverse`` and the change-of-variables formula

.. math::  \\log p_X(x) = \\log p_Z(f^{-1}(x)) + \\log|\\det J_{f^{-1}}(x)|.

:func:`layers` lists the bijectors in the order ``forward`` applies them, and
:func:`trace` follows points through them, which is what the layer-by-layer figures show.
"""
from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from flowlib import validation
from flowlib.bijectors import ActNorm, AdditiveCoupling, AffineCoupling, BatchNormalization, half_mask

tfb = tfp.bijectors
tfd = tfp.distributions

Normalization = Literal["batchnorm", "actnorm", "none"]
Permutation = Literal["reverse", "random"]

# Defaults chosen by the sweep in bench/sweep.py (see README, "Defaults"): the lowest
# held-out gap after 60 s of training on 2 CPU cores (bench/results/sweep.txt). Deeper
# and narrower won: 12 couplings of (64, 64) beat 8 of (128, 128), 0.30 vs 0.35 nats
# at batch 512. The sweep also chose normalization="none" (0.35, against 0.38 for
# actnorm and 0.53 for batchnorm, whose moving averages lag in short runs); realnvp()
# keeps "batchnorm" as its default because the post's stack has batch-norm layers (flowlib's
# consistent batch norm, not tfb.BatchNormalization: see notebook 07), so the demo passes
# normalization="none" explicitly.
DEFAULT_NUM_LAYERS = 12
DEFAULT_HIDDEN_UNITS = (64, 64)
DEFAULT_MAX_LOG_SCALE = 2.0


def _check_dim(dim: int) -> int:
    return validation.integer(dim, "dim", minimum=2)


def _check_layers(num_layers: int) -> int:
    return validation.positive_int(num_layers, "num_layers")


def _check_hidden(hidden_units: Sequence[int]) -> tuple[int, ...]:
    return validation.positive_ints(hidden_units, "hidden_units")


PERMUTATIONS = ("reverse", "random")


def _check_seed(seed: int, num_layers: int) -> int:
    # Layer i's network is seeded with seed * 1000 + i, which must stay a valid seed too.
    seed = validation.seed(seed)
    if seed * 1000 + num_layers > validation.MAX_SEED:
        raise ValueError(f"seed must be at most {(validation.MAX_SEED - num_layers) // 1000} "
                         f"(each layer's network takes seed * 1000 + its index), got {seed}")
    return seed


def _permutation(dim: int, kind: str, seed: int, index: int) -> tfb.Permute:
    if kind == "reverse":
        order = np.arange(dim)[::-1]
    elif kind == "random":
        order = np.random.default_rng([seed, index]).permutation(dim)
    else:
        raise ValueError(f"permutation must be 'reverse' or 'random', got {kind!r}")
    # In 2-D, 'reverse' is the swap [1, 0]: it mirrors the plane about the line y = x.
    return tfb.Permute(permutation=order.astype(np.int32), name=f"permute_{index}")


def _standard_normal(dim: int) -> tfd.Distribution:
    return tfd.MultivariateNormalDiag(loc=tf.zeros([dim]), scale_diag=tf.ones([dim]), name="base")


def _assemble(forward_layers: list[tfb.Bijector], dim: int, name: str) -> tfd.TransformedDistribution:
    # tfb.Chain applies its *last* bijector first, so reverse our forward-order list.
    chain = tfb.Chain(list(reversed(forward_layers)), name=f"{name}_chain")
    return tfd.TransformedDistribution(distribution=_standard_normal(dim), bijector=chain, name=name)


def nice(dim: int = 2, *, num_layers: int = 4, hidden_units: Sequence[int] = DEFAULT_HIDDEN_UNITS,
         permutation: Permutation = "reverse", scaling: bool = True,
         seed: int = 0) -> tfd.TransformedDistribution:
    """A NICE flow (Dinh et al., 2014): additive couplings with permutations in between.

    Forward order (latent to data): ``coupling_0, permute_0, coupling_1, …,
    coupling_{L-1}`` and, with ``scaling=True``, a final learned diagonal scaling (NICE's
    only non-volume-preserving layer, ``x = exp(s) * h``).

    Returns a ``TransformedDistribution`` over ``R^dim`` with a standard normal base.
    """
    dim, num_layers, hidden_units = _check_dim(dim), _check_layers(num_layers), _check_hidden(hidden_units)
    permutation = validation.choice(permutation, "permutation", PERMUTATIONS)
    scaling = validation.boolean(scaling, "scaling")
    seed = _check_seed(seed, num_layers)
    layers: list[tfb.Bijector] = []
    for i in range(num_layers):
        layers.append(AdditiveCoupling(half_mask(dim), hidden_units=hidden_units, seed=seed * 1000 + i,
                                       name=f"additive_coupling_{i}"))
        if i < num_layers - 1:
            layers.append(_permutation(dim, permutation, seed, i))
    if scaling:
        log_scale = tf.Variable(tf.zeros([dim]), name="log_scale")
        layers.append(tfb.ScaleMatvecDiag(
            scale_diag=tfp.util.DeferredTensor(log_scale, tf.exp), name="scaling"))
    return _assemble(layers, dim, "nice")


def realnvp(dim: int = 2, *, num_layers: int = DEFAULT_NUM_LAYERS,
            hidden_units: Sequence[int] = DEFAULT_HIDDEN_UNITS,
            normalization: Normalization = "batchnorm", normalize_every: int = 2,
            permutation: Permutation = "reverse", max_log_scale: float | None = DEFAULT_MAX_LOG_SCALE,
            seed: int = 0) -> tfd.TransformedDistribution:
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
        permutation: ``"reverse"`` (in 2-D the swap, a mirror about ``y = x``) or
            ``"random"`` (a fixed random order per layer, seeded).
        max_log_scale: bound on each coupling's log-scale; ``None`` for unbounded.
        seed: seeds every network's initial weights (and random permutations): the same
            seed builds an identical flow. An integer from 0 to 2,147,483 (layer ``i``'s
            network is seeded with ``seed * 1000 + i``).

    Returns a ``TransformedDistribution`` over ``R^dim`` with a standard normal base.
    """
    dim, num_layers, hidden_units = _check_dim(dim), _check_layers(num_layers), _check_hidden(hidden_units)
    normalization = validation.choice(normalization, "normalization", ("batchnorm", "actnorm", "none"))
    normalize_every = validation.positive_int(normalize_every, "normalize_every")
    permutation = validation.choice(permutation, "permutation", PERMUTATIONS)
    max_log_scale = validation.optional_positive_float(max_log_scale, "max_log_scale")
    seed = _check_seed(seed, num_layers)
    training = tf.Variable(False, trainable=False, name="training")
    layers: list[tfb.Bijector] = []
    for i in range(num_layers):
        layers.append(AffineCoupling(half_mask(dim), hidden_units=hidden_units, max_log_scale=max_log_scale,
                                     seed=seed * 1000 + i, name=f"affine_coupling_{i}"))
        if normalization != "none" and i % normalize_every == normalize_every - 1:
            if normalization == "batchnorm":
                layers.append(BatchNormalization(dim, training, name=f"batch_norm_{i}"))
            else:
                layers.append(ActNorm(dim, name=f"act_norm_{i}"))
        if i < num_layers - 1:
            layers.append(_permutation(dim, permutation, seed, i))
    flow = _assemble(layers, dim, "realnvp")
    flow._flowlib_training = training  # the shared train/eval switch of its batch-norm layers
    return flow


# --------------------------------------------------------------------------- inspection
def layers(flow: tfd.TransformedDistribution) -> list[tfb.Bijector]:
    """The bijectors of ``flow`` in the order ``forward`` applies them (latent to data)."""
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
    flow.bijector._cache.clear()
    for layer in layers(flow):
        layer._cache.clear()


def set_training(flow: tfd.TransformedDistribution, training: bool) -> None:
    """Switch the batch-norm layers of ``flow`` between training and evaluation mode.

    Training mode: ``inverse`` normalises with the current batch's statistics and
    updates the moving averages. Evaluation mode (the default of a new flow): both
    directions use the moving averages, so ``log_prob`` is a fixed, normalised density.
    Flows without batch norm are unaffected.
    """
    flag = getattr(flow, "_flowlib_training", None)
    if flag is not None:
        flag.assign(validation.boolean(training, "training"))
    clear_caches(flow)


def is_training(flow: tfd.TransformedDistribution) -> bool:
    flag = getattr(flow, "_flowlib_training", None)
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
