"""The flow object: a base distribution pushed through layers, with one way to compute densities.

A :class:`Flow` is a ``tfd.TransformedDistribution`` (so it composes with TFP: ``sample``,
``prob``, ``trainable_variables``) that owns three things a bare TFP object lacks:

- **its layers in one order**, :attr:`Flow.layers`, latent to data (the order ``forward``
  applies them; ``tfb.Chain`` stores them the other way round);
- **one density path**: :meth:`Flow.log_prob` undoes the layers from the data side once,
  taking each layer's output and log-determinant from *one* evaluation
  (:func:`flowlib.bijectors.inverse_and_log_det`), and applies the change of variables

  .. math::  \\log p_X(x) = \\log p_Z(f^{-1}(x)) + \\log|\\det J_{f^{-1}}(x)|.

  TFP's ``TransformedDistribution.log_prob`` asks every layer for ``inverse`` and then, in a
  second walk, for ``inverse_log_det_jacobian``, so a coupling's network runs twice. The
  number is the same; TFP's way stays reachable as :meth:`Flow.tfp_log_prob` (equivalently
  ``tfd.TransformedDistribution.log_prob(flow, x)``) for comparisons;
- **its train/eval switch** (:attr:`Flow.training`, :meth:`Flow.train`), shared by its
  batch-norm layers.

A layer that cannot be undone in one pass is refused when the flow is built (``TypeError``),
so there is no slower path to fall back to at run time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.bijectors.chain import _Chain
from tensorflow_probability.python.distributions.transformed_distribution import _TransformedDistribution

from flowlib import bijectors as _bijectors

tfb = tfp.bijectors
tfd = tfp.distributions


def _flatten(bijector: tfb.Bijector) -> list[tfb.Bijector]:
    """The layers of ``bijector`` in forward order, nested chains opened up."""
    if isinstance(bijector, (tfb.Chain, _Chain)):
        return [layer for part in reversed(bijector.bijectors) for layer in _flatten(part)]
    return [bijector]


def _refusal(layer: Any, index: int) -> str | None:
    """Why ``layer`` (position ``index``) cannot be a layer of a :class:`Flow`, or None."""
    if not isinstance(layer, tfb.Bijector):
        return f"layer {index} must be a tfp.bijectors.Bijector, got {type(layer).__name__}"
    if not _bijectors.supports_one_pass(layer):
        supported = ", ".join(b.__name__ for b in _bijectors.PLAIN_BIJECTORS)
        return (
            f"layer {index}, {layer.name!r} ({type(layer).__name__}), has no one-pass inverse: "
            f"a Flow takes flowlib layers (subclasses of flowlib.bijectors.FlowBijector, which "
            f"compute inverse and log-determinant together) and TFP's {supported}. Write the "
            f"layer as a FlowBijector, or keep this model a plain tfd.TransformedDistribution"
        )
    return None


def _batch_norm_flag(layers: Sequence[tfb.Bijector]) -> tf.Variable | None:
    """The train/eval flag shared by the flowlib batch-norm layers among ``layers`` (None if none)."""
    flags = {
        id(layer.training): layer.training
        for layer in layers
        if isinstance(layer, _bijectors.BatchNormalization)
    }
    if len(flags) > 1:
        raise TypeError(
            "the batch-norm layers of this flow have different training flags; build them with "
            "one shared tf.Variable so that one switch sets them all"
        )
    return next(iter(flags.values()), None)


class Flow(tfd.TransformedDistribution):
    """A normalizing flow: ``base`` pushed through ``layers`` (forward order, latent to data).

    Args:
        layers: the bijectors in the order ``forward`` applies them; each must be undoable in
            one pass (a flowlib layer or one of TFP's :data:`~flowlib.bijectors.PLAIN_BIJECTORS`),
            otherwise ``TypeError`` names it.
        base: a distribution over vectors (``event_shape [dim]``), e.g.
            :func:`flowlib.flows.standard_normal`.
        training: the boolean ``tf.Variable`` shared by the flow's batch-norm layers (found
            among ``layers`` when not given); a new one (False) for flows without.
        name: the flow's name.

    ``log_prob(x)``: ``x`` ``[..., dim]`` -> ``[...]``, one pass through the layers.
    ``sample(n)``: ``[n, dim]`` (TFP's: base samples through ``forward``).
    """

    def __init__(
        self,
        layers: Sequence[tfb.Bijector],
        base: tfd.Distribution,
        *,
        training: tf.Variable | None = None,
        name: str = "flow",
    ):
        layers = list(layers)
        if not layers:
            raise ValueError("layers must hold at least one bijector, got none")
        for index, layer in enumerate(layers):
            reason = _refusal(layer, index)
            if reason is not None:
                raise TypeError(f"Flow: {reason}")
        event_shape = getattr(base, "event_shape", None)
        if not isinstance(base, tfd.Distribution) or event_shape.rank != 1:
            raise TypeError(
                f"base must be a TFP distribution over vectors (event_shape [dim]), got "
                f"{type(base).__name__} with event_shape {event_shape}"
            )
        if training is None:
            training = _batch_norm_flag(layers)
        elif not (isinstance(training, tf.Variable) and training.dtype == tf.bool):
            raise TypeError(f"training must be a boolean tf.Variable, got {type(training).__name__}")
        # tfb.Chain applies its *last* bijector first, so it gets the forward order reversed.
        chain = tfb.Chain(list(reversed(layers)), name=f"{name}_chain")
        # TFP's parameters (base and chain, as a TransformedDistribution records them): they
        # fix the order of flow.variables, the order it had before this class existed.
        super().__init__(distribution=base, bijector=chain, name=name)
        if training is not None:
            # Tracked under the name flows had before this class, so that the variable keys
            # of their checkpoints (flowlib.checkpoint) are unchanged.
            self._flowlib_training = training
        else:
            training = tf.Variable(False, trainable=False, name="training")
        object.__setattr__(self, "_mode", training)  # not tracked: the mode is not a weight

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        # A flow has no batch of parameters (its batch shape is its base's, []); TFP asks
        # subclasses that change __init__ to say so.
        return {}

    # ----------------------------------------------------------------------- construction
    @classmethod
    def from_distribution(cls, distribution: tfd.Distribution) -> Flow:
        """The :class:`Flow` of a hand-built ``tfd.TransformedDistribution`` (same layers,
        base and variables: training one trains the other); a Flow is returned as is.

        ``TypeError`` if ``distribution`` is not a transformed distribution over vectors or
        has a layer that cannot be undone in one pass.
        """
        if isinstance(distribution, Flow):
            return distribution
        if not (hasattr(distribution, "bijector") and hasattr(distribution, "distribution")):
            raise TypeError(
                f"a Flow is built from a tfd.TransformedDistribution (a base and bijectors), got "
                f"{type(distribution).__name__}"
            )
        return cls(_flatten(distribution.bijector), distribution.distribution, name=distribution.name)

    # ----------------------------------------------------------------------- layers and mode
    @property
    def layers(self) -> list[tfb.Bijector]:
        """The bijectors in the order ``forward`` applies them (latent to data)."""
        return list(reversed(self.bijector.bijectors))

    @property
    def dim(self) -> int:
        """The number of coordinates of the points the flow models."""
        return int(self.event_shape[-1])

    @property
    def training(self) -> bool:
        """True in training mode: batch norm normalises with the batch's statistics (and
        updates its moving averages); False (a new flow's mode) uses the moving averages,
        so ``log_prob`` is a fixed, normalised density."""
        return bool(self._mode.numpy())

    def train(self, mode: bool = True) -> Flow:
        """Switch to training mode (``mode=True``) or evaluation mode (False); returns the flow."""
        from flowlib import validation

        self._mode.assign(validation.boolean(mode, "mode"))
        self.clear_caches()
        return self

    def clear_caches(self) -> None:
        """Forget TFP's cached forward/inverse results of the flow's bijectors (stale once the
        mode or the weights change without new inputs)."""
        self.bijector._cache.clear()
        for layer in self.layers:
            layer._cache.clear()

    # ----------------------------------------------------------------------- densities
    # Not for autograph: the layers have no data-dependent Python control flow, and inside a
    # tf.function converting their source would only cost time (a third of a trace).
    @tf.autograph.experimental.do_not_convert
    def log_prob(self, value, name: str = "log_prob", **kwargs) -> tf.Tensor:
        """``log p(x)`` of points ``value`` ``[..., dim]``, shape ``[...]``: each layer undone
        once, from the data side, with its log-determinant from the same evaluation."""
        if kwargs:
            raise TypeError(f"Flow.log_prob takes no keyword arguments, got {sorted(kwargs)}")
        with tf.name_scope(name):
            h = tf.convert_to_tensor(value, dtype_hint=self.dtype)
            log_det = tf.zeros(tf.shape(h)[:-1], h.dtype)
            for layer in reversed(self.layers):
                h, layer_log_det = _bijectors.inverse_and_log_det(layer, h)
                log_det += layer_log_det
            return self.distribution.log_prob(h) + log_det

    def tfp_log_prob(self, value) -> tf.Tensor:
        """TFP's ``TransformedDistribution.log_prob``: the same density, with every layer
        evaluated twice (``inverse``, then ``inverse_log_det_jacobian``); for comparisons."""
        return tfd.TransformedDistribution.log_prob(self, value)

    # ----------------------------------------------------------------------- checkpoints
    def save(self, path: str | Path, *, metadata: dict[str, Any] | None = None) -> Path:
        """Write the flow's variables and build record at ``path`` (:func:`flowlib.checkpoint.save`)."""
        from flowlib import checkpoint

        return checkpoint.save(self, path, metadata=metadata)

    def load(self, path: str | Path) -> Flow:
        """Restore the variables saved at ``path`` into this flow (:func:`flowlib.checkpoint.load`,
        which refuses a checkpoint of another architecture); returns the flow."""
        from flowlib import checkpoint

        checkpoint.load(self, path)
        return self


def as_flow(distribution: tfd.Distribution) -> Flow:
    """``distribution`` as a :class:`Flow` (:meth:`Flow.from_distribution`)."""
    return Flow.from_distribution(distribution)


def is_hand_built(distribution: Any) -> bool:
    """True for a ``tfd.TransformedDistribution`` built by hand (not a Flow, and not one of
    TFP's named distributions that are transformed distributions inside, such as
    ``MultivariateNormalDiag``): the models :func:`as_flow` is for."""
    return type(distribution) in (tfd.TransformedDistribution, _TransformedDistribution)


def log_prob_in_chunks(
    model: tfd.Distribution,
    points: np.ndarray,
    *,
    batch_size: int = 16384,
    log_prob: Callable[[tf.Tensor], tf.Tensor] | None = None,
) -> np.ndarray:
    """``log q(x)`` of ``points`` ``[n, dim]`` (checked numpy) in chunks of ``batch_size`` rows,
    a :class:`Flow` in evaluation mode for the call (its mode is restored after), so that a
    point's value does not depend on the others; ``[n]`` float64.

    ``log_prob``: the function to apply (default ``model.log_prob``), e.g. a compiled one.
    The one helper behind :func:`flowlib.metrics.log_prob` and :func:`flowlib.train.fit`'s
    validation.
    """
    function = model.log_prob if log_prob is None else log_prob
    was_training = isinstance(model, Flow) and model.training
    if was_training:
        model.train(False)
    try:
        parts = [
            function(tf.constant(points[i : i + batch_size])).numpy()
            for i in range(0, len(points), batch_size)
        ]
    finally:
        if was_training:
            model.train(True)
    return np.concatenate(parts).astype(np.float64) if parts else np.zeros(0)
