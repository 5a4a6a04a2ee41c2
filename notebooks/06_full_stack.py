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
# # 06 · The full stack of the post
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/normalizing-flows-tf2/flowlib/blob/main/notebooks/06_full_stack.ipynb)
#
# **After this notebook you can** build and train the architecture of the reference post
# (8 affine couplings, 4 batch-normalisation layers, a swap between couplings), follow
# points through it layer by layer in both directions and say what each kind of layer does
# to them, make an animation of it, and check that flowlib's stack computes the same
# numbers as one built from TFP's own `tfb.RealNVP`.
#
# **Prerequisites:** [05 · RealNVP: affine coupling](05_realnvp.ipynb).

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
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from IPython.display import Image, display

from flowlib import bijectors, data, flows, metrics, plotting, train, widgets

tfb = tfp.bijectors
tfd = tfp.distributions

# %% [markdown]
# ## 1. The architecture
#
# The reference post (Brad Saund's TensorFlow 2 port of Eric Jang's 2018 tutorial) stacks
# **8 RealNVP layers** and inserts **4 batch-normalisation layers**, with a swap between
# couplings. The code published with it (`normalizing_flows.py` in
# github.com/bsaund/normalizing_flows, commit bc20b0b "Cleanup for blog post", 7 April 2020)
# appends a batch norm after couplings 0, 2, 4 and 6 and hands the list to `tfb.Chain`
# reversed, so counted in the `forward` direction (latent to data) the batch norms follow
# couplings 0, 2, 4 and 6, and the layer next to the data is a coupling. We build the same
# order with `flows.realnvp(..., normalize_after=(0, 2, 4, 6))`. Two things we change, and
# why: each coupling network has two hidden layers of 128 units instead of the post's 512
# (16 times fewer weights per layer, enough for a 2-D picture, and fast on a CPU), and
# we train far fewer steps, on smaller batches, with a learning rate that starts higher
# and decays (the numbers are printed where we train), instead of the post's 200,000
# steps at a constant $10^{-5}$ on batches of 1,500 (its `settings`; an earlier version of
# the code, `tf2_flow.py` of March 2020, used $10^{-4}$, and notebook 07 shows why the author
# lowered it). The batch norm is flowlib's
# (the end of this section says why). Listed in the order `forward` applies them, the
# layers are:

# %%
flow = flows.realnvp(num_layers=8, hidden_units=(128, 128), normalization="batchnorm",
                     normalize_after=(0, 2, 4, 6), seed=0)
for index, layer in enumerate(flows.layers(flow), start=1):
    print(f"{index:2d}. {layer.name:18s} {type(layer).__name__}")
print(f"{flows.num_parameters(flow):,} trainable parameters")

# %% [markdown]
# Each coupling keeps the horizontal coordinate and scales and shifts the vertical one
# (notebook 05); each `permute` swaps the two coordinates, so the next coupling changes the
# other one; and after couplings 0, 2, 4 and 6 sits a batch-normalisation layer. Read the
# other way (`inverse`, data to latent, what `log_prob` does), the data first meet a
# coupling, and a batch norm right after it normalises what that coupling produced.
#
# ### Batch normalisation as a bijector
#
# Batch normalisation (Ioffe and Szegedy, 2015), used as a flow layer as in RealNVP, is a
# per-coordinate affine map. In the data-to-latent direction it normalises:
#
# $$z_j = \gamma_j\,\frac{y_j - \mu_j}{\sqrt{\sigma_j^2 + \epsilon}} + \beta_j, \qquad
# \log\left|\det\frac{\partial z}{\partial y}\right| = \sum_j \Big(\log\gamma_j - \tfrac12\log(\sigma_j^2 + \epsilon)\Big),$$
#
# with learned $\gamma_j = e^{\log\gamma_j} > 0$ and $\beta_j$. The log-determinant is the
# same for every point: the layer rescales the whole plane uniformly along each axis.
# Nothing bounds this scale, $\gamma_j / \sqrt{\sigma_j^2 + \epsilon}$, or the offset: unlike
# the couplings' log-scale (notebook 05), they can grow as large as training makes them.
# What are $\mu$ and $\sigma^2$? In **training mode**, the mean and variance of the current
# batch (and the layer updates moving averages of them); in **evaluation mode**, those
# moving averages. So the layer is a fixed bijection only in evaluation mode, which is why
# `train.fit` switches to it when training ends, and `metrics` always evaluates in it.
#
# Here is that map written out in numpy, checked against flowlib's `BatchNormalization`
# in both modes.

