"""Save a trained flow and restore it exactly ("load if present, else train").

A checkpoint at the prefix ``run/flow`` is one small manifest and one folder beside it::

    run/flow.ckpt.json          which folder holds the weights, and how the flow was built
    run/flow.ckpt-<token>/      TensorFlow's files: flow.index, flow.data-00000-of-00001

The weights are every variable of the flow (network weights, ActNorm parameters,
batch-norm moving averages). The *build record* is what the weights do not say: each
layer's type and constructor arguments (a MAF or an IAF, a spline's bound, the order of a
permutation, a bound on the log-scales). Restore into a flow built the same way;
afterwards ``log_prob`` and seeded samples are identical to the saved flow's.

Nothing is ever half done:

- :func:`load` reads and checks the *whole* checkpoint (the build record against the
  flow, every variable's name, shape and type, every value against its checksum) before
  it assigns anything; when anything is wrong it raises :class:`CheckpointError` naming
  the path and the problem, and the flow is left exactly as it was.
- :func:`save` writes the new weights into a folder of their own and then replaces the
  manifest in one ``os.replace``: killed at any moment, the manifest names either the
  old complete checkpoint or the new one. A later save (or :func:`load_or_train`)
  removes what an interrupted save left. A save touches only the files it writes: the
  manifest, its own folders, and their hidden temporary twins (one process saves to a
  prefix at a time).

Nothing here imports TensorFlow until a flow is written or read, so the command line can
check a checkpoint's path and read its record before TensorFlow starts.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flowlib import validation

FORMAT = "flowlib checkpoint"
VERSION = 1
MANIFEST_SUFFIX = ".ckpt.json"
_TF_PREFIX = "flow"  # TensorFlow's files inside a checkpoint folder: flow.index, flow.data-*
# The key under which TensorFlow stores the object graph: metadata, not a variable.
_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
_SHOWN = 3  # how many differences an error message lists
_GLOB_CHARACTERS = "[]\\"  # TensorFlow reads a checkpoint prefix as a glob pattern


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or that does not fit the flow it is loaded into."""


# --------------------------------------------------------------------------- paths
def _check_path(path: str | os.PathLike) -> Path:
    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise TypeError(f"path must be a file prefix (a str or Path), got {path!r}")
    path = Path(path)
    if path.name in ("", ".", "..") or path.is_dir():
        raise ValueError(
            f"path must be a file prefix such as 'checkpoints/flow', not a folder: {str(path)!r}"
        )
    return path


def manifest_path(path: str | os.PathLike) -> Path:
    """The manifest of the checkpoint at the prefix ``path``: ``<path>.ckpt.json``."""
    path = _check_path(path)
    return path.parent / (path.name + MANIFEST_SUFFIX)


def _folder_name(name: str, token: str) -> str:
    return f"{name}.ckpt-{token}"


def _ours(path: Path) -> dict[str, re.Pattern]:
    """Patterns of every name a save of ``path`` creates in ``path.parent`` (and nothing else)."""
    name = re.escape(path.name)
    return {
        "folder": re.compile(rf"{name}\.ckpt-[0-9a-f]{{16}}"),
        "staging": re.compile(rf"\.{name}\.ckpt-saving-.+"),
        "manifest_tmp": re.compile(rf"\.{name}\.ckpt\.json\.tmp-.+"),
    }


