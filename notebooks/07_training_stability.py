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
# # 07 · Training stability: why flows blow up
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/normalizing-flows-tf2/flowlib/blob/main/notebooks/07_training_stability.ipynb)
#
# **After this notebook you can** trace a `nan` loss in flow training to the number that
# overflowed; explain why batch normalisation is a different function in training and in
# evaluation; show that, since version 0.17, TFP's `log_prob` with its own
# `tfb.BatchNormalization` inside a flow is not the likelihood of the training batch, and
# what that does to training; measure a failure rate over many trainings, as the post's
# author did; and defend each choice
# in the recipe the series uses.
#
# **Prerequisites:** [06 · The full stack of the post](06_full_stack.ipynb) (and the bounded
# log-scale of [05 · RealNVP](05_realnvp.ipynb)).

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
import contextlib
import inspect
import io

import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from IPython.display import Markdown, display

from flowlib import bijectors, data, flows, iterate, metrics, train

tfb, tfd = tfp.bijectors, tfp.distributions
tf.get_logger().setLevel("ERROR")  # each train.fit call compiles its own step; TF would warn about "retracing"

target = data.PictureDistribution.from_text("Flow")
x_train = target.sample(20_000, seed=0)
x_test = target.sample(10_000, seed=1)
ENTROPY = target.entropy()  # the smallest held-out NLL any model can reach (notebook 03)
print(f"{len(x_train):,} training and {len(x_test):,} held-out points on “{target.name}”; "
      f"entropy bound H[p] = {ENTROPY:.3f} nats")

# %% [markdown]
# ## 1. What the post reported, and what its code shipped
#
# The reference post (Brad Saund's TensorFlow 2 port of Eric Jang's 2018 tutorial) makes
# three remarks about training its flow: it is not always stable, because after a quick
# initial descent the loss sometimes turns into `nan`; a lower learning rate helps; and
# batch normalisation, meant to help, has odd effects, flattening the data along one
# dimension.
#
# Its code is public: github.com/bsaund/normalizing_flows, file `normalizing_flows.py`. The
# version published with the post is commit bc20b0b, "Cleanup for blog post", of 7 April
# 2020. Its recipe:
#
# | part | `normalizing_flows.py` at bc20b0b |
# |---|---|
# | layers | 8 `tfb.RealNVP(num_masked=1)` couplings, each with its own `real_nvp_default_template(hidden_layers=[512, 512])` (ReLU, random initial weights, unbounded log-scale) |
# | normalisation | a `tfb.BatchNormalization()` after each coupling with `i % 2 == 0`, that is couplings 0, 2, 4 and 6, counted from the latent side (the list is reversed into the `tfb.Chain`), so the layer next to the data is a coupling |
# | permutation | `tfb.Permute([1, 0])` between couplings |
# | data | 10,000 points drawn from a picture of the word "BRAD", shuffled, batches of 1,500 |
# | training | Adam at a constant $10^{-5}$, 200,000 iterations, loss `-mean(flow.log_prob(x))` |
#
# Two neighbouring commits tell the story of the learning rate and of the batch norms:
#
# * **74e336a, 1 April 2020**, "Added function for training many times and collecting
#   statistics about training failures". It adds `run_statistics_trial`, which trains the
#   model 10 times and prints the fraction of runs whose final loss is `nan` (the training
#   loop looks at the loss every 1,000 iterations and stops at a `nan`). The same commit
#   lowers the learning rate from $10^{-4}$, the value of the code before it (e.g. commit
#   5cf96b0 of 30 March), to $10^{-5}$. "Decreasing the learning rate helps" is the
#   author's own measured change.
# * **adab3f6, 9 April 2020**, two days after the post's version: "Batch normalizing every
#   3 layers instead of every 2" (`i % 3 == 0`, three batch norms). The post's text
#   describes four batch norms, the version of 7 April.
#
# It ran on the TensorFlow Probability of early 2020 (version 0.9 was released in
# January, 0.10 in May). Its figures show a trained flow: the samples form the word, and
# in the layer-by-layer panels the batch-norm layers stretch and flatten the cloud.
#
# This notebook takes the three remarks apart into mechanisms, each with a small
# experiment: how an overflow becomes `nan` (section 2), why batch normalisation is two
# functions and why it "flattens" (section 3), and a pitfall that today's TFP adds to the
# post's recipe and the post could not have met (section 4). Section 5 repeats the
# author's own measurement, scaled down, at both learning rates; section 6 gives the
# recipe the rest of the series uses.

# %% [markdown]
# ## 2. From one overflow to `nan` everywhere
# Float32 numbers stop at about $3.4 \times 10^{38} = e^{88.72}$. Beyond that `exp`
# returns `inf`, and `inf` turns into `nan` as soon as it meets an operation without a
# defined answer: $\infty - \infty$, $0 \cdot \infty$, $\infty / \infty$. A batch norm
# computes the mean and variance of its batch; one infinite point makes the mean infinite
# and the variance $\infty - \infty$, and that `nan` then reaches every point of the batch,
# the loss, every gradient and, after one Adam step, every weight.

# %%
s = tf.constant([88.0, 89.0])
print("exp(s) in float32:", tf.exp(s).numpy())
assert np.isfinite(tf.exp(s)[0]) and np.isinf(tf.exp(s)[1])

one_bad_point = tf.constant([[0.5, 1.0], [0.2, -1.0], [np.inf, 0.3]])
mean, variance = tf.nn.moments(one_bad_point, axes=[0])
print("batch mean:", mean.numpy(), " batch variance:", variance.numpy())
assert np.isinf(mean[0]) and np.isnan(variance[0])
assert np.all(np.isnan((one_bad_point - mean) * tf.math.rsqrt(variance + 1e-3))[:, 0])

# The bound of notebook 05: flowlib's coupling squashes the raw log-scale into (-c, c).
huge_raw = lambda x1: tf.concat([tf.zeros_like(x1), 1000.0 * tf.ones_like(x1)], axis=-1)  # shift 0, raw s = 1000
unbounded = bijectors.AffineCoupling([True, False], huge_raw, max_log_scale=None)
bounded = bijectors.AffineCoupling([True, False], huge_raw, max_log_scale=2.0)
point = tf.constant([[0.3, 0.7]])
print("unbounded forward:", unbounded.forward(point).numpy(), " bounded forward:", bounded.forward(point).numpy())
assert np.isinf(unbounded.forward(point)[0, 1])
np.testing.assert_allclose(bounded.forward(point), [[0.3, 0.7 * np.exp(2.0)]], rtol=1e-6)

# %% [markdown]
# With the bound $s = c \tanh(r/c)$, $c = 2$, one coupling stretches by at most $e^2
# \approx 7.4$, and eight couplings by at most $e^{16}$ through their log-scales: `exp`
# itself can no longer overflow. That is all the bound covers. The couplings' shifts are
# not bounded, and neither are a batch norm's scale $\gamma_j / \sqrt{\sigma_j^2 +
# \epsilon}$ and offset: a run can still push values out of range, only more slowly and
# not through `exp`. And a bound stops the crash, it does not remove whatever pushed $s$
# upwards.
#
# Exercise 1 asks you to find, for given log-scales, the first layer at which a value
# leaves float32.

