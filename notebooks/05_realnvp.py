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
# # 05 · RealNVP: affine coupling
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/normalizing-flows-tf2/flowlib/blob/main/notebooks/05_realnvp.ipynb)
#
# **After this notebook you can** explain what the scale in an affine coupling layer adds to
# NICE's shift (a volume change that depends on where a point is), write down its
# log-determinant, say why flowlib bounds the log-scale and starts every coupling network
# at zero, and train a RealNVP flow and compare it with NICE on held-out likelihood.
#
# **Prerequisites:** [04 · NICE: stacking additive couplings](04_nice.ipynb) (and the
# affine layer written by hand in [02 · Change of variables](02_change_of_variables.ipynb)).

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
from IPython.display import Markdown, display

from flowlib import bijectors, data, flows, metrics, plotting, train

tfb, tfd = tfp.bijectors, tfp.distributions

# %% [markdown]
# ## 1. What NICE cannot do
#
# A flow's density comes from the change-of-variables formula (notebook 02). With
# $z = f^{-1}(x)$ the latent point of a data point $x$,
#
# $$\log q(x) = \underbrace{\log p_Z\big(f^{-1}(x)\big)}_{\text{where } x \text{ lands in the Gaussian}}
#   \;+\; \underbrace{\log\big|\det J_{f^{-1}}(x)\big|}_{\text{how much the flow squeezes space near } x}.$$
#
# In NICE (notebook 04) every additive coupling has $\log|\det J| = 0$, and the only layer
# that changes volume is the final diagonal scaling, by the **same factor everywhere**. So
# the second term is one constant for the whole plane, and all the shape of $q$ has to come
# from the first term: the flow must arrange the word's points so that they land where the
# Gaussian has the right height. A uniform density on thin letters is hard to build that
# way: the Gaussian's density varies smoothly and spreads its mass over the plane.
#
# The fix of RealNVP (Dinh, Sohl-Dickstein and Bengio, 2017) is one multiplication. An
# **affine coupling** keeps $x_1$ and both scales and shifts $x_2$, with scale and shift
# computed from $x_1$ by a network:
#
# $$y_1 = x_1, \qquad y_2 = x_2 \odot \exp\big(s(x_1)\big) + t(x_1).$$
#
# It inverts just as easily as the additive layer, again without inverting the network,
# because $x_1 = y_1$ is known on both sides:
#
# $$x_1 = y_1, \qquad x_2 = \big(y_2 - t(y_1)\big) \odot \exp\big(-s(y_1)\big).$$
#
# The Jacobian is block lower-triangular, so its determinant is the product of the
# diagonal:
#
# $$\frac{\partial y}{\partial x} = \begin{pmatrix} I & 0 \\ \dfrac{\partial y_2}{\partial x_1} & \operatorname{diag}\big(e^{s(x_1)}\big)\end{pmatrix},
# \qquad \log\left|\det \frac{\partial y}{\partial x}\right| = \sum_j s_j(x_1).$$
#
# The complicated block $\partial y_2 / \partial x_1$ (the network's derivative) never enters
# the determinant. The volume change $e^{\sum_j s_j(x_1)}$ now **depends on the point**, so a
# stack of such layers can squeeze space in some places and stretch it in others, which is
# exactly what concentrating mass on thin strokes needs. With $s \equiv 0$ the layer is
# NICE's additive coupling again.
#
# Notebook 02 wrote this layer by hand and checked that
# `flowlib.bijectors.AffineCoupling` computes the same thing; from here on we use
# flowlib's version. (In TFP's convention `forward` maps latent to data, so a flow's
# `forward` is the map $f$ and `log_prob` uses `inverse`.)

# %% [markdown]
# ### One layer, side by side
#
# Any function of $x_1$ can play the role of the network, so to see one layer clearly we
# use two smooth hand-made functions instead of a trained network: a shift
# $t(x_1) = 0.5 \sin(1.5\,x_1)$ and a raw log-scale $0.8 \sin(2 x_1)$. The additive layer
# gets the shift only, the affine layer both. We push a square grid through each. The
# background colour is the affine layer's $\log|\det J| = s(x_1)$: it depends only on the
# horizontal position, so it comes in vertical bands.

# %%
mask = bijectors.half_mask(2)  # [True, False]: keep x (horizontal), change y (vertical)


def shift_only(x1):
    return 0.5 * tf.sin(1.5 * x1)


def shift_and_raw_log_scale(x1):
    return tf.concat([0.5 * tf.sin(1.5 * x1), 0.8 * tf.sin(2.0 * x1)], axis=-1)


additive = bijectors.AdditiveCoupling(mask, network=shift_only)
affine = bijectors.AffineCoupling(mask, network=shift_and_raw_log_scale)

# The log-det of the affine layer is s(x1), the log-scale it applies; zero for the additive one.
probe = np.random.default_rng(0).normal(size=(1000, 2)).astype(np.float32)
shift, log_scale = affine.shift_and_log_scale(probe[:, :1])
np.testing.assert_allclose(affine.forward_log_det_jacobian(probe, event_ndims=1),
                           tf.reduce_sum(log_scale, axis=-1), atol=1e-6)
