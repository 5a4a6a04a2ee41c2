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
# # 02 · Change of variables
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/normalizing-flows-tf2/flowlib/blob/main/notebooks/02_change_of_variables.ipynb)
#
# **After this notebook you can** compute the density of samples pushed through a
# bijection (in 1-D and in 2-D), explain the Jacobian determinant as the local change of
# area, write an affine coupling layer and its log-determinant by hand and check it with
# autodiff, check that a TensorFlow Probability `TransformedDistribution` built from
# flowlib's `AffineCoupling` layers is a proper density (it integrates to 1), and write a
# bijector of your own as a `tfb.Bijector` subclass (exercise 4).
#
# **Prerequisites:** notebook 01, *Additive coupling*.

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
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from matplotlib.colors import LogNorm
from matplotlib.patches import Polygon

from flowlib.bijectors import MLP, AffineCoupling, half_mask
from flowlib.plotting import quadrant_colors

tfb = tfp.bijectors
tfd = tfp.distributions

NUM_SAMPLES = 200_000  # samples for histograms and frequency checks
GRID = 400  # points per side of the 2-D integration grids

# %% [markdown]
# ## Goal
#
# Notebook 01 built layers that are bijections. A flow draws $z$ from a simple base
# distribution and returns $x = f(z)$. To *train* it by maximum likelihood we need the
# density of $x$, $p_X(x)$, for any given data point. Since $f$ is invertible we know
# which $z$ produced $x$, namely $z = f^{-1}(x)$, but the density is not simply
# $p_Z(f^{-1}(x))$: where $f$ stretches space, the same probability is spread over more
# room and the density drops; where it compresses, the density rises. The *change of
# variables* formula accounts for that. We derive it in 1-D, then see what replaces the
# derivative in 2-D (the Jacobian determinant), and why coupling layers make it cheap.
#
# ## 1-D: push a normal through a monotone map
#
# Take $X \sim \mathcal{N}(0, 1)$ and $Y = f(X)$ with $f$ increasing and smooth. The event
# $Y \le y$ is the same event as $X \le f^{-1}(y)$, so the cumulative distribution
# functions agree, $F_Y(y) = F_X(f^{-1}(y))$. Differentiating with respect to $y$:
#
# $$p_Y(y) = p_X\big(f^{-1}(y)\big)\,\frac{d f^{-1}}{dy}(y).$$
#
# For a decreasing $f$ the inequality flips and the derivative is negative, so in general
#
# $$p_Y(y) = p_X\big(f^{-1}(y)\big)\,\left|\frac{d f^{-1}}{dy}(y)\right|
#   = \frac{p_X(x)}{|f'(x)|}\Big|_{x = f^{-1}(y)}, \qquad
# \log p_Y(y) = \log p_X(x) - \log|f'(x)|.$$
#
# The second form reads: a small interval of width $dx$ around $x$ becomes an interval of
# width $|f'(x)|\,dx$ around $y$ and carries the same probability, so the density is
# divided by the stretch factor. Our example is $f(x) = e^x$, with $f^{-1}(y) = \log y$
# and $|d f^{-1}/dy| = 1/y$. Below, the formula is written once for any elementwise
# inverse, with the derivative from autodiff.

