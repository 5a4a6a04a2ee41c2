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
#   model is $\log|A|$ (for "Flow", the value computed in section 4); every real model
#   sits above it. A
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
print(f"the fitted Gaussian's gap is {gap_standard / gap_fitted:.1f} times smaller than the standard normal's")

# %% [markdown]
# The fitted Gaussian is closer than the standard normal, by the factor printed above,
# yet still far from the limit: a Gaussian puts an ellipse of probability over the
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
# * Both Gaussian baselines stay far from the limit on "Flow" (the table of section 6),
#   the fitted one less far. The next notebook trains the first flow and measures its gap
#   the same way.
#
# Next: [04 · NICE: stacking additive couplings](04_nice.ipynb).

# %% [markdown]
# ## Exercises
#
# Each exercise has one code cell: fill in the part between the solution markers, then
# run the cell; the checks below the markers must pass.

# %% [markdown]
# ### Exercise 1: the entropy of a region known only point by point
#
# Write `entropy_by_hit_or_miss(is_ink, extent, num_points, seed)`. It estimates the
# entropy $H = \log|A|$ of the uniform distribution on a region $A$ that you know only
# through a membership test: `is_ink(points)` takes points of shape `[n, 2]` and returns
# one boolean per point, `True` on $A$. The rectangle `extent = (left, right, bottom, top)`
# contains $A$. Throw exactly `num_points` points uniformly on the rectangle, drawn from
# `np.random.default_rng(seed)` (the same seed gives the same estimate), and return the
# log of the area estimate. Then try it on a word of your own: its membership test is
# "`target.log_prob` is finite". The checks use your word, the paper around it (in the
# same rectangle), an ellipse and a triangle in off-centre, non-square rectangles, and
# look at the points you throw.

# %%
def entropy_by_hit_or_miss(is_ink, extent, num_points, seed=0):
    ### BEGIN SOLUTION hint: |A| ≈ (fraction of the uniform points that is_ink accepts) × (area of the rectangle); return its log
    rng = np.random.default_rng(seed)
    left, right, bottom, top = extent
    points = np.stack([rng.uniform(left, right, num_points), rng.uniform(bottom, top, num_points)], axis=-1)
    fraction_in_a = np.mean(is_ink(points))
    return float(np.log(fraction_in_a * (right - left) * (top - bottom)))
    ### END SOLUTION


my_word = data.PictureDistribution.from_text("Hello")  # put your own word here
estimate = entropy_by_hit_or_miss(lambda points: np.isfinite(my_word.log_prob(points)), my_word.extent, 400_000)
print(f"{my_word.name!r}: Monte Carlo H = {estimate:.4f}, log|A| = {my_word.entropy():.4f}")


