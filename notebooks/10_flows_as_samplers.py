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
# # 10 · Flows as samplers: training by the reverse KL divergence
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/normalizing-flows-tf2/flowlib/blob/main/notebooks/10_flows_as_samplers.ipynb)
#
# **After this notebook you can** train a flow to sample from a density that you know only
# as a formula up to a constant, with no data at all, by minimising the reverse KL
# divergence $\mathrm{KL}(q \,\|\, p)$ on the flow's own samples; derive that loss and its
# gradient by the reparameterisation trick and say why the unknown normalising constant
# does not matter; explain, and measure, why an inverse autoregressive flow (IAF) suits
# this job and a masked autoregressive flow (MAF) does not; and show, in figures and in
# exact numbers on a grid, that the reverse KL seeks one mode where the forward KL covers
# them all.
#
# **Prerequisites:** [02 · Change of variables](02_change_of_variables.ipynb) (the
# log-density of a flow) and [08 · Beyond affine coupling](08_beyond_affine_coupling.ipynb)
# (MAF, IAF and which direction of each costs $D$ passes).

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

from flowlib import flows, train, variational

tfb, tfd = tfp.bijectors, tfp.distributions
tf.get_logger().setLevel("ERROR")  # each training run compiles its own step

# %% [markdown]
# ## 1. A density known only up to a constant
#
# Until now every flow learned from **samples**: we had points of the target and maximised
# their likelihood. Often it is the other way round. Physics gives an energy $E(x)$, Bayes'
# rule gives a posterior $p(\theta \mid \text{data}) \propto p(\text{data} \mid \theta)\,
# p(\theta)$: we can *evaluate* an unnormalised density $\tilde p(x) = Z\,p(x)$ at any
# point, but we have no samples, and $Z = \int \tilde p(x)\,dx$ is unknown. A flow can
# still learn $p$, and afterwards it draws independent samples in one pass, with the exact
# density of each (Rezende and Mohamed, 2015, *Variational Inference with Normalizing
# Flows*).
#
# Our first target is a **banana**: $x_1 \sim \mathcal N(0, a^2)$ and, given $x_1$, $x_2
# \sim \mathcal N(c\,x_1^2 - 1, b^2)$. We hand the trainer only the log of the unnormalised
# density (a constant is added on purpose, so the function is *not* normalised):
#
# $$\log \tilde p(x) = -\frac{x_1^2}{2a^2} - \frac{(x_2 - c\,x_1^2 + 1)^2}{2 b^2} + \text{const}.$$
#
# Because we built it, we happen to know $Z = 2\pi a b\, e^{\text{const}}$; the training
# never uses it, but it lets us report the divergence itself.

# %%
A, B, C, OFFSET = 2.0, 0.5, 0.25, 5.0


def banana_log_density(x):
    """log p~(x) of the banana, x: [n, 2] -> [n]; unnormalised (OFFSET added on purpose)."""
    x1, x2 = x[..., 0], x[..., 1]
    return -0.5 * (x1 / A) ** 2 - 0.5 * ((x2 - C * x1**2 + 1.0) / B) ** 2 + OFFSET


BANANA_LOG_Z = float(np.log(2 * np.pi * A * B) + OFFSET)
BANANA_EXTENT = (-7.0, 7.0, -3.0, 9.0)
banana_points, banana_shape, banana_area = variational.grid(BANANA_EXTENT, 240)
banana_log_p = banana_log_density(banana_points.astype(np.float64))
print(f"log Z = {BANANA_LOG_Z:.4f}; the grid integral of p~ gives "
      f"{np.log(np.exp(banana_log_p).sum() * banana_area):.4f}")