# %%
def pushforward_density(y, inverse, base_density):
    """p_Y(y) = p_X(inverse(y)) * |d inverse / dy| for an elementwise 1-D bijection."""
    y = tf.constant(y, tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(y)
        x = inverse(y)
    return (base_density(x) * tf.abs(tape.gradient(x, y))).numpy()


standard_normal = tfd.Normal(tf.constant(0.0, tf.float64), 1.0)
x_samples = np.random.default_rng(0).standard_normal(NUM_SAMPLES)
y_samples = np.exp(x_samples)  # Y = f(X) = exp(X)



def density_y(y):
    """The density of Y = exp(X): the inverse is log."""
    return pushforward_density(y, tf.math.log, standard_normal.prob)


ys = np.linspace(1e-4, 150.0, 300_001)  # the density is negligible beyond e^5 ≈ 148
p_y = density_y(ys)

# The closed form: p_X(log y) / y.
np.testing.assert_allclose(p_y, standard_normal.prob(np.log(ys)).numpy() / ys, rtol=1e-10)
# A density must integrate to 1.
total = np.trapezoid(p_y, ys)
print(f"integral of p_Y over (0, 150]: {total:.6f}")
assert abs(total - 1.0) < 1e-3

# %% [markdown]
# A second check compares the formula with the samples: the probability the formula gives
# to an interval must match the fraction of pushed samples that land in it, up to sampling
# noise (we allow five standard errors). And the shaded strips in the figure carry the same
# probability before and after the map.

# %%
def interval_probability(density, lo, hi):
    """The integral of a 1-D density over [lo, hi] (trapezoid rule on 2001 points)."""
    grid = np.linspace(lo, hi, 2001)
    return np.trapezoid(density(grid), grid)


for lo, hi in [(0.2, 0.5), (1.0, 2.0), (3.0, 8.0)]:
    predicted = interval_probability(density_y, lo, hi)
    observed = np.mean((y_samples >= lo) & (y_samples <= hi))
    standard_error = np.sqrt(predicted * (1 - predicted) / NUM_SAMPLES)
    print(f"P({lo} <= Y <= {hi}): formula {predicted:.4f}, samples {observed:.4f}")
    assert abs(observed - predicted) < 5 * standard_error

x0, x1 = 0.6, 0.9  # a strip of x values and its image [e^0.6, e^0.9]
mass_before = interval_probability(lambda x: standard_normal.prob(x).numpy(), x0, x1)
mass_after = interval_probability(density_y, np.exp(x0), np.exp(x1))
np.testing.assert_allclose(mass_after, mass_before, rtol=1e-6)

# %%
strip = "#E69F00"
xs = np.linspace(-4, 4, 2001)
p_x = standard_normal.prob(xs).numpy()
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
axes[0].plot(xs, p_x, color="k", lw=1.5)
band = (xs >= x0) & (xs <= x1)
axes[0].fill_between(xs[band], p_x[band], color=strip, alpha=0.8)
axes[0].set_title("base density $p_X(x)$, $X \\sim \\mathcal{N}(0, 1)$", fontsize=10)
axes[0].set_xlabel("$x$")

axes[1].plot(xs, np.exp(xs), color="k", lw=1.5)
axes[1].axvspan(x0, x1, color=strip, alpha=0.35)
axes[1].axhspan(np.exp(x0), np.exp(x1), color=strip, alpha=0.35)
axes[1].set_xlim(-3, 2.5)
axes[1].set_ylim(0, 8)
axes[1].set_title("the map $y = f(x) = e^x$", fontsize=10)
axes[1].set_xlabel("$x$")
axes[1].set_ylabel("$y$")

axes[2].hist(y_samples, bins=np.linspace(0, 8, 81), density=True, color="0.8", label="pushed samples")
show = ys <= 8
axes[2].plot(ys[show], p_y[show], color="k", lw=1.5, label="$p_X(\\log y)\\,/\\,y$")
band = (ys >= np.exp(x0)) & (ys <= np.exp(x1))
axes[2].fill_between(ys[band], p_y[band], color=strip, alpha=0.8)
axes[2].set_xlim(0, 8)
axes[2].set_title("density of $Y = e^X$: samples and formula", fontsize=10)
axes[2].set_xlabel("$y$")
axes[2].legend(frameon=False, fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# The strip $[0.6, 0.9]$ of $x$ values becomes the wider strip $[1.82, 2.46]$ of $y$
# values. Both orange areas are the same probability, so over the wider strip the density
# is lower. TFP does exactly this computation: `tfd.TransformedDistribution` pushes a base
# distribution through a bijector, and `tfb.Exp()` is our $f$. The result is the
# log-normal distribution, which TFP also has in closed form.

# %%
y_check = np.linspace(0.05, 10, 500)
pushed = tfd.TransformedDistribution(distribution=standard_normal, bijector=tfb.Exp())
np.testing.assert_allclose(pushed.prob(y_check), density_y(y_check), rtol=1e-6)
np.testing.assert_allclose(pushed.prob(y_check), tfd.LogNormal(np.float64(0.0), 1.0).prob(y_check), rtol=1e-6)

# %% [markdown]
# ## 2-D: the Jacobian determinant is the local change of area
#
# In more dimensions the derivative is replaced by the Jacobian matrix of the map
# $x = f(z)$, $J_f(z) = \partial f / \partial z$. Near a point $z$, the map acts like the linear map
# $J_f(z)$, and a linear map multiplies every area (volume, in higher dimensions) by
# $|\det J_f(z)|$. So a tiny square of area $A$ around $z$ lands on a tiny patch of area
# $|\det J_f(z)|\,A$ around $x = f(z)$, with the same probability in it.
#
# Let us check this on a smooth bijection of the plane, given as two update steps. (Why it
# is invertible is revealed in the next section.) We draw small squares, map their outlines
# through $g$ and measure the area of each image with the shoelace formula; autodiff gives
# the Jacobian at each square's centre.

# %%
def g(x):
    """A smooth bijection of the plane, [n, 2] -> [n, 2]."""
    u, v = x[:, :1], x[:, 1:]
    v = v * tf.exp(0.5 * tf.sin(u)) + 0.5 * u
    u = u * tf.exp(0.4 * tf.tanh(v)) + 0.4 * tf.sin(2 * v)
    return tf.concat([u, v], axis=1)


def jacobians(fn, x):
    """Jacobian of fn at every point of x, [n, d, d]: J[i, r, c] = d out_r / d in_c."""
    x = tf.constant(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = fn(x)
    return tape.batch_jacobian(out, x).numpy()


def square_outlines(centres, side, points_per_edge=20):
    """Outlines of squares around each centre, [n, 4 * points_per_edge, 2], counter-clockwise."""
    t = np.linspace(-0.5, 0.5, points_per_edge, endpoint=False)
    one = np.ones_like(t) * 0.5
    unit = np.concatenate([np.stack([t, -one], 1), np.stack([one, t], 1),
                           np.stack([-t, one], 1), np.stack([-one, -t], 1)])
    return (centres[:, None, :] + side * unit[None]).astype(np.float32)


def polygon_areas(polygons):
    """Shoelace formula, [n, num_vertices, 2] -> [n]."""
    x, y = polygons[..., 0], polygons[..., 1]
    return 0.5 * np.abs(np.sum(x * np.roll(y, -1, axis=1) - np.roll(x, -1, axis=1) * y, axis=1))


SIDE = 0.3
centres = np.stack(np.meshgrid(np.linspace(-2, 2, 5), np.linspace(-2, 2, 5)), -1).reshape(-1, 2)
squares = square_outlines(centres, SIDE)
images = g(squares.reshape(-1, 2)).numpy().reshape(squares.shape)

measured = polygon_areas(images) / SIDE**2
det = np.linalg.det(jacobians(g, centres))
np.testing.assert_allclose(measured, np.abs(det), rtol=0.03)  # agree up to the squares' finite size
print(f"area change factors range from {measured.min():.2f} to {measured.max():.2f}")

# %%
norm = LogNorm(vmin=1 / 3, vmax=3)  # shrinking in blue, growing in red, 1 in white
cmap = plt.get_cmap("coolwarm")
lines = np.linspace(-2.5, 2.5, 11)
t = np.linspace(-2.5, 2.5, 200)

fig, axes = plt.subplots(1, 2, figsize=(10, 5))
for ax, shapes, title, mapped in ((axes[0], squares, "small squares around points $z$", False),
                                  (axes[1], images, "their images under $g$", True)):
    for c in lines:  # a light grid, mapped or not, for orientation
        for segment in (np.stack([t, np.full_like(t, c)], 1), np.stack([np.full_like(t, c), t], 1)):
            segment = g(segment.astype(np.float32)).numpy() if mapped else segment
            ax.plot(segment[:, 0], segment[:, 1], color="0.88", lw=0.6, zorder=0)
    for shape, factor in zip(shapes, measured):
        ax.add_patch(Polygon(shape, closed=True, facecolor=cmap(norm(factor)), edgecolor="k", lw=0.5))
    ax.set_xlim(-4, 4)
    ax.set_ylim(-4, 4)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=10)
colorbar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes, shrink=0.8,
                        label="area change $|\\det J_g(z)|$")
colorbar.set_ticks([1 / 3, 1 / 2, 1, 2, 3], labels=["1/3", "1/2", "1", "2", "3"])
colorbar.minorticks_off()
plt.show()

# %% [markdown]
# Blue patches shrank, red ones grew. A density pushed through $g$ goes *up* in the blue
# regions and *down* in the red ones. For a flow $x = f(z)$ with base density $p_Z$:
#
# $$
# p_X(x) = p_Z(z)\,\big|\det J_f(z)\big|^{-1}, \qquad
# \log p_X(x) = \log p_Z(z) - \log\big|\det J_f(z)\big|, \qquad z = f^{-1}(x).
# $$
#
# Equivalently, with the Jacobian of the inverse, $\log p_X(x) = \log p_Z(f^{-1}(x)) +
# \log|\det J_{f^{-1}}(x)|$. TFP uses the same direction as we do: `forward` maps latent
# $z$ to data $x$, and `forward_log_det_jacobian(z)` is $\log|\det J_f(z)|$. For a chain
# of layers $f = f_L \circ \dots \circ f_1$ the Jacobian is a product of the layers'
# Jacobians, so the log-determinants simply add up along the way.
#
# ## Why coupling layers make the determinant cheap
#
# Computing $\det J$ of a general $D \times D$ matrix costs $O(D^3)$ operations, and we
# would first need the whole matrix (for an image, $D$ is in the thousands) for every data
# point at every training step. Coupling layers avoid all of it. Notebook 01's layer copies
# $x_1$ and shifts $x_2$; RealNVP's **affine coupling** (Dinh, Sohl-Dickstein and Bengio,
# 2017) also scales it:
#
# $$y_1 = x_1, \qquad y_2 = x_2 \odot \exp\big(s(x_1)\big) + t(x_1),$$
#
# with $s$ (log-scale) and $t$ (shift) any functions of $x_1$, here one network with two
# outputs per changed coordinate. The inverse again never inverts the network:
# $x_2 = (y_2 - t(y_1)) \odot \exp(-s(y_1))$. The Jacobian has a block of zeros, because
# $y_1$ does not depend on $x_2$:
#
# $$
# J = \begin{pmatrix} I & 0 \\ \dfrac{\partial y_2}{\partial x_1} &
#   \operatorname{diag}\big(e^{s(x_1)}\big) \end{pmatrix},
# \qquad \log|\det J| = \sum_i s_i(x_1).
# $$
#
# The determinant of a triangular matrix is the product of its diagonal, so whatever the
# complicated block $\partial y_2 / \partial x_1$ holds, the log-determinant is just the sum
# of the log-scales, a by-product of the forward pass: $O(D)$ work. For the additive layer
# $s = 0$, so $\log|\det J| = 0$, as notebook 01 found.
#
# Look back at $g$: each of its two lines is an affine coupling. The first keeps $u$ and
# scales and shifts $v$; the second keeps the new $v$ and scales and shifts $u$. That is
# why $g$ is invertible, and why $\log|\det J_g| = 0.5\sin(u) + 0.4\tanh(v_{\text{new}})$,
# the sum of the two layers' log-scales:

# %%
u = centres[:, 0]
v_new = centres[:, 1] * np.exp(0.5 * np.sin(u)) + 0.5 * u
np.testing.assert_allclose(np.log(np.abs(det)), 0.5 * np.sin(u) + 0.4 * np.tanh(v_new), atol=1e-5)

# %% [markdown]
# ### The affine coupling by hand
#
# Here it is in plain TensorFlow, for any dimension: the first $\lceil D/2 \rceil$
# coordinates are kept. The network is flowlib's `MLP`, the Dense + ReLU network of
# notebook 01 in a reusable form. `zero_last=False` gives it random weights all the way
# through, so the layer is not the identity (by default flowlib starts the last layer at
# zero, see notebook 01).

# %%
def split(x):
    """(x1, x2): the first ceil(D/2) coordinates are kept, the rest are changed."""
    num_kept = (x.shape[1] + 1) // 2
    return x[:, :num_kept], x[:, num_kept:]


def affine_forward(x, network):
    """y1 = x1, y2 = x2 * exp(s(x1)) + t(x1); network(x1) returns [t, s] side by side."""
    x1, x2 = split(x)
    shift, log_scale = tf.split(network(x1), 2, axis=1)
    return tf.concat([x1, x2 * tf.exp(log_scale) + shift], axis=1)


def affine_inverse(y, network):
    """x1 = y1, x2 = (y2 - t(y1)) * exp(-s(y1))."""
    y1, y2 = split(y)
    shift, log_scale = tf.split(network(y1), 2, axis=1)
    return tf.concat([y1, (y2 - shift) * tf.exp(-log_scale)], axis=1)


def affine_log_det(x, network):
    """log|det J| of affine_forward at x: the sum of the log-scales, shape [n]."""
    x1, _ = split(x)
    _, log_scale = tf.split(network(x1), 2, axis=1)
    return tf.reduce_sum(log_scale, axis=1)


# %% [markdown]
# Now the autodiff check, in $D = 4$ so that the blocks are visible: two coordinates kept,
# two changed. `batch_jacobian` builds the full $4 \times 4$ Jacobian at each point and
# `tf.linalg.slogdet` computes its log-determinant the expensive way.

# %%
network_4d = MLP(input_dim=2, output_dim=4, hidden_units=(8, 8), seed=0, zero_last=False)
points_4d = np.random.default_rng(1).normal(size=(500, 4)).astype(np.float32)

J = jacobians(lambda x: affine_forward(x, network_4d), points_4d)
print("Jacobian at one point (rows: outputs, columns: inputs):\n", J[0].round(3))
np.testing.assert_array_equal(J[:, :2, 2:], 0.0)  # the zero block: y1 ignores x2
_, log_abs_det = tf.linalg.slogdet(J)
np.testing.assert_allclose(affine_log_det(points_4d, network_4d), log_abs_det, atol=1e-4)
assert np.std(log_abs_det) > 0.1  # the log-det really varies from point to point
np.testing.assert_allclose(affine_inverse(affine_forward(points_4d, network_4d), network_4d), points_4d,
                           atol=1e-5)

# %% [markdown]
# flowlib's `AffineCoupling` is this layer as a TFP bijector. By default it softly bounds
# the log-scale to $\pm 2$ (notebook 05 explains why); with `max_log_scale=None` it is
# exactly the formula above, and it agrees with our functions in every direction.

# %%
layer_4d = AffineCoupling(half_mask(4), network=network_4d, max_log_scale=None)
np.testing.assert_allclose(layer_4d.forward(points_4d), affine_forward(points_4d, network_4d), atol=1e-6)
np.testing.assert_allclose(layer_4d.inverse(points_4d), affine_inverse(points_4d, network_4d), atol=1e-6)
np.testing.assert_allclose(layer_4d.forward_log_det_jacobian(points_4d, event_ndims=1),
                           affine_log_det(points_4d, network_4d), atol=1e-6)

# %% [markdown]
# ## A flow is a distribution: `TransformedDistribution`
#
# Now we assemble a small flow: a standard normal base in 2-D, then an affine coupling, a
# swap, and another affine coupling, all with random weights. `tfd.TransformedDistribution`
# gives it `sample` (draw $z$, apply `forward`) and `log_prob` (the formula above). First
# we compute $\log p_X(x)$ ourselves, walking backwards through the layers, and compare.

# %%
network_a = MLP(1, 2, hidden_units=(8, 8), seed=14, zero_last=False)
network_b = MLP(1, 2, hidden_units=(8, 8), seed=15, zero_last=False)
base = tfd.MultivariateNormalDiag(loc=tf.zeros(2), scale_diag=tf.ones(2))
flow = tfd.TransformedDistribution(
    distribution=base,
    bijector=tfb.Chain([  # tfb.Chain applies the last bijector first
        AffineCoupling(half_mask(2), network=network_b, max_log_scale=None, name="coupling_2"),
        tfb.Permute(permutation=[1, 0], name="swap"),
        AffineCoupling(half_mask(2), network=network_a, max_log_scale=None, name="coupling_1"),
    ]))


def log_prob_by_hand(x):
    """log p_X(x) = log p_Z(z) - sum of the layers' log|det J|, walking from x back to z."""
    h2 = affine_inverse(x, network_b)  # undo coupling 2
    h1 = tf.reverse(h2, axis=[1])  # undo the swap (its own inverse; |det| = 1)
    z = affine_inverse(h1, network_a)  # undo coupling 1
    log_det = affine_log_det(z, network_a) + affine_log_det(h2, network_b)
    log_p_z = tf.reduce_sum(-0.5 * z**2 - 0.5 * np.log(2 * np.pi), axis=1)  # independent N(0, 1)
    return log_p_z - log_det


x_test = flow.sample(1000, seed=7)
np.testing.assert_allclose(flow.log_prob(x_test), log_prob_by_hand(x_test), atol=1e-4)

# %% [markdown]
# The real test of a density: it must integrate to 1. We evaluate `flow.prob` on a fine
# grid that holds nearly all the samples and add up density times cell area. As a
# contrast, we do the same for $p_Z(f^{-1}(x))$ alone, the density without the determinant.

# %%
LIMIT = 4.5
grid_1d = np.linspace(-LIMIT, LIMIT, GRID)
cell_area = (grid_1d[1] - grid_1d[0]) ** 2
grid = np.stack(np.meshgrid(grid_1d, grid_1d), -1).reshape(-1, 2).astype(np.float32)

density = flow.prob(grid).numpy()
integral = density.sum() * cell_area
without_determinant = base.prob(flow.bijector.inverse(grid)).numpy().sum() * cell_area

samples = flow.sample(NUM_SAMPLES, seed=1).numpy()
outside = np.mean(np.any(np.abs(samples) > LIMIT, axis=1))
print(f"integral of the flow's density over the grid: {integral:.4f} "
      f"(fraction of samples outside the grid: {outside:.5f})")
print(f"the same without the determinant:             {without_determinant:.4f}")
assert outside < 1e-3
assert abs(integral - 1.0) < 0.01
assert abs(without_determinant - 1.0) > 0.1  # forgetting the determinant is not a small error

# %% [markdown]
# And density and samples must agree: the probability the density gives to each
# quadrant of the data plane should match the fraction of samples in it.

# %%
for name, in_quadrant in (("x1 > 0, x2 > 0", lambda p: (p[:, 0] > 0) & (p[:, 1] > 0)),
                          ("x1 < 0, x2 > 0", lambda p: (p[:, 0] < 0) & (p[:, 1] > 0)),
                          ("x1 < 0, x2 < 0", lambda p: (p[:, 0] < 0) & (p[:, 1] < 0)),
                          ("x1 > 0, x2 < 0", lambda p: (p[:, 0] > 0) & (p[:, 1] < 0))):
    predicted = density[in_quadrant(grid)].sum() * cell_area
    observed = np.mean(in_quadrant(samples))
    standard_error = np.sqrt(predicted * (1 - predicted) / NUM_SAMPLES)
    print(f"P({name}): density {predicted:.4f}, samples {observed:.4f}")
    assert abs(observed - predicted) < 5 * standard_error + 0.005  # + the grid's own error

# %%
z_show = base.sample(5000, seed=3).numpy()
x_show = flow.bijector.forward(z_show).numpy()
colors = quadrant_colors(z_show)

fig, axes = plt.subplots(1, 3, figsize=(13, 4.4))
axes[0].scatter(z_show[:, 0], z_show[:, 1], s=1, c=colors, rasterized=True)
axes[0].set_title("base sample $z$ (independent coordinates)", fontsize=10)
axes[1].scatter(x_show[:, 0], x_show[:, 1], s=1, c=colors, rasterized=True)
axes[1].set_title("flow samples $x = f(z)$: coupling 1, swap, coupling 2", fontsize=10)
axes[2].imshow(density.reshape(GRID, GRID), origin="lower", extent=(-LIMIT, LIMIT, -LIMIT, LIMIT),
               cmap="magma")
axes[2].set_title("the flow's density $p_X(x)$ (flow.prob)", fontsize=10)
for ax in axes:
    ax.set_xlim(-LIMIT, LIMIT)
    ax.set_ylim(-LIMIT, LIMIT)
    ax.set_aspect("equal")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Two questions the formula answers
#
# **Why does the latent space have the same dimension as the data?** Because $f$ must be
# a bijection with a Jacobian we can take the determinant of. A smooth map from a line into
# the plane only covers a curve, which has zero area, so the points it produces have no
# density in the plane at all; a map from the plane onto a line must send many points to
# the same value, so it cannot be inverted. The Jacobian is square only when the
# dimensions agree. This is unlike an autoencoder, whose code is usually much smaller than
# its input. (The reference post points out how odd this feels at first.)
#
# **Why is a base with independent coordinates enough?** The base $p_Z(z) = \prod_i
# \mathcal{N}(z_i; 0, 1)$ has no structure at all: knowing $z_1$ tells you nothing about
# $z_2$. All the structure of the data, including how its coordinates depend on each
# other, is created by $f$. A coupling layer builds dependence in by construction: the
# shift and scale of $x_2$ are functions of $x_1$. In the figure, the spread of the second
# coordinate clearly depends on the first; for the base it does not. We can measure that
# with the spread of $x_2$ in vertical slices:

# %%
def spread_by_slice(points, edges=(-np.inf, -1.0, 0.0, 1.0, np.inf)):
    """Standard deviation of the second coordinate within slices of the first."""
    which = np.digitize(points[:, 0], edges[1:-1])
    return np.array([points[which == k, 1].std() for k in range(len(edges) - 1)])


base_spread = spread_by_slice(base.sample(NUM_SAMPLES, seed=5).numpy())
flow_spread = spread_by_slice(samples)
print("std of the 2nd coordinate in slices of the 1st, base:", base_spread.round(2))
print("                                               flow:", flow_spread.round(2))
assert base_spread.max() / base_spread.min() < 1.1  # independent: the same everywhere
assert flow_spread.max() / flow_spread.min() > 1.5  # dependent: the flow made it so

# %% [markdown]
# ## Summary
#
# - Pushing a density through a bijection $x = f(z)$ gives
#   $\log p_X(x) = \log p_Z(f^{-1}(x)) - \log|\det J_f(f^{-1}(x))|$: where $f$ stretches
#   space the density drops, where it compresses it rises.
# - $|\det J|$ is the local change of area (volume); for a stack of layers the
#   log-determinants add up.
# - A coupling layer has a triangular Jacobian, so its log-determinant is the sum of its
#   log-scales ($O(D)$ instead of $O(D^3)$), and 0 for an additive layer.
# - `tfd.TransformedDistribution(base, bijector)` applies the formula; with flowlib's
#   `AffineCoupling` it gives a density that integrates to 1, and its samples agree with
#   it. Forgetting the determinant gives a "density" that does not.
# - Latent and data must have the same dimension (a bijection), and a base with
#   independent coordinates is enough: the flow creates the dependencies.
#
# Next, notebook 03 (*A target distribution from a picture*) builds the data the series
# learns: points drawn uniformly from the ink of a word.
#
# ## Exercises
#
# Each exercise has a code cell: replace the solution part and run the checks below it.

# %% [markdown]
# ### Exercise 1: the log-determinant of a dense map
#
# The map $h(x) = A\,\sinh(x)$ ($\sinh$ applied to each coordinate, then an invertible
# $D \times D$ matrix $A$) has a full Jacobian, not a triangular one. Use the chain rule,
# $J_h(x) = A\,\operatorname{diag}(\cosh x)$, and $\det(BC) = \det B \det C$ to write
# `log_det_h(x, log_abs_det_A)`: its $\log|\det J_h(x)|$ at each point of `x` (`[n, D]`,
# result `[n]`), given only the number $\log|\det A|$, not $A$ itself. The checks draw
# random matrices of several sizes (some with $\det A < 0$) and compare with autodiff and
# `tf.linalg.slogdet`. Here is one such map, to try your function on:

# %%
A = np.array([[-0.3, 2.0, 0.4], [1.0, 0.5, 0.0], [0.2, 0.0, 0.7]], np.float32)  # det A < 0


def h_map(x):
    return tf.matmul(tf.sinh(x), A, transpose_b=True)  # row-wise A @ sinh(x)


def log_det_h(x, log_abs_det_A):
    ### BEGIN SOLUTION hint: det(A diag(c)) = det(A) prod(c); take logs of absolute values
    return log_abs_det_A + tf.reduce_sum(tf.math.log(tf.cosh(x)), axis=1)
    ### END SOLUTION


def check_exercise_1(log_det_h):
    for seed, dim in enumerate([2, 3, 5]):
        rng = np.random.default_rng(40 + seed)
        matrix = rng.normal(size=(dim, dim)).astype(np.float32) + np.diag(rng.uniform(-2, 2, dim)).astype(np.float32)
        points = rng.normal(0.3, 1.5, size=(60 + seed, dim)).astype(np.float32)
        sign, log_abs_det_matrix = np.linalg.slogdet(matrix.astype(np.float64))
        got = np.asarray(log_det_h(tf.constant(points), np.float32(log_abs_det_matrix)))
        assert got.shape == (len(points),), f"expected one value per point, shape {(len(points),)}, got {got.shape}"
        J = jacobians(lambda x, matrix=matrix: tf.matmul(tf.sinh(x), matrix, transpose_b=True), points)
        np.testing.assert_allclose(got, tf.linalg.slogdet(J)[1], atol=1e-3, rtol=1e-5,
                                   err_msg=f"log|det J| differs from autodiff (D = {dim}, sign of det A: {sign:+.0f})")
    print("Exercise 1: correct")


check_exercise_1(log_det_h)

# %% [markdown]
# ### Exercise 2: the density of $Y = aX + b$
#
# Let $X$ have a density $p_X$, given as a function `base_density` that takes a NumPy array
# of values (of any shape) and returns their densities (of the same shape). With numbers
# $a \ne 0$ and $b$, derive the density of $Y = aX + b$ from the change-of-variables formula
# and write `affine_density(y, a, b, base_density)`, for an array `y` of any shape, in any
# order. Careful with negative $a$. The checks use base densities that are *not* symmetric
# (so a wrong sign shows), compare with TFP's own `TransformedDistribution` on a grid and on
# scattered points, and integrate your density on the grid.

# %%
def affine_density(y, a, b, base_density):
    ### BEGIN SOLUTION hint: solve y = a x + b for x, then multiply the base density at x by |dx/dy|
    x = (y - b) / a
    return base_density(x) / abs(a)
    ### END SOLUTION


def check_exercise_2(affine_density):
    bases = [tfd.Gumbel(np.float64(0.3), 0.8), tfd.Gamma(np.float64(2.0), 1.5),
             tfd.SinhArcsinh(np.float64(-1.0), 1.2, skewness=np.float64(0.9))]
    for base, a, b in zip(bases, [-2.5, 0.4, -0.7], [1.0, -3.0, 2.0]):
        pushed = tfd.TransformedDistribution(base, tfb.Shift(np.float64(b))(tfb.Scale(np.float64(a))))
        lo, hi = (float(q) for q in np.sort(pushed.bijector.forward(base.quantile([1e-7, 1 - 1e-7]))))
        y = np.linspace(lo, hi, 20_001)
        got = np.asarray(affine_density(y, a, b, lambda x, base=base: base.prob(np.asarray(x)).numpy()))
        np.testing.assert_allclose(got, pushed.prob(y), rtol=1e-6, atol=1e-12,
                                   err_msg=f"wrong density of Y = aX + b for a = {a}, b = {b}")
        assert abs(np.trapezoid(got, y) - 1.0) < 1e-3, "the density does not integrate to 1"
        scattered = np.random.default_rng(int(10 * b + 50)).uniform(lo, hi, size=(13, 7))  # any shape, any order
        got = np.asarray(affine_density(scattered, a, b, lambda x, base=base: base.prob(np.asarray(x)).numpy()))
        assert got.shape == scattered.shape, f"y of shape {scattered.shape} gave densities of shape {got.shape}"
        np.testing.assert_allclose(got, pushed.prob(scattered), rtol=1e-6, atol=1e-12,
                                   err_msg=f"wrong density at scattered points for a = {a}, b = {b}")
    print("Exercise 2: correct")


check_exercise_2(affine_density)

# %% [markdown]
# ### Exercise 3: integrate a density on your own grid
#
# Write `grid_integral(prob, extent, resolution)`: the integral of a 2-D density over the
# rectangle `extent = (left, right, bottom, top)` ($x_1$ from left to right, $x_2$ from
# bottom to top), approximated by the midpoint rule on a `resolution x resolution` grid of
# cells: the density at each cell's centre times the cell's area, added up. `prob` maps
# points `[n, 2]` (float32) to densities `[n]`. The checks use rectangles that are not
# square and not centred, densities that are not symmetric, coarse grids (where the
# midpoint rule and the wrong points give different answers) and a new two-layer flow.

# %%
def grid_integral(prob, extent, resolution):
    ### BEGIN SOLUTION hint: each cell's centre lies half a cell in from its edges; np.meshgrid builds the grid
    left, right, bottom, top = extent
    width, height = (right - left) / resolution, (top - bottom) / resolution
    xs = left + width * (np.arange(resolution) + 0.5)
    ys = bottom + height * (np.arange(resolution) + 0.5)
    centres = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2).astype(np.float32)
    return float(np.sum(prob(centres)) * width * height)
    ### END SOLUTION


