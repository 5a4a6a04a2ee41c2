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
# # 08 · Beyond affine coupling: splines, autoregressive flows and Glow's ideas
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/normalizing-flows-tf2/flowlib/blob/main/notebooks/08_beyond_affine_coupling.ipynb)
#
# **After this notebook you can** write a monotone rational-quadratic spline, invert it in
# closed form and compute its log-determinant; build the masks of a MADE network and say
# why a masked autoregressive flow (MAF) evaluates a density in one pass but samples in
# $D$ passes, and why an inverse autoregressive flow (IAF) is the other way round; explain
# Glow's ActNorm and its learned invertible linear map in two dimensions; and compare five
# kinds of flow on one target by quality, speed and size, then sample them at a lower
# temperature.
#
# **Prerequisites:** [05 · RealNVP](05_realnvp.ipynb) (the affine coupling and its
# log-determinant) and [07 · Training stability](07_training_stability.ipynb) (the recipe
# every flow here is trained with).

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
import time

import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from IPython.display import Markdown, display

from flowlib import autoregressive, bijectors, data, flows, metrics, plotting, splines, train

tfb, tfd = tfp.bijectors, tfp.distributions
tf.get_logger().setLevel("ERROR")  # each train.fit call compiles its own step

target = data.PictureDistribution.from_text("Flow")
x_train = target.sample(100_000, seed=0)
x_test = target.sample(20_000, seed=1)
ENTROPY = target.entropy()
print(f"{len(x_train):,} training and {len(x_test):,} held-out points on “{target.name}”; "
      f"entropy bound H[p] = {ENTROPY:.3f} nats")

# %% [markdown]
# ## 1. Neural spline flows: bend each coordinate, keep it invertible
#
# An affine coupling moves the changed coordinate along a straight line: $y_2 = x_2
# e^{s(x_1)} + t(x_1)$. For a fixed $x_1$ that is a *line* in $x_2$, so one layer can shift
# and stretch a slice of the plane but never fold mass into two strokes of a letter.
# Durkan et al. (2019, *Neural Spline Flows*) replace the line by a **monotone
# rational-quadratic spline**: a curve made of $K$ pieces, each a ratio of two quadratics,
# whose shape the coupling network chooses. Monotone means one-to-one, so the layer stays
# invertible; and the inverse, as we will see, is a quadratic equation.
#
# **The pieces.** On an interval $[-B, B]$ put $K+1$ *knots* $(x^{(k)}, y^{(k)})$,
# increasing in both coordinates, from $(-B, -B)$ to $(B, B)$. Bin $k$ has width $w_k =
# x^{(k+1)} - x^{(k)}$, height $h_k = y^{(k+1)} - y^{(k)}$ and slope $s_k = h_k / w_k$, and
# at each knot we choose a derivative $\delta_k > 0$. Inside bin $k$, with $\xi = (x -
# x^{(k)})/w_k \in [0, 1]$,
#
# $$ g(x) = y^{(k)} + \frac{h_k\,[\,s_k \xi^2 + \delta_k\, \xi(1-\xi)\,]}{s_k + (\delta_{k+1} + \delta_k - 2 s_k)\,\xi(1-\xi)} .$$
#
# At $\xi = 0$ this is $y^{(k)}$, at $\xi = 1$ it is $y^{(k+1)}$, and its derivative at the
# two ends is $\delta_k$ and $\delta_{k+1}$, so neighbouring pieces join with the same
# value and the same slope. Its derivative (Durkan et al., eq. 5),
#
# $$ g'(x) = \frac{s_k^2\,[\,\delta_{k+1} \xi^2 + 2 s_k\, \xi(1-\xi) + \delta_k (1-\xi)^2\,]}{[\,s_k + (\delta_{k+1} + \delta_k - 2 s_k)\,\xi(1-\xi)\,]^2} ,$$
#
# is a sum of positive terms over a square: positive everywhere, so $g$ is strictly
# increasing. The layer's log-determinant is $\sum \log g'(x_2)$ over the changed
# coordinates, exactly as $\sum s$ was for the affine coupling.
#
# **The tails.** Outside $[-B, B]$ the map is the identity, and the two outer knots get
# derivative $\delta_0 = \delta_K = 1$, so the curve leaves the box with the slope of the
# identity: no kink, and points far out (the base distribution's tails) pass unchanged
# with log-determinant 0.
#
# Here is the whole thing in NumPy, in float64 so that we can check it to many digits.

# %%
def spline_knots(widths, heights, slopes, bound):
    """Knot positions and derivatives from positive bin widths and heights (each summing
    to 2B) and the K - 1 interior derivatives; the two boundary derivatives are 1."""
    x_knots = -bound + np.concatenate([[0.0], np.cumsum(widths)])
    y_knots = -bound + np.concatenate([[0.0], np.cumsum(heights)])
    derivatives = np.concatenate([[1.0], slopes, [1.0]])
    return x_knots, y_knots, derivatives


def rq_spline_forward(x, x_knots, y_knots, derivatives):
    """g(x) and log g'(x) for every x; the identity (log-det 0) outside [x_knots[0], x_knots[-1]]."""
    x = np.asarray(x, dtype=np.float64)
    inside = (x > x_knots[0]) & (x < x_knots[-1])
    k = np.clip(np.searchsorted(x_knots, x, side="right") - 1, 0, len(x_knots) - 2)  # the bin of x
    w, h = x_knots[k + 1] - x_knots[k], y_knots[k + 1] - y_knots[k]
    s, d0, d1 = h / w, derivatives[k], derivatives[k + 1]
    xi = np.clip((x - x_knots[k]) / w, 0.0, 1.0)
    denominator = s + (d1 + d0 - 2 * s) * xi * (1 - xi)
    y = y_knots[k] + h * (s * xi**2 + d0 * xi * (1 - xi)) / denominator
    slope = s**2 * (d1 * xi**2 + 2 * s * xi * (1 - xi) + d0 * (1 - xi) ** 2) / denominator**2
    return np.where(inside, y, x), np.where(inside, np.log(slope), 0.0)


# A spline with 5 bins on [-3, 3], its shape chosen by hand.
BOUND = 3.0
widths = np.array([0.8, 1.6, 1.0, 1.4, 1.2])
heights = np.array([2.2, 0.4, 0.8, 0.6, 2.0])
slopes = np.array([0.3, 0.6, 2.5, 0.4])
knots = spline_knots(widths * 2 * BOUND / widths.sum(), heights * 2 * BOUND / heights.sum(), slopes, BOUND)

