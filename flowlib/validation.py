"""One checker per kind of argument, used by every public function of flowlib.

Each checker returns the value in a plain form (``int``, ``float``, a float32 array) or
raises before any work is done, with a message that names the argument and shows what
was given. The rules, the same everywhere:

- the wrong *kind* of value (a string, a float where a count belongs, a bool) is a
  ``TypeError``; the right kind with a wrong *value* (zero, negative, NaN, a shape that
  does not fit) is a ``ValueError``;
- numpy scalars count as numbers (``np.int64(3)`` is an integer, ``np.float32(1e-3)``
  a float), Python's ``bool`` does not (``True`` is not the count 1), and strings are
  never parsed (``"64"`` is not 64, nor the sequence ``(6, 4)``).

Nothing here imports TensorFlow, so checking stays cheap and happens before TensorFlow
sees the data.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

# Seeds feed TensorFlow's stateless random ops, whose seeds are int32 pairs.
MAX_SEED = 2**31 - 1

# The most layers a flow builder stacks (its own layers, not counting permutations or
# normalisations): far more than any flow here needs, and it keeps a typo such as
# num_layers=10**9 from building for hours.
MAX_LAYERS = 1000

# Spline couplings: each bin is at least MIN_BIN_SIZE of the interval (Durkan et al.'s
# default), so at most 999 bins; and the interval's half-width is at most MAX_SPLINE_BOUND.
# float32 holds about 7 digits: with B = 1e4 a fresh (identity) spline flow's log-density
# is off by 4e-4 nats, with B = 1e6 by 0.03, with B = 1e8 by 4.5 nats, in proportion to B
# (flows.spline_flow(num_layers=2) on standard normal points, TF 2.19; issue 20).
MIN_BIN_SIZE = 1e-3
MAX_SPLINE_BOUND = 1e4

# The choices of the flow builders (flowlib.flows) and the recipe (flowlib.recipe).
PERMUTATIONS = ("reverse", "random", "lu")
NORMALIZATIONS = ("batchnorm", "actnorm", "none")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_integer(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


# Continuous-time flows (flowlib.continuous): fixed-step ODE solvers take at most this many
# steps per solve; each step evaluates the network four times (RK4) on every point.
MAX_ODE_STEPS = 10_000


def ode_steps(value: Any, name: str = "num_steps") -> int:
    """Steps of a fixed-step ODE solver: an integer from 1 to :data:`MAX_ODE_STEPS`."""
    return integer(value, name, minimum=1, maximum=MAX_ODE_STEPS)


def ode_tolerance(value: Any, name: str) -> float:
    """A relative or absolute tolerance of an adaptive ODE solver: a number in ``(0, 1)``."""
    value = positive_float(value, name)
    if value >= 1:
        raise ValueError(f"{name} must be below 1 (a tolerance, e.g. 1e-5), got {value:g}")
    return value


def integer(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer (Python or numpy, not bool) in ``[minimum, maximum]``; returned as ``int``."""
    if not _is_integer(value):
        raise TypeError(f"{name} must be an integer, got {_shown(value)}")
    value = int(value)
    if minimum is not None and value < minimum:
        if minimum == 1:
            raise ValueError(f"{name} must be a positive integer, got {value}")
        if minimum == 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value}")
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {value}")
    return value


def line_of_text(value: Any, name: str) -> str:
    """A single line of text with something to draw: a string, not blank, no line break."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{name} is empty or only white space: there is nothing to draw")
    if "\n" in value.strip():
        raise ValueError(f"{name} must be a single line")
    return value


def positive_int(value: Any, name: str) -> int:
    """A count: an integer >= 1."""
    return integer(value, name, minimum=1)


def non_negative_int(value: Any, name: str) -> int:
    """An integer >= 0."""
    return integer(value, name, minimum=0)


def seed(value: Any, name: str = "seed") -> int:
    """A seed: an integer in ``[0, 2**31 - 1]`` (``None`` is refused: it would not repeat)."""
    if value is None:
        raise TypeError(f"{name} must be an integer (a fixed seed, so that results repeat), got None")
    return integer(value, name, minimum=0, maximum=MAX_SEED)


def num_layers(value: Any, name: str = "num_layers") -> int:
    """A number of layers of a flow: an integer from 1 to :data:`MAX_LAYERS`."""
    return integer(value, name, minimum=1, maximum=MAX_LAYERS)


def num_bins(value: Any, name: str = "num_bins") -> int:
    """Spline bins: an integer from 2 to ``1 / MIN_BIN_SIZE - 1`` (999).

    One bin is refused: its only knots are the boundary ones, whose slopes are fixed at 1
    to meet the identity tails, and the one rational-quadratic with equal width and height
    and unit end slopes is the identity, whatever the network says.
    """
    value = integer(value, name)
    if value < 2:
        raise ValueError(
            f"{name} must be at least 2 (one bin with identity tails is the identity), got {value}"
        )
    if value * MIN_BIN_SIZE >= 1:
        raise ValueError(f"{name} must be below {round(1 / MIN_BIN_SIZE)}, got {value}")
    return value


def spline_bound(value: Any, name: str = "bound") -> float:
    """The half-width ``B`` of a spline's interval ``[-B, B]``: a number in ``(0, MAX_SPLINE_BOUND]``."""
    value = positive_float(value, name)
    if value > MAX_SPLINE_BOUND:
        raise ValueError(
            f"{name} must be at most {MAX_SPLINE_BOUND:g} (float32 cannot place the knots of a wider "
            f"spline precisely; standardise the data instead), got {value:g}"
        )
    return value


