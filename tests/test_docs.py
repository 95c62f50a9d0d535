"""Every relative link in the repository's Markdown resolves to a file inside the repository."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from gateway import __version__
from tests.conftest import REPO

LINK = re.compile(r"\]\(([^)\s]+)\)")
PAGES = sorted(
    [
        REPO / "README.md",
        REPO / "CONTRIBUTING.md",
        REPO / "CHANGELOG.md",
        *(REPO / "docs").glob("*.md"),
        *(REPO / "bench").glob("*.md"),
    ]
)


def relative_links(page: Path) -> list[str]:
    links = [m.group(1) for m in LINK.finditer(page.read_text())]
    return [link for link in links if not re.match(r"^(https?:|mailto:|#)", link)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve_inside_the_repository(page: Path) -> None:
    for link in relative_links(page):
        target = (page.parent / link.split("#", 1)[0]).resolve()
        assert target.is_relative_to(REPO), f"{page.name}: {link} points outside the repository"
        assert target.exists(), f"{page.name}: {link} does not exist"


def test_the_readme_links_the_architecture_and_every_docs_page() -> None:
    links = set(relative_links(REPO / "README.md"))
    assert {f"docs/{p.name}" for p in (REPO / "docs").glob("*.md")} <= links
    assert {"CONTRIBUTING.md", "CHANGELOG.md", "LICENSE"} <= links


def test_the_changelog_opens_with_unreleased_then_the_current_version() -> None:
    """Keep a Changelog: `[Unreleased]` first, then releases newest first, the newest `__version__`."""
    text = (REPO / "CHANGELOG.md").read_text()
    releases = re.findall(r"^## \[([^\]]+)\](?: - (\d{4}-\d{2}-\d{2}))?$", text, re.MULTILINE)
    assert releases[0] == ("Unreleased", ""), releases[:2]
    assert releases[1][0] == __version__, releases[1]
    dates = [date for _, date in releases[1:]]
    assert all(dates) and dates == sorted(dates, reverse=True), dates
    sections = set(re.findall(r"^### (.+)$", text, re.MULTILINE))
    assert sections <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}, sections


def _section(text: str, heading: str) -> str:
    """The part of a Markdown page under `heading` (a whole line), up to the next heading of its level."""
    level = heading.split(" ", 1)[0]
    assert f"\n{heading}\n" in text, f"no {heading!r}"
    return text.split(f"\n{heading}\n", 1)[1].split(f"\n{level} ", 1)[0]


def _cli_commands(*words: str) -> set[str]:
    """The subcommands `sip-webrtc-gateway [words] --help` lists, read from the real command's output."""
    result = subprocess.run(
        [sys.executable, "-m", "gateway", *words, "--help"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    listing = result.stdout.split("positional arguments:", 1)[1].split("options:", 1)[0]
    return set(re.findall(r"^    ([a-z][\w-]*)", listing, re.MULTILINE))


def test_the_readme_command_list_names_every_subcommand() -> None:
    """README's *Command line* block shows each subcommand `--help` lists (it lacked hash-secret, init,
    healthcheck), and no subcommand that is gone."""
    block = _section((REPO / "README.md").read_text(), "## Command line").split("```sh\n", 1)[1]
    block = block.split("```", 1)[0]
    shown = set(re.findall(r"^sip-webrtc-gateway ([a-z][\w-]*)", block, re.MULTILINE))
    commands = _cli_commands()
    assert {"run", "check", "init", "hash-secret", "healthcheck", "sdp", "dev-cert"} <= commands, commands
    assert shown == commands, f"listed by --help, not in the README: {sorted(commands - shown)}; " + (
        f"in the README, not a command: {sorted(shown - commands)}"
    )
    sdp_shown = set(re.findall(r"^sip-webrtc-gateway sdp ([a-z][\w-]*)", block, re.MULTILINE))
    assert sdp_shown == _cli_commands("sdp"), sdp_shown


WHICH_ONE = "## Which one do I use"
DIALECT_ROUTES = ("`/`", "`/sip`", "`/ws`", "`/webrtc/offer`", "`/jsonrpc`", "`/whip/", "`/webrtc/signaling/")


@pytest.mark.parametrize("page", ["README.md", "docs/signaling.md"])
def test_the_which_one_table_names_every_dialect_and_examples_that_exist(page: str) -> None:
    rows = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in _section((REPO / page).read_text(), WHICH_ONE).splitlines()
        if line.startswith("|")
    ][2:]
    assert len(rows) == len(DIALECT_ROUTES), rows
    for route, row in zip(DIALECT_ROUTES, rows, strict=True):
        assert len(row) == 4 and all(row), f"{page}: a row with an empty cell: {row}"
        assert route in row[1], f"{page}: {route} not in the row {row[1]!r}"
    named = re.findall(r"`(examples/[^`]+)`", _section((REPO / page).read_text(), WHICH_ONE))
    assert len(named) >= len(DIALECT_ROUTES), named
    missing = [name for name in named if not (REPO / name).is_file()]
    assert not missing, f"{page} names examples that do not exist: {missing}"


def test_the_two_which_one_tables_start_from_the_same_examples() -> None:
    def examples(page: str) -> list[str]:
        return re.findall(r"`(examples/[^`]+)`", _section((REPO / page).read_text(), WHICH_ONE))

    assert examples("README.md") == examples("docs/signaling.md")


def test_the_readme_quotes_the_page_in_its_own_words() -> None:
    """What the README says the softphone page shows is text the page's script has (it said *Busy* and
    *No such number* where the page says "The line is busy." and "That number does not exist.")."""
    readme = " ".join((REPO / "README.md").read_text().split())
    quoted = re.findall(r"the page shows \*([^*]+)\*", readme)
    assert len(quoted) >= 2, quoted
    script = (REPO / "gateway" / "static" / "softphone.js").read_text()
    for text in quoted:
        words = re.sub(r" \(SIP \d{3}\)$", "", text)
        assert f'"{words}"' in script, (
            f"the README quotes the page as {text!r}; softphone.js has no {words!r}"
        )


def test_the_changelog_names_no_internal_issue_numbers() -> None:
    """The project has no public issue tracker, so "issue 34" tells a reader of CHANGELOG.md nothing:
    an entry says what changed, in its own words."""
    text = (REPO / "CHANGELOG.md").read_text()
    found = re.findall(r"^.*\bissues? \d+.*$", text, re.MULTILINE)
    assert not found, "issue numbers in CHANGELOG.md:\n" + "\n".join(found[:10])


def test_each_changelog_release_has_one_section_per_kind() -> None:
    """Keep a Changelog: a release's changes under one heading per kind (Added, Changed, Fixed, ...), in
    that order of first appearance; [Unreleased] once had three "Fixed" headings."""
    text = (REPO / "CHANGELOG.md").read_text()
    for release in re.split(r"^## ", text, flags=re.MULTILINE)[1:]:
        kinds = re.findall(r"^### (.+)$", release, re.MULTILINE)
        repeated = sorted({kind for kind in kinds if kinds.count(kind) > 1})
        assert not repeated, f"{release.splitlines()[0]}: {repeated} more than once"


def _anchors(text: str) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as hyphens, a
    repeated one numbered (`-1`, `-2`...)."""
    seen: dict[str, int] = {}
    body = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    for heading in re.findall(r"^#{1,6} (.+)$", body, re.MULTILINE):
        anchor = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
    return {f"{a}-{n}" if n else a for a, total in seen.items() for n in range(total)}


def test_the_benchmark_log_opens_with_the_current_figures_each_linked_to_its_run() -> None:
    """bench/RESULTS.md is a long log, newest first per benchmark: its top table gives the latest figure of
    each kind with the run's date and load, and links to that run's section, which must exist."""
    text = (REPO / "bench" / "RESULTS.md").read_text()
    assert text.split("\n## ", 1)[1].startswith("Current figures\n"), "the first section is not the summary"
    rows = [line for line in _section(text, "## Current figures").splitlines() if line.startswith("|")][2:]
    assert len(rows) >= 10, rows
    anchors = _anchors(text)
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert len(cells) == 4 and all(cells), row
        links = re.findall(r"\]\(#([^)]+)\)", cells[2])
        assert len(links) == 1 and re.search(r"20\d\d-\d\d-\d\d", cells[2]), f"no dated link: {cells[2]}"
        assert links[0] in anchors, f"{links[0]} is no heading of bench/RESULTS.md"
