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
# # 09 · Beyond 2-D: RealNVP on images, in bits per dimension
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/normalizing-flows-tf2/flowlib/blob/main/notebooks/09_images_bits_per_dimension.ipynb)
#
# **After this notebook you can** explain why a density model of pixels needs
# dequantization, derive and compute bits per dimension from a log-likelihood in nats,
# build the image version of RealNVP (logit pre-processing, checkerboard and channel-wise
# masks, squeeze, a multi-scale architecture that factors out half of the dimensions at
# each scale), train it on real handwritten digits on a CPU, and judge it against simple
# baselines, its samples and a walk through its latent space.
#
# **Prerequisites:** [05 · RealNVP](05_realnvp.ipynb) (the affine coupling and its
# log-determinant) and [07 · Training stability](07_training_stability.ipynb) (why
# flowlib bounds the log-scale). [08](08_beyond_affine_coupling.ipynb) adds other layers; this notebook
# needs only the affine coupling.

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
import math

import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
from IPython.display import Markdown, display

from flowlib import dequantization, images, train

# %% [markdown]
# ## 1. The data: 1,797 handwritten digits of 8x8 pixels
#
# scikit-learn ships a small set of handwritten digits (`sklearn.datasets.load_digits`,
# from the UCI "optical recognition of handwritten digits" data): 1,797 images of
# $8 \times 8$ pixels whose grey levels are the whole numbers $0, 1, \dots, 16$. They are
# inside the package, so nothing is downloaded, and they are small enough for a CPU.
# We split them once, with a fixed seed, into 1,350 training, 150 validation and 297 test
# images, and never look at the test images while choosing anything.
#
# In Colab you can set `DATASET = "mnist"` to run the same code on MNIST
# ($28 \times 28$ pixels, 256 levels, downloaded by `tf.keras.datasets`); expect it to take
# much longer.

# %%
DATASET = "digits"  # or "mnist" (downloads 11 MB; 28x28 pixels, 256 levels)

split = images.load_digits() if DATASET == "digits" else images.load_mnist()
HEIGHT, WIDTH, CHANNELS = split.shape
LEVELS = split.num_levels
D = HEIGHT * WIDTH * CHANNELS
print(f"{len(split.train)} training, {len(split.validation)} validation, {len(split.test)} test images; "
      f"{HEIGHT}x{WIDTH} pixels, D = {D} dimensions, grey levels 0..{LEVELS - 1}")


def show_grid(vectors, rows, title=None, axes=None):
    """Images [n, D] side by side, `rows` rows, black ink on white."""
    pictures = images.as_images(vectors, HEIGHT, WIDTH, CHANNELS)[..., 0]
    columns = int(math.ceil(len(pictures) / rows))
    canvas = np.ones((rows * (HEIGHT + 1) - 1, columns * (WIDTH + 1) - 1)) * np.nan
    for index, picture in enumerate(pictures):
        r, c = divmod(index, columns)
        canvas[r * (HEIGHT + 1):r * (HEIGHT + 1) + HEIGHT, c * (WIDTH + 1):c * (WIDTH + 1) + WIDTH] = picture
    axes = axes or plt.gca()
    axes.imshow(canvas, cmap="gray_r", vmin=0, vmax=LEVELS - 1)
    axes.set_axis_off()
    if title:
        axes.set_title(title)


plt.figure(figsize=(10, 2.6))
show_grid(split.train[:48], rows=3, title="training images (grey levels 0..16, darker = more ink)")
plt.show()

# %% [markdown]
# ## 2. Why a density on pixels needs dequantization
#
# A flow is a *density* $q$ on $\mathbb{R}^D$; the pixels are *integers*. Maximising a
# density at a finite set of points has no maximum: put a narrow bump on each training
# value and the density there grows without bound. One pixel is enough to see it. Model
# the value of one pixel (row 0, column 2) by a mixture of narrow Gaussians, one on each grey
# level with the level's frequency as its weight, and shrink the width $\sigma$:

# %%
pixel = split.train[:, 2]  # a pixel in the top row, with ink in some digits and not in others
weights = np.bincount(pixel, minlength=LEVELS) / len(pixel)


def mixture_log_likelihood(values, sigma):
    """Mean log-density of `values` under sum_k weights[k] N(k, sigma^2)."""
    levels = np.arange(LEVELS)
    log_terms = (np.log(np.maximum(weights, 1e-300)) - 0.5 * ((values[:, None] - levels) / sigma) ** 2
                 - np.log(sigma * np.sqrt(2 * np.pi)))
    top = log_terms.max(axis=1, keepdims=True)
    return float(np.mean(top[:, 0] + np.log(np.exp(log_terms - top).sum(axis=1))))


sigmas = [1.0, 0.1, 0.01, 0.001]
likelihoods = [mixture_log_likelihood(pixel, s) for s in sigmas]
for sigma, value in zip(sigmas, likelihoods):
    print(f"sigma = {sigma:<6}: mean log-density of the training values = {value:8.2f} nats")
assert all(b > a + 1.0 for a, b in zip(likelihoods[1:], likelihoods[2:])), "it keeps growing as sigma shrinks"

# %% [markdown]
# Each tenfold narrower bump adds $\ln 10 \approx 2.3$ nats per pixel, forever. This is
# not a better model, only a degenerate one: the number says nothing about how well the
# model predicts new images.
#
# **Uniform dequantization** (Theis, van den Oord and Bethge, 2016; used by RealNVP)
# fixes this. Add independent noise $u \sim \mathcal{U}[0, 1)^D$ to the integer image $x$
# and divide by the number of levels $L$ ($= 17$ here):
#
# $$y = \frac{x + u}{L} \in [0, 1)^D.$$
#
# Each integer image owns a little cube $C_x = (x + [0,1)^D)/L$ of side $1/L$, and the
# cubes of different images do not overlap. A density $q$ on $[0,1)^D$ defines a proper
# *discrete* model, $P(x) = \int_{C_x} q(y)\,dy$, and by Jensen's inequality
#
# $$\log P(x) = \log \mathbb{E}_{u}\big[q(y)\,L^{-D}\big] \;\ge\; \mathbb{E}_{u}\big[\log q(y)\big] - D \log L .$$
#
# So the average of $\log q$ over dequantized data is a **lower bound** on the discrete
# log-likelihood, and it cannot grow without bound: a density squeezed into a tiny part of
# a cube gets almost none of the noise-filled cube right. Training maximises this bound.
#
# How loose is the bound? Write $q(u \mid x) = q(y)\,L^{-D} / P(x)$ for the noise that the
# model itself puts inside the cube of $x$ (a distribution on $[0,1)^D$, since the
# integral of $q(y)\,L^{-D}$ over the cube is $P(x)$). For any noise distribution
# $r(u \mid x)$ on the cube, one line of algebra gives
#
# $$\log P(x) - \mathbb{E}_{u \sim r}\big[\log q(y) - D \log L - \log r(u \mid x)\big]
#   = \mathrm{KL}\big(r(u \mid x) \,\|\, q(u \mid x)\big) \;\ge\; 0 .$$
#
# Uniform noise is $r = 1$, the bound above: its gap is the KL divergence from the
# uniform distribution to the model's own noise, large when the model's density is
# uneven inside the cubes. *Variational dequantization* (Flow++, Ho et al., 2019,
# section 3.1) learns $r(u \mid x)$ with a second flow and trains both together, which
# shrinks this gap. We train with uniform noise first; section 7 measures how loose its
# bound is on held-out digits and then learns the noise.

