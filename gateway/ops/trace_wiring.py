"""`Tracing`: feeds the per-call trace store (gateway/ops/trace.py) from a running gateway, and sends each
SIP message to a HEPv3 capture server (gateway/ops/hep.py) when `trace.hep` says where.

What it hears, and from where (docs/operations.md "Per-call traces"):
- every SIP message the transaction layer sends or receives, both legs (the PBX side, and SIP over
  WebSocket's browsers): `sip_tap`, set as the layer's `tap` (one attribute test per message when off);
- each call's web signaling as the call core sees it: the browser's events in (their SDP) and the
  signaling events out (`web_event`, the driver's `web_trace`);
- the gateway's decisions: every log record that carries a call id (gateway/ops/logctx.py puts them on
  the records), through a logging handler on the root logger (so at the configured log level), which
  also learns from those records which SIP Call-IDs belong to which call;
- the end of each call (`call_ended`, from `Operations.call_ended`).
A failure here is logged once and costs the trace, never the message or the call.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Final

from gateway.config.trace import HepSection, TraceSection
from gateway.ops import logctx
from gateway.ops.hep import HepError, HepMessage, encode
from gateway.ops.trace import TraceLimits, TraceStore, sip_call_id
from gateway.ops.trace_formats import as_pcap, as_text

logger = logging.getLogger(__name__)

_DIALECTS: Final = {
    "Session": "json",
    "HttpSession": "http",
    "WebSipSession": "sip_ws",
    "RpcSession": "jsonrpc",
}
_HIDDEN: Final = frozenset({"sdp", "api_key", "password", "secret", "token", "session_id"})


def _dialect(session: object) -> str:
    if session is None:
        return "web"
    name = type(session).__name__
    return _DIALECTS.get(name, name.lower())


def describe_event(event: object) -> tuple[str, str]:
    """(name, text) of a web event: a signaling event's JSON as sent; a call event's simple fields and
    its SDP (no credentials, the web user by id)."""
    to_json = getattr(event, "to_json", None)
    if callable(to_json):
        body = to_json()
        if isinstance(body, dict):
            sdp = body.get("sdp")
            shown = {k: v for k, v in body.items() if k != "sdp"}
            name = str(body.get("type", type(event).__name__))
            text = json.dumps(shown, default=str)
            return name, text + (f"\n{sdp}" if isinstance(sdp, str) and sdp else "")
    name = type(event).__name__
    fields: dict[str, object] = {}
    sdp = None
    if dataclasses.is_dataclass(event):
        for item in dataclasses.fields(event):
            value = getattr(event, item.name)
            if item.name == "sdp":
                sdp = value
            elif item.name == "user":
                fields["user"] = getattr(value, "id", None)
            elif item.name not in _HIDDEN and (value is None or isinstance(value, str | int | float | bool)):
                fields[item.name] = value
    text = json.dumps(fields, default=str)
    return name, text + (f"\n{sdp}" if isinstance(sdp, str) and sdp else "")


class _Decisions(logging.Handler):
    """Log records that name a call -> that call's trace (and the SIP Call-IDs they link to it)."""

    def __init__(self, tracing: Tracing) -> None:
        super().__init__()
        self._tracing = tracing
        self.thread = threading.get_ident()  # the event loop's: the store is not shared with others

    def emit(self, record: logging.LogRecord) -> None:
        call = getattr(record, "call", None)
        if not isinstance(call, str) or record.thread != self.thread:
            return
        try:
            store = self._tracing.store
            sip = getattr(record, "sip_call_id", None)
            if isinstance(sip, str):
                for sip_id in sip.split(","):
                    store.link(call, sip_id, record.created)
            store.decision(call, record.levelname, record.name, record.getMessage(), record.created)
        except Exception:  # never log from here: that would come back
            self.handleError(record)


class _HepProtocol(asyncio.DatagramProtocol):
    def error_received(self, exc: Exception) -> None:
        logger.debug("HEP send failed: %s", exc)


