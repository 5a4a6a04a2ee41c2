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
# # 04 · NICE: stacking additive couplings
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/normalizing-flows-tf2/flowlib/blob/main/notebooks/04_nice.ipynb)
#
# **After this notebook you can** build a NICE flow (additive couplings, permutations and a
# diagonal scaling layer), train it by maximum likelihood on a word, explain its loss term
# by term, show why the permutations are indispensable, and measure how far the trained
# flow is from the best possible model (its gap to the entropy bound).
#
# **Prerequisites:** [03 · A target distribution from a picture](03_target_from_a_picture.ipynb)
# (and the additive coupling of [01](01_additive_coupling.ipynb), the change of variables of
# [02](02_change_of_variables.ipynb)).

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

from flowlib import bijectors, data, flows, metrics, plotting, train

tfb = tfp.bijectors
tfd = tfp.distributions

# %% [markdown]
# ## The idea
#
# One additive coupling (notebook 01) keeps $x_1$ and shifts $x_2$ by $f(x_1)$: in the
# plane it slides points *vertically*, by an amount that depends on their horizontal
# position. It is exactly invertible whatever the network $f$ is, and it preserves area.
# One such layer can only bend the picture up and down. Stack several and swap the two
# coordinates between them, and the horizontal and vertical coordinates take turns being
# moved as a function of the other: enough, with a few layers, to bend a Gaussian blob
# into a word.
#
# That stack is **NICE** ("Non-linear Independent Components Estimation", Dinh, Krueger
# and Bengio, 2014). Its last layer is a learned diagonal scaling
# $x = \exp(s) \odot h$, one log-scale $s_d$ per coordinate: the only layer of NICE that
# changes volume. The paper used four coupling layers; so does `flowlib.flows.nice` by
# default. In the forward direction (latent $z$ to data $x$, TFP's convention):
# $$ x = f(z) = S \circ g_4 \circ P \circ g_3 \circ P \circ g_2 \circ P \circ g_1 (z), $$
# with $g_i$ additive couplings, $P$ the swap of the two coordinates and $S$ the scaling.

# %% [markdown]
# ## The loss
#
# A flow's density comes from the change of variables (notebook 02): with
# $z = f^{-1}(x)$ and a standard normal base $\mathcal{N}(0, I)$ in $D = 2$ dimensions,
# $$\log q(x) = \log \mathcal{N}\big(f^{-1}(x); 0, I\big) + \log\left|\det J_{f^{-1}}(x)\right|.$$
# The Jacobian determinant of a chain is the product of the layers' determinants, so their
# log-dets add up:
#
# * an additive coupling has a triangular Jacobian with ones on the diagonal: $\log|\det| = 0$;
# * the swap $P$ is a permutation matrix: $|\det P| = 1$, $\log|\det| = 0$;
# * the scaling $x = \exp(s)\odot h$ has $\det = \prod_d e^{s_d}$, so its *inverse* contributes $-\sum_d s_d$.
#
# Hence, for every point $x$,
# $$\log q(x) = -\tfrac12\|z\|^2 - \tfrac{D}{2}\log 2\pi - \sum_d s_d, \qquad z = f^{-1}(x),$$
# and training minimises the average negative log-likelihood of a batch $x_1,\dots,x_B$,
# $$\mathcal{L} = \frac1B\sum_{b=1}^B \tfrac12\big\|f^{-1}(x_b)\big\|^2 \;+\; \sum_d s_d \;+\; \log 2\pi .$$
# The first term pulls the latent image of every data point towards the origin, where
# the Gaussian is dense; the second charges for the one way to cheat at that, shrinking
# everything with the scaling layer (a smaller $z$ means a larger $e^{s}$, which costs $\sum s$).
#
# **Why this limits NICE.** On the data, $\log q(x)$ differs from $\log\mathcal{N}(z)$ by a
# *constant*. So $q$ is as bumpy on the word as the Gaussian is on the region the word is
# mapped to: points whose latent images lie near the origin get a high density, points
# mapped to the edge of that region a low one. The target is flat on the ink; for $q$ to
# be flat too, the ink would have to land on a circle $\|z\| = r$, which has no area,
# while NICE's couplings carry the ink's area $|A|$ to a latent region of area
# $|A|\,e^{-\sum s}$. NICE's couplings can only *move* probability around, never squeeze
# or spread it locally; its one change of volume is the same everywhere. RealNVP
# (notebook 05) gives every coupling its own scale to lift exactly this limit.