# %%
COPIES = 20 if DATASET == "digits" else 1  # MNIST has enough images without repeating them
y_train = images.dequantize(split.train, LEVELS, seed=1, copies=COPIES)  # each image with 20 noises
y_validation = images.dequantize(split.validation, LEVELS, seed=2)
assert y_train.min() >= 0 and y_train.max() < 1
print(f"training points: {y_train.shape[0]:,} dequantized images ({COPIES} noises per image), all in [0, 1)")
# Each dequantized point lies in its image's cube: rounding down recovers the integers.
np.testing.assert_array_equal(images.quantize(y_train[:len(split.train)], LEVELS), split.train)

# %% [markdown]
# ## 3. Bits per dimension
#
# Image models report **bits per dimension**: the discrete negative log-likelihood of an
# image in bits, divided by the number of dimensions $D$. It is the average number of bits
# an ideal compressor driven by the model spends per pixel, and it compares datasets of
# different sizes. From the bound above, with $\mathrm{NLL} = -\mathbb{E}[\log q(y)]$ in
# nats for dequantized images in $[0,1)^D$:
#
# $$\text{bits/dim} = \frac{-\log P(x)}{D \ln 2} \;\le\; \frac{\mathrm{NLL} + D \ln L}{D \ln 2}.$$
#
# The term $D \ln L$ is the change of units from $[0, 1)$ back to grey levels (a cube of
# side $1/L$ has volume $L^{-D}$); the $\ln 2$ turns nats into bits. Two checks make the
# formula concrete:
#
# - the **uniform** model, $q = 1$ on $[0,1)^D$, gives every image the probability
#   $L^{-D}$: $\log_2 17 = 4.09$ bits per dimension, the score of knowing nothing;
# - independent **per-pixel histograms** (add-one smoothed counts of each grey level at
#   each position on the training images) are a discrete model whose bits per dimension we
#   can compute exactly; dequantized, each histogram becomes a piecewise-constant density
#   ($L \cdot P(\text{level})$ on each cube), and the formula must give the same number.

# %%
def bits_per_dim_from_nll(nll_nats, num_dims, num_levels):
    """Bits per dimension of discrete images from the mean NLL (nats) of their dequantized version in [0, 1)^D."""
    return (nll_nats + num_dims * math.log(num_levels)) / (num_dims * math.log(2))


# The uniform density on [0, 1)^D: log q = 0 for every image.
assert math.isclose(bits_per_dim_from_nll(0.0, D, LEVELS), math.log2(LEVELS))
assert math.isclose(images.bits_per_dim(0.0, D, LEVELS), math.log2(LEVELS))  # flowlib's version, from now on

# Per-pixel histograms: the discrete model, scored directly in bits...
counts = np.stack([np.bincount(split.train[:, i], minlength=LEVELS) for i in range(D)]) + 1.0
histograms = counts / counts.sum(axis=1, keepdims=True)  # [D, L]: P(pixel i has level k)
histogram_bits = -np.log2(histograms[np.arange(D), split.test]).sum(axis=1).mean() / D
# ...and as a density on dequantized test images, through the formula.
y_test = images.dequantize(split.test, LEVELS, seed=3)
log_q = np.log(LEVELS * histograms[np.arange(D), images.quantize(y_test, LEVELS)]).sum(axis=1)
histogram_bits_from_density = images.bits_per_dim(-log_q.mean(), D, LEVELS)
np.testing.assert_allclose(histogram_bits_from_density, histogram_bits, rtol=1e-9)

uniform_bits = math.log2(LEVELS)
print(f"uniform over {LEVELS} levels : {uniform_bits:.3f} bits/dim")
print(f"per-pixel histograms    : {histogram_bits:.3f} bits/dim on the test images, "
      f"{1 - histogram_bits / uniform_bits:.0%} fewer than uniform")

# %% [markdown]
# The histograms already save a large share of the bits (printed above): most of an 8x8
# digit's border is always empty. What they cannot know is that pixels depend on each other (a stroke continues).
# That is what the flow has to learn.
#
# ## 4. The logit pre-processing
#
# A flow's base is a Gaussian on all of $\mathbb{R}^D$, while the dequantized pixels live in
# the box $[0,1)^D$ with sharp walls, and many sit right at a wall (the empty border).
# RealNVP (Dinh et al., 2017, section 4.1) first maps the box to $\mathbb{R}^D$ with a
# logit, pulled slightly inside the box by a small $\alpha$. The authors' code
# (`research/real_nvp/real_nvp_multiscale_dataset.py` in `tensorflow/models`,
# `data_constraint = 0.9`) squeezes $[0, 1]$ into $[0.05, 0.95]$ first, which is
# $\alpha = 0.05$ below:
#
# $$z = \operatorname{logit}\big(\alpha + (1 - 2\alpha)\, y\big), \qquad
#   \log\left|\frac{dz}{dy}\right| = \log(1-2\alpha) - \log s - \log(1 - s),\quad s = \alpha + (1-2\alpha)\,y,$$
#
# per pixel. It is a bijection, so it is just one more layer of the flow, and its
# log-determinant **counts in the likelihood**: the density of $y$ is the density of $z$
# times $|dz/dy|$. `flowlib.images.Logit` is that layer; in TFP's convention its
# `forward` maps $z$ to $y$ (latent side to data side), its `inverse` is the
# pre-processing. Its log-determinant depends on the data but on no parameter.

