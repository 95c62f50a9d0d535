"""The packages (issue 36 item 9): `python -m build` makes an sdist that holds the fast lane's C sources
and, from that sdist, a wheel that holds the compiled fast lane, the static files and the sample config.
The wheel installs with pip into a fresh virtualenv, which sees nothing of this checkout, and its
`sip-webrtc-gateway` writes and checks a config (the fast lane on), serves /healthz and the page, passes
the container's health check and stops on SIGTERM.

One test: each step needs the one before. It takes about a minute (the build compiles the fast lane, pip
fetches the dependencies from the package registry); without a registry it is skipped on a developer's
machine and fails under CI=true, as a missing peer does (peers/binaries.py)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

from peers.binaries import unavailable
from peers.ports import free_port
from tests.conftest import REPO

# pytest's default is 480 s; a build and an install from the registry on a loaded machine get more.
pytestmark = pytest.mark.timeout(600)

FASTLANE = "gateway/media/fastlane"
# What pip prints when it cannot reach the registry (or the registry lacks a release it needs).
REGISTRY_TROUBLE = (
    "Could not find a version that satisfies",
    "No matching distribution found",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "ConnectTimeoutError",
    "ReadTimeoutError",
)


def _clean_env(**extra: str) -> dict[str, str]:
    """This environment less what would point Python or the gateway at the checkout or its venv."""
    dropped = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
    env = {k: v for k, v in os.environ.items() if k not in dropped and not k.startswith("GATEWAY_")}
    return {**env, **extra}


def _run(
    command: list[str | Path], cwd: Path, timeout: float, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=_clean_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _succeeded(result: subprocess.CompletedProcess[str], what: str) -> None:
    """Return if `result` exited 0; skip (fail under CI) when the registry could not be reached."""
    if result.returncode == 0:
        return
    output = result.stdout + result.stderr
    if any(sign in output for sign in REGISTRY_TROUBLE):
        unavailable(f"{what}: the package registry cannot be reached:\n{output[-3000:]}")
    pytest.fail(f"{what} failed ({result.returncode}):\n{output[-6000:]}")


def _checkout_copy(destination: Path) -> Path:
    """The files a clone of this checkout would have, with their changes (tracked and untracked, not
    ignored): the build writes its egg-info and temporary trees there, not here."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if not source.is_symlink() and not source.is_file():  # deleted in the work tree
            continue
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)  # the sample config stays a link
    return destination


def _build(source: Path, dist: Path) -> tuple[Path, Path]:
    """`python -m build`: the sdist, then the wheel built from it. Their paths."""
    if importlib.util.find_spec("build") is None:
        unavailable("the `build` package is not installed (the test extra: pip install -e '.[test]')")
    result = _run([sys.executable, "-m", "build", "--outdir", dist, source], cwd=source, timeout=420)
    _succeeded(result, "python -m build")
    (sdist,) = dist.glob("sip_webrtc_gateway-*.tar.gz")
    (wheel,) = dist.glob("sip_webrtc_gateway-*.whl")
    return sdist, wheel


def _check_sdist(sdist: Path) -> None:
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    sources = {p.relative_to(REPO).as_posix() for p in (REPO / FASTLANE).glob("*.[ch]")}
    assert len(sources) >= 10 and sources <= names, sorted(sources - names)
    assert {"pyproject.toml", "MANIFEST.in", "gateway/gateway.sample.yaml"} <= names
    assert not any(name.startswith(("tests/", "peers/")) for name in names)


