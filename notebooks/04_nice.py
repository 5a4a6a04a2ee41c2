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
# and Bengio, 2014). Besides the couplings it has one learned diagonal scaling, one
# log-scale $s_d$ per coordinate: the only layer of NICE that changes volume. The paper
# used four coupling layers; so does `flowlib.flows.nice` by default. In the paper the
# scaling is the last layer of the map from data to latent space, $z = S \odot h$
# (section 3.3, "Allowing rescaling"), so it sits at the *latent* end. `flowlib.flows.nice`
# puts it at the other end, as the last layer of the forward direction (latent $z$ to
# data $x$, TFP's convention), $x = \exp(s) \odot h$:
# $$ x = f(z) = S \circ g_4 \circ P \circ g_3 \circ P \circ g_2 \circ P \circ g_1 (z), $$
# with $g_i$ additive couplings, $P$ the swap of the two coordinates and $S$ the scaling.
# Both placements describe the same models: a diagonal scaling can be moved past an
# additive coupling, $S\,g(h) = g'(S h)$ with the network $m$ of $g$ replaced by
# $m'(u_1) = e^{s_2}\, m(e^{-s_1} u_1)$, and past a swap by swapping its two entries. The
# loss below does not depend on where the scaling sits.

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
# `train.fit` minimises $\mathcal{L}$ with Adam on random batches of points (its default
# batch size, printed below), the learning rate decaying along a cosine from the value we
# pass to 0. It also records the held-out NLL at regular intervals, so we can watch for
# overfitting.

# %%
history = train.fit(flow, x_train, steps=4000, learning_rate=3e-3,
                    seed=0, validation_data=x_test)
nice_result = metrics.evaluate(flow, target, x_test)
print(f"batches of {train.DEFAULT_BATCH_SIZE} points; held-out NLL recorded at steps "
      f"{history.validation_steps[0]}, {history.validation_steps[1]}, ...")
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
# Points of the base distribution, coloured by the quadrant they start in, and where
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
def permutation_free_floor(target):
    """The smallest gap (nats) any stack of additive couplings without permutations can reach on `target`."""
    delta = target.pixel_size
    left, _, _, top = target.extent
    column_x = left + (np.arange(target.ink.shape[1]) + 0.5) * delta   # centre of each pixel column
    row_y = top - (np.arange(target.ink.shape[0]) + 0.5) * delta       # centre of each pixel row
    column_share = target.ink.sum(axis=0) / target.ink.sum()           # p(x1 falls in column j)
    mean_x1_squared = np.sum(column_share * column_x**2) + delta**2 / 12
    variance_in_column = np.array([np.var(row_y[column]) if column.any() else 0.0 for column in target.ink.T])
    mean_variance = np.sum(column_share * variance_in_column) + delta**2 / 12
    return (0.5 * np.log(2 * np.pi * np.e * mean_x1_squared) + 0.5 * np.log(2 * np.pi * np.e * mean_variance)
            - target.entropy())


floor = permutation_free_floor(target)

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
# Without permutations the stack is stuck near its floor, barely
# better than a single Gaussian; the very same layers with swaps in between go well
# below it. The horizontal marginals show why: the target's is the exact profile of the
# letters (the share of ink in each column); the permutation-free stack can only offer a
# Gaussian, while NICE follows the letters.