# %%
logit = images.Logit(alpha=0.05)
probe = tf.constant(y_validation[:8])
with tf.GradientTape() as tape:
    tape.watch(probe)
    z_probe = logit.inverse(probe)
jacobian = tape.batch_jacobian(z_probe, probe)  # [8, D, D], diagonal
autodiff_log_det = tf.linalg.slogdet(jacobian)[1]
np.testing.assert_allclose(logit.inverse_log_det_jacobian(probe, event_ndims=1), autodiff_log_det, rtol=1e-4)
np.testing.assert_allclose(logit.forward(z_probe), probe, atol=1e-5)
print(f"logit side: values in [{z_probe.numpy().min():.2f}, {z_probe.numpy().max():.2f}]; "
      f"log|dz/dy| of one image = {float(autodiff_log_det[0]):.1f} nats")

# %% [markdown]
# ## 5. Masks for images, and the squeeze
#
# A coupling layer (notebook 05) keeps some coordinates, $x_1$, and scales and shifts the
# others with a network of $x_1$. On images, RealNVP chooses the kept pixels in two ways:
#
# - a **checkerboard** mask keeps the pixels where row + column is even (then the odd ones,
#   in the next layer): every changed pixel has kept neighbours all around it, which is
#   what a convolutional network can use;
# - a **channel-wise** mask keeps the first half of the channels at every pixel.
#
# A grey image has one channel, so channel-wise masks need more channels first. The
# **squeeze** makes them: every $2 \times 2$ block of pixels becomes one pixel with four
# channels, $[H, W, C] \to [H/2, W/2, 4C]$. It moves numbers around and changes none, so it
# is a bijection with $\log|\det J| = 0$. flowlib keeps images flattened to vectors of $D$
# numbers (so every layer of the series still applies); on a flattened image a squeeze is
# a fixed permutation of the coordinates, `images.Squeeze` (a `tfb.Permute`), and masks
# are boolean vectors for `bijectors.AffineCoupling`.

# %%
fig, axes = plt.subplots(1, 4, figsize=(12, 3.2))
axes[0].imshow(images.checkerboard_mask(8, 8, 1).reshape(8, 8), cmap="Greys", vmin=0, vmax=1.6)
axes[0].set_title("checkerboard on 8x8\n(dark = kept)")
numbers = np.arange(16).reshape(4, 4)
axes[1].imshow(np.zeros((4, 4)), cmap="Greys", vmin=0, vmax=1)
for (r, c), n in np.ndenumerate(numbers):
    axes[1].text(c, r, str(n), ha="center", va="center", color=plt.cm.tab10(2 * (r % 2) + (c % 2)))
axes[1].set_title("a 4x4 image\n(colour = place in its 2x2 block)")
squeezed = images.Squeeze(4, 4, 1).forward(numbers.reshape(1, 16).astype(np.float32)).numpy().reshape(2, 2, 4)
np.testing.assert_array_equal(squeezed, tf.nn.space_to_depth(numbers.reshape(1, 4, 4, 1), 2)[0])
axes[2].imshow(np.zeros((2, 8)), cmap="Greys", vmin=0, vmax=1)
for (r, c, k), n in np.ndenumerate(squeezed.astype(int)):
    axes[2].text(4 * c + k, r, str(n), ha="center", va="center", color=plt.cm.tab10(k))
for boundary in (3.5,):
    axes[2].axvline(boundary, color="black", lw=2)
axes[2].set_title("squeezed: 2x2 pixels, 4 channels each\n(the 4 channels of a pixel side by side)")
channel_kept = images.channel_mask(2, 2, 4).reshape(2, 8)  # row r: the 4 channels of pixel (r, 0), then (r, 1)
axes[3].imshow(channel_kept, cmap="Greys", vmin=0, vmax=1.6)
for boundary in (3.5,):
    axes[3].axvline(boundary, color="black", lw=2)
axes[3].set_title("channel-wise mask on 2x2x4\n(dark = kept: channels 0, 1)")
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
plt.tight_layout()
plt.show()

squeeze = images.Squeeze(HEIGHT, WIDTH, CHANNELS)
np.testing.assert_array_equal(squeeze.inverse(squeeze.forward(y_validation)), y_validation)
assert np.all(squeeze.forward_log_det_jacobian(y_validation, event_ndims=1).numpy() == 0)

# %% [markdown]
# ## 6. The multi-scale architecture
#
# RealNVP's image model (Dinh et al., 2017, section 3.6) repeats one *scale*, read from
# the data side to the latent side:
#
# 1. three checkerboard couplings (alternating which colour is kept),
# 2. a squeeze,
# 3. three channel-wise couplings (alternating halves),
# 4. **factor out half of the dimensions**: half of the channels leave the flow here and
#    go straight to the Gaussian base; the following scales work on the other half only.
#
# After the last scale a few more checkerboard couplings act on what is left. Factoring out
# halves the cost of every later layer and makes the layers near the data model local
# detail while the later ones, on fewer and coarser variables, model the overall shape.
# With two scales on 8x8 digits: 32 dimensions leave after scale 1, 16 after scale 2, and
# the last 16 go through four more couplings; 16 coupling layers in all.
#
# On flattened vectors, factoring out is again a permutation (the leaving coordinates move
# to the end of the vector), and later couplings keep those coordinates unchanged and their
# networks do not look at them. The figure shows, for every pixel position, after which
# scale its variable leaves (following the squeezes back to the picture).

# %%
model_parts = images.multiscale_flow(HEIGHT, WIDTH, CHANNELS, num_scales=2, network="conv", hidden=32, seed=0)
inner_flow = model_parts.flow                            # on the logit side
flow = images.with_preprocessing(inner_flow, alpha=0.05)  # on [0, 1)^D: Logit, then the multi-scale flow
print(f"{model_parts.num_couplings} coupling layers, "
      f"{sum(int(np.prod(v.shape)) for v in flow.trainable_variables):,} parameters")

exit_scale = model_parts.exit_scale[..., 0]
plt.figure(figsize=(3.6, 3.6))
plt.imshow(exit_scale, cmap=plt.get_cmap("viridis", 3), vmin=0.5, vmax=3.5)
for (r, c), s in np.ndenumerate(exit_scale):
    plt.text(c, r, str(s), ha="center", va="center", color="white" if s < 3 else "black")
