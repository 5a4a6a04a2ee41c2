"""The environment check (:func:`check_environment`) and the one ref every Colab link names.

flowlib trains what it is asked: ``train.fit(..., steps=4000)`` runs 4000 steps. The
notebooks' shorter runs under test are the test harness's business
(``tests/harness/``), not the library's.
"""

from __future__ import annotations

# Where the series lives, and the one ref every link names. The Colab badges (README,
# notebooks/, exercises/) open the notebooks at REF and each notebook's Colab cell installs
# flowlib at the same REF, so a reader in Colab always gets notebooks and library from one
# commit. To release: bump the version, set REF, run `python tools/refs.py write`
# (tests/test_config.py fails while any link disagrees).
REPOSITORY = "normalizing-flows-tf2/flowlib"
REF = "main"


def colab_url(path: str) -> str:
    """The "Open in Colab" address of ``path`` (e.g. ``"notebooks/05_realnvp.ipynb"``) at :data:`REF`."""
    return f"https://colab.research.google.com/github/{REPOSITORY}/blob/{REF}/{path}"


def install_url() -> str:
    """What the notebooks' Colab cell passes to ``pip install``: this repository at :data:`REF`."""
    return f"git+https://github.com/{REPOSITORY}@{REF}"


MINIMUM_VERSIONS = {"tensorflow": "2.16", "tf_keras": "2.16", "tensorflow_probability": "0.24"}


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _import_version(module: str, fix: str) -> str:
    """``module.__version__``; a RuntimeError saying ``fix`` when it is missing or broken."""
    import importlib

    try:
        return importlib.import_module(module).__version__
    except ModuleNotFoundError as error:
        if error.name != module:  # the module is there, one of its own imports is not
            raise RuntimeError(f"{module} is installed but cannot be imported ({error}). {fix}") from None
        raise RuntimeError(f"{module} is not installed. {fix}") from None
    except ImportError as error:
        raise RuntimeError(f"{module} is installed but cannot be imported ({error}). {fix}") from None


def check_environment(verbose: bool = True) -> dict[str, str]:
    """Check the versions the series needs; return them.

    Checked in the order they depend on each other, so the message names the real cause:
    TensorFlow, then ``tf-keras`` (TensorFlow Probability imports it, so with it missing TFP
    itself fails to import), then TensorFlow Probability. ``tf-keras`` must match
    TensorFlow's major.minor version; the command given installs the matching one, so pip
    does not replace the TensorFlow already there (Colab's, for instance).

    Raises ``RuntimeError`` with what to do when a package is missing, broken or too old,
    or when ``tf-keras`` does not match TensorFlow.
    """
    versions: dict[str, str] = {}
    versions["tensorflow"] = _import_version(
        "tensorflow", "Install it with `pip install tensorflow` (or `make venv` in a checkout)."
    )
    tf_minor = ".".join(versions["tensorflow"].split(".")[:2])
    keras_fix = (
        f"TensorFlow Probability needs Keras 2 as tf-keras, matching TensorFlow {tf_minor}: "
        f'`pip install "tf-keras~={tf_minor}.0"` (in a notebook: `%pip install "tf-keras~={tf_minor}.0"`, '
        "then restart the kernel)."
    )
    versions["tf_keras"] = _import_version("tf_keras", keras_fix)
    versions["tensorflow_probability"] = _import_version(
        "tensorflow_probability",
        f'Install it with `pip install "tensorflow-probability>='
        f'{MINIMUM_VERSIONS["tensorflow_probability"]}"`.',
    )
    for module, minimum in MINIMUM_VERSIONS.items():
        if _version_tuple(versions[module]) < _version_tuple(minimum):
            raise RuntimeError(
                f"{module} {versions[module]} is too old: the series needs {minimum} or newer. "
                f"Upgrade it, e.g. `pip install -U {module.replace('_', '-')}`."
            )
    if _version_tuple(versions["tf_keras"])[:2] != _version_tuple(versions["tensorflow"])[:2]:
        raise RuntimeError(
            f"tf-keras {versions['tf_keras']} does not match TensorFlow {versions['tensorflow']}. "
            + keras_fix
        )
    versions = {name: versions[name] for name in ("tensorflow", "tensorflow_probability", "tf_keras")}
    if verbose:
        print(" | ".join(f"{name} {version}" for name, version in versions.items()))
    return versions
