"""Private internals of aiortc, aioice, pylibsrtp and PyAV are touched only by the modules in `ALLOWED`.

These libraries give the media code no public way to do some of what it needs (the web leg's direct
RTP paths, its RTCP, its DTLS state, the ICE check list, consent; libsrtp sessions for the fast lane):
it reaches into their private names (a leading underscore: `transport._role`,
`getattr(ice, "_connection")`, replacing `RTCRtpSender._run_rtcp`, `"_RTCRtpReceiver__lsr_time"`,
`from pylibsrtp._binding import lib`). Those uses stay in the few modules named here, each with what
it touches; pyproject pins the libraries to the versions checked, and the media tests
(tests/media/webrtc/test_aiortc_hooks.py, test_native_hooks.py...) fail when an upgrade changes what they rely
on. docs/architecture.md ("Private internals and the tests that guard them") names the same modules.

The scan reads the source (AST, nothing imported). A library's private name is any name with one
leading underscore that its own source defines or assigns (functions, classes, attributes, module
globals), and `_Class__name` for its name-mangled ones. In a module of gateway/, sdp/ or sipcore/, these
count as touching one:
- `from aiortc... import _x`, or a module path with a private part (`pylibsrtp._binding`);
- `obj._x` or `getattr/setattr/hasattr/delattr(obj, "_x")` on anything but `self`/`cls`, where `_x` is
  such a name and neither the module itself nor a project module it imports defines it (the project's
  own privates, `__slots__`);
- a string naming a mangled private of one of their classes (`"_RTCDtlsTransport__tx_bytes"`).
asyncio's private internals (native_hooks, slim_waiters) are not scanned.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Final

import pytest

from tests.conftest import REPO

# the scan parses the installed libraries and the whole tree (18 CPU-s): `make test` runs it, with the
# lint; `make test-fast` leaves it out
pytestmark = pytest.mark.static

FOREIGN: Final = ("aiortc", "aioice", "pylibsrtp", "av")

# The modules allowed to touch those libraries' private internals, and what each touches.
ALLOWED: Final = {
    "gateway.media.webrtc.aiortc_hooks": "codecs, receivers' and senders' packet paths, keyframes, the peer "
    "connection's DTLS and ICE transports, SRTP sessions, consent",
    "gateway.media.webrtc.aiortc_direct": "the web leg's direct RTP paths: receiver, sender, statistics, "
    "SRTP sessions, aioice's nominated pair",
    "gateway.media.webrtc.aiortc_receive": "the web leg's direct receive path: the receiver's jitter "
    "buffer, SRTP session and RTCP counters",
    "gateway.media.webrtc.ice_consent": "aioice's consent checks and their expiry (RFC 7675)",
    "gateway.media.webrtc.aiortc_rtcp": "the web leg's RTCP: the sender's and receiver's RTCP loops and counters",
    "gateway.media.webrtc.aiortc_dtls": "the DTLS transport's state, role, SSL object and SRTP sessions",
    "gateway.media.webrtc.aiortc_srtp": "the DTLS transport's _setup_srtp and its module's Policy (no repeated index)",
    "gateway.media.webrtc.ice_completion": "aioice's check list and candidates (end-of-candidates, early checks)",
    "gateway.media.webrtc.ice_restart": "aioice's credentials, check list and nomination (ICE restart in place)",
    "gateway.media.slim_waiters": "aioice's connection and protocols, the receiver's track",
    "gateway.media.webrtc.webrtc_leg": "the DTLS transport's role (our answer's setup attribute)",
    "gateway.media.webrtc.ahead.web_answer": "the transceiver's codec preferences, the sender's SSRC and msid, the "
    "peer connection's CNAME, aiortc's negotiation helpers (our answer written before aiortc's)",
    "gateway.media.webrtc.ahead.web_offer": "the transceiver's codec preferences, the sender's SSRC and msid, the "
    "peer connection's CNAME, configuration and SCTP syntax (our offer written before aiortc's)",
    "gateway.media.native_hooks": "pylibsrtp's binding and sessions' pointers, PyAV's encoder call "
    "(and asyncio's selector loop)",
}

ROOTS: Final = ("gateway", "sdp", "sipcore")
_ACCESSORS: Final = frozenset({"getattr", "setattr", "hasattr", "delattr"})


def _private(name: str) -> bool:
    return name.startswith("_") and not name.endswith("__") and len(name) > 1


def modules() -> dict[str, Path]:
    """Every module of the project's packages, by dotted name."""
    found: dict[str, Path] = {}
    for root in ROOTS:
        for path in sorted((REPO / root).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _defined_names(tree: ast.AST) -> Iterator[str]:
    """Names a module defines or assigns (at any depth), and the mangled forms of its classes'."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield node.name
            if isinstance(node, ast.ClassDef):
                for inner in ast.walk(node):
                    name = getattr(inner, "attr", None) or getattr(inner, "name", None)
                    if isinstance(name, str) and name.startswith("__") and not name.endswith("__"):
                        yield f"_{node.name.lstrip('_')}{name}"
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            yield node.attr
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            yield node.id
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__slots__" for t in node.targets
        ):
            for item in ast.walk(node.value):
                if isinstance(item, ast.Constant) and isinstance(item.value, str):
                    yield item.value


@cache
def foreign_private() -> tuple[frozenset[str], frozenset[str]]:
    """(the FOREIGN libraries' private names, their classes' names)."""
    names: set[str] = set()
    classes: set[str] = set()
    for package in FOREIGN:
        spec = importlib.util.find_spec(package)
        assert spec is not None and spec.submodule_search_locations, f"{package} is not installed"
        for path in Path(next(iter(spec.submodule_search_locations))).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    classes.add(node.name.lstrip("_"))
                if isinstance(node, ast.Attribute) and _private(node.attr):
                    names.add(node.attr)
            names.update(name for name in _defined_names(tree) if _private(name))
    return frozenset(names), frozenset(classes)


@cache
def defined_by() -> dict[str, frozenset[str]]:
    """The names each module of the project defines (see `_defined_names`)."""
    return {
        name: frozenset(_defined_names(ast.parse(path.read_text(encoding="utf-8"))))
        for name, path in modules().items()
    }


def _imported_modules(tree: ast.AST) -> Iterator[str]:
    """The project modules a module imports (`from a.b import c`: `a.b` and `a.b.c`)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def own_names(module: str, tree: ast.AST) -> frozenset[str]:
    """The private names `module` may mean as the project's own: those it defines, or a module of the
    project it imports defines (outside the listed modules: a subclass there of an aiortc class
    defines aiortc's names)."""
    defined = defined_by()
    names = set(defined.get(module, ()))
    for imported in _imported_modules(tree):
        if imported in defined and imported not in ALLOWED:
            names.update(defined[imported])
    return frozenset(names)


def touches(path: Path, module: str = "") -> list[str]:
    """Each place in ``path`` (the module named ``module``) that touches a private internal of one of
    the FOREIGN libraries, as `line: what`."""
    private, classes = foreign_private()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    suspect = private - own_names(module, tree)
    mangled = re.compile(rf"_({'|'.join(sorted(classes))})__\w+")
    found: list[str] = []
    for node in ast.walk(tree):
        where = getattr(node, "lineno", 0)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in FOREIGN:
            bad = [a.name for a in node.names if _private(a.name)]
            if bad or any(_private(part) for part in node.module.split(".")):
                found.append(f"{where}: from {node.module} import {', '.join(a.name for a in node.names)}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] in FOREIGN and any(_private(part) for part in parts):
                    found.append(f"{where}: import {alias.name}")
        elif isinstance(node, ast.Attribute) and node.attr in suspect:
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                found.append(f"{where}: {ast.unparse(node)[:60]}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in _ACCESSORS
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value in suspect
        ):
            found.append(f"{where}: {node.func.id}(..., {node.args[1].value!r})")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and mangled.fullmatch(node.value):
            found.append(f"{where}: {node.value!r}")
    return found


def test_only_the_listed_modules_touch_private_internals() -> None:
    found = {
        name: places
        for name, path in modules().items()
        if name not in ALLOWED and (places := touches(path, name))
    }
    report = "\n".join(f"{name}: {'; '.join(places[:6])}" for name, places in sorted(found.items()))
    if found:
        pytest.fail(
            "private internals of aiortc/aioice/pylibsrtp/PyAV used outside the modules allowed to "
            f"(tests/test_private_internals.py ALLOWED, docs/architecture.md):\n{report}\n"
            "Use a hooks module's function, or add the module to ALLOWED and the docs with what it touches.",
            pytrace=False,
        )


def test_each_listed_module_exists_and_touches_them() -> None:
    """One test for all of ALLOWED (the scan parses the libraries once per process: 3-4 CPU-s, which
    parametrized tests paid again in each parallel worker they landed on)."""
    found = modules()
    missing = [module for module in sorted(ALLOWED) if module not in found]
    assert not missing, f"{missing} listed in ALLOWED but do not exist (moved? update ALLOWED and the docs)"
    idle = [module for module in sorted(ALLOWED) if not touches(found[module], module)]
    assert not idle, f"{idle} touch no private internal of those libraries any more: drop them from ALLOWED"


def test_the_docs_name_the_listed_modules() -> None:
    """docs/architecture.md's section names exactly these modules (by their last part: `aiortc_hooks`)."""
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Private internals and the tests that guard them", 1)[1].split("\n\n", 2)[1]
    named = set(re.findall(r"`(\w+)`", section))
    listed = {module.rsplit(".", 1)[1] for module in ALLOWED}
    assert named == listed, (
        f"the first paragraph of docs/architecture.md's private-internals section names {sorted(named)}; "
        f"ALLOWED lists {sorted(listed)}"
    )


def test_the_scan_sees_each_kind_of_use(tmp_path: Path) -> None:
    """A module doing each of these is reported (the check above can fail)."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from aioice.ice import _x\n"
        "role = transport._role\n"
        "connection = getattr(ice, '_connection')\n"
        "name = '_RTCDtlsTransport__tx_bytes'\n"
        "self_is_fine = self._role\n",
        encoding="utf-8",
    )
    assert [line.split(":")[0] for line in touches(sample)] == ["1", "2", "3", "4"]
