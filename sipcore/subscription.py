"""Subscriber side of SIP-specific event notification (RFC 6665 §4.1): one sans-I/O machine per
(resource, event package), e.g. an extension's ``dialog`` state (RFC 4235) or a mailbox's
``message-summary`` (RFC 3842).

How it works, as :mod:`sipcore.registration` (the driver feeds it ``now`` and carries out the actions
:class:`SendRequest`, :class:`SetTimer`, :class:`CancelTimer`, :class:`StateChanged`):
:meth:`Subscription.start` sends a SUBSCRIBE out of dialog; its 2xx (or the first NOTIFY, which may
come first: §4.1.2.4) gives the dialog (the notifier's tag, its Contact as remote target, the 2xx's
Record-Route reversed as route set). Refreshes are SUBSCRIBEs in that dialog, sent before the granted
``Expires`` runs out (and before the expiry a NOTIFY's ``Subscription-State: active;expires=`` gives).
A 401/407 is answered once through :class:`DigestClient`. Failures go to RETRY_WAIT with exponential
backoff and jitter (RFC 5626 §4.5 formula; ``Retry-After`` honoured), except: 481 to a refresh (the
notifier forgot us) starts a new subscription at once (§4.1.2.2); 489 Bad Event (the notifier has no
such package) fails for good. A NOTIFY with ``Subscription-State: terminated`` (§4.1.3) re-subscribes at
once for ``deactivated``/``timeout``, after ``retry-after`` or the backoff for ``probation``/``giveup``
and unknown reasons, and fails for ``rejected``/``noresource``/``invariant``. :meth:`stop` unsubscribes
(``Expires: 0``, §4.1.2.3) when a dialog exists.

:meth:`Subscription.on_notify` checks a NOTIFY (its Event, its Subscription-State) and returns the status
to answer with; the body is the driver's to parse (:mod:`sipcore.event_bodies`). Transitions are the
table ``TABLE``; a (state, event) pair absent from it raises :class:`SubscriptionError` naming both.
"""

from __future__ import annotations

import enum
import logging
import random
from dataclasses import dataclass

from sipcore.auth.digest import DigestClient
from sipcore.dialogs.requests import Endpoint, build_request
from sipcore.errors import DigestError, SIPError
from sipcore.registration import CancelTimer, SendRequest, SetTimer
from sipcore.syntax.headers import (
    NameAddr,
    is_digits,
    new_call_id,
    new_tag,
    parse_name_addr,
    parse_params,
    split_commas,
)
from sipcore.syntax.message import Request, Response
from sipcore.syntax.uri import URI, SipURI
from sipcore.tables import transition_table

# fmt: off
__all__ = [
    "TABLE", "Action", "CancelTimer", "SendRequest", "SetTimer", "SubEvent", "SubState", "Subscription",
    "SubscriptionConfig", "SubscriptionError", "SubscriptionStateChanged",
]
# fmt: on

logger = logging.getLogger(__name__)

RETRY_NOW = frozenset({"deactivated", "timeout"})  # RFC 6665 §4.1.3: re-subscribe at once
NO_RETRY = frozenset({"rejected", "noresource", "invariant"})  # ... do not
FINAL_NOTIFY_WAIT = 32.0  # s a notifier's last NOTIFY is awaited after an unsubscribe's 2xx (64 * T1)


class SubscriptionError(SIPError):
    """An event the subscription cannot take in its state (a driver bug, not a peer's)."""

    status = None
    phrase = "Subscription Error"


class SubState(enum.Enum):
    IDLE = "idle"
    SUBSCRIBING = "subscribing"
    PENDING = "pending"  # accepted, not yet authorized (Subscription-State: pending)
    ACTIVE = "active"
    REFRESHING = "refreshing"
    RETRY_WAIT = "retry wait"
    UNSUBSCRIBING = "unsubscribing"
    FAILED = "failed"


class SubEvent(enum.Enum):
    START = "start"
    STOP = "stop"
    TIMER = "timer"
    PROVISIONAL = "1xx"
    SUCCESS = "2xx"
    CHALLENGE = "401/407"
    GONE = "481"
    FAILURE = "other final response or timeout"
    FATAL = "489 or terminated for good"
    TERMINATED = "NOTIFY terminated, retry"


@dataclass(frozen=True, slots=True)
class SubscriptionStateChanged:
    old: SubState
    new: SubState
    reason: str