# %%
def batch_norm_inverse(y, mean, variance, log_gamma, beta, epsilon=1e-3):
    """Data to latent: normalise each coordinate, then scale by gamma and shift by beta."""
    mean, variance = np.asarray(mean), np.asarray(variance)
    return (y - mean) / np.sqrt(variance + epsilon) * np.exp(log_gamma) + beta


def batch_norm_inverse_log_det(mean, variance, log_gamma, epsilon=1e-3):
    """log|det dz/dy|: one number, the same for every point."""
    variance = np.asarray(variance)
    return np.sum(log_gamma - 0.5 * np.log(variance + epsilon))


training = tf.Variable(False)  # flowlib's train/eval switch, shared by the layers of a flow
layer = bijectors.BatchNormalization(2, training)
layer.moving_mean.assign([0.5, -1.0])
layer.moving_variance.assign([4.0, 0.25])
layer.log_gamma.assign([0.3, -0.2])
layer.beta.assign([0.1, 0.2])
y = np.random.default_rng(0).normal(loc=[2.0, 1.0], scale=[3.0, 0.5], size=(1000, 2)).astype(np.float32)
weights = [layer.log_gamma.numpy(), layer.beta.numpy()]

# Evaluation mode: the moving averages.
np.testing.assert_allclose(layer.inverse(y), batch_norm_inverse(y, [0.5, -1.0], [4.0, 0.25], *weights), atol=1e-5)
np.testing.assert_allclose(layer.inverse_log_det_jacobian(y, event_ndims=1),
                           batch_norm_inverse_log_det([0.5, -1.0], [4.0, 0.25], weights[0]), atol=1e-5)
# Training mode: the statistics of this batch.
training.assign(True)
np.testing.assert_allclose(layer.inverse(y), batch_norm_inverse(y, y.mean(0), y.var(0), *weights), atol=1e-4)
np.testing.assert_allclose(layer.inverse_log_det_jacobian(y, event_ndims=1),
                           batch_norm_inverse_log_det(y.mean(0), y.var(0), weights[0]), atol=1e-4)
print("moving mean after one training-mode call:", layer.moving_mean.numpy(),
      f"(moved {1 - layer.momentum:.0%} of the way towards the batch mean", y.mean(0).round(2), ")")
print(f"momentum {layer.momentum:g}: the moving averages remember roughly the last "
      f"{1 / (1 - layer.momentum):.0f} batches")

# %% [markdown]
# flowlib uses its own `BatchNormalization` rather than TFP's `tfb.BatchNormalization`.
# One layer at a time they compute the same map, but inside a `TransformedDistribution`
# TFP's version gives a training-mode `log_prob` that is not the likelihood of the batch it
# normalised; notebook 07 measures what that does to training.
#
# ## 2. Train it
#
# Same target and data as notebooks 04 and 05.

# %%
target = data.PictureDistribution.from_text("Flow")
x_train = target.sample(100_000, seed=0)
x_test = target.sample(50_000, seed=1)

STEPS = 4000
LEARNING_RATE = 3e-3
history = train.fit(flow, x_train, steps=STEPS, learning_rate=LEARNING_RATE, seed=0,
                    validation_data=x_test[:5_000])
print(f"trained for {history.steps} steps of batch {train.DEFAULT_BATCH_SIZE}, Adam with cosine decay from "
      f"{LEARNING_RATE:g}, in {history.seconds:.0f} s")

