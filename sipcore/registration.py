"""Registration client (RFC 3261 §10.2): one sans-I/O state machine per address of record.

How it works: the driver calls :meth:`Registration.start`, :meth:`~Registration.on_response`,
:meth:`~Registration.on_timer` and :meth:`~Registration.stop` with its clock's ``now``, and
carries out the actions returned: :class:`SendRequest` (a REGISTER to hand to a new non-INVITE
client transaction), :class:`SetTimer` (the one timer of the registration, replacing any earlier
one), :class:`CancelTimer`, and :class:`StateChanged` for the admin view and logs.

Every REGISTER of a registration shares one Call-ID and From tag, with CSeq incrementing
(§10.2.4). A 401/407 is answered once through :class:`DigestClient` (again only for
``stale=true``; refused credentials end in FAILED rather than a loop). A 200 gives the granted
expiry: our Contact's ``expires`` in the 200, else its Expires header, else what we asked
(§10.2.4); the refresh is scheduled before it runs out. A 423 is retried with its Min-Expires
(§10.2.8). Other final responses, and timeouts (a synthetic 408 from the transaction layer or
:meth:`~Registration.on_timeout`), lead to RETRY_WAIT with exponential backoff and jitter (the
RFC 5626 §4.5 formula). :meth:`~Registration.stop` removes the binding with ``expires=0``
(§10.2.2), after the final response to a REGISTER still in progress (§10.2: one at a time).

Transitions are the table ``TABLE``; a (state, event) pair absent from it raises
:class:`RegistrationError` naming both.
"""

from __future__ import annotations

import enum
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

from sipcore.auth.digest import DigestClient
from sipcore.dialogs.requests import Endpoint, build_register
from sipcore.errors import DigestError, SIPError
from sipcore.syntax.headers import NameAddr, is_digits, new_call_id, new_tag
from sipcore.syntax.message import Request, Response, make_response
from sipcore.syntax.uri import URI, SipURI
from sipcore.tables import transition_table

# fmt: off
__all__ = [
    "TABLE", "Action", "CancelTimer", "RegEvent", "RegState", "Registration", "RegistrationConfig",
    "RegistrationError", "SendRequest", "SetTimer", "StateChanged",
]
# fmt: on

logger = logging.getLogger(__name__)


class RegistrationError(SIPError):
    """An event the registration cannot take in its state (a driver bug, not a peer's)."""

    status = None
    phrase = "Registration Error"


class RegState(enum.Enum):
    UNREGISTERED = "unregistered"
    REGISTERING = "registering"
    REGISTERED = "registered"
    REFRESHING = "refreshing"
    UNREGISTERING = "unregistering"
    RETRY_WAIT = "retry wait"
    FAILED = "failed"


class RegEvent(enum.Enum):
    START = "start"
    STOP = "stop"
    TIMER = "timer"
    PROVISIONAL = "1xx"
    SUCCESS = "2xx"
    CHALLENGE = "401/407"
    TOO_BRIEF = "423"
    FAILURE = "other final response or timeout"


@dataclass(frozen=True, slots=True)
class SendRequest:
    request: Request


@dataclass(frozen=True, slots=True)
class SetTimer:
    """Fire :meth:`Registration.on_timer` at ``deadline`` (replaces the previous timer)."""

    deadline: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    pass


@dataclass(frozen=True, slots=True)
class StateChanged:
    old: RegState
    new: RegState
    reason: str


Action = SendRequest | SetTimer | CancelTimer | StateChanged