# %% [markdown]
# ## Data
#
# The word "Flow" from notebook 03, with separate training and held-out sets (the same
# sizes and seeds in notebooks 03, 04 and 05, so their numbers are comparable).

# %%
target = data.PictureDistribution.from_text("Flow")
x_train = target.sample(100_000, seed=0)
x_test = target.sample(50_000, seed=1)
H = target.entropy()
print(f"{len(x_train):,} training and {len(x_test):,} held-out points; entropy bound H = {H:.3f} nats")

# %% [markdown]
# ## Build the flow
#
# `flows.nice` returns a `tfd.TransformedDistribution`: the standard normal base pushed
# through a `tfb.Chain` of the layers. `flows.layers` lists them in forward order.
# Every coupling network's last layer starts at zero, so before training each coupling is
# the identity, the scaling is $e^0 = 1$, and the flow *is* the base distribution: its
# gap is the standard normal's gap from notebook 03.

# %%
flow = flows.nice(num_layers=4, hidden_units=(128, 128), seed=0)
for layer in flows.layers(flow):
    print(f"  {layer.name:<20} {type(layer).__name__}")
print(f"{flows.num_parameters(flow):,} trainable parameters")

base = flow.distribution
np.testing.assert_allclose(metrics.log_prob(flow, x_test), base.log_prob(x_test).numpy(), atol=1e-5)
untrained_result = metrics.evaluate(flow, target, x_test)
print("before training:", untrained_result)

# %% [markdown]
# ## Train
#
# `train.fit` minimises $\mathcal{L}$ with Adam on random batches of 512 points, the
# learning rate decaying along a cosine from 3e-3 to 0. It also records the held-out NLL
# every 100 steps, so we can watch for overfitting.

# %%
history = train.fit(flow, x_train, steps=4000, learning_rate=3e-3,
                    seed=0, validation_data=x_test)
nice_result = metrics.evaluate(flow, target, x_test)
print(f"NICE after {history.steps} steps ({history.seconds:.0f} s):  {nice_result}")

# %% [markdown]
# ### The loss, by hand
#
# The formula above, with the trained layers: map the held-out points to the latent space,
# evaluate the Gaussian there, subtract $\sum_d s_d$. It agrees with TFP's `log_prob`, and
# TFP's log-det of the whole chain is the same constant $-\sum_d s_d$ at every point.

# %%
scaling = flows.layers(flow)[-1]
log_scale = np.log(tf.convert_to_tensor(scaling.scale.diag).numpy())   # s, one per coordinate
z_test = flow.bijector.inverse(x_test).numpy()
log_q_by_hand = -0.5 * np.sum(z_test**2, axis=-1) - np.log(2 * np.pi) - np.sum(log_scale)
print(f"learned scaling exp(s) = {np.round(np.exp(log_scale), 3)}, sum of log-scales {np.sum(log_scale):.3f}")

np.testing.assert_allclose(log_q_by_hand, metrics.log_prob(flow, x_test), rtol=1e-4, atol=1e-4)
np.testing.assert_allclose(flow.bijector.inverse_log_det_jacobian(x_test[:1000], event_ndims=1).numpy(),
                           -np.sum(log_scale), rtol=1e-5, atol=1e-5)
assert nice_result.gap > -3 * nice_result.standard_error  # no normalised model beats the entropy

# %% [markdown]
# ## Following the base samples through the layers
#
# 8,000 points of the base distribution, coloured by the quadrant they start in, and where
# each layer moves them. Things to look for: in every coupling only the *vertical*
# coordinate changes (the histogram of horizontal positions is untouched); every
# permutation mirrors the picture about the line $y = x$; the final scaling resizes
# everything by one factor per axis. The colours show which part of the Gaussian becomes
# which letter.

# %%
plotting.plot_layer_grid(flow, num_samples=8000, seed=0, ncols=5)
plt.show()

# %% [markdown]
# ## The learned density
#
# The target beside the density of the trained flow, and the training curve with the
# entropy bound (the dashed line no model can cross).

# %%
plotting.plot_density(flow, target, resolution=300,
                      title=f"NICE: learned density, gap {nice_result.gap:.2f} nats")
plt.show()
ax = plotting.plot_training_curve(history, entropy=H)
ax.set_title("NICE on “Flow”", fontsize=10)
plt.show()

