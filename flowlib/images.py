"""Flows on small images: dequantization, the logit pre-processing, squeeze, masks, multi-scale.

Everything here keeps flowlib's convention that a flow acts on *vectors*
(``event_ndims = 1``): an image of shape ``[height, width, channels]`` is flattened in
row-major order, coordinate ``(h * width + w) * channels + c``. Then

- a checkerboard or channel-wise mask is a boolean mask over those coordinates, so
  :class:`flowlib.bijectors.AffineCoupling` is the RealNVP image coupling as it is;
- a squeeze (space to channels, Dinh et al. 2017, section 3.6) only *reorders*
  coordinates: it is a fixed permutation, a ``tfb.Permute`` with ``log|det J| = 0``;
- factoring out half of the dimensions at the end of a scale moves those coordinates to
  the end of the vector, where later couplings keep them unchanged and their networks do
  not look at them: they go straight to the Gaussian base.

The coupling networks (:class:`ConvNet`, :class:`DenseNet`) know the image layout: they
put the kept pixels back into an image and return a shift and a log-scale for each
changed one.

Data side (TFP convention: forward = latent -> data):

- :func:`dequantize` turns grey levels ``0 .. L-1`` into points of ``[0, 1)`` by adding
  uniform noise and dividing by ``L``;
- :class:`Logit` maps ``[0, 1]`` to the real line, ``z = logit(alpha + (1 - 2 alpha) y)``
  (its inverse is the flow's last forward step), with the log-determinant counted;
- :func:`bits_per_dim` converts a negative log-likelihood of dequantized images into
  bits per dimension of the discrete images.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from flowlib import validation
from flowlib.bijectors import MLP, AffineCoupling, FlowBijector, initial_kernel, take_columns
from flowlib.flow import Flow, as_flow
from flowlib.flows import layer_seed, standard_normal

tfb = tfp.bijectors
tfd = tfp.distributions

NetworkKind = Literal["dense", "conv"]

DIGITS_SIDE = 8
DIGITS_LEVELS = 17  # scikit-learn's digits have grey levels 0, 1, ..., 16
DEFAULT_ALPHA = 0.05  # RealNVP's logit pre-processing maps [0, 1] to [0.05, 0.95]


# --------------------------------------------------------------------------- data
class ImageSplit(NamedTuple):
    """Integer images, flattened: ``train``, ``validation``, ``test`` of shape ``[n, D]``.

    ``shape`` is ``(height, width, channels)`` with ``D = height * width * channels``;
    ``num_levels`` the number of grey levels ``L`` (values ``0 .. L-1``).
    """

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    shape: tuple[int, int, int]
    num_levels: int


def _check_split(num_train: int, num_validation: int, seed: int) -> tuple[int, int, int]:
    return (
        validation.positive_int(num_train, "num_train"),
        validation.positive_int(num_validation, "num_validation"),
        validation.seed(seed),
    )


def _split(
    images: np.ndarray, shape, num_levels: int, num_train: int, num_validation: int, seed: int
) -> ImageSplit:
    if num_train + num_validation >= len(images):
        raise ValueError(
            f"need 1 <= num_train, 1 <= num_validation and num_train + num_validation < "
            f"{len(images)} images, got {num_train} and {num_validation}"
        )
    order = np.random.default_rng(seed).permutation(len(images))
    vectors = images.reshape(len(images), -1).astype(np.int64)[order]
    first, second = num_train, num_train + num_validation
    return ImageSplit(vectors[:first], vectors[first:second], vectors[second:], tuple(shape), num_levels)


def load_digits(*, num_train: int = 1350, num_validation: int = 150, seed: int = 0) -> ImageSplit:
    """scikit-learn's 1,797 handwritten digits (8x8 pixels, levels 0..16), split with a seed.

    The images ship inside scikit-learn (``sklearn.datasets.load_digits``): nothing is
    downloaded. The default split is 1,350 training, 150 validation and 297 test images.
    """
    num_train, num_validation, seed = _check_split(num_train, num_validation, seed)
    from sklearn.datasets import load_digits as sklearn_digits

    images = sklearn_digits().images  # float64 [1797, 8, 8], integer values 0..16
    return _split(images, (DIGITS_SIDE, DIGITS_SIDE, 1), DIGITS_LEVELS, num_train, num_validation, seed)


def load_mnist(*, num_train: int = 50_000, num_validation: int = 10_000, seed: int = 0) -> ImageSplit:
    """MNIST (28x28 pixels, levels 0..255) via ``tf.keras.datasets``: this one downloads.

    The 60,000 training and 10,000 test images are pooled and split with the seed like
    the digits (default: 50,000 / 10,000 / 10,000).
    """
    num_train, num_validation, seed = _check_split(num_train, num_validation, seed)
    (train, _), (test, _) = tf.keras.datasets.mnist.load_data()
    images = np.concatenate([train, test])
    return _split(images, (28, 28, 1), 256, num_train, num_validation, seed)


def _check_num_levels(num_levels: int) -> int:
    return validation.integer(num_levels, "num_levels", minimum=2)


def check_levels(images, num_levels: int, name: str = "images") -> np.ndarray:
    """Return ``images`` as int64 after checking they are whole numbers in ``0 .. num_levels-1``.

    ``num_levels`` must be an integer >= 2 (numpy integers too; not ``17.5``, not ``True``).
    """
    num_levels = _check_num_levels(num_levels)
    array = np.asarray(images.numpy() if tf.is_tensor(images) else images)
    if not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"{name} must be numeric, got dtype {array.dtype}")
    if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
        raise ValueError(
            f"{name} must be whole grey levels (0, 1, ..., {num_levels - 1}); "
            "dequantize integers, not values that are already continuous"
        )
    if array.size and (array.min() < 0 or array.max() > num_levels - 1):
        raise ValueError(
            f"{name} must lie in 0 .. {num_levels - 1}, got values from {array.min():g} to {array.max():g}"
        )
    return array.astype(np.int64)


def dequantize(images, num_levels: int, *, seed: int = 0, copies: int = 1) -> np.ndarray:
    """Uniform dequantization: ``y = (x + u) / L`` with ``u ~ U[0, 1)``, in ``[0, 1)``.

    Args:
        images: integer grey levels ``[n, D]`` in ``0 .. L-1`` (``L = num_levels``).
        seed: seeds the noise.
        copies: stack this many independently dequantized copies, ``[copies * n, D]``
            (training sees each image with several noises).

    Returns float32. Each integer image ``x`` owns the cube ``(x + [0, 1)^D) / L``; a
    density ``q`` on ``[0, 1)^D`` gives it the probability ``P(x) = ∫ q(y) dy`` over its
    cube, and ``log P(x) >= E_u[log q(y)] - D log L`` (Jensen).
    """
    num_levels = _check_num_levels(num_levels)
    copies, seed = validation.positive_int(copies, "copies"), validation.seed(seed)
    levels = check_levels(images, num_levels)
    stacked = np.concatenate([levels] * copies)
    noise = np.random.default_rng(seed).random(stacked.shape)
    # float32 can round (L - 1 + u) / L up to exactly 1.0; keep the half-open interval.
    return np.minimum((stacked + noise) / num_levels, np.nextafter(1.0, 0.0)).astype(np.float32)


def quantize(y, num_levels: int) -> np.ndarray:
    """The grey level of each value of ``[0, 1)``: ``floor(L y)``, clipped to ``0 .. L-1``.

    ``y``: a numeric array of any shape, finite (NaN has no grey level).
    """
    num_levels = _check_num_levels(num_levels)
    y = validation.array(y, "y")
    return np.clip(np.floor(y * num_levels), 0, num_levels - 1).astype(np.int64)


def bits_per_dim(nll_nats, num_dims: int, num_levels: int) -> float:
    """Bits per dimension of discrete images from the NLL of their dequantized version.

    ``nll_nats``: mean ``-log q(y)`` in nats of dequantized images ``y`` in ``[0, 1)^D``.
    The density of ``v = L y`` (in grey-level units, ``[0, L)^D``) is ``q(y) / L^D``, and
    the discrete probability is at least ``exp(E log q_v)``, so

    .. math:: \\text{bits/dim} = \\frac{\\text{NLL} + D \\ln L}{D \\ln 2},

    an upper bound on the discrete model's bits per dimension. A uniform ``q = 1`` gives
    ``log2 L`` (4.09 for the 17 grey levels of the digits).
    """
    num_dims = validation.positive_int(num_dims, "num_dims")
    num_levels = validation.integer(num_levels, "num_levels", minimum=2)
    return float((np.mean(nll_nats) + num_dims * math.log(num_levels)) / (num_dims * math.log(2.0)))


# --------------------------------------------------------------------------- shapes
def _check_shape(height: int, width: int, channels: int) -> tuple[int, int, int]:
    return (
        validation.positive_int(height, "height"),
        validation.positive_int(width, "width"),
        validation.positive_int(channels, "channels"),
    )


def as_images(vectors, height: int, width: int, channels: int = 1) -> np.ndarray:
    """Flattened images ``[n, height * width * channels]`` back to ``[n, height, width, channels]``."""
    height, width, channels = _check_shape(height, width, channels)
    array = np.asarray(vectors.numpy() if tf.is_tensor(vectors) else vectors)
    size = height * width * channels
    if array.ndim != 2 or array.shape[1] != size:
        raise ValueError(
            f"expected flattened images of shape [n, {size}] for {height}x{width} pixels "
            f"with {channels} channel(s), got {array.shape}"
        )
    return array.reshape(-1, height, width, channels)


def squeeze_permutation(height: int, width: int, channels: int = 1) -> np.ndarray:
    """Where each coordinate of the squeezed image comes from: ``squeezed = x[perm]``.

    The squeeze turns ``[H, W, C]`` into ``[H/2, W/2, 4C]``: every 2x2 block of pixels
    becomes one pixel with four times the channels (``tf.nn.space_to_depth``).
    """
    height, width, channels = _check_shape(height, width, channels)
    if height % 2 or width % 2:
        raise ValueError(f"a squeeze needs an even height and width, got {height}x{width}")
    index = tf.reshape(tf.range(height * width * channels), [1, height, width, channels])
    return tf.reshape(tf.nn.space_to_depth(index, 2), [-1]).numpy()


class _ImagePermutation(tfb.Permute):
    """A fixed reordering of the first ``size`` coordinates; the rest stay in place."""

    def __init__(self, permutation: np.ndarray, num_coordinates: int | None, name: str):
        size = len(permutation)
        total = (
            size if num_coordinates is None else validation.positive_int(num_coordinates, "num_coordinates")
        )
        if total < size:
            raise ValueError(f"num_coordinates={total} is smaller than the image ({size} coordinates)")
        self.num_coordinates = total
        super().__init__(
            permutation=np.concatenate([permutation, np.arange(size, total)]).astype(np.int32), name=name
        )

    def _check(self, x):
        validation.coordinates(x.shape, self.num_coordinates, self.name)

    def _forward(self, x):
        self._check(x)
        return super()._forward(x)

    def _inverse(self, y):
        self._check(y)
        return super()._inverse(y)


class Squeeze(_ImagePermutation):
    """Space to channels: ``forward`` turns ``[H, W, C]`` into ``[H/2, W/2, 4C]`` (flattened).

    Only a reordering of coordinates, so ``log|det J| = 0``. ``num_coordinates`` (default
    ``H W C``) allows trailing coordinates, e.g. factored-out ones, which stay in place.
    """

    def __init__(
        self,
        height: int,
        width: int,
        channels: int = 1,
        *,
        num_coordinates: int | None = None,
        name: str = "squeeze",
    ):
        # TFP rebuilds bijectors from their constructor arguments: keep them as attributes.
        self.height, self.width, self.channels = _check_shape(height, width, channels)
        super().__init__(squeeze_permutation(height, width, channels), num_coordinates, name)


class Unsqueeze(_ImagePermutation):
    """Channels to space, the inverse of :class:`Squeeze` with the same arguments.

    ``forward`` turns ``[H/2, W/2, 4C]`` into ``[H, W, C]``. In a flow (forward = latent
    to data) this is the layer whose ``inverse``, on the way from the data, squeezes.
    """

    def __init__(
        self,
        height: int,
        width: int,
        channels: int = 1,
        *,
        num_coordinates: int | None = None,
        name: str = "unsqueeze",
    ):
        # TFP rebuilds bijectors from their constructor arguments: keep them as attributes.
        self.height, self.width, self.channels = _check_shape(height, width, channels)
        super().__init__(np.argsort(squeeze_permutation(height, width, channels)), num_coordinates, name)


# --------------------------------------------------------------------------- masks
def checkerboard_mask(height: int, width: int, channels: int = 1, *, parity: int = 0) -> np.ndarray:
    """Booleans ``[H W C]``: True (kept) on the pixels where ``(row + column) % 2 == parity``."""
    height, width, channels = _check_shape(height, width, channels)
    parity = validation.integer(parity, "parity", minimum=0, maximum=1)
    rows, columns = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    board = (rows + columns) % 2 == parity
    mask = np.repeat(board[:, :, None], channels, axis=2).ravel()
    if mask.all() or not mask.any():
        raise ValueError(f"a {height}x{width} checkerboard has only one colour: it needs two pixels or more")
    return mask


def channel_mask(height: int, width: int, channels: int, *, first_half: bool = True) -> np.ndarray:
    """Booleans ``[H W C]``: True (kept) on the first half of the channels (or the second)."""
    height, width, channels = _check_shape(height, width, channels)
    first_half = validation.boolean(first_half, "first_half")
    if channels % 2:
        raise ValueError(
            f"a channel-wise mask splits the channels in two: needs an even number, got {channels}"
        )
    kept = np.arange(channels) < channels // 2
    if not first_half:
        kept = ~kept
    return np.tile(kept, height * width)


# --------------------------------------------------------------------------- networks
class _ImageNetwork(tf.Module):
    """Shared bookkeeping: which of the coupling's inputs are pixels of the current image.

    A coupling on the whole vector keeps the factored-out coordinates too (they come last);
    the network reads only the first ``num_kept`` of its inputs (the kept pixels, in
    order) and returns the shift, then the raw log-scale, of each changed pixel.
    """

    def __init__(self, height, width, channels, mask, name):
        super().__init__(name=name)
        self.shape = _check_shape(height, width, channels)
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (int(np.prod(self.shape)),):
            raise ValueError(
                f"mask must have {int(np.prod(self.shape))} entries for a "
                f"{height}x{width}x{channels} image, got shape {mask.shape}"
            )
        self.image_mask = mask
        self.num_kept = int(mask.sum())
        self.num_changed = mask.size - self.num_kept

    def _kept_pixels(self, x1):
        if x1.shape[-1] is not None and x1.shape[-1] < self.num_kept:
            raise ValueError(
                f"{self.name}: expected at least {self.num_kept} kept values, got shape {x1.shape}"
            )
        return x1[..., : self.num_kept]


class DenseNet(_ImageNetwork):
    """A fully connected coupling network on the kept pixels of an image (any mask).

    ``[..., >= num_kept] -> [..., 2 * num_changed]`` (shift, then raw log-scale). The last
    layer starts at zero, so the coupling starts as the identity.
    """

    def __init__(
        self,
        height: int,
        width: int,
        channels: int,
        mask,
        *,
        hidden_units: Sequence[int] = (128, 128),
        seed: int = 0,
        name: str = "dense_net",
    ):
        super().__init__(height, width, channels, mask, name)
        self.mlp = MLP(self.num_kept, 2 * self.num_changed, hidden_units, seed=seed, name=f"{name}_mlp")

    def __call__(self, x1: tf.Tensor) -> tf.Tensor:
        return self.mlp(self._kept_pixels(x1))


class ConvNet(_ImageNetwork):
    """A small convolutional coupling network: 3x3 convolutions over the masked image.

    The kept pixels go back to their places in a ``[H, W, C]`` image (changed pixels are
    zero), the mask is added as ``C`` more input channels, and ``num_hidden`` ReLU
    convolutions of ``hidden_channels`` are followed by a zero-initialised one with ``2C``
    outputs, read at the changed pixels: ``[..., >= num_kept] -> [..., 2 * num_changed]``.
    """

    def __init__(
        self,
        height: int,
        width: int,
        channels: int,
        mask,
        *,
        hidden_channels: int = 32,
        num_hidden: int = 2,
        kernel_size: int = 3,
        seed: int = 0,
        name: str = "conv_net",
    ):
        hidden_channels = validation.positive_int(hidden_channels, "hidden_channels")
        num_hidden = validation.non_negative_int(num_hidden, "num_hidden")
        kernel_size = validation.positive_int(kernel_size, "kernel_size")
        seed = validation.seed(seed)
        super().__init__(height, width, channels, mask, name)
        height, width, channels = self.shape
        kept = np.flatnonzero(self.image_mask)
        changed = np.flatnonzero(~self.image_mask)
        # scatter[p]: where pixel p is in [kept values..., 0]; the zero slot for changed pixels.
        scatter = np.full(self.image_mask.size, self.num_kept)
        scatter[kept] = np.arange(self.num_kept)
        self._scatter = take_columns(scatter, self.num_kept + 1)
        self._mask_channels = tf.constant(self.image_mask.reshape(1, height, width, channels), tf.float32)
        # Read the 2C output channels at the changed pixels: shift first, then log-scale.
        grid = np.arange(height * width * 2 * channels).reshape(height * width, 2, channels)
        pixel, channel = np.divmod(changed, channels)
        self._read = take_columns(
            np.concatenate([grid[pixel, 0, channel], grid[pixel, 1, channel]]), grid.size
        )
        sizes = [2 * channels] + [hidden_channels] * num_hidden + [2 * channels]
        self.kernels, self.biases = [], []
        for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            shape = [kernel_size, kernel_size, fan_in, fan_out]
            kernel = initial_kernel(shape, seed, index, zero=index == len(sizes) - 2)
            self.kernels.append(tf.Variable(kernel, name=f"kernel_{index}"))
            self.biases.append(tf.Variable(tf.zeros([fan_out]), name=f"bias_{index}"))

    def __call__(self, x1: tf.Tensor) -> tf.Tensor:
        height, width, channels = self.shape
        values = self._kept_pixels(x1)
        batch_shape = tf.shape(values)[:-1]
        values = tf.reshape(values, [-1, self.num_kept])
        padded = tf.concat([values, tf.zeros_like(values[:, :1])], axis=-1)
        image = tf.reshape(self._scatter(padded), [-1, height, width, channels])
        mask = tf.broadcast_to(self._mask_channels, tf.shape(image))
        h = tf.concat([image, mask], axis=-1)
        for index, (kernel, bias) in enumerate(zip(self.kernels, self.biases)):
            h = tf.nn.conv2d(h, kernel, strides=1, padding="SAME") + bias
            if index < len(self.kernels) - 1:
                h = tf.nn.relu(h)
        out = self._read(tf.reshape(h, [-1, height * width * 2 * channels]))
        return tf.reshape(out, tf.concat([batch_shape, [2 * self.num_changed]], axis=0))


# --------------------------------------------------------------------------- logit
class Logit(FlowBijector):
    """RealNVP's pre-processing: ``z = logit(alpha + (1 - 2 alpha) y)`` for ``y`` in ``[0, 1]``.

    ``forward`` (latent -> data) is ``y = (sigmoid(z) - alpha) / (1 - 2 alpha)``; its
    ``inverse`` is the pre-processing. With ``s = alpha + (1 - 2 alpha) y``, per pixel

    .. math:: \\log \\left|\\frac{dz}{dy}\\right| = \\log(1 - 2\\alpha) - \\log s - \\log(1 - s),

    summed over the ``D`` coordinates (shape ``[batch]``). ``alpha`` keeps the logit away
    from ``±inf`` at the ends: ``|z| <= logit(1 - alpha)`` (Dinh et al. 2017, section 4.1;
    their code, tensorflow/models ``research/real_nvp``, maps ``[0, 1]`` to ``[0.05, 0.95]``:
    ``alpha = 0.05``). The log-determinant depends on the data but on no parameter.
    Values of ``y`` outside ``[0, 1]`` raise ``ValueError`` (checked on concrete inputs).
    """

    def __init__(self, alpha: float = DEFAULT_ALPHA, *, name: str = "logit"):
        parameters = dict(locals())
        self.alpha = validation.real(
            alpha, "alpha", minimum=0.0, maximum=0.5, minimum_inclusive=False, maximum_inclusive=False
        )
        super().__init__(forward_min_event_ndims=1, validate_args=False, parameters=parameters, name=name)

    def _check_range(self, y):
        if tf.executing_eagerly():  # inside tf.function the values are not known yet
            values = np.asarray(y)
            if values.size and not (np.all(np.isfinite(values)) and values.min() >= 0 and values.max() <= 1):
                raise ValueError(
                    f"{self.name}: values must lie in [0, 1] (dequantized pixels divided by the "
                    f"number of levels), got values from {values.min():g} to {values.max():g}"
                )

    def forward_and_log_det(self, z):
        return self._forward(z), self._forward_log_det_jacobian(z)

    def inverse_and_log_det(self, y):
        self._check_range(y)
        s = self.alpha + (1.0 - 2.0 * self.alpha) * y
        log_s, log_one_minus_s = tf.math.log(s), tf.math.log1p(-s)
        per_pixel = math.log(1.0 - 2.0 * self.alpha) - log_s - log_one_minus_s
        return log_s - log_one_minus_s, tf.reduce_sum(per_pixel, axis=-1)

    # TFP's methods, each on its own (the protocol's are above).
    def _forward(self, z):
        return (tf.sigmoid(z) - self.alpha) / (1.0 - 2.0 * self.alpha)

    def _inverse(self, y):
        self._check_range(y)
        s = self.alpha + (1.0 - 2.0 * self.alpha) * y
        return tf.math.log(s) - tf.math.log1p(-s)

    def _inverse_log_det_jacobian(self, y):
        self._check_range(y)
        s = self.alpha + (1.0 - 2.0 * self.alpha) * y
        per_pixel = math.log(1.0 - 2.0 * self.alpha) - tf.math.log(s) - tf.math.log1p(-s)
        return tf.reduce_sum(per_pixel, axis=-1)

    def _forward_log_det_jacobian(self, z):
        # dy/dz = sigmoid'(z) / (1 - 2 alpha), log sigmoid'(z) = -softplus(-z) - softplus(z)
        per_pixel = -tf.nn.softplus(-z) - tf.nn.softplus(z) - math.log(1.0 - 2.0 * self.alpha)
        return tf.reduce_sum(per_pixel, axis=-1)


# --------------------------------------------------------------------------- multi-scale
class MultiScale(NamedTuple):
    """A multi-scale flow on the logit side, and what happened at each scale.

    ``flow``: a :class:`~flowlib.flow.Flow` over ``R^D`` (standard normal base).
    ``exit_scale``: int ``[H, W, C]``, for each pixel position the scale after which its
    coordinate leaves the flow (1, 2, ...; ``num_scales + 1`` for the last, unfactored part).
    ``num_couplings``: the number of coupling layers.
    """

    flow: Flow
    exit_scale: np.ndarray
    num_couplings: int


def _factor_out_permutation(height: int, width: int, channels: int, num_coordinates: int) -> np.ndarray:
    """Data -> latent reordering that moves the second half of the channels behind the image."""
    index = np.arange(height * width * channels).reshape(height * width, channels)
    half = channels // 2
    order = np.concatenate([index[:, :half].ravel(), index[:, half:].ravel()])
    return np.concatenate([order, np.arange(order.size, num_coordinates)])


def multiscale_flow(
    height: int = DIGITS_SIDE,
    width: int = DIGITS_SIDE,
    channels: int = 1,
    *,
    num_scales: int = 2,
    couplings_per_block: int = 3,
    final_couplings: int = 4,
    network: NetworkKind = "dense",
    hidden: int = 128,
    num_hidden: int = 2,
    max_log_scale: float | None = 2.0,
    seed: int = 0,
) -> MultiScale:
    """RealNVP's multi-scale architecture (Dinh et al. 2017, section 3.6) on flattened images.

    Data to latent, each scale: ``couplings_per_block`` checkerboard couplings (alternating
    colours), a squeeze, ``couplings_per_block`` channel-wise couplings (alternating
    halves), then half of the channels are factored out. After ``num_scales`` scales,
    ``final_couplings`` checkerboard couplings act on what is left.

    Args:
        network: ``"dense"`` (:class:`DenseNet`, ``num_hidden`` layers of ``hidden`` units)
            or ``"conv"`` (:class:`ConvNet`, ``num_hidden`` 3x3 layers of ``hidden`` channels).
        max_log_scale: bound on each coupling's log-scale (see ``AffineCoupling``).

    Returns a :class:`MultiScale`; its ``flow`` models the *logit side* (compose it with
    :class:`Logit` via :func:`with_preprocessing` for a density on ``[0, 1]^D``).
    """
    height, width, channels = _check_shape(height, width, channels)
    network = validation.choice(network, "network", ("dense", "conv"))
    # A scale halves the height and width: more scales than min(height, width).bit_length()
    # cannot divide them (and 2**num_scales of a typo such as 10**9 would take forever).
    num_scales = validation.integer(
        num_scales, "num_scales", minimum=0, maximum=min(height, width).bit_length()
    )
    couplings_per_block = validation.num_layers(couplings_per_block, "couplings_per_block")
    final_couplings = validation.num_layers(final_couplings, "final_couplings")
    hidden = validation.positive_int(hidden, "hidden")
    num_hidden = validation.positive_int(num_hidden, "num_hidden")
    max_log_scale = validation.optional_positive_float(max_log_scale, "max_log_scale")
    seed = validation.seed(seed)
    if height % (2**num_scales) or width % (2**num_scales):
        raise ValueError(
            f"{num_scales} scale(s) squeeze {num_scales} time(s): height and width must be "
            f"divisible by {2**num_scales}, got {height}x{width}"
        )
    total = height * width * channels
    # origin[i]: the pixel coordinate now at position i (data side order); tracks every reordering.
    origin = np.arange(total)
    exit_scale = np.full(total, num_scales + 1)
    layers_data_to_latent: list[tfb.Bijector] = []
    count = 0

    def coupling(shape, mask):
        nonlocal count
        full_mask = np.concatenate([mask, np.ones(total - mask.size, dtype=bool)])
        net_seed = layer_seed(seed, count)
        if network == "dense":
            net = DenseNet(
                *shape, mask, hidden_units=[hidden] * num_hidden, seed=net_seed, name=f"dense_{count}"
            )
        else:
            net = ConvNet(
                *shape,
                mask,
                hidden_channels=hidden,
                num_hidden=num_hidden,
                seed=net_seed,
                name=f"conv_{count}",
            )
        layer = AffineCoupling(full_mask, net, max_log_scale=max_log_scale, name=f"coupling_{count}")
        count += 1
        return layer

    h, w, c = height, width, channels
    for scale in range(1, num_scales + 1):
        for k in range(couplings_per_block):
            layers_data_to_latent.append(coupling((h, w, c), checkerboard_mask(h, w, c, parity=k % 2)))
        squeeze = squeeze_permutation(h, w, c)
        layers_data_to_latent.append(Unsqueeze(h, w, c, num_coordinates=total, name=f"squeeze_{scale}"))
        origin[: squeeze.size] = origin[: squeeze.size][squeeze]
        h, w, c = h // 2, w // 2, 4 * c
        for k in range(couplings_per_block):
            layers_data_to_latent.append(coupling((h, w, c), channel_mask(h, w, c, first_half=k % 2 == 0)))
        order = _factor_out_permutation(h, w, c, total)
        # tfb.Permute(p).inverse(y) = y[argsort(p)]: from the data side, this factors out.
        layers_data_to_latent.append(
            tfb.Permute(np.argsort(order).astype(np.int32), name=f"factor_out_{scale}")
        )
        origin = origin[order]
        c //= 2
        exit_scale[origin[h * w * c : h * w * 2 * c]] = scale
    for k in range(final_couplings):
        layers_data_to_latent.append(coupling((h, w, c), checkerboard_mask(h, w, c, parity=k % 2)))

    flow = Flow(layers_data_to_latent[::-1], standard_normal(total), name="multiscale_flow")
    return MultiScale(flow, exit_scale.reshape(height, width, channels), count)


def with_preprocessing(flow: Flow, alpha: float = DEFAULT_ALPHA) -> Flow:
    """The density on ``[0, 1]^D`` of ``Logit(alpha).forward`` applied to samples of ``flow``.

    A :class:`~flowlib.flow.Flow` with ``flow``'s base and layers followed by
    :class:`Logit` (the same objects and variables: training one trains the other; their
    batch-norm layers, if any, share one train/eval switch). ``log_prob`` of the result is
    ``flow.log_prob(logit side) + log|dz/dy|``.
    """
    flow = as_flow(validation.flow(flow))
    return Flow([*flow.layers, Logit(alpha)], flow.distribution, name="image_model")