# %% [markdown]
# ## 3. Batch normalisation is two different functions
#
# As a bijector (RealNVP paper, Dinh et al. 2017; TFP's and flowlib's convention), batch
# norm *normalises* in the inverse direction, data to latent, and *de-normalises* in the
# forward direction:
#
# $$\text{inverse: } z = \gamma \odot \frac{y - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta,
# \qquad \text{forward: } y = \frac{z - \beta}{\gamma} \odot \sqrt{\sigma^2 + \epsilon} + \mu,
# \qquad \log\left|\det \frac{\partial z}{\partial y}\right| = \sum_j \Big(\log\gamma_j - \tfrac12 \log(\sigma_j^2 + \epsilon)\Big).$$
#
# Which $(\mu, \sigma^2)$? In **evaluation mode**, the moving averages $(\mu_M, \sigma_M^2)$
# in both directions: one fixed affine map, a proper bijection. In **training mode** the
# inverse uses the statistics of the current batch $(\mu_B, \sigma_B^2)$ (and nudges the
# moving averages 1% towards them), while the forward direction still uses the moving
# averages, because sampling has no batch of data. So in training mode
#
# $$\text{forward}(\text{inverse}(y)) = (y - \mu_B)\,\sqrt{\frac{\sigma_M^2 + \epsilon}{\sigma_B^2 + \epsilon}} + \mu_M \neq y.$$
#
# Both batch norms, TFP's and flowlib's, behave like this; TFP's documentation says so.

# %%
batch = x_train[:512]


def round_trip_error(layer, y):
    """max |forward(inverse(y)) - y|; the copy stops TFP's cache from handing y back."""
    z = layer.inverse(tf.constant(y))
    return float(tf.reduce_max(tf.abs(layer.forward(tf.constant(z.numpy())) - y)))


tfp_training = tfb.BatchNormalization(training=True)
tfp_evaluation = tfb.BatchNormalization(tfp_training.batchnorm, training=False)  # same variables
flowlib_mode = tf.Variable(True)
flowlib_bn = bijectors.BatchNormalization(2, flowlib_mode)

errors = {"TFP, training": round_trip_error(tfp_training, batch),
          "TFP, evaluation": round_trip_error(tfp_evaluation, batch),
          "flowlib, training": round_trip_error(flowlib_bn, batch)}
flowlib_mode.assign(False)
errors["flowlib, evaluation"] = round_trip_error(flowlib_bn, batch)
for name, error in errors.items():
    print(f"{name:>20}: max |forward(inverse(y)) - y| = {error:.3g}")
assert errors["TFP, training"] > 0.1 and errors["flowlib, training"] > 0.1
assert errors["TFP, evaluation"] < 1e-4 and errors["flowlib, evaluation"] < 1e-4

# %% [markdown]
# ### Why batch norm "flattens" the pictures
#
# Follow the post's layer-by-layer figure, which runs the trained flow forward, from
# latent to data, in evaluation mode. There a batch norm is the fixed affine map above:
# coordinate $j$ is multiplied by $\sqrt{\sigma_{M,j}^2 + \epsilon}\,/\,\gamma_j$ and shifted.
# The moving variances $\sigma_{M,j}^2$ are those of whatever reached the layer from the
# data side during training, and nothing makes them equal along the two axes. A round
# cloud comes out as an ellipse whose axis ratio is the ratio of the two scales: the
# panel after each batch norm is stretched along one axis and flattened along the other.
#
# The smallest experiment: one batch norm that sees batches of the word "BRAD" in training
# mode (as the layer closest to the data would, if nothing came before it), then maps a
# round latent cloud forward in evaluation mode.

# %%
brad = data.PictureDistribution.from_text("BRAD").sample(10_000, seed=0)  # the post's word and point count
flat_mode = tf.Variable(True)
flat_bn = bijectors.BatchNormalization(2, flat_mode)
normalise = tf.function(flat_bn.inverse)  # compiled: 500 calls take a moment
rng = np.random.default_rng(0)
for _ in range(500):  # 500 training-mode calls: the moving averages converge to the data's statistics
    normalise(tf.constant(brad[rng.integers(len(brad), size=1500)]))
flat_mode.assign(False)
round_cloud = np.random.default_rng(1).normal(size=(4000, 2)).astype(np.float32)
stretched = flat_bn.forward(tf.constant(round_cloud)).numpy()
scales = np.sqrt(flat_bn.moving_variance.numpy() + flat_bn.epsilon) / np.exp(flat_bn.log_gamma.numpy())
print("data's variance per axis:       ", np.round(brad.var(axis=0), 3))
print("forward scale per axis:          ", np.round(scales, 3), f" ratio {scales[0] / scales[1]:.2f}")
print("spread of the round cloud after: ", np.round(stretched.std(axis=0), 3),
      f" ratio {stretched.std(axis=0)[0] / stretched.std(axis=0)[1]:.2f}")
np.testing.assert_allclose(stretched.std(axis=0) / round_cloud.std(axis=0), scales, rtol=1e-3)

fig, axes = plt.subplots(1, 2, figsize=(7, 3.4))
for ax, points, title in zip(axes, (round_cloud, stretched), ("latent cloud", "after the batch norm's forward")):
    ax.scatter(points[:, 0], points[:, 1], s=1, color="C0")
    ax.set(title=title, aspect="equal")
plt.show()

# %% [markdown]
# Deeper in the flow the moving variances belong to intermediate clouds, not to the
# word, but the mechanism is the same: each batch norm's panel has the aspect ratio of its
# own two scales. Notebook 06 printed these scales for its trained flow; section 5 prints
# them for the scaled-down post stacks it trains.

# %% [markdown]
# ### Small and degenerate batches
#
# Batch statistics make each point's "density" depend on the other points of its batch.
# The extreme case is a batch of one point: its variance is $0$, it is normalised to
# $\beta$ wherever it lies, and each batch norm adds $-\tfrac12\log\epsilon$ per coordinate
# ($+3.45$ nats for $\epsilon = 10^{-3}$) to its log-likelihood. In training mode a flow then
# gives every single point the *same*, absurdly high, log-likelihood. A batch that is
# degenerate in one coordinate (all points on one line, say one vertical stroke of a
# letter) gets the same bonus in that coordinate. With 512 points drawn from the whole word
# this does not happen by chance. Nor can a flow gain by squeezing the batch on purpose
# before a batch norm: the layers that squeeze pay, in their own log-determinant, exactly
# what the batch norm's log-determinant gives back, *provided* that log-determinant is
# computed from the same statistics as the map. Section 4 is about a batch norm for which
# it is not.

