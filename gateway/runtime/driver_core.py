"""`DriverCore`: the driver's state, the calls it carries and its side of each call's runtime.

It holds the registry, the open browser sessions, the HTTP sessions and one `CallRuntime` per call,
and implements `RuntimeHost` (gateway/runtime/host.py): a call's bridge settings and media mode
(terminated or pass-through, from the routes), the SIP legs of other calls (an attended transfer),
whether a browser may come back for its call. It starts runtimes, feeds them browser events (a
refused event becomes a signaling error), and ends every call at shutdown. The entry points build on
it in `CallDriver` (driver.py): browser requests (browser_requests.py) and the HTTP offer API
(http_offers.py) as subclasses, the SIP side's new calls (sip_inbound.py) as an object of its own. This module imports the
call layer, config, identity, the media package's settings and events, the signaling's errors and
`SessionSink`, the SIP UA's types and the runtime's own modules, never those entry points.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from typing import Any

from gateway.calls import (
    CallError,
    CallRegistry,
    IllegalEvent,
    UnknownCall,
    WrongSession,
)
from gateway.calls.boundary import commands as cmd
from gateway.calls.boundary import events as ev
from gateway.calls.states import CallDirection
from gateway.config import Config
from gateway.config.routes import MediaMode, RouteConfig, SipOffer, media_mode, route_for
from gateway.config.values import WebCalls
from gateway.identity import WebUser
from gateway.identity.lookup import IdentityMap
from gateway.identity.model import Found, NotOnline
from gateway.media.bridge_settings import BridgeSettings
from gateway.media.events import MediaEvent, WebMediaLost
from gateway.runtime.call_media import BridgedMedia
from gateway.runtime.call_runtime import CallRuntime
from gateway.runtime.continuity.reconnect import Reconnects
from gateway.runtime.continuity.takeover import Takeovers
from gateway.runtime.early_route import EarlyRoutes
from gateway.runtime.host import WebTrace
from gateway.runtime.message_rate import MessageThrottle
from gateway.runtime.offers import HttpSession
from gateway.runtime.recordings import Recordings
from gateway.signaling.audio_stream.ws_request import StreamRequests
from gateway.signaling.errors import BadRequest, Conflict, NotFound, SignalingError
from gateway.signaling.events import Calls, Event, WebLost
from gateway.signaling.service import (
    EarlyAnswerSink,
    SelectiveEarlyAnswerSink,
    SessionSink,
)
from gateway.sip import UserAgent
from gateway.sip.transactions.tu import IncomingRequest
from gateway.sip.useragent.incoming import IncomingCall
from gateway.sip.useragent.ua_calls import Call as SipCall

logger = logging.getLogger(__name__)

BridgeFactory = Callable[[str], BridgeSettings]  # call id -> that call's bridge settings


class DriverCore:
    """The driver's state and its side of each call's runtime (`RuntimeHost`); see the module note."""

    def __init__(
        self,
        registry: CallRegistry,
        identity: IdentityMap,
        bridge_settings: BridgeFactory,
        config: Config,
    ) -> None:
        self.registry = registry
        self.identity = identity
        self._pass_headers = config.sip.pass_headers  # custom headers passed both ways (allow-list)
        self._info_types = frozenset(config.sip.info_content_types)  # INFO bodies relayed (RFC 6086)
        self._pbx_domain = config.pbx.effective_domain
        self._bridge_settings = bridge_settings
        self.routes = config.routes
        self._web_calls = config.calls.web_calls
        self._has_pbx = config.pbx.address is not None
        self._ua: UserAgent | None = None
        self._sessions: dict[str, SessionSink] = {}
        self._http: dict[tuple[str, str], HttpSession] = {}  # by (user id, session id)
        self._runtimes: dict[str, CallRuntime] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.on_media_lost: Callable[[str], None] | None = None  # a browser's audio lost, by cause (metrics)
        self._accepting = True
        self.registrations: dict[str, str] = {}  # AOR -> RegState value, for the users the UA registers
        self.registration_reasons: dict[str, str] = {}
        self.pbx_state: str | None = None  # the OPTIONS keep-alive's view, told to every session (`pbx`)
        self.pbx_states: dict[str, str] = {}  # each PBX's by name (`default`: pbx_state; config/pbxs.py)
        self.user_states: Callable[[str], tuple[Event, ...]] = lambda _user: ()  # lamps (runtime/lamps/)
        self.on_call_end: Callable[[CallRuntime], None] | None = None  # call records, metrics (gateway/ops)
        # a call answered, or taken over here: a cluster writes its handover now, not at its next heartbeat
        # (gateway/cluster/live_calls.py `soon`)
        self.on_steady: Callable[[str], None] | None = None
        self.on_gone: Callable[[str], None] | None = None  # ...and a call over: out of there as soon
        self.web_trace: WebTrace | None = None  # each call's web signaling, for traces (gateway/ops)
        self.audio_stream: StreamRequests | None = None  # /ws audio_stream (runtime/audio_streams/)
        self.on_call_progress: Callable[[CallRuntime, str], None] | None = (
            None  # ringing, answered (webhooks)
        )
        # MESSAGEs shown to a web user, in a call's dialog or out of any: limits.message_rate/burst
        # (runtime/message_rate.py)
        self.messages_in = MessageThrottle(
            config.limits.message_rate, config.limits.message_burst, time.monotonic
        )
        self.reconnects = Reconnects(
            registry
        )  # calls waiting for their browser (runtime/continuity/reconnect.py)
        self.reconnects.end_to_end = self.end_to_end
        self.takeovers = Takeovers(
            self
        )  # calls moving between instances of a cluster (runtime/continuity/takeover.py)
        # the calls' recordings (runtime/recordings.py): the mode decided when a call is answered
        self.recordings = Recordings(self, self._runtime, config.recording, config.users)
        # A cluster (gateway/cluster/routing.py): the Contacts to redirect an INVITE for users who are
        # online on other instances only (302), or () to answer as alone (480 / ring here)
        # (NotOnline), or to fork to every instance holding her when she is split over several (Found)
        self.inbound_redirect: Callable[[IncomingCall | IncomingRequest, NotOnline | Found], Awaitable[tuple[str, ...]]] | None = None  # fmt: skip
        self.early = EarlyRoutes(self)  # ...decided before the UA builds the call (runtime/early_route.py)
        # ...and web-to-web calls for a callee online on another instance only: the Request-URI there,
        # and the parameter that keeps a call through this instance's own listener from being redirected
        self.cluster_web_route: Callable[[WebUser], Awaitable[str | None]] | None = None
        self.cluster_route_tag = ""
        # Rooms with SIP parties (gateway/runtime/rooms/): the target of an INVITE for one of
        # `rooms.numbers` (the room's own session), or None for the usual lookup
        self.room_calls: Callable[[str, str | None], Awaitable[Found | None]] | None = None
        # a cluster: the Contact of the instance a room lives on, for an INVITE to one of its numbers that
        # reached another (answered 302 there: gateway/runtime/early_route.py); None: the room is here
        self.room_redirect: Callable[[str], Awaitable[str | None]] | None = None
        # ...and a web user's call to one of those numbers: raises `Forbidden` unless rooms.rules let the
        # user join that room (its SIP side would join it for the user)
        self.room_guard: Callable[[WebUser, str], None] | None = None
        # ...those numbers: a web user's call or blind transfer to one goes to the room through the
        # gateway's own listener, not to the PBX (runtime/web_calls.py `room_route`)
        self.room_numbers: frozenset[str] = frozenset()
        # A call that ended leaves its three-way conference (gateway/runtime/merge/), by call id
        self.call_gone: Callable[[str], None] | None = None

    def attach_ua(self, ua: UserAgent) -> None:
        self._ua = ua
        self.registrations = dict(ua.registration_states())

    @property
    def ua(self) -> UserAgent:
        if self._ua is None:
            raise RuntimeError("the driver has no SIP user agent yet")
        return self._ua

    def session(self, session_id: str) -> SessionSink | None:
        return self._sessions.get(session_id)

    def new_bridge(self, call_id: str, on_event: Callable[[MediaEvent], None]) -> BridgedMedia:
        settings = self._bridge_settings(call_id)
        machine = self.registry.get(call_id) if call_id in self.registry else None
        if machine is not None and machine.direct:
            # a web user of ours on the far side of the loop: the browsers' codec order on the loop's SIP
            # leg too, so that both bridges forward (Opus end to end) instead of transcoding to PCMU
            web_first = [
                c for c in settings.web_codecs if c.lower() in {s.lower() for s in settings.sip_codecs}
            ]
            rest = [c for c in settings.sip_codecs if c.lower() not in {w.lower() for w in web_first}]
            settings = replace(settings, sip_codecs=(*web_first, *rest))
        if machine is not None and machine.direction is CallDirection.OUTBOUND:
            route = route_for(self.routes, machine.target)
            if route is not None and route.sip_offer is SipOffer.WEBRTC:  # a WebRTC-only SIP side
                settings = replace(settings, offer_webrtc=True)
        return BridgedMedia(settings, on_event)

    def end_to_end(self, call_id: str) -> bool:
        """Whether call `call_id`'s media flows between the browser and the far end, not through the
        gateway (its media is a pass-through: what it is, not what today's routes would make it)."""
        runtime = self._runtimes.get(call_id)
        return runtime is not None and runtime.bridge is not None and runtime.bridge.passes_through

    def passthrough(self, call_id: str) -> bool:
        """A web user's call to a destination whose route says `media: passthrough`; a call to a web user
        from a caller (From URI) whose route says so, when its offer is WebRTC's (ICE and DTLS-SRTP: what
        a browser can take as it is; a plain RTP offer is terminated on the bridge whatever the route).
        Once the call's media exists, what it is (a pickup brings a pass-through call's media back)."""
        machine = self.registry.get(call_id) if call_id in self.registry else None
        if machine is None:
            return False
        runtime = self._runtimes.get(call_id)
        if runtime is not None and runtime.bridge is not None:
            return runtime.bridge.passes_through
        if machine.direction is CallDirection.OUTBOUND:
            if machine.direct and self._web_calls is WebCalls.P2P and not self._to_room(machine.target):
                return True  # to a web user: browser to browser
            return media_mode(self.routes, machine.target) is MediaMode.PASSTHROUGH
        return machine.passthrough  # decided with the INVITE (_inbound_passthrough)

    def _to_room(self, target: str | None) -> bool:
        """Whether a call's Request-URI is a room's number at our own listener (its media is mixed here)."""
        user = target.partition(":")[2].partition("@")[0] if target else ""
        return user.replace("%23", "#") in self.room_numbers

    def media_lost(self, call_id: str, event: WebMediaLost) -> None:
        machine = self.registry.get(call_id) if call_id in self.registry else None
        logger.warning("call=%s web_lost: the browser's audio is missing (%s)", call_id, event.cause.value)
        if self.on_media_lost is not None:
            self.on_media_lost(event.cause.value)
        session = self._sessions.get(machine.session_id) if machine and machine.session_id else None
        if session is not None and not session.closed:
            self.spawn(session.send_event(WebLost(call_id, event.cause.value, round(event.seconds, 1))))

    def resumable(self, call_id: str, closed_by_browser: bool = False) -> bool:
        machine = self.registry.get(call_id) if call_id in self.registry else None
        session = self._sessions.get(machine.session_id) if machine and machine.session_id else None
        return self.reconnects.resumable(call_id, session, closed_by_browser)

    async def tell_waiting(self, call_id: str) -> None:
        """Call `call_id`, taken over here, waits for its login: a session of that login already open here
        (it logged in before the takeover) is told now, as a login after it is in `session_opened`."""
        for session, summary in self.reconnects.newly_waiting(call_id, list(self._sessions.values())):
            logger.info(
                "call=%s taken over here: told session %s of %s", call_id, session.id, session.user.id
            )
            await session.send_event(Calls((summary,)))

    def runtime_done(self, runtime: CallRuntime) -> None:
        if self._runtimes.get(runtime.call_id) is runtime:
            del self._runtimes[runtime.call_id]
        if self.call_gone is not None:
            self.call_gone(runtime.call_id)
        if self.on_gone is not None:
            try:
                self.on_gone(runtime.call_id)
            except Exception:  # the heartbeat takes it out anyway
                logger.exception("call=%s not taken out of the live calls at once", runtime.call_id)
        try:  # the last file finished and named on the runtime, for its record
            self.recordings.ended(runtime)
        except Exception:
            logger.exception("call=%s recording not finished", runtime.call_id)
        if self.on_call_end is not None and not runtime.unrecorded:
            try:
                self.on_call_end(runtime)
            except Exception:  # a call record or a metric must never break the call's teardown
                logger.exception("call=%s end of call not recorded", runtime.call_id)
        for task in runtime.pending:  # a BYE still retransmitted to a far end that does not answer
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def call_progress(self, runtime: CallRuntime, progress: str) -> None:
        if progress == "answered":
            try:  # its recording mode; `always` starts now
                self.recordings.answered(runtime)
            except Exception:  # a recording must never break the call
                logger.exception("call=%s recording not started", runtime.call_id)
            self.steady(runtime.call_id)
        if self.on_call_progress is not None:
            try:
                self.on_call_progress(runtime, progress)
            except Exception:  # a webhook must never break the call
                logger.exception("call=%s %s not reported", runtime.call_id, progress)

    def steady(self, call_id: str) -> None:
        if self.on_steady is not None:
            try:
                self.on_steady(call_id)
            except Exception:  # the heartbeat writes it anyway
                logger.exception("call=%s handover not written at once", call_id)

    @property
    def calls(self) -> int:
        return len(self.registry)

    @property
    def accepting(self) -> bool:
        return self._accepting

    def drain(self) -> None:
        """Take no new call (INVITEs get 503, new web calls `unavailable`); calls in progress go on."""
        if self._accepting:
            logger.info("draining: no new calls (%d in progress)", len(self.registry))
        self._accepting = False

    @property
    def runtimes(self) -> tuple[CallRuntime, ...]:
        """The calls being carried out (for metrics: their bridges' figures)."""
        return tuple(self._runtimes.values())

    @property
    def sessions(self) -> tuple[SessionSink, ...]:
        """The open browser sessions of every dialect (WebSocket, HTTP offer, SIP over WebSocket)."""
        return tuple(self._sessions.values())

    def sip_call(self, call_id: str) -> SipCall | None:
        runtime = self._runtimes.get(call_id)
        return runtime.sip.call if runtime is not None else None

    def transfer_done(self, runtime: CallRuntime, consult_call_id: str | None) -> None:
        """An attended transfer succeeded: its consultation call hears it (`ReplacedByTransfer`; the call
        decides what then, gateway/calls/connected/transfer.py)."""
        consult = self._runtimes.get(consult_call_id) if consult_call_id is not None else None
        if consult is not None and not consult.finished:
            consult.feed_nowait(ev.ReplacedByTransfer())

    def transfer_outcome(self, call_id: str, outcome: ev.TransferOutcome) -> None:
        runtime = self._runtimes.get(call_id)
        if runtime is not None and not runtime.finished:
            runtime.feed_nowait(outcome)

    def start_runtime(
        self,
        call_id: str,
        direction: CallDirection,
        commands: list[cmd.Command],
        sip_call_id: str | None = None,
    ) -> CallRuntime:
        runtime = CallRuntime(call_id, direction, self)
        runtime.sip.next_call_id = sip_call_id  # before its first command: the INVITE takes it
        # (a call refused at once is closed and forgotten already: its record needs the machine all the same)
        runtime.machine = (
            self.registry.get(call_id) if call_id in self.registry else self.registry.started(call_id)
        )
        self._runtimes[call_id] = runtime
        runtime.run_commands(commands)
        return runtime

    def adopt_runtime(self, runtime: CallRuntime) -> None:
        """The runtime of a call taken over from another instance (runtime/continuity/takeover.py)."""
        if runtime.call_id in self._runtimes:
            raise Conflict(f"call {runtime.call_id!r} runs here already", field="call_id")
        self._runtimes[runtime.call_id] = runtime

    def adopt_http(
        self,
        user: WebUser,
        public_id: str,
        internal_id: str,
        call_id: str,
        *,
        dial: str | None,
        api_key: str | None,
        whip: bool = False,
    ) -> HttpSession:
        """The HTTP session of a call taken over from an instance that died (runtime/continuity/takeover.py):
        the same ids, so that the client's next offer with its `session_id` renews the call's media here
        (a WHIP resource's: its client's next publish to the same destination, `whip_waiting`)."""
        if (user.id, public_id) in self._http or internal_id in self._sessions:
            raise Conflict(f"session {public_id!r} exists already", field="session_id")
        session = HttpSession(
            user, on_end=self._http_ended, session_id=public_id, dial=dial, api_key=api_key,
            renewable=not whip, internal_id=internal_id,
        )  # fmt: skip
        session.call_id = session.progress.call_id = call_id
        self._sessions[session.id] = session
        self._http[user.id, public_id] = session
        return session

    def forget_http(self, session: HttpSession) -> None:
        """An HTTP session whose call another instance carries on now (a drain's handover): not ours to
        own, renew or list any more."""
        self._sessions.pop(session.id, None)
        self._http.pop((session.user.id, session.public_id), None)

    def _http_ended(self, session: HttpSession) -> None:
        """The session's call ended (the far end hung up, or it never connected): it takes no more
        requests but stays readable (GET /webrtc/sessions/{id}) for HTTP_RETENTION seconds
        (http_offers.py)."""
        self._sessions.pop(session.id, None)

    def _runtime(self, call_id: str) -> CallRuntime:
        runtime = self._runtimes.get(call_id)
        if runtime is None or runtime.finished or call_id not in self.registry:
            raise NotFound(f"no call {call_id!r}", field="call_id")
        return runtime

    async def _feed(self, call_id: str, event: ev.Event) -> None:
        """Feed a browser request's event; the machine's refusal becomes a signaling error."""
        try:
            await self._runtime(call_id).feed(event)
        except (UnknownCall, WrongSession):
            raise NotFound(f"no call {call_id!r} for this session", field="call_id") from None
        except IllegalEvent as exc:
            raise Conflict(str(exc), field="call_id") from None
        except CallError as exc:
            raise BadRequest(str(exc)) from None

    def admit_message(self, call_id: str, sender: str, web_user: str | None) -> float | None:
        """The same buckets as MESSAGEs out of dialog (sip_inbound.py): per web user and per (sender, web
        user); a call no web user carries yet (ringing, or a room's) has buckets of its own."""
        machine = self.registry.get(call_id) if call_id in self.registry else None
        session = self._sessions.get(machine.session_id) if machine and machine.session_id else None
        recipient = session.user.id if session is not None else web_user
        return self.messages_in.admit(sender, (recipient or f"call {call_id}",))

    def early_answer(self, call_id: str) -> Callable[[str], None] | None:
        """Sessions of the API dialects (HTTP offers, JSON-RPC) get the WebRTC answer as soon as the bridge
        made it (RuntimeHost), and the WebSocket sessions' calls placed with `early_answer`; the others
        with the far end's answer."""
        machine = self.registry.get(call_id) if call_id in self.registry else None
        session = self._sessions.get(machine.session_id) if machine and machine.session_id else None
        if isinstance(session, SelectiveEarlyAnswerSink) and not session.wants_early_answer(call_id):
            return None  # a WebSocket call placed without early_answer
        return (
            functools.partial(session.web_answer, call_id) if isinstance(session, EarlyAnswerSink) else None
        )

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def reload_routes(self, routes: tuple[RouteConfig, ...]) -> None:
        """SIGHUP (gateway/reload.py): the media routes of calls placed from now on."""
        self.routes = routes

    async def close(self, timeout: float = 5.0) -> None:
        """Stop accepting calls, end every call (BYE, CANCEL, 480) and close the bridges; idempotent."""
        self._accepting = False
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        runtimes = list(self._runtimes.values())
        for runtime in runtimes:  # each ends as the gateway's own: `ended` (shutdown) to its browsers
            try:  # (a detached one's too: BYE), the SIP side hung up; recorded "shutdown" by the gateway
                await runtime.feed(ev.GatewayStopping())
            except (CallError, SignalingError) as exc:  # not begun, or over already
                logger.info("call=%s shutdown: %s", runtime.call_id, exc)
        if runtimes:
            await asyncio.gather(*(r.stop(timeout) for r in runtimes), return_exceptions=True)
        for session in list(self._http.values()):
            session.close()
        self._http.clear()
        # the recordings' last files written (their threads joined, off the event loop)
        await asyncio.get_running_loop().run_in_executor(None, self.recordings.close)
