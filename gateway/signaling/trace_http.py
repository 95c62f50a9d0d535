"""The per-call trace downloads of the admin API (gateway/ops/trace_wiring.py makes the traces):

    GET /admin/api/calls/{call_id}/trace        text/plain: both legs' messages and the decisions, in order
    GET /admin/api/calls/{call_id}/trace.pcap   application/vnd.tcpdump.pcap: the SIP messages (libpcap)

Each route runs `guard(request)` first (the admin check, gateway/signaling/admin_auth.py, which raises
the HTTP refusal); 404 with a JSON error for a call without a trace, or when tracing is off.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Final, Protocol

from aiohttp import web

Guard = Callable[[web.Request], Awaitable[object]]
_CALL_ID: Final = re.compile(r"[A-Za-z0-9._~-]{1,128}")


class TraceSource(Protocol):
    def text(self, call_id: str) -> str | None: ...

    def pcap(self, call_id: str) -> bytes | None: ...


def _error(status: int, message: str, reason: str) -> web.Response:
    return web.json_response(
        {"error": message, "code": status, "reason": reason, "field": "call_id"}, status=status
    )


def add_trace_routes(app: web.Application, traces: TraceSource | None, guard: Guard) -> None:
    """The two downloads, guarded by `guard`; `traces` None: tracing is off (404 saying so)."""

    def download(
        render: Callable[[TraceSource, str], str | bytes | None], content_type: str, suffix: str
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            await guard(request)
            call_id = request.match_info["call_id"]
            if not _CALL_ID.fullmatch(call_id):
                return _error(400, f"not a call id: {call_id[:64]!r}", "bad_request")
            if traces is None:
                return _error(404, "per-call traces are off (trace.enabled)", "trace_disabled")
            body = render(traces, call_id)
            if body is None:
                return _error(404, f"no trace of call {call_id!r}", "not_found")
            return web.Response(
                body=body.encode("utf-8") if isinstance(body, str) else body,
                content_type=content_type,
                charset="utf-8" if isinstance(body, str) else None,
                headers={"Content-Disposition": f'attachment; filename="call-{call_id}.{suffix}"'},
            )

        return handler

    app.router.add_get(
        "/admin/api/calls/{call_id}/trace", download(lambda t, c: t.text(c), "text/plain", "txt")
    )
    app.router.add_get(
        "/admin/api/calls/{call_id}/trace.pcap",
        download(lambda t, c: t.pcap(c), "application/vnd.tcpdump.pcap", "pcap"),
    )