def check_exercise_1(entropy_by_hit_or_miss, word):
    def in_ellipse(p):   # centre (1.7, -0.6), half-axes 2.1 and 0.45
        return ((p[:, 0] - 1.7) / 2.1) ** 2 + ((p[:, 1] + 0.6) / 0.45) ** 2 <= 1

    corners = np.array([[-2.5, -1.0], [3.0, -0.2], [0.5, 2.2]])

    def side(a, b, q):   # > 0 when q is to the left of the line from a to b
        return (b[0] - a[0]) * (q[..., 1] - a[1]) - (b[1] - a[1]) * (q[..., 0] - a[0])

    def in_triangle(p):  # on the same side of each edge as the opposite corner
        inside = np.ones(len(p), dtype=bool)
        for k in range(3):
            a, b, c = corners[k], corners[(k + 1) % 3], corners[(k + 2) % 3]
            inside &= side(a, b, p) * side(a, b, c) >= 0
        return inside

    (x0, y0), (x1, y1), (x2, y2) = corners
    cases = [  # name, membership test, rectangle, exact entropy, points
        (word.name, lambda p: np.isfinite(word.log_prob(p)), word.extent, word.entropy(), 400_000),
        (f"the paper around {word.name!r}", lambda p: ~np.isfinite(word.log_prob(p)), word.extent,
         np.log((word.extent[1] - word.extent[0]) * (word.extent[3] - word.extent[2]) - word.ink_area), 150_000),
        ("ellipse", in_ellipse, (-0.9, 4.4, -1.3, 0.05), np.log(np.pi * 2.1 * 0.45), 200_000),
        ("triangle", in_triangle, (-3.1, 3.4, -1.4, 2.6),
         np.log(0.5 * abs((x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0))), 200_000),
    ]
    for name, is_in, extent, exact, n in cases:
        thrown = []

        def is_ink(points, is_in=is_in, thrown=thrown):
            points = np.asarray(points, dtype=np.float64)
            assert points.ndim == 2 and points.shape[1] == 2, f"is_ink takes points of shape [n, 2], got {points.shape}"
            thrown.append(points)
            return is_in(points)

        estimate = entropy_by_hit_or_miss(is_ink, extent, n, seed=0)
        assert thrown, "entropy_by_hit_or_miss must ask is_ink about the points it throws"
        points = np.concatenate(thrown)
        left, right, bottom, top = extent
        assert len(points) == n, f"{name}: is_ink was asked about {len(points)} points, not num_points = {n}"
        assert np.all((points[:, 0] >= left) & (points[:, 0] <= right) & (points[:, 1] >= bottom) & (points[:, 1] <= top)), \
            f"{name}: some points fall outside the rectangle {extent}"
        for axis, low, high in [(0, left, right), (1, bottom, top)]:
            share = np.mean(points[:, axis] < low + 0.3 * (high - low))
            assert abs(share - 0.3) < 0.01, f"{name}: the points are not uniform along axis {axis}"
        assert abs(estimate - exact) < 0.02, f"{name}: estimate {estimate:.4f} is not close to the exact entropy"
    def points_thrown(seed):
        thrown = []

        def is_ink(points):
            thrown.append(np.asarray(points))
            return cases[1][1](np.asarray(points))

        entropy_by_hit_or_miss(is_ink, cases[1][2], 2000, seed=seed)
        return np.concatenate(thrown)

    assert np.array_equal(points_thrown(1), points_thrown(1)), "the same seed must give the same points"
    assert not np.array_equal(points_thrown(1), points_thrown(2)), "the points should depend on the seed"
    print("Exercise 1: correct")


check_exercise_1(entropy_by_hit_or_miss, my_word)

# %% [markdown]
# ### Exercise 2: a target from your own drawing, and the pixel under a point
#
# Draw a picture with numpy: a boolean array of 120 rows × 180 columns, all ink except a
# hole of 50 rows × 100 columns whose top-left pixel is at row 20, column 30 (so the hole
# is off-centre, nearer the top and the left). Make a `PictureDistribution` of it called
# `holed_frame`; what is its ink area, in the frame 6 units wide, and why?
#
# Then write `on_ink(ink, extent, points)`: `ink` is any boolean picture `[rows, cols]`
# that exactly fills the rectangle `extent = (left, right, bottom, top)`, row 0 at the
# top, so a pixel is `(right - left) / cols` wide and `(top - bottom) / rows` tall (not
# necessarily square). Return, for each point `[x, y]`, whether it lies on an ink pixel;
# points outside the rectangle are paper. The checks locate the hole of your drawing,
# compare `on_ink` with `holed_frame.log_prob`, and try it on random pictures that are
# not square, not symmetric, have paper on their borders or no ink at all, on shifted
# rectangles.

# %%
### BEGIN SOLUTION hint: cut the hole with one slice [rows, columns]; a point's column counts pixel widths from the left edge, its row counts pixel heights down from the top edge
drawing = np.ones((120, 180), dtype=bool)
drawing[20:70, 30:130] = False
holed_frame = data.PictureDistribution.from_image(drawing, name="holed frame")


def on_ink(ink, extent, points):
    left, right, bottom, top = extent
    rows, cols = ink.shape
    col = np.floor((points[:, 0] - left) / (right - left) * cols).astype(int)
    row = np.floor((top - points[:, 1]) / (top - bottom) * rows).astype(int)
    inside = (col >= 0) & (col < cols) & (row >= 0) & (row < rows)
    result = np.zeros(len(points), dtype=bool)
    result[inside] = ink[row[inside], col[inside]]
    return result
### END SOLUTION


