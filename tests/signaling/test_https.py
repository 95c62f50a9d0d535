"""HTTPS and WSS for everything the gateway serves (http.tls), with the development CA of
`sip-webrtc-gateway dev-cert`: a client that trusts only that CA reaches /healthz and logs in over WSS,
plain HTTP redirects (308) or is off, the certificate is reloaded without dropping a WebSocket (in
process and by SIGHUP to the real command), a WebSocket from a foreign Origin is refused 403, bad
certificate files are a one-line error, and Chromium trusting the CA (nothing else) gets a secure
context on the softphone page, with the microphone."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509

from gateway.app import Gateway
from gateway.cli import main
from gateway.devcert import DevCertificates, make_dev_certificates
from gateway.tls import ServerTls, TlsError
from peers.ports import free_port
from peers.web_user import WebUser
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway, wait_until


def client_context(ca: Path) -> ssl.SSLContext:
    """What a device that trusts only the development CA checks."""
    return ssl.create_default_context(cafile=str(ca))


def tls_config(made: DevCertificates, **tls: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": free_port(),
        "tls": {"certificate": str(made.certificate), "private_key": str(made.private_key), **tls},
    }


@asynccontextmanager
async def https_gateway(made: DevCertificates, **http: Any) -> AsyncIterator[Gateway]:
    section = tls_config(made)
    section.update(http)
    async with running_gateway(gateway_config(None, http=section)) as gateway:
        yield gateway


async def served_serial(port: int, ca: Path) -> int:
    """The serial number of the certificate a fresh TLS handshake on `port` gets."""
    _, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=client_context(ca), server_hostname="127.0.0.1"
    )
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    await writer.wait_closed()
    return x509.load_der_x509_certificate(der).serial_number


async def test_dev_cert_makes_a_ca_once_and_certificates_for_the_names_given(tmp_path: Path) -> None:
    first = make_dev_certificates(tmp_path, ["192.0.2.5", "gw.lan"])
    ca, chain = first.ca.read_bytes(), first.certificate.read_bytes()
    again = make_dev_certificates(tmp_path, ["198.51.100.9"])
    assert again.ca.read_bytes() == ca, "a new CA would need to be trusted again on every device"
    certificate = x509.load_pem_x509_certificates(chain)[0]
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(a) for a in names.get_values_for_type(x509.IPAddress)} == {"192.0.2.5", "127.0.0.1"}
    assert set(names.get_values_for_type(x509.DNSName)) == {"gw.lan", "localhost"}
    assert oct(first.private_key.stat().st_mode & 0o777) == "0o600"
    assert oct(first.ca_key.stat().st_mode & 0o777) == "0o600"


def test_dev_cert_command_prints_the_config_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dev-cert", "192.0.2.5", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert (
        f"certificate: {tmp_path / 'dev-cert.pem'}" in out
        and f"private_key: {tmp_path / 'dev-key.pem'}" in out
    )
    assert "dev-ca.pem" in out


async def test_https_and_wss_with_the_dev_ca_and_plain_http_redirecting(tmp_path: Path) -> None:
    made = make_dev_certificates(tmp_path, ["127.0.0.1"])
    redirect = free_port()
    async with https_gateway(made, tls={**tls_config(made)["tls"], "redirect_port": redirect}) as gateway:
        assert gateway.http_url.startswith("https://127.0.0.1:")
        context = client_context(made.ca)
        async with aiohttp.ClientSession() as http:
            async with http.get(gateway.http_url + "/healthz", ssl=context) as reply:
                assert reply.status == 200 and (await reply.json())["status"] == "ok"
            async with http.get(f"http://127.0.0.1:{redirect}/healthz?x=1", allow_redirects=False) as reply:
                assert reply.status == 308
                assert reply.headers["Location"] == gateway.http_url + "/healthz?x=1"
            with pytest.raises(aiohttp.ClientError):  # only https on the https port
                async with http.get(gateway.http_url.replace("https:", "http:") + "/healthz") as reply:
                    await reply.read()
            with pytest.raises(aiohttp.ClientConnectorCertificateError):  # no trust, no connection
                async with http.get(gateway.http_url + "/healthz", ssl=ssl.create_default_context()) as reply:
                    await reply.read()
        async with WebUser(gateway.http_url, "alice", ALICE_SECRET, ssl=context) as alice:
            assert alice.url.startswith("wss://") and alice.session_id
            assert (await alice.request({"type": "ping"}))["type"] == "pong"


async def test_without_a_redirect_port_there_is_no_plain_http(tmp_path: Path) -> None:
    made = make_dev_certificates(tmp_path, ["127.0.0.1"])
    async with https_gateway(made) as gateway:
        assert gateway.http is not None and gateway.http.redirect_urls == []


async def test_a_renewed_certificate_is_served_and_open_websockets_stay(tmp_path: Path) -> None:
    made = make_dev_certificates(tmp_path, ["127.0.0.1"])
    async with https_gateway(made) as gateway:
        assert gateway.http is not None
        port, context = gateway.http.port, client_context(made.ca)
        old = await served_serial(port, made.ca)
        async with WebUser(gateway.http_url, "alice", ALICE_SECRET, ssl=context) as alice:
            make_dev_certificates(tmp_path, ["127.0.0.1", "gw.lan"])  # renewed in place
            gateway.reload_tls()
            assert await served_serial(port, made.ca) != old
            assert (await alice.request({"type": "ping"}))["type"] == "pong"  # the WebSocket stayed
            made.private_key.write_text("not a key\n")
            gateway.reload_tls()  # bad files: logged, the renewed certificate stays in service
            assert await served_serial(port, made.ca) != old


async def test_sighup_reloads_the_certificate_of_the_running_command(tmp_path: Path) -> None:
    made = make_dev_certificates(tmp_path, ["127.0.0.1"])
    port = free_port()
    config = tmp_path / "gateway.yaml"
    sip_port = free_port(socket.SOCK_DGRAM)
    config.write_text(
        f"sip: {{listen: [{{transport: udp, host: 127.0.0.1, port: {sip_port}}}]}}\n"
        "media: {rtp_ports: {start: 42000, end: 42100}}\n"
        f"http: {{host: 127.0.0.1, port: {port}, "
        f"tls: {{certificate: '{made.certificate}', private_key: '{made.private_key}'}}}}\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "run", "-c", str(config),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await wait_until(lambda: _listening(port), timeout=20)
        old = await served_serial(port, made.ca)
        make_dev_certificates(tmp_path, ["127.0.0.1"])
        os.kill(process.pid, signal.SIGHUP)
        for _ in range(100):
            if await served_serial(port, made.ca) != old:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the certificate was not reloaded on SIGHUP")
        assert process.returncode is None, "SIGHUP must not stop the gateway"
    finally:
        if process.returncode is None:
            process.terminate()
        _, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    assert b"TLS certificate reloaded" in stderr


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (None, True),  # not a browser
        ("same", True),
        ("https://softphone.example.org", True),  # http.allowed_origins
        ("https://evil.example", False),
        ("http://127.0.0.1:1", False),  # same host, another origin
        ("null", False),
    ],
)
async def test_websockets_from_foreign_origins_are_refused(
    tmp_path: Path, origin: str | None, allowed: bool
) -> None:
    made = make_dev_certificates(tmp_path, ["127.0.0.1"])
    async with https_gateway(made, allowed_origins=["https://softphone.example.org"]) as gateway:
        header = gateway.http_url if origin == "same" else origin
        user = WebUser(gateway.http_url, "alice", ALICE_SECRET, ssl=client_context(made.ca), origin=header)
        if allowed:
            async with user:
                assert user.session_id
        else:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await user.__aenter__()
            await user.close()
            assert refused.value.status == 403


def test_bad_certificate_files_are_one_line_errors(tmp_path: Path) -> None:
    made = make_dev_certificates(tmp_path, ["127.0.0.1"])
    other = make_dev_certificates(tmp_path / "other", ["127.0.0.1"])
    with pytest.raises(TlsError, match="no such file"):
        ServerTls(tmp_path / "missing.pem", made.private_key)
    with pytest.raises(TlsError, match="does not belong to the certificate"):
        ServerTls(made.certificate, other.private_key)


def test_check_refuses_a_config_whose_certificate_cannot_be_loaded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        f"http: {{tls: {{certificate: '{tmp_path}/nope.pem', private_key: '{tmp_path}/nope.key'}}}}\n"
    )
    assert main(["check", "-c", str(config)]) == 1
    err = capsys.readouterr().err
    assert "http.tls: certificate" in err and "no such file" in err


async def test_chromium_trusting_the_dev_ca_gets_a_secure_page_with_the_microphone(tmp_path: Path) -> None:
    from tests.signaling.browser import chromium_page, expect, log_in

    made = make_dev_certificates(tmp_path, ["127.0.0.1"])
    async with https_gateway(made) as gateway, chromium_page(trusted_ca=made.ca) as page:
        await page.goto(gateway.http_url + "/")
        assert await page.evaluate("window.isSecureContext") is True
        await log_in(page, "alice", ALICE_SECRET)
        await expect(page.locator("#status")).to_have_text("Registered as Alice")  # over WSS
        tracks = await page.evaluate(
            "navigator.mediaDevices.getUserMedia({audio: true}).then(s => s.getAudioTracks().length)"
        )
        assert tracks == 1
