# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: -all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext,colab,accelerator
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 11 · Continuous-time flows: FFJORD and flow matching
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/normalizing-flows-tf2/flowlib/blob/main/notebooks/11_continuous_time_flows.ipynb)
#
# **After this notebook you can** derive the instantaneous change of variables
# $\frac{d}{dt}\log p(x(t)) = -\operatorname{tr}\frac{\partial v}{\partial x}$ from notebook
# 02's discrete one and check it on a grid; build a continuous normalizing flow with TFP's
# `tfb.FFJORD` (its ODE solver and its trace), train it by maximum likelihood and say what
# each ODE solve costs; train the same kind of vector field by *flow matching*, a
# regression that solves no ODE at all, and score it with the same change of variables;
# and compare both with the series' headline spline flow on one word at one wall-clock
# budget.
#
# **Prerequisites:** [02 · Change of variables](02_change_of_variables.ipynb) and
# [08 · Beyond affine coupling](08_beyond_affine_coupling.ipynb) (the spline flow and the
# table this notebook extends).

# %%
# Setup. In Colab: install flowlib from the series' repository, keeping Colab's TensorFlow.
import sys

if "google.colab" in sys.modules:
    get_ipython().run_line_magic(
        "pip", 'install --quiet --no-deps "git+https://github.com/normalizing-flows-tf2/flowlib@main"')

try:
    import flowlib
except ModuleNotFoundError:
    raise ModuleNotFoundError(
        "flowlib is not installed: in Colab, check the network and run this cell again; "
        "on your machine, run `make venv` and choose the .venv kernel.") from None

flowlib.config.check_environment()

# %%
import functools
import time

import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from IPython.display import Markdown, display

from flowlib import continuous, data, metrics, plotting, recipe, train

tfb, tfd = tfp.bijectors, tfp.distributions
tf.get_logger().setLevel("ERROR")

target = data.PictureDistribution.from_text("Flow")
x_train = target.sample(100_000, seed=0)
x_test = target.sample(20_000, seed=1)
ENTROPY = target.entropy()
print(f"{len(x_train):,} training and {len(x_test):,} held-out points on “{target.name}”; "
      f"entropy bound H[p] = {ENTROPY:.3f} nats")

# %% [markdown]
# ## 1. The instantaneous change of variables
#
# A coupling flow is a stack of a few large, invertible steps. Make the steps small instead:
# $x_{t+h} = x_t + h\,v(t, x_t)$ for a *vector field* $v$, and let $h \to 0$. The points then
# follow the ordinary differential equation $\frac{dx}{dt} = v(t, x)$ from the base
# ($t = 0$) to the data ($t = 1$), and the flow is invertible for any smooth $v$: run the
# ODE backwards.
#
# The density follows from notebook 02's formula, one small step at a time. The Jacobian
# of the step is $I + h J$ with $J = \partial v / \partial x$, and
# $\det(I + hJ) = 1 + h \operatorname{tr} J + O(h^2)$ (expand the determinant: every other
# term holds at least two factors of $h$). So
#
# $$\log p(x_{t+h}) = \log p(x_t) - \log|\det(I + hJ)| = \log p(x_t) - h\operatorname{tr}J
#   + O(h^2), \qquad \frac{d}{dt}\log p(x(t)) = -\operatorname{tr}\frac{\partial v}{\partial x}(t, x(t)).$$
#
# This is theorem 1 of Chen et al. (2018), *Neural ordinary differential equations*. The
# determinant is gone: only the trace is left, the sum of $D$ diagonal entries, and no
# constraint on the network keeps the Jacobian triangular.
#
# **A check on a grid.** For a linear field $v(x) = A x$ the solution is
# $x(1) = e^{A} x(0)$, so a standard normal base becomes $\mathcal{N}(0, e^{A} e^{A^\top})$:
# a density in closed form. We take a non-symmetric $A$ (a rotation with a shear and a
# contraction), compute the density at time 1 on a grid by running the ODE *backwards*
# from each grid point with Euler steps while adding up the trace, and compare.