# %%
# flowlib's batch norm, 4 layers of it:
one_point_flow = flows.realnvp(num_layers=8, hidden_units=(16, 16), normalization="batchnorm", seed=0)
flows.set_training(one_point_flow, True)
single = np.array([float(one_point_flow.log_prob(x_test[i:i + 1])[0]) for i in range(6)])
flows.set_training(one_point_flow, False)
print("training-mode log q of six single-point batches:", np.round(single, 3))
print("evaluation-mode log q of the same points:       ",
      np.round(metrics.log_prob(one_point_flow, x_test[:6]), 3))
np.testing.assert_allclose(single, single[0], atol=1e-4)  # the same wherever the point lies
assert single[0] > 4 * 2 * 0.5 * np.log(1 / 1e-3) - 10  # four batch norms' bonus, minus log N(z) at most 10

# %% [markdown]
# ## 4. Today's TFP: a training loss that is not a likelihood
#
# For a flow $x = f(z)$ the log-density can be written two ways:
#
# $$\log q(x) = \log p_Z(z) + \log\left|\det J_{f^{-1}}(x)\right| = \log p_Z(z) - \log\left|\det J_f(z)\right|, \qquad z = f^{-1}(x).$$
#
# Mathematically they are equal, and for a fixed bijection TFP may use either. Which one
# `TransformedDistribution.log_prob` uses has changed:
#
# * **Up to TFP 0.16** (and so in the TFP the post ran on), `log_prob` computed
#   `inverse(x)` and `inverse_log_det_jacobian(x)`, the first form.
# * **Since TFP 0.17** (released June 2022), it calls `experimental_local_measure`, which
#   takes the bijector's `forward_log_det_jacobian` at the latent point $z$, the second
#   form. The change is commit 23c395440 of tensorflow/probability ("Handle local measures
#   in TransformedDistribution", 16 March 2022), whose message says that it reverses the
#   method `log_prob` calls from `inverse_log_det_jacobian` to `forward_log_det_jacobian`;
#   compare `tensorflow_probability/python/distributions/transformed_distribution.py` at
#   the tags v0.16.0 and v0.17.0.
#
# For `tfb.BatchNormalization` in training mode the two forms are *not* equal. Its
# `inverse` normalises with the statistics of the batch, $\sigma_B^2$, and so does its
# `inverse_log_det_jacobian`; but its `forward_log_det_jacobian` is computed from the moving
# averages $\sigma_M^2$ (in every version). So with today's TFP, per batch-norm layer, the
# reported training log-likelihood differs from that of the batch as it was normalised by
#
# $$\text{TFP's } \log q - \text{true } \log q = \tfrac12 \sum_j \Big(\log(\sigma_{B,j}^2 + \epsilon) - \log(\sigma_{M,j}^2 + \epsilon)\Big).$$
#
# No gradient flows into the moving averages, so minimising this loss minimises the true
# loss **minus** $\tfrac12\sum_j \log\sigma^2_{B,j}$: every layer on the data side of a batch
# norm is *paid* to inflate the variance of what it hands to the batch norm, and the batch
# norm divides the inflation away before the Gaussian can charge for it. A runaway is the
# result. This is a real pitfall of today's TFP, but not the one the post met in 2020.
#
# flowlib's `bijectors.BatchNormalization` computes the same map but defines no forward
# log-determinant; TFP then takes minus the inverse log-determinant at the cached
# data-side point, with the same batch statistics as the map. So a flow with flowlib's
# batch norm computes, in today's TFP, what a flow with TFP's batch norm computed in 2020.
#
# To measure this we build the post's stack with either batch norm. One wrinkle: a TFP
# batch-norm bijector fixes its mode (training or evaluation) when it is built, so the
# builder returns two flows that share every layer and every variable, one in training
# mode (for the loss) and one in evaluation mode (for sampling and reporting).

# %%
def post_realnvp(*, batch_norm="tfp", num_layers=8, hidden_units=(512, 512), max_log_scale=None, seed=0):
    """The post's stack: couplings, a batch norm after couplings 0, 2, 4, 6, swaps between.

    Forward order (latent to data): coupling_0, batch_norm_0, permute_0, coupling_1,
    permute_1, coupling_2, batch_norm_2, ... Every network starts from random weights, as
    the post's did. `batch_norm` is "tfp" (`tfb.BatchNormalization`) or "flowlib".

    Returns `(flow, eval_flow)`, sharing all layers and variables: in `flow` the batch
    norms are in training mode (use it for the loss), in `eval_flow` in evaluation mode.
    For "flowlib" both are the same flow, whose mode `train.fit` switches.
    """
    if batch_norm == "flowlib":
        flow = flows.realnvp(num_layers=num_layers, hidden_units=hidden_units, normalization="batchnorm",
                             normalize_after=range(0, num_layers, 2), max_log_scale=max_log_scale, seed=seed)
        for layer in flows.layers(flow):  # random last layers, as in the post
            if isinstance(layer, bijectors.AffineCoupling):
                layer.network = bijectors.MLP(1, 2, hidden_units, seed=seed * 1000 + len(layer.name), zero_last=False)
        return flow, flow
    training_layers, eval_layers = [], []
    for i in range(num_layers):
        network = bijectors.MLP(1, 2, hidden_units, seed=seed * 1000 + i, zero_last=False)
        coupling = bijectors.AffineCoupling(bijectors.half_mask(2), network,
                                            max_log_scale=max_log_scale, name=f"affine_coupling_{i}")
        training_layers.append(coupling)
        eval_layers.append(coupling)
        if i % 2 == 0:
            batch_norm_layer = tfb.BatchNormalization(training=True, name=f"tfp_batch_norm_{i}")
            training_layers.append(batch_norm_layer)
            # The same Keras layer (same variables), wrapped in evaluation mode.
            eval_layers.append(tfb.BatchNormalization(batch_norm_layer.batchnorm, training=False,
                                                      name=f"tfp_batch_norm_{i}"))
        if i < num_layers - 1:
            permute = tfb.Permute([1, 0], name=f"permute_{i}")
            training_layers.append(permute)
            eval_layers.append(permute)
    base = tfd.MultivariateNormalDiag(loc=tf.zeros(2), scale_diag=tf.ones(2), name="base")
    # tfb.Chain applies its *last* bijector first, so we hand it the forward order reversed.
    flow = tfd.TransformedDistribution(base, tfb.Chain(training_layers[::-1]))
    eval_flow = tfd.TransformedDistribution(base, tfb.Chain(eval_layers[::-1]))
    eval_flow.log_prob(x_train[:2])  # creates the Keras variables without touching the statistics
    return flow, eval_flow


# The layer order is flows.realnvp's with normalize_after=(0, 2, 4, 6).
check_flow, check_eval = post_realnvp(hidden_units=(16, 16), seed=3)
reference = flows.realnvp(num_layers=8, hidden_units=(16, 16), normalize_after=(0, 2, 4, 6), seed=3)
assert [layer.name.replace("tfp_", "") for layer in flows.layers(check_eval)] == \
       [layer.name for layer in flows.layers(reference)]
