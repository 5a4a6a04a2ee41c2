"""The environment check and the one ref every Colab link names (the notebooks' fast mode is the
test harness's: tests/test_fast_mode_harness.py)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import types
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (the oldest-versions run)
    import tomli as tomllib

import pytest

import flowlib
from flowlib import config

ROOT = Path(__file__).resolve().parents[1]


def test_too_old_versions_are_refused(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setitem(config.MINIMUM_VERSIONS, "tensorflow", "99.0")
    with pytest.raises(RuntimeError, match="too old"):
        config.check_environment(verbose=False)


@pytest.fixture
def no_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)


def test_missing_tf_keras_is_named_before_tfp(monkeypatch, no_ci):
    """Without tf-keras, TFP itself fails to import: the message must send the user to tf-keras,
    with a version matching the installed TensorFlow (so pip keeps that TensorFlow)."""
    import tensorflow as tf

    monkeypatch.setitem(sys.modules, "tf_keras", None)  # `import tf_keras` now fails as if absent
    monkeypatch.setitem(sys.modules, "tensorflow_probability", None)  # and so would TFP's import
    with pytest.raises(RuntimeError) as caught:
        config.check_environment(verbose=False)
    message = str(caught.value)
    minor = ".".join(tf.__version__.split(".")[:2])
    assert message.startswith("tf_keras is not installed")
    assert f'pip install "tf-keras~={minor}.0"' in message
    assert "tensorflow_probability" not in message


def test_missing_tensorflow_and_tfp_are_named(monkeypatch, no_ci):
    monkeypatch.setitem(sys.modules, "tensorflow_probability", None)
    with pytest.raises(RuntimeError, match=r"tensorflow_probability is not installed.*pip install"):
        config.check_environment(verbose=False)
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    with pytest.raises(RuntimeError, match=r"^tensorflow is not installed.*pip install tensorflow"):
        config.check_environment(verbose=False)


def test_broken_dependency_is_not_called_missing(monkeypatch, no_ci):
    """A package present but failing on one of its own imports is reported as such."""

    def failing_import(name, *args, **kwargs):
        if name == "tf_keras":
            raise ModuleNotFoundError("No module named 'some_dependency'", name="some_dependency")
        return real_import(name, *args, **kwargs)

    import importlib

    real_import = importlib.import_module
    monkeypatch.setattr(importlib, "import_module", failing_import)
    with pytest.raises(RuntimeError, match="tf_keras is installed but cannot be imported.*some_dependency"):
        config.check_environment(verbose=False)


def test_tf_keras_must_match_tensorflow(monkeypatch, no_ci):
    import tensorflow as tf
    import tensorflow_probability  # noqa: F401  (imported with the real tf_keras, before the stand-in)

    major, minor = (int(part) for part in tf.__version__.split(".")[:2])
    stale = types.ModuleType("tf_keras")
    stale.__version__ = f"{major}.{minor + 1}.0"  # above the minimum on the oldest run too
    monkeypatch.setitem(sys.modules, "tf_keras", stale)
    with pytest.raises(RuntimeError, match=rf"does not match TensorFlow.*tf-keras~={major}\.{minor}\.0"):
        config.check_environment(verbose=False)
    stale.__version__ = f"{major}.{minor}.7"  # any patch release of the same major.minor is fine
    assert config.check_environment(verbose=False)["tf_keras"] == f"{major}.{minor}.7"


def test_import_does_no_work():
    import subprocess
    import sys

    code = "import sys, flowlib; print('tensorflow' in sys.modules, 'matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_check_environment_leaves_fast_mode_to_the_test_harness(monkeypatch, capsys):
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("FLOWLIB_FAST", "0")
    versions = config.check_environment(verbose=True)
    assert set(versions) == {"tensorflow", "tensorflow_probability", "tf_keras"}
    assert "FLOWLIB_FAST" not in capsys.readouterr().out
    assert not hasattr(flowlib, "fast_mode") and not hasattr(config, "shortened")


def load_refs_tool():
    spec = importlib.util.spec_from_file_location("refs_tool", ROOT / "tools" / "refs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_colab_link_names_the_series_ref():
    """README, notebooks/ (and their .py twins), exercises/: every badge and install line
    names config.REPOSITORY at config.REF, and each notebook's badge opens that notebook."""
    refs = load_refs_tool()
    checked = refs.notebooks(ROOT)
    assert len(checked) >= 14  # the series and its student copies, 08/09 included when they come
    assert refs.find_problems(ROOT) == []