Action = SendRequest | SetTimer | CancelTimer | SubscriptionStateChanged


@dataclass(frozen=True, slots=True)
class SubscriptionConfig:
    """What to watch: ``resource`` (Request-URI and To), the ``event`` package and the body type we
    ``accept``, as the subscriber ``subscriber`` (From), for ``expires`` seconds at a time."""

    resource: SipURI
    subscriber: SipURI
    event: str
    accept: str
    expires: int = 600
    route_set: tuple[NameAddr, ...] = ()
    retry_base: float = 5.0
    retry_max: float = 300.0

    def __post_init__(self) -> None:
        if not 0 < self.expires <= 2**32 - 1:
            raise ValueError(f"invalid expires {self.expires!r}")
        if not 0 < self.retry_base <= self.retry_max:
            raise ValueError(f"need 0 < retry_base <= retry_max, got {self.retry_base!r}, {self.retry_max!r}")
        if not self.event or not self.accept:
            raise ValueError(f"a subscription needs an event package and a body type, got {self.event!r}")


def _int_value(text: str | None) -> int | None:
    return int(text.strip()) if text is not None and is_digits(text.strip()) else None


def subscription_state(request: Request) -> tuple[str, dict[str, str]]:
    """The Subscription-State header (RFC 6665 §8.2.3): its value (lower case) and parameters."""
    value = request.headers.get("Subscription-State")
    if value is None:
        raise SubscriptionError("NOTIFY without Subscription-State")
    head, _, rest = value.partition(";")
    params = parse_params(";" + rest, "Subscription-State") if rest else ()
    return head.strip().lower(), {name.lower(): (v or "") for name, v in params}