result = metrics.evaluate(flow, target, x_test)
print(result)
assert not flows.is_training(flow), "after fit the batch-norm layers are in evaluation mode"
assert np.isfinite(result.nll)
assert result.gap > -4 * result.standard_error, "no model can beat the entropy bound"
untrained_gap = float(-np.mean(flow.distribution.log_prob(x_test))) - target.entropy()  # the fresh flow: N(0, I)
assert result.gap < untrained_gap, "training should beat the untrained flow"

# %%
ax = plotting.plot_training_curve(history, entropy=target.entropy())
ax.set_title("8 affine couplings + 4 batch norms: training and held-out NLL", fontsize=10)
ax.spines[["top", "right"]].set_visible(False)
plt.show()

# %% [markdown]
# Two curves, two modes. The training NLL is measured in training mode, on batches
# normalised with their own statistics. The held-out NLL is measured in evaluation mode,
# with the moving averages, which trail the batch statistics (they remember roughly the
# number of batches printed in section 1). While the networks change quickly (early, when the learning rate is high) the two
# disagree, and the held-out curve can jump above the training curve; as the cosine
# schedule slows training down, the moving averages catch up. Notebook 07 looks closely
# at what batch normalisation does to training.
#
# Why is the gap here larger than that of notebook 05's RealNVP, which had no batch norm
# (compare the printed gaps)? Three reasons, all visible in this notebook. The held-out NLL
# is computed with the moving averages, which lag the batch statistics the networks were
# trained against, so evaluation uses a slightly different flow from the one trained. Each
# training batch is normalised with its own noisy mean and variance, which adds noise to
# every gradient. And a batch norm right after a coupling can undo part of what the
# coupling learned to stretch, which the next couplings must redo. Notebook 07 measures
# what batch norm does to training; the series' headline flow (notebook 08) uses none.
#
# ## 3. Following 8000 points through every layer
#
# Now the post's figure: draw 8000 points from the standard normal base, colour each by
# the quadrant it starts in (the same colours in every notebook), and follow them through
# the flow, latent to data, one layer at a time.
#
# With a widget front end (Jupyter, Colab, VS Code) the explorer below has a slider over
# the layers and a toggle for the direction; in the data-to-latent direction, data points
# are coloured by the quadrant they end up in. Where widgets cannot run (on GitHub, or in a
# page made from the notebook) it draws a static figure of the same layers instead; the
# grid after it shows the latent-to-data direction, and section 4 the other one.

# %%
explorer = widgets.layer_explorer(flow, data=x_test, num_samples=4000)
plt.close("all")  # shown once, as the cell's result
explorer

# %%
num_points = 8000
fig = plotting.plot_layer_grid(flow, num_samples=num_points, seed=0)
fig.suptitle("latent → data: base samples coloured by their starting quadrant, after each layer", y=1.01)
plt.show()

# %% [markdown]
# What to look for (the reference post pointed out the first three):
#
# - **In every coupling only the vertical coordinate changes.** A point moves straight up or
#   down: the horizontal coordinate is the kept half $x_1$.
# - **So a coupling leaves the distribution of $x$ values unchanged.** The points' horizontal
#   positions are identical before and after; only their heights are rearranged (which
#   height depends on $x$, hence the bending).
# - **Each permute mirrors the picture about the line $y = x$.** Swapping the coordinates is
#   exactly that reflection; it hands the other coordinate to the next coupling.
# - **Batch-norm layers rescale.** Each one stretches or squeezes the cloud along the two
#   axes and shifts it, the same for every point, so the shape is unchanged apart from
#   the aspect ratio. When one axis is squeezed and the other stretched, the cloud looks
#   flattened; the post mentions batch normalisation "flattening the data in one
#   dimension". The next cell prints each batch-norm layer's moving variances and the
#   scale it applies along each axis in the forward direction; section 3 of
#   [notebook 07](07_training_stability.ipynb), "Why batch norm flattens the pictures",
#   explains how these scales make the flattening.
#
# These are properties of the layers, not of this training run, so the next cell checks
# them on the traced points exactly.

# %%
z = np.random.default_rng(0).standard_normal((num_points, 2)).astype(np.float32)
stages = flows.trace(flow, z)
colors = plotting.quadrant_colors(z)

