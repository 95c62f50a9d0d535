"""Every relative link in the repository's Markdown resolves to a file inside the repository."""

from __future__ import annotations

import re
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
