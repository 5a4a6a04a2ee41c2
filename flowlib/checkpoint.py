"""Save a trained flow and restore it exactly ("load if present, else train").

A checkpoint stores every variable of the flow: network weights, ActNorm parameters and
batch-norm moving averages. Restore into a flow built with the *same* builder arguments;
afterwards ``log_prob`` and seeded samples are identical to the saved flow's.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import tensorflow as tf

from flowlib import flows as _flows


def save(flow, path: str | Path) -> Path:
    """Write all variables of ``flow`` to ``path`` (a file prefix; folders are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tf.train.Checkpoint(flow=flow).write(str(path))
    return path


def exists(path: str | Path) -> bool:
    """True if a checkpoint was written at ``path``."""
    return Path(str(path) + ".index").is_file()


def load(flow, path: str | Path) -> None:
    """Restore into ``flow`` the variables saved at ``path``.

    Raises ``FileNotFoundError`` if there is no checkpoint, and ``ValueError`` if it was
    saved from a flow of another shape (other depth, width or normalisation).
    """
    if not exists(path):
        raise FileNotFoundError(f"no checkpoint at {str(path)!r} (expected {str(path)}.index)")
    try:
        status = tf.train.Checkpoint(flow=flow).read(str(path))
        status.assert_existing_objects_matched().expect_partial()
    except (AssertionError, ValueError) as error:
        raise ValueError(f"the checkpoint at {str(path)!r} does not fit this flow: {error}") from None
    _flows.clear_caches(flow)


def load_or_train(flow, path: str | Path, train: Callable[[], object]) -> bool:
    """Restore ``flow`` from ``path`` if a checkpoint is there; else call ``train()`` and save.

    Returns True if it loaded, False if it trained.
    """
    if exists(path):
        load(flow, path)
        return True
    train()
    save(flow, path)
    return False