# %% [markdown]
# The word is recognisable, and NICE's limit is visible too. The density is uneven
# along the letters: bright ridges where many latent points from near the origin were
# packed together, dimmer stretches elsewhere (look at the "l"). And thin sheets of
# probability run across the paper between the letters: an additive coupling can only
# slide points along one axis, so separating two letters leaves a trail.
#
# The formula $\log q(x) = \log\mathcal{N}(z) - \sum_d s_d$ also puts a *ceiling* on the
# density: nowhere can it exceed its value at $z = 0$, i.e. $\log q \le -\log 2\pi - \sum_d s_d$.
# The histogram of $\log q$ on held-out points shows both effects: a perfect model would
# put every point at exactly $-H$; NICE spreads them over several nats, as
# $\log\mathcal{N}(z)$ varies over the latent images, and cuts them off sharply at the ceiling.

# %%
log_q_test = metrics.log_prob(flow, x_test)
ceiling = -np.log(2 * np.pi) - np.sum(log_scale)      # log q at z = 0
assert np.max(log_q_test) <= ceiling + 1e-4

fig, ax = plt.subplots(figsize=(6.5, 3))
ax.hist(log_q_test, bins=80, range=(-6, 0), color=plotting.QUADRANT_COLORS[1])
ax.axvline(-H, color="k", ls="--", lw=1, label=r"target: $\log p = -H$ on all the ink")
ax.axvline(ceiling, color=plotting.QUADRANT_COLORS[3], lw=1.5, label=r"ceiling $-\log 2\pi - \sum_d s_d$")
ax.set_xlabel(r"$\log q(x)$ on held-out points")
ax.set_ylabel("points")
ax.legend(frameon=False, fontsize=8, loc="upper left")
ax.set_title("NICE: log-density on the ink", fontsize=10)
plt.show()

# %% [markdown]
# ## What goes wrong without permutations
#
# Take the same stack and leave out the swaps: four additive couplings, all with the mask
# $[\text{True}, \text{False}]$, then the scaling. Each coupling keeps $x_1$ and shifts
# $x_2$, so *no layer ever changes the horizontal coordinate* except the scaling:
# $x_1 = e^{s_1} z_1$. Whatever the networks learn, the horizontal marginal of the model is
# the Gaussian $\mathcal{N}(0, e^{2 s_1})$, and given $x_1$ the vertical coordinate is
# $z_2$ shifted by a function of $x_1$ and scaled: a Gaussian of one fixed width
# $e^{s_2}$ around a curve. We build it with flowlib's `AdditiveCoupling` and a scaling
# layer made exactly as in `flows.nice`, and train it briefly.

# %%
def stack_without_permutations(num_layers=4, hidden_units=(128, 128), seed=0):
    layers = [bijectors.AdditiveCoupling(bijectors.half_mask(2), hidden_units=hidden_units,
                                         seed=seed * 1000 + i, name=f"additive_coupling_{i}")
              for i in range(num_layers)]
    log_scale = tf.Variable(tf.zeros([2]), name="log_scale")
    layers.append(tfb.ScaleMatvecDiag(scale_diag=tfp.util.DeferredTensor(log_scale, tf.exp), name="scaling"))
    chain = tfb.Chain(list(reversed(layers)))  # tfb.Chain applies its last bijector first
    return tfd.TransformedDistribution(tfd.MultivariateNormalDiag(tf.zeros(2), tf.ones(2)), chain,
                                       name="no_permutations")


no_perm = stack_without_permutations()
no_perm_history = train.fit(no_perm, x_train, steps=1500,
                            learning_rate=3e-3, seed=0)
no_perm_result = metrics.evaluate(no_perm, target, x_test)
print(f"without permutations, {no_perm_history.steps} steps:  {no_perm_result}")

# %% [markdown]
# The layer grid shows it at once: the horizontal positions never change, only the final
# scaling stretches them. The check below confirms $x_1 = e^{s_1} z_1$ exactly after
# every layer.

# %%
plotting.plot_layer_grid(no_perm, num_samples=8000, seed=0, ncols=6)
plt.show()

z = np.random.default_rng(0).standard_normal((2000, 2)).astype(np.float32)
stages = flows.trace(no_perm, z)
for name, points in stages[1:-1]:          # after every coupling: x1 is still z1
    np.testing.assert_array_equal(points[:, 0], z[:, 0])
s1 = np.log(tf.convert_to_tensor(flows.layers(no_perm)[-1].scale.diag).numpy())[0]
np.testing.assert_allclose(stages[-1][1][:, 0], np.exp(s1) * z[:, 0], rtol=1e-6)

