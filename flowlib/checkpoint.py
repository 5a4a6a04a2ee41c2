"""Save a trained flow and restore it exactly ("load if present, else train").

A checkpoint stores every variable of the flow: network weights, ActNorm parameters and
batch-norm moving averages, as TensorFlow's two files ``<path>.index`` and
``<path>.data-00000-of-00001``. Restore into a flow built with the *same* builder
arguments; afterwards ``log_prob`` and seeded samples are identical to the saved flow's.

Nothing is ever half done:

- :func:`load` reads and checks the *whole* checkpoint (every variable's name, shape and
  type against the flow, every value against its checksum) before it assigns anything;
  when anything is wrong it raises :class:`CheckpointError` naming the file and the
  problem, and the flow is left exactly as it was.
- :func:`save` writes the new checkpoint beside the old one and then moves it in place;
  if anything fails, the previous checkpoint is put back and stays loadable.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf

from flowlib import flows as _flows
from flowlib import validation

# The key under which TensorFlow stores the object graph: metadata, not a variable.
_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
_SHOWN = 3  # how many names an error message lists


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or that does not fit the flow it is loaded into."""


def _check_path(path: str | os.PathLike) -> Path:
    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise TypeError(f"path must be a file prefix (a str or Path), got {path!r}")
    path = Path(path)
    if path.name in ("", ".", "..") or path.is_dir():
        raise ValueError(
            f"path must be a file prefix such as 'checkpoints/flow', not a folder: {str(path)!r}"
        )
    return path


def _files(prefix: Path) -> list[Path]:
    """The files of the checkpoint at ``prefix``: its data shards, then its index."""
    shards = sorted(Path(p) for p in glob.glob(glob.escape(str(prefix)) + ".data-*"))
    index = Path(str(prefix) + ".index")
    return shards + ([index] if index.exists() else [])


def save(flow, path: str | Path) -> Path:
    """Write all variables of ``flow`` to ``path`` (a file prefix; folders are created).

    Atomic as far as the file system allows: the checkpoint is written to a temporary
    folder beside ``path``, the previous checkpoint (if any) is moved aside, the new files
    are renamed into place (data first, index last) and the old ones deleted. If any step
    fails, the previous checkpoint is restored and the error is raised as an ``OSError``
    naming the path; no temporary folder is left behind. Returns ``path``.
    """
    flow, path = validation.flow(flow), _check_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.saving-", dir=path.parent))
    except OSError as error:
        raise OSError(f"cannot save the checkpoint at {str(path)!r}: {error}") from None
    try:
        new_prefix = staging / "new"
        try:
            tf.train.Checkpoint(flow=flow).write(str(new_prefix))
        except tf.errors.OpError as error:
            raise OSError(f"cannot save the checkpoint at {str(path)!r}: {error.message}") from None
        moved_aside: list[tuple[Path, Path]] = []
        placed: list[Path] = []
        try:
            for old in _files(path):
                aside = staging / ("old" + old.name[len(path.name) :])
                os.replace(old, aside)
                moved_aside.append((old, aside))
            for new in _files(new_prefix):  # data shards first, index last
                target = path.parent / (path.name + new.name[len("new") :])
                os.replace(new, target)
                placed.append(target)
        except BaseException as error:
            for target in placed:  # put the previous checkpoint back as it was
                target.unlink(missing_ok=True)
            for old, aside in moved_aside:
                os.replace(aside, old)
            if isinstance(error, OSError):
                raise OSError(
                    f"cannot save the checkpoint at {str(path)!r} (the previous one, if any, "
                    f"is unchanged): {error}"
                ) from None
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def exists(path: str | Path) -> bool:
    """True if a checkpoint was written at ``path`` (its ``.index`` file is there)."""
    return Path(str(_check_path(path)) + ".index").is_file()


def _read(path: Path) -> dict[str, np.ndarray]:
    """Every variable stored at ``path``, by checkpoint key; CheckpointError if unreadable."""
    try:
        reader = tf.train.load_checkpoint(str(path))
        # Read every entry, the object graph too: this reads and checksums every byte.
        values = {key: np.asarray(reader.get_tensor(key)) for key in reader.get_variable_to_shape_map()}
        if _GRAPH_KEY not in values:
            raise ValueError("it has no object graph: it was not written by tf.train.Checkpoint")
        del values[_GRAPH_KEY]
        return values
    except Exception as error:  # TensorFlow raises many kinds (OpError, DataLossError, IndexError, ...)
        detail = getattr(error, "message", None) or str(error) or type(error).__name__
        raise CheckpointError(
            f"the checkpoint at {str(path)!r} cannot be read ({str(path)}.index and its .data file are "
            f"damaged, truncated, or come from different saves): {detail.strip().splitlines()[0]}"
        ) from None