plt.title("which pixels leave after which scale\n(3 = stay to the end)")
plt.xticks([])
plt.yticks([])
plt.show()
assert list(np.bincount(exit_scale.ravel())[1:]) == [D // 2, D // 4, D // 4]

# %% [markdown]
# The squeeze puts the four pixels of a $2 \times 2$ block in channels 0 to 3, top row
# first, and factoring out the second half of the channels removes the bottom row of every
# block: after scale 1 every other row has left. At scale 2 the same happens on the
# coarser $4 \times 4$ grid.
#
# ### The coupling networks: convolutional or dense?
#
# Each coupling needs a network from the kept pixels to a shift and a log-scale for each
# changed pixel. `images.ConvNet` puts the kept pixels back into their places (zeros
# elsewhere, plus the mask as extra channels) and runs two 3x3 convolutions of 32 channels
# and a third, zero-initialised, that outputs the shift and log-scale at every pixel;
# `images.DenseNet` is a fully connected network on the kept pixels. Both plug into the
# same `AffineCoupling` (choose with `network="dense"` or `network="conv"` below). A dense
# network sees all the kept pixels at once, with separate weights for each, and 1,350
# images, even with 20 noises each, are few for that: given more steps, a dense flow
# **overfits**, its training loss falling while its held-out bits per dimension rise.
# A convolution shares its weights across positions and only looks at neighbours, which
# is the right prior for images even at 8x8. We use the convolutional networks (to see
# the difference, train once with `network="dense", hidden=128` and compare the held-out
# bits per dimension of section 7).
#
# ## 7. Training
#
# The pre-processing has no parameters, so its log-determinant is a constant for each
# training image: we train the multi-scale flow on the logit side (with flowlib's `fit`,
# which sees only couplings and permutations), and score the full model on $[0,1)^D$. Each
# training image comes with 20 different dequantization noises.

# %%
z_train = logit.inverse(y_train).numpy()
z_validation = logit.inverse(y_validation).numpy()


def held_out_bits(model, seeds=range(5)):
    """Held-out bits/dim of `model` (a density on [0, 1)^D), averaged over dequantization noises."""
    nll = [-model.log_prob(images.dequantize(split.test, LEVELS, seed=100 + s)).numpy().mean() for s in seeds]
    return images.bits_per_dim(float(np.mean(nll)), D, LEVELS)


untrained_bits = held_out_bits(flow)
history = train.fit(inner_flow, z_train, steps=400, batch_size=64, learning_rate=3e-3,
                    validation_data=z_validation, seed=0)
flow_bits = held_out_bits(flow)

print(f"{'model':<28}{'test bits/dim':>14}")
for name, value in [(f"uniform over {LEVELS} levels", uniform_bits), ("per-pixel histograms", histogram_bits),
                    ("flow, untrained", untrained_bits), ("flow, trained", flow_bits)]:
    print(f"{name:<28}{value:>14.3f}")
assert flow_bits < untrained_bits and flow_bits < uniform_bits

# %%
# NLL on [0, 1)^D = NLL on the logit side - log|dz/dy| (the pre-processing's log-determinant).
train_log_det = logit.inverse_log_det_jacobian(y_train, event_ndims=1).numpy().mean()
validation_log_det = logit.inverse_log_det_jacobian(y_validation, event_ndims=1).numpy().mean()
fig, ax = plt.subplots(figsize=(6, 3.2))
ax.plot(np.arange(1, len(history.loss) + 1),
        [images.bits_per_dim(nll - train_log_det, D, LEVELS) for nll in history.loss],
        lw=0.5, alpha=0.5, label="training batches")
ax.plot(history.validation_steps, [images.bits_per_dim(nll - validation_log_det, D, LEVELS)
                                   for nll in history.validation_nll], "o-", label="validation")
ax.axhline(histogram_bits, color="gray", ls="--", label="per-pixel histograms (test)")
ax.set_xlabel("step")
ax.set_ylabel("bits / dim")
ax.set_ylim(1.5, 3.5)
ax.legend()
plt.show()

# %% [markdown]
# (The training curve uses the pre-processing's log-determinant averaged over all the
# training points, so single batches scatter around it.)
#
# ### Learning the noise: variational dequantization
#
# Section 2 showed what uniform noise costs: the bound is loose by
# $\mathrm{KL}\big(r(u \mid x) \,\|\, q(u \mid x)\big)$ with $r = 1$. *Variational
# dequantization* (Ho et al., 2019, Flow++, section 3.1) makes the noise $r(u \mid x)$ a
# second flow, conditioned on the image, and maximises the same bound over both flows:
#
# $$\log P(x) \;\ge\; \mathbb{E}_{u \sim r(\cdot \mid x)}\big[\log q(y) - D \log L - \log r(u \mid x)\big],
#   \qquad y = \frac{x + u}{L}.$$
#
# A sample of a flow is a differentiable function of its parameters and of a noise that
# does not depend on them (the reparameterisation trick), so one gradient of this bound
# trains the model and the noise together.
#
# Our dequantizer, `dequantization.VariationalDequantizer`, is the simplest conditional
# flow on $(0, 1)^D$. Per pixel, $e_i \sim \mathrm{Logistic}(0, 1)$,
# $a_i = \mu_i(x) + \sigma_i(x)\, e_i$ and $u_i = \operatorname{sigmoid}(a_i)$, where a small
# convolutional network reads $\mu$ and $\log \sigma$ from the whole integer image. By the
# change of variables through the affine step and the sigmoid,
#
# $$\log r(u \mid x) = \sum_{i=1}^{D} \Big[\log \mathrm{Logistic}(e_i) - \log \sigma_i(x)
#   - \log \operatorname{sigmoid}'(a_i)\Big].$$
#
# The sigmoid of a standard logistic variable is uniform on $(0, 1)$ (the sigmoid is the
# logistic distribution's CDF), and the network's last layer starts at zero, so
# $\mu = 0$, $\sigma = 1$: a fresh dequantizer *is* uniform noise, and training moves it
# away from uniform only where that raises the bound. (Flow++ uses a much larger
# conditional flow built from its coupling layers.)
#
# A fair comparison starts both from the model trained above and gives both the same
# number of further steps, the same batches and the same learning rates: once with fresh
# uniform noise, once jointly with the dequantizer. The table reports the test bound with
# one noise draw per image, averaged over 16 draws, each model scored with the noise it
# was trained with.

# %%
MORE_STEPS = 150
NOISE_DRAWS = 16
start_weights = [variable.numpy() for variable in flow.trainable_variables]

dequantizer = dequantization.VariationalDequantizer(HEIGHT, WIDTH, CHANNELS, LEVELS, seed=0)
variational_history = dequantization.train_jointly(flow, dequantizer, split.train, LEVELS, steps=MORE_STEPS,
                                                   batch_size=64, learning_rate=5e-4, seed=1)
variational_log_w = dequantization.noise_log_weights(flow, split.test, LEVELS, draws=NOISE_DRAWS, seed=200,
                                                     dequantizer=dequantizer)  # [test images, draws]
variational_model_uniform_noise = dequantization.importance_weighted_bits(  # the same model, uniform noise
    dequantization.noise_log_weights(flow, split.test, LEVELS, draws=4, seed=200), 1, D, LEVELS)

for variable, value in zip(flow.trainable_variables, start_weights):  # back to the same start
    variable.assign(value)
uniform_history = dequantization.train_jointly(flow, None, split.train, LEVELS, steps=MORE_STEPS,
                                               batch_size=64, learning_rate=5e-4, seed=1)
uniform_log_w = dequantization.noise_log_weights(flow, split.test, LEVELS, draws=NOISE_DRAWS, seed=200)
# From here on `flow` is the model trained with uniform noise throughout.

total_steps = len(history.loss) + uniform_history.steps
uniform_single = dequantization.importance_weighted_bits(uniform_log_w, 1, D, LEVELS)
variational_single = dequantization.importance_weighted_bits(variational_log_w, 1, D, LEVELS)
print(f"{'noise':<14}{'steps':>12}{'seconds':>9}{'test bits/dim, one draw':>26}")
for name, run, value in [("uniform", uniform_history, uniform_single),
                         ("variational", variational_history, variational_single)]:
    print(f"{name:<14}{f'{len(history.loss)} + {run.steps}':>12}{run.seconds:>9.1f}{value:>26.3f}")
display(Markdown(
    f"With the same {variational_history.steps} further steps, learning the noise "
    f"{'lowers' if variational_single < uniform_single else 'does not lower'} the single-draw bound "
    f"({variational_single:.3f} against {uniform_single:.3f} bits per dimension), at "
    f"{variational_history.seconds / uniform_history.seconds:.1f} times the wall-clock time of the uniform run. "
    + (f"The jointly trained model has adapted to its learned noise: scored with uniform noise instead, it gets "
       f"{variational_model_uniform_noise:.3f}." if variational_model_uniform_noise > variational_single else
       f"Scored with uniform noise instead, the jointly trained model gets {variational_model_uniform_noise:.3f}.")))

# %% [markdown]
# ### How loose is the bound? Several noises per test image
#
# The numbers above use one noise draw at a time: the bound of section 2, loose by
# $\mathrm{KL}(r \,\|\, q(u \mid x))$. The model's discrete probability is an average
# over the noise, $P(x) = \mathbb{E}_{u \sim r}\big[q(y)\,L^{-D} / r(u \mid x)\big]$ (for
# uniform noise, $r = 1$); averaging $K$ draws $u_1, \dots, u_K$ *inside* the logarithm
# gives the importance-weighted bound (Burda, Grosse and Salakhutdinov, 2016, with the
# noise $r$ as proposal; Hoogeboom et al., 2021, train with it as "importance-weighted
# dequantization"):
#
# $$\log P(x) \;\ge\; \mathbb{E}\Big[\log \frac{1}{K} \sum_{k=1}^{K}
#   \frac{q(y_k)\,L^{-D}}{r(u_k \mid x)}\Big], \qquad y_k = \frac{x + u_k}{L}.$$
#
# For $K = 1$ it is the single-draw bound; its expectation never decreases as $K$ grows
# and tends to $\log P(x)$ (Burda et al., 2016, theorem 1). Why a larger $K$ is tighter:
# the logarithm of an average of $K$ weights is at least the average of their logarithms
# (Jensen again), and the average of more weights scatters less around $P(x)$, so the
# logarithm loses less to its curvature. So each $K$ gives a valid upper bound on the test
# bits per dimension, a larger $K$ a tighter one, and a better proposal $r$ (one closer
# to the model's own noise) a tighter one for the same $K$. We have 16 draws for each
# test image; we split them into groups of $K$ and average the bound over the groups.
# The log of a mean of exponentials is computed with the largest term factored out, so
# that nothing overflows.

# %%
def importance_weighted_bits(log_w, k):
    """Test bits/dim from groups of k draws; log_w [images, draws] holds log q(y) - log r(u|x) per draw."""
    groups = log_w.reshape(len(log_w), -1, k)  # [images, draws // k, k]
    top = groups.max(axis=2, keepdims=True)
    log_mean_w = top[..., 0] + np.log(np.exp(groups - top).mean(axis=2))  # log-mean-exp, computed stably
    return images.bits_per_dim(-log_mean_w.mean(), D, LEVELS)


draws = [1, 2, 4, 8, 16]
weighted_bits = [importance_weighted_bits(uniform_log_w, k) for k in draws]
variational_bits = [importance_weighted_bits(variational_log_w, k) for k in draws]
for k, ours in zip(draws, weighted_bits):  # flowlib's version gives the same numbers
    assert math.isclose(ours, dequantization.importance_weighted_bits(uniform_log_w, k, D, LEVELS), rel_tol=1e-9)
assert math.isclose(weighted_bits[0], uniform_single, rel_tol=1e-9)  # K = 1 is the single-draw figure
print(f"{'K':>3}{'uniform noise':>16}{'learned noise':>16}   (test bits/dim)")
for k, uniform_value, variational_value in zip(draws, weighted_bits, variational_bits):
    print(f"{k:>3}{uniform_value:>16.3f}{variational_value:>16.3f}")

AIM_BITS = 2.0
best_bits, best_name = min((weighted_bits[-1], "uniform noise"), (variational_bits[-1], "learned noise"))
fig, ax = plt.subplots(figsize=(6, 3.2))
ax.plot(draws, weighted_bits, "o-", label="trained with uniform noise")
ax.plot(draws, variational_bits, "s-", label="trained with learned noise")
ax.axhline(AIM_BITS, color="gray", ls="--", label=f"aim: {AIM_BITS} bits/dim")
ax.set_xscale("log", base=2)
ax.set_xticks(draws, [str(k) for k in draws])
ax.set_xlabel("K, noise draws averaged inside the logarithm")
ax.set_ylabel("test bits / dim (upper bound)")
ax.legend()
plt.show()

still_falling = weighted_bits[-2] - weighted_bits[-1]
print(f"aim of at most {AIM_BITS} bits/dim on the held-out digits: "
      f"{'met' if best_bits <= AIM_BITS else 'not met'} (best bound {best_bits:.3f}, {best_name}, K = {draws[-1]})")
display(Markdown(
    f"For the model trained with uniform noise, {NOISE_DRAWS} noises per test image bring the bound from "
    f"{weighted_bits[0]:.3f} down to {weighted_bits[-1]:.3f} bits per dimension. So its single-draw number "
    f"overstates its bits per dimension by at least {weighted_bits[0] - weighted_bits[-1]:.3f}: on average over "
    f"the test images, the KL divergence from the uniform noise to the model's own noise is at least "
    f"{(weighted_bits[0] - weighted_bits[-1]) * D * math.log(2):.1f} nats per image (estimates from random "
    f"draws). From K = {draws[-2]} to K = {draws[-1]} its bound moves by {still_falling:.3f} bits per dimension"
    + (", so it has not settled yet and the true value lies lower still. " if still_falling >= 0.001
       else ", so it has nearly settled. ")
    + f"With the learned noise the bound drops by {variational_bits[0] - variational_bits[-1]:.3f} over the same "
    f"draws, to {variational_bits[-1]:.3f}"
    + (": less, because the learned noise is closer to the model's own."
       if variational_bits[0] - variational_bits[-1] < weighted_bits[0] - weighted_bits[-1] else ".")))


# %% [markdown]
# ## 8. Samples, at two temperatures
#
# To sample, draw $z$ from the Gaussian, run the flow forward (the last step is the
# logit's inverse, a sigmoid) and round down to grey levels. Sampling at **temperature**
# $T < 1$ draws $z \sim \mathcal{N}(0, T^2 I)$, closer to the mode of the Gaussian
# (Kingma and Dhariwal, 2018, sample Glow this way). Below, the two grids use the same
# draws of $z$, scaled. To judge more than 48 images by eye, we also measure two things on
# 500 samples per temperature: how much the samples differ from each other (the standard
# deviation of each pixel across samples, averaged over pixels) and how far each sample
# is from its nearest training image (root mean square over pixels), both in grey levels.

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 3.4))
for ax, temperature in zip(axes, (1.0, 0.7)):
    z = temperature * tf.random.stateless_normal([48, D], seed=[9, 0])
    samples = images.quantize(flow.bijector.forward(z), LEVELS)
    show_grid(samples, rows=4, axes=ax, title=f"samples at T = {temperature}")