print(" -> ".join(layer.name for layer in flows.layers(check_eval)))


def walk_batch(flow, batch):
    """Follow `batch` from data to latent as a training step does, without side effects.

    Batch norms normalise with the statistics of the batch (by hand, so the moving
    averages stay put). Returns `(z, layers)`: the latent points, and one dict per layer,
    data side first, with "name" and "log_det" (log|det| of the inverse, per point), plus
    "max_abs_log_scale" for couplings, and "batch_variance", "moving_variance" and
    "log_det_moving" (the log|det| the moving averages give) for batch norms.
    """
    h = tf.convert_to_tensor(batch)
    seen = []
    for layer in reversed(flows.layers(flow)):
        info = {"name": layer.name}
        if isinstance(layer, (tfb.BatchNormalization, bijectors.BatchNormalization)):
            if isinstance(layer, tfb.BatchNormalization):  # TFP's: a Keras layer inside
                keras_layer = layer.batchnorm
                log_gamma, beta = tf.math.log(keras_layer.gamma), keras_layer.beta
                moving_variance, epsilon = keras_layer.moving_variance, keras_layer.epsilon
            else:  # flowlib's
                log_gamma, beta = layer.log_gamma, layer.beta
                moving_variance, epsilon = layer.moving_variance, layer.epsilon
            mean, variance = tf.nn.moments(h, axes=[0])
            h = (h - mean) * tf.math.rsqrt(variance + epsilon) * tf.exp(log_gamma) + beta
            ones = tf.ones(h.shape[0])
            info["log_det"] = ones * (tf.reduce_sum(log_gamma)
                                      - 0.5 * tf.reduce_sum(tf.math.log(variance + epsilon)))
            info["log_det_moving"] = ones * (tf.reduce_sum(log_gamma)
                                             - 0.5 * tf.reduce_sum(tf.math.log(moving_variance + epsilon)))
            info["batch_variance"], info["moving_variance"] = variance.numpy(), moving_variance.numpy()
        else:
            if isinstance(layer, bijectors.AffineCoupling):
                kept = tf.gather(h, np.flatnonzero(layer.mask), axis=-1)
                info["max_abs_log_scale"] = float(tf.reduce_max(tf.abs(layer.shift_and_log_scale(kept)[1])))
            info["log_det"] = layer.inverse_log_det_jacobian(h, event_ndims=1)
            h = layer.inverse(h)
        seen.append(info)
    return h, seen


def change_of_variables(flow, batch, *, batch_norm_term="log_det"):
    """log q of each point of `batch`, summed layer by layer from `walk_batch`.

    `batch_norm_term="log_det"` uses the batch statistics in the batch-norm terms (the
    statistics that normalised the batch); `"log_det_moving"` uses the moving averages.
    """
    z, seen = walk_batch(flow, batch)
    log_det = sum(info.get(batch_norm_term, info["log_det"]) for info in seen)
    return (flow.distribution.log_prob(z) + log_det).numpy()



# %% [markdown]
# ### One batch, evaluated again and again
#
# Two flows with the same couplings, one with each batch norm, both in training mode. We
# evaluate the same batch of 512 points many times, without any training step in between.
# The *honest* value is the layer-by-layer change of variables with the statistics that
# normalised the batch (computed by hand by `change_of_variables` above).

# %%
tfp_probe, _ = post_realnvp(batch_norm="tfp", hidden_units=(64, 64), seed=1)
flowlib_probe, _ = post_realnvp(batch_norm="flowlib", hidden_units=(64, 64), seed=1)
for ours, theirs in zip(flows.layers(tfp_probe), flows.layers(flowlib_probe)):
    if isinstance(ours, bijectors.AffineCoupling):  # give flowlib's couplings the same (random) weights
        for mine, other in zip(ours.network.variables, theirs.network.variables):
            other.assign(mine)
batch = x_train[:512]
# TFP caches a bijector's results per input *tensor*; handing the same tensor object in again
# would get a half-cached answer. So every call below gets a new tensor with the same numbers.
honest = change_of_variables(tfp_probe, tf.constant(batch))

flows.set_training(flowlib_probe, True)
tfp_log_prob = tf.function(tfp_probe.log_prob)  # compiled, so that many calls are quick
flowlib_log_prob = tf.function(flowlib_probe.log_prob)
calls = 50
tfp_values = np.array([tfp_log_prob(tf.constant(batch)).numpy() for _ in range(calls)])
flowlib_values = np.array([flowlib_log_prob(tf.constant(batch)).numpy() for _ in range(calls)])
flows.set_training(flowlib_probe, False)

# TFP: the same batch, different answers. flowlib: always the same, the honest one.
print(f"TFP, mean log q over the batch, calls 1 and 2: {tfp_values[0].mean():.4f}, {tfp_values[1].mean():.4f}; "
      f"honest value {honest.mean():.4f}")
assert np.max(np.abs(tfp_values[0] - tfp_values[1])) > 1e-3
np.testing.assert_allclose(flowlib_values, np.broadcast_to(honest, flowlib_values.shape), atol=1e-4)

# TFP's value is the change of variables with the *moving* variances in the batch-norm
# terms (read after the call, which has just updated them), not with the batch variances.
tfp_now = tfp_probe.log_prob(tf.constant(batch)).numpy()
with_moving = change_of_variables(tfp_probe, tf.constant(batch), batch_norm_term="log_det_moving")
np.testing.assert_allclose(tfp_now, with_moving, atol=1e-4)
assert np.max(np.abs(tfp_now - honest)) > 1e-3
print(f"after {calls + 1} calls: TFP {tfp_now.mean():.4f} = change of variables with moving variances "
      f"{with_moving.mean():.4f}; with batch variances {honest.mean():.4f}")

fig, ax = plt.subplots(figsize=(7, 3.4))
ax.plot(np.arange(1, calls + 1), tfp_values.mean(axis=1), color="C3", lw=1.5, label="TFP's tfb.BatchNormalization")
ax.plot(np.arange(1, calls + 1), flowlib_values.mean(axis=1), color="C0", lw=1.5, ls="--",
        label="flowlib's BatchNormalization")
ax.axhline(honest.mean(), color="k", lw=0.8, ls=":", label="change of variables, batch statistics")
ax.set(xlabel="call number (same batch, no training step)", ylabel="mean log q(x) over the batch",
       title="training-mode log_prob of one fixed batch")
ax.legend(frameon=False, fontsize=8)
plt.show()

# %% [markdown]
# TFP's value wanders because every call drags the moving averages 1% of the way towards
# this very batch's statistics. It would settle on the honest value only once the moving
# averages had converged to this one batch; during training the batch changes every step
# and the networks change the statistics themselves, so the two never meet.
#