def check_exercise_3(grid_integral):
    def plane(p):  # linear in each coordinate: the midpoint rule is exact on any grid
        p = np.asarray(p, np.float64)
        return 0.5 + 0.3 * p[:, 0] - 0.2 * p[:, 1] + 0.05 * p[:, 0] * p[:, 1]

    def plane_integral(left, right, bottom, top):
        area = (right - left) * (top - bottom)
        mean_x1, mean_x2 = (left + right) / 2, (bottom + top) / 2
        return area * (0.5 + 0.3 * mean_x1 - 0.2 * mean_x2 + 0.05 * mean_x1 * mean_x2)

    for extent, resolution in [((-1.0, 3.0, 2.0, 2.5), 3), ((0.5, 1.5, -4.0, 2.0), 4), ((-2.0, 5.0, -1.0, 0.0), 1)]:
        got = grid_integral(plane, extent, resolution)
        np.testing.assert_allclose(got, plane_integral(*extent), rtol=1e-5,
                                   err_msg=f"wrong integral of a plane over {extent} with resolution {resolution}")

    skewed = tfd.MultivariateNormalTriL(loc=[0.7, -1.2], scale_tril=[[1.0, 0.0], [0.6, 0.5]])
    for extent, resolution in [((-1.0, 2.5, -2.0, 0.0), 5), ((0.0, 4.0, -3.0, 1.0), 7)]:
        left, right, bottom, top = extent
        width, height = (right - left) / resolution, (top - bottom) / resolution
        centres = np.array([[left + (i + 0.5) * width, bottom + (j + 0.5) * height]  # cell by cell
                            for i in range(resolution) for j in range(resolution)], np.float32)
        total = float(np.sum(skewed.prob(centres))) * width * height
        np.testing.assert_allclose(grid_integral(skewed.prob, extent, resolution), total, rtol=1e-4,
                                   err_msg=f"not the midpoint rule on a {resolution} x {resolution} grid over {extent}")

    flow_to_integrate = tfd.TransformedDistribution(
        distribution=tfd.MultivariateNormalDiag(loc=[0.5, -0.5], scale_diag=[1.0, 0.8]),
        bijector=tfb.Chain([
            AffineCoupling(half_mask(2), network=MLP(1, 2, (8, 8), seed=3, zero_last=False), max_log_scale=None),
            tfb.Permute(permutation=[1, 0]),
            AffineCoupling(half_mask(2), network=MLP(1, 2, (8, 8), seed=2, zero_last=False), max_log_scale=None),
        ]))
    assert abs(grid_integral(flow_to_integrate.prob, (-7.0, 8.0, -6.5, 7.5), 120) - 1.0) < 0.01, \
        "a flow's density should integrate to about 1 over a rectangle that holds nearly all of it"
    print("Exercise 3: correct")