def _read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of the checkpoint at ``path``; FileNotFoundError or CheckpointError."""
    manifest = manifest_path(path)
    if manifest.is_dir():
        raise CheckpointError(f"{str(manifest)!r} is a folder, not the manifest of a flowlib checkpoint")
    try:
        text = manifest.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"no checkpoint at {str(path)!r} (expected {str(manifest)})") from None
    except OSError as error:
        raise CheckpointError(f"cannot read {str(manifest)!r}: {error.strerror or error}") from None
    try:
        record = json.loads(text)
    except ValueError:
        record = None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CheckpointError(
            f"{str(manifest)!r} is not the manifest of a flowlib checkpoint (not written by "
            "flowlib.checkpoint.save); move it away or choose another path"
        )
    if record.get("version") != VERSION or not isinstance(record.get("folder"), str):
        raise CheckpointError(
            f"{str(manifest)!r} is a flowlib checkpoint of another version ({record.get('version')!r}, "
            f"this flowlib reads {VERSION}): save the flow again"
        )
    if not _ours(path)["folder"].fullmatch(record["folder"]):
        raise CheckpointError(f"{str(manifest)!r} names the folder {record['folder']!r}, not one of its own")
    return record


def check_save_path(path: str | os.PathLike) -> Path:
    """Check that a checkpoint can be saved at ``path`` without touching anything else.

    Refuses (``ValueError``) a prefix that is a folder, a manifest path that is a folder or
    a file not written by :func:`save`, and a parent that is a file. Cheap, without
    TensorFlow, and nothing is written: the command line calls it before training.
    """
    path = _check_path(path)
    for parent in (path.parent, *path.parent.parents):
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"cannot save a checkpoint at {str(path)!r}: {str(parent)!r} is a file")
            break
    manifest = manifest_path(path)
    if manifest.exists() or manifest.is_symlink():
        try:
            _read_manifest(path)
        except CheckpointError as error:
            raise ValueError(f"cannot save a checkpoint at {str(path)!r}: {error}") from None
    return path


def exists(path: str | Path) -> bool:
    """True if a checkpoint was saved at ``path`` (its manifest ``<path>.ckpt.json`` is there)."""
    return manifest_path(path).is_file()


def read_record(path: str | Path) -> dict[str, Any]:
    """What the checkpoint at ``path`` records, without TensorFlow and without reading weights.

    Returns a dict with ``"build"`` (each layer's type and constructor arguments) and
    ``"metadata"`` (what the caller of :func:`save` passed, e.g. the command line's
    recipe; ``None`` if nothing). Raises ``FileNotFoundError`` or :class:`CheckpointError`.
    """
    record = _read_manifest(_check_path(path))
    return {"build": record.get("build"), "metadata": record.get("metadata")}


# --------------------------------------------------------------------------- build record
def _describe(value: Any) -> Any:
    """A JSON-able description of a constructor argument: numbers as they are, arrays by value,
    variables by shape (their values are the weights), other objects by type."""
    import numpy as np
    import tensorflow as tf
    import tensorflow_probability as tfp

    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tf.Variable):
        return {"variable": list(value.shape), "dtype": value.dtype.name}
    if isinstance(value, tfp.util.DeferredTensor):
        transform = getattr(value, "_transform_fn", None)
        return {
            "deferred": _describe(value.pretransformed_input),
            "transform": getattr(transform, "__name__", type(transform).__name__),
        }
    if isinstance(value, (np.ndarray, tf.Tensor)):
        array = np.asarray(value)
        if array.size <= 256:
            return {"array": array.tolist(), "dtype": array.dtype.name}
        digest = hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()
        return {"array shape": list(array.shape), "dtype": array.dtype.name, "sha256": digest}
    if isinstance(value, (list, tuple)):
        return [_describe(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _describe(item) for key, item in sorted(value.items())}
    kind = type(value)
    return {"object": f"{kind.__module__}.{kind.__qualname__}"}


# Constructor arguments that do not change what the weights mean: ``seed`` only draws the
# initial weights (which a load replaces), names are labels. (A seeded *constant*, such as
# a random permutation, is recorded by value.)
_IGNORED = {"seed", "name", "validate_args"}


def _parameters(thing) -> dict[str, Any]:
    parameters = dict(getattr(thing, "parameters", None) or {})
    kind = type(thing)
    described = {
        key: _describe(value)
        for key, value in sorted(parameters.items())
        if key not in _IGNORED and not key.startswith("_") and key != "self" and value is not thing
    }
    return {"type": f"{kind.__module__}.{kind.__qualname__}", **described}


def build_record(flow) -> dict[str, Any]:
    """How ``flow`` was built: its base and, in forward order, each layer's type and arguments.

    Two flows with the same record and the same weights have the same density; a
    checkpoint stores the record and :func:`load` refuses a flow whose record differs.
    """
    flow = validation.flow(flow)
    record: dict[str, Any] = {"dim": int(flow.event_shape[-1])}
    builder = getattr(flow, "_flowlib_build", None)  # set by builders that record their arguments
    if builder is not None:
        record["builder"] = _describe(builder)
    if hasattr(flow, "bijector") and hasattr(flow, "distribution"):
        from flowlib import flows

        record["base"] = _parameters(flow.distribution)
        record["layers"] = [_parameters(layer) for layer in flows.layers(flow)]
    else:
        record["distribution"] = _parameters(flow)
    return json.loads(json.dumps(record))  # as it reads back from the manifest (tuples -> lists)


def _flatten(value: Any, key: str, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, dict) and not ({"array", "variable"} & set(value)):
        for name, item in value.items():
            _flatten(item, f"{key}.{name}" if key else name, out)
    elif isinstance(value, list) and key.endswith("layers"):
        out[f"{key} (count)"] = len(value)
        for index, item in enumerate(value):
            _flatten(item, f"{key}[{index}]", out)
    else:
        out[key] = value
    return out


def _shown(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, dict) and "array" in value:
        value = value["array"]
    elif isinstance(value, dict) and "object" in value:
        value = value["object"]
    if isinstance(value, str) and "." in value:
        value = value.rsplit(".", 1)[-1]  # a type: its class name
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."


def _build_mismatch(stored: dict[str, Any], current: dict[str, Any], flow) -> str | None:
    """What differs between the stored build record and the flow's; None if nothing."""
    old, new = _flatten(stored, "", {}), _flatten(current, "", {})
    differing = [key for key in dict.fromkeys([*old, *new]) if old.get(key, "-") != new.get(key, "-")]
    if not differing:
        return None
    names = {}
    if hasattr(flow, "bijector"):
        from flowlib import flows

        names = {f"layers[{i}]": layer.name for i, layer in enumerate(flows.layers(flow))}

    def where(key: str) -> str:
        head, _, tail = key.partition(".")
        label = f"layer {head[7:-1]} ({names[head]})" if head in names else head
        return f"{label} {tail}" if tail and tail != "type" else label

    shown = [
        f"{where(key)}: checkpoint {_shown(old.get(key, '(none)'))}, this flow {_shown(new.get(key, '(none)'))}"
        for key in differing[:_SHOWN]
    ]
    more = f" and {len(differing) - _SHOWN} more" if len(differing) > _SHOWN else ""
    return "it was built differently (" + "; ".join(shown) + more + ")"


# --------------------------------------------------------------------------- save
def _fsync(path: Path) -> None:
    """Flush ``path`` (a file or a folder) to the disk, where the system allows it."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # e.g. folders on Windows, or file systems without fsync
    finally:
        os.close(descriptor)


def _step(name: str) -> None:
    """Called after each step of :func:`save` that changes the disk (a hook for fault-injection tests)."""


def _remove_leftovers(path: Path, keep: str | None) -> None:
    """Remove what interrupted saves of ``path`` left: staging folders, temporary manifests,
    and checkpoint folders the manifest does not name (``keep`` is the one it names)."""
    patterns = _ours(path)
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    for entry in entries:
        try:
            if patterns["staging"].fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            elif patterns["manifest_tmp"].fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
            elif (
                patterns["folder"].fullmatch(entry.name)
                and entry.name != keep
                and entry.is_dir(follow_symlinks=False)
                and all(
                    re.fullmatch(rf"{_TF_PREFIX}\.(index|data-.*)", name) for name in os.listdir(entry.path)
                )
            ):
                shutil.rmtree(entry.path, ignore_errors=True)
        except OSError:
            pass  # a leftover that cannot be removed now is removed by a later save


def save(flow, path: str | Path, *, metadata: dict[str, Any] | None = None) -> Path:
    """Write all variables of ``flow`` and its build record at the prefix ``path``.

    Steps (each one leaves a loadable checkpoint, the old or the new one): write the
    weights into a hidden staging folder; rename it to a checkpoint folder of its own;
    write the new manifest to a hidden file and ``os.replace`` it over the old one (the
    moment the new checkpoint takes over); remove the old checkpoint folder. If a step
    fails, what it wrote is removed, the previous checkpoint stays as it was and the error
    is raised as an ``OSError`` naming the path.

    ``metadata``: optional JSON-able dict stored with the checkpoint (see
    :func:`read_record`), e.g. the recipe and data a command line trained with.
    Folders are created. Returns ``path``.
    """
    flow = validation.flow(flow)
    path = check_save_path(path)
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise TypeError(f"metadata must be a dict (or None), got {type(metadata).__name__}")
        try:
            metadata = json.loads(json.dumps(metadata))
        except (TypeError, ValueError) as error:
            raise TypeError(f"metadata must be JSON-able (numbers, strings, lists, dicts): {error}") from None
    record = build_record(flow)
    manifest = manifest_path(path)
    old = _read_manifest(path)["folder"] if manifest.exists() else None

    import tensorflow as tf

    def failed(error: Exception) -> OSError:
        detail = getattr(error, "message", None) or getattr(error, "strerror", None) or str(error)
        return OSError(
            f"cannot save the checkpoint at {str(path)!r} (the previous one, if any, is unchanged): {detail}"
        )

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(path, keep=old)
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.ckpt-saving-", dir=path.parent))
    except OSError as error:
        raise failed(error) from None
    folder = path.parent / _folder_name(path.name, secrets.token_hex(8))
    written: list[Path] = [staging]
    try:
        _step("staging folder created")
        tf.train.Checkpoint(flow=flow).write(str(staging / _TF_PREFIX))
        for file in staging.iterdir():
            _fsync(file)
        _step("weights written")
        os.rename(staging, folder)
        written = [folder]
        _fsync(path.parent)
        _step("checkpoint folder in place")
        text = json.dumps(
            {
                "format": FORMAT,
                "version": VERSION,
                "folder": folder.name,
                "build": record,
                "metadata": metadata,
            },
            indent=1,
        )
        temporary = path.parent / f".{manifest.name}.tmp-{secrets.token_hex(4)}"
        written.append(temporary)
        with open(temporary, "w", encoding="utf-8") as file:
            file.write(text + "\n")
            file.flush()
            os.fsync(file.fileno())
        _step("manifest written")
        os.replace(temporary, manifest)  # the new checkpoint takes over here
        written = []
        _fsync(path.parent)
        _step("manifest replaced")
    except Exception as error:
        for leftover in written:  # not a BaseException: a kill leaves them to the next save
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
        if isinstance(error, (OSError, tf.errors.OpError)):
            raise failed(error) from None
        raise
    _remove_leftovers(path, keep=folder.name)  # the old folder, and any older leftovers
    _step("old checkpoint removed")
    return path


# --------------------------------------------------------------------------- load
def _readable_prefix(prefix: Path, scratch: str) -> str:
    """``prefix`` as TensorFlow can read it: a copy in ``scratch`` if it has glob characters."""
    if not any(character in str(prefix) for character in _GLOB_CHARACTERS):
        return str(prefix)
    copy = os.path.join(scratch, "copy")
    shutil.copytree(prefix.parent, copy)
    return os.path.join(copy, prefix.name)


def _read(path: Path, prefix: str):
    """Every variable stored at the TensorFlow ``prefix``, by key; CheckpointError if unreadable."""
    import numpy as np
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(prefix)
        # Read every entry, the object graph too: this reads and checksums every byte.
        values = {key: np.asarray(reader.get_tensor(key)) for key in reader.get_variable_to_shape_map()}
        if _GRAPH_KEY not in values:
            raise ValueError("it has no object graph: it was not written by tf.train.Checkpoint")
        del values[_GRAPH_KEY]
        return values
    except Exception as error:  # TensorFlow raises many kinds (OpError, DataLossError, IndexError, ...)
        detail = getattr(error, "message", None) or str(error) or type(error).__name__
        raise CheckpointError(
            f"the checkpoint at {str(path)!r} cannot be read (its .index and .data files are "
            f"damaged, truncated, or come from different saves): {detail.strip().splitlines()[0]}"
        ) from None


def _expected(flow) -> dict[str, tuple[tuple[int, ...], Any]]:
    """The key, shape and dtype of every variable a checkpoint of ``flow`` holds (written to a scratch folder)."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="flowlib-layout-") as scratch:
        prefix = tf.train.Checkpoint(flow=flow).write(os.path.join(scratch, "layout"))
        reader = tf.train.load_checkpoint(prefix)
        shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    return {key: (tuple(shapes[key]), dtypes[key]) for key in shapes if key != _GRAPH_KEY}


def _short(key: str) -> str:
    return key.replace("/.ATTRIBUTES/VARIABLE_VALUE", "").removeprefix("flow/")


def _mismatch(stored, expected: dict) -> str | None:
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
    (a ``ValueError``) if the files cannot be read or the checkpoint does not fit the
    flow: other variables (depth, width, normalisation) or another build (layer types,
    a spline's bound, a permutation, a bound on the log-scales). On any error the flow
    is left exactly as it was.
    """
    import tensorflow as tf

    from flowlib import flows as _flows

    flow, path = validation.flow(flow), _check_path(path)
    record = _read_manifest(path)
    with tempfile.TemporaryDirectory(prefix="flowlib-load-") as scratch:
        try:
            prefix = _readable_prefix(path.parent / record["folder"] / _TF_PREFIX, scratch)
        except OSError as error:
            raise CheckpointError(
                f"the checkpoint at {str(path)!r} cannot be read: {error.strerror or error}"
            ) from None
        stored = _read(path, prefix)
        problem = _mismatch(stored, _expected(flow))
        if problem is None and isinstance(record.get("build"), dict):
            problem = _build_mismatch(record["build"], build_record(flow), flow)
        elif problem is None:
            problem = "it has no build record to check the flow against"
        if problem:
            raise CheckpointError(
                f"the checkpoint at {str(path)!r} does not fit this flow "
                f"(was it saved from a flow built with other arguments?): {problem}"
            )
        # Everything is checked; keep a copy anyway, so that even an unexpected failure of
        # the restore leaves the flow as it was.
        before = [variable.numpy() for variable in flow.variables]
        try:
            status = tf.train.Checkpoint(flow=flow).read(prefix)
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
    be loaded raises (see :func:`load`) rather than being trained over silently. Either
    way, what an interrupted save left beside the checkpoint is removed.
    """
    flow, path = validation.flow(flow), _check_path(path)
    if not callable(train):
        raise TypeError(f"train must be a function of no arguments that trains the flow, got {train!r}")
    if exists(path):
        load(flow, path)
        _remove_leftovers(path, keep=_read_manifest(path)["folder"])
        return True
    check_save_path(path)  # refused before training, not after
    train()
    save(flow, path)
    return False