# %% [markdown]
# ## 5. The author's own measurement, scaled down
#
# `run_statistics_trial` answers one question: out of 10 trainings, what fraction ends with
# a non-finite loss? We ask it at the shipped learning rate, $10^{-5}$, and at the earlier
# $10^{-4}$. A full run of the post's recipe is 200,000 iterations of eight 512-unit
# networks at batch 1,500, far beyond what a notebook can afford, so we scale it down:
#
# | | post (bc20b0b) | here |
# |---|---|---|
# | couplings, batch norms, permutations | 8, after couplings 0, 2, 4, 6, swaps | the same |
# | hidden units per network | [512, 512] | [32, 32] |
# | batch | 1,500 (shuffled epochs) | 500 (drawn at random) |
# | iterations per training | 200,000 | `STEPS`, printed below |
# | trainings per learning rate | 10 | 10 |
# | optimiser | Keras Adam, constant rate | Adam with Keras's constants, written out, constant rate |
# | failure | final loss `nan`, loss looked at every 1,000 iterations | loss non-finite at any step (it then stays so) |
#
# Training 40 separate TFP flows would cost a compilation each. Instead the class below
# writes the post's stack out in plain TensorFlow, with a leading "copy" axis on every
# weight: 40 independent flows (10 per learning rate and loss), each with its own random
# initial weights, its own batches, its own learning rate and loss, trained side by side
# by one compiled step. The copies share
# no weight, so a `nan` in one cannot reach another. The batch norm is TFP's in training
# mode: batch statistics in the map, moving averages updated 1% per call, and its
# log-determinant from either the moving variances (`log_prob` of today's TFP, section 4)
# or the batch variances (`log_prob` of the TFP the post ran on).

# %%
class PostStacks(tf.Module):
    """`len(learning_rates)` independent copies of the post's stack, trained side by side.

    Each copy: 8 affine couplings (networks 1 -> hidden -> hidden -> 2, ReLU, Glorot-uniform
    kernels, zero biases, unbounded log-scale), a batch norm after couplings 0, 2, 4, 6
    (counted from the latent side), a swap of the two coordinates between couplings.
    Weights have shape [layer, copy, ...]. `moving_log_det`, one flag per copy: True takes
    the batch norms' log-determinant from the moving variances (today's TFP), False from the
    batch's (the TFP of 2020).
    """

    def __init__(self, learning_rates, moving_log_det, *, hidden=32, seed=0):
        copies = len(learning_rates)
        self.moving_log_det = tf.Variable(tf.reshape(tf.constant(moving_log_det, tf.bool), [copies, 1, 1]))
        self.learning_rates = tf.constant(learning_rates, tf.float32)
        sizes = [1, hidden, hidden, 2]
        self.kernels, self.biases = [], []
        for j, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            self.kernels.append(tf.Variable(tf.random.stateless_uniform(
                [8, copies, fan_in, fan_out], seed=[seed, j], minval=-limit, maxval=limit)))
            self.biases.append(tf.Variable(tf.zeros([8, copies, 1, fan_out])))
        self.gamma = tf.Variable(tf.ones([4, copies, 1, 2]))
        self.beta = tf.Variable(tf.zeros([4, copies, 1, 2]))
        self.moving_mean = tf.Variable(tf.zeros([4, copies, 1, 2]), trainable=False)
        self.moving_variance = tf.Variable(tf.ones([4, copies, 1, 2]), trainable=False)
        self.weights = self.kernels + self.biases + [self.gamma, self.beta]
        self.adam_m = [tf.Variable(tf.zeros_like(w)) for w in self.weights]
        self.adam_v = [tf.Variable(tf.zeros_like(w)) for w in self.weights]
        self.adam_t = tf.Variable(0.0)

    def log_prob(self, x):
        """Training-mode log q of `x` [copy, batch, 2], from data to latent (updates the moving averages)."""
        h, log_det = x, 0.0
        for i in reversed(range(8)):
            if i < 7:
                h = h[..., ::-1]  # tfb.Permute([1, 0])
            if i % 2 == 0:  # batch norm number i // 2: normalise with the batch's statistics
                k = i // 2
                mean, variance = tf.nn.moments(h, axes=[1], keepdims=True)
                h = (h - mean) * tf.math.rsqrt(variance + 1e-3) * self.gamma[k] + self.beta[k]
                self.moving_mean[k].assign(0.99 * self.moving_mean[k] + 0.01 * tf.stop_gradient(mean))
                self.moving_variance[k].assign(0.99 * self.moving_variance[k] + 0.01 * tf.stop_gradient(variance))
                used = tf.where(self.moving_log_det, self.moving_variance[k], variance)
                log_det += tf.reduce_sum(tf.math.log(tf.abs(self.gamma[k])) - 0.5 * tf.math.log(used + 1e-3), axis=-1)
            out = h[..., :1]  # coupling i: its network sees the first coordinate
            for j in range(3):
                out = tf.matmul(out, self.kernels[j][i]) + self.biases[j][i]
                out = tf.nn.relu(out) if j < 2 else out
            shift, log_scale = out[..., :1], out[..., 1:]
            h = tf.concat([h[..., :1], (h[..., 1:] - shift) * tf.exp(-log_scale)], axis=-1)
            log_det += -log_scale[..., 0]
        return -0.5 * tf.reduce_sum(h**2, axis=-1) - np.log(2 * np.pi) + log_det

    @tf.function(autograph=False)
    def train_step(self, x):
        """One Adam step for every copy; returns the copies' losses, shape [copy]."""
        with tf.GradientTape() as tape:
            losses = -tf.reduce_mean(self.log_prob(x), axis=1)
            total = tf.reduce_sum(losses)  # no shared weight: each copy gets its own gradient
        gradients = tape.gradient(total, self.weights)
        self.adam_t.assign_add(1.0)
        for w, g, m, v in zip(self.weights, gradients, self.adam_m, self.adam_v):
            m.assign(0.9 * m + 0.1 * g)
            v.assign(0.999 * v + 0.001 * g**2)
            step = m / (1 - 0.9**self.adam_t) / (tf.sqrt(v / (1 - 0.999**self.adam_t)) + 1e-7)
            w.assign_sub(tf.reshape(self.learning_rates, [1, -1] + [1] * (len(w.shape) - 2)) * step)
        return losses


# The same numbers as the TFP stack of section 4, layer for layer: copy the weights of one copy.
probe = PostStacks([1e-4], [True], hidden=32, seed=11)
batch = brad[:500]
for moving_log_det in (True, False):
    probe.moving_log_det.assign([[[moving_log_det]]])
    probe.moving_variance.assign(tf.ones_like(probe.moving_variance))
    tfp_stack, _ = post_realnvp(batch_norm="tfp", hidden_units=(32, 32), seed=11)
    for layer in flows.layers(tfp_stack):
        if isinstance(layer, bijectors.AffineCoupling):
            i = int(layer.name.split("_")[-1])
            for j in range(3):
                layer.network.kernels[j].assign(probe.kernels[j][i, 0])
                layer.network.biases[j].assign(probe.biases[j][i, 0, 0])
    ours = probe.log_prob(tf.constant(batch[None])).numpy()[0]
    theirs = (tfp_stack.log_prob(tf.constant(batch)).numpy() if moving_log_det  # today's TFP
              else change_of_variables(tfp_stack, tf.constant(batch)))  # batch statistics, as in 2020
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-3)
print("PostStacks computes the TFP stack's training-mode log q, with either log-determinant")