def _expected(flow) -> dict[str, tuple[tuple[int, ...], tf.dtypes.DType]]:
    """The key, shape and dtype of every variable a checkpoint of ``flow`` holds (written to a scratch folder)."""
    with tempfile.TemporaryDirectory(prefix="flowlib-layout-") as scratch:
        prefix = tf.train.Checkpoint(flow=flow).write(os.path.join(scratch, "layout"))
        reader = tf.train.load_checkpoint(prefix)
        shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    return {key: (tuple(shapes[key]), dtypes[key]) for key in shapes if key != _GRAPH_KEY}


def _short(key: str) -> str:
    return key.replace("/.ATTRIBUTES/VARIABLE_VALUE", "").removeprefix("flow/")


def _mismatch(stored: dict[str, np.ndarray], expected: dict) -> str | None:
    """What differs between a checkpoint's variables and those of the flow; None if they fit."""
    problems = []
    missing = sorted(set(expected) - set(stored))
    extra = sorted(set(stored) - set(expected))
    if missing:
        problems.append(
            f"{len(missing)} variables of this flow are not in the checkpoint (e.g. "
            + ", ".join(_short(k) for k in missing[:_SHOWN])
            + ")"
        )
    if extra:
        problems.append(
            f"{len(extra)} variables of the checkpoint are not in this flow (e.g. "
            + ", ".join(_short(k) for k in extra[:_SHOWN])
            + ")"
        )
    reshaped = [
        key
        for key in sorted(set(stored) & set(expected))
        if stored[key].shape != expected[key][0] or stored[key].dtype != expected[key][1].as_numpy_dtype
    ]
    if reshaped:
        problems.append(
            f"{len(reshaped)} variables differ in shape or type (e.g. "
            + ", ".join(
                f"{_short(k)}: checkpoint {list(stored[k].shape)} {stored[k].dtype}, flow "
                f"{list(expected[k][0])} {expected[k][1].name}"
                for k in reshaped[:_SHOWN]
            )
            + ")"
        )
    return "; ".join(problems) or None


def load(flow, path: str | Path) -> None:
    """Restore into ``flow`` the variables saved at ``path``, all of them or none.

    Raises ``FileNotFoundError`` if there is no checkpoint, and :class:`CheckpointError`
    (a ``ValueError``) if the files cannot be read or the checkpoint was saved from a flow
    of another shape (other depth, width or normalisation): the checkpoint must hold
    exactly the flow's variables, with the same shapes. On any error the flow is left
    exactly as it was.
    """
    flow, path = validation.flow(flow), _check_path(path)
    if not exists(path):
        raise FileNotFoundError(f"no checkpoint at {str(path)!r} (expected {str(path)}.index)")
    stored = _read(path)
    problem = _mismatch(stored, _expected(flow))
    if problem:
        raise CheckpointError(
            f"the checkpoint at {str(path)!r} does not fit this flow "
            f"(was it saved from a flow built with other arguments?): {problem}"
        )
    # Everything is checked; keep a copy anyway, so that even an unexpected failure of the
    # restore leaves the flow as it was.
    before = [variable.numpy() for variable in flow.variables]
    try:
        status = tf.train.Checkpoint(flow=flow).read(str(path))
        status.assert_existing_objects_matched().expect_partial()
    except Exception as error:
        for variable, value in zip(flow.variables, before):
            variable.assign(value)
        _flows.clear_caches(flow)
        raise CheckpointError(
            f"the checkpoint at {str(path)!r} could not be restored into this flow "
            f"(the flow is unchanged): {error}"
        ) from None
    _flows.clear_caches(flow)


def load_or_train(flow, path: str | Path, train: Callable[[], object]) -> bool:
    """Restore ``flow`` from ``path`` if a checkpoint is there; else call ``train()`` and save.

    Returns True if it loaded, False if it trained. A checkpoint that is there but cannot
    be loaded raises (see :func:`load`) rather than being trained over silently.
    """
    flow, path = validation.flow(flow), _check_path(path)
    if not callable(train):
        raise TypeError(f"train must be a function of no arguments that trains the flow, got {train!r}")
    if exists(path):
        load(flow, path)
        return True
    train()
    save(flow, path)
    return False