class Subscription:
    """One subscription; see the module docstring."""

    def __init__(
        self,
        config: SubscriptionConfig,
        endpoint: Endpoint,
        *,
        digest: DigestClient | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.endpoint = endpoint
        self.digest = digest
        self.state = SubState.IDLE
        self.reason = "not started"
        self.last_status: int | None = None
        self.expires_at: float | None = None
        self._rng = rng or random.Random()
        self._failures = 0
        self._new_dialog()

    def _new_dialog(self) -> None:
        """A fresh Call-ID and From tag: each new subscription is a new dialog (RFC 6665 §4.1.2.4)."""
        self.call_id = new_call_id(self.endpoint.host)
        self.local_tag = new_tag()
        self.remote_tag: str | None = None
        self.remote_target: URI | None = None
        self.route_set: tuple[NameAddr, ...] = self.config.route_set
        self._cseq = 0
        self._pending: Request | None = None
        self._answered: Request | None = None
        self._challenges = 0
        self._unsubscribe_next = False
        # after an unsubscribe's 2xx the subscription lasts until the notifier's terminated NOTIFY (RFC 6665
        # §4.1.2.3, §4.4.1): NOTIFYs of this dialog are answered 200 until then, or until this time
        self.final_notify_until: float | None = None
        self._terminated_by_notifier = False  # its terminated NOTIFY came while we unsubscribed

    def __repr__(self) -> str:
        return f"<Subscription {self.config.event} {self.config.resource} {self.state.name}>"

    @property
    def key(self) -> tuple[str, str]:
        """(Call-ID, our tag): what a NOTIFY of this subscription carries (its To tag is ours)."""
        return self.call_id, self.local_tag

    # -- driver interface ----------------------------------------------------------------------
    def start(self, now: float) -> list[Action]:
        return self.handle(SubEvent.START, now)

    def stop(self, now: float) -> list[Action]:
        return self.handle(SubEvent.STOP, now)

    def on_timer(self, now: float) -> list[Action]:
        return self.handle(SubEvent.TIMER, now)

    def on_response(self, response: Response, now: float) -> list[Action]:
        """A response from the SUBSCRIBE's client transaction (the layer's synthetic 408/503 included)."""
        pending = self._pending
        if pending is None or response.call_id != self.call_id or response.cseq != pending.cseq:
            return []
        if response.status >= 200:
            self.last_status = response.status
        if 200 <= response.status < 300:
            self._learn(response.to.tag if response.to is not None else None, response, routes=True)
        status = response.status
        if status < 200:
            event = SubEvent.PROVISIONAL
        elif status < 300:
            event = SubEvent.SUCCESS
        else:
            event = {401: SubEvent.CHALLENGE, 407: SubEvent.CHALLENGE, 489: SubEvent.FATAL}.get(
                status, SubEvent.FAILURE
            )
            if status == 481 and self.remote_tag is not None:
                event = SubEvent.GONE
        return self.handle(event, now, response)

    def on_notify(self, request: Request, now: float) -> tuple[int, list[Action]]:
        """A NOTIFY whose To tag and Call-ID are ours: the status to answer, and the actions."""
        event = (request.headers.get("Event") or "").split(";", 1)[0].strip().lower()
        if event != self.config.event:
            return 489, []  # RFC 6665 §4.1.3: not the package we subscribed to
        try:
            value, params = subscription_state(request)
        except SIPError:
            return 400, []
        final = self.final_notify_until
        if self.state is SubState.IDLE and final is not None and now <= final:
            if value == "terminated":  # the notifier's last word: the subscription is over now
                self.final_notify_until = None
            return 200, []
        if self.state in (SubState.IDLE, SubState.FAILED, SubState.RETRY_WAIT):
            return 481, []  # RFC 6665 §4.1.3: no such subscription (any more)
        self._learn(request.from_.tag if request.from_ is not None else None, request, routes=False)
        if value == "terminated":
            reason = params.get("reason", "")
            retry_after = _int_value(params.get("retry-after"))
            self.expires_at = None
            if self.state is SubState.UNSUBSCRIBING:
                self._terminated_by_notifier = True
                return 200, []
            if reason in NO_RETRY:
                return 200, self.handle(SubEvent.FATAL, now, detail=f"terminated: {reason}")
            delay = 0.0 if reason in RETRY_NOW and retry_after is None else None
            if retry_after is not None:
                delay = float(retry_after)
            return 200, self.handle(SubEvent.TERMINATED, now, detail=f"terminated: {reason or 'no reason'}",
                                    delay=delay)  # fmt: skip
        actions: list[Action] = []
        expires = _int_value(params.get("expires"))
        if expires is not None and self.state in (SubState.ACTIVE, SubState.PENDING):
            deadline = now + self._refresh_interval(expires)
            if self.expires_at is None or now + expires < self.expires_at:
                self.expires_at = now + expires
                actions.append(SetTimer(deadline))  # the notifier shortened it (§4.1.3)
        new = {"active": SubState.ACTIVE, "pending": SubState.PENDING}.get(value)
        if new is not None and self.state in (SubState.ACTIVE, SubState.PENDING) and new is not self.state:
            self._set_state(new, f"NOTIFY {value}", actions)
        return 200, actions

    # -- the table -------------------------------------------------------------------------------
    def handle(
        self,
        event: SubEvent,
        now: float,
        response: Response | None = None,
        *,
        detail: str = "",
        delay: float | None = None,
    ) -> list[Action]:
        handler = TABLE.get((self.state, event))
        if handler is None:
            raise SubscriptionError(
                f"subscription {self.config.event} {self.config.resource}: illegal event {event.name!r} "
                f"in state {self.state.name!r}"
            )
        if response is not None and response.status >= 200:
            self._answered, self._pending = self._pending, None
        text = detail or (f"{response.status} {response.reason}" if response is not None else event.value)
        return handler(self, now, response, text, delay)

    def _set_state(self, new: SubState, reason: str, actions: list[Action]) -> None:
        old = self.state
        if old is new and reason == self.reason:
            return
        logger.info("subscription %s %s: %s -> %s (%s)", self.config.event, self.config.resource,
                    old.name, new.name, reason)  # fmt: skip
        self.state, self.reason = new, reason
        actions.append(SubscriptionStateChanged(old, new, reason))

    def _learn(self, remote_tag: str | None, message: Request | Response, *, routes: bool) -> None:
        """The dialog, from the first 2xx or NOTIFY (RFC 6665 §4.1.2.4, RFC 3261 §12.1.2)."""
        if remote_tag is None or self.remote_tag is not None:
            return
        self.remote_tag = remote_tag
        contacts = message.contacts
        self.remote_target = contacts[0].uri if contacts else None
        if routes:
            values = [v for value in message.headers.get_all("Record-Route") for v in split_commas(value)]
            self.route_set = tuple(parse_name_addr(v, "Record-Route") for v in reversed(values) if v)
        elif message.headers.get("Record-Route"):  # a NOTIFY's Record-Route, in its order (§12.1.1)
            values = [v for value in message.headers.get_all("Record-Route") for v in split_commas(value)]
            self.route_set = tuple(parse_name_addr(v, "Record-Route") for v in values if v)

    def _send(self, expires: int, actions: list[Action]) -> None:
        self._cseq += 1
        self._challenges = 0
        config = self.config
        to = NameAddr(config.resource)
        if self.remote_tag is not None:
            to = to.with_param("tag", self.remote_tag)
        self._pending = build_request(
            "SUBSCRIBE",
            self.remote_target if self.remote_tag is not None and self.remote_target else config.resource,
            endpoint=self.endpoint,
            from_=NameAddr(config.subscriber, None, (("tag", self.local_tag),)),
            to=to,
            call_id=self.call_id,
            cseq=self._cseq,
            route_set=self.route_set,
            contact=self.endpoint.contact(config.subscriber.user),
            headers=(("Event", config.event), ("Accept", config.accept), ("Expires", str(expires))),
        )
        actions.append(SendRequest(self._pending))

    # -- handlers ----------------------------------------------------------------------------------
    def _absorb(
        self, now: float, response: Response | None, reason: str, delay: float | None
    ) -> list[Action]:
        return []

    def _subscribe(
        self, now: float, response: Response | None, reason: str, delay: float | None
    ) -> list[Action]:
        actions: list[Action] = []
        if self.state in (SubState.RETRY_WAIT, SubState.FAILED, SubState.IDLE):
            self._new_dialog()
        self._send(self.config.expires, actions)
        self._set_state(SubState.SUBSCRIBING, f"SUBSCRIBE for {self.config.expires} s", actions)
        return actions

    def _refresh(
        self, now: float, response: Response | None, reason: str, delay: float | None
    ) -> list[Action]:
        actions: list[Action] = []
        self._send(self.config.expires, actions)
        self._set_state(SubState.REFRESHING, "refresh before expiry", actions)
        return actions

    def _resubscribe(
        self, now: float, response: Response | None, reason: str, delay: float | None
    ) -> list[Action]:
        """481 to a refresh, or terminated: a new subscription (a new dialog) now or after ``delay``."""
        if delay is None:
            return self._failed(now, response, reason, None)
        if delay > 0:
            return self._failed(now, response, reason, delay)
        actions: list[Action] = [CancelTimer()]
        self._new_dialog()
        self._send(self.config.expires, actions)
        self._set_state(SubState.SUBSCRIBING, f"{reason}; subscribing again", actions)
        return actions

    def _gone(self, now: float, response: Response | None, reason: str, delay: float | None) -> list[Action]:
        return self._resubscribe(now, response, reason, 0.0)

    def _accepted(
        self, now: float, response: Response | None, reason: str, delay: float | None
    ) -> list[Action]:
        if self._unsubscribe_next:
            return self._unsubscribe(now, None, reason, None)
        granted = _int_value(response.headers.get("Expires")) if response is not None else None
        granted = self.config.expires if granted is None else granted
        if granted <= 0:  # RFC 6665 §4.1.2.1: 200 with Expires: 0 is a refusal
            return self._failed(now, response, f"{reason} with Expires: 0", None)
        actions: list[Action] = [SetTimer(now + self._refresh_interval(granted))]
        self._failures = 0
        self.expires_at = now + granted
        accepted = response is not None and response.status == 202
        new = SubState.PENDING if accepted and self.state is SubState.SUBSCRIBING else SubState.ACTIVE
        self._set_state(new, f"subscribed for {granted} s", actions)
        return actions

    def _challenged(
        self, now: float, response: Response | None, reason: str, delay: float | None
    ) -> list[Action]:
        answered = self._answered
        if response is None or answered is None:
            raise SubscriptionError("challenge without a SUBSCRIBE to answer")
        self._challenges += 1
        if self.digest is None or self._challenges > 2:
            return self._fatal(now, response, f"{reason}: credentials refused or missing", None)
        try:
            retry = self.digest.authorize(answered, response)
        except DigestError as exc:
            return self._fatal(now, response, f"bad credentials: {exc.detail}", None)
        cseq = retry.cseq
        self._cseq = cseq.seq if cseq is not None else self._cseq + 1
        self._pending = retry
        return [SendRequest(retry)]

    def _failed(
        self, now: float, response: Response | None, reason: str, delay: float | None
    ) -> list[Action]:
        if self.state is SubState.UNSUBSCRIBING or self._unsubscribe_next:
            return self._stopped(now, response, reason, None)
        self._failures += 1
        ceiling = min(self.config.retry_max, self.config.retry_base * 2 ** (self._failures - 1))
        wait = ceiling * (0.5 + self._rng.random() / 2)
        retry_after = (
            _int_value((response.headers.get("Retry-After") or "").split(";")[0]) if response else None
        )
        if retry_after is not None:
            wait = max(wait, float(retry_after))  # RFC 3261 §20.33
        if delay is not None:
            wait = max(delay, 0.0)
        self.expires_at = None
        actions: list[Action] = [SetTimer(now + wait)]
        self._set_state(SubState.RETRY_WAIT, f"{reason}; retry in {wait:.1f} s", actions)
        return actions

    def _fatal(self, now: float, response: Response | None, reason: str, delay: float | None) -> list[Action]:
        if self.state is SubState.UNSUBSCRIBING:
            return self._stopped(now, response, reason, None)
        actions: list[Action] = [CancelTimer()]
        self.expires_at = None
        self._set_state(SubState.FAILED, reason, actions)
        return actions

    def _unsubscribe(
        self, now: float, response: Response | None, reason: str, delay: float | None
    ) -> list[Action]:
        actions: list[Action] = [CancelTimer()]
        if self._pending is not None:
            self._unsubscribe_next = True  # after the final response to the pending SUBSCRIBE
        elif self.remote_tag is None:
            return self._stopped(now, response, reason, None)
        else:
            self._unsubscribe_next = False
            self._send(0, actions)  # RFC 6665 §4.1.2.3
        self._set_state(SubState.UNSUBSCRIBING, "unsubscribing", actions)
        return actions

    def _unsubscribed(
        self, now: float, response: Response | None, reason: str, delay: float | None
    ) -> list[Action]:
        if (
            self._unsubscribe_next
            and self.remote_tag is not None
            and response is not None
            and response.status < 300
        ):
            self._unsubscribe_next = False
            actions: list[Action] = []
            self._send(0, actions)
            return actions
        ok = response is not None and response.status < 300
        if ok and self.remote_tag is not None and not self._terminated_by_notifier:
            self.final_notify_until = now + FINAL_NOTIFY_WAIT
        return self._stopped(now, response, reason, None)

    def _stopped(
        self, now: float, response: Response | None, reason: str, delay: float | None
    ) -> list[Action]:
        actions: list[Action] = [CancelTimer()]
        self.expires_at = None
        self._pending = None
        self._set_state(SubState.IDLE, "stopped", actions)
        return actions

    def _refresh_interval(self, granted: int) -> float:
        margin = max(5.0, granted / 10)
        return max(granted - margin, granted / 2, 1.0)


# (state(s), event(s), handler)
TABLE = transition_table(
    SubState,
    SubEvent,
    ("IDLE,FAILED", "START", Subscription._subscribe),
    ("SUBSCRIBING,PENDING,ACTIVE,REFRESHING,RETRY_WAIT,UNSUBSCRIBING", "START", Subscription._absorb),
    ("IDLE,UNSUBSCRIBING", "STOP", Subscription._absorb),
    ("FAILED,RETRY_WAIT", "STOP", Subscription._stopped),
    ("SUBSCRIBING,PENDING,ACTIVE,REFRESHING", "STOP", Subscription._unsubscribe),
    ("PENDING,ACTIVE", "TIMER", Subscription._refresh),
    ("RETRY_WAIT", "TIMER", Subscription._subscribe),
    ("SUBSCRIBING,REFRESHING,UNSUBSCRIBING", "PROVISIONAL", Subscription._absorb),
    ("SUBSCRIBING,REFRESHING", "SUCCESS", Subscription._accepted),
    ("SUBSCRIBING,REFRESHING,UNSUBSCRIBING", "CHALLENGE", Subscription._challenged),
    ("SUBSCRIBING,REFRESHING", "FAILURE", Subscription._failed),
    ("SUBSCRIBING,REFRESHING", "GONE", Subscription._gone),
    ("SUBSCRIBING,REFRESHING,PENDING,ACTIVE", "FATAL", Subscription._fatal),
    ("SUBSCRIBING,PENDING,ACTIVE,REFRESHING", "TERMINATED", Subscription._resubscribe),
    ("UNSUBSCRIBING", "SUCCESS,FAILURE,GONE,FATAL", Subscription._unsubscribed),
)