class Tracing:
    """The trace store of a gateway and what feeds it; `attach` to the SIP layer, `start`, `close`."""

    def __init__(self, config: TraceSection, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.store = TraceStore(
            TraceLimits(
                max_messages=config.max_messages,
                max_bytes=config.max_bytes,
                keep_calls=config.keep_calls,
                keep_seconds=config.keep_seconds,
                max_live=config.max_live,
            )
        )
        self._clock = clock
        self._handler = _Decisions(self)
        self._hep: asyncio.DatagramTransport | None = None
        self._failed = False
        self.hep_sent = 0

    # --- lifecycle ---------------------------------------------------------------------------------
    def attach(self, layer: Any) -> None:
        """Hear every SIP message of `layer` (a `TransactionLayer`)."""
        layer.tap = self.sip_tap

    async def start(self) -> None:
        self._handler.thread = threading.get_ident()
        logging.getLogger().addHandler(self._handler)
        hep = self.config.hep
        if hep is not None:
            await self._open_hep(hep)

    async def _open_hep(self, hep: HepSection) -> None:
        loop = asyncio.get_running_loop()
        port = hep.address.port or 9060
        try:
            transport, _ = await loop.create_datagram_endpoint(
                _HepProtocol, remote_addr=(hep.address.host.strip("[]"), port)
            )
        except OSError as exc:  # an unknown name, no route: the traces go on, without HEP
            logger.error("trace.hep.address %s:%d: %s; no HEP export", hep.address.host, port, exc)
            return
        self._hep = transport
        logger.info("trace: HEPv3 to %s:%d (agent id %d)", hep.address.host, port, hep.agent_id)

    async def close(self) -> None:
        """Stop hearing log records and close the HEP socket; idempotent."""
        logging.getLogger().removeHandler(self._handler)
        if self._hep is not None:
            self._hep.close()
            self._hep = None

    # --- feeds -------------------------------------------------------------------------------------
    def sip_tap(self, direction: str, data: bytes, transport: Any, address: tuple[str, int]) -> None:
        """The transaction layer's tap: one SIP message in ("in") or out ("out")."""
        try:
            now = self._clock()
            local = transport.local
            name = transport.name
            self.store.sip(data, direction, name, (local[0], local[1]), (address[0], address[1]), now)
            if self._hep is not None:
                self._send_hep(data, direction, name, (local[0], local[1]), address, now)
        except Exception:
            self._failure("SIP message")

    def _send_hep(
        self,
        data: bytes,
        direction: str,
        transport: str,
        local: tuple[str, int],
        remote: tuple[str, int],
        now: float,
    ) -> None:
        hep = self.config.hep
        if hep is None or self._hep is None:
            return
        sip_id = sip_call_id(data) or ""
        source, destination = (remote, local) if direction == "in" else (local, remote)
        message = HepMessage(source, destination, now, data, transport, correlation=sip_id)
        try:
            packet = encode(
                message, hep.agent_id, hep.password.reveal() if hep.password is not None else None
            )
        except HepError as exc:
            logger.debug("HEP: %s", exc)
            return
        self._hep.sendto(packet)
        self.hep_sent += 1

    def web_event(self, call_id: str, direction: str, event: object, session: object) -> None:
        """The driver's `web_trace`: a browser's event in, or a signaling event out."""
        try:
            name, text = describe_event(event)
            now = self._clock()
            self.store.web(call_id, direction, _dialect(session), name, text, now)
            dialogs = getattr(session, "dialog_call_ids", None)  # SIP over WebSocket: the library's dialogs
            if callable(dialogs):
                for sip_id in dialogs(call_id):
                    self.store.link(call_id, sip_id, now)
        except Exception:
            self._failure("web event")

    def call_ended(self, call_id: str, sip_call_ids: Iterable[str]) -> None:
        now = self._clock()
        for sip_id in sip_call_ids:
            self.store.link(call_id, sip_id, now)
        self.store.ended(call_id, now)

    def _failure(self, what: str) -> None:
        if not self._failed:
            self._failed = True
            logger.exception("trace: a %s could not be traced (reported once)", what)

    # --- reading -----------------------------------------------------------------------------------
    def _refresh(self, call_id: str) -> bool:
        context = logctx.lookup(call_id)
        if context is not None and context.call_id == call_id:
            for sip_id in context.sip_call_ids:
                self.store.link(call_id, sip_id, self._clock())
        self.store.expire(self._clock())
        return call_id in self.store

    def text(self, call_id: str) -> str | None:
        """The call's trace as text, None when there is none (unknown, or forgotten)."""
        if not self._refresh(call_id):
            return None
        trace = self.store.get(call_id)
        return as_text(trace) if trace is not None else None

    def pcap(self, call_id: str) -> bytes | None:
        if not self._refresh(call_id):
            return None
        trace = self.store.get(call_id)
        return as_pcap(trace) if trace is not None else None