# %%
def euler_with_log_density(field, divergence, x, t0, t1, num_steps):
    """Euler steps of dx/dt = field(t, x) from t0 to t1; also the integral of the divergence
    (tr dv/dx) along each path, so that log p(x(t1)) = log p(x(t0)) - that integral."""
    h = (t1 - t0) / num_steps
    integral = np.zeros(len(x))
    for i in range(num_steps):
        t = t0 + i * h
        integral += h * divergence(t, x)
        x = x + h * field(t, x)
    return x, integral


A = np.array([[-0.3, -1.4], [0.6, -0.1]])


def field(t, x):
    return x @ A.T  # v(x) = A x for each row


def divergence(t, x):
    return np.full(len(x), np.trace(A))  # tr dv/dx = tr A everywhere


step = 0.04
xs, ys = np.arange(-5, 5, step) + step / 2, np.arange(-5, 5, step) + step / 2
grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
x0, integral = euler_with_log_density(field, divergence, grid, 1.0, 0.0, num_steps=1000)  # backwards
log_p0 = -0.5 * np.sum(x0**2, axis=1) - np.log(2 * np.pi)
log_p1_ode = log_p0 + integral  # integral from 1 to 0 = minus the integral from 0 to 1

M = tf.linalg.expm(tf.constant(A)).numpy()
log_p1_exact = tfd.MultivariateNormalTriL(loc=np.zeros(2), scale_tril=np.linalg.cholesky(M @ M.T)).log_prob(grid).numpy()
largest_error = np.abs(np.exp(log_p1_ode) - np.exp(log_p1_exact)).max()
mass = np.exp(log_p1_ode).sum() * step**2
print(f"tr A = {np.trace(A):.2f}; largest density error on the grid {largest_error:.1e}; "
      f"the ODE's density integrates to {mass:.4f}")
assert largest_error < 1e-3 * np.exp(log_p1_exact).max() and abs(mass - 1) < 2e-3

fig, axes = plt.subplots(1, 2, figsize=(8.5, 4))
for ax, values, title in [(axes[0], log_p1_ode, "by the ODE and the trace"), (axes[1], log_p1_exact, "closed form")]:
    ax.imshow(np.exp(values).reshape(len(ys), len(xs)), extent=(-5, 5, -5, 5), origin="lower", cmap="magma")
    ax.set_title(f"density at t = 1, {title}", fontsize=10)
    plotting.frame_axes(ax, (-5, 5, -5, 5))
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 2. FFJORD: a neural field, solved by TFP
#
# With a neural network for $v$ this is a *continuous normalizing flow*. TFP implements it
# as the bijector `tfb.FFJORD` (Grathwohl et al. 2019, *FFJORD: free-form continuous
# dynamics*). Reading its source (`tensorflow_probability/python/bijectors/ffjord.py`,
# TFP 0.25): `forward` solves the ODE from `initial_time` to `final_time` with the
# log-determinant as a second state whose derivative is the trace; `inverse` solves the
# field $-v(t_1 - t, x)$ the same way; the solver is `ode_solve_fn`, TFP's adaptive
# Dormand-Prince (`tfp.math.ode.DormandPrince`) when none is given; the trace comes from
# `trace_augmentation_fn`, by default `trace_jacobian_hutchinson`, an unbiased random
# estimate $\epsilon^\top J \epsilon$ (one backward pass, noisy), or
# `trace_jacobian_exact`, the diagonal of $J$ by one backward pass per coordinate. In two
# dimensions the exact trace costs two passes, so we use it: no noise in the loss, and the
# log-density is exact up to the solver's error. The solver we choose is a fixed-step
# fourth-order Runge-Kutta (`continuous.rk4_solver`): every batch costs the same, and
# training differentiates through its steps by ordinary backpropagation. Section 5
# measures what its steps cost and how far they are from the adaptive solver.
#
# **The exact trace, written out.** A `trace_augmentation_fn` receives the field and returns
# a function of `(t, (x, log_det))` giving the velocity and the diagonal of its Jacobian
# (FFJORD sums the diagonal). TFP's `trace_jacobian_exact` loops over the coordinates with a
# graph loop (`tfp.math.diag_jacobian`), which ends up nested inside the solver's own loop
# and, in training, inside the gradient of both. With two coordinates we can write the loop
# out instead: one tape, one gradient per coordinate. It gives the same numbers and a graph
# that is quicker to build and to run (flowlib's `continuous.exact_trace` is this function).