plt.show()

train_images = split.train.astype(np.float64)
spread, nearest = {}, {}
for temperature in (1.0, 0.7):
    z = temperature * tf.random.stateless_normal([500, D], seed=[10, 0])
    samples = images.quantize(flow.bijector.forward(z), LEVELS).astype(np.float64)
    squared = ((samples ** 2).sum(1)[:, None] + (train_images ** 2).sum(1)[None, :]
               - 2 * samples @ train_images.T)  # squared distances [samples, training images]
    spread[temperature] = samples.std(axis=0).mean()
    nearest[temperature] = np.sqrt(np.maximum(squared.min(axis=1), 0) / D).mean()
    print(f"T = {temperature}: spread across samples {spread[temperature]:.2f}, "
          f"distance to the nearest training image {nearest[temperature]:.2f} grey levels")
display(Markdown(
    f"At T = 0.7 the samples are {'less' if spread[0.7] < spread[1.0] else 'more'} varied than at T = 1 "
    f"(spread {spread[0.7]:.2f} against {spread[1.0]:.2f} grey levels) and "
    f"{'closer to' if nearest[0.7] < nearest[1.0] else 'farther from'} the training digits "
    f"({nearest[0.7]:.2f} against {nearest[1.0]:.2f} grey levels from the nearest one)."))

