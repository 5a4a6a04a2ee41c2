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
# # 01 · Additive coupling
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/normalizing-flows-tf2/flowlib/blob/main/notebooks/01_additive_coupling.ipynb)
#
# **After this notebook you can** build an exactly invertible layer out of a neural network
# that is not invertible at all (an *additive coupling layer*), write its inverse in two
# lines, explain why stacking such layers needs a permutation in between, show that the
# layer preserves area (its Jacobian determinant is 1), and use flowlib's
# `AdditiveCoupling` together with TFP's `tfb.Chain` and `tfb.Permute`.
#
# **Prerequisites:** none from this series, this is the first notebook. You need Python,
# NumPy, a little TensorFlow 2 (tensors, `tf.GradientTape`) and the idea of a Jacobian
# matrix.

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
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_rgba

from flowlib.bijectors import AdditiveCoupling, half_mask
from flowlib.plotting import plot_stages, quadrant_colors

tfb = tfp.bijectors

NUM_POINTS = 4000  # points in the scatter plots
rng = np.random.default_rng(0)
z = rng.standard_normal((NUM_POINTS, 2)).astype(np.float32)  # the base sample used throughout
colors = quadrant_colors(z)  # one colour per quadrant of z, kept through every layer

# %% [markdown]
# ## The question: how can a neural network be invertible?
#
# A normalizing flow turns a simple distribution (independent Gaussian noise) into a
# complicated one by pushing samples through a chain of maps. Going *forward* through the
# chain draws new samples; going *backward* tells us which noise produced a given data
# point, and that is what we need to compute its probability (notebook 02). So every layer
# must be a **bijection**: one-to-one, with an inverse we can actually compute, quickly and
# exactly.
#
# A word on direction, because the literature and the library disagree. In this series,
# as in TensorFlow Probability, **forward means latent to data** (noise to sample):
# `bijector.forward` draws samples and `log_prob` uses `inverse`. The papers we follow,
# NICE (Dinh et al., 2014), RealNVP (Dinh et al., 2017) and Glow (Kingma and Dhariwal,
# 2018), write their map $f$ the other way, from data $x$ to latent $z = f(x)$. So a
# paper's $f$ is TFP's `inverse`, and a paper's $f^{-1}$ (sampling) is TFP's `forward`.
#
# The usual building blocks of neural networks do not offer that. A ReLU sends every
# negative number to 0, so it forgets which negative number it saw; a dense layer that
# maps many inputs to fewer outputs forgets even more. Below is a small network
# $f:\mathbb{R}\to\mathbb{R}$, one dense layer with a ReLU and a dense output layer, with
# random weights. It will be the "neural network" inside every layer of this notebook.

# %%
def make_network(seed, hidden_units=16):
    """A random network R -> R: Dense(hidden_units) + ReLU + Dense(1), in plain TensorFlow.

    Takes x1 of shape [n, 1] and returns f(x1) of shape [n, 1].
    """
    rng = np.random.default_rng(seed)
    w1 = rng.normal(size=(1, hidden_units))
    b1 = -w1[0] * rng.uniform(-3, 3, size=hidden_units)  # each unit's kink lands in [-3, 3]
    w2 = rng.normal(size=(hidden_units, 1)) * 2 / np.sqrt(hidden_units)
    w1, b1, w2 = (tf.constant(a, tf.float32) for a in (w1, b1, w2))

    def network(x1):
        hidden = tf.nn.relu(tf.matmul(x1, w1) + b1)
        return tf.matmul(hidden, w2)

    return network


f = make_network(seed=25)


def f_scalar(x):
    """f at a single number, as a Python float (handy for root finding)."""
    return float(f(tf.constant([[x]], tf.float32))[0, 0])


# %% [markdown]
# Is $f$ one-to-one? ReLU alone already is not: `relu(-1) == relu(-2) == 0`. For the whole
# network we look for two different inputs with the same output. This $f$ goes down and then
# up again, so a horizontal line between its lowest point and the lower of its two ends
# crosses the graph twice. We find both crossings by bisection.