# %%
def exact_trace(ode_fn, state_shape, dtype):
    """For tfb.FFJORD: (t, (x, log_det)) -> (v(t, x), diagonal of dv/dx), [n, D] each."""
    def augmented(t, state_and_log_det):
        x, _ = state_and_log_det
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            v = ode_fn(t, x)
            v_parts = [v[:, i] for i in range(v.shape[-1])]  # one per coordinate, unrolled
        diagonal = tf.stack([tape.gradient(v_i, x)[:, i] for i, v_i in enumerate(v_parts)], axis=-1)
        return v, diagonal
    return augmented


# Check on a field that is far from zero: TFP's loop and autodiff's full Jacobian agree.
W = tf.constant(np.random.default_rng(1).normal(size=(2, 2)), tf.float32)


def bent_field(t, x):
    return tf.tanh(x @ W) * (1.0 + t) + x[:, ::-1] ** 2


x_check = tf.constant(np.random.default_rng(2).normal(size=(5, 2)), tf.float32)
state = (x_check, tf.zeros(5))
ours = exact_trace(bent_field, None, None)(0.3, state)[1]
tfps = tfb.ffjord.trace_jacobian_exact(bent_field, None, None)(0.3, state)[1]
with tf.GradientTape() as tape:
    tape.watch(x_check)
    v = bent_field(0.3, x_check)
autodiff = tf.linalg.diag_part(tape.batch_jacobian(v, x_check))
np.testing.assert_allclose(ours, tfps, atol=1e-6)
np.testing.assert_allclose(ours, autodiff, atol=1e-6)
print("diagonal of dv/dx at the first point:", ours[0].numpy(), "(autodiff:", autodiff[0].numpy(), ")")

# %% [markdown]
# The field is `continuous.VectorField`: an MLP of $(x, t, \sin \pi t, \cos \pi t)$ whose
# last layer starts at zero, so a new flow is the identity (the base itself). Written out
# with TFP, then the same with flowlib's builder:

# %%
ffjord_field = continuous.VectorField(dim=2, hidden_units=(64, 64), seed=0)
ffjord = tfd.TransformedDistribution(
    distribution=tfd.MultivariateNormalDiag(loc=tf.zeros(2)),
    bijector=tfb.FFJORD(state_time_derivative_fn=ffjord_field,
                        ode_solve_fn=continuous.rk4_solver(num_steps=4),
                        trace_augmentation_fn=exact_trace))
same = continuous.continuous_flow(ffjord_field, num_steps=4)  # the same flow (checked once trained)
ffjord_log_prob = tf.function(ffjord.log_prob)
points = tf.constant(x_test[:256])
print(f"{len(ffjord.trainable_variables)} weight tensors; a new field is zero, so the flow is the base: "
      f"mean log q on the word {tf.reduce_mean(ffjord_log_prob(points)).numpy():.3f}")

# %% [markdown]
# **The cost of one ODE solve.** Each RK4 step evaluates the field 4 times, and each
# evaluation comes with the exact trace (2 more backward passes); training then
# backpropagates through all of it. We time one compiled density evaluation of a batch of
# 256 points, and one gradient of its mean (what a training step costs).

# %%
def timed(function, repeats=3):
    """Milliseconds per call of an already compiled function (best of a few calls)."""
    function()  # compile
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        tf.nest.map_structure(lambda t: t.numpy(), result)
        best = min(best, time.perf_counter() - start)
    return 1000 * best


@tf.function
def ffjord_gradient(x):
    with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(ffjord.log_prob(x))
    return tape.gradient(loss, ffjord.trainable_variables)


batch = tf.constant(x_train[:256])
solve_ms = timed(lambda: ffjord_log_prob(batch))
gradient_ms = timed(lambda: ffjord_gradient(batch))
print(f"one ODE solve with the trace, 256 points, 4 RK4 steps (16 field evaluations): {solve_ms:.1f} ms; "
      f"with the gradient: {gradient_ms:.1f} ms")