np.testing.assert_allclose(additive.forward_log_det_jacobian(probe, event_ndims=1), 0.0)
# The inverse undoes the forward map (new tensor, so TFP's cache cannot answer for it).
np.testing.assert_allclose(affine.inverse(tf.constant(affine.forward(probe).numpy())), probe, atol=1e-5)

# A grid of lines: 17 vertical and 9 horizontal lines through the rectangle [-2, 2] x [-1, 1].
dense_x = np.linspace(-2, 2, 300, dtype=np.float32)
dense_y = np.linspace(-1, 1, 300, dtype=np.float32)
horizontal = [np.stack([dense_x, np.full_like(dense_x, c)], axis=-1) for c in np.linspace(-1, 1, 9)]
vertical = [np.stack([np.full_like(dense_y, c), dense_y], axis=-1) for c in np.linspace(-2, 2, 17)]

xs = np.linspace(-2.3, 2.3, 300, dtype=np.float32)
s_of_x = affine.shift_and_log_scale(xs[:, None])[1].numpy()[:, 0]
limit = float(np.abs(s_of_x).max())

fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
for ax, layer, title in [(axes[0], None, "input grid"),
                         (axes[1], additive, "additive coupling: log|det J| = 0"),
                         (axes[2], affine, "affine coupling: log|det J| = s(x₁)")]:
    if layer is affine:
        ax.imshow(np.tile(s_of_x, (2, 1)), extent=(xs[0], xs[-1], -3, 3), aspect="auto",
                  cmap="RdBu_r", vmin=-limit, vmax=limit, alpha=0.5)
    for line in horizontal + vertical:
        mapped = line if layer is None else layer.forward(line).numpy()
        ax.plot(mapped[:, 0], mapped[:, 1], color="k", lw=0.6)
    ax.set_xlim(-2.3, 2.3)
    ax.set_ylim(-3, 3)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)
colorbar = fig.colorbar(plt.cm.ScalarMappable(cmap="RdBu_r", norm=plt.Normalize(-limit, limit)),
                        ax=axes[2], shrink=0.9)
colorbar.set_label("s(x₁), log of the vertical stretch", fontsize=9)
plt.show()

# %% [markdown]
# Both layers move points only vertically, and every vertical line stays a vertical line
# (the layer keeps $x_1$). The additive layer slides each vertical line up or down as a
# rigid piece: grid cells change shape but not area. The affine layer also stretches each
# vertical line, by $e^{s(x_1)}$: in the red bands the cells grow, in the blue bands they
# shrink. That local change of area is what the additive layer lacks.

# %% [markdown]
# ## 2. Two details that make it train: a bounded log-scale and a zero start
#
# ### Bounding the log-scale
#
# The raw output of the network is unbounded, and $\exp$ of a large number overflows: in
# float32, $e^{89}$ is already `inf`. One unlucky gradient step that makes the raw output
# large multiplies a coordinate by an enormous factor, the next layers see huge inputs,
# and the loss becomes `nan` (notebook 07 shows this happening in training). flowlib
# therefore squashes the raw output $r$ into $(-c, c)$ with
#
# $$s = c \tanh(r / c), \qquad c = \texttt{max\_log\_scale} = 2 \text{ by default}.$$
#
# Near zero $s \approx r$ (the slope of $c\tanh(r/c)$ at $0$ is $1$), so small log-scales
# pass through unchanged; far from zero $s$ saturates at $\pm c$. What is bounded is the
# scale factor, and only it: each changed coordinate is multiplied by a factor between
# $e^{-c}$ and $e^{c}$, so $\exp$ cannot overflow, and the log-determinant of one layer
# lies between $-kc$ and $kc$ for $k$ changed coordinates (in 2-D, $k = 1$: a stack of $L$
# couplings changes the log-density by at most $Lc$). The shift $t(x_1)$ is not bounded at
# all, nor is how fast $s$ and $t$ vary with $x_1$, so the bound does not limit how far a
# layer moves points. (Glow's code, Kingma and Dhariwal 2018, bounds its scale with a
# sigmoid for the same reason.)
#
# Here is that function written out in TensorFlow, checked against what flowlib's layer
# does with the same raw numbers.

# %%
def bounded_log_scale(raw, c=2.0):
    """Squash a raw network output into (-c, c); about `raw` itself near zero."""
    return c * tf.tanh(raw / c)


raw = tf.linspace(-12.0, 12.0, 401)[:, None]  # pretend network outputs for the log-scale


def constant_network(x1):
    """A stand-in 'network': shift 0, raw log-scale taken from the global `raw`."""
    return tf.concat([tf.zeros_like(raw), raw], axis=-1)


layer = bijectors.AffineCoupling(mask, network=constant_network, max_log_scale=2.0)
_, flowlib_log_scale = layer.shift_and_log_scale(tf.zeros_like(raw))
np.testing.assert_allclose(flowlib_log_scale, bounded_log_scale(raw, 2.0), atol=1e-6)

