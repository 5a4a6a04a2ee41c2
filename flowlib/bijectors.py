"""Coupling layers and ActNorm as ``tfp.bijectors.Bijector`` subclasses.

Conventions (TFP's): ``forward`` maps latent ``z`` to data ``x``; ``inverse`` maps data
to latent; ``forward_log_det_jacobian(z)`` is ``log|det dx/dz|`` per example, shape
``[batch]``. Every bijector here acts on vectors (``event_ndims = 1``) of any dimension.

A coupling layer splits its input with a boolean ``mask`` over the coordinates:
``mask[i] = True`` puts coordinate ``i`` in the *kept* part ``x1`` (copied unchanged),
``False`` in the *changed* part ``x2``. With ``f`` any function (here a small network):

- additive (NICE):  ``y1 = x1``,  ``y2 = x2 + f(x1)``,                   ``log|det J| = 0``
- affine (RealNVP): ``y1 = x1``,  ``y2 = x2 * exp(s(x1)) + t(x1)``,     ``log|det J| = sum s(x1)``

Both invert exactly without inverting ``f``, because ``x1 = y1`` is available on either
side of the layer. The network is pluggable: any callable from ``[..., num_kept]`` to
``[..., num_changed]`` (additive) or ``[..., 2 * num_changed]`` (affine) will do.

**The layer protocol.** Every flowlib layer is a :class:`FlowBijector`: besides TFP's
methods it offers ``forward_and_log_det(x)`` and ``inverse_and_log_det(y)``, which return
the output *and* the log-determinant from one evaluation of the layer's network (the
pattern of distrax's ``forward_and_log_det`` and zuko's ``call_and_ladj``). TFP's
``_forward``, ``_inverse`` and ``_*_log_det_jacobian`` are derived from them, so each
layer's formula is written once. :func:`inverse_and_log_det` applies the protocol to any
layer of a flow, including TFP's plain bijectors (permutations, scalings, shifts, LU
linear maps), and :meth:`Flow.log_prob <flowlib.flow.Flow.log_prob>` builds a flow's
log-density from it. Other layer kinds live in their own modules: :mod:`flowlib.splines` (neural
spline coupling) and :mod:`flowlib.autoregressive` (MAF and IAF).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from flowlib import validation

tfb = tfp.bijectors

Network = Callable[[tf.Tensor], tf.Tensor]


# --------------------------------------------------------------------------- network
def glorot_uniform(shape: Sequence[int], seed: int, index: int) -> tf.Tensor:
    """Glorot-uniform weights of ``shape``, drawn from the stateless pair ``[seed, index]``.

    Uniform on ``±sqrt(6 / (fan_in + fan_out))`` (Glorot and Bengio, 2010), with
    ``shape = [..., inputs, outputs]``: a dense kernel ``[inputs, outputs]``, or a
    convolution kernel ``[kh, kw, inputs, outputs]`` whose fans count the ``kh * kw``
    positions too. No global random state: the same seed and index give the same weights.
    """
    receptive = int(np.prod(shape[:-2]))
    limit = np.sqrt(6.0 / (receptive * (shape[-2] + shape[-1])))
    return tf.random.stateless_uniform(list(shape), seed=[seed, index], minval=-limit, maxval=limit)


def initial_kernel(shape: Sequence[int], seed: int, index: int, *, zero: bool) -> tf.Tensor:
    """The starting weights of layer ``index`` of a network: zeros, or :func:`glorot_uniform`."""
    return tf.zeros(list(shape)) if zero else glorot_uniform(shape, seed, index)


class MLP(tf.Module):
    """A small fully connected ReLU network, ``[..., input_dim] -> [..., output_dim]``.

    Weights use Glorot-uniform initialisation drawn from ``seed`` (no global random
    state). With ``zero_last=True`` (the default) the output layer starts at exactly
    zero, so a coupling layer built on it starts as the identity: a fresh flow is the
    base distribution, and training starts from a well-conditioned point.
    """

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        hidden_units: Sequence[int] = (64, 64),
        *,
        seed: int = 0,
        zero_last: bool = True,
        name: str | None = None,
    ):
        super().__init__(name=name)
        sizes = [
            validation.positive_int(input_dim, "input_dim"),
            *validation.positive_ints(hidden_units, "hidden_units", allow_empty=True),
            validation.positive_int(output_dim, "output_dim"),
        ]
        seed, zero_last = validation.seed(seed), validation.boolean(zero_last, "zero_last")
        self.kernels: list[tf.Variable] = []
        self.biases: list[tf.Variable] = []
        for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            last = index == len(sizes) - 2
            kernel = initial_kernel([fan_in, fan_out], seed, index, zero=last and zero_last)
            self.kernels.append(tf.Variable(kernel, name=f"kernel_{index}"))
            self.biases.append(tf.Variable(tf.zeros([fan_out]), name=f"bias_{index}"))

    def _layer_kernels(self) -> list[tf.Tensor]:
        """The kernels the forward pass multiplies by (MADE masks them)."""
        return self.kernels

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        batch_shape = tf.shape(x)[:-1]
        h = tf.reshape(x, [-1, x.shape[-1]])
        kernels = self._layer_kernels()
        for index, (kernel, bias) in enumerate(zip(kernels, self.biases)):
            h = tf.matmul(h, kernel) + bias
            if index < len(kernels) - 1:
                h = tf.nn.relu(h)
        return tf.reshape(h, tf.concat([batch_shape, [h.shape[-1]]], axis=0))


# --------------------------------------------------------------------------- masks
def half_mask(dim: int, *, keep_first: bool = True) -> np.ndarray:
    """Mask that keeps the first ``ceil(dim / 2)`` coordinates (or the last ones).

    In 2-D, ``half_mask(2)`` is ``[True, False]``: ``x1`` is the horizontal coordinate,
    ``x2`` the vertical one, as in the reference post.
    """
    dim = validation.integer(dim, "dim", minimum=2)
    mask = np.arange(dim) < (dim + 1) // 2
    return mask if keep_first else ~mask


def _check_mask(mask: Sequence[bool] | np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 1 or mask.size < 2:
        raise ValueError(f"mask must be a 1-D sequence of at least 2 booleans, got shape {mask.shape}")
    if mask.dtype != bool:
        if not np.all(np.isin(mask, (0, 1))):
            raise ValueError("mask entries must be booleans (or 0/1)")
        mask = mask.astype(bool)
    if mask.all() or not mask.any():
        raise ValueError("mask must keep some coordinates and change others (not all True or all False)")
    return mask


# --------------------------------------------------------------------------- protocol
class FlowBijector(tfb.Bijector):
    """A bijector that computes its output and log-determinant together.

    Subclasses implement :meth:`forward_and_log_det` and :meth:`inverse_and_log_det`;
    TFP's ``_forward``, ``_inverse``, ``_forward_log_det_jacobian`` and
    ``_inverse_log_det_jacobian`` are derived from them here. Calling TFP's
    ``inverse`` and then ``inverse_log_det_jacobian`` evaluates the layer twice (TFP
    asks for them separately); :meth:`Flow.log_prob <flowlib.flow.Flow.log_prob>` calls
    :meth:`inverse_and_log_det` once per layer instead.
    """

    def forward_and_log_det(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """``(forward(x), log|det d forward / dx|)``, shapes ``[..., dim]`` and ``[...]``."""
        raise NotImplementedError

    def inverse_and_log_det(self, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """``(inverse(y), log|det d inverse / dy|)``, shapes ``[..., dim]`` and ``[...]``."""
        raise NotImplementedError

    def _forward(self, x):
        return self.forward_and_log_det(x)[0]

    def _inverse(self, y):
        return self.inverse_and_log_det(y)[0]

    def _forward_log_det_jacobian(self, x):
        return self.forward_and_log_det(x)[1]

    def _inverse_log_det_jacobian(self, y):
        return self.inverse_and_log_det(y)[1]


# TFP bijectors whose ``inverse`` and ``inverse_log_det_jacobian`` share no network, so
# evaluating them separately costs nothing worth saving. tfb.BatchNormalization is here so
# that hand-built flows with TFP's batch norm (notebook 07) train like any other; its
# training-mode log-determinant is TFP's, inconsistent with its map (see BatchNormalization).
PLAIN_BIJECTORS = (
    tfb.Permute,
    tfb.ScaleMatvecDiag,
    tfb.ScaleMatvecLU,
    tfb.Scale,
    tfb.Shift,
    tfb.Identity,
    tfb.BatchNormalization,
    # A continuous-time flow (flowlib.continuous): TFP solves for the map and its log-determinant
    # in one augmented ODE solve and caches both (ffjord.py: ``_augmented_inverse`` and
    # ``BijectorCacheWithGreedyAttrs``), so asking for the second costs no second solve.
    tfb.FFJORD,
)


def supports_one_pass(bijector: tfb.Bijector) -> bool:
    """True if :func:`inverse_and_log_det` handles ``bijector`` (see :data:`PLAIN_BIJECTORS`)."""
    return isinstance(bijector, (FlowBijector, *PLAIN_BIJECTORS))


def inverse_and_log_det(bijector: tfb.Bijector, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """``(x, log|det dx/dy|)`` for one vector layer (``event_ndims=1``) of a flow, ``y``: ``[..., dim]``.

    flowlib's layers answer from one evaluation (:meth:`FlowBijector.inverse_and_log_det`);
    TFP's plain bijectors (:data:`PLAIN_BIJECTORS`) from their ``inverse`` and
    ``inverse_log_det_jacobian``. Anything else raises ``TypeError``.
    """
    if isinstance(bijector, FlowBijector):
        return bijector.inverse_and_log_det(y)
    if isinstance(bijector, PLAIN_BIJECTORS):
        log_det = bijector.inverse_log_det_jacobian(y, event_ndims=1)
        return bijector.inverse(y), tf.broadcast_to(log_det, tf.shape(y)[:-1])
    raise TypeError(
        f"{type(bijector).__name__} ({bijector.name}) has no one-pass inverse: it is neither "
        f"a flowlib layer nor one of {[b.__name__ for b in PLAIN_BIJECTORS]}"
    )


def affine_forward(x: tf.Tensor, shift: tf.Tensor, log_scale: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """``y = x * exp(log_scale) + shift`` elementwise, and ``log|det| = sum(log_scale)`` over the last axis.

    The elementwise affine map shared by the affine coupling and the autoregressive
    layers; :func:`affine_inverse` undoes it.
    """
    return x * tf.exp(log_scale) + shift, tf.reduce_sum(log_scale, axis=-1)


def affine_inverse(y: tf.Tensor, shift: tf.Tensor, log_scale: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """``x = (y - shift) * exp(-log_scale)``, and ``log|det| = -sum(log_scale)`` over the last axis."""
    return (y - shift) * tf.exp(-log_scale), -tf.reduce_sum(log_scale, axis=-1)


def bounded(raw: tf.Tensor, bound: float | None) -> tf.Tensor:
    """``bound * tanh(raw / bound)``: ``raw`` near zero, never beyond ``±bound`` (``None``: ``raw``)."""
    if bound is None:
        return raw
    c = tf.cast(bound, raw.dtype)
    return c * tf.tanh(raw / c)


# --------------------------------------------------------------------------- coupling
def take_columns(index: Sequence[int] | np.ndarray, size: int) -> Callable[[tf.Tensor], tf.Tensor]:
    """A function ``x[..., size] -> x[..., index]``, as a product with a constant 0/1 matrix.

    For finite ``x`` it gives the same values as ``tf.gather(x, index, axis=-1)``, exactly:
    each output is one input times 1 plus exact zeros, and so is each gradient. Why not
    the gather: its gradient along the last axis is built from about 18 operations
    (transposes, reshapes, an unsorted segment sum) where the product's is one matmul,
    and tracing is paid per operation. ``train.fit``'s first call, medians of 3 fresh
    processes with the same losses to the last digit (``bench/results/take_columns.txt``):
    13.0 s instead of 18.1 for notebook 09's multi-scale flow (16 couplings), whose later
    steps are also 4% faster; 3.2 s instead of 4.4 for eight 2-D couplings that keep the
    second coordinate, whose later steps were 8% slower (0.40 against 0.37 s per 100). The
    matrix, ``[size, len(index)]``, is used while it has at most ``2**18`` entries (1 MiB
    in float32: up to 512 columns in 512); beyond, the gather. A non-finite input spreads to
    every output of the product (``0 * inf`` is NaN).
    """
    index = np.asarray(index, dtype=np.int64)
    if index.ndim != 1 or np.any(index < 0) or np.any(index >= size):
        raise ValueError(
            f"take_columns: index must be a list of columns in [0, {size}), got {index.tolist()}"
        )
    if size * len(index) > 2**18:
        return lambda x: tf.gather(x, index, axis=-1)
    selection = np.zeros((size, len(index)), dtype=np.float32)
    selection[index, np.arange(len(index))] = 1.0

    def take(x: tf.Tensor) -> tf.Tensor:
        x = tf.convert_to_tensor(x)
        if x.shape.rank is None or not x.dtype.is_floating:
            return tf.gather(x, index, axis=-1)
        matrix = tf.constant(selection, dtype=x.dtype)
        return tf.matmul(x, matrix) if x.shape.rank == 2 else tf.tensordot(x, matrix, axes=1)

    return take


class Coupling(FlowBijector):
    """Shared split/merge machinery of the coupling layers (see the module docstring).

    A subclass says how many network outputs each changed coordinate needs
    (``outputs_per_changed``) and implements :meth:`_transform`, the elementwise map of
    the changed part given those outputs, in either direction. Everything else (the
    split, one network call, the merge) happens here, once for all coupling kinds.
    """

    def __init__(self, mask, network, *, outputs_per_changed, hidden_units, seed, name, parameters):
        mask = _check_mask(mask)
        self.mask = mask
        self._kept = np.flatnonzero(mask)
        self._changed = np.flatnonzero(~mask)
        # Kept coordinates first (half_mask): slices and a concatenation, cheaper to
        # differentiate than selecting columns in general (take_columns).
        self._kept_first = bool(np.array_equal(self._kept, np.arange(len(self._kept))))
        # concat([x1, x2])[..., merge] puts every coordinate back in its place.
        self._merge = np.argsort(np.concatenate([self._kept, self._changed]))
        if not self._kept_first:
            dim = len(mask)
            self._take_kept, self._take_changed = (
                take_columns(self._kept, dim),
                take_columns(self._changed, dim),
            )
            self._take_merged = take_columns(self._merge, dim)
        self.outputs_per_changed = int(outputs_per_changed)
        if network is None:
            network = MLP(
                len(self._kept),
                self.outputs_per_changed * len(self._changed),
                validation.positive_ints(hidden_units, "hidden_units"),
                seed=seed,
                name=f"{name}_network",
            )
        elif not callable(network):
            raise TypeError(f"network must be callable, got {type(network).__name__}")
        self.network = network
        super().__init__(forward_min_event_ndims=1, validate_args=False, parameters=parameters, name=name)

    @property
    def dim(self) -> int:
        return len(self.mask)

    def _split(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        if self._kept_first:
            k = len(self._kept)
            return x[..., :k], x[..., k:]
        return self._take_kept(x), self._take_changed(x)

    def _combine(self, x1: tf.Tensor, x2: tf.Tensor) -> tf.Tensor:
        if self._kept_first:
            return tf.concat([x1, x2], axis=-1)
        return self._take_merged(tf.concat([x1, x2], axis=-1))

    def _check_input(self, x: tf.Tensor) -> None:
        validation.coordinates(x.shape, self.dim, self.name)

    def _network_output(self, x1: tf.Tensor) -> tf.Tensor:
        """The network's raw output for the kept part, ``[..., outputs_per_changed * num_changed]``."""
        out = self.network(x1)
        expected = self.outputs_per_changed * len(self._changed)
        if out.shape[-1] is not None and out.shape[-1] != expected:
            raise ValueError(
                f"{self.name}: the network returned {out.shape[-1]} values per point, expected {expected}"
            )
        return out

    def _transform(self, x2: tf.Tensor, raw: tf.Tensor, *, inverse: bool) -> tuple[tf.Tensor, tf.Tensor]:
        """The changed part's map (or its inverse) given the raw network output, and its log|det|."""
        raise NotImplementedError

    def forward_and_log_det(self, x):
        self._check_input(x)
        x1, x2 = self._split(x)
        y2, log_det = self._transform(x2, self._network_output(x1), inverse=False)
        return self._combine(x1, y2), log_det

    def inverse_and_log_det(self, y):
        self._check_input(y)
        y1, y2 = self._split(y)
        x2, log_det = self._transform(y2, self._network_output(y1), inverse=True)
        return self._combine(y1, x2), log_det