# %% [markdown]
# ## 2. The reverse KL divergence, and why $Z$ drops out
#
# Let $q_\theta$ be the flow: $x = f_\theta(z)$ with $z \sim \mathcal N(0, I)$ and, by the
# change of variables of notebook 02, $\log q_\theta(x) = \log \mathcal N(z) - \log|\det
# \partial f_\theta / \partial z|$. We cannot compute the **forward** divergence
# $\mathrm{KL}(p\,\|\,q) = \mathbb E_p[\log p - \log q]$, the one maximum likelihood
# minimises, because it is an average over samples of $p$, which we do not have. The
# **reverse** divergence averages over the flow's own samples instead:
#
# $$\mathrm{KL}(q_\theta \,\|\, p) = \mathbb E_{x \sim q_\theta}\big[\log q_\theta(x) - \log p(x)\big]
#   = \underbrace{\mathbb E_{x \sim q_\theta}\big[\log q_\theta(x) - \log \tilde p(x)\big]}_{\mathcal L(\theta)} + \log Z .$$
#
# - $\log Z$ does not depend on $\theta$, so $\nabla_\theta \mathrm{KL} = \nabla_\theta
#   \mathcal L$: we minimise $\mathcal L$ and never need $Z$. Since $\mathrm{KL} \ge 0$,
#   $\mathcal L \ge -\log Z$: the loss is a bound on $-\log Z$ (the negative "evidence
#   lower bound" of variational inference), tight exactly when $q_\theta = p$.
# - The expectation is over a distribution that depends on $\theta$. The
#   **reparameterisation trick** moves $\theta$ inside: $x = f_\theta(z)$ with $z$ from a
#   fixed base, so $\mathcal L(\theta) = \mathbb E_{z}\big[\log q_\theta(f_\theta(z)) -
#   \log \tilde p(f_\theta(z))\big]$ and $\nabla_\theta \mathcal L = \mathbb E_z[\nabla_\theta
#   (\dots)]$, estimated by the average over a batch of $z$; automatic differentiation
#   does the rest, through the flow *and* through $\log \tilde p$.
# - Each sample needs $\log q_\theta$ **of itself**. Walking from $z$ to $x$ we get both:
#   each layer hands over its output and its log-determinant, and $\log q(x) = \log
#   \mathcal N(z) - \sum_k \log|\det J_k|$. No inverse is ever needed.
#
# Written out, for any flow whose layers offer `forward_and_log_det` (flowlib's layers do;
# a plain TFP permutation gives `forward` and `forward_log_det_jacobian`):

# %%
def sample_and_log_prob_by_hand(flow, num_samples, seed):
    """x ~ q and log q(x), in one walk from the base to the data."""
    z = flow.distribution.sample(num_samples, seed=seed)
    log_q = flow.distribution.log_prob(z)
    h = z
    for layer in flows.layers(flow):  # forward order: latent to data
        if hasattr(layer, "forward_and_log_det"):
            h, log_det = layer.forward_and_log_det(h)
        else:
            h, log_det = layer.forward(h), layer.forward_log_det_jacobian(h, event_ndims=1)
        log_q -= log_det
    return h, log_q


def reverse_kl_loss_by_hand(flow, log_density, num_samples, seed):
    x, log_q = sample_and_log_prob_by_hand(flow, num_samples, seed)
    return tf.reduce_mean(log_q - log_density(x))


demo = flows.iaf(2, num_layers=4, seed=3)
for variable in demo.trainable_variables:  # a fresh IAF is the identity: give it a shape
    variable.assign(variable + 0.1 * tf.random.stateless_normal(variable.shape, seed=[7, 0]))
seed = tf.constant([1, 0])  # a stateless seed: the same pair, the same samples
x, log_q = sample_and_log_prob_by_hand(demo, 1000, seed)
difference = np.abs(log_q.numpy() - demo.log_prob(tf.constant(x.numpy())).numpy()).max()
print(f"largest difference from the flow's own log_prob: {difference:.1e} nats")
assert difference < 1e-3
loss = float(reverse_kl_loss_by_hand(demo, banana_log_density, 1000, seed))
reused = float(variational.reverse_kl_loss(demo, banana_log_density, 1000, seed=seed))
print(f"loss by hand {loss:.4f}, flowlib.variational.reverse_kl_loss {reused:.4f}; "
      f"KL(q || p) of this untrained flow is about {loss + BANANA_LOG_Z:.2f} nats")
assert abs(loss - reused) < 1e-4

# %% [markdown]
# `flowlib.variational` holds the same two functions (`sample_and_log_prob`,
# `reverse_kl_loss`) and a trainer, `fit_reverse_kl(flow, log_unnormalized_density,
# steps=..., batch_size=..., learning_rate=..., seed=...)`: Adam with a cosine schedule, a
# progress bar, and a guard that undoes a stretch of steps whose loss or weights turned NaN
# or infinite (it restores the last good weights, halves the learning rate and says so).