# %%
assert tf.nn.relu(-1.0) == tf.nn.relu(-2.0) == 0.0  # ReLU's flat region


def bisect(g, lo, hi, steps=60):
    """A root of g between lo and hi, where g(lo) and g(hi) have opposite signs."""
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        if (g(lo) > 0) == (g(mid) > 0):
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


xs = np.linspace(-3, 3, 601, dtype=np.float32)
values = f(xs[:, None]).numpy()[:, 0]
bottom = int(np.argmin(values))
assert 0 < bottom < len(xs) - 1, "f should have its minimum inside [-3, 3]"
level = values[bottom] + 0.5 * (min(values[0], values[-1]) - values[bottom])
a = bisect(lambda x: f_scalar(x) - level, xs[0], xs[bottom])
b = bisect(lambda x: f_scalar(x) - level, xs[bottom], xs[-1])
print(f"f({a:.4f}) = {f_scalar(a):.6f}   and   f({b:.4f}) = {f_scalar(b):.6f}")

assert b - a > 1.0  # two clearly different inputs ...
assert abs(f_scalar(a) - f_scalar(b)) < 1e-5  # ... with the same output: f has no inverse

# %%
fig, ax = plt.subplots(figsize=(5, 3.2))
ax.plot(xs, values, color="k", lw=1.5, label="$f(x_1)$")
ax.axhline(level, color="0.6", ls="--", lw=1)
ax.plot([a, b], [level, level], "o", color="#D55E00", label="same output, two inputs")
ax.set_xlabel("$x_1$")
ax.set_title("the network $f$: not one-to-one", fontsize=10)
ax.legend(frameon=False, fontsize=8)
plt.show()

# %% [markdown]
# ## The trick: split the input and shift only one half
#
# NICE (Dinh, Krueger and Bengio, 2014) does not try to invert $f$ at all. Split the input
# $x$ into two parts $x_1$ and $x_2$, copy the first part and *shift* the second by an
# amount that depends on the first:
#
# $$y_1 = x_1, \qquad y_2 = x_2 + f(x_1).$$
#
# Given the output $y$, the first part tells us $x_1 = y_1$ directly, so we can compute
# $f(x_1) = f(y_1)$ again and subtract it:
#
# $$x_1 = y_1, \qquad x_2 = y_2 - f(y_1).$$
#
# The layer is a bijection for *any* $f$, because the input of $f$ is available on both
# sides of the layer. We only ever evaluate $f$, never invert it. In 2-D, $x_1$ is the
# horizontal coordinate and $x_2$ the vertical one. Here is the layer, forward and inverse:

# %%
def coupling_forward(x, network):
    """Additive coupling, [n, 2] -> [n, 2]: y1 = x1, y2 = x2 + network(x1)."""
    x1, x2 = x[:, :1], x[:, 1:]
    return tf.concat([x1, x2 + network(x1)], axis=1)


def coupling_inverse(y, network):
    """Its exact inverse: x1 = y1, x2 = y2 - network(y1)."""
    y1, y2 = y[:, :1], y[:, 1:]
    return tf.concat([y1, y2 - network(y1)], axis=1)


# %% [markdown]
# The round trip must give back the input, not only for typical points but also far out in
# the tails, where numbers are large and numerical trouble would show first. We test a grid
# that reaches $|x| = 10$ in both coordinates. The only error left is float32 rounding in
# $(x_2 + f) - f$.

# %%
tails = np.stack(np.meshgrid(np.linspace(-10, 10, 41), np.linspace(-10, 10, 41)), -1)
test_points = np.concatenate([z, tails.reshape(-1, 2)]).astype(np.float32)

y = coupling_forward(test_points, f)
np.testing.assert_allclose(coupling_inverse(y, f), test_points, atol=1e-5)  # inverse undoes forward
np.testing.assert_allclose(coupling_forward(coupling_inverse(test_points, f), f), test_points,
                           atol=1e-5)  # and forward undoes inverse