# %% [markdown]
# ## 9. A walk through the latent space
#
# The flow is a bijection, so every test digit has exactly one latent point. Walking on a
# straight line from the latent point of one test digit to that of another, and mapping
# each step back to an image, morphs one digit into the other through images the model
# finds plausible.

# %%
pair = split.test[[0, 7]]
z_pair = flow.bijector.inverse(((pair + 0.5) / LEVELS).astype(np.float32)).numpy()  # centres of their cubes
weights_path = np.linspace(0.0, 1.0, 10, dtype=np.float32)[:, None]
z_path = (1 - weights_path) * z_pair[0] + weights_path * z_pair[1]
path = images.quantize(flow.bijector.forward(z_path), LEVELS)
np.testing.assert_array_equal(path[[0, -1]], pair)  # both ends are the two test digits
plt.figure(figsize=(10, 1.4))
show_grid(path, rows=1, title="from one test digit to another, in a straight line in latent space")
plt.show()

# %% [markdown]
# ## Summary

# %%
display(Markdown(f"""
- A density on discrete pixels is meaningless until the pixels are **dequantized**:
  uniform noise inside each grey level's cube turns the average log-density into a lower
  bound on the discrete log-likelihood, loose by a KL divergence.
- **Bits per dimension** $= (\\mathrm{{NLL}} + D \\ln L)/(D \\ln 2)$ for dequantized images in
  $[0,1)^D$. On the test digits: the uniform model {uniform_bits:.2f}, per-pixel histograms
  {histogram_bits:.2f}, the multi-scale RealNVP trained with uniform noise for {total_steps:,} steps
  {uniform_single:.2f} with one noise per image and {weighted_bits[-1]:.2f} with {draws[-1]} noises per
  image (importance-weighted).
- **Variational dequantization** learns the noise with a small conditional flow, trained
  jointly with the model on the same bound: after the same steps, {variational_single:.2f} with one
  learned noise per image and {variational_bits[-1]:.2f} with {draws[-1]} (importance-weighted). The aim
  of at most {AIM_BITS} bits per dimension is {'met' if best_bits <= AIM_BITS else 'not met'}.
- The geometric mean, over the test images, of the flow's discrete
  probability is at least $2^{{{D} \\times {histogram_bits - weighted_bits[-1]:.2f}}}
  \\approx 10^{{{D * (histogram_bits - weighted_bits[-1]) * math.log10(2):.0f}}}$ times the histograms'
  (the same number is the geometric mean of the two models' probability ratios, image by
  image; single images can fare better or worse).
- RealNVP's image recipe is a handful of bijections: a **logit** whose log-determinant
  counts, **checkerboard** and **channel-wise** masks, the **squeeze** (a permutation,
  $\\log|\\det J| = 0$), and **multi-scale** factoring out of half the dimensions per scale.
- With {len(split.train):,} training images, better use of few images is what lowers the numbers:
  a richer dequantization flow as in Flow++, regularised residual networks as in the paper, stronger
  layers (notebook 08's splines, Glow's 1x1 convolutions), or more data (`DATASET = "mnist"`).
"""))


