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
# # 03 · A target distribution from a picture
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/normalizing-flows-tf2/flowlib/blob/main/notebooks/03_target_from_a_picture.ipynb)
#
# **After this notebook you can** turn a word or a drawing into a 2-D probability
# distribution that you can sample from and whose density you know exactly; compute its
# entropy and explain why it is the lowest negative log-likelihood any model can reach;
# and score a model by its *gap* to that limit, an estimate of $\mathrm{KL}(p\,\|\,q)$.
# Two Gaussian baselines show how far from the limit a simple model stays.
#
# **Prerequisites:** [02 · Change of variables](02_change_of_variables.ipynb).

# %%
# Setup. In Colab: install flowlib at the series' fixed ref, keeping Colab's TensorFlow.
import sys

if "google.colab" in sys.modules:
    get_ipython().run_line_magic(
        "pip", 'install --quiet --no-deps "git+https://github.com/normalizing-flows-tf2/flowlib@v0.1.0"')

import flowlib

flowlib.config.check_environment()

# %%
from unittest import mock

import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from flowlib import data, metrics, plotting

tfd = tfp.distributions

# %% [markdown]
# ## Why a picture?
#
# The reference post (Brad Saund's TF2 port of Eric Jang's 2018 tutorial) trains a flow
# that turns Gaussian noise in the plane into points that spell the author's name. We do
# the same with a word, for two reasons.
#
# * **We can see everything.** In two dimensions every sample, every layer and every
#   density is a picture; mistakes are visible at a glance.
# * **We know the answer.** The target is *uniform on the ink*: every dark pixel is
#   equally likely. Its density and its entropy are known exactly, so we can say not
#   only which of two models is better but how far each one is from perfect. With real
#   data (images, sound) that is never possible.
#
# This notebook builds that target. First by hand, to see that there is no magic in it,
# then with `flowlib.data.PictureDistribution`, which the rest of the series uses.

# %% [markdown]
# ## 1. From text to ink, by hand
#
# Three steps turn a word into a set of pixels:
#
# 1. **Render** the text with matplotlib into an array of grey levels (0 = black ink,
#    1 = white paper). We draw on an off-screen canvas in a font that ships with
#    matplotlib, so the result is the same on every machine.
# 2. **Threshold**: a pixel is ink when it is darker than 0.5. The renderer smooths the
#    edges of the letters with grey pixels; the threshold decides on which side they fall.
# 3. **Crop** to the bounding box of the ink, so the word fills the frame.

# %%
def render(text, font_size=72):
    """Grey levels [rows, cols] of `text` in bold DejaVu Sans: 0.0 = ink, 1.0 = paper."""
    width_px = int(font_size * (0.9 * len(text) + 2))   # whole pixels, with room to spare
    height_px = int(font_size * 2.5)
    figure = Figure(figsize=(width_px / 72, height_px / 72), dpi=72, facecolor="white")
    canvas = FigureCanvasAgg(figure)  # an off-screen canvas: nothing is displayed
    figure.text(0.5, 0.5, text, ha="center", va="center", fontsize=font_size,
                family="DejaVu Sans", weight="bold", color="black")
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba(), dtype=np.float64) / 255.0
    return rgba[..., :3].mean(axis=-1)


