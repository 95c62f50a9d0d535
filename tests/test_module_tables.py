"""The docs' module tables are complete: every module of gateway/, sdp/ and sipcore/ has a row, and every
module a row names exists.

A module table is a Markdown table in docs/*.md whose header's first cell names the package it lists,
`| module (gateway/runtime/) | holds |`; its first column holds the modules, backquoted, relative to that
package (`driver.py`, or `fastlane/engine.py` in a sub-package), several to a row where they go
together. A package's `__init__.py` that only re-exports (a docstring, imports, `__all__`) needs no row.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Final

import pytest

from tests.conftest import REPO

ROOTS: Final = ("gateway", "sdp", "sipcore")
HEADER: Final = re.compile(r"^\|\s*module \(`?([\w/]+?)/?`?\)\s*\|")
NAMED: Final = re.compile(r"`([\w/]+\.(?:py|c|h))`")


def module_tables() -> dict[str, list[tuple[str, str]]]:
    """Each file a module table names (repository-relative), with where: (page, package)."""
    named: dict[str, list[tuple[str, str]]] = {}
    for page in sorted((REPO / "docs").glob("*.md")):
        package = None
        for line in page.read_text(encoding="utf-8").splitlines():
            header = HEADER.match(line)
            if header:
                package = header.group(1)
            elif package is not None and line.startswith("|"):
                first = line.split("|")[1]
                for name in NAMED.findall(first):
                    named.setdefault(f"{package}/{name}", []).append((page.name, package))
            elif not line.startswith("|"):
                package = None
    return named


def only_reexports(path: Path) -> bool:
    """Whether a module holds nothing but a docstring, imports and dunder names (`__all__`)."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if all(isinstance(t, ast.Name) and t.id.startswith("__") for t in targets):
                continue
        return False
    return True


def project_modules() -> list[str]:
    """Every Python module of the project's packages that needs a row (repository-relative)."""
    found = []
    for root in ROOTS:
        for path in sorted((REPO / root).rglob("*.py")):
            if path.name == "__init__.py" and only_reexports(path):
                continue
            found.append(path.relative_to(REPO).as_posix())
    return found


def table_for(module: str, packages: set[str]) -> str:
    """The package table a module's row belongs in: its own package's, else the nearest enclosing one."""
    folder = module.rsplit("/", 1)[0]
    while folder and folder not in packages:
        folder = folder.rsplit("/", 1)[0] if "/" in folder else ""
    return folder


def test_every_module_has_a_row_in_a_docs_table() -> None:
    named = module_tables()
    tables = {package: page for places in named.values() for page, package in places}
    missing = [module for module in project_modules() if module not in named]
    lines = []
    for module in missing:
        package = table_for(module, set(tables))
        where = f"docs/{tables[package]}, table `module ({package}/)`" if package else "no table yet"
        lines.append(f"  {module}  ->  {where}")
    if missing:
        pytest.fail("modules with no row in a docs module table:\n" + "\n".join(lines), pytrace=False)


def test_every_module_a_table_names_exists() -> None:
    stale = [
        f"  {name}  (docs/{page}, table `module ({package}/)`)"
        for name, places in sorted(module_tables().items())
        for page, package in places
        if not (REPO / name).is_file()
    ]
    if stale:
        pytest.fail("docs module tables name files that do not exist:\n" + "\n".join(stale), pytrace=False)


def test_each_module_has_one_row() -> None:
    twice = {name: places for name, places in module_tables().items() if len(places) > 1}
    assert not twice, f"modules with more than one row: {twice}"


def test_the_tables_are_read() -> None:
    """The reader finds the tables (the checks above can fail)."""
    named = module_tables()
    assert "gateway/runtime/driver.py" in named and "gateway/calls/machine.py" in named
    assert "gateway/calls/__init__.py" not in project_modules()


def test_every_package_has_a_row_in_the_architecture_table() -> None:
    """docs/architecture.md's package table names every package of gateway/ (issue 39: websip, cluster
    and ops were missing) and the pure cores, and nothing that is gone."""
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = text[text.index("| package | owns | may import |") :].split("\n\n", 1)[0]
    named = set(re.findall(r"^\| `([\w/]+/)` \|", table, flags=re.M))
    packages = {
        f"gateway/{p.name}/" for p in (REPO / "gateway").iterdir() if p.is_dir() and p.name != "__pycache__"
    }
    expected = packages | {"sdp/", "sipcore/", "peers/"}
    assert expected - named == set(), f"packages without a row: {sorted(expected - named)}"
    assert named - expected == set(), f"rows naming no package: {sorted(named - expected)}"
