"""Every folder the distributions ship is declared (issue 39: installing the test peers printed a
setuptools "Package would be ignored" banner for each undeclared data folder, peers/kamailio and
peers/scenarios); the gateway's own folders are packages, found by packages.find."""

from __future__ import annotations

import subprocess
import tomllib

from tests.conftest import REPO

NOT_SHIPPED = {"js-softphones"}  # built and run by the browser tests from the checkout, not installed


def test_every_folder_of_the_peers_is_a_declared_package() -> None:
    project = tomllib.loads((REPO / "peers" / "pyproject.toml").read_text(encoding="utf-8"))
    declared = set(project["tool"]["setuptools"]["packages"])
    tracked = subprocess.run(
        ["git", "ls-files", "peers"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    folders = {path.split("/")[1] for path in tracked if path.count("/") >= 2} - NOT_SHIPPED
    assert {f"peers.{folder}" for folder in folders} <= declared, sorted(folders)


def test_the_gateways_data_folders_are_found_as_packages() -> None:
    """packages.find takes namespace packages: a folder without __init__.py (gateway/static) is found
    under `gateway*` and so never makes a banner; a new top-level tree must be added to `include`."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    include = project["tool"]["setuptools"]["packages"]["find"]["include"]
    # peers: a distribution of its own (above); tests: never installed
    tops = {p.name for p in REPO.iterdir() if (p / "__init__.py").exists()} - {"peers", "tests"}
    assert {f"{top}*" for top in tops} <= set(include), (tops, include)