@dataclass(frozen=True, slots=True)
class RegistrationConfig:
    """One AOR to register. ``registrar`` defaults to the AOR's domain (§10.2: no user part);
    ``route_set`` is a preloaded route (an outbound proxy, with ``lr``)."""

    aor: SipURI
    registrar: SipURI | None = None
    expires: int = 3600
    display_name: str | None = None
    contact_user: str | None = None  # default: the AOR's user
    route_set: tuple[NameAddr, ...] = ()
    retry_base: float = 5.0
    retry_max: float = 300.0
    refresh_margin: float = 5.0  # refresh at least this long (and 10 %) before expiry
    min_refresh: float = 1.0
    max_challenges: int = 3  # stale=true loops end here

    def __post_init__(self) -> None:
        if self.registrar is not None and self.registrar.user is not None:
            raise ValueError(f"registrar URI must not have a user part: {self.registrar}")
        if not 0 < self.expires <= 2**32 - 1:
            raise ValueError(f"invalid expires {self.expires!r}")
        if not 0 < self.retry_base <= self.retry_max:
            raise ValueError(f"need 0 < retry_base <= retry_max, got {self.retry_base!r}, {self.retry_max!r}")
        if self.min_refresh <= 0 or self.refresh_margin < 0:
            raise ValueError(f"invalid refresh timing {self.min_refresh!r}, {self.refresh_margin!r}")
        if self.max_challenges < 1:
            raise ValueError(f"max_challenges must be at least 1, not {self.max_challenges!r}")

    @property
    def registrar_uri(self) -> SipURI:
        aor = self.aor
        return self.registrar or SipURI(aor.host, port=aor.port, scheme=aor.scheme)


Handler = Callable[[float, Response | None], list[Action]]


def _int_value(text: str | None) -> int | None:
    return int(text.strip()) if text is not None and is_digits(text.strip()) else None


def _same_binding(a: URI, b: SipURI) -> bool:
    """Our Contact among the bindings a 200 lists (RFC 3261 §19.1.4, parameters aside)."""
    if not isinstance(a, SipURI):
        return False
    default = 5061 if b.scheme == "sips" else 5060
    return (
        a.scheme == b.scheme
        and a.user == b.user
        and a.host.lower() == b.host.lower()
        and (a.port or default) == (b.port or default)
    )


def _need(response: Response | None) -> Response:
    if response is None:
        raise RegistrationError("event needs a response")
    return response


