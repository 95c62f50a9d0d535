"""`ListenError`: a listener that could not open, named the way an operator looks for it.

    SIP udp 127.0.0.1:5060: address already in use
    HTTP 0.0.0.0:443: permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)

Raised by the SIP transaction layer and the HTTP servers at start-up; `sip-webrtc-gateway run` prints
it and exits 1, without a traceback.
"""

from __future__ import annotations

import errno
from typing import Final

_REASONS: Final = {
    errno.EADDRINUSE: "address already in use",
    errno.EADDRNOTAVAIL: "address not available on this machine",
    errno.EACCES: "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)",
    errno.EPERM: "permission denied",
}


class ListenError(OSError):
    """A listener (`what`: "SIP udp", "HTTP", "SIP WebSocket"...) could not open on host:port."""

    def __init__(self, what: str, host: str, port: int, cause: OSError) -> None:
        self.what = what
        self.host = host
        self.port = port
        reason = _REASONS.get(cause.errno or 0) or (cause.strerror or str(cause)).lower()
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        super().__init__(cause.errno, f"{what} {where}: {reason}")

    def __str__(self) -> str:
        return str(self.strerror)
