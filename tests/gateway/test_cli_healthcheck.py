"""`healthcheck` (the container's HEALTHCHECK, issue 36 item 9): /healthz at the port and scheme the config
gives, the loopback address for a wildcard host, exit 0 on 200 and 1 otherwise, over HTTPS too."""

from __future__ import annotations

import http.server
import io
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from gateway.cli import build_parser
from gateway.cli_healthcheck import healthcheck, healthz_url, main
from gateway.config.schema import HttpSection, HttpTls
from gateway.devcert import make_dev_certificates
from peers.ports import free_port
from tests.conftest import REPO

SAMPLE = REPO / "gateway.yaml"


@contextmanager
def _server(status: int, context: ssl.SSLContext | None = None) -> Iterator[int]:
    """A /healthz that answers `status` on a free loopback port (HTTPS with `context`); its port."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert set(seen) <= {"/healthz"}, seen


def _check(config: Path, **env: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = healthcheck(str(config), env, 2.0, out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("http", "url"),
    [
        (HttpSection(), "http://127.0.0.1:8080/healthz"),
        (HttpSection(host="0.0.0.0", port=8081), "http://127.0.0.1:8081/healthz"),
        (HttpSection(host="::", port=8081), "http://[::1]:8081/healthz"),
        (HttpSection(host="2001:db8::7", port=443), "http://[2001:db8::7]:443/healthz"),
        (HttpSection(host="phone.example.org", port=8443, tls=HttpTls("c.pem", "k.pem")), None),
    ],
)
def test_the_url_follows_host_port_and_tls(http: HttpSection, url: str | None) -> None:
    assert healthz_url(http) == (url or "https://phone.example.org:8443/healthz")


def test_healthy_is_0_and_unhealthy_is_1_at_the_configured_port() -> None:
    with _server(200) as port:
        code, out, err = _check(SAMPLE, GATEWAY_HTTP__PORT=str(port), GATEWAY_HTTP__HOST="0.0.0.0")
    assert (code, err) == (0, "") and out == f"http://127.0.0.1:{port}/healthz: healthy\n"
    with _server(503) as port:
        code, _, err = _check(SAMPLE, GATEWAY_HTTP__PORT=str(port))
    assert code == 1 and err.endswith(": unhealthy: HTTP 503 Service Unavailable\n"), err
    code, _, err = _check(SAMPLE, GATEWAY_HTTP__PORT=str(free_port()))
    assert code == 1 and "unhealthy: no answer:" in err, err


def test_https_when_the_config_has_tls_with_a_certificate_for_another_name(tmp_path: Path) -> None:
    certificates = make_dev_certificates(tmp_path, ["phone.example.org"])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates.certificate, certificates.private_key)
    tls = f"{{certificate: {certificates.certificate}, private_key: {certificates.private_key}}}"
    with _server(200, context) as port:
        code, out, err = _check(SAMPLE, GATEWAY_HTTP__PORT=str(port), GATEWAY_HTTP__TLS=tls)
    assert (code, err) == (0, ""), err
    assert out.startswith(f"https://127.0.0.1:{port}/healthz")


def test_a_config_that_does_not_load_is_unhealthy(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("http:\n  prot: 8080\n", encoding="utf-8")
    code, _, err = _check(bad)
    assert code == 1 and "cannot tell where /healthz is served" in err and "http.prot" in err, err


def test_the_command_line_and_the_light_entry_point_read_gateway_config(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sip-webrtc-gateway healthcheck` and `python -m gateway.cli_healthcheck` (the Dockerfile's) take
    the config from $GATEWAY_CONFIG as `run` does."""
    monkeypatch.setenv("GATEWAY_CONFIG", str(SAMPLE))
    args = build_parser().parse_args(["healthcheck", "--timeout", "1"])
    assert (args.config, args.timeout) == (str(SAMPLE), 1.0)
    with _server(200) as port:
        monkeypatch.setenv("GATEWAY_HTTP__PORT", str(port))
        assert args.handler(args) == 0
        assert main([]) == 0
    assert capsys.readouterr().out.count(f"127.0.0.1:{port}/healthz: healthy") == 2
