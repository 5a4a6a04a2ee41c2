"""environment.yml installs what pyproject.toml declares: the two lists agree."""

from __future__ import annotations

import re
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (the oldest-versions run)
    import tomli as tomllib

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def normalise(requirement: str) -> str:
    return re.sub(r"\s+", "", requirement).lower()


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {normalise(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict) and "pip" in d)
    listed = {normalise(r) for r in pip_section if not r.startswith("-e")}
    assert listed == declared
    assert any(r.startswith("-e") for r in pip_section), "environment.yml must install flowlib itself"
    pythons = [d for d in environment["dependencies"] if isinstance(d, str) and d.startswith("python")]
    assert pythons, "environment.yml must pin python"
    minimum = project["requires-python"].lstrip(">=")
    version = pythons[0].split("=")[-1]
    assert tuple(map(int, version.split("."))) >= tuple(map(int, minimum.split(".")))


# Each end of the claimed ranges is a CI run with its own pinned requirements.
def requirements(path: Path) -> dict[str, str]:
    """Package name (normalised) -> its requirement text, from a requirements file."""
    from packaging.requirements import Requirement

    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            requirement = Requirement(line)
            out[requirement.name.lower().replace("_", "-")] = requirement
    return out


def declared() -> dict:
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {Requirement(r).name.lower(): Requirement(r) for r in project["dependencies"]}


def pinned(requirement) -> str:
    (spec,) = requirement.specifier
    assert spec.operator == "==", f"{requirement} must be pinned"
    return spec.version


def minor(version: str) -> tuple[int, int]:
    return tuple(int(part) for part in version.split(".")[:2])


def lower_bound(requirement) -> str:
    return next(spec.version for spec in requirement.specifier if spec.operator == ">=")


def test_oldest_run_pins_the_lower_bounds():
    ranges, oldest = declared(), requirements(ROOT / "tests" / "oldest" / "requirements.txt")
    for name in (
        "tensorflow",
        "tensorflow-probability",
        "tf-keras",
        "numpy",
        "matplotlib",
        "tqdm",
        "ipywidgets",
    ):
        version = pinned(oldest[name])
        assert minor(version) == minor(lower_bound(ranges[name])), f"{name}: oldest run has {version}"
        assert version in ranges[name].specifier, f"{name} {version} is outside {ranges[name]}"


def test_newest_run_pins_the_top_of_the_ranges():
    """TensorFlow and tf-keras are capped just above the newest release CI runs."""
    ranges, newest = declared(), requirements(ROOT / "tests" / "newest" / "requirements.txt")
    for name in ("tensorflow", "tf-keras", "tensorflow-probability"):
        version = pinned(newest[name])
        assert version in ranges[name].specifier, f"{name} {version} is outside {ranges[name]}"
        cap = next(spec.version for spec in ranges[name].specifier if spec.operator == "<")
        major, top = minor(version)
        assert minor(cap) == (major, top + 1), f"{name}: capped at <{cap} but the newest run tests {version}"
    assert minor(pinned(newest["tf-keras"])) == minor(pinned(newest["tensorflow"]))


def test_colab_runtime_is_inside_the_claimed_ranges():
    """What Colab ships must satisfy pyproject.toml (Colab installs flowlib with --no-deps)."""
    ranges, colab = declared(), requirements(ROOT / "tests" / "colab" / "requirements.txt")
    for name in ("tensorflow", "tensorflow-probability", "tf-keras", "numpy", "matplotlib", "ipywidgets"):
        version = pinned(colab[name])
        assert version in ranges[name].specifier, f"Colab's {name} {version} is outside {ranges[name]}"
    assert minor(pinned(colab["tf-keras"])) == minor(pinned(colab["tensorflow"]))


def test_python_versions_agree():
    """pyproject.toml claims 3.10 to 3.13; the oldest run uses 3.10, Colab's and the newest 3.13."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    classified = sorted(
        c.rsplit(" ", 1)[1]
        for c in project["classifiers"]
        if c.startswith("Programming Language :: Python :: 3.")
    )
    assert classified == ["3.10", "3.11", "3.12", "3.13"]
    assert project["requires-python"] == ">=3.10"
    makefile = (ROOT / "Makefile").read_text()
    assert "OLDEST_PYTHON ?= $(call find_python,3.10)" in makefile
    assert "COLAB_PYTHON ?= $(call find_python,3.13)" in makefile
    assert "NEWEST_PYTHON ?= $(call find_python,3.13)" in makefile
    assert re.search(r"^PYTHON \?= \$\(call find_python,(3\.1[0-3] ?){4}\)$", makefile, re.M)


def test_license_metadata():
    """SPDX licence string (PEP 639) with a setuptools that reads it, and the files it names."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == "MIT"
    assert "setuptools>=77" in pyproject["build-system"]["requires"]
    for name in pyproject["project"]["license-files"]:
        assert (ROOT / name).is_file(), name
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert "Attribution 4.0 International" in (ROOT / "LICENSE-docs").read_text()
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["version"] == pyproject["project"]["version"]
    assert set(citation["license"]) == {"MIT", "CC-BY-4.0"}
    version = pyproject["project"]["version"]
    # a development version is the changelog's [Unreleased] section; a release has its own
    heading = "## [Unreleased]" if ".dev" in version else f"## [{version}]"
    assert heading in (ROOT / "CHANGELOG.md").read_text()


@pytest.mark.parametrize("run", ["oldest", "colab", "newest"])
def test_every_run_installs_every_core_dependency(run):
    """Each pinned run installs flowlib with --no-deps, so it must name every core dependency."""
    named = requirements(ROOT / "tests" / run / "requirements.txt")
    missing = sorted(name.replace("_", "-") for name in declared() if name.replace("_", "-") not in named)
    assert not missing, f"tests/{run}/requirements.txt lacks {missing}"