# %%
# 10 trainings at each learning rate, as run_statistics_trial did, with each loss: 40 copies.
RATES = np.array(([1e-4] * 10 + [1e-5] * 10) * 2)
MOVING = np.array([True] * 20 + [False] * 20)
stacks = PostStacks(RATES, MOVING, hidden=32, seed=0)
points = tf.constant(brad)


def side_by_side_step(step):
    """One step of every copy, each on its own 500 random points; the copies' losses, shape [copy]."""
    index = tf.random.stateless_uniform([len(RATES), 500], seed=[0, step], maxval=len(brad), dtype=tf.int32)
    return stacks.train_step(tf.gather(points, index)).numpy()


losses = np.array(iterate.repeat(side_by_side_step, steps=250))  # [step, copy]
STEPS = len(losses)  # iterations per training
non_finite = ~np.isfinite(losses)
first_bad = np.where(non_finite.any(axis=0), non_finite.argmax(axis=0) + 1, 0)  # each copy's first non-finite step, 0: none

rows = ["| batch-norm log-determinant | learning rate | trainings ending non-finite | first non-finite step |",
        "|---|---:|---:|---:|"]
for label, moving in (("today's TFP (moving variances)", True), ("TFP of 2020 (batch variances)", False)):
    for rate in (1e-4, 1e-5):
        failed = first_bad[(RATES == rate) & (MOVING == moving)]
        failed = failed[failed > 0]
        steps_text = f"{failed.min()} to {failed.max()}" if len(failed) else "–"
        rows.append(f"| {label} | {rate:.0e} | {len(failed)} of 10 | {steps_text} |")
display(Markdown(f"Ten trainings per row, {STEPS} iterations each, the scaled-down stack above:\n\n" + "\n".join(rows)))

# %% [markdown]
# How to read the table. The rows with today's TFP measure the post's code as it runs
# now: its loss is the one of section 4, which pays the networks to inflate variances.
# Within a few hundred iterations most runs at $10^{-4}$ meet a non-finite loss, while those
# at $10^{-5}$, which move ten times more slowly, have not got there yet: a lower rate
# postpones the runaway. The rows with the loss of 2020 are what the author ran; at this size and length
# they do not fail at either rate, so the author's `nan`s, seen somewhere in runs of up to
# 200,000 iterations of a much wider network, lie beyond what a notebook can rerun. What the
# table does show is the mechanism the author's change relies on: a non-finite loss is
# the end of a runaway, and the learning rate sets how fast a runaway grows.
#
# The batch norms of the stacks that trained on the loss of 2020 carry section 3's
# flattening: for each batch norm, the ratio of the scales its forward map applies to the
# two axes, after these few iterations (a ratio of 1 would leave a round cloud round).

# %%
scales = (np.sqrt(stacks.moving_variance.numpy() + 1e-3) / np.abs(stacks.gamma.numpy()))[:, ~MOVING, 0, :]
ratios = np.maximum(scales[..., 0], scales[..., 1]) / np.minimum(scales[..., 0], scales[..., 1])  # [batch norm, copy]
for k in range(4):
    print(f"batch norm after coupling {2 * k}: axis ratio of its forward map over the 20 trainings: "
          f"median {np.median(ratios[k]):.2f}, largest {ratios[k].max():.2f}")

# %% [markdown]
# ## 6. The recipe the rest of the series uses
#
# `flows.realnvp()` and `train.fit()` implement it with their defaults (printed below);
# each ingredient answers one of the failure modes above.
#
# | ingredient | where | why |
# |---|---|---|
# | bounded log-scale, $s = c\tanh(r/c)$, $c = 2$ | `AffineCoupling(max_log_scale=2.0)` | `exp` of a log-scale can never overflow (section 2), and no single step can blow a coupling up |
# | last layer of every coupling network starts at zero | `MLP(zero_last=True)` | the flow starts as the identity: the first loss is the base density's, and the first gradients are tame (notebook 05) |
# | a normalisation whose log-determinant matches its map: flowlib's batch norm, ActNorm, or none | `bijectors.BatchNormalization`, `normalization="actnorm"` or `"none"` | the training loss is the likelihood of the batch (section 4); ActNorm has no batch statistics and no train/eval mismatch at all (Kingma and Dhariwal 2018) |
# | Adam with a cosine decay of the learning rate to 0 | `train.fit(schedule="cosine")` | fast early progress, small steps at the end, where the flow is sharpest |
# | a guard around every compiled call of steps | `train.fit(max_retries=4)` | a non-finite loss or weight never survives: the last good state (weights, batch-norm statistics, optimizer moments) is restored and the learning rate halved; after `max_retries` rescues training stops with finite weights and says why |

# %%
def defaults(function, names):
    parameters = inspect.signature(function).parameters
    return ", ".join(f"{name}={parameters[name].default!r}" for name in names)


print("flows.realnvp:", defaults(flows.realnvp, ["num_layers", "hidden_units", "normalization", "max_log_scale"]))
print("train.fit:    ", defaults(train.fit, ["batch_size", "learning_rate", "schedule", "max_retries"]))

# %% [markdown]
# The guard is the seat belt, not the brakes. Here it is on the post's stack (small
# version, TFP batch norm, unbounded) at a learning rate of $10^{-2}$: each time the loss
# turns non-finite it restores the last good state and halves the rate, and when the
# rescues run out it stops, with finite weights and a message. It cannot repair a loss
# that is not a likelihood. The series' recipe on the same budget needs no rescue.

# %%
guard_flow, _ = post_realnvp(num_layers=4, hidden_units=(32, 32), seed=0)
with contextlib.redirect_stdout(io.StringIO()) as guard_messages:
    guard_history = train.fit(guard_flow, x_train, steps=400, learning_rate=1e-2, schedule="constant",
                              seed=0, steps_per_call=20, progress=False)
print(guard_messages.getvalue().strip())
print(f"post's stack: rescues {guard_history.rescues}, stopped {guard_history.stopped}, "
      f"steps completed {guard_history.steps}")
assert all(np.all(np.isfinite(v.numpy())) for v in guard_flow.variables)  # never left with non-finite weights

# The series' recipe: flowlib's defaults, at the same small size.
series_flow = flows.realnvp(num_layers=4, hidden_units=(32, 32), seed=0)
series_history = train.fit(series_flow, x_train, steps=400, seed=0, steps_per_call=20, progress=False)
print(f"series' recipe: rescues {series_history.rescues}; {metrics.evaluate(series_flow, target, x_test)}")
assert series_history.rescues == 0 and not series_history.stopped