x_grid = np.linspace(-5, 5, 2001)
y_grid, log_slope = rq_spline_forward(x_grid, *knots)

# %% [markdown]
# **Why it inverts in closed form.** Given $y$, first find its bin: the $y^{(k)}$ are
# increasing, so that is a sorted search, as for $x$. Inside the bin, set $\Delta = y -
# y^{(k)}$ and multiply the formula for $g$ out: $\xi$ solves the quadratic $a \xi^2 + b \xi
# + c = 0$ with
#
# $$ a = h_k (s_k - \delta_k) + \Delta\,(\delta_{k+1} + \delta_k - 2 s_k), \quad
#    b = h_k \delta_k - \Delta\,(\delta_{k+1} + \delta_k - 2 s_k), \quad
#    c = -s_k \Delta .$$
#
# Because $g$ is increasing on the bin, exactly one root lies in $[0, 1]$; Durkan et al.
# (their appendix A.3) write it as $\xi = 2c / (-b - \sqrt{b^2 - 4ac})$, a form that does
# not lose precision when $a$ is close to 0. Then $x = x^{(k)} + \xi w_k$, and $\log
# |\det|$ of the inverse is $-\log g'(x)$. You write this inverse in Exercise 1; here we
# check the forward formulas against an implementation written by others, TFP's
# `tfb.RationalQuadraticSpline`, and the log-derivative against a finite difference.

# %%
x_knots, y_knots, derivatives = knots
tfp_spline = tfb.RationalQuadraticSpline(bin_widths=np.diff(x_knots), bin_heights=np.diff(y_knots),
                                         knot_slopes=derivatives[1:-1], range_min=-BOUND)
np.testing.assert_allclose(tfp_spline.forward(x_grid).numpy(), y_grid, atol=1e-9)
np.testing.assert_allclose(tfp_spline.forward_log_det_jacobian(x_grid, event_ndims=0).numpy(),
                           log_slope, atol=1e-9)

eps = 1e-6
finite_difference = (rq_spline_forward(x_grid + eps, *knots)[0]
                     - rq_spline_forward(x_grid - eps, *knots)[0]) / (2 * eps)
np.testing.assert_allclose(np.log(finite_difference), log_slope, atol=1e-4)
print("the NumPy spline equals tfb.RationalQuadraticSpline to 1e-9, and log g' its finite difference")

# %% [markdown]
# The figure shows the spline (its knots as dots), its inverse, which is its mirror image
# in the diagonal, and what it does to a density: a standard normal pushed through $g$
# has density $p(g^{-1}(y)) / g'(g^{-1}(y))$, which is the change of variables of notebook
# 02 with the log-determinant above. Where the spline is steep the mass thins out, where it
# is flat it piles up.

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
ax = axes[0]
ax.plot(x_grid, y_grid, color="C0", lw=2, label="spline $y = g(x)$")
ax.plot(y_grid, x_grid, color="C1", lw=1.5, ls="--", label="inverse $x = g^{-1}(y)$")
ax.plot(x_knots, y_knots, "o", color="C0")
ax.plot([-5, 5], [-5, 5], color="0.7", lw=0.8)
ax.axvspan(-5, -BOUND, color="0.93")
ax.axvspan(BOUND, 5, color="0.93")
ax.text(-4, 3.8, "identity\ntail", ha="center", va="top", fontsize=9)
ax.text(4, -3.2, "identity\ntail", ha="center", fontsize=9)
ax.set(xlim=(-5, 5), ylim=(-5, 5), aspect="equal", title="a monotone spline and its inverse")
ax.legend(loc="upper left", fontsize=8, bbox_to_anchor=(0.0, 0.86))

axes[1].plot(x_grid, np.exp(log_slope), color="C0", lw=2)
axes[1].plot(x_knots, derivatives, "o", color="C0")
axes[1].axhline(1.0, color="0.7", lw=0.8)
axes[1].set(xlim=(-5, 5), title="its derivative $g'(x)$ (1 in the tails)", xlabel="$x$")

rng = np.random.default_rng(0)
pushed, _ = rq_spline_forward(rng.standard_normal(200_000), *knots)
axes[2].hist(pushed, bins=200, range=(-4, 4), density=True, color="0.8", label="samples $g(z)$")
inverse_of_grid = np.interp(x_grid, y_grid, x_grid)  # g is increasing, so interpolation inverts it
_, log_slope_at_inverse = rq_spline_forward(inverse_of_grid, *knots)
density = np.exp(-0.5 * inverse_of_grid**2 - log_slope_at_inverse) / np.sqrt(2 * np.pi)
axes[2].plot(x_grid, density, color="C0", lw=1.5, label="$p_Z(g^{-1}(y)) / g'(g^{-1}(y))$")
axes[2].set(xlim=(-4, 4), title="a normal pushed through the spline", xlabel="$y$")
axes[2].legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# **The coupling layer.** In a spline coupling the network reads the kept coordinates
# $x_1$ and outputs, for every changed coordinate, $K$ numbers for the widths, $K$ for the
# heights and $K - 1$ for the interior derivatives: $3K - 1$ numbers. They are made valid
# by a softmax (widths and heights: positive, summing to $2B$, with a small minimum size)
# and a softplus (derivatives: positive). flowlib's `splines.SplineCoupling` does exactly
# this, with the formulas above written in TensorFlow (`splines.rational_quadratic_spline`,
# which flowlib's tests check against `tfb.RationalQuadraticSpline`; the module's
# docstring says why it does not call TFP's bijector). Its network's last layer starts at zero and
# the offsets are chosen so that zero means equal bins and unit slopes, i.e. the identity,
# as for the affine coupling. We check the layer the way every layer of the series is
# checked: a round trip, also far out in the tails, and its log-determinant against
# `tf.GradientTape.batch_jacobian`, after giving it random (non-zero) weights.

# %%
spline_layer = splines.SplineCoupling(bijectors.half_mask(2), num_bins=8, bound=4.0,
                                      network=bijectors.MLP(1, 3 * 8 - 1, (32, 32), seed=3, zero_last=False))