np.testing.assert_array_equal(y[:, 0], test_points[:, 0])  # x1 is copied, bit for bit
assert np.max(np.abs(y[:, 1] - test_points[:, 1])) > 1.0  # ... while x2 really moves

# %% [markdown]
# ## One layer moves points vertically only
#
# Each point keeps its horizontal coordinate and slides up or down by $f(x_1)$, the same
# amount for every point on a vertical line. The arrows below show this for a few points;
# the grey curve in the middle panel is the shift $f(x_1)$ itself. The distribution of
# horizontal coordinates is unchanged, which you can check by eye: every colour keeps
# its horizontal extent.

# %%
x_after = coupling_forward(z, f).numpy()
some = slice(0, 300, 3)  # a hundred points for the arrows

fig, axes = plt.subplots(1, 3, figsize=(12, 4.2))
axes[0].scatter(z[:, 0], z[:, 1], s=1, c=colors, rasterized=True)
axes[0].set_title("base sample $z$", fontsize=10)
axes[1].quiver(z[some, 0], z[some, 1], 0 * z[some, 0], x_after[some, 1] - z[some, 1],
               color=colors[some], angles="xy", scale_units="xy", scale=1, width=0.004)
axes[1].plot(xs, values, color="0.5", lw=1, label="shift $f(x_1)$")
axes[1].legend(loc="lower right", frameon=False, fontsize=8)
axes[1].set_title("coupling: each point moves by $f(x_1)$", fontsize=10)
axes[2].scatter(x_after[:, 0], x_after[:, 1], s=1, c=colors, rasterized=True)
axes[2].set_title("after coupling 1", fontsize=10)
for ax in axes:
    ax.set_xlim(-4, 4)
    ax.set_ylim(-4, 4)
    ax.set_aspect("equal")
    ax.axhline(0, color="0.85", lw=0.5, zorder=0)
    ax.axvline(0, color="0.85", lw=0.5, zorder=0)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## A swap lets the other half move too
#
# A second coupling layer of the same kind would again leave $x_1$ alone (exercise 2 shows
# that such layers in a row are no more than a single layer of the same kind).
# So between couplings we **swap** the two coordinates, $(x_1, x_2) \mapsto (x_2, x_1)$.
# In the plane the swap is the mirror image about the diagonal $y = x$: each point jumps
# to the other side, along a line at right angles to the diagonal. The swap is its own
# inverse.

# %%
def swap(x):
    """Exchange the two coordinates: the mirror image about the line y = x."""
    return tf.reverse(x, axis=[1])


x_swapped = swap(x_after).numpy()
np.testing.assert_array_equal(swap(x_swapped), x_after)  # swapping twice changes nothing

# a few points well off the diagonal, to follow from one panel to the other
far_from_diagonal = np.abs(x_after[:, 0] - x_after[:, 1]) > 1.5
inside = np.all(np.abs(x_after) < 3, axis=1)
some = np.flatnonzero(far_from_diagonal & inside)[:8]

fig, axes = plt.subplots(1, 2, figsize=(8.4, 4.2))
for ax, points, title in ((axes[0], x_after, "after coupling 1"), (axes[1], x_swapped, "after swap 1")):
    ax.scatter(points[:, 0], points[:, 1], s=1, c=colors, alpha=0.5, rasterized=True)
    ax.plot([-4, 4], [-4, 4], color="0.3", ls="--", lw=1)
    ax.scatter(points[some, 0], points[some, 1], s=30, c=colors[some], edgecolors="k", zorder=3)
    ax.set_xlim(-4, 4)
    ax.set_ylim(-4, 4)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=10)