# %% [markdown]
# ## 3. IAF against MAF: who can afford to score its own samples?
#
# The loss needs, for every step, a batch of **samples** and their **log-densities**. From
# notebook 08: an IAF layer computes $x_i = z_i\,e^{s_i(z_{<i})} + t_i(z_{<i})$ from the
# *input* $z$, so sampling and its log-determinant $\sum_i s_i$ cost one network pass; a
# MAF layer conditions on the *output*, $x_i = z_i\,e^{s_i(x_{<i})} + t_i(x_{<i})$, so
# sampling costs $D$ passes, one per coordinate. For maximum likelihood it was the other
# way round (MAF scores data in one pass, IAF needs $D$). This is why Kingma et al. (2016,
# *Improved Variational Inference with Inverse Autoregressive Flow*) introduced the IAF
# for variational inference, where a density is only ever needed at the model's own
# samples.
#
# First the cost of one training step (samples, log-densities and the gradient), for
# flows of two layers in $D$ dimensions on a Gaussian target:

# %%
def compiled_step(flow):
    """One compiled loss-and-gradient step on 256 samples of a Gaussian target."""
    def log_density(x):
        return -0.5 * tf.reduce_sum(x**2, axis=-1)

    @tf.function(autograph=False)
    def step(seed):
        with tf.GradientTape() as tape:
            loss = variational.reverse_kl_loss(flow, log_density, 256, seed=seed)
        return tape.gradient(loss, flow.trainable_variables)

    step(tf.constant([0, 0]))  # compile
    return step


steps = {(name, dim): compiled_step(build(dim, num_layers=2, seed=0))
         for dim in (2, 16) for name, build in (("IAF", flows.iaf), ("MAF", flows.maf))}
times = {key: [] for key in steps}
for i in range(30):  # the four flows take turns, so a busy moment slows them alike
    for key, step in steps.items():
        start = time.perf_counter()
        step(tf.constant([1, i]))
        times[key].append(time.perf_counter() - start)
cost = {key: 1000 * min(values) for key, values in times.items()}  # the least disturbed run
for dim in (2, 16):
    print(f"D = {dim:2d}: IAF {cost['IAF', dim]:6.1f} ms per step, MAF {cost['MAF', dim]:6.1f} ms "
          f"({cost['MAF', dim] / cost['IAF', dim]:.1f}x)")

# %% [markdown]
# Now both trained on the banana with the same budget of steps, batch and learning rate.
# Their quality is measured twice: by the estimate $\mathcal L + \log Z$ of
# $\mathrm{KL}(q\,\|\,p)$ on fresh samples (we know $\log Z$ here), and exactly, in both
# directions, on a grid of the plane (section 4 explains the grid).

# %%
STEPS = 1000
banana_flows, banana_runs = {}, {}
for name, build in (("IAF", flows.iaf), ("MAF", flows.maf)):
    flow = build(2, num_layers=6, seed=0)
    history = variational.fit_reverse_kl(flow, banana_log_density, steps=STEPS, batch_size=256,
                                         learning_rate=1e-3, seed=0, steps_per_call=50)
    calls = len(history.times)
    per_step = ((history.times[-1] - history.times[0]) / (history.steps - 50) if calls > 1
                else history.seconds / history.steps)
    estimate = float(variational.reverse_kl_loss(flow, banana_log_density, 20_000, seed=99))
    log_q = flow.log_prob(banana_points).numpy()
    forward_kl, reverse_kl = variational.grid_kl(banana_log_p.reshape(banana_shape),
                                                 log_q.reshape(banana_shape), banana_area)
    banana_flows[name] = flow
    banana_runs[name] = dict(ms=1000 * per_step, seconds=history.seconds, history=history,
                             kl_estimate=estimate + BANANA_LOG_Z, forward=forward_kl,
                             reverse=reverse_kl, mass=np.exp(log_q).sum() * banana_area)
print(f"{'flow':<5} {'ms/step':>8} {'total (s)':>10} {'KL(q||p) sampled':>17} "
      f"{'KL(q||p) grid':>14} {'KL(p||q) grid':>14} {'∫q on grid':>11}")
