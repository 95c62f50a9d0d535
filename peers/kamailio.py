"""A real Kamailio registrar/proxy (Debian ``kamailio``) on a loopback port, for tests.

The configuration is peers/kamailio/kamailio.cfg: digest-authenticated REGISTER for fixed test users
(`USERS`; more can be added per test), contacts in memory, INVITEs routed to registered contacts with
record-routing. The fixture copies it into a temporary directory (adding any extra users), starts
``kamailio -DD -E`` in the foreground with its log on stderr (kept in ``kamailio.log``), waits until it
answers OPTIONS, and kills its whole process group on teardown.

    def test_register(kamailio: Kamailio) -> None:            # the pytest fixture (tests/peers/conftest.py)
        kamailio.registrar       # "sip:127.0.0.1:PORT"  (give it to a phone's --register)
        kamailio.aor("2000")     # "sip:2000@127.0.0.1:PORT"  (call a registered user through it)
        kamailio.users["2000"]   # "secret2000"

    with running_kamailio(tmp_path, users={"alice": "pw"}) as k:   # the same without pytest
        ...
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from peers.binaries import require_binary, unavailable
from peers.ports import free_port

CONFIG = Path(__file__).resolve().parent / "kamailio" / "kamailio.cfg"
TLS_MODULE_GLOB = "*/kamailio/modules/tls.so"  # under /usr/lib (Debian's multiarch directory)
USERS = {
    "2000": "secret2000",
    "2001": "secret2001",
    "2002": "secret2002",
    "2003": "secret2003",
    "gateway": "gatewaysecret",
}  # must match the htable:mod-init route of kamailio.cfg
_probes = itertools.count(1)


@dataclass
class Kamailio:
    host: str
    port: int
    workdir: Path
    process: subprocess.Popen[bytes]
    users: dict[str, str] = field(default_factory=dict)
    tls_port: int | None = None  # SIP over TLS, when started with certificates

    @property
    def tls_address(self) -> str:
        if self.tls_port is None:
            raise RuntimeError("this Kamailio was started without TLS")
        return f"{self.host}:{self.tls_port}"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def registrar(self) -> str:
        return f"sip:{self.address}"

    def aor(self, user: str) -> str:
        return f"sip:{user}@{self.address}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "kamailio.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> int | None:
        """SIGTERM to Kamailio's process group (main process and its children), SIGKILL if needed."""
        if self.process.returncode is None:
            for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(grace)
                    break
        return self.process.returncode


def write_config(workdir: Path, users: dict[str, str], tls: tuple[Path, Path] | None = None) -> Path:
    """kamailio.cfg with the extra users; with ``tls`` (certificate chain, key: PEM files) the TLS module
    too, serving that certificate and not checking its clients' (a gateway or phone has none)."""
    lines = "".join(f'\t$sht(users=>{user}) = "{password}";\n' for user, password in users.items())
    text = CONFIG.read_text()
    marker = "\t# @extra-users@"
    if marker not in text:
        raise RuntimeError(f"{CONFIG} lost its {marker.strip()!r} line")
    text = text.replace(marker, lines + marker)
    if tls is not None:
        certificate, key = tls
        settings = workdir / "tls.cfg"
        settings.write_text(
            "[server:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\n"
            f"certificate = {certificate}\nprivate_key = {key}\n\n"
            "[client:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\n"
        )
        text = text.replace("disable_tcp=yes", "disable_tcp=no\nenable_tls=yes")
        modules = "####### Modules ########\n"
        text = text.replace(
            modules, modules + f'loadmodule "tls.so"\nmodparam("tls", "config", "{settings}")\n'
        )
    path = workdir / "kamailio.cfg"
    path.write_text(text)
    return path


def options_ping(host: str, port: int, timeout: float = 0.3) -> str | None:
    """Send one OPTIONS to host:port; the status line of the answer, or None."""
    n = next(_probes)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        sock.settimeout(timeout)
        local = sock.getsockname()[1]
        request = (
            f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {host}:{local};branch=z9hG4bK-probe-{os.getpid()}-{n};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:probe@{host}>;tag=probe{n}\r\n"
            f"To: <sip:{host}:{port}>\r\n"
            f"Call-ID: probe-{os.getpid()}-{n}@{host}\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        sock.sendto(request.encode(), (host, port))
        try:
            data = sock.recv(65535)
        except (TimeoutError, ConnectionRefusedError):
            return None
    return data.split(b"\r\n", 1)[0].decode(errors="replace")


@contextlib.contextmanager
def running_kamailio(
    workdir: Path,
    users: dict[str, str] | None = None,
    host: str = "127.0.0.1",
    timeout: float = 10,
    tls: tuple[Path, Path] | None = None,
) -> Iterator[Kamailio]:
    """``tls``: (certificate chain, private key) PEM files: Kamailio then also listens for SIP over TLS
    on ``Kamailio.tls_port`` (needs Debian kamailio-tls-modules)."""
    binary = require_binary("kamailio")
    workdir = workdir / "kamailio"
    (workdir / "run").mkdir(parents=True, exist_ok=True)
    extra = {k: v for k, v in (users or {}).items() if USERS.get(k) != v}
    if tls is not None and not any(Path("/usr/lib").glob(TLS_MODULE_GLOB)):
        unavailable("kamailio's TLS module is missing: apt-get install kamailio-tls-modules")
    config = write_config(workdir, extra, tls)
    port = free_port(socket.SOCK_DGRAM, host)
    tls_port = free_port(socket.SOCK_STREAM, host) if tls is not None else None
    listen = ["-l", f"tls:{host}:{tls_port}"] if tls_port is not None else []
    with (workdir / "kamailio.log").open("wb") as log:
        process = subprocess.Popen(
            [
                binary,
                "-DD",
                "-E",
                "-f",
                str(config),
                "-Y",
                str(workdir / "run"),
                "-l",
                f"udp:{host}:{port}",
                *listen,
                "-m",
                "32",
                "-M",
                "4",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd=workdir,
            start_new_session=True,  # its own process group: stop() ends the children too
        )
    server = Kamailio(host, port, workdir, process, {**USERS, **(users or {})}, tls_port)
    try:
        deadline = time.monotonic() + timeout
        while (status := options_ping(host, port)) is None or not status.endswith("200 Keepalive"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"kamailio did not answer OPTIONS on {host}:{port}:\n{server.log()[-4000:]}"
                )
        yield server
    finally:
        server.stop()