for i in some:  # where each marked point came from, and the mirror line it jumped along
    axes[1].scatter(*x_after[i], s=30, facecolors="none", edgecolors="k", zorder=3)
    axes[1].plot([x_after[i, 0], x_swapped[i, 0]], [x_after[i, 1], x_swapped[i, 1]], color="k", lw=0.8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## A stack of couplings and swaps
#
# Now we alternate: coupling, swap, coupling, swap, coupling, each coupling with its own
# network. Every layer is invertible, so the stack is too: undo the layers in the opposite
# order. After the first swap the *other* coordinate gets shifted, and the distribution
# stops looking like a Gaussian. With trained networks instead of random ones, this is the
# core of how NICE turns noise into data (notebook 04).

# %%
networks = [make_network(seed=s) for s in (25, 26, 30)]


def stack_forward(x):
    """coupling 1, swap, coupling 2, swap, coupling 3; returns every stage as (name, points)."""
    stages = [("base", x)]
    for k, network in enumerate(networks):
        if k > 0:
            x = swap(x)
            stages.append((f"swap {k}", x))
        x = coupling_forward(x, network)
        stages.append((f"coupling {k + 1}", x))
    return stages


def stack_inverse(y):
    """Undo the stack: the layers' inverses, last layer first."""
    for k, network in reversed(list(enumerate(networks))):
        y = coupling_inverse(y, network)
        if k > 0:
            y = swap(y)
    return y


stages = stack_forward(z)
np.testing.assert_allclose(stack_inverse(stack_forward(test_points)[-1][1]), test_points, atol=1e-4)

plot_stages([(name, np.asarray(points)) for name, points in stages], colors, ncols=3,
            limit=4.5, size=1.5, panel=3.2)
plt.show()

# %% [markdown]
# ## Volume preservation: the Jacobian determinant is 1
#
# How does the layer change areas? Locally, a smooth map acts like its Jacobian matrix, and
# the factor by which it scales a small area is $|\det J|$. For the coupling layer,
#
# $$
# J = \frac{\partial (y_1, y_2)}{\partial (x_1, x_2)} =
# \begin{pmatrix} 1 & 0 \\ f'(x_1) & 1 \end{pmatrix},
# \qquad \det J = 1 \cdot 1 - 0 \cdot f'(x_1) = 1 .
# $$
#
# The matrix is lower triangular ($y_1$ does not depend on $x_2$) with ones on the
# diagonal, so the determinant is 1 whatever $f$ is: the layer is a *shear*, it slides
# vertical strips past each other and preserves area. The swap is a reflection, with
# $\det = -1$: it flips orientation but also preserves area. A stack of both therefore
# has $|\det J| = 1$ everywhere. (Notebook 02 shows why this number matters for densities.)
#
# Let autodiff confirm it. `tf.GradientTape.batch_jacobian` gives one $2\times 2$ Jacobian
# per point.

# %%
def jacobians(fn, x):
    """The Jacobian of fn at every point of x, shape [n, 2, 2] (J[i, r, c] = d out_r / d in_c)."""
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = fn(x)
    return tape.batch_jacobian(out, x).numpy()


J = jacobians(lambda x: coupling_forward(x, f), test_points)
print("Jacobian at the first point:\n", J[0].round(4))
np.testing.assert_array_equal(J[:, 0, 0], 1.0)  # dy1/dx1
np.testing.assert_array_equal(J[:, 0, 1], 0.0)  # dy1/dx2: the zero that makes J triangular
np.testing.assert_array_equal(J[:, 1, 1], 1.0)  # dy2/dx2
assert np.abs(J[:, 1, 0]).max() > 0.5  # dy2/dx1 = f'(x1): a real shear, not the identity
np.testing.assert_allclose(np.linalg.det(J), 1.0, atol=1e-6)

J_stack = jacobians(lambda x: stack_forward(x)[-1][1], test_points)
np.testing.assert_allclose(np.abs(np.linalg.det(J_stack)), 1.0, atol=1e-4)

# %% [markdown]
# We can also *see* it. Below, a checkerboard of squares (coloured by the quadrant they
# start in) goes through one coupling and through the whole stack. The squares bend into
# strange shapes, but each keeps its area. We measure the area of every deformed cell with
# the shoelace formula, drawing each cell's edges with many points so that curved edges
# are followed closely.

# %%
def cell_polygons(limit, cells, points_per_edge=16):
    """The outlines of a cells x cells checkerboard on [-limit, limit]^2: [cells**2, 4 * points_per_edge, 2]."""
    t = np.linspace(0, 1, points_per_edge, endpoint=False)
    unit = np.concatenate([np.stack([t, 0 * t], 1), np.stack([1 + 0 * t, t], 1),
                           np.stack([1 - t, 1 + 0 * t], 1), np.stack([0 * t, 1 - t], 1)])
    size = 2 * limit / cells
    corners = np.stack(np.meshgrid(np.arange(cells), np.arange(cells)), -1).reshape(-1, 1, 2)
    return (-limit + size * (corners + unit)).astype(np.float32)


def polygon_areas(polygons):
    """Shoelace formula: the area enclosed by each polygon, [num_polygons, num_vertices, 2] -> [num_polygons]."""
    x, y = polygons[..., 0], polygons[..., 1]
    return 0.5 * np.abs(np.sum(x * np.roll(y, -1, axis=1) - np.roll(x, -1, axis=1) * y, axis=1))


CELLS = 12
polygons = cell_polygons(limit=3, cells=CELLS)
flat = polygons.reshape(-1, 2)
after_one = coupling_forward(flat, f).numpy().reshape(polygons.shape)
after_stack = stack_forward(flat)[-1][1].numpy().reshape(polygons.shape)

area = polygon_areas(polygons)
np.testing.assert_allclose(polygon_areas(after_one), area, rtol=1e-4)
np.testing.assert_allclose(polygon_areas(after_stack), area, rtol=0.01)
print(f"cell area {area[0]:.4f}; after the stack, cell areas range over "
      f"[{polygon_areas(after_stack).min():.4f}, {polygon_areas(after_stack).max():.4f}]")

# %%
row, column = np.divmod(np.arange(CELLS**2), CELLS)
centres = polygons.mean(axis=1)
cell_colors = quadrant_colors(centres)
cell_alpha = np.where((row + column) % 2 == 0, 0.9, 0.35)  # checkerboard

fig, axes = plt.subplots(1, 3, figsize=(12, 4.2))
for ax, shapes, title in ((axes[0], polygons, "grid of equal squares"),
                          (axes[1], after_one, "after coupling 1: sheared, same areas"),
                          (axes[2], after_stack, "after coupling 3: same areas")):
    rgba = [to_rgba(c, alpha) for c, alpha in zip(cell_colors, cell_alpha)]
    ax.add_collection(PolyCollection(shapes, facecolors=rgba, edgecolors="white", linewidths=0.3))
    ax.set_xlim(-6, 6)
    ax.set_ylim(-6, 6)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=10)