for name, r in banana_runs.items():
    print(f"{name:<5} {r['ms']:8.2f} {r['seconds']:10.1f} {r['kl_estimate']:17.4f} "
          f"{r['reverse']:14.4f} {r['forward']:14.4f} {r['mass']:11.4f}")
    losses = r["history"].loss
    assert np.mean(losses[-20:]) < np.mean(losses[:20]), f"{name}: the loss did not go down"
    assert abs(r["mass"] - 1) < 0.02, f"{name}: the grid misses part of the flow's mass"

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 4))
left, right, bottom, top = BANANA_EXTENT
target_picture = np.exp(banana_log_p - BANANA_LOG_Z).reshape(banana_shape)
axes[0].imshow(target_picture, extent=BANANA_EXTENT, origin="lower", cmap="magma")
axes[0].set_title("target p (shown normalised)")
for ax, (name, flow) in zip(axes[1:], banana_flows.items()):
    samples = flow.sample(3000, seed=5).numpy()
    ax.contour(*np.meshgrid(np.unique(banana_points[:, 0]), np.unique(banana_points[:, 1])),
               target_picture, levels=5, colors="grey", linewidths=0.7)
    ax.scatter(samples[:, 0], samples[:, 1], s=1, alpha=0.4, color="tab:blue")
    ax.set_title(f"{name}: samples over p's contours")
for ax in axes:
    ax.set(xlim=(left, right), ylim=(bottom, top), aspect="equal")
fig.tight_layout()
plt.show()

# %%
iaf, maf = banana_runs["IAF"], banana_runs["MAF"]
display(Markdown(
    f"With the same {STEPS:,} steps, an IAF step took {iaf['ms']:.1f} ms and a MAF step "
    f"{maf['ms']:.1f} ms ({maf['ms'] / iaf['ms']:.1f} times as long), and the two ended "
    f"{'close' if abs(iaf['reverse'] - maf['reverse']) < 0.05 else 'apart'} in quality: "
    f"KL(q‖p) = {iaf['reverse']:.3f} nats (IAF) and {maf['reverse']:.3f} nats (MAF) on the grid. "
    f"In two dimensions a MAF samples in only two passes per layer, which is little next to "
    f"the rest of a step (drawing $z$, the target, the gradient, Adam). The difference grows "
    f"with $D$: from $D = 2$ to $D = 16$ a MAF step went from "
    f"{cost['MAF', 2]:.1f} to {cost['MAF', 16]:.1f} ms and an IAF step from {cost['IAF', 2]:.1f} "
    f"to {cost['IAF', 16]:.1f} ms, so at $D = 16$ a MAF step costs as much as "
    f"{cost['MAF', 16] / cost['IAF', 16]:.0f} IAF steps. The two models are the same family; "
    f"only the direction that is cheap differs."))

# %% [markdown]
# ## 4. Forward against reverse KL: covering the modes or picking one
#
# The two divergences punish different mistakes. $\mathrm{KL}(p\,\|\,q) = \mathbb E_p[\log
# p - \log q]$ is huge wherever $p$ has mass and $q$ has almost none: a model trained by
# maximum likelihood must **cover** every mode, even at the price of mass in between.
# $\mathrm{KL}(q\,\|\,p) = \mathbb E_q[\log q - \log p]$ is huge wherever *$q$* puts mass
# and $p$ has almost none, and costs nothing where $q$ is absent: a model trained by the
# reverse KL is happy to sit on **one** mode, and its samples never visit the region
# between modes that its gradient would have to cross.
#
# The target: three well-separated Gaussian bumps of unequal weight. For the forward
# direction we give the flow samples of it and train by maximum likelihood (`train.fit`, as
# in every notebook so far); for the reverse direction only its log-density. Same flow,
# same steps.

# %%
WEIGHTS = np.array([0.5, 0.3, 0.2])
MEANS = np.array([[-3.0, -2.0], [3.0, -1.5], [0.5, 3.5]])
SPREAD = 0.6
mixture = tfd.MixtureSameFamily(
    tfd.Categorical(probs=WEIGHTS.astype(np.float32)),
    tfd.MultivariateNormalDiag(MEANS.astype(np.float32), tf.fill([3, 2], SPREAD)))


def mixture_log_density(x):
    return mixture.log_prob(x) + 2.0  # unnormalised on purpose


x_mixture = mixture.sample(50_000, seed=1).numpy()
MIXTURE_EXTENT = (-7.0, 7.0, -6.0, 7.5)
mix_points, mix_shape, mix_area = variational.grid(MIXTURE_EXTENT, 200)
mix_log_p = mixture_log_density(mix_points).numpy().astype(np.float64)