# %%
rng = np.random.default_rng(1)
z = rng.standard_normal((50_000, 2)).astype(np.float32)
fig, axes = plt.subplots(1, 2, figsize=(13, 3.2))
delta, left = target.pixel_size, target.extent[0]
column_share = target.ink.sum(axis=0) / target.ink.sum()   # the exact horizontal marginal, column by column
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
#   one diagonal scaling: at the latent end in the paper, at the data end,
#   $x = e^{s}\odot h$, in `flowlib.flows.nice` (the same models either way).
# * Its log-density is $\log q(x) = \log\mathcal{N}(f^{-1}(x)) - \sum_d s_d$: couplings and
#   permutations have log-det 0, only the scaling changes volume, by the same factor
#   everywhere. The training loss is $\tfrac1B\sum_b \tfrac12\|f^{-1}(x_b)\|^2 + \sum_d s_d$ + const.
# * Because the volume change is global, NICE's density on the word inherits the bumps of
#   the Gaussian; it cannot be made flat where the target is flat.
# * Without permutations the horizontal coordinate is never transformed (only scaled):
#   the model is stuck at a floor we computed exactly from the picture, close to a
#   plain Gaussian. The permutations are what lets every coordinate be transformed.
# * Trained for a few thousand steps, NICE's held-out NLL sits well below both Gaussians
#   and the permutation-free floor, but still clearly above the entropy bound.
#
# Next: [05 · RealNVP: affine coupling](05_realnvp.ipynb) gives every coupling its own
# scale, which lets the flow concentrate probability locally.

# %% [markdown]
# ## Exercises

# %% [markdown]
# ### Exercise 1: put the swaps back
#
# Write `insert_swaps(layers)`: given a list of bijectors in forward order, return a new
# list with the same layer objects in the same order and a swap `tfb.Permute([1, 0])`
# between every two consecutive *coupling* layers (`bijectors.AdditiveCoupling`), and
# nowhere else: not next to a scaling layer, wherever that sits. The checks take the
# trained NICE flow apart, removing its swaps, and require your function to rebuild
# exactly the trained flow; then they try stacks of other lengths, with a scaling at the
# data end, at the latent end (as in the paper), between couplings, or none at all.
# The rebuilt flow is NICE itself, so its gap, printed at the end, is NICE's: the swaps
# alone take the stack below the permutation-free floor.

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


def check_exercise_1(insert_swaps, flow):
    def answer(layers):
        given = list(layers)
        try:
            got = list(insert_swaps(given))
        except NotImplementedError:
            raise
        except Exception as error:
            raise AssertionError(f"insert_swaps raised {type(error).__name__}: {error}") from error
        assert len(given) == len(layers) and all(a is b for a, b in zip(given, layers)), \
            "insert_swaps should return a new list and leave the one it is given as it was"
        return got

    def check_stack(layers, what):
        got = answer(layers)
        given = [g for g in got if any(g is layer for layer in layers)]
        assert len(given) == len(layers) and all(a is b for a, b in zip(given, layers)), \
            f"{what}: the given layers must all be there, once each, as the same objects and in the same order"
        probe = np.array([[1.0, 2.0], [-3.0, 0.5]], np.float32)
        expected_after = {id(a) for a, b in zip(layers, layers[1:])
                          if isinstance(a, bijectors.AdditiveCoupling) and isinstance(b, bijectors.AdditiveCoupling)}
        position = 0
        for layer in layers:
            assert got[position] is layer, f"{what}: nothing belongs before {layers[0].name}"
            position += 1
            inserted = []
            while position < len(got) and not any(got[position] is other for other in layers):
                inserted.append(got[position])
                position += 1
            if id(layer) in expected_after:
                assert len(inserted) == 1, f"{what}: after {layer.name} there should be one swap, found {len(inserted)} layers"
                assert isinstance(inserted[0], tfb.Bijector), f"{what}: a swap should be a bijector"
                np.testing.assert_array_equal(inserted[0].forward(probe).numpy(), probe[:, ::-1],
                                              err_msg=f"{what}: the layer after {layer.name} does not swap the two coordinates")
            else:
                assert not inserted, f"{what}: nothing belongs after {layer.name}"
        return got

    # 1. the trained NICE flow without its swaps: putting them back must give the trained flow
    trained = [layer for layer in flows.layers(flow) if not isinstance(layer, tfb.Permute)]
    rebuilt = tfb.Chain(list(reversed(check_stack(trained, "trained NICE"))))
    z = np.random.default_rng(7).normal(size=(300, 2)).astype(np.float32)
    np.testing.assert_allclose(rebuilt.forward(z).numpy(), flow.bijector.forward(z).numpy(), atol=1e-5,
                               err_msg="the rebuilt stack is not the trained NICE flow")
    # 2. other stacks, with small untrained couplings
    coupling = iter(bijectors.AdditiveCoupling(bijectors.half_mask(2), hidden_units=(4,), seed=i, name=f"c{i}")
                    for i in range(20))
    scaling = tfb.Scale(1.5, name="scaling")
    for layers, what in [([next(coupling), next(coupling), scaling], "two couplings, then a scaling"),
                         ([scaling] + [next(coupling) for _ in range(3)], "a scaling at the latent end"),
                         ([next(coupling), scaling, next(coupling), next(coupling)], "a scaling between couplings"),
                         ([next(coupling) for _ in range(5)], "five couplings, no scaling"),
                         ([next(coupling)], "a single coupling")]:
        check_stack(layers, what)
    print("Exercise 1: correct")