# %% [markdown]
# **Training by maximum likelihood.** `train.fit` trains any `TransformedDistribution`
# whose layers it can undo one at a time, each giving its point and log-determinant together.
# `tfb.FFJORD` can: one augmented ODE solve (the state and the running trace integral) gives
# both, so every training step costs one solve backwards in time and one for the gradient.
# All three models of this notebook get the same wall-clock budget, `BUDGET` seconds,
# compilation included, with the learning rate decayed over that time.

# %%
BUDGET = 20  # seconds of training for each model

ffjord_history = train.fit(ffjord, x_train, steps=2000, batch_size=256, learning_rate=3e-3, seed=0,
                           steps_per_call=10, max_seconds=BUDGET, schedule_by_time=True)
print(f"FFJORD: {ffjord_history.steps} steps in {ffjord_history.seconds:.0f} s, "
      f"final training NLL {np.mean(ffjord_history.loss[-10:]):.3f} nats")
# The field has moved: the TFP flow and flowlib's builder still give the same densities.
np.testing.assert_allclose(ffjord_log_prob(points), tf.function(same.log_prob)(points), atol=1e-4)

# %% [markdown]
# ## 3. Flow matching: a regression instead of an ODE solve
#
# Maximum likelihood solves the ODE at every step. Flow matching (Lipman et al. 2023,
# *Flow matching for generative modeling*; rectified flow, Liu et al. 2023, *Flow straight
# and fast*) avoids it. Pick a path from each base point $z$ to a data point $x$: the
# straight line $x_t = (1 - t)\,z + t\,x$, whose velocity is $x - z$. Then regress the field
# onto those velocities at random times:
#
# $$\mathcal{L}(v) = \mathbb{E}_{t \sim U(0,1),\, z \sim \mathcal{N}(0, I),\, x \sim p}
#   \big\| v(t, x_t) - (x - z) \big\|^2 .$$
#
# Different pairs cross, so no field can match every line; the minimiser is the *average*
# velocity of the lines through each point, and Lipman et al. (theorem 2) show that its
# ODE carries the base exactly to the data. Each step is one evaluation of the network on a
# batch: no solver, no trace. The loss, written out on one batch:

# %%
def straight_path_loss(field, x, z, t):
    """Mean over points of |field(t, x_t) - (x - z)|^2 on the straight paths x_t = (1-t) z + t x."""
    x_t = (1 - t[:, None]) * z + t[:, None] * x
    return tf.reduce_mean(tf.reduce_sum((field(t, x_t) - (x - z)) ** 2, axis=1))


fm_field = continuous.VectorField(dim=2, hidden_units=(64, 64), seed=0)
rng = np.random.default_rng(0)
x, z, t = x_train[:512], rng.standard_normal((512, 2)).astype(np.float32), rng.uniform(size=512).astype(np.float32)
np.testing.assert_allclose(straight_path_loss(fm_field, x, z, t), continuous.flow_matching_loss(fm_field, x, z, t), rtol=1e-6)
print(f"loss of the zero field on one batch: {float(straight_path_loss(fm_field, x, z, t)):.3f} "
      "(the mean squared length of the lines)")

# %%
fm_history = continuous.fit_flow_matching(fm_field, x_train, steps=100_000, batch_size=256, learning_rate=2e-3,
                                          seed=0, max_seconds=BUDGET)
flow_matching = continuous.continuous_flow(fm_field, num_steps=8)
print(f"flow matching: {fm_history.steps:,} steps in {fm_history.seconds:.0f} s, "
      f"final loss {np.mean(fm_history.loss[-200:]):.3f}")

# %% [markdown]
# The regression loss does not go to zero (the lines cross), so it is no measure of
# quality. The density is: the trained field *is* a continuous flow, so the same
# instantaneous change of variables scores it, integrated backwards from each held-out
# point with the exact trace, and sampling is one forward ODE solve. A straight-path field
# is nearly straight, so a few solver steps suffice; we use 8 (section 5 measures the choice).
#
# ## 4. One table: spline flow, FFJORD and flow matching
#
# The headline spline flow (`recipe.HEADLINE`, trained as in notebook 08) gets the same
# budget, with one change: its training step is not compiled by XLA, since that compilation
# alone takes seconds (`train.fit`'s documentation), a large share of a budget this short. For each model: the held-out gap above the entropy bound (an estimate of
# $\mathrm{KL}(p\,\|\,q)$, notebook 03; the same mean $-\log q$ minus $H[p]$ as
# `metrics.evaluate`), the training time, and the compiled time to sample and to evaluate
# the density of 10,000 points.