two_ways = {}
flow = flows.realnvp(2, num_layers=6, normalization="none", seed=0)
train.fit(flow, x_mixture, steps=STEPS, seed=0)
two_ways["forward KL (maximum likelihood)"] = flow
flow = flows.realnvp(2, num_layers=6, normalization="none", seed=0)
variational.fit_reverse_kl(flow, mixture_log_density, steps=STEPS, seed=0)
two_ways["reverse KL (own samples)"] = flow

# %% [markdown]
# **Measured on a grid.** On a fine grid of cells over the box where all the mass lies,
# the target's density, normalised on the grid, is $p_{ij} = \tilde p(c_{ij}) / \sum
# \tilde p(c_{kl})\,\Delta$ at the cell centres $c_{ij}$ ($\Delta$ the cell area), and the
# flow's density is its exact `log_prob` there. Both divergences are then sums,
# $\mathrm{KL}(p\,\|\,q) \approx \sum_{ij} p_{ij} (\log p_{ij} - \log q_{ij})\,\Delta$ and
# the same with $p$ and $q$ swapped (`variational.grid_kl`), and $\sum q_{ij}\,\Delta$
# says how much of the flow's mass the grid holds. Each cell belongs to the mode whose
# centre is nearest; the mass of the flow in each mode's region is set beside the
# target's.

# %%
labels = np.argmin(((mix_points[:, None, :] - MEANS[None]) ** 2).sum(axis=-1), axis=1)
p_grid = np.exp(mix_log_p - mix_log_p.max())
p_grid /= p_grid.sum() * mix_area
target_share = np.array([p_grid[labels == k].sum() * mix_area for k in range(3)])
measured = {}
for name, flow in two_ways.items():
    log_q = flow.log_prob(mix_points).numpy().astype(np.float64)
    q_grid = np.exp(log_q)
    forward_kl, reverse_kl = variational.grid_kl(mix_log_p.reshape(mix_shape),
                                                 log_q.reshape(mix_shape), mix_area)
    share = np.array([q_grid[labels == k].sum() * mix_area for k in range(3)])
    measured[name] = dict(forward=forward_kl, reverse=reverse_kl, mass=q_grid.sum() * mix_area,
                          share=share, q_grid=q_grid)
print(f"{'':34} {'KL(p||q)':>9} {'KL(q||p)':>9} {'∫q':>7}   mass in mode 1, 2, 3")
print(f"{'target':34} {0:9.3f} {0:9.3f} {1:7.3f}   "
      + ", ".join(f"{s:.3f}" for s in target_share))
for name, m in measured.items():
    print(f"{name:34} {m['forward']:9.3f} {m['reverse']:9.3f} {m['mass']:7.4f}   "
          + ", ".join(f"{s:.3f}" for s in m["share"]))
    assert abs(m["mass"] - 1) < 0.02, f"{name}: the grid misses part of the flow's mass"

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 4.4))
axes[0].imshow(p_grid.reshape(mix_shape), extent=MIXTURE_EXTENT, origin="lower", cmap="magma")
axes[0].set_title("target p: weights " + ", ".join(f"{w:.1f}" for w in WEIGHTS))
for ax, (name, m) in zip(axes[1:], measured.items()):
    ax.imshow(m["q_grid"].reshape(mix_shape), extent=MIXTURE_EXTENT, origin="lower", cmap="magma")
    ax.set_title(f"{name}\nKL(p‖q) {m['forward']:.2f}, KL(q‖p) {m['reverse']:.2f} nats", fontsize=10)
for ax in axes:
    for k, (mx, my) in enumerate(MEANS):
        ax.annotate(str(k + 1), (mx, my), color="white", ha="center", va="center")
    ax.set(xlim=MIXTURE_EXTENT[:2], ylim=MIXTURE_EXTENT[2:], aspect="equal")
fig.tight_layout()
plt.show()