# %% [markdown]
# ## Summary
#
# * The post's code as published (bsaund/normalizing_flows, commit bc20b0b, 7 April 2020)
#   trains at Adam $10^{-5}$; the author lowered it from $10^{-4}$ in the commit that added
#   a trial counting the trainings that end in `nan` (74e336a).
# * A `nan` in flow training is the end of a runaway: one coupling's log-scale grows until
#   `exp` overflows in float32, and a batch norm spreads the resulting `inf`/`nan` to every
#   point, the loss and the weights within one step. A bounded log-scale keeps `exp` in
#   range; shifts and batch norm's scale and offset stay unbounded.
# * Batch normalisation is two functions: batch statistics in the inverse during training,
#   moving averages otherwise, so in training mode `forward(inverse(x)) != x`, and a
#   single-point (or degenerate) batch gets a meaningless likelihood. In the forward
#   direction each batch norm rescales the two axes by its own moving scales: the
#   "flattened" panels.
# * Since TFP 0.17 (commit 23c395440, 2022), `TransformedDistribution.log_prob` uses
#   `forward_log_det_jacobian`, which `tfb.BatchNormalization` computes from its moving
#   averages: in training mode the loss is then not the likelihood of the batch, and the
#   post's stack runs away; a lower learning rate only postpones it. The post (2020) ran
#   on an older TFP whose `log_prob` used `inverse_log_det_jacobian`, consistent with the map.
# * The series' recipe: a consistent batch norm, ActNorm or no normalisation, a bounded
#   log-scale, zero-initialised last layers, a cosine-decayed learning rate and a guard
#   that restores the last good state.

# %% [markdown]
# ## Exercises

# %% [markdown]
# ### Exercise 1: the first layer that leaves float32
#
# A coordinate $x$ passes through $L$ layers; layer $l$ (counting from 0) multiplies it by
# $e^{s_l}$, so after layer $l$ its exact value is $x\,e^{s_0 + \dots + s_l}$. Write
# `first_overflow_layer(x, log_scales)`: `x` has shape `[n]` (any sign), `log_scales` shape
# `[n, L]` (row $i$ holds the log-scales point $i$ meets). Return an integer array of shape
# `[n]`: for each point, the first $l$ at which the exact value's magnitude exceeds the
# largest float32, `np.finfo(np.float32).max`, or `-1` if it never does. Mind that a
# value can exceed the limit and come back below it later; the first crossing is what
# counts. Then, in a markdown cell of your own: with the bound $|s_l| \le 2$ of section 2,
# how large must $|x|$ be for eight layers to overflow?

# %%
def first_overflow_layer(x, log_scales):
    ### BEGIN SOLUTION hint: compare log|x| plus the running sum of the log-scales with the log of the largest float32
    level = np.log(np.abs(x))[:, None] + np.cumsum(log_scales, axis=1)
    over = level > np.log(np.finfo(np.float32).max)
    return np.where(over.any(axis=1), over.argmax(axis=1), -1)
    ### END SOLUTION


def check_exercise_1(first_overflow_layer):
    limit = np.log(np.finfo(np.float32).max)
    for seed, n, num_layers in [(0, 7, 3), (1, 12, 8), (2, 5, 13)]:
        rng = np.random.default_rng(seed)
        while True:  # keep every running level away from the limit, so float rounding cannot matter
            x = rng.choice([-1.0, 1.0], size=n) * np.exp(rng.uniform(-5.0, 40.0, size=n))
            log_scales = rng.normal(10.0, 20.0, size=(n, num_layers))
            level = np.log(np.abs(x))[:, None] + np.cumsum(log_scales, axis=1)
            if np.min(np.abs(level - limit)) > 0.05:
                break
        over = level > limit
        expected = np.where(over.any(axis=1), over.argmax(axis=1), -1)
        got = np.asarray(first_overflow_layer(x.copy(), log_scales.copy()))
        assert got.shape == (n,), f"expected one layer index per point, shape ({n},), got shape {got.shape}"
        wrong = np.flatnonzero(got != expected)
        assert len(wrong) == 0, (f"case seed={seed}: wrong answer for {len(wrong)} of {n} points, e.g. "
                                 f"x={x[wrong[0]]:.3g}, log-scales {np.round(log_scales[wrong[0]], 2)}")
    # Near the limit: the threshold is the largest float32, not a round number.
    # And the exact value counts, not a float32 computation of one layer's factor.
    x = np.array([1.0, -1.0, 2.0, 1.0, 1e-35, -1.0, 1.0, -1.0])
    log_scales = np.array([[44.0, 44.5], [44.0, 44.6], [44.0, 44.1], [89.0, -5.0], [100.0, -10.0], [44.0, 44.7224],
                           [44.0, 44.72281], [44.0, 44.72287]])
    got = np.asarray(first_overflow_layer(x, log_scales))
    assert np.issubdtype(got.dtype, np.integer), f"layer indices must be integers, got dtype {got.dtype}"
    assert np.array_equal(got, [-1, -1, 1, 0, -1, -1, -1, 1]), f"values near the limit: got {got}"


check_exercise_1(first_overflow_layer)
print("Exercise 1: correct")

# %% [markdown]
# ### Exercise 2: batch norm's round trip, predicted by hand
#
# In section 3 we saw that `forward(inverse(y)) != y` in training mode. Predict the result
# exactly, with NumPy or TensorFlow, in float64. Write `predicted_round_trip(y, moving_mean,
# moving_variance, momentum, epsilon)`: `y` has shape `[n, d]` (a batch of `n` points in
# `d` dimensions), the moving averages shape `[d]`; the batch norm has $\gamma = 1$,
# $\beta = 0$ and is in training mode, and the moving averages are the ones *before* the
# call. Mind the order: `inverse` first updates the moving averages with the batch
# statistics (biased variance, dividing by $n$), $m \leftarrow \text{momentum}\cdot m + (1 -
# \text{momentum})\cdot \mu_B$ (the same for the variance), and `forward` then uses the
# updated ones. The check compares with a relative tolerance of $10^{-9}$.

# %%
def predicted_round_trip(y, moving_mean, moving_variance, momentum=0.99, epsilon=1e-3):
    ### BEGIN SOLUTION hint: normalise with the batch's statistics, then de-normalise with the moving averages as updated by this batch
    mean, variance = y.mean(axis=0), y.var(axis=0)
    moving_mean = momentum * moving_mean + (1 - momentum) * mean
    moving_variance = momentum * moving_variance + (1 - momentum) * variance
    return (y - mean) * np.sqrt((moving_variance + epsilon) / (variance + epsilon)) + moving_mean
    ### END SOLUTION