class Registration:
    """The registration of one AOR; see the module docstring."""

    def __init__(
        self,
        config: RegistrationConfig,
        endpoint: Endpoint,
        *,
        digest: DigestClient | None = None,
        rng: random.Random | None = None,
        call_id: str | None = None,
    ) -> None:
        self.config = config
        self.endpoint = endpoint
        self.digest = digest
        self.call_id = call_id or new_call_id(endpoint.host)
        self.state = RegState.UNREGISTERED
        self.expires_at: float | None = None  # when the binding granted last runs out
        self.last_status: int | None = None
        self.reason = "not started"
        self.contact = endpoint.contact(config.contact_user or config.aor.user)
        self._rng = rng or random.Random()
        self._aor = NameAddr(config.aor, config.display_name, (("tag", new_tag()),))
        self._cseq = 0
        self._expires = config.expires  # raised by a 423's Min-Expires
        self._pending: Request | None = None  # the REGISTER awaiting its final response
        self._failures = 0  # consecutive failures, for the backoff
        self._challenges = 0  # challenges answered for the current REGISTER
        self._unregister_next = False  # stop() while a REGISTER was in progress
        self._answered: Request | None = None  # the REGISTER the response being handled answers

    def __repr__(self) -> str:
        return f"<Registration {self.config.aor} {self.state.name}>"

    # -- driver interface ----------------------------------------------------------------------

    def start(self, now: float) -> list[Action]:
        return self.handle(RegEvent.START, now)

    def stop(self, now: float) -> list[Action]:
        return self.handle(RegEvent.STOP, now)

    def on_timer(self, now: float) -> list[Action]:
        return self.handle(RegEvent.TIMER, now)

    def on_response(self, response: Response, now: float) -> list[Action]:
        """A response from the REGISTER's client transaction; others (stale ones) are ignored."""
        pending = self._pending
        if pending is None or response.call_id != self.call_id or response.cseq != pending.cseq:
            logger.debug("registration %s: ignoring stale %s", self.config.aor, response.status)
            return []
        if response.status >= 200:
            self.last_status = response.status
        return self.handle(self._classify(response.status), now, response)

    def on_timeout(self, now: float) -> list[Action]:
        """The REGISTER's transaction timed out or failed (taken as a 408, RFC 3261 §8.1.3.1)."""
        if self._pending is None:
            return []
        return self.on_response(make_response(self._pending, 408), now)

    @staticmethod
    def _classify(status: int) -> RegEvent:
        if status < 200:
            return RegEvent.PROVISIONAL
        if status < 300:
            return RegEvent.SUCCESS
        return {401: RegEvent.CHALLENGE, 407: RegEvent.CHALLENGE, 423: RegEvent.TOO_BRIEF}.get(
            status, RegEvent.FAILURE
        )

    def handle(self, event: RegEvent, now: float, response: Response | None = None) -> list[Action]:
        handler = TABLE.get((self.state, event))
        if handler is None:
            raise RegistrationError(
                f"registration {self.config.aor}: illegal event {event.name!r} in state {self.state.name!r}"
            )
        if event in (RegEvent.SUCCESS, RegEvent.CHALLENGE, RegEvent.TOO_BRIEF, RegEvent.FAILURE):
            if response is None:
                raise RegistrationError(f"event {event.name!r} needs a response")
            self._answered = self._pending
            self._pending = None
        actions: list[Action] = handler(self, now, response)
        return actions

    # -- internals -----------------------------------------------------------------------------

    def _set_state(self, new: RegState, reason: str, actions: list[Action]) -> None:
        old = self.state
        logger.info("registration %s: %s -> %s (%s)", self.config.aor, old.name, new.name, reason)
        self.state = new
        self.reason = reason
        actions.append(StateChanged(old, new, reason))

    def _send(self, expires: int, actions: list[Action]) -> None:
        self._cseq += 1
        self._challenges = 0
        self._pending = build_register(
            self.endpoint,
            aor=self._aor,
            registrar=self.config.registrar_uri,
            call_id=self.call_id,
            cseq=self._cseq,
            expires=expires,
            contact=self.contact,
            route_set=self.config.route_set,
        )
        actions.append(SendRequest(self._pending))

    def _absorb(self, now: float, response: Response | None) -> list[Action]:
        return []

    def _register(self, now: float, response: Response | None) -> list[Action]:
        actions: list[Action] = []
        self._send(self._expires, actions)
        self._set_state(RegState.REGISTERING, f"REGISTER for {self._expires} s", actions)
        return actions

    def _refresh(self, now: float, response: Response | None) -> list[Action]:
        actions: list[Action] = []
        self._send(self._expires, actions)
        self._set_state(RegState.REFRESHING, "refresh before expiry", actions)
        return actions

    def _forget(self, now: float, response: Response | None) -> list[Action]:
        actions: list[Action] = []
        self._set_state(RegState.UNREGISTERED, "stopped", actions)
        return actions

    def _unregister(self, now: float, response: Response | None) -> list[Action]:
        actions: list[Action] = []
        if self.state in (RegState.REGISTERING, RegState.REFRESHING):
            self._unregister_next = True  # §10.2: after the final response to the pending one
        elif self.state is RegState.RETRY_WAIT and (self.expires_at is None or self.expires_at <= now):
            actions.append(CancelTimer())
            self.expires_at = None
            self._set_state(RegState.UNREGISTERED, "stopped", actions)
            return actions
        else:
            actions.append(CancelTimer())
            self._send(0, actions)  # §10.2.2
        self._set_state(RegState.UNREGISTERING, "stopping", actions)
        return actions

    def _unregistered(self, now: float, response: Response | None) -> list[Action]:
        actions: list[Action] = []
        if self._unregister_next:
            self._unregister_next = False
            self._send(0, actions)
            return actions
        status = response.status if response is not None else 0
        self.expires_at = None
        reason = "unregistered" if 200 <= status < 300 else f"unregister failed with {status}"
        self._set_state(RegState.UNREGISTERED, reason, actions)
        return actions

    def _challenged(self, now: float, response: Response | None) -> list[Action]:
        if self._unregister_next:
            return self._unregistered(now, response)
        response, answered = _need(response), self._answered
        actions: list[Action] = []
        if answered is None:
            raise RegistrationError("challenge without a REGISTER to answer")
        if self.digest is None:
            return self._give_up(f"{response.status} but no credentials configured", actions)
        self._challenges += 1
        if self._challenges > self.config.max_challenges:
            return self._give_up(f"{response.status} after {self.config.max_challenges} challenges", actions)
        try:
            retry = self.digest.authorize(answered, response)  # CSeq + 1, same Call-ID
        except DigestError as exc:
            return self._give_up(f"bad credentials: {exc.detail}", actions)
        cseq = retry.cseq
        self._cseq = cseq.seq if cseq is not None else self._cseq + 1
        self._pending = retry
        actions.append(SendRequest(retry))
        return actions

    def _give_up(self, reason: str, actions: list[Action]) -> list[Action]:
        if self.state is RegState.UNREGISTERING:
            self.expires_at = None
            self._set_state(RegState.UNREGISTERED, f"unregister failed: {reason}", actions)
        else:
            self._set_state(RegState.FAILED, reason, actions)
        return actions

    def _too_brief(self, now: float, response: Response | None) -> list[Action]:
        minimum = _int_value(_need(response).headers.get("Min-Expires"))
        if self._unregister_next or minimum is None or minimum <= self._expires:
            return self._failed(now, response)
        self._expires = minimum  # §10.2.8
        actions: list[Action] = []
        self._send(minimum, actions)
        return actions

    def _registered(self, now: float, response: Response | None) -> list[Action]:
        if self._unregister_next:
            return self._unregistered(now, response)
        granted = self._granted(_need(response))
        if granted <= 0:
            return self._failed(now, response)
        actions: list[Action] = []
        self._failures = 0
        self.expires_at = now + granted
        actions.append(SetTimer(now + self._refresh_interval(granted)))
        self._set_state(RegState.REGISTERED, f"registered for {granted} s", actions)
        return actions

    def _granted(self, response: Response) -> int:
        """§10.2.4: our binding's expires parameter, else the Expires header, else ours."""
        for contact in response.contacts:
            if isinstance(self.contact.uri, SipURI) and _same_binding(contact.uri, self.contact.uri):
                value = _int_value(contact.param("expires"))
                if value is not None:
                    return value
        value = _int_value(response.headers.get("Expires"))
        return value if value is not None else self._expires

    def _refresh_interval(self, granted: int) -> float:
        margin = max(self.config.refresh_margin, granted / 10)
        return max(granted - margin, granted / 2, self.config.min_refresh)

    def _failed(self, now: float, response: Response | None) -> list[Action]:
        if self._unregister_next:
            return self._unregistered(now, response)
        self._failures += 1
        # RFC 5626 §4.5: wait = min(max, base * 2^(failures-1)) * (50 % to 100 %).
        ceiling = min(self.config.retry_max, self.config.retry_base * 2 ** (self._failures - 1))
        delay = ceiling * (0.5 + self._rng.random() / 2)
        status, text = (response.status, response.reason) if response is not None else (0, "")
        retry_after = (
            _int_value((response.headers.get("Retry-After") or "").split(";")[0]) if response else None
        )
        if retry_after is not None:
            delay = max(delay, float(retry_after))  # RFC 3261 §20.33
        actions: list[Action] = [SetTimer(now + delay)]
        self._set_state(RegState.RETRY_WAIT, f"{status} {text}; retry in {delay:.1f} s".strip(), actions)
        return actions