# %%
forward_run, reverse_run = measured.values()
kept = np.flatnonzero(reverse_run["share"] > 0.05)
lines = [
    f"The maximum-likelihood flow puts {', '.join(f'{s:.2f}' for s in forward_run['share'])} of "
    f"its mass in the three modes (the target: {', '.join(f'{s:.2f}' for s in target_share)}); "
    f"the reverse-KL flow puts {', '.join(f'{s:.2f}' for s in reverse_run['share'])}: it keeps "
    f"{len(kept)} of the 3 modes ({', '.join(str(k + 1) for k in kept)}).",
    f"The flows' grid densities integrate to {forward_run['mass']:.4f} and "
    f"{reverse_run['mass']:.4f}. On the forward divergence the maximum-likelihood flow scores "
    f"{forward_run['forward']:.3f} nats against {reverse_run['forward']:.3f}; on the reverse one, "
    f"the very quantity the second flow minimised, it scores {forward_run['reverse']:.3f} against "
    f"{reverse_run['reverse']:.3f} nats"
    + (": the maximum-likelihood flow is better on both, so the reverse-KL flow did not find the "
       "best flow of its own loss, it stopped in a local minimum." if
       forward_run["reverse"] < reverse_run["reverse"] else
       ": each flow wins on the divergence it was trained on."),
]
if len(kept) == 1:
    k = kept[0]
    lines.append(
        f"A flow that sits on mode {k + 1} alone, with that mode's shape, has KL(q‖p) = "
        f"$-\\log w_{k + 1}$ = {-np.log(WEIGHTS[k]):.3f} nats: the reverse KL charges only "
        f"for the weight the flow leaves out, however much of $p$ it never visits; the forward KL of the same flow is "
        f"enormous, because $p$ has mass where $q$ has almost none. "
        + ("It kept the heaviest mode." if k == np.argmax(WEIGHTS) else
           f"It did not even keep the heaviest mode (weight {WEIGHTS.max():.1f}): which mode wins "
           f"is decided by the starting flow and its first samples, and the loss has no way to "
           f"move mass across the empty region in between."))
display(Markdown("\n\n".join(lines)))

# %% [markdown]
# In practice the reverse KL's mode-seeking is the price of not needing samples. Remedies
# keep the loss but help the flow find all the modes: anneal the target (start from
# $\tilde p^{\beta}$ with small $\beta$, which flattens the barriers, and raise $\beta$ to
# 1), use several restarts, or reweight the flow's samples by $\tilde p / q$ (importance
# sampling), which corrects expectations as long as $q$ still has mass on every mode.
#
# ## Summary
#
# - With only $\log \tilde p$ known, a flow is trained by minimising $\mathcal L =
#   \mathbb E_q[\log q - \log \tilde p] = \mathrm{KL}(q\,\|\,p) - \log Z$ on its own
#   samples; $\log Z$ has no gradient, and $\mathcal L \ge -\log Z$.
# - The reparameterisation $x = f_\theta(z)$ makes the gradient an average over the fixed
#   base; one walk from $z$ to $x$ gives each sample and its log-density.
# - An IAF samples and scores its samples in one pass per layer; a MAF needs $D$. The
#   timings of section 3 show the gap growing with $D$.
# - The forward KL covers every mode; the reverse KL is content with one. The grid numbers
#   of section 4 show it in both divergences and in the mass per mode.
#
# Further reading: Rezende and Mohamed (2015) trained flows on unnormalised 2-D densities
# this way; Kingma et al. (2016) introduced the IAF for it; Eric Jang's *Normalizing Flows
# Tutorial, Part 2* (2018) sets the MAF/IAF trade-off side by side.
#
# ## Exercises
#
# Each exercise asks for a function of plain arrays and checks it, right after it, on
# several random cases against an independent computation.

# %% [markdown]
# ### Exercise 1: the reverse-KL estimate and its error bar
#
# You drew $n$ samples $x_1, \dots, x_n$ from a model $q$ and know, for each, $\log
# q(x_i)$ (array `log_q`) and $\log \tilde p(x_i)$ (array `log_p_tilde`); you also know
# $\log Z$ (a number `log_z`). Write `reverse_kl_estimate(log_q, log_p_tilde, log_z)` that
# returns a pair: the Monte-Carlo estimate of $\mathrm{KL}(q\,\|\,p)$ from section 2 and
# its standard error, $s / \sqrt{n}$ with $s$ the sample standard deviation (dividing by
# $n - 1$) of the terms $\log q(x_i) - \log \tilde p(x_i)$. The inputs are 1-D arrays
# (or lists) of equal length $n \ge 2$; return two floats.

# %%
def reverse_kl_estimate(log_q, log_p_tilde, log_z):
    ### BEGIN SOLUTION hint: the terms log q - log p~; their mean plus log Z; their standard deviation (n - 1) over sqrt(n)
    terms = np.asarray(log_q, dtype=np.float64) - np.asarray(log_p_tilde, dtype=np.float64)
    return float(terms.mean() + log_z), float(terms.std(ddof=1) / np.sqrt(len(terms)))
    ### END SOLUTION


