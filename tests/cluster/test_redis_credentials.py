"""Redis AUTH with an ACL user and TLS (issue 32 item 11) against a real redis-server: a node with the
right username and password (from the environment) joins the cluster, a wrong or missing one gets the
clear "shared state unavailable" error; over TLS the server's certificate must chain to `tls.ca_file`.
Config: credentials never in the URL, the password never inline, `tls` only with rediss://."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio.sentinel import SentinelConnectionPool

from gateway.cluster import ClusterNode, ClusterUnavailable
from gateway.cluster.redis_client import connect
from gateway.cluster.revocations import RedisRevocations
from gateway.cluster.sessions import SessionOwners
from gateway.config.cluster import ClusterSection
from gateway.config.errors import ConfigError
from gateway.config.loader import config_from_mapping
from gateway.devcert import make_dev_certificates
from peers.binaries import require_binary
from peers.ports import free_port

PASSWORD = "acl-password-of-the-gateway-0123"


@contextlib.contextmanager
def redis_server(workdir: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """redis-server with `args` on loopback; ready once its log says so; killed (its group) on the way out."""
    binary = require_binary("redis-server")
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "redis.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--dir", str(workdir), "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--logfile", "", *args],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while "Ready to accept connections" not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def settings(url: str, instance: str, env: dict[str, str] | None = None, **extra: Any) -> ClusterSection:
    redis = {"redis": url} if url else {}
    extra.pop("redis", None)
    config = config_from_mapping(
        {
            "web_auth": {"session_secret": "unit-session-secret-0123456789"},
            "cluster": {
                **redis,
                "instance_id": instance,
                "advertise": {"sip": "127.0.0.2:5070", "http": "http://127.0.0.2:8080"},
                "secret": "unit-cluster-secret-0123",
                # credentials are under test, not leases: one that outlives a stall of the suite's load
                # between the lease's write and its read (0.6 s was once too short, at load 7)
                "heartbeat": 1.0,
                "lease": 5.0,
                "redis_timeout": 2.0,
                **extra,
            },
        },
        env or {},
    )
    assert config.cluster is not None
    return config.cluster


async def _joins(section: ClusterSection) -> bool:
    """Whether a node with `section` can write its lease and read the members back."""
    node = ClusterNode(section)
    try:
        await node.beat()  # failures are logged, not raised
        return section.instance_id in await node.instances()
    except ClusterUnavailable:
        return False
    finally:
        await node.close()


async def test_an_acl_user_with_its_password_from_the_environment(tmp_path: Path) -> None:
    port = free_port(socket.SOCK_STREAM, "127.0.0.1")
    # the ACL docs/deploy.md recommends: the gateway's keys and channels only, no dangerous commands
    acl = ["--user", "default", "off", "--user", "gateway", "on", f">{PASSWORD}", "~gw:*", "&gw:*", "+@all",
           "-@dangerous"]  # fmt: skip
    with redis_server(tmp_path / "redis", "--port", str(port), *acl):
        url = f"redis://127.0.0.1:{port}/0"
        right = settings(url, "a", {"REDIS_PW": PASSWORD}, username="gateway", password={"env": "REDIS_PW"})
        assert await _joins(right)
        node = ClusterNode(right)  # what else the gateway does in Redis works under that ACL
        revocations = RedisRevocations(node)
        try:
            revocations.start()
            await asyncio.wait_for(revocations.subscribed.wait(), 20)
            await revocations.revoke("family-1", time.time() + 60)
            assert await RedisRevocations(node).sync() == 1
            await SessionOwners(node, lambda: ()).claim("s1")
        finally:
            await revocations.close()
            await node.close()
        wrong = settings(url, "b", {"REDIS_PW": "not-it"}, username="gateway", password={"env": "REDIS_PW"})
        assert not await _joins(wrong)
        assert not await _joins(settings(url, "c"))  # no credentials: the default user is off
        # the ACL confines the user to the gateway's keys: another prefix is refused
        other = settings(url, "d", {"REDIS_PW": PASSWORD}, username="gateway", password={"env": "REDIS_PW"},
                         key_prefix="other:")  # fmt: skip
        assert not await _joins(other)


async def test_requirepass_without_a_user_name(tmp_path: Path) -> None:
    port = free_port(socket.SOCK_STREAM, "127.0.0.1")
    with redis_server(tmp_path / "redis", "--port", str(port), "--requirepass", PASSWORD):
        url = f"redis://127.0.0.1:{port}/0"
        assert await _joins(settings(url, "a", {"REDIS_PW": PASSWORD}, password={"env": "REDIS_PW"}))
        assert not await _joins(settings(url, "b"))


async def test_tls_verified_against_the_configured_ca(tmp_path: Path) -> None:
    certs = make_dev_certificates(tmp_path / "certs", ["127.0.0.1"])
    other_ca = make_dev_certificates(tmp_path / "other", ["127.0.0.1"])
    port = free_port(socket.SOCK_STREAM, "127.0.0.1")
    tls = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(certs.certificate),
           "--tls-key-file", str(certs.private_key), "--tls-ca-cert-file", str(certs.ca),
           "--tls-auth-clients", "no", "--requirepass", PASSWORD]  # fmt: skip
    with redis_server(tmp_path / "redis", *tls):
        url, env = f"rediss://127.0.0.1:{port}/0", {"REDIS_PW": PASSWORD}
        password = {"env": "REDIS_PW"}
        assert await _joins(settings(url, "a", env, password=password, tls={"ca_file": str(certs.ca)}))
        # a server whose certificate does not chain to ca_file (a man in the middle): refused
        assert not await _joins(settings(url, "b", env, password=password, tls={"ca_file": str(other_ca.ca)}))
        # plain TCP to the TLS port: nothing
        assert not await _joins(settings(f"redis://127.0.0.1:{port}/0", "c", env, password=password))


def client_certificate(ca: Path, ca_key: Path, directory: Path) -> tuple[Path, Path]:
    """A client certificate (clientAuth) for instance gw1, signed by the dev CA: (certificate, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    issuer = x509.load_pem_x509_certificate(ca.read_bytes())
    signer = serialization.load_pem_private_key(ca_key.read_bytes(), None)
    assert isinstance(signer, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gw1")]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(signer, hashes.SHA256())
    )
    cert_path, key_path = directory / "client.pem", directory / "client-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


async def test_tls_with_a_client_certificate(tmp_path: Path) -> None:
    certs = make_dev_certificates(tmp_path / "certs", ["127.0.0.1"])
    cert, key = client_certificate(certs.ca, certs.ca_key, tmp_path / "certs")
    port = free_port(socket.SOCK_STREAM, "127.0.0.1")
    tls = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(certs.certificate),
           "--tls-key-file", str(certs.private_key), "--tls-ca-cert-file", str(certs.ca),
           "--tls-auth-clients", "yes"]  # fmt: skip
    with redis_server(tmp_path / "redis", *tls):
        url = f"rediss://127.0.0.1:{port}/0"
        with_cert = {"ca_file": str(certs.ca), "certificate": str(cert), "private_key": str(key)}
        assert await _joins(settings(url, "a", tls=with_cert))
        assert not await _joins(settings(url, "b", tls={"ca_file": str(certs.ca)}))  # no client certificate