class AdditiveCoupling(Coupling):
    """NICE's additive coupling: ``y1 = x1``, ``y2 = x2 + shift(x1)``; volume preserving.

    Args:
        mask: booleans over the coordinates, True = kept (``x1``). ``[True, False]`` in 2-D.
        network: callable ``[..., num_kept] -> [..., num_changed]`` giving the shift.
            Default: an :class:`MLP` with ``hidden_units`` starting at zero.
        hidden_units, seed: for the default network.

    ``log|det J| = 0`` for every input, shape ``[batch]``: the Jacobian is triangular with
    ones on the diagonal.
    """

    def __init__(
        self,
        mask: Sequence[bool] | np.ndarray,
        network: Network | None = None,
        *,
        hidden_units: Sequence[int] = (64, 64),
        seed: int = 0,
        name: str = "additive_coupling",
    ):
        parameters = dict(locals())
        super().__init__(
            mask,
            network,
            outputs_per_changed=1,
            hidden_units=hidden_units,
            seed=seed,
            name=name,
            parameters=parameters,
        )

    def shift(self, x1: tf.Tensor) -> tf.Tensor:
        """``f(x1)``, shape ``[..., num_changed]``."""
        return self._network_output(x1)

    def _transform(self, x2, raw, *, inverse):
        log_det = tf.zeros(tf.shape(x2)[:-1], dtype=x2.dtype)
        return (x2 - raw if inverse else x2 + raw), log_det