# Near zero the bound changes nothing; far away it holds.
small = np.abs(raw.numpy()) < 0.2
np.testing.assert_allclose(bounded_log_scale(raw, 2.0).numpy()[small], raw.numpy()[small], atol=2e-3)
assert np.all(np.abs(bounded_log_scale(raw, 2.0)) < 2.0)

fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
for c in (0.5, 1.0, 2.0):
    axes[0].plot(raw[:, 0], bounded_log_scale(raw, c)[:, 0], label=f"c = {c:g}")
    axes[1].semilogy(raw[:, 0], np.exp(bounded_log_scale(raw, c)[:, 0]), label=f"c = {c:g}")
axes[0].plot(raw[:, 0], raw[:, 0], "k:", lw=1, label="unbounded: s = r")
axes[1].semilogy(raw[:, 0], np.exp(raw[:, 0]), "k:", lw=1, label="unbounded: exp(r)")
axes[0].set_ylim(-4, 4)
axes[0].set_title("log-scale  s = c·tanh(r / c)", fontsize=10)
axes[1].set_title("scale factor  exp(s)", fontsize=10)
for ax in axes:
    ax.set_xlabel("raw network output r")
    ax.legend(frameon=False, fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
plt.show()

# %% [markdown]
# The dotted lines are what an unbounded layer does: the scale factor grows without limit.
# What this buys when something goes wrong: give a layer a raw log-scale of 100 (a network
# that has been kicked far off by a bad step) and compare the two versions on the point
# $(0, 1)$.

# %%
def kicked_network(x1):
    """Shift 0 and a raw log-scale of 100 for every point."""
    return tf.concat([tf.zeros_like(x1), 100.0 * tf.ones_like(x1)], axis=-1)


point = tf.constant([[0.0, 1.0]])
unbounded = bijectors.AffineCoupling(mask, network=kicked_network, max_log_scale=None)
bounded = bijectors.AffineCoupling(mask, network=kicked_network, max_log_scale=2.0)
print("unbounded layer:", unbounded.forward(point).numpy(), " bounded layer:", bounded.forward(point).numpy())
assert np.isinf(unbounded.forward(point).numpy()).any()         # e^100 overflows float32
np.testing.assert_allclose(bounded.forward(point), [[0.0, np.exp(2.0)]], rtol=1e-6)  # at most e^c

# %% [markdown]
# The bound has a price: the slope of $c\tanh(r/c)$ vanishes where it saturates, so a layer
# pushed against the bound stops receiving gradient for its scale. And if $c$ is too small
# the flow cannot squeeze space enough (Exercise 3 measures this). $c = 2$ is a compromise
# between the two, and not a bound that is never felt: Exercise 3 measures the largest
# $|s|$ a small flow trained on the word uses, and the slope of $c\tanh(r/c)$ there.
#
# ### Starting at the identity
#
# The last layer of every coupling network in flowlib starts with **zero weights and
# zero bias** (`MLP(..., zero_last=True)`, the default). Its shift and raw log-scale are
# then exactly $0$ for every input, every coupling is the identity, and a fresh flow *is*
# its base distribution: $\log|\det J| = 0$ everywhere, and only the fixed permutations
# move points. Training starts from a known,
# well-conditioned point (the standard normal, not a random warp of it), and the
# gradients still flow: the last layer's weights receive gradient right away, the earlier
# layers as soon as those are no longer zero.
#
# Let us check it on a fresh 8-layer RealNVP, layer by layer with `flows.trace`. Between
# the 8 couplings sit 7 swaps, so the fresh flow as a whole is the swap
# $(z_1, z_2) \mapsto (z_2, z_1)$, which leaves the standard normal unchanged: its density
# is exactly the base density.

# %%
fresh = flows.realnvp(num_layers=8, normalization="none", seed=0)
print([layer.name for layer in flows.layers(fresh)])

z = np.random.default_rng(1).normal(scale=2.0, size=(2000, 2)).astype(np.float32)
stages = flows.trace(fresh, z)
for (_, before), (name, after), layer in zip(stages[:-1], stages[1:], flows.layers(fresh)):
    if isinstance(layer, bijectors.AffineCoupling):
        np.testing.assert_array_equal(after, before, err_msg=name)        # each coupling: f(h) = h exactly
        np.testing.assert_array_equal(layer.forward_log_det_jacobian(before, event_ndims=1), 0.0)
        assert not np.any(layer.network.kernels[-1].numpy()) and not np.any(layer.network.biases[-1].numpy())
np.testing.assert_array_equal(fresh.bijector.forward(z), z[:, ::-1])        # 7 swaps = one swap
np.testing.assert_array_equal(fresh.bijector.forward_log_det_jacobian(z, event_ndims=1), 0.0)
np.testing.assert_allclose(fresh.log_prob(z), fresh.distribution.log_prob(z), atol=1e-6)

# %% [markdown]
# (This flow has no normalisation layers. A fresh batch-normalisation layer of notebook 06
# is close to the identity only in evaluation mode, where it uses its initial moving
# averages, mean 0 and variance 1, and rescales by $\sqrt{1 + \epsilon}$. In training mode,
# the mode in which the loss is computed, it standardises every batch with the batch's own
# mean and variance, which is far from the identity on our data.)
#
# ## 3. RealNVP against NICE on the word
#
# Same target and data as notebook 04: points uniform on the ink of "Flow", a training set
# and a separate held-out set drawn with different seeds. The best held-out NLL any model
# can reach is the target's entropy $H[p] = \log|\text{ink area}|$, and held-out NLL
# $- H$ estimates $\mathrm{KL}(p\,\|\,q)$ (notebook 03).
#
# For a fair race the two flows get the same depth (8 couplings with a swap between
# them), the same networks (two hidden layers of 128 units), the same training data, batch
# size, learning-rate schedule and number of steps. The only difference is the scale:
# NICE has $s \equiv 0$ plus its final diagonal scaling; RealNVP has $s(x_1)$ in every
# coupling. (Normalisation layers are left out here and come in notebook 06.)

# %%
target = data.PictureDistribution.from_text("Flow")
x_train = target.sample(100_000, seed=0)
x_test = target.sample(50_000, seed=1)
x_monitor = x_test[:5_000]  # a slice of the held-out set for the curves
print(f"{len(x_train):,} training points, {len(x_test):,} held-out points; "
      f"entropy bound H[p] = {target.entropy():.3f} nats")

STEPS = 2000
LEARNING_RATE = 3e-3  # as in notebook 04

nice_flow = flows.nice(num_layers=8, hidden_units=(128, 128), seed=0)
realnvp_flow = flows.realnvp(num_layers=8, hidden_units=(128, 128), normalization="none", seed=0)

# %%
print("NICE")
nice_history = train.fit(nice_flow, x_train, steps=STEPS, learning_rate=LEARNING_RATE, seed=0,
                         validation_data=x_monitor)
print("RealNVP")
realnvp_history = train.fit(realnvp_flow, x_train, steps=STEPS, learning_rate=LEARNING_RATE, seed=0,
                            validation_data=x_monitor)

# %%
results = {"NICE": (nice_flow, nice_history), "RealNVP": (realnvp_flow, realnvp_history)}
evaluations = {name: metrics.evaluate(flow, target, x_test) for name, (flow, _) in results.items()}

rows = ["| model | parameters | training time | held-out NLL | entropy bound | gap (KL) |",
        "|---|---:|---:|---:|---:|---:|"]
for name, (flow, history) in results.items():
    e = evaluations[name]
    rows.append(f"| {name} | {flows.num_parameters(flow):,} | {history.seconds:.0f} s "
                f"| {e.nll:.3f} | {e.entropy:.3f} | **{e.gap:.3f}** ± {e.standard_error:.3f} |")
display(Markdown("\n".join(rows) + f"\n\nBoth: 8 couplings, {STEPS} steps of batch {train.DEFAULT_BATCH_SIZE}, "
                 f"Adam with cosine decay from {LEARNING_RATE:g}; NLL in nats per point on {len(x_test):,} held-out points."))

for name, e in evaluations.items():
    assert np.isfinite(e.nll), name
    assert e.gap > -4 * e.standard_error, f"{name} beats the entropy bound: impossible, so a bug"
base_gap = metrics.evaluate(results["RealNVP"][0].distribution, target, x_test).gap  # the untrained flows: N(0, I)
assert all(e.gap < base_gap for e in evaluations.values()), "both flows should beat their starting point"

# %% [markdown]
# The two flows have almost the same number of parameters (each RealNVP network has one
# more output, the log-scale) and train in a similar time (training times vary from run to
# run), but RealNVP's gap to the entropy bound is clearly smaller. Where does the
# difference show? First in the training curves, then in the densities.

# %%
colors = {"NICE": "#0072B2", "RealNVP": "#D55E00"}  # one colour per model, here and below
window = 25  # steps averaged in the training curve
fig, ax = plt.subplots(figsize=(7, 3.8))
for name, (_, history) in results.items():
    smoothed = np.convolve(history.loss, np.ones(window) / window, mode="valid")
    ax.plot(np.arange(window, len(history.loss) + 1), smoothed, color=colors[name], lw=1, alpha=0.5,
            label=f"{name}: training NLL (smoothed)")
    ax.plot(history.validation_steps, history.validation_nll, "o-", ms=3, lw=1.2, color=colors[name],
            label=f"{name}: held-out NLL")
ax.axhline(target.entropy(), color="k", ls="--", lw=1, label="entropy bound $H[p]$")
ax.set_xlabel("step")
ax.set_ylabel("nats per point")
ax.legend(frameon=False, fontsize=8)
losses = np.concatenate([nice_history.loss, realnvp_history.loss])
ax.set_ylim(target.entropy() - 0.2, np.percentile(losses, 97) + 0.3)
ax.set_title("NICE and RealNVP, same budget", fontsize=10)
ax.spines[["top", "right"]].set_visible(False)
plt.show()

# %%
margin_units = 0.5
left, right, bottom, top = target.extent
extent = (left - margin_units, right + margin_units, bottom - margin_units, top + margin_units)
resolution = 300
num_shown = 20_000
target_density = 1 / target.ink_area
# One colour scale for all three densities: 0 to twice the target's height on the ink.
style = dict(extent=extent, origin="lower", cmap="magma", vmin=0, vmax=2 * target_density)

fig, axes = plt.subplots(3, 2, figsize=(12, 6.6))
grid_x, grid_y = np.meshgrid(np.linspace(extent[0], extent[1], resolution), np.linspace(extent[2], extent[3], resolution))
target_image = np.exp(target.log_prob(np.stack([grid_x, grid_y], axis=-1)))
axes[0, 0].imshow(target_image, interpolation="nearest", **style)
axes[0, 0].set_title(f"target density: {target_density:.2f} on the ink of “{target.name}”, 0 elsewhere", fontsize=10)
plotting.plot_points(x_test[:num_shown], ax=axes[0, 1], limit=None, size=0.5,
                     title="target: held-out samples")
for row, (name, (flow, _)) in enumerate(results.items(), start=1):
    density = plotting.density_grid(flow, extent, resolution=resolution)[2]
    axes[row, 0].imshow(density, interpolation="bilinear", **style)
    axes[row, 0].set_title(f"{name}: learned density q(x), gap {evaluations[name].gap:.3f} nats", fontsize=10)
    plotting.plot_points(flow.sample(num_shown, seed=0).numpy(), ax=axes[row, 1], limit=None, size=0.5,
                         title=f"{name}: samples of the flow")
for ax in axes.flat:
    plotting.frame_axes(ax, extent)
fig.tight_layout()
plt.show()

# %% [markdown]
# Both flows find the word, roughly; the colour scale is the same in the three density panels
# (the target's own height on the ink sits in the middle of it). NICE's density is uneven:
# bright ridges and dim patches where the target is flat, and more mass smeared between
# the letters. RealNVP's letters are fuller and more even. Neither is perfect: a flow is a
# continuous bijection of the whole plane, so it can never make the density exactly zero
# between letters, only make the bridges thin; more layers and longer training keep
# improving this.
#
# ### Where the scale helps: the two terms of the density
#
# On the ink the target's log-density is one constant, $-H[p]$. Split each trained flow's
# $\log q(x)$ at held-out points into the Gaussian term $\log p_Z(f^{-1}(x))$ and the volume
# term $\log|\det J_{f^{-1}}(x)|$ from the formula at the top.

# %%
ink_points = x_test[:20_000]
terms = {}
for name, (flow, _) in results.items():
    latent = flow.bijector.inverse(ink_points)
    gaussian_term = flow.distribution.log_prob(latent).numpy()
    volume_term = flow.bijector.inverse_log_det_jacobian(ink_points, event_ndims=1).numpy()
    # The two terms add up to the flow's own log_prob.
    np.testing.assert_allclose(gaussian_term + volume_term, metrics.log_prob(flow, ink_points), atol=1e-3)
    terms[name] = (gaussian_term, volume_term)
    log_q = gaussian_term + volume_term
    print(f"{name:8s} on the ink: spread (std) of log q {log_q.std():.2f}, of the Gaussian term "
          f"{gaussian_term.std():.2f}, of the volume term {volume_term.std():.2f} nats")

# NICE's volume term is one number for all points, so its log q varies exactly as its Gaussian term;
# RealNVP's volume term varies and partly cancels the Gaussian term's variation.
assert np.ptp(terms["NICE"][1]) < 1e-4
realnvp_gaussian, realnvp_volume = terms["RealNVP"]
assert np.corrcoef(realnvp_gaussian, realnvp_volume)[0, 1] < -0.3
assert (realnvp_gaussian + realnvp_volume).std() < realnvp_gaussian.std()

fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
bins = np.linspace(-target.entropy() - 3, -target.entropy() + 1.5, 80)
for name, (gaussian_term, volume_term) in terms.items():
    axes[0].hist(gaussian_term + volume_term, bins=bins, histtype="step", lw=1.5, color=colors[name],
                 density=True, label=name)
    shown = slice(0, 3000)
    axes[1].scatter(gaussian_term[shown], volume_term[shown], s=2, alpha=0.4, color=colors[name],
                    linewidths=0, label=name, rasterized=True)
axes[0].axvline(-target.entropy(), color="k", ls="--", lw=1, label="target: log p = −H[p]")
axes[0].set_xlabel("log q(x) at held-out points of the word")
axes[0].set_ylabel("density of points per nat")
axes[0].set_title("the target is flat on the ink: an ideal flow puts all mass at the dashed line", fontsize=10)
g_all = np.concatenate([g for g, _ in terms.values()])
g_line = np.linspace(np.percentile(g_all, 0.5), g_all.max(), 2)
axes[1].plot(g_line, -target.entropy() - g_line, "k--", lw=1, label="Gaussian + volume = −H[p]")
axes[1].set_xlim(g_line[0], g_line[1] + 0.2)
axes[1].set_xlabel("Gaussian term  log p_Z(f⁻¹(x))")
axes[1].set_ylabel("volume term  log|det J_f⁻¹(x)|")
axes[1].set_title("the two terms at each point", fontsize=10)
for ax in axes:
    ax.legend(frameon=False, fontsize=8, markerscale=4)
    ax.spines[["top", "right"]].set_visible(False)
fig.tight_layout()
plt.show()

# %% [markdown]
# NICE's points lie on a horizontal line on the right: its volume term is the same
# constant everywhere, so $\log q$ on the word varies exactly as much as the Gaussian's
# height where the letters land, and a Gaussian is not flat. RealNVP's points spread along
# the direction of the dashed diagonal: where a letter lands on a high part of the Gaussian, the flow
# stretches space there (lower volume term), and where it lands lower, the flow squeezes
# (higher volume term). The two terms partly cancel, and $\log q$ is closer to the flat
# target (the narrower histogram on the left). That local trade is exactly what the scale
# $s(x_1)$ buys.
#
# ## Summary
#
# - An affine coupling $y_2 = x_2 \odot e^{s(x_1)} + t(x_1)$ inverts without inverting its
#   network, and its log-determinant is simply $\sum_j s_j(x_1)$: the network's
#   derivative never enters it.
# - Unlike NICE's additive couplings, which only move mass around at constant volume, it
#   changes volume by an amount that depends on the point. Splitting $\log q$ into its
#   Gaussian and volume terms shows RealNVP using that to flatten its density on the
#   letters, which a volume-preserving flow cannot do.
# - flowlib bounds the log-scale, $s = c\tanh(r/c)$ with $c = 2$: near zero it changes
#   nothing, and each changed coordinate is scaled by a factor between $e^{-c}$ and $e^c$,
#   so $\exp$ cannot overflow. The shift is not bounded.
# - The last layer of every coupling network starts at zero, so every coupling of a fresh
#   flow is the identity and the flow is exactly its base distribution (asserted above).
# - At the same depth, width and training budget, RealNVP ends clearly closer to the
#   entropy bound than NICE (table above).
#
# Next, notebook 06 trains the full stack of the reference post (8 affine couplings, 4
# batch-normalisation layers, permutations) and follows points through every layer.

# %% [markdown]
# ## Exercises
#
# Each exercise has a code cell with the solution between the marker lines and checks
# after it. Exercises 1 and 2 use the **masked form** of the affine coupling, the way the
# RealNVP paper writes it: a boolean mask $b$ over the $d$ coordinates marks the kept ones,
# the network sees the point with the changed coordinates set to zero, $b \odot x$, and
# returns a shift $t$ and a log-scale $s$ with one entry per coordinate (the entries at
# kept coordinates are not used):
#
# $$y = b \odot x + (1 - b) \odot \Big(x \odot e^{s(b \odot x)} + t(b \odot x)\Big).$$
#
# The next cell makes such networks for the checks (plain functions `h -> (shift,
# log_scale)` with random weights; the log-scale is used as it is, with no bound) and
# writes this forward map out.

# %%
def random_coupling_network(dim, seed):
    """A plain network for the exercises: points [n, dim] -> (shift, log_scale), each [n, dim]."""
    rng = np.random.default_rng(seed)
    w1 = tf.constant(rng.normal(size=(dim, 16)), tf.float32)
    b1 = tf.constant(rng.normal(size=16), tf.float32)
    w2 = tf.constant(rng.normal(scale=0.6, size=(16, 2 * dim)), tf.float32)
    b2 = tf.constant(rng.normal(scale=0.5, size=2 * dim), tf.float32)

    def network(h):
        out = tf.tanh(tf.convert_to_tensor(h, tf.float32) @ w1 + b1) @ w2 + b2
        return out[:, :dim], out[:, dim:]   # shift, log_scale

    return network


def masked_affine_coupling(network, mask, x):
    """The forward map above: y = b x + (1 - b) (x exp(s(b x)) + t(b x))."""
    x = tf.convert_to_tensor(x, tf.float32)
    b = tf.cast(mask, tf.float32)
    shift, log_scale = network(b * x)
    return b * x + (1 - b) * (x * tf.exp(log_scale) + shift)


def call_answer(function, *args):
    """Call an answer; an error it raises becomes a failed check that names it."""
    try:
        return function(*args)
    except NotImplementedError:
        raise
    except Exception as error:
        raise AssertionError(f"the function raised {type(error).__name__}: {error}") from error


# %% [markdown]
# ### Exercise 1: the inverse of an affine coupling
#
# Write `affine_coupling_inverse(network, mask, y)`: given a network as above, a boolean
# mask of shape `[d]` (True = kept) and points `y` of shape `[n, d]`, return the points
# `x` of shape `[n, d]` that the forward map sends to `y`, leaving `y` itself unchanged.
# The checks use several dimensions, masks and networks, with log-scales of both signs.

# %%
def affine_coupling_inverse(network, mask, y):
    ### BEGIN SOLUTION hint: the kept coordinates of y are those of x, so the network gives the same s and t on both sides; then solve for the changed coordinates
    y = tf.convert_to_tensor(y, tf.float32)
    b = tf.cast(mask, tf.float32)
    shift, log_scale = network(b * y)
    return b * y + (1 - b) * (y - shift) * tf.exp(-log_scale)
    ### END SOLUTION


def check_exercise_1(affine_coupling_inverse):
    cases = [([True, False, False], 7, 0), ([False, True, True, False, True], 40, 1), ([False, True], 13, 2)]
    for case, (mask, n, seed) in enumerate(cases, start=1):
        mask = np.array(mask)
        network = random_coupling_network(mask.size, seed)
        x = np.random.default_rng(100 + seed).normal(loc=0.7, scale=2.0, size=(n, mask.size)).astype(np.float32)
        y = masked_affine_coupling(network, mask, x).numpy()
        given = y.copy()
        answer = np.asarray(call_answer(affine_coupling_inverse, network, mask.copy(), given), dtype=np.float32)
        where = f"case {case} (d = {mask.size}, mask {mask.astype(int)})"
        assert np.array_equal(given, y), f"{where}: the function changed the points y it was given"
        assert answer.shape == y.shape, f"{where}: expected shape {y.shape}, got {answer.shape}"
        assert np.allclose(answer[:, mask], y[:, mask]), f"{where}: the kept coordinates should come back unchanged"
        assert np.allclose(masked_affine_coupling(network, mask, answer), y, rtol=1e-4, atol=1e-3), (
            f"{where}: the forward map does not send your points back to y")
    print("Exercise 1: correct")


check_exercise_1(affine_coupling_inverse)

# %% [markdown]
# ### Exercise 2: its log-determinant, checked by autodiff
#
# Write `affine_coupling_log_det(network, mask, x)` returning
# $\log|\det \partial y/\partial x|$ of the forward map per point, shape `[n]`, from the
# network's outputs. The checks compute the full $d \times d$ Jacobian of the forward map
# at every point with `tf.GradientTape` and its log-determinant with `tf.linalg.slogdet`.

# %%
def affine_coupling_log_det(network, mask, x):
    ### BEGIN SOLUTION hint: order the coordinates kept first: the Jacobian is then triangular; what sits on its diagonal?
    b = tf.cast(mask, tf.float32)
    _, log_scale = network(b * tf.convert_to_tensor(x, tf.float32))
    return tf.reduce_sum((1 - b) * log_scale, axis=-1)
    ### END SOLUTION


def check_exercise_2(affine_coupling_log_det):
    cases = [([False, True, False], 9, 3), ([True, True, False, False, True], 30, 4), ([True, False], 21, 5)]
    for case, (mask, n, seed) in enumerate(cases, start=1):
        mask = np.array(mask)
        network = random_coupling_network(mask.size, seed)
        x = np.random.default_rng(200 + seed).normal(loc=-0.4, scale=2.0, size=(n, mask.size)).astype(np.float32)
        answer = np.asarray(call_answer(affine_coupling_log_det, network, mask.copy(), x.copy()))
        where = f"case {case} (d = {mask.size}, mask {mask.astype(int)})"
        assert answer.shape == (n,), f"{where}: expected one number per point, shape {(n,)}, got {answer.shape}"
        points = tf.constant(x)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(points)
            y = masked_affine_coupling(network, mask, points)
            outputs = [y[:, i] for i in range(mask.size)]
        # Each y depends only on its own x, so row i of every point's Jacobian is one gradient.
        jacobian = tf.stack([tape.gradient(output, points) for output in outputs], axis=1)   # [n, d, d]
        _, autodiff_log_det = tf.linalg.slogdet(jacobian)
        assert np.allclose(answer, autodiff_log_det, atol=1e-3), f"{where}: does not match the autodiff log-determinant"
    print("Exercise 2: correct")


check_exercise_2(affine_coupling_log_det)

# %% [markdown]
# ### Exercise 3: a bound that is too tight
#
# With `max_log_scale` $= c$, one coupling that changes one coordinate (as in 2-D) changes
# the log-density by at most $c$, and $L$ such couplings by at most $Lc$. The word needs
# the flow to squeeze the Gaussian into a small area (the ink's area is printed below).
# Write `largest_log_scale(flow, points)`: the largest $|s|$ that any affine coupling of
# `flow` (a flow of any dimension) applies to any of `points`, following the points through the flow in the
# **inverse** direction (data to latent), the way `log_prob` does. The first cell below
# trains two small flows, with $c = 0.1$ and with $c = 2$; the second holds your function
# and checks it on them and on other flows, and checks what it and the held-out NLL say
# about the two. Before running them: which flow do you expect to hit its bound, and which
# to end closer to the entropy?

# %%
print(f"ink area {target.ink_area:.2f} square units, out of {np.ptp(target.extent[:2]) * np.ptp(target.extent[2:]):.1f} "
      "in the picture's frame")
ex3_steps = 800
ex3_flows, ex3_gaps = {}, {}
for c in (0.1, 2.0):
    ex3_flows[c] = flows.realnvp(num_layers=4, hidden_units=(32, 32), normalization="none", max_log_scale=c,
                                 seed=0)
    train.fit(ex3_flows[c], x_train, steps=ex3_steps, learning_rate=3e-3, seed=0, progress=False)
    ex3_gaps[c] = metrics.evaluate(ex3_flows[c], target, x_test[:5000]).gap
    print(f"max_log_scale {c}: held-out gap {ex3_gaps[c]:.3f} nats")

# %%
def largest_log_scale(flow, points):
    ### BEGIN SOLUTION hint: go from data to latent one layer at a time; each coupling must be asked at the point it actually receives
    h = tf.constant(points, dtype=tf.float32)
    largest = 0.0
    for layer in reversed(flows.layers(flow)):
        if isinstance(layer, bijectors.AffineCoupling):
            _, log_scale = layer.shift_and_log_scale(tf.gather(h, np.flatnonzero(layer.mask), axis=-1))
            largest = max(largest, float(tf.reduce_max(tf.abs(log_scale))))
        h = layer.inverse(h)
    return largest
    ### END SOLUTION


def check_exercise_3(largest_log_scale):
    def by_trace(flow, points):
        """An independent computation: trace the points from data to latent with flows.trace_inverse
        and ask every coupling for its log-scale at the point it receives."""
        stages = flows.trace_inverse(flow, points)
        return max(float(np.max(np.abs(layer.shift_and_log_scale(before[:, layer.mask])[1])))
                   for layer, (_, before) in zip(reversed(flows.layers(flow)), stages)
                   if isinstance(layer, bijectors.AffineCoupling))

    # Probe flows tell the directions apart: the data-side shift and coupling (the identity) are
    # undone first, and after the swap the latent-side coupling reads the other, narrower, coordinate.
    for seed in (4, 9):
        rng = np.random.default_rng(seed)
        probe_flow = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(tf.zeros(2), tf.ones(2)), tfb.Chain([
            tfb.Shift([0.3, -1.5]),
            bijectors.AffineCoupling(bijectors.half_mask(2), max_log_scale=None),
            tfb.Permute([1, 0]),
            bijectors.AffineCoupling(bijectors.half_mask(2), bijectors.MLP(1, 2, (8,), seed=seed, zero_last=False),
                                     max_log_scale=None)]))
        probe = np.stack([rng.uniform(-3, 3, 500) + 0.5, rng.uniform(-0.1, 0.1, 500)], axis=-1).astype(np.float32)
        answer = float(call_answer(largest_log_scale, probe_flow, probe))
        assert np.isclose(answer, by_trace(probe_flow, probe), rtol=1e-5), (
            f"probe flow {seed}: not the largest |s| met on the way from data to latent")

    # A 3-D probe: a coupling that changes two coordinates, and a cyclic order whose inverse is not itself.
    for seed in (2, 7):
        probe_flow = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(tf.zeros(3), tf.ones(3)), tfb.Chain([
            tfb.Shift([0.5, -1.0, 2.0]),
            bijectors.AffineCoupling([True, False, False], bijectors.MLP(1, 4, (8,), seed=seed, zero_last=False),
                                     max_log_scale=None),
            tfb.Permute([2, 0, 1]),
            bijectors.AffineCoupling([False, True, True], bijectors.MLP(2, 2, (8,), seed=seed + 1, zero_last=False),
                                     max_log_scale=None)]))
        probe = np.random.default_rng(seed).normal(loc=[1.0, -2.0, 0.5], scale=[2.0, 0.3, 1.0],
                                                   size=(300, 3)).astype(np.float32)
        answer = float(call_answer(largest_log_scale, probe_flow, probe))
        assert np.isclose(answer, by_trace(probe_flow, probe), rtol=1e-5), (
            f"3-D probe flow {seed}: not the largest |s| met on the way from data to latent")

    results = {}
    for c, flow in ex3_flows.items():
        points = x_test[:2000]
        results[c] = float(call_answer(largest_log_scale, flow, points))
        assert np.isclose(results[c], by_trace(flow, points), rtol=1e-5), (
            f"trained flow with c = {c}: not the largest |s| met on the way from data to latent")
    assert 0.09 < results[0.1] <= 0.1 + 1e-6, "the tight flow should push its scales against the bound"
    assert results[2.0] > 0.2, "the free flow should use larger scales than the tight bound allows"
    assert ex3_gaps[0.1] > ex3_gaps[2.0] + 0.1, "the tight bound should cost likelihood"
    for c, largest in results.items():
        print(f"max_log_scale {c}: largest |s| used {largest:.3f}, where the slope of c·tanh(r/c) is "
              f"{max(0.0, 1 - (largest / c) ** 2):.2f}; held-out gap {ex3_gaps[c]:.3f} nats")
    print("Exercise 3: correct")


check_exercise_3(largest_log_scale)
