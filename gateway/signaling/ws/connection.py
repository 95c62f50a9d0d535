"""One browser connection's protocol logic, without the WebSocket: messages in, replies and events out.

A connection starts AWAITING_LOGIN, becomes OPEN on a successful `login` (a `Session` is made, the user
is added to presence and the call service is told), and ends CLOSED (`close()`, idempotent: presence
forgets the session and the call service is told, so the user's calls end cleanly).

    awaiting_login --login ok--> open --close()--> closed
    awaiting_login --close()--> closed

Every message gets an answer: a reply (`registered`, `ack`, `pong`) or an `error` naming the code and
field; a bad message never closes the socket. Once logged in, requests run concurrently when the
transport gives a `run` (the session loop's `SessionSocket.run`, issue 32 item 7): a `message` awaiting
its SIP transaction (Timer F, 32 s) holds nothing else. `request_lane` says how: `ping`, `call`,
`hangup`, `cancel` and `reject` at once (a hang-up is never queued behind a pending transaction, nor
refused while other requests fill `max_requests_in_flight`: up to twice it), the other requests of one
call in order (`answer` before its `ice`, digits in sequence), `message`s to one destination in order;
`login`, `logout` and everything before the login in turn as they come. The session loop
(session_loop.py, through ws/endpoint.py) owns the rate limit, the login deadline and the count of
failed logins (each reported to `login_failed`); it also closes the socket when `close_code` is set
here (a logout, the login timeout).
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import functools
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from gateway.identity import LoginBusy, WebUser
from gateway.identity.lookup import IdentityMap
from gateway.signaling.audio_stream.ws_request import AudioStream, audio_stream_request
from gateway.signaling.errors import (
    Conflict,
    LoginTimeout,
    RateLimited,
    SignalingError,
    TooManySessions,
    Unauthorized,
)
from gateway.signaling.events import (
    Ack,
    Connected,
    EarlyAnswer,
    EarlyMedia,
    Ended,
    ErrorMessage,
    Event,
    Pong,
    Registered,
    ServerMessage,
)
from gateway.signaling.limits import SignalingLimits, TokenBucket, charge_tones
from gateway.signaling.service import (
    CallService,
    ChatService,
    MergeService,
    ReattachService,
    RecordService,
    ReofferService,
    SessionSink,
)
from gateway.signaling.tokens import SessionTokens
from gateway.signaling.turn_rest import IceServers
from gateway.signaling.ws.presence_feed import PresenceFeed
from gateway.signaling.ws.protocol import (
    Answer,
    Call,
    CallMessage,
    CallRequest,
    Cancel,
    Dtmf,
    Hangup,
    Hold,
    Ice,
    Info,
    Login,
    Logout,
    Merge,
    Message,
    Ping,
    Reattach,
    Record,
    Reject,
    Reoffer,
    Request,
    Resume,
    Split,
    Transfer,
    parse_json,
    peek_id,
    request_from_json,
)

logger = logging.getLogger(__name__)


class PresenceRegistry(Protocol):
    """Where open sessions are recorded (gateway.identity.InMemoryPresence, later Redis)."""

    async def add(self, user_id: str, session_id: str) -> None: ...

    async def remove(self, user_id: str, session_id: str) -> None: ...

    async def sessions_of(self, user_id: str) -> tuple[str, ...]: ...


@dataclass(frozen=True, slots=True)
class SignalingContext:
    """What every connection needs; built once by `add_signaling_routes`."""

    call_service: CallService
    identity: IdentityMap
    presence: PresenceRegistry
    tokens: SessionTokens
    ice_servers: IceServers
    limits: SignalingLimits
    monotonic: Callable[[], float]
    presence_feed: PresenceFeed | None = None  # pushes `presence` to logged-in sessions
    video: bool = False  # codecs.video is not empty: `registered` tells the page to offer video
    reconnect_grace: float = 30.0  # web_auth.reconnect_grace, told in `registered`
    # a cluster: the base URL of the instance where a login's (token family's) calls wait, None when
    # here or nowhere (gateway/signaling/ws/relay.py)
    # (login family, the URL found unreachable just before or None) -> the instance to relay the login to
    relay_to: Callable[[str, str | None], Awaitable[str | None]] | None = None


class ConnectionState(enum.Enum):
    AWAITING_LOGIN = "awaiting_login"
    OPEN = "open"
    CLOSED = "closed"


REPLACED: Final = 4010  # close code: a newer login of the same session took its calls over
Send = Callable[[ServerMessage], Awaitable[None]]
# The transport's concurrent runner (SessionSocket.run): the work, its lane (None: at once), whether it
# is urgent (still taken when the others fill the limit); False when too many requests are in flight,
# answered with the error from `too_many`.
Run = Callable[[Callable[[], Awaitable[None]], str | None, bool], bool]
_AT_ONCE: Final = (Ping, Call, Hangup, Cancel, Reject)
_URGENT: Final = (Ping, Hangup, Cancel, Reject)  # answered even while other requests fill the limit


def request_lane(request: Request) -> str | None:
    """The lane a logged-in session's request runs in beside the others (see the module note): None
    for those that run at once, else requests of one lane run one after the other."""
    if isinstance(request, _AT_ONCE):
        return None
    if isinstance(request, Message):
        return "message:" + request.to
    return "call:" + str(getattr(request, "call_id", ""))


@dataclass(slots=True)
class _EarlyAnswer:
    """A `call` with `early_answer`: whether its `ack` went out, the gateway's answer once made, sent."""

    acked: bool = False
    sdp: str | None = None
    sent: bool = False