def real(
    value: Any,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    minimum_inclusive: bool = True,
    maximum_inclusive: bool = True,
    finite: bool = True,
) -> float:
    """A real number (Python or numpy, not bool) in the given interval; returned as ``float``."""
    if not _is_real(value):
        raise TypeError(f"{name} must be a number, got {_shown(value)}")
    value = float(value)
    if math.isnan(value) or (finite and math.isinf(value)):
        raise ValueError(f"{name} must be a finite number, got {value}")
    low_ok = minimum is None or (value >= minimum if minimum_inclusive else value > minimum)
    high_ok = maximum is None or (value <= maximum if maximum_inclusive else value < maximum)
    if not (low_ok and high_ok):
        low = "(-inf" if minimum is None else ("[" if minimum_inclusive else "(") + f"{minimum:g}"
        high = "inf)" if maximum is None else f"{maximum:g}" + ("]" if maximum_inclusive else ")")
        raise ValueError(f"{name} must lie in {low}, {high}, got {value:g}")
    return value


def positive_float(value: Any, name: str) -> float:
    """A finite number > 0."""
    if _is_real(value) and not math.isnan(float(value)) and float(value) <= 0:
        raise ValueError(f"{name} must be a positive number, got {float(value):g}")
    return real(value, name, minimum=0.0, minimum_inclusive=False)


# TensorFlow computes in float32: a number it cannot hold becomes inf (or 0) inside.
FLOAT32_MAX = 3.4028234663852886e38
FLOAT32_TINY = 1.1754943508222875e-38  # the smallest normal float32


def positive_float32(value: Any, name: str) -> float:
    """A finite number > 0 that float32 holds (from ``1.2e-38`` to ``3.4e38``): a learning
    rate of ``1e39`` passes :func:`positive_float` but is ``inf`` inside TensorFlow."""
    value = positive_float(value, name)
    if not FLOAT32_TINY <= value <= FLOAT32_MAX:
        raise ValueError(
            f"{name} must lie between {FLOAT32_TINY:.2g} and {FLOAT32_MAX:.2g} (TensorFlow computes in "
            f"float32), got {value:g}"
        )
    return value


def optional_positive_float(value: Any, name: str) -> float | None:
    """``None``, or a finite number > 0 (a bound that may be switched off)."""
    return None if value is None else positive_float(value, name)