def test_ref_check_catches_drift(tmp_path):
    """The check above can fail: plant a badge on an old tag, an old install ref, a badge to a
    missing file and a student copy whose badge opens the solutions; `write` repairs the refs."""
    refs = load_refs_tool()
    for folder in ("notebooks", "exercises"):
        (tmp_path / folder).mkdir()
        shutil.copy(ROOT / folder / "01_additive_coupling.ipynb", tmp_path / folder)
    (tmp_path / "README.md").write_text(
        f"[ok]({config.colab_url('notebooks/01_additive_coupling.ipynb')}) "
        f"[missing]({config.colab_url('notebooks/99_missing.ipynb')})\n"
    )
    assert refs.find_problems(tmp_path) == [
        "README.md: Colab badge opens notebooks/99_missing.ipynb, which does not exist"
    ]
    (tmp_path / "README.md").write_text("no links\n")

    solution = tmp_path / "notebooks" / "01_additive_coupling.ipynb"
    text = solution.read_text()
    solution.write_text(
        text.replace(f"/blob/{config.REF}/", "/blob/v0.0.8/").replace(f"@{config.REF}", "@v0.0.9")
    )
    student = tmp_path / "exercises" / "01_additive_coupling.ipynb"
    student.write_text(student.read_text().replace("/exercises/01_", "/notebooks/01_"))
    problems = refs.find_problems(tmp_path)
    assert any(
        "notebooks/01_additive_coupling.ipynb: Colab badge names" in p and "@v0.0.8" in p for p in problems
    )
    assert any(
        "notebooks/01_additive_coupling.ipynb: install line names" in p and "@v0.0.9" in p for p in problems
    )
    assert any(
        p.startswith("notebooks/01_additive_coupling.ipynb: its first code cell does not install")
        for p in problems
    )
    assert any(
        p.startswith("exercises/01_additive_coupling.ipynb: its first cell has no Colab badge opening itself")
        for p in problems
    )
    refs.write(tmp_path)
    assert solution.read_text() == text
    assert refs.find_problems(tmp_path) == [
        "exercises/01_additive_coupling.ipynb: its first cell has no Colab badge opening itself "
        f"({config.colab_url('exercises/01_additive_coupling.ipynb')})"
    ]  # a wrong path is not guessed


def test_ref_is_a_ref_the_repository_holds():
    """Until a release is tagged, the version is a development release and every badge and
    install line names the main branch; a released version is named by its tag. In a git
    checkout the ref must exist, or every badge and the install cell fail in Colab."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert flowlib.__version__ == version
    assert config.REF == ("main" if ".dev" in version else f"v{version}")
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    found = [
        ref
        for ref in (
            f"refs/heads/{config.REF}",
            f"refs/tags/{config.REF}",
            f"refs/remotes/origin/{config.REF}",
        )
        if subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", ref], cwd=ROOT, capture_output=True
        ).returncode
        == 0
    ]
    assert found, f"the repository holds no branch or tag {config.REF!r}"


def test_every_module_is_reachable_from_the_package():
    """`flowlib.<module>` works for every module of the package (the lazy map lists them all),
    and the environment check is reachable as the README names it."""
    modules = {p.stem for p in (ROOT / "flowlib").glob("*.py") if not p.stem.startswith("_")}
    assert modules <= set(flowlib.__all__), sorted(modules - set(flowlib.__all__))
    assert flowlib.check_environment is config.check_environment
    assert 'flowlib.check_environment()"`' in (ROOT / "README.md").read_text()