class Session:
    """A logged-in connection as the call layer sees it (implements `SessionSink`, and
    `SelectiveEarlyAnswerSink` for the calls placed with `early_answer`)."""

    __slots__ = ("_connection", "_early", "_id", "_tasks", "_user")

    def __init__(self, session_id: str, user: WebUser, connection: Connection) -> None:
        self._id = session_id
        self._user = user
        self._connection = connection
        self._early: dict[str, _EarlyAnswer] = {}  # call_id -> its early answer (docs/signaling.md)
        self._tasks: set[asyncio.Task[None]] = set()

    # --- early answers: `answer {call_id, sdp}` after the call's `ack`, before the far end answers ----
    def want_early_answer(self, call_id: str) -> None:
        """The browser placed ``call_id`` with `early_answer`: called before the call's media start."""
        self._early[call_id] = _EarlyAnswer()

    def wants_early_answer(self, call_id: str) -> bool:
        return call_id in self._early

    def web_answer(self, call_id: str, sdp: str) -> None:
        """The gateway's WebRTC answer, as soon as it exists (the driver's early answer): sent as an
        `answer` event once the call's `ack` is out."""
        early = self._early.get(call_id)
        if early is None or early.sdp is not None:
            return
        early.sdp = sdp
        if early.acked:
            task = asyncio.get_running_loop().create_task(self._send_answer(call_id, early))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def acked(self, call_id: str) -> None:
        """The call's `ack` went out: its answer may follow."""
        early = self._early.get(call_id)
        if early is not None:
            early.acked = True
            if early.sdp is not None:
                await self._send_answer(call_id, early)

    async def _send_answer(self, call_id: str, early: _EarlyAnswer) -> None:
        if not early.sent and early.sdp is not None:
            early.sent = True
            await self.send_event(EarlyAnswer(call_id, early.sdp))

    @property
    def id(self) -> str:
        return self._id

    @property
    def user(self) -> WebUser:
        return self._user

    @property
    def closed(self) -> bool:
        return self._connection.state is ConnectionState.CLOSED

    @property
    def token_family(self) -> str | None:
        return self._connection.token_family

    @property
    def logged_out(self) -> bool:
        return self._connection.logged_out

    async def send_event(self, event: Event) -> None:
        if self.closed:
            logger.debug("session %s closed: dropping %s", self._id, type(event).__name__)
            return
        match event:
            case EarlyMedia(call_id=call_id, sdp=str()) | Connected(call_id=call_id, sdp=str()) if (
                (early := self._early.get(call_id)) is not None and early.sdp is not None
            ):  # the browser has the answer already (`answer`): applying it twice would fail
                event = dataclasses.replace(event, sdp=None)
            case Ended(call_id=call_id):
                self._early.pop(call_id, None)
            case _:
                pass
        await self._connection.send(event)

    async def replaced(self) -> None:
        await self._connection.replaced()

    def __repr__(self) -> str:
        return f"Session({self._id!r}, user={self._user.id!r})"


