"""The Colab-like run's IPython start-up really intercepts the notebooks' install line.

`make test-colab` relies on tests/colab/ipython/.../00_colab_like.py to turn each notebook's
``pip install "git+https://github.com/<repository>@<ref>"`` into an install of the local
wheel. If the notebooks changed how they call pip and the hook missed it, the Colab-like
run would try GitHub (no network in CI) or, worse, silently test nothing. These tests run
the start-up file in a real IPython shell with a recording ``pip`` magic underneath.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import nbformat
import pytest

from flowlib import config

ROOT = Path(__file__).resolve().parents[2]
STARTUP = ROOT / "tests" / "colab" / "ipython" / "profile_default" / "startup" / "00_colab_like.py"
WHEEL = "/tmp/wheels/flowlib-0.1.0.dev0-py3-none-any.whl"


@pytest.fixture
def shell(monkeypatch, tmp_path):
    """An IPython shell after the start-up file ran; ``shell.pip_lines`` records what reached pip."""
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("FLOWLIB_LOCAL_WHEEL", str(tmp_path / "flowlib.whl"))
    monkeypatch.setenv("FLOWLIB_REPOSITORY", config.REPOSITORY)
    monkeypatch.setenv("FLOWLIB_REF", config.REF)
    monkeypatch.delenv("CI", raising=False)
    # The stub google.colab, removed again after the test (flowlib code looks for it). The
    # real `google` namespace package first: TensorFlow imports google.protobuf from it.
    import google.protobuf  # noqa: F401

    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    shell = InteractiveShell.instance()
    shell.pip_lines = []
    shell.register_magic_function(shell.pip_lines.append, magic_kind="line", magic_name="pip")
    exec(compile(STARTUP.read_text(), str(STARTUP), "exec"), {"get_ipython": lambda: shell})
    yield shell
    InteractiveShell.clear_instance()


INSTALL = f'install --quiet --no-deps "{config.install_url()}"'


def test_line_magic_call_is_redirected(shell, tmp_path):
    shell.run_line_magic("pip", INSTALL)
    assert shell.pip_lines == [f"install --quiet --no-deps {tmp_path / 'flowlib.whl'}"]


def test_percent_pip_is_redirected(shell, tmp_path):
    result = shell.run_cell(f"%pip {INSTALL}")
    assert result.success
    assert shell.pip_lines == [f"install --quiet --no-deps {tmp_path / 'flowlib.whl'}"]


def test_other_pip_lines_pass_unchanged(shell):
    shell.run_line_magic("pip", "list")
    assert shell.pip_lines == ["list"]


def test_a_drifted_install_line_fails(shell):
    with pytest.raises(RuntimeError, match="does not name"):
        shell.run_line_magic("pip", f'install "git+https://github.com/{config.REPOSITORY}@v0.0.8"')
    assert shell.pip_lines == []


def test_each_notebooks_setup_cell_installs_the_local_wheel(shell, tmp_path):
    """The setup cell as committed (whatever form it uses) reaches the hook exactly once."""
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert notebooks
    for path in notebooks:
        setup = next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        shell.pip_lines.clear()
        result = shell.run_cell(setup.source)
        assert result.success, f"{path.name}: {result.error_in_exec!r}"
        assert shell.pip_lines == [f"install --quiet --no-deps {tmp_path / 'flowlib.whl'}"], path.name