# %% [markdown]
# ## Exercises
#
# Each exercise has a code cell: write your answer where it says so, then run the cell; the
# checks under your answer tell you whether it is right.

# %% [markdown]
# ### Exercise 1: bits per dimension, whatever the pixel scale
#
# Nothing forces the dequantized pixels into $[0, 1)$: some models scale them to
# $[-1, 1)$ or $[-0.5, 0.5)$. With the values scaled to an interval $[a, b)$, grey level
# $x$ plus noise $u \sim \mathcal{U}[0,1)$ becomes $y = a + (b - a)(x + u)/L$. Write
# `bits_from_log_density(log_q, image_shape, num_levels, value_range)`: `log_q` is a NumPy
# array of the log-densities in nats of a batch of such dequantized images (one number per
# image, shape `[batch]`), `image_shape` is the shape $(H, W, C)$ of one image, `num_levels` is
# $L$ and `value_range` is $(a, b)$. Return the mean bits per dimension of the batch (one
# number). The checks use random log-densities, several image shapes with one or more
# channels, several numbers of levels and several intervals, some of them negative.

# %%
def bits_from_log_density(log_q, image_shape, num_levels, value_range):
    ### BEGIN SOLUTION hint: each cube now has side (b - a) / L; log P(x) >= log q(y) + D log(side); then nats to bits, per dimension
    low, high = value_range
    num_dims = int(np.prod(image_shape))
    log_cube_volume = num_dims * np.log((high - low) / num_levels)
    return -np.mean(np.asarray(log_q) + log_cube_volume) / (num_dims * np.log(2))
    ### END SOLUTION


def check_exercise_1(bits_from_log_density):
    rng = np.random.default_rng(11)
    cases = [((8, 8, 1), 17, (0.0, 1.0), 5), ((5, 3, 2), 256, (-1.0, 1.0), 3),
             ((7, 4, 3), 5, (-0.5, 2.5), 7), ((6, 10, 1), 64, (-3.0, -2.0), 4)]
    for shape, levels, (low, high), batch in cases:
        num_dims = int(np.prod(shape))
        log_q = rng.normal(0.2 * num_dims, 0.5 * num_dims, size=batch)  # both signs
        answer = np.asarray(bits_from_log_density(log_q.copy(), shape, levels, (low, high)), dtype=float)
        where = f"images of shape {shape}, {levels} levels, values in [{low}, {high})"
        assert answer.shape == (), f"return one number, the mean over the batch ({where})"
        # each image's probability is at least its density times the volume of its cube
        log_probability = log_q + num_dims * math.log((high - low) / levels)
        expected = float(np.mean(-log_probability / math.log(2)) / num_dims)
        assert math.isclose(float(answer), expected, rel_tol=1e-6, abs_tol=1e-6), f"wrong for {where}"
        # the uniform density on the box gives every image probability L^-D: log2 L bits
        uniform = np.full(batch, -num_dims * math.log(high - low))
        assert math.isclose(float(bits_from_log_density(uniform, shape, levels, (low, high))), math.log2(levels),
                            rel_tol=1e-6, abs_tol=1e-6), f"the uniform density should score log2 L for {where}"
    print("Exercise 1: correct")


check_exercise_1(bits_from_log_density)
print(f"the histograms of section 3: {bits_from_log_density(log_q, (HEIGHT, WIDTH, CHANNELS), LEVELS, (0, 1)):.3f} "
      f"bits/dim (computed directly: {histogram_bits:.3f})")

# %% [markdown]
# ### Exercise 2: the pre-processing's log-determinant, from grey levels
#
# Section 4 wrote the logit on $y \in [0, 1)$. Written from the dequantized pixels in
# grey-level units, $v = x + u \in [0, L)$, the whole pre-processing is
#
# $$z = \operatorname{logit}\big(\alpha + (1 - 2\alpha)\, v / L\big).$$
#
# Write `preprocessing_log_det(v, num_levels, alpha)`: `v` is a NumPy array of images of
# shape `[batch, H, W, C]`; return $\log|\det dz/dv|$ for each image (shape `[batch]`),
# with TensorFlow or NumPy. The checks compare it with the log-determinant of the full
# $D \times D$ Jacobian of the map, computed numerically, for several image shapes,
# numbers of levels and values of $\alpha$, with pixels from the bottom to the top of
# $[0, L)$.

# %%
def preprocessing_log_det(v, num_levels, alpha):
    ### BEGIN SOLUTION hint: chain rule, pixel by pixel: dz/dv = (1 - 2 alpha) / (L s (1 - s)) with s = alpha + (1 - 2 alpha) v / L; sum the logs over each image
    v = tf.convert_to_tensor(v, dtype=tf.float64)
    s = alpha + (1 - 2 * alpha) * v / num_levels
    per_pixel = math.log((1 - 2 * alpha) / num_levels) - tf.math.log(s) - tf.math.log(1 - s)
    return tf.reduce_sum(per_pixel, axis=[1, 2, 3])
    ### END SOLUTION


def check_exercise_2(preprocessing_log_det):
    rng = np.random.default_rng(12)
    for shape, levels, alpha in [((3, 5, 3, 1), 17, 0.05), ((2, 4, 6, 2), 256, 0.2), ((4, 2, 3, 3), 4, 0.01)]:
        v = rng.integers(0, levels, size=shape) + rng.uniform(0, 1, size=shape)
        v.flat[0], v.flat[-1] = 0.0, levels - 1e-6  # the two ends of [0, L)
        answer = np.asarray(preprocessing_log_det(v.copy(), levels, alpha), dtype=float)
        where = f"images of shape {shape[1:]}, {levels} levels, alpha = {alpha}"
        assert answer.shape == (shape[0],), f"return one number per image, shape [batch] ({where})"
        # the full Jacobian [batch, D, D] of the map, column by column, by central differences
        flat, step, eye = v.reshape(shape[0], -1), 1e-6, np.eye(int(np.prod(shape[1:])))
        z_up, z_down = (np.log(s) - np.log(1 - s)  # row j: pixel j nudged up, then down
                        for s in (alpha + (1 - 2 * alpha) * (flat[:, None, :] + sign * step * eye) / levels
                                  for sign in (1.0, -1.0)))
        jacobian = np.swapaxes(z_up - z_down, 1, 2)
        expected = np.linalg.slogdet(jacobian / (2 * step))[1]
        np.testing.assert_allclose(answer, expected, rtol=1e-5, atol=1e-3,
                                   err_msg=f"log|det dz/dv| differs from the full Jacobian's for {where}")
    print("Exercise 2: correct")


