"""The fast-mode switch and the environment check (including CI's sentinel)."""
from __future__ import annotations

import pytest

from flowlib import config


@pytest.mark.parametrize("value,expected", [("", False), ("0", False), ("false", False), ("1", True),
                                            ("TRUE", True), (" yes ", True), ("on", True)])
def test_fast_mode_values(monkeypatch, value, expected):
    monkeypatch.setenv("FLOWLIB_FAST", value)
    assert config.fast_mode() is expected
    assert config.pick(full="full", fast="fast") == ("fast" if expected else "full")


def test_fast_mode_rejects_nonsense(monkeypatch):
    monkeypatch.setenv("FLOWLIB_FAST", "sometimes")
    with pytest.raises(ValueError, match="FLOWLIB_FAST"):
        config.fast_mode()


def test_ci_without_fast_mode_is_refused(monkeypatch):
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("FLOWLIB_FAST", "0")
    with pytest.raises(RuntimeError, match="fast mode"):
        config.check_environment(verbose=False)
    monkeypatch.setenv("FLOWLIB_FAST", "1")
    versions = config.check_environment(verbose=False)
    assert set(versions) == {"tensorflow", "tensorflow_probability", "tf_keras"}


def test_too_old_versions_are_refused(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setitem(config.MINIMUM_VERSIONS, "tensorflow", "99.0")
    with pytest.raises(RuntimeError, match="too old"):
        config.check_environment(verbose=False)


def test_import_does_no_work():
    import subprocess
    import sys

    code = "import sys, flowlib; print('tensorflow' in sys.modules, 'matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.parametrize("steps, fast, expected", [
    (4000, "0", 4000), (4000, "1", 200), (600, "1", 30), (100, "1", 20), (10, "1", 10), (1, "1", 1)])
def test_shortened_steps(monkeypatch, steps, fast, expected):
    monkeypatch.setenv("FLOWLIB_FAST", fast)
    assert config.shortened(steps) == expected