check_exercise_3(grid_integral)

# %% [markdown]
# ### Exercise 4: a bijector of your own, the leaky ReLU
#
# A ReLU forgets every negative number (notebook 01), but a *leaky* ReLU with a slope
# $\alpha > 0$ for negative inputs,
#
# $$f(x) = \begin{cases} x & x \ge 0 \\ \alpha x & x < 0 \end{cases},$$
#
# is a bijection of the real line, and it works coordinate by coordinate. Write it as a TFP
# bijector from scratch: a class `LeakyReLU(tfb.Bijector)` whose constructor takes `alpha`
# (and an optional `name`), with the methods `_forward`, `_inverse` and
# `_forward_log_det_jacobian`, the log of $|f'(x)|$ for each coordinate. Declare
# `forward_min_event_ndims=0` in `super().__init__`: the map acts on each number on its
# own, so one number is the smallest event, and TFP then adds the log-determinants over
# the coordinates of a vector itself. TFP derives the inverse log-determinant from yours
# (if you also write `_inverse_log_det_jacobian`, it must agree). The slope depends on the
# sign of $x$, so the Jacobian is not constant: leave `is_constant_jacobian` at its default.
# (`tf.where` picks between two tensors elementwise. Any correct bijector passes, also one
# built from TFP's parts, but writing it out is the point.) The checks use several
# $\alpha$, including $\alpha > 1$, on positive and negative inputs, compare the
# log-determinant with autodiff in both directions, and check that a 1-D and a 2-D normal
# pushed through your bijector with `tfd.TransformedDistribution` still integrate to 1.