# (state(s), event(s), handler): the handler is called with the machine and its arguments.
TABLE = transition_table(
    RegState,
    RegEvent,
    ("UNREGISTERED,FAILED", "START", Registration._register),
    ("REGISTERING,REGISTERED,REFRESHING,RETRY_WAIT", "START", Registration._absorb),
    ("UNREGISTERED,UNREGISTERING", "STOP", Registration._absorb),
    ("FAILED", "STOP", Registration._forget),
    ("REGISTERING,REGISTERED,REFRESHING,RETRY_WAIT", "STOP", Registration._unregister),
    ("REGISTERED", "TIMER", Registration._refresh),
    ("RETRY_WAIT", "TIMER", Registration._register),
    ("REGISTERING,REFRESHING,UNREGISTERING", "PROVISIONAL", Registration._absorb),
    ("REGISTERING,REFRESHING", "SUCCESS", Registration._registered),
    ("REGISTERING,REFRESHING,UNREGISTERING", "CHALLENGE", Registration._challenged),
    ("REGISTERING,REFRESHING", "TOO_BRIEF", Registration._too_brief),
    ("REGISTERING,REFRESHING", "FAILURE", Registration._failed),
    ("UNREGISTERING", "SUCCESS,TOO_BRIEF,FAILURE", Registration._unregistered),
)
