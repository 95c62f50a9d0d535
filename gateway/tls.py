"""TLS for the gateway's listeners: a server context built from PEM files and reloaded in place.

    tls = ServerTls("cert.pem", "key.pem")   # TlsError naming the file and the problem
    site = web.TCPSite(runner, host, port, ssl_context=tls.context)
    tls.reload()                             # SIGHUP: new handshakes get the new certificate

Reloading loads the files into the same ``ssl.SSLContext``: connections already up keep theirs (no call
or WebSocket is dropped), and a reload that fails leaves the old certificate in service. TLS 1.2 is the
floor (RFC 8996 retired 1.0 and 1.1; browsers refuse them).
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

from cryptography import x509

logger = logging.getLogger(__name__)


class TlsError(Exception):
    """A certificate or key that cannot be used: the message names the file and why."""


def _load(context: ssl.SSLContext, certificate: Path, private_key: Path) -> None:
    for what, path in (("certificate", certificate), ("private key", private_key)):
        if not path.is_file():
            raise TlsError(f"{what} {path}: no such file")
    try:
        context.load_cert_chain(certificate, private_key)
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        hint = " (the key does not belong to the certificate)" if "KEY_VALUES_MISMATCH" in str(exc) else ""
        raise TlsError(f"certificate {certificate} / private key {private_key}: {reason}{hint}") from None
    except OSError as exc:
        raise TlsError(
            f"certificate {certificate} / private key {private_key}: {exc.strerror or exc}"
        ) from None


class ServerTls:
    """The server-side TLS context of one listener, from a PEM certificate chain and its key."""

    def __init__(self, certificate: str | Path, private_key: str | Path) -> None:
        self.certificate, self.private_key = Path(certificate), Path(private_key)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        _load(context, self.certificate, self.private_key)
        self.context = context

    def reload(self) -> bool:
        """Load the files again (a renewed certificate); False, keeping the old one, when they are bad."""
        try:
            _load(self.context, self.certificate, self.private_key)
        except TlsError as exc:
            logger.error("TLS certificate not reloaded, the old one stays in service: %s", exc)
            return False
        logger.info("TLS certificate reloaded from %s", self.certificate)
        return True


def certificate_names(certificate: str | Path) -> tuple[str, ...]:
    """The DNS names and IP addresses of the first certificate in a PEM file (its subjectAltName, RFC
    5280 §4.2.1.6); () when the file cannot be read (``ServerTls`` says why)."""
    try:
        first = x509.load_pem_x509_certificates(Path(certificate).read_bytes())[0]
        names = first.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, IndexError, x509.ExtensionNotFound):
        return ()
    addresses = [str(a) for a in names.get_values_for_type(x509.IPAddress)]
    return (*names.get_values_for_type(x509.DNSName), *addresses)


def sip_tls_contexts(
    certificate: str | None, private_key: str | None, ca_file: str | None, *, verify_server: bool = True
) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) contexts of SIP over TLS: the server one presents our certificate to whoever
    connects (not asking for theirs: phones rarely have one); the client one verifies the peer's chain
    against ``ca_file`` (default: the system's CAs) and its name, and presents our certificate when the
    peer asks (mutual TLS toward a trunk)."""
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.minimum_version = ssl.TLSVersion.TLSv1_2
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    client.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file is not None:
        if not Path(ca_file).is_file():
            raise TlsError(f"CA bundle {ca_file}: no such file")
        try:
            client.load_verify_locations(cafile=ca_file)
        except ssl.SSLError as exc:
            raise TlsError(f"CA bundle {ca_file}: {exc.reason or exc}") from None
    if certificate is not None and private_key is not None:
        for context in (server, client):
            _load(context, Path(certificate), Path(private_key))
    if not verify_server:
        logger.warning("sip.tls.verify_server is false: PBX certificates are NOT checked (lab use only)")
        client.check_hostname = False
        client.verify_mode = ssl.CERT_NONE
    return server, client