for layer, (_, before), (name, after) in zip(flows.layers(flow), stages[:-1], stages[1:]):
    if isinstance(layer, bijectors.AffineCoupling):
        np.testing.assert_array_equal(after[:, 0], before[:, 0], err_msg=name)   # x untouched
        assert np.abs(after[:, 1] - before[:, 1]).max() > 0, name                 # y moved
    elif isinstance(layer, tfb.Permute):
        np.testing.assert_array_equal(after, before[:, ::-1], err_msg=name)      # mirror about y = x
    elif isinstance(layer, bijectors.BatchNormalization):
        scale = after.std(0) / before.std(0)
        offset = after.mean(0) - scale * before.mean(0)
        np.testing.assert_allclose(after, before * scale + offset, rtol=1e-4, atol=1e-4, err_msg=name)
        # In the forward direction the layer multiplies coordinate j by sqrt(moving variance_j + eps) / gamma_j.
        variance, gamma = layer.moving_variance.numpy(), np.exp(layer.log_gamma.numpy())
        np.testing.assert_allclose(scale, np.sqrt(variance + layer.epsilon) / gamma, rtol=1e-3, err_msg=name)
        print(f"{name}: moving variance {variance.round(3)}, gamma {gamma.round(3)}; "
              f"forward scales x by {scale[0]:.2f}, y by {scale[1]:.2f} (ratio {max(scale) / min(scale):.1f})")
    else:
        raise AssertionError(f"unexpected layer {name}")

# %% [markdown]
# ### An animation
#
# Motion shows the same story more directly: the points glide from layer to layer. The
# animation is saved as a GIF file (in a temporary folder: copy it wherever you like) and
# displayed here.

# %%
gif_folder = Path(tempfile.mkdtemp())
animated = 3000  # points in the animation (fewer keeps the file small)
gif_path = plotting.animate_layers([(name, points[:animated]) for name, points in stages], colors[:animated],
                                   gif_folder / "flow_layers.gif", frames_per_layer=4)
print(f"wrote {gif_path.name} ({gif_path.stat().st_size / 1e6:.1f} MB) to a temporary folder; gif_path holds its full path")
display(Image(filename=str(gif_path)))

# %% [markdown]
# ## 4. Backwards: the word becomes a Gaussian
#
# `log_prob` runs the flow the other way. `flows.trace_inverse` follows data points from
# the word back to the latent space, undoing one layer at a time. This time colour the
# points by **letter**: the letters of the rendered word are separated by empty pixel
# columns, which gives their horizontal boundaries.

# %%
ink_columns = target.ink.any(axis=0)
first_columns = np.flatnonzero(np.diff(ink_columns.astype(int)) == 1) + 1  # where letters 2, 3, ... start
boundaries = target.extent[0] + first_columns * target.pixel_size
assert len(boundaries) + 1 == len(target.name), "one boundary between each pair of letters"

LETTER_COLORS = np.array(["#1f77b4", "#d62728", "#2ca02c", "#9467bd"])
x = x_test[:num_points]
letter = np.searchsorted(boundaries, x[:, 0])  # 0 for "F", 1 for "l", ...
letter_colors = LETTER_COLORS[letter]

backward = flows.trace_inverse(flow, x)
fig = plotting.plot_stages(backward, letter_colors)
fig.suptitle("data → latent: held-out points coloured by letter, after undoing each layer", y=1.01)
plt.show()

# %% [markdown]
# Panel 0 is the data; panel $k$ shows the points after undoing the layer named in its
# title. The last panel is $f^{-1}(x)$. If the flow has learned the target, the latent
# points of data should look like samples of the base distribution: mean zero, covariance
# the identity, round. And since a bijection carries probability along with the points,
# each letter ends up in a part of the Gaussian that holds the same share of the mass as
# the letter holds of the ink.

# %%
latent = backward[-1][1]
np.testing.assert_allclose(latent, flow.bijector.inverse(x), atol=1e-5)   # trace ends where inverse does
mean, covariance = latent.mean(axis=0), np.cov(latent, rowvar=False)
print("mean of f⁻¹(x):", mean.round(3), "\ncovariance:\n", covariance.round(3))
print(f"beyond radius 3: {np.mean(np.linalg.norm(latent, axis=1) > 3):.2%} of the points "
      f"(for a standard normal: {np.exp(-9 / 2):.2%})")