def check_exercise_1(reverse_kl_estimate):
    """Random terms of several lengths, with offsets, and log Z of both signs."""
    rng = np.random.default_rng(1010)
    for n, log_z in [(5, 2.3), (37, -4.1), (1000, 0.7)]:
        log_q = rng.normal(-1.5, 0.8, n)
        log_p_tilde = log_q - rng.gamma(2.0, 0.7, n) + log_z + rng.normal(0.4, 0.3, n)
        estimate, error = reverse_kl_estimate(list(log_q), log_p_tilde.copy(), log_z)
        terms = log_q - log_p_tilde
        assert np.isclose(float(estimate), terms.mean() + log_z, rtol=1e-9, atol=1e-9), (
            f"n = {n}: the estimate is not E_q[log q - log p~] + log Z")
        assert np.isclose(float(error), np.sqrt(np.sum((terms - terms.mean()) ** 2) / (n - 1) / n),
                          rtol=1e-9), f"n = {n}: the standard error is wrong"
    print("Exercise 1: correct")


check_exercise_1(reverse_kl_estimate)

# %% [markdown]
# ### Exercise 2: both divergences on an uneven grid
#
# Section 4 used a grid of equal cells. Here the cells are rectangles of unequal sizes:
# `x_edges` ($n_x + 1$ increasing numbers) and `y_edges` ($n_y + 1$) bound them, and
# `log_p` and `log_q` have shape `[n_y, n_x]`: entry `[i, j]` is the log of an
# *unnormalised* density at the centre of the cell between `y_edges[i]`, `y_edges[i+1]`
# and `x_edges[j]`, `x_edges[j+1]`, taken as constant over that cell. `log_p` may hold
# `-inf` (density 0); `log_q` may too. Write `grid_kls(log_p, log_q, x_edges, y_edges)`
# returning the pair $(\mathrm{KL}(p\,\|\,q), \mathrm{KL}(q\,\|\,p))$ in nats, each density
# first normalised so that it integrates to 1 over the grid, and the sums taken as in
# section 4 with each cell's own area. A cell where the first density of the pair is 0
# adds nothing; a cell where the first is positive and the second is 0 makes that
# divergence `inf`.

# %%
def grid_kls(log_p, log_q, x_edges, y_edges):
    ### BEGIN SOLUTION hint: area[i, j] = dy[i] * dx[j]; normalise each density with its sum of exp(log) * area; sum over the cells where the first density > 0
    area = np.outer(np.diff(y_edges), np.diff(x_edges))
    log_p, log_q = np.asarray(log_p, dtype=np.float64), np.asarray(log_q, dtype=np.float64)

    def normalised(log_density):
        top = log_density[np.isfinite(log_density)].max()
        return log_density - top - np.log(np.sum(np.exp(log_density - top) * area))

    log_p, log_q = normalised(log_p), normalised(log_q)

    def kl(log_a, log_b):
        inside = np.isfinite(log_a)
        return float(np.sum(np.exp(log_a[inside]) * (log_a[inside] - log_b[inside]) * area[inside]))

    return kl(log_p, log_q), kl(log_q, log_p)
    ### END SOLUTION


