"""The conda environment and the pip project describe the same dependencies."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _normalise(requirement: str) -> str:
    name_and_spec = re.sub(r"\s+", "", requirement)
    match = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?(.*)$", name_and_spec)
    assert match, requirement
    name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
    return f"{name}{match.group(2) or ''}{match.group(3)}"


def _pyproject_requirements() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    return {_normalise(r) for r in requirements}


def _conda_pip_requirements() -> set[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_block = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return {_normalise(r) for r in pip_block if not r.startswith("-e")}


def test_environment_yml_matches_pyproject():
    assert _conda_pip_requirements() == _pyproject_requirements()


def test_torch_is_pinned_exactly():
    for requirements in (_pyproject_requirements(), _conda_pip_requirements()):
        torch = [r for r in requirements if re.match(r"^torch\b(?!metrics)", r)]
        assert torch == ["torch==2.13.0"]


def test_nothing_depends_on_torchvision():
    for requirements in (_pyproject_requirements(), _conda_pip_requirements()):
        assert not any(r.startswith(("torchvision", "lightly")) for r in requirements)


def test_conda_python_matches_requires_python():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "python=3.11" in env["dependencies"]
    assert project["requires-python"].startswith(">=3.11")