# The flow has moved the data towards the base: the latent points' covariance is closer
# to the identity than the data's own.
assert np.abs(covariance - np.eye(2)).max() < np.abs(np.cov(x, rowvar=False) - np.eye(2)).max()

fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
plotting.plot_points(latent, letter_colors, ax=axes[0], limit=4.0, size=1.5,
                     title="f⁻¹(x) by letter; circles of radius 1, 2, 3")
theta = np.linspace(0, 2 * np.pi, 200)
for radius in (1, 2, 3):
    axes[0].plot(radius * np.cos(theta), radius * np.sin(theta), color="k", lw=0.6, ls=":", zorder=3)
grid = np.linspace(-4, 4, 200)
for ax, coordinate in zip(axes[1:], (0, 1)):
    ax.hist(latent[:, coordinate], bins=60, range=(-4, 4), density=True, color="0.75", label="f⁻¹(x)")
    ax.plot(grid, np.exp(-grid ** 2 / 2) / np.sqrt(2 * np.pi), "k", lw=1.2, label="standard normal")
    ax.set_title(f"latent coordinate z{coordinate + 1}", fontsize=10)
    ax.legend(frameon=False, fontsize=8)
    ax.spines[["top", "right", "left"]].set_visible(False)
    ax.set_yticks([])
plt.show()

# %% [markdown]
# Close to a standard normal, with two visible flaws, both instructive. The latent points
# stop near the circle of radius 3: the word has no tails, so nothing maps to the outer
# ring of the Gaussian (for a standard normal in 2-D, $e^{-9/2} \approx 1\%$ of the mass
# lies beyond radius 3). And thin empty channels separate the letters: those parts of
# the Gaussian are what the flow maps onto the gaps between the letters. Base samples
# drawn from the outer ring or from the channels land off the ink, which is where the
# smeared edges and thin bridges of the learned density come from. A flow is a bijection
# of the whole plane, so it can shrink these regions but never remove them.
#
# ## 5. The same flow with TFP's own `tfb.RealNVP`
#
# TFP has a RealNVP coupling of its own. `tfb.RealNVP(num_masked=1,
# shift_and_log_scale_fn=fn)` keeps the first `num_masked` coordinates, calls
# `fn(x1, output_units)` for a shift and a log-scale, and sets
# $y_2 = x_2 \odot e^{\text{log-scale}} + \text{shift}$. That is flowlib's affine coupling with
# the mask `[True, False]`. So if each `fn` calls the **same trained network** and applies
# the **same bound** $c\tanh(r/c)$ to its raw log-scale, a chain in which TFP's couplings
# replace flowlib's must compute the same numbers. A useful check that flowlib's layers are
# what they claim to be, and a bridge to code written with TFP directly.

# %%
def tfp_coupling(layer):
    """A tfb.RealNVP that calls the network of a trained flowlib AffineCoupling."""
    assert list(layer.mask) == [True, False], "num_masked=1 keeps the first coordinate"

    def shift_and_log_scale_fn(x1, output_units):
        shift, raw_log_scale = tf.split(layer.network(x1), 2, axis=-1)
        c = layer.max_log_scale
        return shift, c * tf.tanh(raw_log_scale / c)

    return tfb.RealNVP(num_masked=1, shift_and_log_scale_fn=shift_and_log_scale_fn, name=f"tfp_{layer.name}")


tfp_layers = [tfp_coupling(layer) if isinstance(layer, bijectors.AffineCoupling) else layer
              for layer in flows.layers(flow)]
assert sum(isinstance(layer, tfb.RealNVP) for layer in tfp_layers) == 8
tfp_flow = tfd.TransformedDistribution(distribution=flow.distribution,
                                       bijector=tfb.Chain(list(reversed(tfp_layers))))