@pytest.mark.parametrize(
    ("extra", "env", "message"),
    [
        ({"redis": "redis://gateway:pw@127.0.0.1:6379/0"}, {}, r"cluster\.redis: no credentials in the URL"),
        ({"password": "inline-password"}, {}, r"cluster\.password: must come from the environment"),
        ({"username": "gateway"}, {}, r"cluster\.username: an ACL user needs cluster\.password"),
        ({"tls": {"ca_file": "/etc/ca.pem"}}, {}, r"cluster\.tls: needs a rediss:// URL"),
        ({"tls": {"certificate": "/c.pem"}}, {}, r"cluster\.tls\.certificate: give both"),
        ({"password": {"env": "NOPE"}}, {}, r"cluster\.password.*NOPE"),
    ],
)
def test_redis_credential_settings_are_checked(
    extra: dict[str, Any], env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        settings(str(extra.pop("redis", "redis://127.0.0.1:6379/0")), "a", env, **extra)


def test_sentinel_gets_the_same_credentials_and_tls() -> None:
    """No Sentinel runs here: what the client would connect with (the master through Sentinel, and
    the sentinels themselves over TLS)."""
    section = settings(
        "", "a", {"REDIS_PW": PASSWORD}, redis=None, username="gateway", password={"env": "REDIS_PW"},
        sentinel={"addresses": ["127.0.0.1:26379"]}, tls={"ca_file": "/etc/redis/ca.pem"},
    )  # fmt: skip
    client = connect(section)
    pool = client.connection_pool
    assert "SSL" in pool.connection_class.__name__
    kwargs = pool.connection_kwargs
    assert (kwargs["username"], kwargs["password"], kwargs["ssl_ca_certs"]) == (
        "gateway",
        PASSWORD,
        "/etc/redis/ca.pem",
    )
    assert kwargs["ssl_cert_reqs"] == "required" and kwargs["ssl_check_hostname"] is True
    assert isinstance(pool, SentinelConnectionPool)
    sentinel = pool.sentinel_manager.sentinels[0].connection_pool
    assert "SSL" in sentinel.connection_class.__name__
    assert sentinel.connection_kwargs["ssl_ca_certs"] == "/etc/redis/ca.pem"
