"""SIP over WebSocket (RFC 7118) for browsers' SIP libraries (JsSIP, SIP.js): registrar, digest and
calls, as one more signaling dialect over the call core (see service.py)."""

from gateway.websip.credentials import SipCredentials
from gateway.websip.registrar import Binding, Flow, Registrar
from gateway.websip.service import WebSipService, WebSipSession

__all__ = ["Binding", "Flow", "Registrar", "SipCredentials", "WebSipService", "WebSipSession"]