# Fresh tensors each time, so that neither flow can answer from TFP's cache.
z_check = np.random.default_rng(7).standard_normal((5000, 2)).astype(np.float32)
x_check = x_test[-5000:]
np.testing.assert_allclose(tfp_flow.bijector.forward(tf.constant(z_check)),
                           flow.bijector.forward(tf.constant(z_check)), rtol=1e-5, atol=1e-5)
np.testing.assert_allclose(tfp_flow.bijector.inverse(tf.constant(x_check)),
                           flow.bijector.inverse(tf.constant(x_check)), rtol=1e-5, atol=1e-5)
np.testing.assert_allclose(tfp_flow.log_prob(tf.constant(x_check)),
                           flow.log_prob(tf.constant(x_check)), rtol=1e-5, atol=1e-4)
print("forward, inverse and log_prob agree on", len(x_check), "points")

# %% [markdown]
# ## Summary
#
# - The reference post's flow is 8 affine couplings with a swap between them and a
#   batch-normalisation layer after couplings 0, 2, 4 and 6 (latent side first);
#   `flows.realnvp(num_layers=8, normalization="batchnorm", normalize_after=(0, 2, 4, 6))`
#   builds it.
# - Batch normalisation is a per-coordinate affine bijection with a log-determinant that is
#   the same for every point; it uses batch statistics in training mode and moving averages
#   in evaluation mode, and is a fixed bijection only in the latter.
# - Followed layer by layer, a coupling moves points only vertically (so the distribution of
#   $x$ values is unchanged), a swap mirrors about $y = x$, a batch norm rescales the axes:
#   asserted on the traced points, and visible in the grid, the explorer and the animation.
# - Run backwards, the flow turns the word into something close to a standard normal, which
#   is what a good fit means.
# - flowlib's stack and one built from TFP's `tfb.RealNVP` with the same networks agree on
#   `forward`, `inverse` and `log_prob`.
#
# Notebook 07 looks at what goes wrong when training this stack, and why.

# %% [markdown]
# ## Exercises
#
# Each exercise has a code cell with the solution between the marker lines and checks
# after it.

# %%
def call_answer(function, *args):
    """Call an answer; an error it raises becomes a failed check that names it."""
    try:
        return function(*args)
    except NotImplementedError:
        raise
    except Exception as error:
        raise AssertionError(f"the function raised {type(error).__name__}: {error}") from error


# %% [markdown]
# ### Exercise 1: which layer moves points the most?
#
# Write `mean_displacement(stages)`: for stages as returned by `flows.trace` (a list of
# `(name, points)` pairs, points of shape `[n, d]` for any dimension $d$), the mean
# Euclidean distance the points move from each stage to the next, an array with one entry
# per layer. Then find the layer of the trained flow that moves points the most. Is it a
# coupling, a permutation or a batch norm? How far do the swaps move points, and why is
# that not a fair comparison?

# %%
def mean_displacement(stages):
    ### BEGIN SOLUTION hint: pair each stage with the next; np.linalg.norm(..., axis=1) measures how far each point moved
    return np.array([np.linalg.norm(after - before, axis=1).mean()
                     for (_, before), (_, after) in zip(stages[:-1], stages[1:])])
    ### END SOLUTION