class Connection:
    def __init__(
        self,
        context: SignalingContext,
        send: Send,
        remote: str = "",
        *,
        login_failed: Callable[[], None] = lambda: None,
        run: Run | None = None,
        too_many: Callable[[], SignalingError] | None = None,
        kick: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        self._context = context
        self._kick = kick  # closes the socket now, with a code (`replaced`)
        self._send = send
        self._run = run  # None: every request in turn (a transport without a concurrent runner)
        self._too_many = too_many
        self._login_failed = login_failed  # the session loop counts them (max_failed_logins: close 4001)
        self.remote = remote  # the client's address: login throttling counts failures per address
        self.id = secrets.token_urlsafe(12)
        self.state = ConnectionState.AWAITING_LOGIN
        self.session: Session | None = None
        self.close_code: int | None = None  # set when the transport must close the socket
        self._dtmf_budget = TokenBucket(1.0, context.limits.dtmf_burst, context.monotonic)
        self._token_family: str | None = None  # the login this session's tokens descend from
        self.logged_out = False  # a `logout` ended it: its calls end at once (no reconnect grace)

    @property
    def token_family(self) -> str | None:
        return self._token_family

    def _set_state(self, state: ConnectionState) -> None:
        logger.info("connection %s: %s -> %s", self.id, self.state.value, state.value)
        self.state = state

    async def send(self, message: ServerMessage) -> None:
        try:
            await self._send(message)
        except Exception:  # a socket that died under us: the receive loop notices and closes
            logger.debug("connection %s: send failed", self.id, exc_info=True)

    async def receive(self, text: str | bytes) -> None:
        """Handle one message from the browser; the answer goes out through `send`."""
        if self.state is ConnectionState.CLOSED:
            return
        data: object = None
        try:
            data = parse_json(text, self._context.limits.max_message_bytes)
            request = request_from_json(data)
        except SignalingError as exc:
            await self.send(ErrorMessage.from_error(exc, peek_id(data)))
            return
        if self._run is None or self.session is None or isinstance(request, Login | Logout):
            await self._handle(request)
            return
        work = functools.partial(self._handle, request)
        if not self._run(work, request_lane(request), isinstance(request, _URGENT)):
            error = self._too_many() if self._too_many is not None else RateLimited("too many requests")
            await self.send(ErrorMessage.from_error(error, request.id, getattr(request, "call_id", None)))

    async def _handle(self, request: Request) -> None:
        call_id = getattr(request, "call_id", None)
        try:
            reply = await self._dispatch(request)
        except SignalingError as exc:
            await self.send(ErrorMessage.from_error(exc, request.id, call_id))
            return
        except Exception:
            logger.exception("connection %s: %s failed", self.id, type(request).__name__)
            await self.send(
                ErrorMessage("internal_error", "the gateway failed to handle this", None, request.id, call_id)
            )
            return
        if reply is not None:
            await self.send(reply)
            if isinstance(reply, Ack) and reply.request == "call" and reply.call_id and self.session:
                await self.session.acked(reply.call_id)

    async def _dispatch(self, request: Request) -> ServerMessage | None:
        if isinstance(request, Ping):
            return Pong(request.id)
        if isinstance(request, Login):
            await self._login(request)
            return None
        if self.session is None:
            raise Unauthorized("log in first (send a login message)")
        if isinstance(request, Logout):
            return await self._logout(request)
        return await self._call_request(self.session, request)

    async def _call_request(self, session: Session, request: CallRequest) -> Ack:
        """`call` and `message` answer with what the service made; every other request is a row of
        `_ON_CALL` (its ack's name and what the service does), acked with its call id."""
        service = self._context.call_service
        match request:
            case Call():
                call_id = await service.dial(
                    session, request.to, request.sdp, request.headers, request.transfer_of
                )
                if request.early_answer:  # before anything awaits: the call's media have not started
                    session.want_early_answer(call_id)
                return Ack(request.id, "call", call_id)
            case Message():
                status = await service.message(session, request.to, request.body)
                return Ack(request.id, "message", None, status)
            case Merge():  # three-way calls: the conference's id comes in `merged`
                if not isinstance(service, MergeService):
                    raise Conflict("this gateway merges no calls", field="call_ids")
                await service.merge(session, list(request.call_ids))
                return Ack(request.id, "merge", None)
            case Dtmf():
                self._charge_tones(request)
        name, handle = _ON_CALL[type(request)]
        await handle(service, session, request)
        return Ack(request.id, name, request.call_id)

    def _charge_tones(self, request: Dtmf) -> None:
        """The digits' seconds of tones from the DTMF budget; refused (`rate_limited`) past it."""
        charge_tones(self._dtmf_budget, request.digits, request.duration_ms, self._context.limits.dtmf_burst)

    async def _login(self, request: Login) -> None:
        if self.state is not ConnectionState.AWAITING_LOGIN:
            raise Conflict("already logged in on this connection")
        user = await self._authenticate(request)
        context = self._context
        open_sessions = len(await context.presence.sessions_of(user.id))
        if open_sessions >= context.limits.max_sessions_per_user:
            raise TooManySessions(
                f"user {user.id!r} already has {context.limits.max_sessions_per_user} open sessions"
            )
        session = Session(self.id, user, self)
        await context.presence.add(user.id, session.id)  # may refuse (a cluster without Redis): not OPEN
        self.session = session
        self._set_state(ConnectionState.OPEN)
        await self.send(
            Registered(
                id=request.id,
                session_id=session.id,
                user=user.id,
                display_name=user.display_name,
                sip=user.aor.aor,
                ice_servers=context.ice_servers.for_user(user.id),
                token=self._issue_token(user.id),
                token_expires_in=context.tokens.ttl,
                video=context.video,
                reconnect_grace=context.reconnect_grace,
            )
        )
        await context.call_service.session_opened(session)
        feed = context.presence_feed
        if feed is not None:
            feed.watch(session)
            if not open_sessions:  # her first session: her contacts see her online
                await feed.changed(user.id, online=True)

    async def _authenticate(self, request: Login) -> WebUser:
        identity = self._context.identity
        user: WebUser | None = None
        if request.token is not None:
            try:
                claims = await self._context.tokens.check(request.token)
            except Unauthorized:
                self._login_failed()
                raise
            user = await identity.store.get(claims.user_id)
            if user is None:
                self._login_failed()
                raise Unauthorized("the user of this session token no longer exists", field="token")
            self._token_family = claims.family
            return user
        if request.user is not None and request.secret is not None:
            try:
                user = await identity.verify_web_login(request.user, request.secret, self.remote)
            except LoginBusy as exc:  # not a failed login: the secret was not even checked
                raise RateLimited(str(exc), field="secret") from None
        if user is None:
            self._login_failed()
            raise Unauthorized("wrong user id or secret", field="secret")
        return user

    def _issue_token(self, user_id: str) -> str:
        if self._token_family is None:  # a login with a secret starts a family of tokens
            self._token_family = secrets.token_urlsafe(12)
        return self._context.tokens.issue(user_id, self._token_family)

    async def _logout(self, request: Logout) -> Ack:
        """Revoke this login's tokens everywhere, then close the connection (1000)."""
        if self._token_family is not None:
            await self._context.tokens.revoke(self._token_family)
            logger.info("connection %s: logout: session tokens revoked", self.id)
        self.logged_out = True
        self.close_code = 1000
        return Ack(request.id, "logout")

    async def replaced(self) -> None:
        """A newer login of this one took its calls over (`ResumableSink.replaced`): closed as if its
        socket had gone (its calls are detached for the newer one), then the socket too (4010)."""
        await self.close()
        if self._kick is not None:
            await self._kick(REPLACED)

    async def login_timed_out(self) -> None:
        """The login deadline passed: tell the browser, and ask the transport to close."""
        if self.state is not ConnectionState.AWAITING_LOGIN:
            return
        seconds = self._context.limits.login_timeout
        error = LoginTimeout(f"no login within {seconds:g} seconds: closing")
        await self.send(ErrorMessage.from_error(error))
        self.close_code = error.close_code

    async def close(self) -> None:
        """Forget the session and tell the call service (idempotent; never raises)."""
        if self.state is ConnectionState.CLOSED:
            return
        session = self.session
        self._set_state(ConnectionState.CLOSED)
        if session is None:
            return
        feed = self._context.presence_feed
        try:
            await self._context.presence.remove(session.user.id, session.id)
            if feed is not None:
                feed.unwatch(session)
                if not await self._context.presence.sessions_of(session.user.id):
                    await feed.changed(session.user.id, online=False)  # her last session closed
        except Exception:
            logger.exception("connection %s: presence removal failed", self.id)
        try:
            await self._context.call_service.session_closed(session)
        except Exception:
            logger.exception("connection %s: session_closed failed", self.id)


# --- what the call service does for each request on a call -----------------------------------------


async def _answer(service: CallService, session: Session, request: Answer) -> None:
    await service.answer(session, request.call_id, request.sdp)


async def _reject(service: CallService, session: Session, request: Reject) -> None:
    await service.reject(session, request.call_id, request.status)


async def _cancel(service: CallService, session: Session, request: Cancel) -> None:
    await service.cancel(session, request.call_id)


async def _hangup(service: CallService, session: Session, request: Hangup) -> None:
    await service.hangup(session, request.call_id)


async def _hold(service: CallService, session: Session, request: Hold) -> None:
    await service.hold(session, request.call_id)


async def _resume(service: CallService, session: Session, request: Resume) -> None:
    await service.resume(session, request.call_id)


async def _record(service: CallService, session: Session, request: Record) -> None:
    await record_call(service, session, request.call_id, request.action)


async def record_call(
    service: CallService, session: SessionSink, call_id: str, action: str
) -> dict[str, object]:
    """`record` (here and on JSON-RPC): the call's recording, its state now (gateway/runtime/recordings.py)."""
    if not isinstance(service, RecordService):
        raise Conflict("this gateway records no calls", field="action")
    return await service.record(session, call_id, action)


async def _split(service: CallService, session: Session, request: Split) -> None:
    if not isinstance(service, MergeService):
        raise Conflict("this gateway merges no calls", field="call_id")
    await service.split(session, request.call_id)


async def _dtmf(service: CallService, session: Session, request: Dtmf) -> None:
    await service.dtmf(session, request.call_id, request.digits, request.duration_ms)


async def _ice(service: CallService, session: Session, request: Ice) -> None:
    await service.add_candidate(session, request.call_id, request.candidate)


async def _info(service: CallService, session: Session, request: Info) -> None:
    await service.info(session, request.call_id, request.content_type, request.body)


async def _call_message(service: CallService, session: Session, request: CallMessage) -> None:
    if not isinstance(service, ChatService):
        raise Conflict("this gateway carries no chat in calls", field="call_id")
    await service.call_message(session, request.call_id, request.body)


async def _transfer(service: CallService, session: Session, request: Transfer) -> None:
    await service.transfer(session, request.call_id, request.to, request.replaces)


async def _reoffer(service: CallService, session: Session, request: Reoffer) -> None:
    if not isinstance(service, ReofferService):
        raise Conflict("this gateway takes no new offer during a call", field="sdp")
    await service.reoffer(session, request.call_id, request.sdp)


async def _reattach(service: CallService, session: Session, request: Reattach) -> None:
    if not isinstance(service, ReattachService):
        raise Conflict("this gateway keeps no call through a reconnect", field="call_id")
    await service.reattach(session, request.call_id, request.sdp)


# Each request on a call: the name its ack carries, and what the service does (`Any`: each row's
# function takes its own request type, which the key names).
_ON_CALL: Final[dict[type, tuple[str, Callable[[CallService, Session, Any], Awaitable[None]]]]] = {
    Answer: ("answer", _answer),
    Reject: ("reject", _reject),
    Cancel: ("cancel", _cancel),
    Hangup: ("hangup", _hangup),
    Hold: ("hold", _hold),
    Resume: ("resume", _resume),
    Split: ("split", _split),
    Record: ("record", _record),
    Dtmf: ("dtmf", _dtmf),
    AudioStream: ("audio_stream", audio_stream_request),
    Ice: ("ice", _ice),
    Info: ("info", _info),
    CallMessage: ("message", _call_message),
    Transfer: ("transfer", _transfer),
    Reattach: ("reattach", _reattach),
    Reoffer: ("offer", _reoffer),
}