# %% [markdown]
# ### How good can a stack without permutations possibly be?
#
# For this model family we can compute the best achievable NLL exactly. The model is
# $q(x_1, x_2) = \mathcal{N}(x_1; 0, \sigma_1^2)\,\mathcal{N}(x_2; g(x_1), \sigma_2^2)$ with
# $\sigma_d = e^{s_d}$ and $g$ anything the networks can represent. Its cross-entropy splits
# in two terms:
#
# * $\mathbb{E}_p[-\log\mathcal{N}(x_1; 0, \sigma_1^2)] = \tfrac12\log 2\pi\sigma_1^2 + \mathbb{E}[x_1^2]/2\sigma_1^2$,
#   smallest at $\sigma_1^2 = \mathbb{E}[x_1^2]$, where it is $\tfrac12\log\big(2\pi e\,\mathbb{E}[x_1^2]\big)$;
# * $\mathbb{E}_p[-\log\mathcal{N}(x_2; g(x_1), \sigma_2^2)]$ is smallest for $g(x_1) = \mathbb{E}[x_2\mid x_1]$
#   and $\sigma_2^2 = v = \mathbb{E}_{x_1}\mathrm{Var}(x_2\mid x_1)$, where it is $\tfrac12\log(2\pi e\, v)$.
#
# Both moments follow from the picture itself, column by column: a column of pixels
# holds a share of the ink proportional to its number of ink pixels, and within a column
# $x_2$ is uniform on its ink pixels (a uniform point inside a pixel of side $\delta$ adds
# $\delta^2/12$ to a variance). So **no stack without permutations can get below**
# $$\text{gap}_{\min} = \tfrac12\log\big(2\pi e\,\mathbb{E}[x_1^2]\big) + \tfrac12\log(2\pi e\, v) - H,$$
# however long it trains and however big its networks.

# %%
delta = target.pixel_size
left, _, _, top = target.extent
column_x = left + (np.arange(target.ink.shape[1]) + 0.5) * delta   # centre of each pixel column
row_y = top - (np.arange(target.ink.shape[0]) + 0.5) * delta       # centre of each pixel row
column_share = target.ink.sum(axis=0) / target.ink.sum()           # p(x1 falls in column j)
mean_x1_squared = np.sum(column_share * column_x**2) + delta**2 / 12
variance_in_column = np.array([np.var(row_y[column]) if column.any() else 0.0 for column in target.ink.T])
mean_variance = np.sum(column_share * variance_in_column) + delta**2 / 12
floor = 0.5 * np.log(2 * np.pi * np.e * mean_x1_squared) + 0.5 * np.log(2 * np.pi * np.e * mean_variance) - H

# the fitted Gaussian of notebook 03, for reference
gaussian = tfd.MultivariateNormalTriL(loc=x_train.mean(axis=0),
                                      scale_tril=np.linalg.cholesky(np.cov(x_train, rowvar=False)).astype(np.float32))
gaussian_result = metrics.evaluate(gaussian, target, x_test)

print(f"{'model':<38}{'held-out NLL':>13}{'gap (KL)':>10}")
print(f"{'fitted Gaussian (notebook 03)':<38}{gaussian_result.nll:>13.3f}{gaussian_result.gap:>10.3f}")
print(f"{'no permutations, trained':<38}{no_perm_result.nll:>13.3f}{no_perm_result.gap:>10.3f}")
print(f"{'no permutations, best possible':<38}{floor + H:>13.3f}{floor:>10.3f}")
print(f"{'NICE (with permutations)':<38}{nice_result.nll:>13.3f}{nice_result.gap:>10.3f}")
print(f"{'perfect model (entropy bound)':<38}{H:>13.3f}{0:>10.3f}")

assert no_perm_result.gap > floor - 3 * no_perm_result.standard_error  # the floor is a theorem
# Training helps; the table above says by how much, and how it compares with the floor.
assert nice_result.gap < untrained_result.gap

# %% [markdown]
# Without permutations the stack is stuck near the floor of about 0.9 nats, barely
# better than a single Gaussian; the very same layers with swaps in between go well
# below it. The horizontal marginals show why: the target's is the exact profile of the
# letters (the share of ink in each column); the permutation-free stack can only offer a
# Gaussian, while NICE follows the letters.