def boolean(value: Any, name: str) -> bool:
    """``True`` or ``False`` (numpy bools too); ``"False"`` or ``0`` are refused."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {_shown(value)}")
    return bool(value)


def choice(value: Any, name: str, options: Collection[str]) -> str:
    """One of the strings ``options``."""
    if not isinstance(value, str) or value not in options:
        listed = ", ".join(repr(option) for option in options)
        raise ValueError(f"{name} must be one of {listed}; got {_shown(value)}")
    return value


def _numeric_array(value: Any, name: str, what: str) -> np.ndarray:
    """``value`` (a list, numpy array or tensor) as a numpy array of integers or floats.

    A ragged list is a ``ValueError`` ("``name`` must be ``what``"); bool or non-numeric
    entries a ``TypeError``.
    """
    if hasattr(value, "numpy") and callable(value.numpy):
        value = value.numpy()
    try:
        result = np.asarray(value)
    except (ValueError, TypeError) as error:  # ragged lists
        raise ValueError(f"{name} must be {what}: {error}") from None
    if result.dtype == bool or not (
        np.issubdtype(result.dtype, np.integer) or np.issubdtype(result.dtype, np.floating)
    ):
        raise TypeError(f"{name} must be a numeric array, got dtype {result.dtype}")
    return result


def array(value: Any, name: str, *, finite: bool = True) -> np.ndarray:
    """A numeric array of any shape (lists, numpy arrays, tensors); bool and strings refused.

    With ``finite=True`` NaN and infinite values are refused. Returned as a numpy array of
    its own dtype.
    """
    result = _numeric_array(value, name, "a numeric array")
    if finite and np.issubdtype(result.dtype, np.floating) and not np.isfinite(result).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return result


def positive_ints(value: Any, name: str, *, allow_empty: bool = False) -> tuple[int, ...]:
    """A sequence of positive integers, e.g. ``hidden_units=(64, 64)``; a string is refused."""
    if isinstance(value, (str, bytes)) or _is_integer(value) or not isinstance(value, (Sequence, np.ndarray)):
        raise TypeError(
            f"{name} must be a sequence of positive integers such as (64, 64), got {_shown(value)}"
        )
    items = list(value)
    if not items and not allow_empty:
        raise ValueError(f"{name} must not be empty, got {_shown(value)}")
    if not all(_is_integer(item) for item in items):
        raise TypeError(
            f"{name} must be a sequence of positive integers such as (64, 64), got {_shown(value)}"
        )
    if any(item <= 0 for item in items):
        raise ValueError(f"{name} must contain positive integers only, got {_shown(value)}")
    return tuple(int(item) for item in items)


def indices(value: Any, name: str, size: int) -> tuple[int, ...]:
    """A sequence of indices into ``size`` things, e.g. ``normalize_after=(0, 2, 4)``: integers
    from 0 to ``size - 1`` (empty allowed); a string or a single number is refused."""
    if isinstance(value, (str, bytes)) or _is_integer(value) or not isinstance(value, (Sequence, np.ndarray)):
        raise TypeError(f"{name} must be a sequence of indices such as (0, 2), got {_shown(value)}")
    items = list(value)
    if not all(_is_integer(item) for item in items):
        raise TypeError(f"{name} must be a sequence of indices such as (0, 2), got {_shown(value)}")
    if any(not 0 <= item < size for item in items):
        raise ValueError(f"{name} must hold indices 0 to {size - 1}, got {_shown(value)}")
    return tuple(int(item) for item in items)


def callable_or_none(value: Any, name: str) -> Any:
    """``None`` or something callable."""
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable (or None), got {type(value).__name__}")
    return value


def points(
    value: Any, name: str, *, dim: int | None = None, min_points: int = 1, finite: bool = True
) -> np.ndarray:
    """An array of points ``[num_points, dim]`` as float32, numeric, ``num_points >= min_points``.

    Accepts lists, numpy arrays and TensorFlow tensors (anything with ``.numpy()``). With
    ``finite=True`` NaN and infinite values are refused (also values beyond float32's range).
    """
    array = _numeric_array(value, name, f"an array of shape [num_points, {dim or 'dim'}]")
    expected = f"[num_points, {dim if dim is not None else 'dim'}]"
    if array.ndim != 2 or (dim is not None and array.shape[1] != dim):
        raise ValueError(f"{name} must have shape {expected}, got {array.shape}")
    if array.shape[0] < min_points:
        raise ValueError(
            f"{name} needs at least {min_points} point{'s' if min_points > 1 else ''}, got {array.shape[0]}"
        )
    array = array.astype(np.float32)
    if finite and not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values (or values too large for float32)")
    return array


def coordinates(shape: Any, size: int, owner: str) -> None:
    """Check that points of ``shape`` (a ``tf.TensorShape`` or a tuple) have ``size`` coordinates.

    The last axis is the coordinates; an unknown rank or last axis (inside a traced
    function) passes, to be checked when it is known. ``owner`` names the layer in the
    message: ``"affine_coupling expects points with 2 coordinates, got shape (4, 3)"``.
    """
    rank = getattr(shape, "rank", None) if hasattr(shape, "rank") else len(shape)
    if rank is None:
        return
    last = shape[-1] if rank > 0 else -1
    if last is not None and last != size:
        raise ValueError(f"{owner} expects points with {size} coordinates, got shape {shape}")


def flow(value: Any, name: str = "flow") -> Any:
    """A model: a TFP distribution over vectors (``event_shape`` ``[dim]``), e.g. a flow from
    :mod:`flowlib.flows` or a Gaussian baseline."""
    event_shape = getattr(value, "event_shape", None)
    if (
        event_shape is None
        or not callable(getattr(value, "log_prob", None))
        or not hasattr(event_shape, "rank")
    ):
        raise TypeError(
            f"{name} must be a flow (a TFP distribution over vectors, such as flows.realnvp()), "
            f"got {type(value).__name__}"
        )
    if event_shape.rank != 1 or event_shape[0] is None:
        raise ValueError(f"{name} must model vectors (event_shape [dim]), got event_shape {event_shape}")
    return value


def log_density(value: Any, name: str = "log_unnormalized_density") -> Any:
    """A log-density given as a function of points ``[n, dim] -> [n]`` (something callable)."""
    if not callable(value):
        raise TypeError(
            f"{name} must be a function from points [n, dim] to log-densities [n], got {type(value).__name__}"
        )
    return value


def extent(value: Any, name: str = "extent") -> tuple[float, float, float, float]:
    """A box ``(left, right, bottom, top)`` of four finite numbers with ``left < right``, ``bottom < top``."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)) or len(value) != 4:
        raise TypeError(f"{name} must be four numbers (left, right, bottom, top), got {_shown(value)}")
    if not all(_is_real(v) for v in value):
        raise TypeError(f"{name} must be four numbers (left, right, bottom, top), got {_shown(value)}")
    left, right, bottom, top = (float(v) for v in value)
    if not all(np.isfinite([left, right, bottom, top])) or not (left < right and bottom < top):
        raise ValueError(f"{name} must satisfy left < right and bottom < top (finite), got {_shown(value)}")
    return left, right, bottom, top