# %%
spline = recipe.HEADLINE.build(seed=0)
spline_history = train.fit(spline, x_train, steps=40_000, seed=0, max_seconds=BUDGET, schedule_by_time=True,
                           **{**recipe.HEADLINE.fit_kwargs(), "jit_compile": False})

models = {"spline flow (headline)": (spline, spline_history),
          "FFJORD (max. likelihood)": (ffjord, ffjord_history),
          "flow matching": (flow_matching, fm_history)}
chunks = [tf.constant(x_test[i:i + 10_000]) for i in range(0, len(x_test), 10_000)]  # one shape: one trace
table = {}
for name, (model, history) in models.items():
    log_prob = tf.function(model.log_prob)
    sample = tf.function(functools.partial(model.sample, 10_000, seed=2))
    neg_log_q = np.concatenate([-log_prob(chunk).numpy() for chunk in chunks])
    table[name] = dict(gap=neg_log_q.mean() - ENTROPY, se=neg_log_q.std(ddof=1) / np.sqrt(len(neg_log_q)),
                       steps=history.steps, seconds=history.seconds,
                       sample_ms=timed(sample, repeats=1), density_ms=timed(lambda f=log_prob: f(chunks[0]), repeats=1),
                       samples=sample().numpy())
np.testing.assert_allclose(table["spline flow (headline)"]["gap"], metrics.evaluate(spline, target, x_test).gap, atol=1e-3)

print(f"{'model':<26} {'gap (nats)':>14} {'steps':>8} {'training (s)':>13} {'sample 10k (ms)':>16} {'density 10k (ms)':>17}")
for name, r in table.items():
    print(f"{name:<26} {r['gap']:7.3f} ±{r['se']:.3f} {r['steps']:8,d} {r['seconds']:13.0f} "
          f"{r['sample_ms']:16.0f} {r['density_ms']:17.0f}")
# Every model starts as (or near) the standard normal base: each must end closer to the word.
base_gap = -np.mean(tfd.MultivariateNormalDiag(tf.zeros(2), tf.ones(2)).log_prob(x_test).numpy()) - ENTROPY
for name, r in table.items():
    assert np.isfinite(r["gap"]) and r["gap"] < base_gap, f"{name} did not learn the word"

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 2.8))
for ax, (name, r) in zip(axes, table.items()):
    ax.scatter(*r["samples"][:5000].T, s=0.5, color=plotting.TARGET_COLOR, alpha=0.5)
    ax.set_title(f"{name}: gap {r['gap']:.2f} nats", fontsize=10)
    plotting.frame_axes(ax, target.extent)
fig.suptitle(f"5,000 samples of each model after {BUDGET} s of training")
fig.tight_layout()
plt.show()

# %%
best = min(table, key=lambda name: table[name]["gap"])
ffjord_row, fm_row = table["FFJORD (max. likelihood)"], table["flow matching"]
continuous_winner = "flow matching" if fm_row["gap"] < ffjord_row["gap"] else "FFJORD"


def fastest(column):
    return min(table, key=lambda name: table[name][column])


display(Markdown("\n".join([
    f"- **Quality at {BUDGET} s.** The {best} has the smallest gap, {table[best]['gap']:.2f} nats; "
    + ", ".join(f"{name} {r['gap']:.2f}" for name, r in table.items() if name != best) + ". "
    f"Of the two continuous flows, {continuous_winner} is closer to the target, by "
    f"{abs(fm_row['gap'] - ffjord_row['gap']):.2f} nats.",
    f"- **Training.** In the same time flow matching took {fm_row['steps']:,} steps and FFJORD "
    f"{ffjord_row['steps']:,}, {fm_row['steps'] / max(ffjord_row['steps'], 1):.0f} times fewer: every "
    "maximum-likelihood step solves an ODE with the trace and backpropagates through it; a flow-matching "
    "step evaluates the network once, and no ODE is solved until the model is used.",
    f"- **Using the model.** To sample 10,000 points the {fastest('sample_ms')} is fastest "
    f"({table[fastest('sample_ms')]['sample_ms']:.0f} ms, against "
    f"{max(r['sample_ms'] for r in table.values()):.0f} ms for the slowest); to evaluate their density, the "
    f"{fastest('density_ms')} ({table[fastest('density_ms')]['density_ms']:.0f} ms, against "
    f"{max(r['density_ms'] for r in table.values()):.0f} ms). A continuous flow pays one ODE solve for "
    f"either, the coupling flow one pass through its {recipe.HEADLINE.num_layers} layers.",
])))