def check_exercise_1(mean_displacement):
    # Made-up stages whose moves are known: each point moves by a chosen length in a random direction.
    for case, (n, d, num_layers, seed) in enumerate([(37, 2, 5, 1), (50, 3, 3, 2), (9, 2, 7, 3)], start=1):
        rng = np.random.default_rng(seed)
        points = rng.normal(loc=rng.uniform(-3, 3, d), size=(n, d))
        stages, lengths = [("base", points)], []
        for k in range(num_layers):
            length = rng.uniform(0, 3 * k, size=n)          # layer 0 does not move the points
            direction = rng.normal(size=(n, d))
            direction /= np.linalg.norm(direction, axis=1, keepdims=True)
            points = points + length[:, None] * direction
            stages.append((f"layer_{k}", points.astype(np.float32)))
            lengths.append(length)
        answer = np.asarray(call_answer(mean_displacement, [(name, p.copy()) for name, p in stages]))
        assert answer.shape == (num_layers,), f"case {case}: expected {num_layers} entries, got shape {answer.shape}"
        assert np.allclose(answer, [length.mean() for length in lengths], rtol=1e-4, atol=1e-5), (
            f"case {case} ({n} points in {d}-D): not the mean distance moved in each layer")

    # The trained flow: a swap moves (x, y) to (y, x), a distance of sqrt(2) |x - y|; a coupling moves vertically.
    stages = flows.trace(flow, np.random.default_rng(21).standard_normal((2000, 2)).astype(np.float32))
    moves = np.asarray(call_answer(mean_displacement, stages))
    assert moves.shape == (len(stages) - 1,), f"trained flow: expected {len(stages) - 1} entries, got {moves.shape}"
    for k, layer in enumerate(flows.layers(flow)):
        before, after = stages[k][1], stages[k + 1][1]
        if isinstance(layer, tfb.Permute):
            assert np.isclose(moves[k], np.sqrt(2) * np.abs(before[:, 0] - before[:, 1]).mean(), rtol=1e-4), layer.name
        if isinstance(layer, bijectors.AffineCoupling):
            assert np.isclose(moves[k], np.abs(after[:, 1] - before[:, 1]).mean(), rtol=1e-4), layer.name
    largest = int(np.argmax(moves))
    print(f"the largest mean move, {moves[largest]:.2f}, is in layer {largest + 1}: {stages[largest + 1][0]}")
    print("Exercise 1: correct")


check_exercise_1(mean_displacement)

# %% [markdown]
# ### Exercise 2: a random permutation instead of the swap
#
# `flows.realnvp(permutation="random", seed=...)` draws a fixed random order of the
# coordinates for each permutation layer. Write `identity_permutations(flow)`, returning
# the names of the permutation layers (`tfb.Permute`) of `flow` that leave every point
# where it is, for a flow of any dimension. In 2-D there are only two orders, the swap and
# the identity: what happens when two couplings are separated by an identity, and why is
# the swap the better choice in 2-D? (In high dimensions random permutations are a
# reasonable choice; Glow learns a 1x1 convolution instead, Kingma and Dhariwal 2018.)

# %%
def identity_permutations(flow):
    ### BEGIN SOLUTION hint: look at layer.permutation of each tfb.Permute in flows.layers(flow)
    return [layer.name for layer in flows.layers(flow)
            if isinstance(layer, tfb.Permute) and np.array_equal(layer.permutation, np.arange(len(layer.permutation)))]
    ### END SOLUTION


def check_exercise_2(identity_permutations):
    for dim, seed in [(2, 3), (2, 7), (3, 1), (4, 11)]:
        random_flow = flows.realnvp(dim, num_layers=6, hidden_units=(4,), normalization="batchnorm",
                                    permutation="random", seed=seed)
        names = list(call_answer(identity_permutations, random_flow))
        assert len(names) == len(set(names)), f"{dim}-D flow, seed {seed}: a name appears twice"
        points = np.random.default_rng(seed).normal(size=(20, dim)).astype(np.float32)
        permutes = [layer for layer in flows.layers(random_flow) if isinstance(layer, tfb.Permute)]
        for layer in permutes:
            stays = np.array_equal(layer.forward(points).numpy(), points)
            assert stays == (layer.name in names), (
                f"{dim}-D flow, seed {seed}: {layer.name} is {'missing' if stays else 'listed, but it moves points'}")
        assert set(names) <= {layer.name for layer in permutes}, f"{dim}-D flow, seed {seed}: names that are not permutations"
        print(f"{dim}-D, seed {seed}: {len(names)} of {len(permutes)} random permutations do nothing: {names}")
    print("Exercise 2: correct")


check_exercise_2(identity_permutations)

# %% [markdown]
# ### Exercise 3: batch norm is a bijection only in evaluation mode
#
# Write `round_trip_error(layer, x)`: the largest $|f(f^{-1}(x)) - x|$ over all points and
# coordinates, i.e. `forward(inverse(x))` compared with `x`, for any layer with `forward`
# and `inverse` methods (a batch-norm layer, for instance). Careful: TFP remembers the
# result of `inverse(x)` and, asked for `forward` of that very tensor, returns `x` from its
# cache without computing anything. Pass a *new* tensor to `forward`. The checks run it on
# a copy of the trained flow's last batch-norm layer and on other layers, in both modes.
# Why does training mode fail the round trip?

