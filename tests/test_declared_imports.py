"""Every third-party package the code imports is declared in pyproject.toml, in the core
dependencies or in the extra of the layer that imports it."""

from __future__ import annotations

import ast
import functools
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "workbench"

#: Extras each layer may use at module level besides the core (DESIGN.md, "the house").
#: Imports inside functions (lazy) may come from any declared extra.
LAYER_EXTRAS = {
    "data": set(),
    "models": {"torch"},
    "tools": {"torch", "distributed", "layout"},
    "dashboards": {"dashboards"},
    "napari": {"napari"},
}

#: Imports that are optional on purpose: the code catches their absence and says so.
OPTIONAL = {"imagecodecs"}

#: Imports that are allowed to be undeclared for now (none: tornado and qtpy, which once
#: came only through bokeh and napari, are declared in their extras).
PENDING: dict[str, str] = {}


@functools.cache
def _distributions() -> dict[str, list[str]]:
    return packages_distributions()


def normalize(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(req: str) -> str:
    return normalize(re.split(r"[\s\[<>=!~;(]", req.strip(), maxsplit=1)[0])


def declared(pyproject: Path) -> dict[str, set[str]]:
    """``{"core": {...}, extra: {...}}`` of normalised distribution names; an extra that
    names ``project[other]`` includes the other extras."""
    project = tomllib.loads(pyproject.read_text())["project"]
    me = normalize(project["name"])
    raw = {"core": list(project.get("dependencies", []))}
    raw.update(project.get("optional-dependencies", {}))

    def expand(extra: str, seen: set[str]) -> set[str]:
        out = set()
        for req in raw.get(extra, []):
            name = _requirement_name(req)
            if name == me:
                inner = re.search(r"\[(.*?)\]", req)
                for sub in (inner.group(1).split(",") if inner else []):
                    if sub.strip() not in seen:
                        out |= expand(sub.strip(), seen | {sub.strip()})
            else:
                out.add(name)
        return out

    return {extra: expand(extra, {extra}) for extra in raw}


def imports(package: Path) -> list[tuple[str, str, bool]]:
    """(relative file, top-level module, at module level?) for every absolute import."""
    out = []
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        top = {id(n) for n in tree.body}
        top |= {id(n) for stmt in tree.body if isinstance(stmt, (ast.If, ast.Try))
                for n in ast.walk(stmt)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            rel = str(path.relative_to(package.parent))
            for name in names:
                out.append((rel, name.split(".")[0], id(node) in top))
    return out


def undeclared(package: Path, pyproject: Path, pending=()) -> list[str]:
    """Problems: third-party imports without a declaration (or outside their layer's
    extras at module level), as readable lines."""
    decl = declared(pyproject)
    anywhere = set().union(*decl.values())
    dists = _distributions()
    own = package.name
    problems = []
    for rel, mod, module_level in imports(package):
        if mod in sys.stdlib_module_names or mod == own or mod == "__future__" \
                or mod in OPTIONAL or mod in pending:
            continue
        names = {normalize(d) for d in dists.get(mod, [])}
        if not names:
            problems.append(f"{rel}: imports {mod!r}, which no installed distribution "
                            f"provides (install it and declare it in pyproject.toml)")
            continue
        if not names & anywhere:
            problems.append(f"{rel}: imports {mod!r} ({', '.join(sorted(names))}), declared "
                            f"nowhere in pyproject.toml")
            continue
        layer = Path(rel).parts[1] if len(Path(rel).parts) > 2 else None
        if module_level and layer in LAYER_EXTRAS:
            allowed = decl["core"].union(*(decl.get(e, set()) for e in LAYER_EXTRAS[layer]))
            if not names & allowed:
                problems.append(f"{rel}: imports {mod!r} at module level, but it is not in "
                                f"the core or the extras {sorted(LAYER_EXTRAS[layer])} of "
                                f"the {layer}/ layer")
    return sorted(set(problems))


def test_every_import_is_declared():
    problems = undeclared(PACKAGE, REPO / "pyproject.toml", pending=set(PENDING))
    assert not problems, "\n".join(problems)


def test_the_server_and_qt_imports_are_declared_in_their_extras():
    decl = declared(REPO / "pyproject.toml")
    assert "tornado" in decl["dashboards"] and "qtpy" in decl["napari"]


def test_every_declared_runtime_dependency_is_used():
    """A core dependency nothing imports is dead weight (pyyaml was one)."""
    decl = declared(REPO / "pyproject.toml")
    dists = _distributions()
    used = {normalize(d) for _, mod, _ in imports(PACKAGE) for d in dists.get(mod, [])}
    # pillow and pyarrow are loaded by tifffile and pandas for us, not imported by name
    indirect = {"pillow", "pyarrow", "dask"}
    unused = sorted(decl["core"] - used - indirect)
    assert not unused, f"core dependencies never imported: {unused}"


def _fake_project(tmp_path: Path, source: str, deps: list[str]) -> tuple[Path, Path]:
    pkg = tmp_path / "fakepkg"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "data" / "__init__.py").write_text(source)
    pyproject = tmp_path / "pyproject.toml"
    quoted = ", ".join(f'"{d}"' for d in deps)
    pyproject.write_text(f'[project]\nname = "fakepkg"\nversion = "0"\ndependencies = '
                         f'[{quoted}]\n[project.optional-dependencies]\n'
                         f'dashboards = ["networkx>=3"]\nall = ["fakepkg[dashboards]"]\n')
    return pkg, pyproject


def test_the_check_catches_an_undeclared_import(tmp_path):
    pytest.importorskip("networkx")
    pkg, pyproject = _fake_project(tmp_path, "import numpy\nimport networkx\n", ["numpy"])
    problems = undeclared(pkg, pyproject)
    assert len(problems) == 1 and "networkx" in problems[0] and "data/" in problems[0]
    # lazily imported inside a function, an extra is enough
    pkg, pyproject = _fake_project(tmp_path / "b", "def f():\n    import networkx\n", [])
    assert undeclared(pkg, pyproject) == []
    # not declared anywhere: caught even when lazy
    pkg, pyproject = _fake_project(tmp_path / "c", "def f():\n    import yaml\n", [])
    if "yaml" in _distributions():
        assert any("declared nowhere" in p for p in undeclared(pkg, pyproject))


def test_extras_expand_self_references(tmp_path):
    _, pyproject = _fake_project(tmp_path, "", ["numpy>=2"])
    decl = declared(pyproject)
    assert decl["core"] == {"numpy"} and decl["all"] == {"networkx"}