check_exercise_1(insert_swaps, flow)
without_swaps = [layer for layer in flows.layers(flow) if not isinstance(layer, tfb.Permute)]
rebuilt = tfd.TransformedDistribution(flow.distribution, tfb.Chain(list(reversed(insert_swaps(without_swaps)))))
print(f"rebuilt stack: gap {metrics.evaluate(rebuilt, target, x_test).gap:.3f} nats "
      f"(floor without permutations: {floor:.3f} nats)")

# %% [markdown]
# ### Exercise 2: the couplings preserve volume, checked by autodiff
#
# Write `log_abs_det_jacobian(forward, z)`: `forward` is any TensorFlow function that maps
# points of shape `[batch, d]` to points of the same shape; compute its Jacobian at each
# point of `z` by automatic differentiation (`tf.GradientTape.batch_jacobian`) and return
# $\log|\det J|$ per point, shape `[batch]` (`tf.linalg.slogdet` gives it). The checks
# apply it to the trained NICE flow *without* its scaling layer (log-det 0 everywhere,
# although the networks are far from zero: in float32, up to rounding, which grows where
# the Jacobian's entries are large), to the whole flow ($\sum_d s_d$ everywhere),
# to an affine coupling with a random network, whose log-det varies from point to point,
# and to a map of three coordinates whose Jacobian is full, not symmetric, with a
# negative determinant.

