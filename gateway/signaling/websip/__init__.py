"""SIP over WebSocket (RFC 7118) for browsers' SIP libraries (JsSIP, SIP.js), one more signaling dialect
over the call core: the upgrades on the shared session loop (`endpoint.py`, the only aiohttp of it), the
registrar (`registrar.py`), digest credentials (`credentials.py`), the calls (`service.py`, `sessions.py`)
and mid-call video (`video.py`). Unlike the other dialects it speaks SIP: it may import gateway.sip (the
UserAgent, the aiohttp-free WebSocket transport of gateway/sip/transport_ws.py) and sipcore, besides the
shared signaling modules, gateway.identity and gateway.config; never media (but its DTMF relay parser)."""

from gateway.signaling.websip.credentials import SipCredentials
from gateway.signaling.websip.registrar import Binding, Flow, Registrar
from gateway.signaling.websip.service import WebSipService, WebSipSession

__all__ = ["Binding", "Flow", "Registrar", "SipCredentials", "WebSipService", "WebSipSession"]
