"""Modules and folders stay small: a module of gateway/, sdp/ and sipcore/ past `LIMIT` lines is a warning
sign, past `HARD_LIMIT` a failure, and no folder of them holds more than `FOLDER_LIMIT` modules.

One protocol object per module, most under 400 lines (CONTRIBUTING.md, "House style"). Modules are cut
by concept, not by a line count: a module a few lines past 600 (a log message that grew, a setting
documented) is named in a warning, to be looked at for a second idea, and never split or squeezed just
to land under the number. Past `HARD_LIMIT` it certainly holds more than one idea: the test fails. The
exceptions are named here with their reason: `DECLARATIVE` (tables of values, which grow with what they
describe and hold no logic), and `TO_SPLIT` (a module waiting for its split, with the reason it is not
done yet).

A folder shows one idea: past about 20 modules it gets sub-packages named after the architecture (issue
31, "A layout that shows the architecture"). `__init__.py` is not counted; it holds the package's
docstring, not one of its modules.
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Final

import pytest

from tests.conftest import REPO

LIMIT: Final = 600  # a warning sign: look for a second idea
HARD_LIMIT: Final = 800  # a failure: more than one idea
FOLDER_LIMIT: Final = 22
ROOTS: Final = ("gateway", "sdp", "sipcore")

# Declarative modules: frozen dataclasses whose only code is `__post_init__` validation (checked below).
DECLARATIVE: Final = {
    "gateway/calls/boundary/commands.py": "the call machine's commands: ~58 frozen dataclasses, one per command",
    "gateway/calls/boundary/events.py": "the call machine's events: ~50 frozen dataclasses, one per event",
}

# Over the limit and not declarative, with no branch of issue 31 splitting them yet.
TO_SPLIT: Final[dict[str, str]] = {}


def lengths() -> dict[str, int]:
    """Each module's number of lines, by repository-relative path."""
    return {
        path.relative_to(REPO).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for root in ROOTS
        for path in sorted((REPO / root).rglob("*.py"))
    }


def modules_per_folder(root: Path) -> dict[Path, int]:
    """Each folder under `root` (itself included) holding Python modules, with how many, `__init__.py` aside."""
    counts: dict[Path, int] = {}
    for path in root.rglob("*.py"):
        if path.name != "__init__.py":
            counts[path.parent] = counts.get(path.parent, 0) + 1
    return counts


def folders_over(roots: Iterable[Path], limit: int) -> dict[str, int]:
    """The folders under `roots` holding more than `limit` modules, by path relative to the roots' parent."""
    return {
        folder.relative_to(root.parent).as_posix(): n
        for root in roots
        for folder, n in modules_per_folder(root).items()
        if n > limit
    }


def test_folders_hold_at_most_the_folder_limit() -> None:
    over = folders_over((REPO / root for root in ROOTS), FOLDER_LIMIT)
    if over:
        listed = "\n".join(
            f"  {folder}/: {n} modules" for folder, n in sorted(over.items(), key=lambda kv: -kv[1])
        )
        pytest.fail(
            f"folders over {FOLDER_LIMIT} modules (split them into sub-packages named after the "
            f"architecture, each with a docstring saying what it owns):\n{listed}",
            pytrace=False,
        )


@pytest.mark.parametrize(("modules", "over"), [(FOLDER_LIMIT, False), (FOLDER_LIMIT + 1, True)])
def test_the_folder_count_catches_a_folder_past_the_limit(tmp_path: Path, modules: int, over: bool) -> None:
    """The count sees a folder one module past the limit, in a sub-package, and leaves `__init__.py` out."""
    package = tmp_path / "gateway" / "media" / "rtp"
    package.mkdir(parents=True)
    for folder in (tmp_path / "gateway", tmp_path / "gateway" / "media", package):
        (folder / "__init__.py").write_text('"""A package."""\n', encoding="utf-8")
    for i in range(modules):
        (package / f"module_{i}.py").write_text("", encoding="utf-8")
    (package / "notes.txt").write_text("not a module\n", encoding="utf-8")

    found = folders_over([tmp_path / "gateway"], FOLDER_LIMIT)

    assert found == ({"gateway/media/rtp": modules} if over else {})
    assert modules_per_folder(tmp_path / "gateway")[package] == modules


def modules_over(sizes: dict[str, int], limit: int) -> str:
    """The modules of ``sizes`` past ``limit`` lines that are not listed exceptions, one per line."""
    allowed = DECLARATIVE.keys() | TO_SPLIT.keys()
    over = {path: n for path, n in sizes.items() if n > limit and path not in allowed}
    return "\n".join(f"  {path}: {n} lines" for path, n in sorted(over.items(), key=lambda kv: -kv[1]))


def test_modules_are_at_most_the_limit() -> None:
    sizes = lengths()
    warned = modules_over(sizes, LIMIT)
    if warned:
        warnings.warn(
            f"modules over {LIMIT} lines (look for a second concept to cut out; do not squeeze):\n{warned}",
            stacklevel=1,
        )
    failed = modules_over(sizes, HARD_LIMIT)
    if failed:
        pytest.fail(
            f"modules over {HARD_LIMIT} lines (split them by concern, or list a declarative one in "
            f"tests/test_module_size.py with its reason):\n{failed}",
            pytrace=False,
        )


def test_the_hard_limit_catches_a_module_past_it() -> None:
    assert modules_over({"gateway/x.py": HARD_LIMIT + 1, "gateway/y.py": HARD_LIMIT}, HARD_LIMIT) == (
        f"  gateway/x.py: {HARD_LIMIT + 1} lines"
    )


@pytest.mark.parametrize("path", sorted(DECLARATIVE.keys() | TO_SPLIT.keys()), ids=lambda p: p)
def test_an_exception_is_still_needed(path: str) -> None:
    """A listed module exists and is still over the limit; else its entry goes."""
    n = lengths().get(path)
    assert n is not None, f"{path} is listed as an exception to the size limit but does not exist: drop it"
    assert n > LIMIT, f"{path} has {n} lines, within the limit: drop it from the exceptions"


@pytest.mark.parametrize("path", sorted(DECLARATIVE), ids=lambda p: p)
def test_a_declarative_module_holds_no_logic(path: str) -> None:
    """Only classes (frozen dataclasses) and constants; the one method they may have is `__post_init__`."""
    tree = ast.parse((REPO / path).read_text(encoding="utf-8"))
    code = [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    for cls in (node for node in tree.body if isinstance(node, ast.ClassDef)):
        code += [
            f"{cls.name}.{item.name}"
            for item in cls.body
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name != "__post_init__"
        ]
    assert not code, f"{path} is listed as declarative but holds functions: {code}"