# %%
rng = np.random.default_rng(1)
z = rng.standard_normal((50_000, 2)).astype(np.float32)
fig, axes = plt.subplots(1, 2, figsize=(13, 3.2))
for ax, (name, model, result) in zip(axes, [("without permutations", no_perm, no_perm_result),
                                            ("NICE", flow, nice_result)]):
    edges = left + np.arange(target.ink.shape[1] + 1) * delta
    ax.stairs(column_share / delta, edges, fill=True, color="0.8", label="target (exact)")
    samples = model.bijector.forward(z).numpy()
    ax.hist(samples[:, 0], bins=120, range=(-3.5, 3.5), density=True, histtype="step", lw=1.2,
            color=plotting.QUADRANT_COLORS[3], label="model samples")
    ax.set_title(f"{name}: horizontal marginal (gap {result.gap:.2f} nats)", fontsize=10)
    ax.set_xlabel("$x_1$")
    ax.legend(frameon=False, fontsize=8)
axes[0].set_ylabel("density")
fig.tight_layout()
plt.show()
plotting.plot_density(no_perm, target, resolution=300,
                      title=f"without permutations: learned density, gap {no_perm_result.gap:.2f} nats")
plt.show()

# %% [markdown]
# ## Summary
#
# * NICE stacks additive couplings with a permutation (in 2-D, a swap) between them and
#   ends with a diagonal scaling $x = e^{s}\odot h$.
# * Its log-density is $\log q(x) = \log\mathcal{N}(f^{-1}(x)) - \sum_d s_d$: couplings and
#   permutations have log-det 0, only the scaling changes volume, by the same factor
#   everywhere. The training loss is $\tfrac1B\sum_b \tfrac12\|f^{-1}(x_b)\|^2 + \sum_d s_d$ + const.
# * Because the volume change is global, NICE's density on the word inherits the bumps of
#   the Gaussian; it cannot be made flat where the target is flat.
# * Without permutations the horizontal coordinate is never transformed (only scaled):
#   the model is stuck at a floor we computed exactly from the picture, close to a
#   plain Gaussian. The permutations are what lets every coordinate be transformed.
# * Trained for a few thousand steps, NICE's held-out NLL sits well below both Gaussians
#   and the permutation-free floor, but still roughly half a nat above the entropy bound.
#
# Next: [05 · RealNVP: affine coupling](05_realnvp.ipynb) gives every coupling its own
# scale, which lets the flow concentrate probability locally.

# %% [markdown]
# ## Exercises

# %% [markdown]
# ### Exercise 1: repair the broken stack
#
# Write `insert_swaps(layers)`: given a list of bijectors in forward order, return a new
# list with a swap `tfb.Permute([1, 0])` between every two consecutive *coupling* layers
# (not before the final scaling). The checks assemble the repaired stack, verify with
# autodiff that the horizontal output now depends on the vertical input, train it
# briefly and require it to beat the permutation-free floor. Then look at its layer grid
# and explain in one sentence what each swap does to the picture.

# %%
def insert_swaps(layers):
    ### BEGIN SOLUTION hint: a swap belongs only between two couplings: look at each layer together with the one after it
    repaired = []
    for layer, following in zip(layers, layers[1:] + [None]):
        repaired.append(layer)
        if isinstance(layer, bijectors.AdditiveCoupling) and isinstance(following, bijectors.AdditiveCoupling):
            repaired.append(tfb.Permute(permutation=[1, 0], name=f"swap_after_{layer.name}"))
    return repaired
    ### END SOLUTION


broken = stack_without_permutations(seed=1)
forward_layers = insert_swaps(flows.layers(broken))
assert [type(layer).__name__ for layer in forward_layers] == \
    ["AdditiveCoupling", "Permute"] * 3 + ["AdditiveCoupling", "ScaleMatvecDiag"]
repaired = tfd.TransformedDistribution(broken.distribution, tfb.Chain(list(reversed(forward_layers))),
                                       name="repaired")
repaired_history = train.fit(repaired, x_train, steps=1500,
                             learning_rate=3e-3, seed=0)
repaired_result = metrics.evaluate(repaired, target, x_test)
print(f"repaired stack: {repaired_result}  (floor without permutations: {floor:.3f})")

z = tf.constant(np.random.default_rng(2).standard_normal((256, 2)), tf.float32)
with tf.GradientTape() as tape:
    tape.watch(z)
    x = repaired.bijector.forward(z)