fig.tight_layout()
plt.show()

# %% [markdown]
# Volume preservation is a blessing and a limitation. It makes the density bookkeeping
# trivial (there is none: $\log|\det J| = 0$). But it also means that the density at
# every output point equals the base density at the point it came from: the layers can
# move the Gaussian's mass around and bend it, but never make it denser than the
# Gaussian's peak, so they cannot squeeze it into a small region such as the strokes of a
# letter. NICE adds a final per-coordinate scaling for that (notebook 04), and RealNVP's
# affine coupling lets every layer scale (notebook 05).
#
# ## The same layer in flowlib, and how it fits into TensorFlow Probability
#
# `flowlib.bijectors.AdditiveCoupling` is this layer as a TFP bijector. A boolean `mask`
# says which coordinates are kept (`True`, our $x_1$) and which are shifted; in 2-D,
# `half_mask(2)` is `[True, False]`. Given our network, it computes exactly what our
# hand-written functions compute.

# %%
layer = AdditiveCoupling(half_mask(2), network=f, name="coupling_1")

np.testing.assert_allclose(layer.forward(test_points), coupling_forward(test_points, f), atol=1e-6)
np.testing.assert_allclose(layer.inverse(test_points), coupling_inverse(test_points, f), atol=1e-6)
np.testing.assert_array_equal(layer.forward_log_det_jacobian(test_points, event_ndims=1), 0.0)