check_exercise_2(preprocessing_log_det)

# %% [markdown]
# ### Exercise 3: a squeeze for channels-first images
#
# Some libraries store images channels first, `[n, C, H, W]`. Write
# `squeeze_channels_first(x)` that takes such a NumPy array (with $H$ and $W$ even) and
# returns the squeezed array of shape `[n, 4C, H/2, W/2]` in which output channel
# $4c + 2a + b$ at position $(r, s)$ holds input channel $c$ at pixel $(2r + a, 2s + b)$:
# the four pixels of a $2 \times 2$ block of one channel become four consecutive channels,
# top-left, top-right, bottom-left, bottom-right. (This is not the order of
# `tf.nn.space_to_depth`, which puts the block position first and the channel second.)
# NumPy's `reshape` and `transpose` are enough; loops work too. The checks use images with
# different heights and widths and with one, two and three channels.

# %%
def squeeze_channels_first(x):
    x = np.asarray(x)
    ### BEGIN SOLUTION hint: reshape to [n, C, H/2, 2, W/2, 2], bring the two axes of size 2 right after C, reshape
    n, channels, height, width = x.shape
    blocks = x.reshape(n, channels, height // 2, 2, width // 2, 2)
    return blocks.transpose(0, 1, 3, 5, 2, 4).reshape(n, 4 * channels, height // 2, width // 2)
    ### END SOLUTION


def check_exercise_3(squeeze_channels_first):
    rng = np.random.default_rng(13)
    for shape in [(2, 3, 6, 4), (1, 2, 4, 10), (3, 1, 8, 2)]:
        x = rng.permutation(np.prod(shape)).reshape(shape) - 20  # all values different, some negative
        answer = np.asarray(squeeze_channels_first(x.copy()))
        n, channels, height, width = shape
        assert answer.shape == (n, 4 * channels, height // 2, width // 2), \
            f"images of shape {shape} should give shape [n, 4C, H/2, W/2]"
        for c in range(channels):
            for a in range(2):
                for b in range(2):
                    np.testing.assert_array_equal(
                        answer[:, 4 * c + 2 * a + b], x[:, c, a::2, b::2],
                        err_msg=f"output channel {4 * c + 2 * a + b} is wrong for images of shape {shape}")
    print("Exercise 3: correct")


check_exercise_3(squeeze_channels_first)

# %% [markdown]
# ### Exercise 4: the importance-weighted bound from given draws
#
# Write `iw_log2_probability(log_q, log_r, num_dims, num_levels, k)`. `log_q` and `log_r`
# are NumPy arrays of shape `[draws, batch]`, **draws first**: for noise draw $j$ of image
# $b$, `log_q[j, b]` is the model's log-density in nats at the dequantized image
# $y = (x + u_j)/L \in [0, 1)^D$, and `log_r[j, b]` is the log-density of the noise $u_j$
# that was drawn ($0$ for uniform noise). `num_dims` is $D$ and `num_levels` is $L$.
# Split the draws of each image into consecutive groups of `k` (draws $0$ to $k-1$, then
# $k$ to $2k-1$, and so on; `k` divides the number of draws) and return, for each image and
# each group $G$, the importance-weighted bound in **bits**,
#
# $$\log_2 \Big(\frac{1}{k} \sum_{j \in G} \frac{q(y_j)\, L^{-D}}{r(u_j \mid x)}\Big),$$
#
# as an array of shape `[batch, draws // k]`. Some log-densities are so large that their
# exponential overflows, and some draws fell where the model has no mass (`log_q` is
# `-inf`; never a whole group): the answer must still be finite. The checks use several
# numbers of draws, images, groups, dimensions and levels.

# %%
def iw_log2_probability(log_q, log_r, num_dims, num_levels, k):
    ### BEGIN SOLUTION hint: log weights log q - log r, images first; groups of k consecutive draws; log-mean-exp with the largest term factored out; minus D log L; nats to bits
    log_w = (np.asarray(log_q, dtype=float) - np.asarray(log_r, dtype=float)).T  # [batch, draws]
    groups = log_w.reshape(log_w.shape[0], -1, k)  # [batch, draws // k, k]
    top = groups.max(axis=2, keepdims=True)
    log_mean = top[..., 0] + np.log(np.exp(groups - top).mean(axis=2))
    return (log_mean - num_dims * np.log(num_levels)) / np.log(2)
    ### END SOLUTION


def check_exercise_4(iw_log2_probability):
    from scipy.special import logsumexp

    rng = np.random.default_rng(14)
    cases = [(12, 5, 3, 64, 17, 800.0), (8, 3, 8, 10, 256, -30.0), (6, 7, 1, 3, 4, 5.0), (10, 2, 5, 20, 2, 750.0)]
    for draws_, batch, k, num_dims, levels, centre in cases:
        log_q = rng.normal(centre, 4.0, size=(draws_, batch))
        log_r = rng.normal(0.0, 3.0, size=(draws_, batch))
        if k > 1:
            log_q[k - 1, 0] = log_q[0, batch - 1] = -np.inf  # a draw with no mass, never a whole group
        answer = np.asarray(iw_log2_probability(log_q.copy(), log_r.copy(), num_dims, levels, k), dtype=float)
        where = f"{draws_} draws of {batch} images, k = {k}, D = {num_dims}, L = {levels}"
        assert answer.shape == (batch, draws_ // k), f"return shape [batch, draws // k] ({where})"
        assert np.all(np.isfinite(answer)), f"the answer should be finite, also with huge or -inf log-densities ({where})"
        groups = (log_q - log_r).T.reshape(batch, draws_ // k, k)
        expected = (logsumexp(groups, axis=2) - math.log(k) - num_dims * math.log(levels)) / math.log(2)
        assert np.allclose(answer, expected, rtol=1e-9, atol=1e-6), f"wrong bound for {where}"
    print("Exercise 4: correct")


check_exercise_4(iw_log2_probability)