jacobian = tape.batch_jacobian(x, z).numpy()           # [batch, output, input]
assert np.max(np.abs(jacobian[:, 0, 1])) > 1e-2, "x1 should now depend on z2"
assert repaired_result.gap < untrained_result.gap, "training the repaired stack should help"
plotting.plot_layer_grid(repaired, num_samples=4000, seed=0, ncols=5)
plt.show()

# %% [markdown]
# ### Exercise 2: the couplings preserve volume, checked by autodiff
#
# Write `log_abs_det_jacobian(bijector, z)`: for points `z` of shape `[batch, 2]`, compute
# the Jacobian of `bijector.forward` at each point with `tf.GradientTape.batch_jacobian`
# and return $\log|\det J|$ per point (use `tf.linalg.slogdet`). The checks apply it to
# the trained NICE flow *without* its scaling layer (log-det 0 everywhere, although the
# networks are far from zero), to the whole flow ($\sum_d s_d$ everywhere), and to an
# affine coupling with a random network, whose log-det varies from point to point.

# %%
def log_abs_det_jacobian(bijector, z):
    ### BEGIN SOLUTION hint: notebook 02 built Jacobians with tf.GradientTape.batch_jacobian; tf.linalg.slogdet returns log|det| second
    z = tf.convert_to_tensor(z, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(z)
        x = bijector.forward(z)
    return tf.linalg.slogdet(tape.batch_jacobian(x, z))[1].numpy()
    ### END SOLUTION


z = np.random.default_rng(3).uniform(-3, 3, size=(500, 2)).astype(np.float32)
couplings_only = tfb.Chain(list(reversed(flows.layers(flow)[:-1])))  # the trained NICE flow minus the scaling
affine = bijectors.AffineCoupling(bijectors.half_mask(2),
                                  network=bijectors.MLP(1, 2, (16,), seed=4, zero_last=False))
expected = affine.forward_log_det_jacobian(z, event_ndims=1).numpy()
assert np.std(expected) > 0.05  # a genuinely point-dependent log-det
# By autodiff means without the library's log-determinants: they raise inside these checks.
no_library = AssertionError("compute it by autodiff, not with the bijector's log-det methods")
with mock.patch.object(tfb.Bijector, "forward_log_det_jacobian", side_effect=no_library), \
        mock.patch.object(tfb.Bijector, "inverse_log_det_jacobian", side_effect=no_library):
    # atol: a determinant computed in float32 from large Jacobian entries carries round-off of ~1e-4
    np.testing.assert_allclose(log_abs_det_jacobian(couplings_only, z), 0.0, atol=1e-3)
    np.testing.assert_allclose(log_abs_det_jacobian(flow.bijector, z), np.sum(log_scale), atol=1e-3)
    np.testing.assert_allclose(log_abs_det_jacobian(affine, z), expected, atol=1e-4)

# %% [markdown]
# ### Exercise 3: NICE on your own word
#
# Train a NICE flow on a word of your choice and get its held-out gap below the threshold
# (and below the fitted Gaussian's), in at most `budget` training steps. You choose the
# number of layers, the hidden units and the learning rate; call the flow `word_flow` and
# the History that `train.fit` returns `word_history`. The cell then plots the density.
# Which letters does NICE find hardest, and why?

# %%
word = data.PictureDistribution.from_text("NICE")  # put your own word here
word_train = word.sample(50_000, seed=0)
word_test = word.sample(10_000, seed=1)
budget = 4000
threshold = 0.6   # nats: about where the letters become readable (compare the density plots above)

### BEGIN SOLUTION hint: flows.nice(...) and train.fit(..., steps=budget, learning_rate=...) as above
word_flow = flows.nice(num_layers=8, hidden_units=(128, 128), seed=0)
word_history = train.fit(word_flow, word_train, steps=budget, learning_rate=3e-3, seed=0)
### END SOLUTION

assert word_history.steps <= budget
word_result = metrics.evaluate(word_flow, word, word_test)
word_gaussian = tfd.MultivariateNormalTriL(loc=word_train.mean(axis=0),
                                           scale_tril=np.linalg.cholesky(np.cov(word_train, rowvar=False)).astype(np.float32))
print(f"NICE on {word.name!r}: {word_result}")
if word_history.steps == budget:  # a run that used its whole budget must reach the threshold
    assert word_result.gap < threshold, f"gap {word_result.gap:.3f} nats: not below {threshold}"
assert word_result.gap < metrics.evaluate(word_gaussian, word, word_test).gap
plotting.plot_density(word_flow, word, resolution=200)
plt.show()
