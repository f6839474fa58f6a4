"""environment.yml must follow pyproject.toml (the source of truth)."""

from __future__ import annotations

import re
import tomllib

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

# conda names that differ from the PyPI names in pyproject
CONDA_TO_PYPI = {"pytorch": "torch", "pyside6": "pyside6-essentials"}
CONDA_ONLY = {"python", "pip"}


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[; ]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject_requirements() -> dict[str, str]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = list(data["dependencies"])
    for extra, items in data["optional-dependencies"].items():
        if extra not in ("test", "all"):
            reqs += items
    return {_name(r): r for r in reqs}


def _conda_requirements() -> tuple[dict[str, str], list[str]]:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    conda, pip = {}, []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip += dep.get("pip", [])
        else:
            name = _name(dep)
            if name not in CONDA_ONLY:
                conda[CONDA_TO_PYPI.get(name, name)] = dep
    return conda, pip


def _bounds(req: str) -> set[str]:
    return {b.replace(" ", "") for b in re.findall(r"(?:>=|<=|<|>|==|!=)\s*[\w.*]+", req)
            if not b.startswith("!=")}


def test_pip_section_installs_the_project():
    _, pip = _conda_requirements()
    assert any(re.fullmatch(r"-e \.(\[[\w,]+\])?", p) for p in pip), pip


def test_every_runtime_dependency_is_in_environment_yml_with_the_same_bounds():
    py = _pyproject_requirements()
    conda, _ = _conda_requirements()
    missing = sorted(set(py) - set(conda))
    extra = sorted(set(conda) - set(py))
    assert not missing, f"in pyproject.toml but not environment.yml: {missing}"
    assert not extra, f"in environment.yml but not pyproject.toml: {extra}"
    for name, req in py.items():
        assert _bounds(req) == _bounds(conda[name]), (name, req, conda[name])
