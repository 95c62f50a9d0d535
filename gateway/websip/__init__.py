"""SIP over WebSocket (RFC 7118) for browsers' SIP libraries (JsSIP, SIP.js): registrar
(`registrar.py`), digest credentials (`credentials.py`), the calls (`service.py`, `sessions.py`) and
mid-call video (`video.py`), as one more signaling dialect over the call core. It speaks SIP, so it sits
outside the signaling | sip | media layers (it imports gateway.sip and gateway.signaling's boundary);
its WebSocket upgrades run on the signaling layer's shared session loop (gateway/signaling/sip_ws.py)."""

from gateway.websip.credentials import SipCredentials
from gateway.websip.registrar import Binding, Flow, Registrar
from gateway.websip.service import WebSipService, WebSipSession

__all__ = ["Binding", "Flow", "Registrar", "SipCredentials", "WebSipService", "WebSipSession"]