# %%
def round_trip_error(layer, x):
    ### BEGIN SOLUTION hint: go to the latent side and back; a new tensor for the way back keeps TFP's cache out of it
    h = layer.inverse(tf.constant(x)).numpy()
    return float(np.max(np.abs(layer.forward(tf.constant(h)).numpy() - x)))
    ### END SOLUTION


def check_exercise_3(round_trip_error):
    def batch_norm_round_trip(values, x, training):
        """forward(inverse(x)) - x by hand, from the layer's variables before the call."""
        mean, variance, log_gamma, beta, momentum, epsilon = values
        if training:   # inverse: batch statistics, and the moving averages move towards them
            batch_mean, batch_variance = x.mean(axis=0), x.var(axis=0)
            z = (x - batch_mean) / np.sqrt(batch_variance + epsilon) * np.exp(log_gamma) + beta
            mean = momentum * mean + (1 - momentum) * batch_mean
            variance = momentum * variance + (1 - momentum) * batch_variance
        else:
            z = (x - mean) / np.sqrt(variance + epsilon) * np.exp(log_gamma) + beta
        return np.abs((z - beta) * np.sqrt(variance + epsilon) / np.exp(log_gamma) + mean - x).max()

    trained = [layer for layer in flows.layers(flow) if isinstance(layer, bijectors.BatchNormalization)][-1]
    rng = np.random.default_rng(23)
    cases = [(trained.moving_mean.numpy(), trained.moving_variance.numpy(), trained.log_gamma.numpy(),
              trained.beta.numpy(), x_test[:512] * 1.5 + 0.5),
             ([0.5, -2.0, 1.0], [3.0, 0.2, 1.5], [0.4, -0.3, 0.1], [-1.0, 0.5, 2.0],
              rng.normal(loc=[2.0, -1.0, 0.0], scale=[1.0, 2.0, 0.5], size=(300, 3)))]
    for case, (mean, variance, log_gamma, beta, x) in enumerate(cases, start=1):
        x = np.asarray(x, dtype=np.float32)
        for training in (False, True):
            copy = bijectors.BatchNormalization(len(mean), tf.Variable(training))
            for variable, value in [(copy.moving_mean, mean), (copy.moving_variance, variance),
                                    (copy.log_gamma, log_gamma), (copy.beta, beta)]:
                variable.assign(np.asarray(value, dtype=np.float32))
            values = [v.numpy().astype(np.float64) for v in (copy.moving_mean, copy.moving_variance, copy.log_gamma,
                                                               copy.beta)] + [copy.momentum, copy.epsilon]
            answer = float(call_answer(round_trip_error, copy, x.copy()))
            expected = batch_norm_round_trip(values, x.astype(np.float64), training)
            mode = "training" if training else "evaluation"
            assert abs(answer - expected) <= 1e-4 + 0.005 * expected, (
                f"batch norm {case}, {mode} mode: not the largest round-trip error")
            print(f"batch norm {case}, {mode} mode: round trip off by {answer:.2g}")

    class Scaled:
        """Not a batch norm: forward undoes inverse only up to a factor of 1.01 around the point 2."""
        def inverse(self, y):
            return 3.0 * tf.convert_to_tensor(y) - 1.0

        def forward(self, z):
            return 2.0 + 1.01 * ((tf.convert_to_tensor(z) + 1.0) / 3.0 - 2.0)

    x = rng.normal(loc=[1.0, 4.0], scale=[2.0, 0.3], size=(200, 2)).astype(np.float32)
    answer = float(call_answer(round_trip_error, Scaled(), x))
    assert np.isclose(answer, 0.01 * np.abs(x - 2.0).max(), rtol=1e-3), "a plain layer: not the largest round-trip error"
    print("Exercise 3: correct")


check_exercise_3(round_trip_error)
