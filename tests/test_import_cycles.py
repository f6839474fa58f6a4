"""No two modules of the package import each other.

A pair of modules that import each other (even through an import inside a function) has no
clear lower layer: which one loads first depends on who imports it, and a change to either
can turn a working import into a partially initialised module. The scan reads every module's
imports with :mod:`ast` (module level and inside functions; ``if TYPE_CHECKING:`` blocks are
left out, since they never run) and resolves relative imports and ``from package import
module``. A package and its own submodules (``__init__`` re-exports) are not counted.
"""

from __future__ import annotations

import ast
from pathlib import Path

import workbench

PACKAGE = Path(workbench.__file__).parent


def _modules(root: Path = PACKAGE) -> dict[str, Path]:
    mods = {}
    for path in root.rglob("*.py"):
        parts = ["workbench", *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _resolve(name: str, mods) -> str | None:
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def _strip_type_checking(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = getattr(test, "id", None) or getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                node.body = []


def imports_of(module: str, path: Path, mods) -> set[str]:
    """The package's modules that ``module`` imports anywhere in its source."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    _strip_type_checking(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "workbench":
                    found.add(_resolve(alias.name, mods))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "workbench":
                continue
            for alias in node.names:
                full = f"{target}.{alias.name}"
                found.add(full if full in mods else _resolve(target, mods))
    found.discard(None)
    found.discard(module)
    return found


def mutual_imports(mods) -> list[tuple[str, str]]:
    edges = {m: imports_of(m, p, mods) for m, p in mods.items()}
    pairs = {tuple(sorted((a, b))) for a, deps in edges.items() for b in deps
             if a in edges.get(b, ())}
    return sorted((a, b) for a, b in pairs
                  if not (b.startswith(a + ".") or a.startswith(b + ".")))


def test_the_scan_sees_a_mutual_import(tmp_path):
    """The scan itself: two modules that import each other inside functions are found,
    a TYPE_CHECKING-only import is not."""
    pkg = tmp_path / "workbench"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "a.py").write_text("def f():\n    from workbench.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def g():\n    from .a import f\n")
    (pkg / "sub" / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from workbench.sub.a import f\n")
    (pkg / "sub" / "d.py").write_text("from workbench.sub.c import x\n")
    mods = _modules(pkg)
    assert mutual_imports(mods) == [("workbench.sub.a", "workbench.sub.b")]
    assert imports_of("workbench.sub.c", mods["workbench.sub.c"], mods) == set()


def test_no_two_modules_import_each_other():
    pairs = mutual_imports(_modules())
    assert not pairs, ("these modules import each other; move what both need into a lower "
                       "module: " + "; ".join(f"{a} <-> {b}" for a, b in pairs))
