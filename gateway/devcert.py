"""A local certificate authority and a server certificate for trying the gateway on a LAN.

Browsers grant the microphone only to secure origins (https:, or localhost). ``make_dev_certificates``
writes a CA (``dev-ca.pem``, its key ``dev-ca-key.pem``) and a server certificate signed by it
(``dev-cert.pem``, ``dev-key.pem``) for the host names and IP addresses given: trust the CA on the phone
or laptop once, and the gateway's page loads over https without a warning. The CA is reused when it
is already there, so certificates for new addresses need no new trust. For development and demos: a
production gateway uses a certificate from a public CA (ACME) or the organisation's own.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
CERT_DAYS = 397  # the most browsers accept for a server certificate (CA/Browser Forum)


@dataclass(frozen=True, slots=True)
class DevCertificates:
    ca: Path
    ca_key: Path
    certificate: Path
    private_key: Path
    names: tuple[str, ...]


def _write(path: Path, data: bytes, *, secret: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    descriptor = os.open(path, flags, 0o600 if secret else 0o644)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _subject_names(names: list[str]) -> list[x509.GeneralName]:
    result: list[x509.GeneralName] = []
    for name in names:
        try:
            result.append(x509.IPAddress(ipaddress.ip_address(name.strip("[]"))))
        except ValueError:
            result.append(x509.DNSName(name))
    return result


def _ca(directory: Path, now: datetime.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_path, key_path = directory / "dev-ca.pem", directory / "dev-ca-key.pem"
    if ca_path.is_file() and key_path.is_file():
        certificate = x509.load_pem_x509_certificate(ca_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        if isinstance(key, ec.EllipticCurvePrivateKey) and certificate.not_valid_after_utc > now:
            return certificate, key
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sip-webrtc-gateway development CA")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(key_path, _key_pem(key), secret=True)
    _write(ca_path, certificate.public_bytes(serialization.Encoding.PEM))
    return certificate, key


def make_dev_certificates(directory: str | Path, names: list[str]) -> DevCertificates:
    """The CA (made once) and a fresh server certificate for ``names`` (host names and IP addresses;
    localhost and 127.0.0.1 are always added), written to ``directory``."""
    if not names:
        raise ValueError("name at least one host name or IP address")
    wanted = list(dict.fromkeys([*names, "localhost", "127.0.0.1"]))
    subject_names = _subject_names(wanted)
    directory = Path(directory)
    now = datetime.datetime.now(datetime.UTC)
    ca, ca_key = _ca(directory, now)
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, wanted[0])]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
        .add_extension(x509.SubjectAlternativeName(subject_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    result = DevCertificates(
        directory / "dev-ca.pem",
        directory / "dev-ca-key.pem",
        directory / "dev-cert.pem",
        directory / "dev-key.pem",
        tuple(wanted),
    )
    _write(result.private_key, _key_pem(key), secret=True)
    chain = certificate.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    _write(result.certificate, chain)
    return result