def check_exercise_2(holed_frame, on_ink):
    def answer(ink, extent, points):
        try:
            got = np.asarray(on_ink(ink.copy(), extent, points))
        except NotImplementedError:
            raise
        except Exception as error:
            raise AssertionError(f"on_ink raised {type(error).__name__} ({error}) on a "
                                 f"{ink.shape[0]} x {ink.shape[1]} picture") from error
        assert got.shape == (len(points),), f"on_ink should return one boolean per point, got shape {got.shape}"
        return got.astype(bool)

    rows, cols, hole_top, hole_left, hole_rows, hole_cols = 120, 180, 20, 30, 50, 100
    assert holed_frame.ink.shape == (rows, cols), \
        f"the picture should have {rows} rows and {cols} columns, not {holed_frame.ink.shape}"
    np.testing.assert_allclose(holed_frame.ink_area, (rows * cols - hole_rows * hole_cols) * (6.0 / cols) ** 2,
                               rtol=1e-9, err_msg="the ink area should be the frame's area minus the hole's")
    rng = np.random.default_rng(5)

    def points_in_pixels(r, c, extent, shape):  # a random point inside each pixel (r, c)
        left, right, bottom, top = extent
        u = rng.uniform(0.02, 0.98, size=(len(r), 2))
        return np.stack([left + (c + u[:, 0]) * (right - left) / shape[1],
                         top - (r + u[:, 1]) * (top - bottom) / shape[0]], axis=-1)

    r, c = rng.integers(0, rows, 20_000), rng.integers(0, cols, 20_000)
    in_hole = (r >= hole_top) & (r < hole_top + hole_rows) & (c >= hole_left) & (c < hole_left + hole_cols)
    found = np.isfinite(holed_frame.log_prob(points_in_pixels(r, c, holed_frame.extent, (rows, cols))))
    assert not found[in_hole].any(), "ink where the hole should be: rows count from the top, columns from the left"
    assert found[~in_hole].all(), "paper where the frame should be: is the hole the right size and place?"

    probe = rng.uniform(-4, 4, size=(20_000, 2))
    samples = holed_frame.sample(10_000, seed=0)
    for points in (samples, probe):
        np.testing.assert_array_equal(answer(holed_frame.ink, holed_frame.extent, points),
                                      np.isfinite(holed_frame.log_prob(points)),
                                      err_msg="on_ink disagrees with holed_frame.log_prob")
    pictures = [(rng.random((7, 13)) < 0.45, (-4.2, 1.3, 0.5, 3.1)),
                (rng.random((16, 5)) < 0.55, (2.0, 3.0, -6.0, -1.5)),
                (rng.random((9, 11)) < 0.5, (-1.0, 2.0, -2.0, 1.0)),
                (np.zeros((4, 6), dtype=bool), (-1.0, 2.0, 0.0, 1.0))]   # no ink at all
    pictures[0][0][0, :] = False   # paper along the top row
    pictures[1][0][:, 0] = False   # and along the left column
    for ink, extent in pictures:
        r, c = rng.integers(0, ink.shape[0], 4000), rng.integers(0, ink.shape[1], 4000)
        got = answer(ink, extent, points_in_pixels(r, c, extent, ink.shape))
        wrong = np.sum(got != ink[r, c])
        assert wrong == 0, f"{wrong} of {len(r)} points on a {ink.shape[0]} x {ink.shape[1]} picture " \
                           f"on the rectangle {extent} are wrong"
        left, right, bottom, top = extent
        around = rng.uniform([2 * left - right, 2 * bottom - top], [2 * right - left, 2 * top - bottom], (4000, 2))
        outside = around[(around[:, 0] < left) | (around[:, 0] > right) | (around[:, 1] < bottom) | (around[:, 1] > top)]
        assert not answer(ink, extent, outside).any(), "points outside the rectangle must be paper"
    print("Exercise 2: correct")


check_exercise_2(holed_frame, on_ink)
plotting.plot_points(holed_frame.sample(5_000, seed=1), limit=3.5, title="holed frame")
plt.show()