# %% [markdown]
# ## 5. The solver: error against cost
#
# How many RK4 steps does the flow-matching field need? We compare the log-density of
# 2,000 held-out points under fixed-step RK4 with 2, 4 and 8 steps, and under TFP's adaptive
# Dormand-Prince (relative and absolute tolerance $10^{-5}$), with a reference of 32 RK4
# steps.

# %%
few = tf.constant(x_test[:2000])
reference = tf.function(continuous.continuous_flow(fm_field, num_steps=32).log_prob)(few).numpy()
solvers = {f"RK4, {n} steps": dict(num_steps=n) for n in (2, 4, 8)}
solvers["Dormand-Prince, tol 1e-05"] = dict(solver="dopri", rtol=1e-5, atol=1e-5)
accuracy = {}
for name, options in solvers.items():
    log_prob = tf.function(continuous.continuous_flow(fm_field, **options).log_prob)
    accuracy[name] = (np.abs(log_prob(few).numpy() - reference).mean(), timed(lambda f=log_prob: f(few), repeats=2))
    print(f"{name:<26} mean |error of log q| {accuracy[name][0]:.1e} nats   {accuracy[name][1]:6.0f} ms")

# %%
display(Markdown(
    f"With 8 RK4 steps (the solver of the table) the log-density is off by "
    f"{accuracy['RK4, 8 steps'][0]:.1e} nats on average, far below the gaps being compared, at "
    f"{accuracy['RK4, 8 steps'][1]:.0f} ms for 2,000 points; Dormand-Prince at tolerance 1e-5 takes "
    f"{accuracy['Dormand-Prince, tol 1e-05'][1]:.0f} ms for an error of {accuracy['Dormand-Prince, tol 1e-05'][0]:.1e}."))

# %% [markdown]
# ## Summary
#
# - In continuous time the log-determinant becomes an integral of a **trace**:
#   $\frac{d}{dt}\log p = -\operatorname{tr}\,\partial v/\partial x$. Any smooth network is
#   a valid field; the price is an ODE solve per density or sample.
# - **FFJORD** (`tfb.FFJORD`) solves the ODE and the trace together; in 2-D the exact trace
#   costs two backward passes. Trained by maximum likelihood, each step is an ODE solve
#   with backpropagation through it.
# - **Flow matching** trains the same field by regression onto straight-path velocities,
#   with no ODE in training; it is scored and sampled by the same ODE.
# - On the word, at one wall-clock budget, the table of section 4 says which model wins on
#   quality, on training and on speed of use.
#
# ## Exercises
#
# Each exercise asks for a function on plain arrays and callables and checks it, right
# after it, on several random cases against an independent computation.

# %% [markdown]
# ### Exercise 1: the flow-matching target and loss
#
# Write `flow_matching_pieces(x, z, t, velocity)`: `x` holds data points and `z` base
# points, both `[n, d]`, `t` holds one time in $[0, 1]$ per point, `[n]`, and `velocity`
# is a callable `velocity(t, x_t)` that takes `[n]` times and `[n, d]` points and returns
# `[n, d]` velocities (a NumPy function). Return the triple `(x_t, target, losses)`: the
# points of the straight paths at those times, $x_t = (1 - t) z + t x$, `[n, d]`; the
# velocities of the paths, the target of the regression, `[n, d]`; and each point's term
# of the loss of section 3, the squared length of `velocity(t, x_t) - target` summed over
# the $d$ coordinates, `[n]` (the loss is their mean).