def _check_wheel(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        sample = archive.read("gateway/gateway.sample.yaml")
    assert f"{FASTLANE}/_fastlane{EXTENSION_SUFFIXES[0]}" in names, sorted(n for n in names if FASTLANE in n)
    static = {p.relative_to(REPO).as_posix() for p in (REPO / "gateway" / "static").iterdir() if p.is_file()}
    assert static and static <= names, sorted(static - names)
    assert sample == (REPO / "gateway.yaml").read_bytes()
    assert "gateway/py.typed" in names
    assert not any(name.endswith((".c", ".h")) or name.startswith(("tests/", "peers/")) for name in names)


def _wait_for_health(url: str, process: subprocess.Popen[str], deadline_s: float = 60.0) -> None:
    deadline = time.monotonic() + deadline_s
    while True:
        if process.poll() is not None:
            _, stderr = process.communicate()
            if "address already in use" in stderr:
                raise _PortTaken(stderr)
            pytest.fail(f"the installed gateway exited early with {process.returncode}:\n{stderr}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                assert response.status == 200
                return
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _serve_and_stop(venv: Path, config: Path, cwd: Path) -> None:
    """`run` from the venv: /healthz, the page and the container's health check answer; SIGTERM ends it.
    A port taken between free_port() and the gateway's bind (another test's) is tried again, twice."""
    for attempt in range(3):
        try:
            return _serve_and_stop_once(venv, config, cwd)
        except _PortTaken:
            if attempt == 2:
                raise


class _PortTaken(Exception):
    pass


def _serve_and_stop_once(venv: Path, config: Path, cwd: Path) -> None:
    port = free_port()
    env = {
        "GATEWAY_HTTP__PORT": str(port),
        "GATEWAY_SIP__LISTEN__0__PORT": str(free_port(socket.SOCK_DGRAM)),
        "GATEWAY_SIP__LISTEN__1__PORT": str(free_port()),
        "GATEWAY_STATE_DIR": str(cwd / "state"),
    }
    process = subprocess.Popen(
        [str(venv / "bin" / "sip-webrtc-gateway"), "run", "-c", str(config)],
        cwd=cwd,
        env=_clean_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_health(f"http://127.0.0.1:{port}/healthz", process)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            assert response.status == 200 and b"<html" in response.read().lower()
        # the Dockerfile's HEALTHCHECK command, as the image runs it
        health = _run(
            [venv / "bin" / "python", "-m", "gateway.cli_healthcheck", "-c", config], cwd, 60, **env
        )
        assert health.returncode == 0 and "healthy" in health.stdout, health.stdout + health.stderr
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()  # this test's own gateway, by its PID
            process.communicate()
    assert process.returncode == 0 and "gateway stopped" in stderr, stderr


def test_the_wheel_built_from_the_sdist_installs_and_runs(tmp_path: Path) -> None:
    started = time.monotonic()
    sdist, wheel = _build(_checkout_copy(tmp_path / "src"), tmp_path / "dist")
    _check_sdist(sdist)
    _check_wheel(wheel)
    built = time.monotonic()

    venv = tmp_path / "venv"  # no --system-site-packages: it sees pip's own packages only
    try:
        result = _run([sys.executable, "-m", "venv", venv], cwd=tmp_path, timeout=120)
        assert result.returncode == 0, result.stderr
        assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
        python = venv / "bin" / "python"
        # --no-compile: pip would write bytecode for every dependency (aiortc, av, cryptography...), a
        # third of the install's CPU; what is checked here is what the wheel holds and that it runs.
        install: list[str | Path] = [python, "-m", "pip", "install", "--quiet", "--no-compile", wheel]
        result = _run(install, cwd=tmp_path, timeout=420)
        _succeeded(result, "pip install of the wheel")
        installed = time.monotonic()

        elsewhere = tmp_path / "elsewhere"  # not the checkout: nothing of it on sys.path
        elsewhere.mkdir()
        where = _run(
            [
                python,
                "-c",
                "import gateway.media.fastlane.native as n; print(n.__file__); print(n._fastlane.__file__)",
            ],
            elsewhere,
            60,
        )
        assert where.returncode == 0, where.stderr
        for path in where.stdout.split():
            assert Path(path).is_relative_to(venv), where.stdout

        command = venv / "bin" / "sip-webrtc-gateway"
        config = elsewhere / "gateway.yaml"
        result = _run([command, "init", config], elsewhere, 60)
        assert result.returncode == 0 and config.read_bytes() == (REPO / "gateway.yaml").read_bytes()
        result = _run([command, "check", "-c", config], elsewhere, 60)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "media fast lane:   on\n" in result.stdout, result.stdout

        _serve_and_stop(venv, config, elsewhere)
    finally:
        shutil.rmtree(venv, ignore_errors=True)  # a few hundred MB; pytest keeps its last temp dirs
    print(
        f"build {built - started:.0f} s, install {installed - built:.0f} s, "
        f"run {time.monotonic() - installed:.0f} s"
    )