points = tf.constant(np.random.default_rng(1).uniform(-10, 10, size=(500, 2)), tf.float32)
round_trip = spline_layer.inverse(spline_layer.forward(points))
np.testing.assert_allclose(round_trip.numpy(), points.numpy(), atol=1e-4)

with tf.GradientTape() as tape:
    tape.watch(points)
    moved = spline_layer.forward(points)
jacobian = tape.batch_jacobian(moved, points)
autodiff = tf.math.log(tf.abs(tf.linalg.det(jacobian)))
np.testing.assert_allclose(spline_layer.forward_log_det_jacobian(points, event_ndims=1).numpy(),
                           autodiff.numpy(), atol=1e-4)
in_tails = np.abs(points.numpy()[:, 1]) > 4.0
np.testing.assert_allclose(moved.numpy()[in_tails, 1], points.numpy()[in_tails, 1], atol=1e-6)
print(f"spline coupling: round trip and log-det match on |x| <= 10; "
      f"{in_tails.sum()} points in the tails pass unchanged")

# %% [markdown]
# ## 2. Autoregressive flows: MADE, MAF and IAF
#
# A coupling layer leaves half of the coordinates untouched. An **autoregressive** layer
# changes every coordinate, each one with an affine map whose shift and log-scale depend
# on the coordinates *before* it:
#
# $$ x_i = z_i\, e^{s_i} + t_i, \qquad (t_i, s_i) = f_i(x_1, \dots, x_{i-1}) .$$
#
# The Jacobian $\partial x / \partial z$ is triangular (coordinate $i$ depends on $z_i$ and
# on earlier ones only), so $\log|\det J| = \sum_i s_i$, as cheap as for a coupling.
#
# **MADE: all the $f_i$ in one network.** Germain et al. (2015) take one fully connected
# network and multiply each weight matrix by a fixed 0/1 *mask*. Give input $j$ the degree
# $j$, and every hidden unit a degree $m \in \{1, \dots, D-1\}$. A hidden unit of degree $m$
# may read units of the layer below with degree $\le m$; output $i$ may read hidden units
# of degree $< i$ only (strictly). Then every path from input $j$ to output $i$ climbs
# through degrees $j \le m < i$: output $i$ depends on $x_{<i}$ and never on $x_i$ or later.
# Below are the masks for $D = 4$ inputs and two hidden layers of 8 units, and the proof
# by autodiff: the Jacobian of the masked network's outputs with respect to its inputs is
# strictly lower triangular.

# %%
def masked_network(x, weights, biases, masks):
    """A fully connected network whose weight matrices are multiplied by 0/1 masks."""
    h = x
    for i, (weight, bias, mask) in enumerate(zip(weights, biases, masks)):
        h = h @ (weight * mask) + bias
        if i < len(weights) - 1:
            h = tf.tanh(h)
    return h


def random_weights(masks, seed=0):
    rng = np.random.default_rng(seed)
    weights = [tf.constant(rng.normal(size=m.shape) / np.sqrt(m.shape[0]), tf.float32) for m in masks]
    biases = [tf.constant(rng.normal(size=m.shape[1]), tf.float32) for m in masks]
    return weights, biases