# %%
def flow_matching_pieces(x, z, t, velocity):
    ### BEGIN SOLUTION hint: t[:, None] broadcasts one time per point over the coordinates; the target is the path's derivative in t
    x_t = (1 - t[:, None]) * z + t[:, None] * x
    target = x - z
    losses = np.sum((velocity(t, x_t) - target) ** 2, axis=1)
    return x_t, target, losses
    ### END SOLUTION


def check_exercise_1(flow_matching_pieces):
    """Random data, base points and times (n != d), a time-dependent nonlinear velocity."""
    for seed, (n, d) in enumerate([(7, 3), (12, 2), (5, 4)]):
        rng = np.random.default_rng(110 + seed)
        x, z = rng.normal(1.0, 2.0, (n, d)), rng.normal(-0.5, 1.0, (n, d))
        t = rng.uniform(0, 1, n)
        weights = rng.normal(size=(d, d))

        def velocity(times, points, weights=weights):
            return np.tanh(np.asarray(points) @ weights) * (1 + 2 * np.asarray(times)[:, None]) - 0.3

        x_t, target, losses = flow_matching_pieces(x.copy(), z.copy(), t.copy(), velocity)
        on_path = (1 - t[:, None]) * z + t[:, None] * x
        assert np.allclose(np.asarray(x_t), on_path, atol=1e-10), f"case {seed + 1}: x_t is not on the straight path at time t"
        assert np.allclose(np.asarray(target), x - z, atol=1e-10), f"case {seed + 1}: wrong target velocity"
        expected = np.sum((velocity(t, on_path) - (x - z)) ** 2, axis=1)
        assert np.shape(losses) == (n,), f"case {seed + 1}: expected one loss term per point, shape ({n},), got {np.shape(losses)}"
        assert np.allclose(np.asarray(losses), expected, rtol=1e-9, atol=0), f"case {seed + 1}: wrong loss terms"
    print("Exercise 1: correct")


check_exercise_1(flow_matching_pieces)

# %% [markdown]
# ### Exercise 2: the midpoint method, with the log-density
#
# Write `midpoint_with_log_density(velocity, divergence, x, log_p, t0, t1, num_steps)`:
# integrate $dx/dt = v(t, x)$ from `t0` to `t1` (either may be the larger) with `num_steps`
# equal steps of the *midpoint method*, $x_{\text{mid}} = x + \frac{h}{2} v(t, x)$,
# $x \leftarrow x + h\, v(t + \frac{h}{2}, x_{\text{mid}})$ with $h = (t_1 - t_0) /$
# `num_steps`, and carry the log-density along with the same rule: $\log p \leftarrow \log p
# - h \operatorname{tr}\frac{\partial v}{\partial x}(t + \frac{h}{2}, x_{\text{mid}})$.
# `velocity(t, x)` takes a time (a float) and `[n, d]` points and returns `[n, d]`;
# `divergence(t, x)` returns the trace $\operatorname{tr}\,\partial v/\partial x$ at each
# point, `[n]`; `x` is `[n, d]` and `log_p` `[n]`, the log-density at `t0`. Return the
# pair `(x, log_p)` at `t1`.

# %%
def midpoint_with_log_density(velocity, divergence, x, log_p, t0, t1, num_steps):
    ### BEGIN SOLUTION hint: one loop over the steps; the midpoint is half an Euler step; both updates use the midpoint's time and point
    h = (t1 - t0) / num_steps
    for i in range(num_steps):
        t = t0 + i * h
        x_mid = x + h / 2 * velocity(t, x)
        log_p = log_p - h * divergence(t + h / 2, x_mid)
        x = x + h * velocity(t + h / 2, x_mid)
    return x, log_p
    ### END SOLUTION