# %% [markdown]
# Because it is a `tfp.bijectors.Bijector`, it composes with TFP's own bijectors. The swap
# is `tfb.Permute(permutation=[1, 0])`, and `tfb.Chain` strings layers together. One
# thing to remember: `tfb.Chain([a, b, c])` applies `c` first (like the composition
# $a \circ b \circ c$), so we list the layers in reverse. TFP's convention is that
# `forward` goes from the latent (noise) side to the data side, as in our figures.

# %%
forward_order = []
for k, network in enumerate(networks):
    if k > 0:
        forward_order.append(tfb.Permute(permutation=[1, 0], name=f"swap_{k}"))
    forward_order.append(AdditiveCoupling(half_mask(2), network=network, name=f"coupling_{k + 1}"))
chain = tfb.Chain(list(reversed(forward_order)))

np.testing.assert_allclose(chain.forward(test_points), stack_forward(test_points)[-1][1], atol=1e-5)
np.testing.assert_allclose(chain.inverse(chain.forward(test_points)), test_points, atol=1e-4)
np.testing.assert_allclose(chain.forward_log_det_jacobian(test_points, event_ndims=1), 0.0, atol=1e-6)
print(" -> ".join(b.name for b in forward_order))

# %% [markdown]
# From here on the series uses flowlib's layer rather than our two functions, for reasons
# that matter once flows get bigger:
#
# - **It plugs into TFP.** As a bijector it works with `tfb.Chain`, and with
#   `tfd.TransformedDistribution`, which turns a base distribution and a bijector into a
#   distribution with `sample` and `log_prob` (notebook 02). TFP also keeps the
#   $\log|\det J|$ bookkeeping and caches `forward` results so that `inverse` of a sample is
#   free.
# - **Any dimension.** The mask chooses which coordinates are kept, so the same class works
#   for 2-D points and for 784-pixel images.
# - **A sensible start.** Without a `network` argument it builds a small ReLU network (an
#   `MLP`) whose last layer starts at zero, so a new layer is exactly the identity and a new
#   flow is exactly its base distribution, a calm starting point for training.
# - **It checks its inputs** (shapes, masks, the network's output size) and is covered by
#   the package's unit tests.

# %%
fresh = AdditiveCoupling(half_mask(2), hidden_units=(64, 64), seed=0)
np.testing.assert_array_equal(fresh.forward(test_points), test_points)  # starts as the identity

# %% [markdown]
# ## Summary
#
# - Neural networks are not invertible (a ReLU forgets every negative value), yet flows
#   need bijections.
# - An **additive coupling layer** keeps $x_1$ and shifts $x_2$ by $f(x_1)$. It is inverted
#   exactly by subtracting the same shift, because $x_1$ is known on both sides; $f$ can
#   be any network and is never inverted.
# - One layer moves points only vertically. A **swap** (the mirror about $y = x$) between
#   layers lets both coordinates change.
# - The Jacobian is triangular with a unit diagonal, so $\det J = 1$: the layer preserves
#   area, which makes densities easy to track and also limits what the layer can do.
# - `flowlib.bijectors.AdditiveCoupling` is the same layer as a TFP bijector; with
#   `tfb.Permute` and `tfb.Chain` it builds a NICE-style stack.
#
# Next, notebook 02 (*Change of variables*) turns this into probability: how a density
# changes when its samples go through a bijection, and why the determinant is the key.
#
# ## Exercises
#
# Each exercise has a code cell: replace the solution part and run the checks below it.