grey = render("Flow")
dark = grey < 0.5                                   # step 2: threshold
rows = np.flatnonzero(dark.any(axis=1))             # step 3: crop to the ink's bounding box
cols = np.flatnonzero(dark.any(axis=0))
grey = grey[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]
ink = dark[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]
print(f"picture: {ink.shape[0]} rows x {ink.shape[1]} columns, {ink.sum():,} ink pixels "
      f"({ink.mean():.0%} of the box)")

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 2.6), gridspec_kw={"width_ratios": [3, 3, 1.2]})
axes[0].imshow(grey, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
axes[0].set_title("1. rendered grey levels", fontsize=10)
axes[1].imshow(ink, cmap="Greys", interpolation="nearest")
axes[1].set_title("2.+3. ink = grey < 0.5, cropped", fontsize=10)
top_row, left_col, zoom = 28, 136, 16  # a patch on the slanted edge of the "w"
axes[0].add_patch(plt.Rectangle((left_col - 0.5, top_row - 0.5), zoom, zoom, fill=False,
                                edgecolor=plotting.QUADRANT_COLORS[0], linewidth=1.5))
patch = grey[top_row: top_row + zoom, left_col: left_col + zoom]
axes[2].imshow(patch, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
edge = (patch > 0.02) & (patch < 0.98)  # the grey pixels the renderer put on the edge
for keep, marker, label in [(patch < 0.5, "o", "counts as ink"), (patch >= 0.5, "x", "counts as paper")]:
    r, c = np.nonzero(edge & keep)
    axes[2].plot(c, r, marker, ms=4, ls="none", color=plotting.QUADRANT_COLORS[0], label=label)
axes[2].legend(loc="upper center", bbox_to_anchor=(0.5, -0.02), fontsize=8, frameon=False, ncol=1)
axes[2].set_title("zoom on the box: grey\nedge pixels, thresholded", fontsize=10)
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 2. Sampling uniformly on the ink
#
# Next we place the picture in the plane: the frame is 6 units wide and centred on the
# origin, pixels are square, and $y$ points up (row 0 of the array is the *top* of the
# picture). Six units is the width that holds nearly all of a standard normal
# ($\pm 3$ standard deviations), so the flows of the next notebooks start from a base
# distribution of about the right size.
#
# A uniform sample on the ink takes two steps:
#
# 1. pick one ink pixel, every ink pixel with the same probability $1/N$;
# 2. pick a point uniformly inside that pixel (density $1/\delta^2$ for pixel side $\delta$).
#
# Because all pixels have the same area, the result is exactly uniform on the union
# $A$ of the ink pixels: for $x$ in $A$,
# $$p(x) = \frac{1}{N}\cdot\frac{1}{\delta^2} = \frac{1}{|A|}, \qquad |A| = N\delta^2,$$
# and $p(x) = 0$ off the ink.

# %%
width = 6.0
pixel_size = width / ink.shape[1]
left, top = -width / 2, ink.shape[0] * pixel_size / 2


def sample_ink(num_samples, seed):
    rng = np.random.default_rng(seed)
    ink_rows, ink_cols = np.nonzero(ink)            # one entry per ink pixel
    pick = rng.integers(len(ink_rows), size=num_samples)   # 1. a pixel, uniformly
    within = rng.random((num_samples, 2))                  # 2. a point inside it
    x = left + (ink_cols[pick] + within[:, 0]) * pixel_size
    y = top - (ink_rows[pick] + within[:, 1]) * pixel_size  # rows grow downwards, y upwards
    return np.stack([x, y], axis=-1).astype(np.float32)


points_by_hand = sample_ink(20_000, seed=0)
print(f"pixel side {pixel_size:.4f} units; ink area |A| = {ink.sum() * pixel_size**2:.4f} square units")

# %% [markdown]
# `flowlib.data.PictureDistribution.from_text` does exactly these steps (open
# `flowlib/data.py`: it is plain numpy). It finds the same ink, uses the same frame and
# draws the same points for the same seed; from here on we use it.

# %%
target = data.PictureDistribution.from_text("Flow")

np.testing.assert_array_equal(target.ink, ink)
np.testing.assert_allclose(target.pixel_size, pixel_size)
np.testing.assert_allclose(target.sample(20_000, seed=0), points_by_hand, atol=1e-6)
print(f"{target.name!r}: extent (left, right, bottom, top) = {np.round(target.extent, 3)}, "
      f"ink area {target.ink_area:.4f}")

# %%
num_show = 30_000
fig, axes = plt.subplots(1, 2, figsize=(13, 2.8))
axes[0].imshow(target.ink, extent=target.extent, cmap="Greys", interpolation="nearest")
axes[0].set_title(f"the ink of “{target.name}” in the plane ({target.ink.sum():,} pixels)", fontsize=10)
plotting.plot_points(target.sample(num_show, seed=1), ax=axes[1], limit=None, size=0.6,
                     title=f"{num_show:,} samples, uniform on the ink")
for ax in axes:
    ax.set_xlim(-3.2, 3.2)
    ax.set_ylim(-1.1, 1.1)
    ax.set_aspect("equal")
axes[0].set_xticks([-3, 0, 3])
axes[0].set_yticks([-0.93, 0, 0.93])
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 3. Any picture: a target from a numpy drawing
#
# `PictureDistribution.from_image` takes the ink from an image instead of text: a file
# path, or an array of grey levels `[rows, cols]` (floats in $[0, 1]$ or integers in
# $[0, 255]$), RGB or RGBA (transparent pixels count as paper), or a boolean mask with
# `True` for ink. Here are two shapes drawn with numpy, nothing downloaded: a heart
# (the region $(u^2+v^2-1)^3 \le u^2 v^3$) as grey levels, and a ring as a boolean mask.
# The same frame applies: each shape is cropped to its ink and scaled to 6 units wide.

# %%
size = 241
u, v = np.meshgrid(np.linspace(-1.5, 1.5, size), np.linspace(1.5, -1.5, size))  # v points up
heart_grey = np.where((u**2 + v**2 - 1) ** 3 - u**2 * v**3 <= 0, 0.0, 1.0)       # 0 = ink
inner, outer = 0.6, 1.0
radius = np.hypot(u, v)
ring_mask = (radius >= inner) & (radius <= outer)                                  # True = ink

heart = data.PictureDistribution.from_image(heart_grey, name="heart")
ring = data.PictureDistribution.from_image(ring_mask, name="ring")

# The ring is 6 units wide, so its radii are 3 and 3 * 0.6 units: its area is known exactly.
exact_ring_area = np.pi * 3.0**2 * (1 - inner**2)
print(f"ring area: {ring.ink_area:.3f} from the pixels, {exact_ring_area:.3f} exactly")
np.testing.assert_allclose(ring.ink_area, exact_ring_area, rtol=0.02)

# %%
fig, axes = plt.subplots(1, 2, figsize=(8, 4))
for shape, ax in zip([heart, ring], axes):
    plotting.plot_points(shape.sample(num_show, seed=0), ax=ax, limit=3.5, size=0.6,
                         title=f"{shape.name}: |A| = {shape.ink_area:.2f}, H = log|A| = {shape.entropy():.3f}")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 4. The exact density and its entropy
#
# The density of the target is $1/|A|$ on the ink and $0$ elsewhere
# (`target.log_prob(points)` returns $-\log|A|$ or $-\infty$). Its differential entropy
# is
# $$H[p] = -\int p(x)\log p(x)\,dx = -\int_A \frac{1}{|A|}\log\frac{1}{|A|}\,dx = \log|A|,$$
# in nats (natural logarithms). A bigger ink area means more uncertainty about where the
# next point falls, hence more entropy. Note that a differential entropy can be negative:
# any shape with $|A| < 1$ square unit has $H < 0$.
#
# Three numerical checks of these statements, each computed differently:
#
# * **Normalisation**: on a fine grid that is *not* aligned with the pixels, the sum of
#   $p$ times the cell area is 1.
# * **Monte Carlo over samples**: the average of $-\log p$ over samples of $p$ is
#   $\log|A|$ (every sample lies on the ink, where $-\log p = \log|A|$).
# * **Monte Carlo over the frame** ("hit or miss"): throw points uniformly on the
#   rectangle around the word; the fraction that lands on ink, times the rectangle's
#   area, estimates $|A|$ without counting pixels.

# %%
left, right, bottom, top = target.extent
resolution = (1501, 601)
xs = np.linspace(left - 0.5, right + 0.5, resolution[0])
ys = np.linspace(bottom - 0.5, top + 0.5, resolution[1])
grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
cell_area = (xs[1] - xs[0]) * (ys[1] - ys[0])
integral = np.sum(np.exp(target.log_prob(grid))) * cell_area
print(f"grid integral of p: {integral:.4f}")
np.testing.assert_allclose(integral, 1.0, atol=0.01)

samples = target.sample(100_000, seed=2)
monte_carlo_entropy = np.mean(-target.log_prob(samples))
print(f"mean of -log p over samples: {monte_carlo_entropy:.4f};  log|A| = {target.entropy():.4f}")
np.testing.assert_allclose(monte_carlo_entropy, target.entropy(), rtol=1e-9)

num_throws = 400_000
rng = np.random.default_rng(3)
throws = np.stack([rng.uniform(left, right, num_throws), rng.uniform(bottom, top, num_throws)], axis=-1)
hit_rate = np.mean(np.isfinite(target.log_prob(throws)))
area_estimate = hit_rate * (right - left) * (top - bottom)
area_error = np.sqrt(hit_rate * (1 - hit_rate) / num_throws) * (right - left) * (top - bottom)
print(f"hit or miss: |A| ≈ {area_estimate:.3f} ± {area_error:.3f}  (pixel count: {target.ink_area:.3f})")
assert abs(area_estimate - target.ink_area) < 4 * area_error

# %% [markdown]
# ## 5. Why the entropy is the best score any model can reach
#
# We train a model density $q$ by minimising its negative log-likelihood (NLL) on
# samples of $p$, and we judge it by the same number on *held-out* samples it never saw.
# With many samples that average is the expectation $\mathbb{E}_{x\sim p}[-\log q(x)]$,
# the *cross-entropy* of $q$ relative to $p$. Add and subtract $\log p(x)$ inside it:
# $$
# \mathbb{E}_p[-\log q(x)]
# = \mathbb{E}_p[-\log p(x)] + \mathbb{E}_p\!\left[\log\frac{p(x)}{q(x)}\right]
# = H[p] + \mathrm{KL}(p\,\|\,q).
# $$
# The Kullback–Leibler divergence is never negative, by Jensen's inequality applied to
# the concave logarithm:
# $$-\mathrm{KL}(p\,\|\,q) = \mathbb{E}_p\!\left[\log\frac{q(x)}{p(x)}\right]
# \le \log \mathbb{E}_p\!\left[\frac{q(x)}{p(x)}\right] = \log\int_{p>0} q(x)\,dx \le \log 1 = 0,$$
# with equality only when $q = p$. Hence:
#
# * **No normalised model can beat $H[p]$ on average.** The held-out NLL of a perfect
#   model is $\log|A| \approx 1.59$ nats for "Flow"; every real model sits above it. A
#   held-out NLL clearly *below* $H[p]$ means a bug (for example a density that does not
#   integrate to 1).
# * **The gap is the distance to perfection.** $\text{held-out NLL} - H[p]$ estimates
#   $\mathrm{KL}(p\,\|\,q)$, in nats per point. It comes with sampling noise (the standard
#   error of a mean), so small negative values can occur for very good models.
# * **The gap does not depend on units.** Stretch the plane by a factor 2 and every NLL
#   and the entropy grow by $\log 4$, but KL, a property of the two distributions
#   together, stays the same. The NLL alone depends on the frame; the gap does not.
#
# This is why the series always reports three numbers: held-out NLL, entropy bound, gap.
# `flowlib.metrics.evaluate` computes them; let us first compute them by hand.

# %% [markdown]
# ## 6. Two baselines: how far is a Gaussian from the word?
#
# * **Standard normal**, $q = \mathcal{N}(0, I)$: the base distribution of every flow in
#   this series, i.e. a flow before training.
# * **Fitted Gaussian**, $q = \mathcal{N}(\hat\mu, \hat\Sigma)$ with the mean and
#   covariance of the training points (moment matching, which is also the maximum-likelihood
#   fit). Matching the moments minimises $\mathrm{KL}(p\,\|\,q)$ over all Gaussians, so no
#   Gaussian can have a smaller gap; its cross-entropy has the closed form
#   $\tfrac12 \log\det(2\pi e\,\hat\Sigma)$, the entropy of that Gaussian, which we check too.
#
# The training and held-out sets are separate draws (different seeds).

# %%
x_train = target.sample(100_000, seed=0)
x_test = target.sample(50_000, seed=1)

mean = x_train.mean(axis=0)
covariance = np.cov(x_train, rowvar=False)
standard_normal = tfd.MultivariateNormalDiag(loc=tf.zeros(2), scale_diag=tf.ones(2))
fitted_gaussian = tfd.MultivariateNormalTriL(loc=mean, scale_tril=np.linalg.cholesky(covariance).astype(np.float32))


def score(model, points, entropy):
    """Held-out NLL, gap to the entropy and the standard error of the mean, by hand."""
    minus_log_q = -model.log_prob(points).numpy().astype(np.float64)
    nll = minus_log_q.mean()
    return nll, nll - entropy, minus_log_q.std(ddof=1) / np.sqrt(len(points))


H = target.entropy()
print(f"{'model':<18}{'held-out NLL':>14}{'entropy H':>12}{'gap (KL)':>11}")
for name, model in [("standard normal", standard_normal), ("fitted Gaussian", fitted_gaussian)]:
    nll, gap, error = score(model, x_test, H)
    print(f"{name:<18}{nll:>14.3f}{H:>12.3f}{gap:>11.3f}  ± {error:.3f} nats")
    # flowlib.metrics.evaluate computes the same three numbers (it accepts any TFP distribution)
    evaluation = metrics.evaluate(model, target, x_test)
    np.testing.assert_allclose([evaluation.nll, evaluation.gap, evaluation.standard_error],
                               [nll, gap, error], rtol=1e-5)
    assert gap > 0

# The cross-entropy of the fitted Gaussian equals the entropy of that Gaussian
gaussian_entropy = 0.5 * np.log(np.linalg.det(2 * np.pi * np.e * covariance))
np.testing.assert_allclose(metrics.evaluate(fitted_gaussian, target, x_test).nll, gaussian_entropy, atol=0.02)
gap_fitted = metrics.evaluate(fitted_gaussian, target, x_test).gap
gap_standard = metrics.evaluate(standard_normal, target, x_test).gap
assert gap_fitted < gap_standard

# %% [markdown]
# The fitted Gaussian is about twice as close as the standard normal, yet still about
# one nat per point from the limit: a Gaussian puts an ellipse of probability over the
# word and wastes most of it on the paper between and around the letters. The flows of
# the next notebooks have to close that gap. A picture of the three densities on the
# same frame:

# %%
frame = (left - 0.4, right + 0.4, bottom - 0.6, top + 0.6)
ink_centres_x = left + (np.arange(target.ink.shape[1]) + 0.5) * target.pixel_size  # outline of the word
ink_centres_y = top - (np.arange(target.ink.shape[0]) + 0.5) * target.pixel_size
fig, axes = plt.subplots(1, 3, figsize=(15, 2.4))
axes[0].imshow(target.ink, extent=target.extent, cmap="Greys", interpolation="nearest")
axes[0].set_title(f"target: p = 1/|A| on the ink (H = {H:.2f} nats)", fontsize=10)
for ax, (name, model, gap) in zip(axes[1:], [("standard normal", standard_normal, gap_standard),
                                             ("fitted Gaussian", fitted_gaussian, gap_fitted)]):
    _, _, density = plotting.density_grid(model, frame, resolution=300)
    ax.imshow(density, extent=frame, origin="lower", cmap="magma", aspect="equal")
    ax.contour(ink_centres_x, ink_centres_y, target.ink, levels=[0.5], colors="white", linewidths=0.5)
    ax.set_title(f"{name}: gap {gap:.2f} nats", fontsize=10)
for ax in axes:
    ax.set_xlim(frame[0], frame[1])
    ax.set_ylim(frame[2], frame[3])
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
plt.show()

# %% [markdown]
# The gap does not depend on the units: the same word drawn 3 units wide instead of 6
# has every NLL and the entropy lower by $\log 4$, but the same gap (up to sampling noise).

# %%
small = data.PictureDistribution.from_text("Flow", width=3.0)
small_train, small_test = x_train / 2, x_test / 2   # the same points, in the smaller frame
small_gaussian = tfd.MultivariateNormalTriL(
    loc=small_train.mean(axis=0), scale_tril=np.linalg.cholesky(np.cov(small_train, rowvar=False)).astype(np.float32))
small_evaluation = metrics.evaluate(small_gaussian, small, small_test)
print(f"width 3: {small_evaluation}")
print(f"width 6: {metrics.evaluate(fitted_gaussian, target, x_test)}")
np.testing.assert_allclose(small.entropy(), H - np.log(4), atol=1e-9)
np.testing.assert_allclose(small_evaluation.gap, gap_fitted, atol=1e-3)

# %% [markdown]
# ## 7. Clear errors for bad pictures
#
# A target with no ink (or nothing but ink) has no shape to learn. flowlib refuses it
# with a `ValueError` that says what to check, before TensorFlow ever sees the data:

# %%
bad_inputs = {
    "empty text": lambda: data.PictureDistribution.from_text(""),
    "white-space text": lambda: data.PictureDistribution.from_text("   "),
    "blank image": lambda: data.PictureDistribution.from_image(np.ones((32, 32))),
    "all-black image": lambda: data.PictureDistribution.from_image(np.zeros((32, 32))),
}
for what, make in bad_inputs.items():
    try:
        make()
    except ValueError as error:
        print(f"{what:>17}: ValueError: {error}")
    else:
        raise AssertionError(f"{what} was accepted, but should raise a ValueError")

# %% [markdown]
# ## Summary
#
# * A word becomes a target distribution in three steps: render it to grey levels,
#   threshold the dark pixels, crop; then sample an ink pixel uniformly and a uniform
#   point inside it. `PictureDistribution.from_text` / `.from_image` do exactly this, in a
#   fixed frame 6 units wide.
# * The density is $1/|A|$ on the ink, so the entropy is $H[p] = \log|A|$; we checked it by a
#   grid integral and two Monte Carlo estimates.
# * $\mathbb{E}_p[-\log q] = H[p] + \mathrm{KL}(p\,\|\,q) \ge H[p]$: the entropy is the best
#   held-out NLL possible, and held-out NLL minus entropy (the gap) estimates the KL
#   divergence, independently of the units.
# * A standard normal is about 2 nats from the limit on "Flow", the best Gaussian about
#   1 nat. The next notebook trains the first flow and measures its gap the same way.
#
# Next: [04 · NICE: stacking additive couplings](04_nice.ipynb).

# %% [markdown]
# ## Exercises
#
# Each exercise has one code cell: fill in the part between the solution markers, then
# run the cell; the checks below the markers must pass.

# %% [markdown]
# ### Exercise 1: the entropy of your own word, by Monte Carlo
#
# Write `entropy_by_hit_or_miss(target, num_points, seed)`: it estimates
# $H = \log|A|$ *without* counting ink pixels, by throwing `num_points` points uniformly
# on the rectangle `target.extent` and using the fraction that lands on the ink (a point
# is on the ink where `target.log_prob` is finite). Then try it on a word of your own.

# %%
def entropy_by_hit_or_miss(target, num_points, seed=0):
    ### BEGIN SOLUTION hint: |A| ≈ (fraction of uniform points on the ink) × (area of the rectangle); return its log
    rng = np.random.default_rng(seed)
    left, right, bottom, top = target.extent
    points = np.stack([rng.uniform(left, right, num_points), rng.uniform(bottom, top, num_points)], axis=-1)
    fraction_on_ink = np.mean(np.isfinite(target.log_prob(points)))
    return float(np.log(fraction_on_ink * (right - left) * (top - bottom)))
    ### END SOLUTION


my_word = data.PictureDistribution.from_text("Hello")  # put your own word here
num_points = 400_000
estimate = entropy_by_hit_or_miss(my_word, num_points, seed=0)
print(f"{my_word.name!r}: Monte Carlo H = {estimate:.4f}, log|A| = {my_word.entropy():.4f}")
np.testing.assert_allclose(estimate, my_word.entropy(), atol=0.02)
np.testing.assert_allclose(entropy_by_hit_or_miss(ring, num_points, seed=1), np.log(exact_ring_area), atol=0.03)
assert entropy_by_hit_or_miss(my_word, 1000, seed=1) != entropy_by_hit_or_miss(my_word, 1000, seed=2), \
    "the estimate should depend on the random points"

# %% [markdown]
# ### Exercise 2: a target from your own drawing
#
# Draw a *square frame* with numpy: a boolean array of 120 × 120 pixels, all ink except
# a 60 × 60 hole in the middle. Make a `PictureDistribution` of it (its ink area must be
# $36 - 9 = 27$ square units: why?) and call it `square_frame`. Then write
# `on_ink(target, points)`, which returns for each point whether it lies on an ink pixel,
# using only `target.ink`, `target.extent` and `target.pixel_size` (not `log_prob`).
# The checks confirm that all
# samples lie on the ink, that the hole is empty, and that your function agrees with
# `log_prob` everywhere.

# %%
### BEGIN SOLUTION hint: a 60 x 60 hole centred in 120 x 120 pixels; a point's pixel column counts pixel widths from the left edge, its row from the top edge
drawing = np.ones((120, 120), dtype=bool)
drawing[30:90, 30:90] = False
square_frame = data.PictureDistribution.from_image(drawing, name="square frame")


def on_ink(target, points):
    left, _, _, top = target.extent
    col = np.floor((points[:, 0] - left) / target.pixel_size).astype(int)
    row = np.floor((top - points[:, 1]) / target.pixel_size).astype(int)
    rows, cols = target.ink.shape
    inside = (col >= 0) & (col < cols) & (row >= 0) & (row < rows)
    result = np.zeros(len(points), dtype=bool)
    result[inside] = target.ink[row[inside], col[inside]]
    return result
### END SOLUTION


np.testing.assert_allclose(square_frame.ink_area, 27.0, rtol=1e-9)
samples = square_frame.sample(10_000, seed=0)
probe = np.random.default_rng(0).uniform(-4, 4, size=(20_000, 2))
expected = np.isfinite(square_frame.log_prob(probe))


def refuse(*args, **kwargs):
    raise AssertionError("read the pixels yourself: log_prob is off limits in on_ink")


with mock.patch.object(data.PictureDistribution, "log_prob", refuse):
    assert on_ink(square_frame, samples).all(), "every sample must lie on the ink"
    assert not on_ink(square_frame, np.array([[0.0, 0.0], [1.0, -1.0], [5.0, 0.0]])).any(), "hole and outside are paper"
    np.testing.assert_array_equal(on_ink(square_frame, probe), expected)
plotting.plot_points(square_frame.sample(5_000, seed=1), limit=3.5, title="square frame")
plt.show()

# %% [markdown]
# ### Exercise 3: the gap of a fitted Gaussian
#
# Write `gaussian_gap(target, train_points, test_points)`: fit a Gaussian to the
# training points by moment matching, and return its held-out NLL on the test points
# minus the target's entropy, in nats. The checks compare it with the closed form
# $\tfrac12\log\det(2\pi e\hat\Sigma) - H$, with the standard normal, and with the same
# points in a frame of another size (the gap must not change). Which of the shapes in
# this notebook (word, heart, ring) do you expect to be closest to a Gaussian? Check.

# %%
def gaussian_gap(target, train_points, test_points):
    ### BEGIN SOLUTION hint: moment matching means the training points' mean and covariance; MultivariateNormalTriL wants a Cholesky factor
    mean = train_points.mean(axis=0)
    covariance = np.cov(train_points, rowvar=False)
    gaussian = tfd.MultivariateNormalTriL(loc=mean, scale_tril=np.linalg.cholesky(covariance).astype(np.float32))
    return float(np.mean(-gaussian.log_prob(test_points).numpy()) - target.entropy())
    ### END SOLUTION


word = data.PictureDistribution.from_text("Gauss")
train_points, test_points = word.sample(20_000, seed=0), word.sample(10_000, seed=1)
gap = gaussian_gap(word, train_points, test_points)
closed_form = 0.5 * np.log(np.linalg.det(2 * np.pi * np.e * np.cov(train_points, rowvar=False))) - word.entropy()
print(f"fitted Gaussian on {word.name!r}: gap {gap:.3f} nats (closed form {closed_form:.3f})")
np.testing.assert_allclose(gap, closed_form, atol=0.03)
assert 0 < gap < metrics.evaluate(standard_normal, word, test_points).gap
wide = data.PictureDistribution.from_text("Gauss", width=12.0)
np.testing.assert_allclose(gaussian_gap(wide, 2 * train_points, 2 * test_points), gap, atol=1e-3)
for shape in (heart, ring):
    print(f"{shape.name}: gap {gaussian_gap(shape, shape.sample(20_000, seed=0), shape.sample(10_000, seed=1)):.3f} nats")
