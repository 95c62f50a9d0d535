"""`RuntimeHost`: what a call's runtime needs from the driver (the driver implements it).

This module owns that boundary only; it imports the call layer's registry and events, the signaling's
`SessionSink` and the SIP UA's types, and the runtime's `CallMedia`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from gateway.calls import CallRegistry
from gateway.calls.boundary.events import TransferOutcome
from gateway.media.events import MediaEvent, WebMediaLost
from gateway.runtime.call_media import CallMedia
from gateway.signaling.service import SessionSink
from gateway.sip import UserAgent
from gateway.sip.useragent.ua_calls import Call as SipCall

if TYPE_CHECKING:
    from gateway.runtime.call_runtime import CallRuntime


# (call id, "in" from the browser / "out" to it, the call event or signaling event, the session or None):
# the web leg's signaling of each call, for the per-call traces (gateway/ops/trace_wiring.py)
WebTrace = Callable[[str, str, object, object], None]


class RuntimeHost(Protocol):
    """What a call's runtime needs from the driver."""

    registry: CallRegistry
    web_trace: WebTrace | None  # set while per-call traces are on

    @property
    def ua(self) -> UserAgent: ...

    def session(self, session_id: str) -> SessionSink | None: ...

    def new_bridge(self, call_id: str, on_event: Callable[[MediaEvent], None]) -> CallMedia: ...

    def passthrough(self, call_id: str) -> bool:
        """Whether the call's route passes the browser's media through (gateway/config/routes.py)."""
        ...

    def runtime_done(self, runtime: CallRuntime) -> None: ...

    def sip_call(self, call_id: str) -> SipCall | None:
        """The SIP leg of another call (an attended transfer's consultation call)."""
        ...

    def transfer_done(self, runtime: CallRuntime, consult_call_id: str | None) -> None:
        """This call was transferred: end the consultation call that was replaced, if any."""
        ...

    def transfer_outcome(self, call_id: str, outcome: TransferOutcome) -> None:
        """How the call placed for call `call_id`'s REFER goes (a 1xx, 200, or its failure)."""
        ...

    def media_lost(self, call_id: str, event: WebMediaLost) -> None:
        """The browser's audio of call `call_id` went missing: tell its session (`web_lost`) and the
        metrics; the SIP side hears the reconnecting fill meanwhile (gateway/media/codecs/comfort_fill.py)."""
        ...

    def resumable(self, call_id: str, closed_by_browser: bool = False) -> bool:
        """Whether the browser carrying the call may come back for it (web_auth.reconnect_grace, a
        session of a login that can reconnect): a web-leg failure then waits for it (MediaWebLost).
        ``closed_by_browser``: it closed its RTCPeerConnection itself (DTLS close_notify)."""
        ...

    def admit_message(self, call_id: str, sender: str, web_user: str | None) -> float | None:
        """A MESSAGE from `sender` in call `call_id`'s SIP dialog: None when the web user carrying the call
        may be shown it, else the whole seconds until she might (limits.message_rate, message_rate.py)."""
        ...

    def call_progress(self, runtime: CallRuntime, progress: str) -> None:
        """The call first rang (`ringing`: the SIP party's phone, or a web user's) or was first answered
        (`answered`): the webhooks (gateway/ops/webhooks.py)."""
        ...

    def early_answer(self, call_id: str) -> Callable[[str], None] | None:
        """Where the WebRTC answer of an outbound call goes as soon as it exists (before the SIP side
        answered): the HTTP offer API's sessions want it at once; None: the usual answer on 18x/2xx."""
        ...