def check_exercise_2(midpoint_with_log_density):
    """A time-dependent nonlinear field in 3-D whose divergence varies in space; forwards and backwards."""

    def expected_midpoint(velocity, divergence, x, log_p, t0, t1, num_steps):  # written afresh
        times = np.linspace(t0, t1, num_steps + 1)
        for a, b in zip(times[:-1], times[1:]):
            h, middle = b - a, (a + b) / 2
            x_mid = x + (h / 2) * velocity(a, x)
            x, log_p = x + h * velocity(middle, x_mid), log_p - h * divergence(middle, x_mid)
        return x, log_p

    for seed, (n, d, t0, t1, num_steps) in enumerate([(9, 3, 0.25, 1.6, 5), (6, 2, 1.0, -0.4, 7), (4, 3, -0.3, 0.2, 1)]):
        rng = np.random.default_rng(210 + seed)
        C, B, b = rng.normal(size=(d, d)), rng.normal(size=(d, d)), rng.normal(size=d)

        def velocity(t, x, C=C, B=B, b=b):
            return (1 + t) * np.tanh(x @ C + b) + t**2 * (x @ B)

        def divergence(t, x, C=C, B=B, b=b):
            return (1 + t) * (1 - np.tanh(x @ C + b) ** 2) @ np.diag(C) + t**2 * np.trace(B)

        x, log_p = rng.normal(size=(n, d)), rng.normal(size=n)
        got_x, got_log_p = midpoint_with_log_density(velocity, divergence, x.copy(), log_p.copy(), t0, t1, num_steps)
        want_x, want_log_p = expected_midpoint(velocity, divergence, x, log_p, t0, t1, num_steps)
        assert np.allclose(np.asarray(got_x), want_x, rtol=1e-9, atol=1e-9), (
            f"case {seed + 1} (t0={t0}, t1={t1}, {num_steps} steps): wrong points at t1")
        assert np.allclose(np.asarray(got_log_p), want_log_p, rtol=1e-9, atol=1e-9), (
            f"case {seed + 1} (t0={t0}, t1={t1}, {num_steps} steps): wrong log-density at t1")
    print("Exercise 2: correct")


check_exercise_2(midpoint_with_log_density)

# %% [markdown]
# ### Exercise 3: the trace of a Jacobian, from the function alone
#
# FFJORD needs $\operatorname{tr}\frac{\partial v}{\partial x}$ at every point. Write
# `jacobian_trace(f, x)` for a NumPy function `f` that maps `[n, d]` points to `[n, d]`
# (each output row depends only on the same input row) and points `x`, `[n, d]` in float64:
# return the trace of the Jacobian of `f` at each point, `[n]`, to within $10^{-6}$. `f` is
# plain NumPy, so there is no autodiff to call: use finite differences (a central
# difference $\frac{f_j(x + \epsilon e_j) - f_j(x - \epsilon e_j)}{2\epsilon}$ with
# $\epsilon$ about $10^{-5}$ is accurate enough), or any other exact method.

# %%
def jacobian_trace(f, x):
    x = np.asarray(x, dtype=np.float64)
    ### BEGIN SOLUTION hint: one coordinate at a time: move every point along e_j both ways and keep only output j
    eps = 1e-5
    trace = np.zeros(len(x))
    for j in range(x.shape[1]):
        step = np.zeros(x.shape[1])
        step[j] = eps
        trace += (f(x + step)[:, j] - f(x - step)[:, j]) / (2 * eps)
    return trace
    ### END SOLUTION


def check_exercise_3(jacobian_trace):
    """Random nonlinear maps R^d -> R^d (d = 2, 3, 5) with non-symmetric Jacobians, points off centre."""
    for seed, (n, d, m) in enumerate([(6, 2, 4), (9, 3, 7), (4, 5, 3)]):
        rng = np.random.default_rng(310 + seed)
        W, V, b, c = rng.normal(size=(d, m)), rng.normal(size=(m, d)), rng.normal(size=m), rng.normal(size=d)

        def f(x, W=W, V=V, b=b, c=c):
            return np.tanh(np.asarray(x) @ W + b) @ V + c * np.asarray(x) ** 2

        x = rng.normal(0.5, 1.5, (n, d))
        got = np.asarray(jacobian_trace(f, x.copy()), dtype=np.float64)
        slope = 1 - np.tanh(x @ W + b) ** 2  # [n, m]
        expected = slope @ np.diag(V @ W) + 2 * x @ c  # sum_j df_j/dx_j, by hand
        assert got.shape == (n,), f"d = {d}: expected one trace per point, shape ({n},), got {got.shape}"
        assert np.allclose(got, expected, rtol=0, atol=1e-6), f"d = {d}: wrong trace at some points"
    print("Exercise 3: correct")


check_exercise_3(jacobian_trace)