class AffineCoupling(Coupling):
    """RealNVP's affine coupling: ``y1 = x1``, ``y2 = x2 * exp(log_scale(x1)) + shift(x1)``.

    Args:
        mask: booleans over the coordinates, True = kept (``x1``).
        network: callable ``[..., num_kept] -> [..., 2 * num_changed]``; the first half
            is the shift, the second the raw log-scale. Default: an :class:`MLP` that
            starts at zero, so the layer starts as the identity.
        max_log_scale: bound ``c`` on the log-scale, ``log_scale = c * tanh(raw / c)``,
            which is ``raw`` near zero and never beyond ``±c``. One layer then stretches
            by at most ``exp(c)``, so ``exp`` cannot overflow and one bad step cannot
            blow the flow up. ``None`` leaves it unbounded (the post's recipe; see
            notebook 07 for what that costs).
        hidden_units, seed: for the default network.

    ``log|det J| = sum(log_scale(x1))`` over the changed coordinates, shape ``[batch]``.
    """

    def __init__(
        self,
        mask: Sequence[bool] | np.ndarray,
        network: Network | None = None,
        *,
        max_log_scale: float | None = 2.0,
        hidden_units: Sequence[int] = (64, 64),
        seed: int = 0,
        name: str = "affine_coupling",
    ):
        parameters = dict(locals())
        self.max_log_scale = validation.optional_positive_float(max_log_scale, "max_log_scale")
        super().__init__(
            mask,
            network,
            outputs_per_changed=2,
            hidden_units=hidden_units,
            seed=seed,
            name=name,
            parameters=parameters,
        )

    def _shift_and_log_scale(self, raw: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        shift, raw_log_scale = tf.split(raw, 2, axis=-1)
        return shift, bounded(raw_log_scale, self.max_log_scale)

    def shift_and_log_scale(self, x1: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """``(t(x1), s(x1))``, each of shape ``[..., num_changed]``; ``s`` is bounded."""
        return self._shift_and_log_scale(self._network_output(x1))

    def _transform(self, x2, raw, *, inverse):
        return (affine_inverse if inverse else affine_forward)(x2, *self._shift_and_log_scale(raw))


# --------------------------------------------------------------------------- ActNorm
class ActNorm(FlowBijector):
    """Glow's activation normalisation: ``y = x * exp(log_scale) + shift``, per coordinate.

    A learned per-coordinate affine map whose parameters are *initialised from data*: on
    the first batch (see :meth:`initialize`), ``shift`` and ``log_scale`` are set to the
    batch mean and log standard deviation, so ``inverse`` maps that batch to zero mean
    and unit variance. After that they are ordinary trainable variables. Unlike batch
    normalisation it has no batch statistics and no train/eval modes: ``forward`` and
    ``inverse`` are the same function in training and evaluation, so they stay exact
    inverses of each other (Kingma and Dhariwal, 2018).

    ``log|det J| = sum(log_scale)``, the same for every example, shape ``[batch]``.
    """

    def __init__(self, dim: int, *, name: str = "act_norm"):
        parameters = dict(locals())
        self.dim = validation.positive_int(dim, "dim")
        self.shift = tf.Variable(tf.zeros([self.dim]), name="shift")
        self.log_scale = tf.Variable(tf.zeros([self.dim]), name="log_scale")
        self.initialized = tf.Variable(False, trainable=False, name="initialized")
        super().__init__(forward_min_event_ndims=1, validate_args=False, parameters=parameters, name=name)

    def initialize(self, y: tf.Tensor | np.ndarray) -> None:
        """Set the parameters so that ``inverse(y)`` has zero mean, unit variance per coordinate.

        ``y``: a batch of inputs to :meth:`inverse` (data-side), shape ``[batch, dim]``.
        """
        y = tf.convert_to_tensor(y, dtype=tf.float32)
        mean, variance = tf.nn.moments(y, axes=[0])
        self.shift.assign(mean)
        self.log_scale.assign(0.5 * tf.math.log(variance + 1e-6))
        self.initialized.assign(True)
        self._cache.clear()

    def forward_and_log_det(self, x):
        validation.coordinates(x.shape, self.dim, self.name)
        y, log_det = affine_forward(x, self.shift, self.log_scale)
        return y, tf.fill(tf.shape(x)[:-1], log_det)

    def inverse_and_log_det(self, y):
        validation.coordinates(y.shape, self.dim, self.name)
        x, log_det = affine_inverse(y, self.shift, self.log_scale)
        return x, tf.fill(tf.shape(y)[:-1], log_det)


class BatchNormalization(FlowBijector):
    """Batch normalisation as a bijector, with TFP's conventions and a train/eval switch.

    ``inverse`` (data to latent) *normalises* each coordinate,

    .. math::  z = \\gamma \\, (y - \\mu) / \\sqrt{\\sigma^2 + \\epsilon} + \\beta,

    with ``(mu, sigma^2)`` the mean and variance of the current batch in training mode
    (which also updates moving averages of them), or the moving averages in evaluation
    mode. ``forward`` always *de-normalises* with the moving averages. So in training
    mode ``forward`` and ``inverse`` are not exact inverses of each other; in evaluation
    mode they are. ``log|det dz/dy| = sum(log gamma) - 0.5 * sum(log(sigma^2 + eps))``, the
    same for every example of the batch. ``gamma = exp(log_gamma)`` stays positive.

    The ``training`` flag is a boolean ``tf.Variable`` shared by all such layers of a
    flow, so one assignment (:func:`flowlib.flows.set_training`) switches them all, also
    inside compiled code.

    Why not ``tfb.BatchNormalization``? One layer at a time it computes the same map (a
    test checks that). But ``TransformedDistribution.log_prob`` asks a bijector for
    ``forward_log_det_jacobian`` at the latent point, and TFP's batch norm answers from
    its *moving averages* while its ``inverse`` used the *batch* statistics. In training
    mode the loss is then not the likelihood of the normalised batch: it drifts with the
    moving averages and training on it makes the true loss rise. Notebook 07 measures it.
    """

    def __init__(
        self,
        dim: int,
        training: tf.Variable,
        *,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        name: str = "batch_norm",
    ):
        parameters = dict(locals())
        if not (isinstance(training, tf.Variable) and training.dtype == tf.bool):
            raise TypeError("training must be a boolean tf.Variable shared by the flow's layers")
        self.dim = validation.positive_int(dim, "dim")
        self.momentum = validation.real(
            momentum, "momentum", minimum=0.0, maximum=1.0, maximum_inclusive=False
        )
        self.epsilon = validation.positive_float(epsilon, "epsilon")
        self.training = training
        self.moving_mean = tf.Variable(tf.zeros([self.dim]), trainable=False, name="moving_mean")
        self.moving_variance = tf.Variable(tf.ones([self.dim]), trainable=False, name="moving_variance")
        self.log_gamma = tf.Variable(tf.zeros([self.dim]), name="log_gamma")
        self.beta = tf.Variable(tf.zeros([self.dim]), name="beta")
        super().__init__(forward_min_event_ndims=1, validate_args=False, parameters=parameters, name=name)

    def _statistics(self, y: tf.Tensor, *, update: bool) -> tuple[tf.Tensor, tf.Tensor]:
        """``(mean, variance)`` per coordinate: of the batch in training mode, else moving."""
        axes = list(range(y.shape.rank - 1))

        def batch_statistics():
            mean, variance = tf.nn.moments(y, axes=axes)
            if update:
                m = self.momentum
                self.moving_mean.assign(m * self.moving_mean + (1 - m) * tf.stop_gradient(mean))
                self.moving_variance.assign(m * self.moving_variance + (1 - m) * tf.stop_gradient(variance))
            return mean, variance

        return tf.cond(
            self.training,
            batch_statistics,
            lambda: (tf.identity(self.moving_mean), tf.identity(self.moving_variance)),
        )

    def _normalise(self, y: tf.Tensor, *, update: bool) -> tuple[tf.Tensor, tf.Tensor]:
        validation.coordinates(y.shape, self.dim, self.name)
        mean, variance = self._statistics(y, update=update)
        log_scale = self.log_gamma - 0.5 * tf.math.log(variance + self.epsilon)
        z = (y - mean) * tf.exp(log_scale) + self.beta
        return z, tf.fill(tf.shape(y)[:-1], tf.reduce_sum(log_scale))

    def inverse_and_log_det(self, y):
        """Normalise ``y`` (updating the moving averages in training mode) and ``log|det dz/dy|``."""
        return self._normalise(y, update=True)

    def forward_and_log_det(self, x):
        """De-normalise with the moving averages (both modes), and ``log|det dy/dx|``."""
        validation.coordinates(x.shape, self.dim, self.name)
        log_scale = 0.5 * tf.math.log(self.moving_variance + self.epsilon) - self.log_gamma
        y = (x - self.beta) * tf.exp(log_scale) + self.moving_mean
        return y, tf.fill(tf.shape(x)[:-1], tf.reduce_sum(log_scale))

    def _inverse_log_det_jacobian(self, y):
        # TFP calls this after `_inverse` on the same batch: the moving averages were
        # updated there, so they are not updated a second time.
        return self._normalise(y, update=False)[1]

    # `forward_and_log_det` gives the log-det of `forward` (moving averages), but TFP must not
    # use it: no `_forward_log_det_jacobian` on purpose. `TransformedDistribution.log_prob`
    # computes the density correction as `-forward_log_det_jacobian(z)` at the latent
    # point. Defined from the moving averages, that would disagree with `inverse` in
    # training mode (batch statistics): the loss the optimizer sees would not be the
    # likelihood of the normalised batch. Without it, TFP falls back to
    # `inverse_log_det_jacobian(forward(z))`, and `forward(z)` is the cached data point,
    # so both directions use the same statistics. (tfb.BatchNormalization defines it,
    # and that is the bug notebook 07 measures.)
    # TFP asks `hasattr(self, "_forward_log_det_jacobian")`; the property below hides the one
    # FlowBijector derives, so that answer is False.

    @property
    def _forward_log_det_jacobian(self):
        raise AttributeError("BatchNormalization has no _forward_log_det_jacobian, on purpose")