def check_exercise_2(predicted_round_trip):
    cases = [(0, 37, 2, 0.99, 1e-3), (1, 50, 3, 0.9, 1e-2), (2, 9, 5, 0.5, 0.3)]
    for seed, n, d, momentum, epsilon in cases:
        rng = np.random.default_rng(seed)
        y = rng.normal(rng.normal(0.0, 3.0, size=d), rng.uniform(0.2, 4.0, size=d), size=(n, d))
        moving_mean, moving_variance = rng.normal(0.0, 2.0, size=d), rng.uniform(0.1, 5.0, size=d)
        got = np.asarray(predicted_round_trip(y.copy(), moving_mean.copy(), moving_variance.copy(),
                                              momentum, epsilon), dtype=np.float64)
        mean, variance = y.mean(axis=0), y.var(axis=0)
        new_mean = momentum * moving_mean + (1 - momentum) * mean
        new_variance = momentum * moving_variance + (1 - momentum) * variance
        expected = (y - mean) / np.sqrt(variance + epsilon) * np.sqrt(new_variance + epsilon) + new_mean
        assert got.shape == (n, d), f"expected shape ({n}, {d}), got {got.shape}"
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9,
                                   err_msg=f"case seed={seed}, n={n}, d={d}, momentum={momentum}, "
                                           f"epsilon={epsilon}: the prediction differs")


check_exercise_2(predicted_round_trip)
print("Exercise 2: correct")

# %% [markdown]
# ### Exercise 3: make TFP's batch norm honest
#
# Section 4 blamed one method: `tfb.BatchNormalization._forward_log_det_jacobian`, which
# uses the moving averages. Write a subclass whose forward log-determinant at a latent
# point $x$ agrees with the inverse log-determinant that normalised the batch. Two facts
# help: inside a `TransformedDistribution`, TFP has just computed the inverse and still
# holds the data-side point that produced $x$ in its cache; and the private
# `self._inverse_log_det_jacobian(y)` uses the batch statistics in training mode. The
# check: in small flows (two and three dimensions, one and two batch norms, learned
# $\gamma$ and $\beta$ away from 1 and 0), training-mode `log_prob` must equal the change
# of variables with batch statistics, in value and in its gradient with respect to the
# couplings' weights (training follows the gradient), and give the same answer twice; one
# call must update the moving averages once, as TFP's does. Change nothing else:
# the map and the update of the moving averages stay TFP's, and in evaluation mode, where
# the inverse normalises with the moving averages, the log-determinant must stay theirs.

# %%
class HonestBatchNormalization(tfb.BatchNormalization):
    """tfb.BatchNormalization whose forward log-det agrees with its inverse in training mode."""

    ### BEGIN SOLUTION hint: how does a forward log-det relate to the inverse log-det at the matching data-side point?
    def _forward_log_det_jacobian(self, x):
        return -self._inverse_log_det_jacobian(self.forward(x))
    ### END SOLUTION


def honest_log_prob(layers, points):
    """Change of variables through `layers` (forward order), batch statistics in every batch norm."""
    h, log_det = tf.constant(points, tf.float32), 0.0
    for layer in reversed(layers):
        if isinstance(layer, tfb.BatchNormalization):
            keras_layer = layer.batchnorm
            mean, variance = tf.nn.moments(h, axes=[0])
            h = (h - mean) * tf.math.rsqrt(variance + keras_layer.epsilon) * keras_layer.gamma + keras_layer.beta
            log_det += tf.reduce_sum(tf.math.log(keras_layer.gamma) - 0.5 * tf.math.log(variance + keras_layer.epsilon))
        else:
            log_det += layer.inverse_log_det_jacobian(h, event_ndims=1)
            h = layer.inverse(h)
    dim = points.shape[-1]
    return tfd.MultivariateNormalDiag(tf.zeros(dim), tf.ones(dim)).log_prob(h) + log_det


def check_exercise_3(HonestBatchNormalization):
    for seed, dim, num_norms, n in [(0, 2, 1, 300), (1, 3, 2, 257)]:
        rng = np.random.default_rng(seed)
        layers = []
        for k in range(num_norms):
            mask = np.arange(dim) < (1 if k % 2 == 0 else dim - 1)
            layers.append(bijectors.AffineCoupling(mask, bijectors.MLP(int(mask.sum()), 2 * int((~mask).sum()), (16,),
                                                                       seed=10 * seed + k, zero_last=False)))
            layers.append(HonestBatchNormalization(training=True))
        flow = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(tf.zeros(dim), tf.ones(dim)),
                                           tfb.Chain(layers[::-1]))
        points = (rng.normal(size=(n, dim)) * rng.uniform(0.3, 3.0, size=dim) + rng.normal(0, 2, size=dim))
        points = points.astype(np.float32)
        flow.log_prob(tf.constant(points[:5]))  # builds the batch norms' variables
        for layer in layers:
            if isinstance(layer, tfb.BatchNormalization):
                layer.batchnorm.gamma.assign(rng.uniform(0.5, 2.0, size=dim))
                layer.batchnorm.beta.assign(rng.normal(size=dim))
                layer.batchnorm.moving_variance.assign(rng.uniform(0.2, 5.0, size=dim))
        weights = [v for layer in layers if isinstance(layer, bijectors.AffineCoupling) for v in layer.trainable_variables]
        with tf.GradientTape(persistent=True) as tape:
            expected = honest_log_prob(layers, points)
            first = flow.log_prob(tf.constant(points))  # new tensors: no help from TFP's cache
            losses = -tf.reduce_mean(expected), -tf.reduce_mean(first)
        second = flow.log_prob(tf.constant(points)).numpy()
        np.testing.assert_allclose(first, expected, rtol=1e-4, atol=1e-3,
                                   err_msg=f"case dim={dim}, {num_norms} batch norm(s): training-mode log_prob "
                                           "is not the change of variables with batch statistics")
        for want, got in zip(tape.gradient(losses[0], weights), tape.gradient(losses[1], weights)):
            np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4,
                                       err_msg=f"case dim={dim}, {num_norms} batch norm(s): the gradient of the "
                                               "loss is not the gradient of the change of variables")
        first = first.numpy()
        np.testing.assert_allclose(second, first, rtol=1e-5, atol=1e-4,
                                   err_msg="the same batch gives a different log_prob on a second call")
    # The moving averages: TFP's update, once per call. The batch norm nearest the data sees the points.
    keras_layer = layers[-1].batchnorm
    before = np.array(keras_layer.moving_variance.numpy())
    flow.log_prob(tf.constant(points))
    np.testing.assert_allclose(keras_layer.moving_variance.numpy(), 0.99 * before + 0.01 * points.var(axis=0),
                               rtol=1e-4, err_msg="one log_prob call must update the moving averages once, as TFP does")
    # Evaluation mode: the moving averages' log-determinant, as in TFP.
    base = tfd.MultivariateNormalDiag(tf.zeros(dim), tf.ones(dim))
    ours = tfd.TransformedDistribution(base, HonestBatchNormalization(keras_layer, training=False))
    theirs = tfd.TransformedDistribution(base, tfb.BatchNormalization(keras_layer, training=False))
    np.testing.assert_allclose(ours.log_prob(tf.constant(points)).numpy(),
                               theirs.log_prob(tf.constant(points)).numpy(), rtol=1e-5, atol=1e-4,
                               err_msg="in evaluation mode the log-determinant must stay the moving averages' one")


check_exercise_3(HonestBatchNormalization)
print("Exercise 3: correct")