def check_exercise_2(grid_kls):
    """Uneven cells on non-square grids; a Gaussian pair, random pictures, a p with holes."""
    rng = np.random.default_rng(2020)

    def edges(n, start):
        return start + np.concatenate([[0.0], np.cumsum(rng.uniform(0.02, 0.3, n))])

    def expected(log_p, log_q, x_edges, y_edges):  # with probabilities per cell
        area = np.diff(y_edges)[:, None] * np.diff(x_edges)[None, :]
        p, q = np.exp(log_p) * area, np.exp(log_q) * area
        p, q = p / p.sum(), q / q.sum()
        density_p, density_q = p / area, q / area
        forward = sum(p[i, j] * np.log(density_p[i, j] / density_q[i, j]) if q[i, j] > 0 else np.inf
                      for i, j in zip(*np.nonzero(p)))
        reverse = sum(q[i, j] * np.log(density_q[i, j] / density_p[i, j]) if p[i, j] > 0 else np.inf
                      for i, j in zip(*np.nonzero(q)))
        return forward, reverse

    cases = []
    x_edges, y_edges = edges(40, -3.0), edges(27, -1.0)
    cx, cy = np.meshgrid((x_edges[1:] + x_edges[:-1]) / 2, (y_edges[1:] + y_edges[:-1]) / 2)
    cases.append((-(cx - 0.5) ** 2 - 2 * (cy - 1.0) ** 2 + 3.0, -0.5 * (cx + 0.3 * cy) ** 2 - cy**2,
                  x_edges, y_edges))
    x_edges, y_edges = edges(9, 2.0), edges(14, -5.0)
    cases.append((rng.normal(0, 1.5, (14, 9)), rng.normal(-2, 1.0, (14, 9)), x_edges, y_edges))
    log_p = rng.normal(0, 1.0, (14, 9))
    log_p[rng.random((14, 9)) < 0.3] = -np.inf
    cases.append((log_p, rng.normal(1, 0.5, (14, 9)), x_edges, y_edges))
    for number, (log_p, log_q, x_edges, y_edges) in enumerate(cases, start=1):
        got = grid_kls(log_p.copy(), log_q.copy(), x_edges.copy(), y_edges.copy())
        forward, reverse = expected(log_p, log_q, x_edges, y_edges)
        assert len(got) == 2, "return the pair (KL(p || q), KL(q || p))"
        assert np.isclose(float(got[0]), forward, rtol=1e-8), f"case {number}: KL(p || q) is wrong"
        assert (np.isinf(reverse) and float(got[1]) == np.inf) or np.isclose(
            float(got[1]), reverse, rtol=1e-8), f"case {number}: KL(q || p) is wrong"
    print("Exercise 2: correct")


check_exercise_2(grid_kls)

# %% [markdown]
# ### Exercise 3: how much of each mode does the model cover?
#
# Section 4 compared the mass of the flow in each mode's region with the target's. That
# can look fine when the flow puts the right mass in the region but in the wrong place.
# A stricter measure is the **covered fraction** of mode $k$: with $p$ and $q$ normalised
# on the grid,
#
# $$\text{covered}_k = \frac{\sum_{(i,j) \in R_k} \min(p_{ij}, q_{ij})}{\sum_{(i,j) \in R_k} p_{ij}},$$
#
# where $R_k$ is the set of cells of mode $k$: 1 when $q$ reaches $p$ everywhere in the
# mode, 0 when it misses it. Write `covered_fraction(p, q, labels, num_modes)`: `p` and `q`
# are non-negative arrays of one shape (densities on a grid of equal cells, **not**
# normalised), `labels` an integer array of the same shape whose entry is the mode of the
# cell ($0, \dots$, `num_modes - 1`) or $-1$ for a cell that belongs to no mode (those
# still count in the normalisation). Return an array of `num_modes` fractions.

# %%
def covered_fraction(p, q, labels, num_modes):
    ### BEGIN SOLUTION hint: normalise p and q by their sums over the whole grid; per mode, the sum of min(p, q) over the mode's sum of p
    p = np.asarray(p, dtype=np.float64) / np.sum(p)
    q = np.asarray(q, dtype=np.float64) / np.sum(q)
    labels = np.asarray(labels)
    overlap = np.minimum(p, q)
    return np.array([overlap[labels == k].sum() / p[labels == k].sum() for k in range(num_modes)])
    ### END SOLUTION


def check_exercise_3(covered_fraction):
    """Random non-square grids, unnormalised densities of different totals, cells of no mode."""
    rng = np.random.default_rng(3030)
    for shape, num_modes in [((23, 31), 3), ((40, 17), 5), ((12, 12), 2)]:
        p = rng.gamma(1.5, 1.0, shape) * 3.7
        q = rng.gamma(0.8, 1.0, shape)
        q[: shape[0] // 3] *= 4.0  # the model overweights the first third of the rows
        labels = rng.integers(-1, num_modes, shape)
        got = np.asarray(covered_fraction(p.copy(), q.copy(), labels.copy(), num_modes), dtype=float)
        assert got.shape == (num_modes,), f"expected {num_modes} fractions, got shape {got.shape}"
        p_hat, q_hat = p / p.sum(), q / q.sum()
        for k in range(num_modes):
            cells = labels == k
            want = sum(min(a, b) for a, b in zip(p_hat[cells], q_hat[cells])) / p_hat[cells].sum()
            assert np.isclose(got[k], want, rtol=1e-9), f"grid {shape}: the fraction of mode {k} is wrong"
    print("Exercise 3: correct")


check_exercise_3(covered_fraction)