# %%
def log_abs_det_jacobian(forward, z):
    ### BEGIN SOLUTION hint: notebook 02 built Jacobians with tf.GradientTape.batch_jacobian; tf.linalg.slogdet returns log|det| second
    z = tf.convert_to_tensor(z, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(z)
        x = forward(z)
    return tf.linalg.slogdet(tape.batch_jacobian(x, z))[1].numpy()
    ### END SOLUTION


def check_exercise_2(log_abs_det_jacobian, flow):
    def answer(forward, points, what):
        calls = []

        def counted(x):
            calls.append(1)
            return forward(x)

        try:
            got = np.asarray(log_abs_det_jacobian(counted, points.copy()), dtype=np.float64)
        except NotImplementedError:
            raise
        except Exception as error:
            raise AssertionError(f"{what}: log_abs_det_jacobian raised {type(error).__name__}: {error}") from error
        assert calls, f"{what}: the Jacobian must come from calling forward"
        assert got.shape == (len(points),), f"{what}: expected one value per point, shape ({len(points)},), got {got.shape}"
        return got

    def map_in_three_d(matrix, a, b):
        A, a_t, b_t = tf.constant(matrix, tf.float32), tf.constant(a[1:], tf.float32), tf.constant(b, tf.float32)

        def three_d(x):
            x = tf.convert_to_tensor(x, tf.float32)
            g = tf.concat([x[:, :1], x[:, 1:] * tf.exp(a_t * tf.tanh(x[:, :-1]))], axis=1)
            return g @ tf.transpose(A) + b_t

        return three_d

    rng = np.random.default_rng(8)
    # x = A g(z) + b in 3-D: g_i = z_i exp(a_i tanh(z_{i-1})), A full and not symmetric, det A < 0
    matrix = rng.normal(size=(3, 3))
    if np.linalg.det(matrix) > 0:
        matrix[0] = -matrix[0]
    a, b = rng.uniform(-1, 1, size=3), rng.normal(size=3)
    points = rng.normal(scale=1.5, size=(300, 3)).astype(np.float32)
    expected = np.log(abs(np.linalg.det(matrix))) + np.sum(a[1:] * np.tanh(points[:, :-1]), axis=1)
    np.testing.assert_allclose(answer(map_in_three_d(matrix, a, b), points, "3-D map"), expected, atol=1e-4,
                               err_msg="wrong log|det J| for a map of three coordinates")
    z = rng.uniform(-3, 3, size=(400, 2)).astype(np.float32)
    affine = bijectors.AffineCoupling(bijectors.half_mask(2), network=bijectors.MLP(1, 2, (16,), seed=4, zero_last=False))
    got = answer(lambda x: affine.forward(x), z, "affine coupling")
    expected = affine.forward_log_det_jacobian(z, event_ndims=1).numpy()
    assert np.std(expected) > 0.05  # a genuinely point-dependent log-det
    np.testing.assert_allclose(got, expected, atol=1e-4, err_msg="wrong log-det for the affine coupling")
    def rounding(forward, points, log_det):
        """Per point, what float32 rounding can cost log|det J| of a 2x2 Jacobian: ad - bc
        cancels when its terms are large (a trained NICE has such points), so the tolerance
        grows with (|ad| + |bc|) / |det|."""
        x = tf.constant(points)
        with tf.GradientTape(persistent=True) as tape:  # persistent: a loop over outputs, no retracing
            tape.watch(x)
            y = forward(x)
        J = np.abs(tape.batch_jacobian(y, x, experimental_use_pfor=False).numpy().astype(np.float64))
        return 1e-4 + 1e-5 * (J[:, 0, 0] * J[:, 1, 1] + J[:, 0, 1] * J[:, 1, 0]) / np.exp(log_det)

    layers = flows.layers(flow)
    couplings = tfb.Chain(list(reversed(layers[:-1])))   # the trained NICE flow minus its scaling
    volume_change = answer(lambda x: couplings.forward(x), z, "NICE without scaling")
    far = np.abs(volume_change) > rounding(couplings.forward, z, 0.0)
    assert not far.any(), (f"the couplings and swaps of NICE should preserve volume: log|det J| = "
                           f"{volume_change[far][0]:.3g} at {z[far][0]}")
    sum_log_scale = np.sum(np.log(tf.convert_to_tensor(layers[-1].scale.diag).numpy()))
    whole = answer(lambda x: flow.bijector.forward(x), z, "whole NICE flow")
    far = np.abs(whole - sum_log_scale) > rounding(flow.bijector.forward, z, sum_log_scale)
    assert not far.any(), (f"the whole flow's log-det should be the sum of the log-scales, {sum_log_scale:.4f}; "
                           f"got {whole[far][0]:.4f} at {z[far][0]}")
    print("Exercise 2: correct")
    return volume_change


volume_change = check_exercise_2(log_abs_det_jacobian, flow)
print(f"NICE without its scaling: log|det J| between {np.min(volume_change):.1e} and {np.max(volume_change):.1e}; "
      f"median |log|det J|| {np.median(np.abs(volume_change)):.1e}")

# %% [markdown]
# ### Exercise 3: NICE on your own word
#
# Pick a word, and choose a NICE flow for it: the number of layers and the hidden units
# (call the untrained flow `word_flow`) and Adam's learning rate (`word_learning_rate`).
# The cell first checks what can be checked before training: `word_flow` is made of
# additive couplings, permutations and a diagonal scaling only, on the standard normal
# base, is untrained (a new flow is the identity map, as `flows.nice` builds it), and its
# couplings between them transform *both* coordinates (otherwise it is a stack without
# permutations, and no training can take it below the floor); the learning rate is
# positive, and `budget` is left as the cell sets it. It then trains the flow
# for `budget` steps with `train.fit` and requires its held-out gap to be below the
# permutation-free floor of your word, computed as above, and below the gap of the
# fitted Gaussian. It then plots the density. Which letters does NICE find hardest,
# and why?

# %%
word = data.PictureDistribution.from_text("NICE")  # put your own word here
word_train = word.sample(50_000, seed=0)
word_test = word.sample(10_000, seed=1)
budget = 4000

### BEGIN SOLUTION hint: flows.nice(num_layers=..., hidden_units=..., seed=...) as above, and a learning rate like the ones used above
word_flow = flows.nice(num_layers=8, hidden_units=(128, 128), seed=0)
word_learning_rate = 3e-3
### END SOLUTION


def check_exercise_3(word_flow, word_learning_rate, word, word_train, word_test, budget):
    kinds = (bijectors.AdditiveCoupling, tfb.Permute, tfb.ScaleMatvecDiag)
    layers = flows.layers(word_flow)
    assert all(isinstance(layer, kinds) for layer in layers), \
        "a NICE flow has only additive couplings, permutations and a diagonal scaling"
    probe = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    standard_normal = -0.5 * np.sum(probe**2, axis=1) - np.log(2 * np.pi)
    assert np.allclose(word_flow.distribution.log_prob(probe).numpy(), standard_normal, atol=1e-4), \
        "the base distribution of a NICE flow is the standard normal in 2-D"
    # which of the latent coordinates each coupling transforms, following the permutations
    order, transformed = np.arange(2), set()
    for layer in layers:
        if isinstance(layer, tfb.Permute):
            order = order[np.asarray(tf.convert_to_tensor(layer.permutation))]
        elif isinstance(layer, bijectors.AdditiveCoupling):
            transformed |= set(order[~np.asarray(layer.mask, dtype=bool)].tolist())
    assert transformed == {0, 1}, \
        "the couplings transform only one coordinate: a stack without permutations cannot beat the floor"
    untrained = np.allclose(metrics.log_prob(word_flow, word_test[:500]),
                            word_flow.distribution.log_prob(word_test[:500]).numpy(), atol=1e-5)
    assert untrained, "word_flow should be untrained: this cell trains it, within the budget"
    assert np.isfinite(word_learning_rate) and word_learning_rate > 0, "the learning rate should be a positive number"
    assert budget == 4000, f"the budget is 4000 training steps, not {budget}"
    history = train.fit(word_flow, word_train, steps=budget, learning_rate=word_learning_rate, seed=0)
    result = metrics.evaluate(word_flow, word, word_test)
    word_gaussian = tfd.MultivariateNormalTriL(
        loc=word_train.mean(axis=0), scale_tril=np.linalg.cholesky(np.cov(word_train, rowvar=False)).astype(np.float32))
    gaussian_gap = metrics.evaluate(word_gaussian, word, word_test).gap
    word_floor = permutation_free_floor(word)
    print(f"NICE on {word.name!r} after {history.steps} steps: {result}")
    print(f"permutation-free floor {word_floor:.3f} nats, fitted Gaussian {gaussian_gap:.3f} nats")
    assert result.gap < word_floor, f"gap {result.gap:.3f} nats: not below the permutation-free floor"
    assert result.gap < gaussian_gap, f"gap {result.gap:.3f} nats: not below the fitted Gaussian's"
    print("Exercise 3: correct")
    return history


word_history = check_exercise_3(word_flow, word_learning_rate, word, word_train, word_test, budget)
plotting.plot_density(word_flow, word, resolution=200)
plt.show()