# %% [markdown]
# ### Exercise 1: keep any coordinates, in any order
#
# In more dimensions a coupling layer may keep any coordinates. Below, `kept` and
# `changed` are lists of column indices that together cover each coordinate once, in an
# order of their own (not necessarily increasing). The network receives the kept
# coordinates `x[:, kept]` *in that order* and returns one shift per changed coordinate,
# in the order of `changed`:
# $y_{\text{kept}} = x_{\text{kept}}$, $y_{\text{changed}} = x_{\text{changed}} +
# \text{network}(x_{\text{kept}})$. `general_forward` is this layer. Write its inverse,
# `general_inverse(y, network, kept, changed)`, for any dimension and any such lists (a
# NumPy or a TensorFlow answer both do); it returns a new array and leaves `y` itself
# unchanged. The checks use random networks, dimensions 3 to 7 and index lists out of
# order, and test the round trip in both directions far out in the tails.

# %%
def random_network(seed, num_in, num_out, hidden_units=16):
    """A random plain-TensorFlow network [n, num_in] -> [n, num_out] (Dense + ReLU + Dense)."""
    rng = np.random.default_rng(seed)
    w1 = tf.constant(rng.normal(size=(num_in, hidden_units)), tf.float32)
    b1 = tf.constant(rng.uniform(-3, 3, size=hidden_units), tf.float32)
    w2 = tf.constant(rng.normal(size=(hidden_units, num_out)) * 2 / np.sqrt(hidden_units), tf.float32)
    return lambda x: tf.matmul(tf.nn.relu(tf.matmul(tf.cast(x, tf.float32), w1) + b1), w2)


def general_forward(x, network, kept, changed):
    """y[:, kept] = x[:, kept]; y[:, changed] = x[:, changed] + network(x[:, kept])."""
    x = np.array(x, np.float32)
    y = x.copy()
    y[:, changed] = x[:, changed] + np.asarray(network(x[:, kept]))
    return y


def general_inverse(y, network, kept, changed):
    ### BEGIN SOLUTION hint: the kept coordinates of y are those of x, so the network sees the same input as in the forward pass
    y = np.array(y, np.float32)
    x = y.copy()
    x[:, changed] = y[:, changed] - np.asarray(network(y[:, kept]))
    return x
    ### END SOLUTION


def check_exercise_1(general_inverse):
    cases = [(3, [2], [1, 0]), (5, [3, 0], [4, 1, 2]), (6, [5, 1, 3], [2, 0, 4]), (7, [6, 2, 4, 0], [5, 1, 3])]
    for seed, (dim, kept, changed) in enumerate(cases):
        rng = np.random.default_rng(100 + seed)
        network = random_network(seed + 40, len(kept), len(changed))
        points = rng.uniform(-10, 10, (257 - 60 * seed, dim)).astype(np.float32)
        y = general_forward(points, network, kept, changed)
        y_before = y.copy()
        back = np.asarray(general_inverse(y, network, kept, changed))
        np.testing.assert_array_equal(y, y_before, err_msg="general_inverse changed y itself: work on a copy")
        assert back.shape == points.shape, f"general_inverse returned shape {back.shape} for points of shape {points.shape}"
        np.testing.assert_allclose(back, points, atol=1e-4,
                                   err_msg=f"inverse(forward(x)) is not x (dimension {dim}, kept {kept}, changed {changed})")
        again = general_forward(np.asarray(general_inverse(points.copy(), network, kept, changed)), network, kept, changed)
        np.testing.assert_allclose(again, points, atol=1e-4,
                                   err_msg=f"forward(inverse(y)) is not y (dimension {dim}, kept {kept}, changed {changed})")
    print("Exercise 1: correct")


check_exercise_1(general_inverse)

# %% [markdown]
# ### Exercise 2: a stack without swaps is one layer
#
# What if we apply couplings (`coupling_forward`) one after the other *without* the swaps
# in between? Follow a point through the layers. Then write `merged_network(networks)`: given
# a list of networks ($\mathbb{R}\to\mathbb{R}$, plain callables `[n, 1] -> [n, 1]`, like
# those of `make_network`), it returns **one** network such that a single coupling with it,
# `coupling_forward(x, merged_network(networks))`, does exactly what the couplings with
# `networks[0]`, `networks[1]`, ... applied in turn do. The checks try lists of one to four
# random networks. (Question to think about: what does your answer say about the value of
# depth without permutations?)