# %% [markdown]
# ### Exercise 3: the gap of a fitted Gaussian
#
# Write `gaussian_gap(train_points, test_points, entropy)`: fit a Gaussian to the
# training points by moment matching, and return its held-out NLL, the average of
# $-\log q$ over the test points, minus `entropy`, in nats. The checks compare it with a
# direct computation on several data sets, including test points that do *not* come from
# the distribution of the training points (there the closed form
# $\tfrac12\log\det(2\pi e\hat\Sigma) - H$ of the training points no longer holds, and
# only the test points tell), with the standard normal, and with the same points after an
# invertible linear map of the plane (the gap must not change). Which of the shapes in
# this notebook (word, heart, ring) do you expect to be closest to a Gaussian? Check.

# %%
def gaussian_gap(train_points, test_points, entropy):
    ### BEGIN SOLUTION hint: moment matching means the training points' mean and covariance; then average -log q over the test points
    train_points = np.asarray(train_points, dtype=np.float64)
    mean = train_points.mean(axis=0)
    covariance = np.cov(train_points, rowvar=False)
    gaussian = tfd.MultivariateNormalTriL(loc=mean, scale_tril=np.linalg.cholesky(covariance))
    return float(np.mean(-gaussian.log_prob(np.asarray(test_points, dtype=np.float64)).numpy()) - entropy)
    ### END SOLUTION


word = data.PictureDistribution.from_text("Gauss")
train_points, test_points = word.sample(20_000, seed=0), word.sample(10_000, seed=1)
print(f"fitted Gaussian on {word.name!r}: gap {gaussian_gap(train_points, test_points, word.entropy()):.3f} nats")


def check_exercise_3(gaussian_gap, word, train_points, test_points, other):
    def direct(train, test, entropy):  # -log q averaged over the test points, computed here
        train, test = np.asarray(train, np.float64), np.asarray(test, np.float64)
        mean, covariance = train.mean(axis=0), np.cov(train, rowvar=False)
        centred = test - mean
        mahalanobis = np.sum(centred * np.linalg.solve(covariance, centred.T).T, axis=1)
        return np.mean(0.5 * mahalanobis) + 0.5 * np.log(np.linalg.det(2 * np.pi * covariance)) - entropy

    H = word.entropy()
    gap = gaussian_gap(train_points, test_points, H)
    np.testing.assert_allclose(gap, direct(train_points, test_points, H), atol=1e-3,
                               err_msg=f"the gap on {word.name!r} is not the fitted Gaussian's held-out NLL minus H")
    standard_gap = np.mean(0.5 * np.sum(np.asarray(test_points, np.float64) ** 2, axis=1)) + np.log(2 * np.pi) - H
    assert 0 < gap < standard_gap, "the fitted Gaussian should be closer than the standard normal, and above the bound"
    # test points from another distribution: the heart, shrunk and moved
    shifted_test = (0.5 * other.sample(10_000, seed=2) + np.array([1.0, -0.4])).astype(np.float32)
    np.testing.assert_allclose(gaussian_gap(train_points, shifted_test, H), direct(train_points, shifted_test, H),
                               atol=1e-3, err_msg="with test points from another distribution the gap is wrong: "
                                                  "are the test points the ones you evaluate on?")
    # an invertible linear map and a shift of the plane: the gap must not change
    matrix, shift = np.array([[1.3, 0.4], [-0.2, 0.7]]), np.array([2.5, -1.2])
    moved_train = (train_points @ matrix.T + shift).astype(np.float32)
    moved_test = (test_points @ matrix.T + shift).astype(np.float32)
    moved_entropy = H + np.log(abs(np.linalg.det(matrix)))
    moved_gap = gaussian_gap(moved_train, moved_test, moved_entropy)
    np.testing.assert_allclose(moved_gap, direct(moved_train, moved_test, moved_entropy), atol=1e-3,
                               err_msg="wrong on points with a correlation and a non-zero mean")
    np.testing.assert_allclose(moved_gap, gap, atol=1e-3, err_msg="the gap changed under a linear map of the plane")
    print("Exercise 3: correct")


check_exercise_3(gaussian_gap, word, train_points, test_points, heart)
for shape in (heart, ring):
    print(f"{shape.name}: gap {gaussian_gap(shape.sample(20_000, seed=0), shape.sample(10_000, seed=1), shape.entropy()):.3f} nats")
