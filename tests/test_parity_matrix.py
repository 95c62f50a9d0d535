"""docs/signaling.md's parity matrix (issue 33 item 4) stays true: every dialect and feature the issue
names has a row and a column, every cell either names tests that exist or says why it is empty, and
every test the matrix names is there (a renamed or deleted test makes the matrix fail, not lie)."""

from __future__ import annotations

import re

from tests.conftest import REPO

DOC = REPO / "docs" / "signaling.md"
HEADING = "## One feature set in every dialect: the parity matrix"
DIALECTS = ("softphone page", "JsSIP", "SIP.js", "HTTP API", "JSON-RPC", "WHIP")
FEATURES = (
    "call out", "call in", "early media", "hold by the web user", "held by the SIP side",
    "DTMF to the SIP side", "DTMF from the SIP side", "blind transfer by the web user",
    "attended transfer by the web user", "transfer by the SIP side", "chat to the SIP side",
    "chat from the SIP side", "video", "quality while the call is up", "reconnect",
)  # fmt: skip
KEY = re.compile(r"\b[A-Z]\d+\b")


def _section() -> str:
    text = DOC.read_text()
    assert HEADING in text, f"{DOC} has no parity matrix"
    section = text.split(HEADING, 1)[1]
    return section.split("\n## ", 1)[0]


def _table() -> tuple[list[str], list[list[str]]]:
    rows = [line for line in _section().splitlines() if line.startswith("|")]
    split = [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]
    return split[0], split[2:]


def _tests() -> dict[str, str]:
    return dict(re.findall(r"^- \*\*([A-Z]\d+)\*\* `([^`]+)`", _section(), flags=re.M))


def test_every_dialect_and_feature_has_its_place() -> None:
    header, rows = _table()
    assert len(header) == 1 + len(DIALECTS), header
    for name, column in zip(DIALECTS, header[1:], strict=True):
        assert column.startswith(name), (name, column)
    for feature in FEATURES:
        assert any(row[0].startswith(feature) for row in rows), feature


def test_each_cell_names_tests_or_says_why_it_is_empty() -> None:
    _, rows = _table()
    tests = _tests()
    for row in rows:
        assert len(row) == 1 + len(DIALECTS), row
        for dialect, cell in zip(DIALECTS, row[1:], strict=True):
            where = f"{row[0]} / {dialect}"
            if cell.startswith("✓"):
                keys = KEY.findall(cell.split("(")[0])
                assert keys, f"{where}: a tick without a test"
                missing = [k for k in keys if k not in tests]
                assert not missing, f"{where}: {missing} not listed under the matrix"
            else:
                assert cell.startswith("—"), f"{where}: neither a tick nor a reason: {cell!r}"
                assert len(cell.lstrip("— ").split()) >= 4, f"{where}: an empty cell needs its reason"
    cited = {key for row in rows for cell in row[1:] for key in KEY.findall(cell)}
    assert set(tests) <= cited, f"tests listed but in no cell: {sorted(set(tests) - cited)}"


def test_every_test_the_matrix_names_exists() -> None:
    for key, ref in _tests().items():
        path, _, function = ref.partition("::")
        file = REPO / path
        assert file.is_file(), f"{key}: {path} does not exist"
        if function:
            function, _, param = function.partition("[")
            source = file.read_text()
            assert re.search(rf"^(async )?def {re.escape(function)}\(", source, re.M), (
                f"{key}: {path} has no test {function}"
            )
            param = param.rstrip("]")
            assert not param or f'"{param}"' in source, f"{key}: {path} has no case {param!r}"
        else:
            assert re.search(r"^(async )?def test_", file.read_text(), re.M), f"{key}: {path} has no test"