# %%
def merged_network(networks):
    ### BEGIN SOLUTION hint: which half of x do the layers leave alone, and what do they add to the other half?
    def merged(x1):
        return tf.add_n([network(x1) for network in networks])

    return merged
    ### END SOLUTION


def check_exercise_2(merged_network):
    for seed, count in enumerate([1, 2, 4]):
        some_networks = [make_network(seed=200 + 10 * seed + k, hidden_units=8 + 4 * k) for k in range(count)]
        points = np.random.default_rng(seed).normal(2.0, 3.0, size=(300 - 90 * seed, 2)).astype(np.float32)
        stacked = points
        for network in some_networks:  # the stack, layer by layer
            stacked = coupling_forward(stacked, network)
        one_layer = coupling_forward(points, merged_network(some_networks))
        np.testing.assert_allclose(one_layer, stacked, atol=1e-4,
                                   err_msg=f"one coupling with the merged network differs from the stack of {count}")
    print("Exercise 2: correct")


check_exercise_2(merged_network)

# %% [markdown]
# ### Exercise 3: the Jacobian of a coupling, without autodiff
#
# The shift does not have to come from a neural network: any function of $x_1$ will do,
# for example one that goes up and down many times, like $h(x_1) = a\sin(c\,x_1) +
# b\,x_1^2$. Write `coupling_jacobian(x, dh)`: the Jacobian of the coupling $y_1 = x_1$,
# $y_2 = x_2 + h(x_1)$ at every point of `x` (`[n, 2]`), as an array `[n, 2, 2]` with
# `J[i, r, c]` $= \partial y_r / \partial x_c$ (rows: outputs, columns: inputs, as in
# `jacobians` above). You are given only the derivative `dh` of the shift (a NumPy
# function of an array of $x_1$ values), not $h$ itself. The checks compare with autodiff
# for several shifts and then check that $\det J = 1$.

# %%
def coupling_jacobian(x, dh):
    ### BEGIN SOLUTION hint: differentiate y1 = x1 and y2 = x2 + h(x1) by x1 and by x2; only one entry depends on the point
    x = np.asarray(x)
    J = np.zeros((len(x), 2, 2))
    J[:, 0, 0] = 1.0
    J[:, 1, 1] = 1.0
    J[:, 1, 0] = dh(x[:, 0])
    return J
    ### END SOLUTION


def check_exercise_3(coupling_jacobian):
    for seed, (a, b, c) in enumerate([(1.5, 0.3, 2.0), (-0.8, 0.05, 3.5), (2.2, -0.4, 0.7)]):
        def shift(x1, a=a, b=b, c=c):
            return a * tf.sin(c * x1) + b * x1**2

        def dh(x1, a=a, b=b, c=c):
            return a * c * np.cos(c * np.asarray(x1)) + 2 * b * np.asarray(x1)

        points = np.random.default_rng(300 + seed).uniform(-6, 4, (120 - 50 * seed, 2)).astype(np.float32)
        J = np.asarray(coupling_jacobian(points, dh))
        assert J.shape == (len(points), 2, 2), f"expected shape {(len(points), 2, 2)}, got {J.shape}"
        expected = jacobians(lambda x: tf.concat([x[:, :1], x[:, 1:] + shift(x[:, :1])], axis=1), points)
        np.testing.assert_allclose(J, expected, atol=1e-3, rtol=1e-4,
                                   err_msg=f"the Jacobian differs from autodiff (shift {a} sin({c} x1) + {b} x1^2)")
        np.testing.assert_allclose(np.linalg.det(J), 1.0, atol=1e-6)
    print("Exercise 3: correct")


check_exercise_3(coupling_jacobian)
