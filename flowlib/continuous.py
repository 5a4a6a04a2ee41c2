"""Continuous-time flows: a vector field, FFJORD with an exact trace, and flow matching.

A continuous normalizing flow moves points along an ODE ``dx/dt = v(t, x)`` from the base
(``t = 0``) to the data (``t = 1``). The log-density follows the *instantaneous change of
variables* (Chen et al. 2018, "Neural ordinary differential equations", theorem 1):

.. math::  \\frac{d \\log p(x(t))}{dt} = -\\operatorname{tr}\\frac{\\partial v}{\\partial x}(t, x(t)).

- :class:`VectorField` is ``v``: a small MLP of ``(x, t)``.
- :func:`continuous_flow` wraps it in TFP's ``tfb.FFJORD`` (Grathwohl et al. 2019) with
  the exact trace (:func:`exact_trace`, one backward pass per coordinate: cheap in 2-D)
  and a fixed-step solver (:func:`rk4_solver`) or TFP's adaptive
  Dormand-Prince, inside a ``tfd.TransformedDistribution`` with ``log_prob`` and ``sample``.
  Trained by maximum likelihood (e.g. with :func:`flowlib.train.fit`) it is FFJORD.
- :func:`flow_matching_loss` and :func:`fit_flow_matching` train the same field without
  solving any ODE (Lipman et al. 2023, "Flow matching for generative modeling"; Liu et al.
  2023, "Flow straight and fast", rectified flow): on the straight path
  ``x_t = (1 - t) z + t x`` from a base point ``z`` to a data point ``x`` the velocity is
  ``x - z``, and the field is regressed onto it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from flowlib import validation
from flowlib.flow import Flow
from flowlib.train import Adam

tfb, tfd = tfp.bijectors, tfp.distributions

SOLVERS = ("rk4", "dopri")


class VectorField(tf.Module):
    """A time-dependent vector field ``v(t, x)``: ``[n, dim]`` points and a time -> ``[n, dim]``.

    An MLP with SiLU activations (smooth, so the ODE and its Jacobian trace are smooth) on the
    features ``(x, t, sin(pi t), cos(pi t))``. The last layer starts at zero, so a fresh
    field is ``v = 0`` and its flow is the identity (the base itself).

    Called as ``field(t, x)`` with ``t`` a scalar (one time for all points, as an ODE solver
    calls it) or ``[n]`` (one time per point, as flow matching calls it).
    """

    def __init__(self, dim: int = 2, hidden_units: Sequence[int] = (64, 64), *, seed: int = 0, name=None):
        super().__init__(name=name or "vector_field")
        self.dim = validation.positive_int(dim, "dim")
        self.hidden_units = validation.positive_ints(hidden_units, "hidden_units")
        seed = validation.seed(seed)
        sizes = (self.dim + 3, *self.hidden_units, self.dim)
        rng = np.random.default_rng(seed)
        self.weights, self.biases = [], []
        for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            last = index == len(sizes) - 2
            scale = 0.0 if last else math.sqrt(2.0 / (fan_in + fan_out))
            self.weights.append(
                tf.Variable(rng.normal(0.0, 1.0, (fan_in, fan_out)).astype(np.float32) * scale)
            )
            self.biases.append(tf.Variable(np.zeros(fan_out, np.float32)))

    def __call__(self, t, x):
        x = tf.convert_to_tensor(x, tf.float32)
        t = tf.cast(t, tf.float32)
        t = tf.broadcast_to(tf.reshape(t, [-1, 1]) if t.shape.rank else t, [tf.shape(x)[0], 1])
        h = tf.concat([x, t, tf.sin(math.pi * t), tf.cos(math.pi * t)], axis=-1)
        for w, b in zip(self.weights[:-1], self.biases[:-1]):
            h = tf.nn.silu(h @ w + b)
        return h @ self.weights[-1] + self.biases[-1]


def exact_trace(ode_fn: Callable, state_shape, dtype) -> Callable:
    """A ``trace_augmentation_fn`` for ``tfb.FFJORD``: the velocity and the exact trace of its
    Jacobian, ``tr dv/dx``, one backward pass per coordinate.

    ``augmented(t, (x, log_det))`` returns ``(v(t, x), diag)`` with ``diag`` the ``[n, dim]``
    diagonal of ``dv/dx`` at each point (FFJORD sums it), as
    ``tfb.ffjord.trace_jacobian_exact`` does. That one loops over the coordinates with a
    graph loop (``tfp.math.diag_jacobian``), one more level of nesting inside the solver's
    loop; here the loop is unrolled in Python (``dim`` gradients of one tape). For notebook
    11's FFJORD (4 RK4 steps, 256 points, 2 cores) a compiled gradient then takes 31.6
    against 45.0 ms, 1.4x as fast, and its first call 7.3 against 11.2 s
    (``bench/ffjord_trace.py``, ``bench/results/ffjord_trace.txt``). Same values to float
    round-off (``tests/test_continuous.py``). The graph grows with ``dim``: meant for small
    dimensions, where the exact trace is affordable at all. ``dim``, the last dimension of the
    state, must be known when the function is traced (a ``ValueError`` says so otherwise);
    :class:`VectorField` states always have it.
    """
    del state_shape, dtype  # the signature tfb.FFJORD calls; the state itself has both

    def augmented(time, state_and_log_det, **kwargs):
        state, _ = state_and_log_det
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(state)
            velocity = ode_fn(time, state, **kwargs)
            dim = velocity.shape[-1]
            if dim is None:
                raise ValueError(
                    "exact_trace unrolls a loop over the coordinates, so the last dimension of the "
                    "state must be known when the function is traced; give the compiled function an "
                    "input_signature with a fixed last dimension, e.g. tf.TensorSpec([None, 2])."
                )
            coordinates = [velocity[..., i] for i in range(dim)]
        diagonal = [tape.gradient(v_i, state)[..., i] for i, v_i in enumerate(coordinates)]
        return velocity, tf.stack(diagonal, axis=-1)

    return augmented


class _Solution(NamedTuple):
    states: object  # nested like the initial state, each with a leading time axis of length 1


def rk4_solver(num_steps: int = 16) -> Callable:
    """An ``ode_solve_fn`` for ``tfb.FFJORD``: classical Runge-Kutta with ``num_steps`` equal steps.

    FFJORD calls it as ``solve(ode_fn, initial_time, initial_state, solution_times)`` with
    ``solution_times = [final_time]`` and reads ``result.states`` (a leading time axis), as
    its docstring asks of a custom solver; the state is a nested pair (points, log-det).
    Fixed steps cost the same on every batch and are differentiated by plain backprop
    (4 field evaluations per step, each with the exact trace).
    """
    num_steps = validation.ode_steps(num_steps)

    def solve(ode_fn, initial_time, initial_state, solution_times, **kwargs):
        if kwargs:
            raise TypeError(f"rk4_solver takes no conditioning arguments, got {sorted(kwargs)}")
        t0 = tf.cast(initial_time, tf.float32)
        h = (tf.cast(solution_times[-1], tf.float32) - t0) / num_steps

        def axpy(a, xs, ys):
            return tf.nest.map_structure(lambda x, y: x + a * y, xs, ys)

        def step(i, state):
            t = t0 + tf.cast(i, tf.float32) * h
            k1 = ode_fn(t, state)
            k2 = ode_fn(t + h / 2, axpy(h / 2, state, k1))
            k3 = ode_fn(t + h / 2, axpy(h / 2, state, k2))
            k4 = ode_fn(t + h, axpy(h, state, k3))
            return i + 1, tf.nest.map_structure(
                lambda s, a, b, c, d: s + h / 6 * (a + 2 * b + 2 * c + d), state, k1, k2, k3, k4
            )

        # A graph loop, not a Python one: the traced graph holds one step, whatever num_steps.
        _, state = tf.while_loop(lambda i, _: i < num_steps, step, (tf.constant(0), initial_state))
        return _Solution(states=tf.nest.map_structure(lambda s: s[tf.newaxis], state))

    return solve


def continuous_flow(
    vector_field: VectorField,
    *,
    solver: str = "rk4",
    num_steps: int = 16,
    rtol: float = 1e-5,
    atol: float = 1e-5,
) -> Flow:
    """A continuous normalizing flow (a :class:`~flowlib.flow.Flow` of one layer, TFP's
    ``tfb.FFJORD``): ``N(0, I)`` pushed through ``dx/dt = v(t, x)`` from t=0 to 1.

    ``log_prob(x)`` solves the ODE backwards from ``x`` with the log-determinant as an extra
    state, ``d log|det| / dt = tr(dv/dx)``, computed exactly (:func:`exact_trace`: one
    backward pass per coordinate); ``sample`` solves it
    forwards. ``solver="rk4"``: :func:`rk4_solver` with ``num_steps`` (``rtol``, ``atol``
    unused); ``"dopri"``: TFP's adaptive ``tfp.math.ode.DormandPrince(rtol, atol)``, TFB's
    default solver for FFJORD (``num_steps`` unused).
    """
    if not isinstance(vector_field, VectorField):
        raise TypeError(
            f"vector_field must be a flowlib.continuous.VectorField, got {type(vector_field).__name__}"
        )
    solver = validation.choice(solver, "solver", SOLVERS)
    if solver == "rk4":
        solve = rk4_solver(num_steps)
    else:
        solve = tfp.math.ode.DormandPrince(
            rtol=validation.ode_tolerance(rtol, "rtol"), atol=validation.ode_tolerance(atol, "atol")
        ).solve
    bijector = tfb.FFJORD(
        state_time_derivative_fn=vector_field,
        ode_solve_fn=solve,
        trace_augmentation_fn=exact_trace,
        name="ffjord",
    )
    base = tfd.MultivariateNormalDiag(loc=tf.zeros(vector_field.dim), name="base")
    return Flow([bijector], base, name="continuous_flow")


def _points(data, dim: int, name: str, min_points: int = 1) -> np.ndarray:
    return validation.points(data, name, dim=dim, min_points=min_points)


def flow_matching_loss(vector_field: VectorField, x, z, t) -> tf.Tensor:
    """The flow-matching loss on straight paths: ``mean_i |v(t_i, x_t) - (x_i - z_i)|^2``.

    ``x`` data ``[n, dim]``, ``z`` base points ``[n, dim]``, ``t`` times ``[n]`` in [0, 1];
    ``x_t = (1 - t) z + t x`` is the point of the straight path at time ``t`` and ``x - z``
    its velocity. The squared norm is summed over coordinates and averaged over points.
    """
    if not isinstance(vector_field, VectorField):
        raise TypeError(
            f"vector_field must be a flowlib.continuous.VectorField, got {type(vector_field).__name__}"
        )
    return _loss(
        vector_field,
        tf.convert_to_tensor(x, tf.float32),
        tf.convert_to_tensor(z, tf.float32),
        tf.convert_to_tensor(t, tf.float32),
    )


def _loss(vector_field, x, z, t):
    x_t = (1.0 - t[:, None]) * z + t[:, None] * x
    residual = vector_field(t, x_t) - (x - z)
    return tf.reduce_mean(tf.reduce_sum(residual**2, axis=-1))


@dataclass
class FlowMatchingHistory:
    """What :func:`fit_flow_matching` did: the loss of every step, steps done, seconds taken."""

    loss: list[float] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    stopped: bool = False


def fit_flow_matching(
    vector_field: VectorField,
    data,
    *,
    steps: int,
    batch_size: int = 256,
    learning_rate: float = 2e-3,
    seed: int = 0,
    steps_per_call: int = 100,
    max_seconds: float | None = None,
    progress: bool = True,
) -> FlowMatchingHistory:
    """Regress ``vector_field`` onto the straight-path velocities ``x - z`` (no ODE solved).

    Each step draws a batch of data ``x`` (with replacement), base points ``z ~ N(0, I)`` and
    times ``t ~ U(0, 1)``, all seeded by ``seed``, and takes an Adam step on
    :func:`flow_matching_loss`, with the rate decayed by a cosine over ``steps`` (or over
    ``max_seconds`` when that runs out first: the larger fraction counts). Training stops
    after the compiled call of ``steps_per_call`` steps that exceeds ``max_seconds``.
    """
    if not isinstance(vector_field, VectorField):
        raise TypeError(
            f"vector_field must be a flowlib.continuous.VectorField, got {type(vector_field).__name__}"
        )
    steps = validation.positive_int(steps, "steps")
    batch_size = validation.positive_int(batch_size, "batch_size")
    learning_rate = validation.positive_float32(learning_rate, "learning_rate")
    seed = validation.seed(seed)
    steps_per_call = validation.positive_int(steps_per_call, "steps_per_call")
    if max_seconds is not None:
        max_seconds = validation.positive_float(max_seconds, "max_seconds")
    progress = validation.boolean(progress, "progress")
    data = tf.constant(_points(data, vector_field.dim, "data", min_points=2))

    variables = list(vector_field.trainable_variables)
    optimizer = Adam(variables, learning_rate)

    @tf.function
    def run(first_step, count):
        losses = tf.TensorArray(tf.float32, size=count)
        for i in tf.range(count):
            step_seed = tf.stack([tf.cast(seed, tf.int32), first_step + i])
            s1, s2, s3 = tf.unstack(tf.random.experimental.stateless_split(step_seed, 3))
            index = tf.random.stateless_uniform([batch_size], s1, 0, tf.shape(data)[0], tf.int32)
            x = tf.gather(data, index)
            z = tf.random.stateless_normal(tf.shape(x), s2)
            t = tf.random.stateless_uniform([batch_size], s3)
            with tf.GradientTape() as tape:
                loss = _loss(vector_field, x, z, t)
            optimizer.apply(tape.gradient(loss, variables))
            losses = losses.write(i, loss)
        return losses.stack()

    from tqdm.auto import tqdm

    history = FlowMatchingHistory()
    start = time.perf_counter()
    bar = tqdm(total=steps, desc="flow matching", unit="step", disable=not progress, leave=True)
    try:
        while history.steps < steps:
            done = max(
                history.steps / steps, (time.perf_counter() - start) / max_seconds if max_seconds else 0.0
            )
            optimizer.learning_rate.assign(learning_rate * 0.5 * (1 + math.cos(math.pi * min(done, 1.0))))
            count = min(steps_per_call, steps - history.steps)
            losses = run(tf.constant(history.steps, tf.int32), tf.constant(count, tf.int32)).numpy()
            history.loss.extend(float(v) for v in losses)
            history.steps += count
            bar.update(count)
            bar.set_postfix(loss=f"{losses.mean():.3f}")
            if not np.all(np.isfinite(losses)):
                raise FloatingPointError(f"fit_flow_matching: non-finite loss by step {history.steps}")
            if max_seconds is not None and time.perf_counter() - start > max_seconds:
                history.stopped = history.steps < steps
                bar.total = history.steps  # the budget is spent: the bar ends full at what ran
                bar.refresh()
                break
    finally:
        bar.close()
    history.seconds = time.perf_counter() - start
    return history