def output_jacobian(masks, seed=0):
    """|d output / d input| of a masked network with random weights, averaged over points: [D_out, D_in]."""
    weights, biases = random_weights(masks, seed)
    x = tf.constant(np.random.default_rng(seed).normal(size=(64, masks[0].shape[0])), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = masked_network(x, weights, biases, masks)
    return np.abs(tape.batch_jacobian(out, x).numpy()).mean(axis=0)


D = 4
made_example = autoregressive.made_masks(D, (8, 8), 1)  # one output per coordinate, to draw
jacobian = output_jacobian(made_example)
assert np.all(np.triu(jacobian) == 0), "output i must not depend on inputs i, i+1, ..."
assert np.all(jacobian[np.tril_indices(D, -1)] > 0), "output i should depend on every input before it"

fig, axes = plt.subplots(1, 4, figsize=(13, 3.2), gridspec_kw=dict(width_ratios=[2, 8, 8, 4]))
titles = ["input → hidden 1", "hidden 1 → hidden 2", "hidden 2 → output", "|∂ output / ∂ input|"]
for ax, matrix, title in zip(axes, [*made_example, jacobian], titles):
    ax.imshow(matrix if matrix is jacobian else matrix.T, cmap="Greys", vmin=0)
    ax.set(title=title, xticks=[], yticks=[])
axes[-1].set(xlabel="input $j$", ylabel="output $i$")
fig.tight_layout()
plt.show()

# %% [markdown]
# (Each mask is drawn with the unit it feeds as the row. In two dimensions MADE is small:
# $(t_1, s_1)$ are plain trainable numbers, since nothing comes before $x_1$, and $(t_2,
# s_2)$ a network of $x_1$.)
#
# **MAF and IAF: the same layer, read in two directions.**
#
# - **MAF** (masked autoregressive flow, Papamakarios et al., 2017) conditions on the
#   *data*: $(t_i, s_i) = f_i(x_{<i})$. To evaluate the density we know all of $x$, so one
#   MADE pass gives every $(t_i, s_i)$ and $z = (x - t) e^{-s}$ at once. To *sample* we
#   know $z$ but not $x$: $x_1$ needs nothing, $x_2$ needs $x_1$, … so $D$ passes, one per
#   coordinate.
# - **IAF** (inverse autoregressive flow, Kingma et al., 2016) conditions on the *latent*
#   side: $(t_i, s_i) = f_i(z_{<i})$. Sampling is one pass; the density needs $D$ passes.
#
# So MAF suits density estimation (training by maximum likelihood evaluates densities),
# IAF suits fast sampling (for example a variational posterior); a coupling layer, an
# autoregressive layer with only two blocks, is one pass both ways.
#
# Let us check it by counting: we wrap each layer's MADE in a counter and count the
# network passes per layer that a density evaluation and a sample make, in 2 and in 16
# dimensions. The density is evaluated two ways: with TFP's own walk, `flow.tfp_log_prob`
# (what `tfd.TransformedDistribution.log_prob` does), and with `flows.one_pass_log_prob(flow)`
# (the same as flowlib's `flow.log_prob`), which undoes the layers from the data side with each
# layer's `inverse_and_log_det`, the way `train.fit` computes the loss.

# %%
class CountingNetwork:
    """Calls `network` and counts the calls (in eager mode one call is one network pass)."""

    def __init__(self, network):
        self.network, self.calls = network, 0

    def __call__(self, h):
        self.calls += 1
        return self.network(h)


def passes_per_layer(flow, action):
    """Network passes per autoregressive layer that `action()` makes."""
    layers = [layer for layer in flows.layers(flow) if isinstance(layer, autoregressive.MAF)]  # IAF is a MAF
    for layer in layers:
        layer.network = CountingNetwork(layer.network)
    try:
        action()
        return sum(layer.network.calls for layer in layers) / len(layers)
    finally:
        for layer in layers:
            layer.network = layer.network.network


def count_passes(flow, x):
    """Passes per layer of TFP's log_prob, of the one-pass density and of sampling as many points."""
    one_pass = flows.one_pass_log_prob(flow)
    return (passes_per_layer(flow, lambda: flow.tfp_log_prob(x)),
            passes_per_layer(flow, lambda: one_pass(x)),
            passes_per_layer(flow, lambda: flow.sample(len(x), seed=1)))


COUNT_DIMS = (2, 16)
pass_counts = {}
print(f"{'dim':>4} {'flow':<5} {'log_prob (TFP)':>15} {'one-pass density':>17} {'sample':>7}   (passes per layer)")
for dim in COUNT_DIMS:
    x = tf.constant(np.random.default_rng(0).normal(size=(200, dim)), tf.float32)
    for name, build in (("MAF", flows.maf), ("IAF", flows.iaf)):
        counts = pass_counts[dim, name] = count_passes(build(dim, num_layers=2, seed=0), x)
        print(f"{dim:>4} {name:<5} {counts[0]:15.0f} {counts[1]:17.0f} {counts[2]:7.0f}")
high = COUNT_DIMS[-1]
assert pass_counts[high, "MAF"][1:] == (1, high) and pass_counts[high, "IAF"][1:] == (high, 1)

# %% [markdown]
# The one-pass density and the sample show the textbook picture exactly. TFP's `log_prob`
# does not: it costs $D + 1$ passes per layer for *both* flows. The reason is in how the
# two libraries meet. TFP's `TransformedDistribution.log_prob` maps the data point to the
# latent point with the bijector's `inverse`, and then asks for the log-determinant of
# `forward` *at that latent point* (`forward_log_det_jacobian`; TFP 0.25,
# `transformed_distribution.py`, `experimental_local_measure`). flowlib's layers answer that
# question in `FlowBijector._forward_log_det_jacobian` (`flowlib/bijectors.py`) by running
# `forward_and_log_det` in full, and for a MAF layer the forward direction is the $D$-pass
# one: one pass for `inverse` plus $D$ for the log-determinant. For an IAF it is $D$
# passes for `inverse` plus one. The cost comes from flowlib's derivation, not from the
# autoregressive layer itself, and `flows.one_pass_log_prob` avoids it; that is the
# density path training and the comparison below use.
#
# What do the passes cost in time? The same flows (two layers each, and a 2-layer
# coupling flow for reference), each call compiled with `tf.function`, on a batch of 2,000
# points:

# %%
def timed(function, repeats=3):
    """Wall-clock time of a call in milliseconds, after a first call that compiles it: the
    fastest of `repeats` calls, the one least disturbed by whatever else the computer does."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.min(times))


def compiled_speeds(flow, x, num_samples, log_prob=None):
    """Milliseconds for log_prob(x) (default: TFP's walk, flow.tfp_log_prob) and for
    sample(num_samples) (NaN for no samples), each compiled with tf.function."""
    log_prob = tf.function(log_prob or flow.tfp_log_prob)
    sample = tf.function(lambda: flow.sample(num_samples, seed=1))
    return timed(lambda: log_prob(x)), timed(sample) if num_samples else float("nan")


def three_kinds(dim):
    return {"coupling": flows.realnvp(dim, num_layers=2, normalization="none", seed=0),
            "MAF": flows.maf(dim, num_layers=2, seed=0),
            "IAF": flows.iaf(dim, num_layers=2, seed=0)}


speed = {}
for dim in COUNT_DIMS:
    x = tf.constant(np.random.default_rng(0).normal(size=(2000, dim)), tf.float32)
    for name, flow in three_kinds(dim).items():
        tfp_ms, sample_ms = compiled_speeds(flow, x, len(x))
        one_pass_ms, _ = compiled_speeds(flow, x, 0, log_prob=flows.one_pass_log_prob(flow))
        speed[dim, name] = dict(tfp=tfp_ms, one_pass=one_pass_ms, sample=sample_ms)
print(f"{'dim':>4} {'flow':<9} {'log_prob TFP (ms)':>18} {'one-pass density (ms)':>22} {'sample (ms)':>12}")
for (dim, name), row in speed.items():
    print(f"{dim:>4} {name:<9} {row['tfp']:18.1f} {row['one_pass']:22.1f} {row['sample']:12.1f}")

# %%
maf, iaf = speed[high, "MAF"], speed[high, "IAF"]
sample_ratio, density_ratio = maf["sample"] / iaf["sample"], iaf["one_pass"] / maf["one_pass"]
low = [speed[COUNT_DIMS[0], name] for name in ("MAF", "IAF")]
low_ratio = max(max(a[k], b[k]) / min(a[k], b[k]) for a, b in [low] for k in ("one_pass", "sample"))
display(Markdown(
    f"In {high} dimensions MAF took {maf['sample']:.1f} ms to sample and IAF {iaf['sample']:.1f} ms; for the "
    f"one-pass density MAF took {maf['one_pass']:.1f} ms and IAF {iaf['one_pass']:.1f} ms. The direction "
    f"with {high} passes per layer took {sample_ratio:.1f} times as long as the one-pass direction for "
    f"sampling and {density_ratio:.1f} times for the density. TFP's `log_prob` took MAF {maf['tfp']:.1f} ms, "
    f"{maf['tfp'] / maf['one_pass']:.1f} times its one-pass density, and IAF {iaf['tfp']:.1f} ms. "
    f"In {COUNT_DIMS[0]} dimensions, where $D$ passes are only two, MAF and IAF were at most "
    f"{low_ratio:.1f} times apart in either of the two columns."
    + (f" The ratios stay below the {high} of the pass counts: each call also pays for work that does "
       "not grow with the number of passes (the base distribution, the permutations, the call itself)."
       if max(sample_ratio, density_ratio) < high else "")))


# %% [markdown]
# ## 3. Glow's ideas in two dimensions: ActNorm and a learned mixing
#
# Glow (Kingma and Dhariwal, 2018) added two layers to RealNVP's couplings. Both are
# easiest to understand in 2-D.
#
# **ActNorm** is a per-coordinate affine map, $y = x\, e^{\text{log\_scale}} +
# \text{shift}$, like batch normalisation without batch statistics. Its parameters are
# *initialised from data*: run the first batch backwards to the layer and set shift and
# log-scale to that batch's mean and log standard deviation, so the layer starts by
# standardising its input. After that they are ordinary trainable weights, and the layer
# is the same function in training and in evaluation (no train/eval switch, the trouble
# notebook 07 measured for batch norm). flowlib's `bijectors.ActNorm` does this, and
# `train.fit` initialises it on the first batch.

# %%
actnorm = bijectors.ActNorm(2)
actnorm.initialize(x_train[:1024])
standardised = actnorm.inverse(x_train[1024:5000]).numpy()
print("after the data-dependent initialisation: mean", np.round(standardised.mean(axis=0), 3),
      "std", np.round(standardised.std(axis=0), 3))
np.testing.assert_allclose(standardised.mean(axis=0), 0.0, atol=0.1)
np.testing.assert_allclose(standardised.std(axis=0), 1.0, atol=0.1)
np.testing.assert_allclose(actnorm.inverse_log_det_jacobian(x_train[:3], event_ndims=1).numpy(),
                           -np.log(x_train[:1024].std(axis=0)).sum(), rtol=1e-3)

# %% [markdown]
# **A learned permutation.** Between couplings, our flows so far swap the two coordinates,
# a fixed permutation. Glow replaces it by an invertible linear map $W$ (a "1x1
# convolution" for images; in 2-D just a $2 \times 2$ matrix) that is *learned*. To keep its
# inverse and determinant cheap, $W$ is stored as an LU decomposition, $W = P L U$, with $P$
# a fixed permutation, $L$ lower triangular with ones on its diagonal and $U$ upper
# triangular. Then
#
# $$ \log|\det W| = \sum_i \log |U_{ii}| ,$$
#
# because $\det P = \pm 1$, $\det L = 1$ and the determinant of a triangular matrix is the
# product of its diagonal (Exercise 3). TFP has this as `tfb.ScaleMatvecLU`; the swap is
# the special case $P$ = swap, $L = U = I$, one point in a space of mixings (rotations,
# shears, scalings) that training can move through. flowlib's `flows.lu_linear` starts
# $W$ at a random rotation, as Glow does: a rotation maps the standard normal base onto
# itself, so a fresh flow is still the base distribution. Below, a few matrices $W = PLU$
# and what they do to the word, next to the swap.

# %%
def lu_matrix(lower_upper, permutation):
    """W = P L U from TFP's packed LU (L below the diagonal with unit diagonal, U on and above it)."""
    lower = np.tril(lower_upper, -1) + np.eye(len(lower_upper))
    upper = np.triu(lower_upper)
    return np.eye(len(lower_upper))[permutation] @ lower @ upper


examples = {"fixed swap": np.array([[1.0, 0.0], [0.0, 1.0]]),
            "swap + shear": np.array([[1.0, 0.6], [0.0, 1.0]]),
            "a rotation-like mix": np.array([[0.8, -0.6], [0.75, 1.0]])}
fig, axes = plt.subplots(1, 3, figsize=(12, 4))
for ax, (name, lower_upper) in zip(axes, examples.items()):
    mixing = tfb.ScaleMatvecLU(lower_upper=tf.constant(lower_upper, tf.float32),
                               permutation=tf.constant([1, 0]))
    mixed = mixing.forward(x_train[:4000]).numpy()
    W = lu_matrix(lower_upper, [1, 0])
    np.testing.assert_allclose(mixed, x_train[:4000] @ W.T, atol=1e-5)
    np.testing.assert_allclose(mixing.forward_log_det_jacobian(x_train[:1], event_ndims=1).numpy(),
                               np.linalg.slogdet(W)[1], atol=1e-6)
    ax.scatter(*mixed.T, s=1, color=plotting.TARGET_COLOR, alpha=0.4)
    ax.set(title=f"{name}\nW = {np.round(W, 2).tolist()}", aspect="equal", xlim=(-5, 5), ylim=(-5, 5))
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 4. Five flows on one target
#
# Now all of it on the word, at the same training budget: NICE (additive couplings),
# RealNVP (affine couplings and swaps, as in notebooks 05 and 06), RealNVP with learned
# LU mixings instead of the swaps, MAF, and a spline coupling flow. Each trains for the
# same number of steps with the same recipe (Adam, cosine decay, batches of 256). For each
# we measure the held-out gap above the entropy bound (an estimate of
# $\mathrm{KL}(p\,\|\,q)$, notebook 03), the training steps per second, the number of
# parameters, and the time to sample and to evaluate the density of 10,000 points (the
# density with `flows.one_pass_log_prob`, the one pass per layer that training uses).

# %%
STEPS = 800
candidates = {  # eight layers each, networks of two hidden layers of 64 units
    "NICE": lambda: flows.nice(num_layers=8, seed=0),
    "RealNVP": lambda: flows.realnvp(num_layers=8, normalization="none", seed=0),
    "RealNVP + LU mixing": lambda: flows.realnvp(num_layers=8, normalization="none", permutation="lu", seed=0),
    "MAF": lambda: flows.maf(num_layers=8, seed=0),
    "spline coupling": lambda: flows.spline_flow(num_layers=8, seed=0),
}

results, trained = {}, {}
for name, build in candidates.items():
    flow = build()
    untrained_gap = metrics.evaluate(flow, target, x_test[:2000]).gap
    history = train.fit(flow, x_train, steps=STEPS, seed=0, progress=False)
    evaluation = metrics.evaluate(flow, target, x_test)
    calls = len(history.times)  # the first call includes compiling the training step
    rate = 100 * (calls - 1) / (history.times[-1] - history.times[0]) if calls > 1 else np.nan
    log_prob_ms, sample_ms = compiled_speeds(flow, tf.constant(x_test[:10_000]), 10_000,
                                             log_prob=flows.one_pass_log_prob(flow))
    results[name] = dict(gap=evaluation.gap, se=evaluation.standard_error, untrained=untrained_gap,
                         rate=rate, params=flows.num_parameters(flow), seconds=history.seconds,
                         log_prob_ms=log_prob_ms, sample_ms=sample_ms)
    trained[name] = flow
    print(f"{name:<20} gap {evaluation.gap:.3f} nats after {history.steps} steps in {history.seconds:.0f} s")

# %%
print(f"{'flow':<20} {'gap (nats)':>12} {'steps/s':>8} {'parameters':>11} {'sample (ms)':>12} "
      f"{'density (ms)':>13}")
for name, r in results.items():
    print(f"{name:<20} {r['gap']:7.3f} ±{r['se']:.3f} {r['rate']:8.0f} {r['params']:>11,d} "
          f"{r['sample_ms']:12.1f} {r['log_prob_ms']:13.1f}")
for name, r in results.items():
    assert np.isfinite(r["gap"]) and r["gap"] < r["untrained"], f"{name} did not learn"

# %%
left, right, bottom, top = target.extent
frame = (left - 0.5, right + 0.5, bottom - 0.5, top + 0.5)
fig, axes = plt.subplots(3, 2, figsize=(12, 7.5))
axes[0, 0].imshow(target.ink, extent=target.extent, cmap="Greys", interpolation="nearest")
axes[0, 0].set_title(f"target: uniform on the ink of “{target.name}”", fontsize=10)
for ax, (name, flow) in zip(axes.flat[1:], trained.items()):
    _, _, density = plotting.density_grid(flow, frame, resolution=120)
    ax.imshow(density, extent=frame, origin="lower", cmap="magma", interpolation="bilinear")
    ax.set_title(f"{name}: gap {results[name]['gap']:.2f} nats", fontsize=10)
for ax in axes.flat:
    plotting.frame_axes(ax, frame)
fig.tight_layout()
plt.show()

# %% [markdown]
# What the table says, read row by row (the sentences below are written from this run's
# measurements):

# %%
by_gap = sorted(results, key=lambda name: results[name]["gap"])
best, rest = by_gap[0], by_gap[1:]
display(Markdown("\n".join([
    f"- **Quality.** At the same number of steps the {best} flow has the smallest gap, "
    f"{results[best]['gap']:.2f} nats, followed by "
    + ", ".join(f"{name} ({results[name]['gap']:.2f})" for name in rest) + ". "
    f"NICE's volume-preserving couplings cannot concentrate mass on thin strokes; the learned "
    f"mixing and the autoregressive layer change RealNVP's gap by "
    f"{results['RealNVP + LU mixing']['gap'] - results['RealNVP']['gap']:+.3f} and "
    f"{results['MAF']['gap'] - results['RealNVP']['gap']:+.3f} nats. In two dimensions that is "
    "expected to be small: a swap already exchanges the only two coordinates, and a MAF layer "
    "conditions one coordinate on the other as a coupling does (plus a learned affine map of the "
    "first coordinate).",
    f"- **Speed.** The spline coupling flow trains at {results['spline coupling']['rate']:.0f} steps "
    f"per second, {100 * results['spline coupling']['rate'] / results['MAF']['rate']:.0f}% of MAF's rate "
    f"and {100 * results['spline coupling']['rate'] / results['RealNVP']['rate']:.0f}% of RealNVP's: "
    "it finds a bin and evaluates a rational function where an affine coupling does one multiply-add.",
    f"- **Size.** The networks are the same, except that the spline network outputs $3K - 1$ numbers "
    f"per changed coordinate instead of 2 (shift and log-scale); the spline flow has "
    f"{results['spline coupling']['params'] - results['RealNVP']['params']:,d} more parameters than RealNVP.",
])))

# %% [markdown]
# The same number of steps is not the same cost: a slower step has to buy more per step.
# The series' headline flow, `flowlib.recipe.HEADLINE` (the one `python -m flowlib demo`
# trains), is a spline flow set up for training time rather than steps: fewer couplings
# with more bins each, a higher learning rate, and the training step compiled by XLA
# (`train.fit(..., jit_compile=True)`).

# %% [markdown]
# ## 5. Sampling temperature
#
# A flow samples by pushing base points $z \sim \mathcal{N}(0, I)$ through its layers.
# Drawing them from $\mathcal{N}(0, T^2 I)$ with a *temperature* $T < 1$ instead keeps them
# nearer the centre of the base, where the model is most confident (Glow's samples are
# drawn at $T = 0.7$). The samples look cleaner, at a price: they are no longer samples of
# the model's density, and the parts of the target the model reaches only from the base's
# outskirts are drawn less often, or not at all.

# %%
best_name = min(results, key=lambda name: results[name]["gap"])
best_flow = trained[best_name]
z = np.random.default_rng(3).standard_normal((10_000, 2)).astype(np.float32)
fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
on_ink, model_log_density = {}, {}
for ax, temperature in zip(axes, (0.5, 0.8, 1.0)):
    samples = best_flow.bijector.forward(temperature * z).numpy()
    np.testing.assert_allclose(best_flow.bijector.inverse(samples).numpy(), temperature * z, atol=2e-3)
    on_ink[temperature] = np.isfinite(target.log_prob(samples)).mean()
    model_log_density[temperature] = float(np.mean(best_flow.log_prob(samples)))
    ax.scatter(*samples.T, s=0.5, color=plotting.TARGET_COLOR, alpha=0.5)
    ax.set_title(f"T = {temperature}: {100 * on_ink[temperature]:.0f}% on the ink, "
                 f"mean log q = {model_log_density[temperature]:.2f}", fontsize=10)
    plotting.frame_axes(ax, target.extent)
fig.suptitle(f"samples of the {best_name} flow at three temperatures")
fig.tight_layout()
plt.show()
print({t: f"{100 * on_ink[t]:.1f}% on the ink, mean log q {model_log_density[t]:.2f}" for t in on_ink})

# %%
display(Markdown(
    f"The share of samples on the ink is {100 * on_ink[1.0]:.0f}% at $T = 1$, {100 * on_ink[0.8]:.0f}% at "
    f"$T = 0.8$ and {100 * on_ink[0.5]:.0f}% at $T = 0.5$; the model's own mean log-density of its samples "
    f"goes from {model_log_density[1.0]:.2f} to {model_log_density[0.5]:.2f}."
    + (" On this target a lower temperature does not clean the word up." if on_ink[0.5] <= on_ink[1.0] + 0.02
       else " A lower temperature puts more samples on the ink here, but the word loses its outer parts.")))

# %% [markdown]
# The target is *uniform* on the ink, so the model has no confident core to retreat to;
# the centre of the base maps to the middle of the word, gaps between letters included.
# Temperature pays off on targets with a peaked density (Glow's faces), not on flat ones.
#
# ## Summary
#
# - A **rational-quadratic spline** is monotone by construction, so it is invertible; its
#   inverse is the root of a quadratic, and its log-determinant is $\sum \log g'$. Identity
#   tails with slope 1 at the boundary keep it defined on the whole line.
# - **MADE** masks make one network autoregressive. **MAF** evaluates densities in one pass
#   and samples in $D$; **IAF** is the reverse; a coupling is one pass both ways. Whether a
#   density costs one pass also depends on the code path: counted, TFP's `log_prob` on
#   flowlib's layers costs $D + 1$, `flows.one_pass_log_prob` one.
# - **ActNorm** starts as a standardisation of the data and has no train/eval switch;
#   an **LU-parametrised linear map** is a learned, cheaply invertible mixing, of which the
#   fixed swap is one instance.
# - On the word, at equal steps, the table of section 4 ranks the five flows by gap, speed
#   and size.
# - A **temperature** below 1 concentrates samples where the base is dense; on a uniform
#   target that does not help.
#
# ## Exercises
#
# Each exercise asks for a function and checks it, right after it, on several random
# cases against an independent computation.

# %% [markdown]
# ### Exercise 1: invert the spline in closed form
#
# Write `rq_spline_inverse(y, x_knots, y_knots, derivatives)` for the spline of section 1
# with any knots: `x_knots` and `y_knots` are increasing arrays of $K + 1$ numbers (the two
# boxes need not be the same, nor symmetric about 0) and `derivatives` holds all $K + 1$
# knot derivatives $\delta_0, \dots, \delta_K > 0$, the two outer ones included. Outside
# the box the curve goes on as a straight line with the slope of its end:
# $g(x) = y^{(0)} + \delta_0 (x - x^{(0)})$ to the left, $g(x) = y^{(K)} + \delta_K (x -
# x^{(K)})$ to the right (with $\delta_0 = \delta_K = 1$ and the same box on both axes,
# as in section 1, the tails are the identity). `y` is an array of any shape; return $x =
# g^{-1}(y)$, of the same shape, in float64. Inside the box find the bin of each $y$ and
# solve the quadratic of section 1 for $\xi$. The check draws splines with several numbers
# of bins and demands $g(x) = y$ to about $10^{-10}$.

# %%
def rq_spline_inverse(y, x_knots, y_knots, derivatives):
    y = np.asarray(y, dtype=np.float64)
    ### BEGIN SOLUTION hint: tails first (straight lines); inside, the bin among y_knots, then a, b, c and xi = 2c/(-b - sqrt(b^2-4ac))
    k = np.clip(np.searchsorted(y_knots, y, side="right") - 1, 0, len(y_knots) - 2)
    w, h = x_knots[k + 1] - x_knots[k], y_knots[k + 1] - y_knots[k]
    s, d0, d1 = h / w, derivatives[k], derivatives[k + 1]
    delta = y - y_knots[k]
    a = h * (s - d0) + delta * (d1 + d0 - 2 * s)
    b = h * d0 - delta * (d1 + d0 - 2 * s)
    c = -s * delta
    xi = 2 * c / (-b - np.sqrt(np.maximum(b**2 - 4 * a * c, 0.0)))
    x = x_knots[k] + xi * w
    x = np.where(y < y_knots[0], x_knots[0] + (y - y_knots[0]) / derivatives[0], x)
    return np.where(y > y_knots[-1], x_knots[-1] + (y - y_knots[-1]) / derivatives[-1], x)
    ### END SOLUTION


def check_exercise_1(rq_spline_inverse, forward=rq_spline_forward):
    """Random splines (3, 7 and 12 bins, boxes off centre, outer slopes not 1) and section 1's."""

    def spline(x, x_knots, y_knots, derivatives):  # g on the whole line, straight tails
        y, _ = forward(x, x_knots, y_knots, derivatives)
        y = np.where(x <= x_knots[0], y_knots[0] + derivatives[0] * (x - x_knots[0]), y)
        return np.where(x >= x_knots[-1], y_knots[-1] + derivatives[-1] * (x - x_knots[-1]), y)

    rng = np.random.default_rng(2018)
    cases = [knots]
    for num_bins, x_left, y_left in [(3, -2.5, 1.0), (7, 0.5, -6.0), (12, -9.0, 3.5)]:
        x_knots = x_left + np.concatenate([[0.0], np.cumsum(rng.uniform(0.1, 2.0, num_bins))])
        y_knots = y_left + np.concatenate([[0.0], np.cumsum(rng.uniform(0.1, 2.0, num_bins))])
        cases.append((x_knots, y_knots, rng.uniform(0.1, 5.0, num_bins + 1)))
    for number, (x_knots, y_knots, derivatives) in enumerate(cases, start=1):
        y = np.concatenate([rng.uniform(y_knots[0] - 4, y_knots[-1] + 4, 600 - len(y_knots)), y_knots])
        y = rng.permutation(y).reshape(15, 40)  # knots and both tails included, in a 2-D array
        x = np.asarray(rq_spline_inverse(y.copy(), x_knots.copy(), y_knots.copy(), derivatives.copy()))
        assert x.shape == y.shape, f"spline {number}: got shape {x.shape} for y of shape {y.shape}"
        back = spline(x.astype(np.float64), x_knots, y_knots, derivatives)
        inside = (y >= y_knots[0]) & (y <= y_knots[-1])
        assert np.allclose(back[inside], y[inside], rtol=0, atol=1e-10), (
            f"spline {number} ({len(x_knots) - 1} bins): g(your x) != y inside the box")
        assert np.allclose(back[~inside], y[~inside], rtol=0, atol=1e-10), (
            f"spline {number}: g(your x) != y in the tails (outside the box)")
    print("Exercise 1: correct")


check_exercise_1(rq_spline_inverse)

# %% [markdown]
# ### Exercise 2: MADE's masks, in any order
#
# Section 2 gave the inputs the degrees $1, \dots, D$ in their natural order. MADE allows
# any order: give input $j$ the degree `input_degrees[j]`, a permutation of $1, \dots, D$
# (the coordinate with degree 1 comes first, and so on), and give output $j$ the same
# degree as input $j$. Write `made_masks_by_hand(input_degrees, hidden_degrees)`, where
# `hidden_degrees` is a list with one integer array per hidden layer (the degree of each
# of its units, each in $1, \dots, D - 1$). Return the list of 0/1 masks, one per weight
# matrix, of shape `[units in, units out]`, by the rules of section 2: a hidden unit reads
# a unit of the layer below whose degree is at most its own; an output reads the hidden
# units of the last layer whose degree is strictly below its own. The check compares your
# masks with the rules on random orders and degrees, and proves the network with your
# masks autoregressive in that order.

# %%
def made_masks_by_hand(input_degrees, hidden_degrees):
    ### BEGIN SOLUTION hint: pair each layer's degrees with the next one's; >= between hidden layers, strictly > into the outputs
    degrees = [np.asarray(input_degrees)] + [np.asarray(d) for d in hidden_degrees]
    masks = [(d_out[None, :] >= d_in[:, None]).astype(np.float32)
             for d_in, d_out in zip(degrees[:-1], degrees[1:])]
    masks.append((degrees[0][None, :] > degrees[-1][:, None]).astype(np.float32))
    return masks
    ### END SOLUTION


def check_exercise_2(made_masks_by_hand):
    """Random input orders and hidden degrees, layers of unequal widths."""
    rng = np.random.default_rng(2015)
    for dim, widths in [(4, (9, 7)), (5, (11,)), (3, (5, 6, 4))]:
        order = rng.permutation(dim) + 1
        hidden = [rng.integers(1, dim, size=units) for units in widths]
        masks = [np.asarray(m, dtype=np.float64) for m in made_masks_by_hand(order.copy(), [h.copy() for h in hidden])]
        sizes = (dim, *widths, dim)
        assert [m.shape for m in masks] == list(zip(sizes[:-1], sizes[1:])), (
            f"D = {dim}, hidden {widths}: expected masks of shapes [units in, units out], got {[m.shape for m in masks]}")
        degrees = [order, *hidden]
        for layer, (mask, d_in, d_out) in enumerate(zip(masks, degrees, [*hidden, order]), start=1):
            last = layer == len(masks)
            allowed = (d_out[None, :] > d_in[:, None]) if last else (d_out[None, :] >= d_in[:, None])
            assert np.array_equal(mask != 0, allowed), (
                f"D = {dim}, weight matrix {layer} of {len(masks)}: a unit reads a unit it must not, "
                "or misses one it may read")
        dependence = output_jacobian([m.astype(np.float32) for m in masks], seed=dim) > 0
        assert not np.any(dependence & (order[None, :] >= order[:, None])), (
            f"D = {dim}: an output depends on an input of the same or a higher degree")
    print("Exercise 2: correct")


check_exercise_2(made_masks_by_hand)

# %% [markdown]
# ### Exercise 3: the determinant of an LU-parametrised map
#
# Write `lu_log_abs_det_and_sign(lower_upper, permutation)`: for $W = P L U$ given as in
# `lu_matrix` above (TFP's packed `lower_upper`: the strictly lower part is $L$'s, with
# ones on $L$'s diagonal, the diagonal and above are $U$'s; $P$ is the identity with its
# rows taken in the order `permutation`), return the pair $(\log|\det W|, \operatorname{sign}
# \det W)$, the sign as $+1$ or $-1$. Use the structure: $\det P = \pm 1$ (which one?),
# $\det L = 1$, and a triangular determinant is the product of its diagonal. The diagonal
# of $U$ may be negative, and the entries of $L$ may be large: building $W$ and asking a
# determinant routine for it then loses the answer to rounding, the structure does not.

# %%
def lu_log_abs_det_and_sign(lower_upper, permutation):
    lower_upper = np.asarray(lower_upper, dtype=np.float64)
    ### BEGIN SOLUTION hint: log|det W| from U's diagonal alone; the sign from U's diagonal and from the parity of the permutation
    diagonal = np.diag(lower_upper)
    permutation = np.asarray(permutation)
    inversions = sum(int(np.sum(permutation[i + 1:] < permutation[i])) for i in range(len(permutation)))
    sign = (-1) ** inversions * np.prod(np.sign(diagonal))
    return float(np.sum(np.log(np.abs(diagonal)))), int(sign)
    ### END SOLUTION


def check_exercise_3(lu_log_abs_det_and_sign):
    """Random packed LU matrices with negative pivots, even and odd permutations, a large L."""
    rng = np.random.default_rng(2018)
    for dim, lower_scale in [(2, 1.0), (3, 1.0), (5, 1.0), (7, 1e4)]:
        lower_upper = rng.normal(size=(dim, dim))
        lower_upper[np.tril_indices(dim, -1)] *= lower_scale
        lower_upper[np.diag_indices(dim)] = rng.choice([-1, 1], dim) * rng.uniform(0.2, 3.0, dim)
        for permutation in (rng.permutation(dim), np.arange(dim)[::-1], np.roll(np.arange(dim), 1)):
            log_abs, sign = lu_log_abs_det_and_sign(lower_upper.copy(), permutation.copy())
            expected_sign, expected_log = np.linalg.slogdet(np.triu(lower_upper))  # U alone: exact
            expected_sign *= np.linalg.det(np.eye(dim)[permutation])  # det P, exactly +1 or -1
            assert np.isclose(float(log_abs), expected_log, rtol=1e-9, atol=1e-9), (
                f"{dim}x{dim}, largest entry of L {np.abs(np.tril(lower_upper, -1)).max():.3g}: wrong log|det W|")
            assert np.isclose(float(sign), expected_sign), (
                f"{dim}x{dim}, permutation {permutation.tolist()}: wrong sign of det W")
            if lower_scale == 1.0:  # small L: the determinant of W itself is accurate and must agree
                assert np.isclose(np.linalg.slogdet(lu_matrix(lower_upper, permutation))[0], expected_sign)
    print("Exercise 3: correct")


check_exercise_3(lu_log_abs_det_and_sign)