# %%
class LeakyReLU(tfb.Bijector):
    ### BEGIN SOLUTION hint: _forward uses tf.where(x >= 0, ...); the inverse divides the negative part by alpha; the slope is 1 or alpha
    def __init__(self, alpha, name="leaky_relu"):
        self.alpha = alpha
        super().__init__(forward_min_event_ndims=0, name=name)

    def _forward(self, x):
        return tf.where(x >= 0, x, self.alpha * x)

    def _inverse(self, y):
        return tf.where(y >= 0, y, y / self.alpha)

    def _forward_log_det_jacobian(self, x):
        return tf.where(x >= 0, tf.zeros_like(x), tf.math.log(self.alpha) * tf.ones_like(x))
    ### END SOLUTION


def check_exercise_4(LeakyReLU):
    def leaky(x, alpha):  # the map itself, for reference and for autodiff
        return tf.where(x >= 0, x, alpha * x)

    for seed, alpha in enumerate([0.1, 0.5, 2.5]):
        bijector = LeakyReLU(alpha)
        assert isinstance(bijector, tfb.Bijector), "LeakyReLU(alpha) should give a tfb.Bijector"
        assert bijector.forward_min_event_ndims == 0, "an elementwise bijector has forward_min_event_ndims=0"
        assert not bijector.is_constant_jacobian, "the slope depends on the sign of x: the Jacobian is not constant"
        x = np.random.default_rng(500 + seed).normal(0.5, 3.0, size=(7, 3)).astype(np.float32)
        assert (x < 0).any() and (x > 0).any()
        y = np.asarray(bijector.forward(x))
        np.testing.assert_allclose(y, np.where(x >= 0, x, alpha * x), rtol=1e-6, err_msg=f"forward, alpha = {alpha}")
        np.testing.assert_allclose(bijector.inverse(y.copy()), x, rtol=1e-5, atol=1e-6,
                                   err_msg=f"the inverse does not undo forward, alpha = {alpha}")
        fresh = np.random.default_rng(600 + seed).normal(-0.5, 2.0, size=(5, 4)).astype(np.float32)
        np.testing.assert_allclose(bijector.inverse(fresh), np.where(fresh >= 0, fresh, fresh / alpha), rtol=1e-5,
                                   err_msg=f"inverse, alpha = {alpha}")
        np.testing.assert_allclose(bijector.inverse_log_det_jacobian(fresh, event_ndims=0),
                                   np.where(fresh >= 0, 0.0, -np.log(alpha)), atol=1e-5,
                                   err_msg=f"the inverse's log|det| is not minus the forward's at the inverse, alpha = {alpha}")
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            out = leaky(xt, alpha)
        by_autodiff = np.log(np.abs(tape.gradient(out, xt).numpy()))
        np.testing.assert_allclose(bijector.forward_log_det_jacobian(x, event_ndims=0), by_autodiff, atol=1e-5,
                                   err_msg=f"log|f'(x)| differs from autodiff, alpha = {alpha}")
        np.testing.assert_allclose(bijector.forward_log_det_jacobian(x, event_ndims=1), by_autodiff.sum(axis=1),
                                   atol=1e-5, err_msg="for vectors, the log-determinant adds up over the coordinates")

        base_1d = tfd.Normal(np.float32(0.7), np.float32(1.3))
        pushed_1d = tfd.TransformedDistribution(base_1d, tfb.Chain([tfb.Shift(np.float32(-1.0)), LeakyReLU(alpha)]))
        grid = np.linspace(alpha * (0.7 - 10 * 1.3) - 1.0, 0.7 + 10 * 1.3 - 1.0, 200_001).astype(np.float32)
        integral_1d = np.trapezoid(pushed_1d.prob(grid).numpy(), grid)
        assert abs(integral_1d - 1.0) < 1e-3, f"the 1-D density integrates to {integral_1d:.4f}, not 1 (alpha = {alpha})"

        base_2d = tfd.MultivariateNormalDiag(loc=[0.5, -0.8], scale_diag=[1.0, 1.5])
        pushed_2d = tfd.TransformedDistribution(base_2d, LeakyReLU(alpha))
        low = alpha * (np.array([0.5, -0.8]) - 6 * np.array([1.0, 1.5]))  # the negative side, squeezed or stretched
        high = np.array([0.5, -0.8]) + 6 * np.array([1.0, 1.5])
        x1s, x2s = (np.linspace(lo, hi, 500) for lo, hi in zip(low, high))
        cell = (x1s[1] - x1s[0]) * (x2s[1] - x2s[0])
        grid_2d = np.stack(np.meshgrid(x1s, x2s), -1).reshape(-1, 2).astype(np.float32)
        integral_2d = float(np.sum(pushed_2d.prob(grid_2d))) * cell
        assert abs(integral_2d - 1.0) < 0.02, f"the 2-D density integrates to {integral_2d:.4f}, not 1 (alpha = {alpha})"
    print("Exercise 4: correct")


check_exercise_4(LeakyReLU)
