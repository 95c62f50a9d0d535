"""Per-user call caps: how many calls one web user may take part in, how many of her outbound calls may
be unanswered, and how many RTP port pairs her calls may hold (issue 32 item 8). Sans-I/O.

Every dialect (WebSocket, HTTP offers and WHIP, JSON-RPC, SIP over WebSocket) starts a call through
`CallRegistry.dial`, which asks `admit` first: a call over a cap is refused there, before any SIP is
sent or any port leased (`CallLimitReached`, which the driver turns into HTTP 429 / an `error` /
SIP 486). An inbound call rings no user who is at her calls cap (486 when nobody is left to ring). The
caps come from gateway.yaml's `limits` section and each user's `limits` (gateway/config/limits.py).

An API key may have caps of its own within its user's (users[].api_keys[] `max_calls`,
`max_unanswered`): a dial names the key it was authenticated with (`WebDial.api_key`, in every dialect
that takes keys), the registry remembers it per call, and `admit_key` refuses a call over the key's cap
before its user's caps are looked at.

A user takes part in a call she dialled, and in an inbound call that rings or was answered by one of
her sessions. A call holds at least one port pair from its start (the SIP leg's audio), more when the
allocator says so (video). Rooms' own SIP parties (users `room:<id>`) are bounded by `rooms.max_mixed`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.calls.errors import CallError, InvalidValue
from gateway.calls.states import CallDirection, CallState
from gateway.config.users import api_key_id

if TYPE_CHECKING:
    from gateway.calls.machine import CallMachine
    from gateway.config.schema import Config

ROOM_USER_PREFIX = "room:"  # the users of rooms' SIP parties (gateway/runtime/rooms/service.py)
_UNANSWERED = frozenset({CallState.IDLE, CallState.INVITING, CallState.EARLY})


@dataclass(frozen=True, slots=True)
class CallCaps:
    """One user's caps; `port_pairs` None: no port budget."""

    calls: int = 8
    unanswered: int = 4
    port_pairs: int | None = None

    def __post_init__(self) -> None:
        for name in ("calls", "unanswered", "port_pairs"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise InvalidValue(f"caps {name} must be a whole number of at least 1, got {value!r}")


@dataclass(frozen=True, slots=True)
class KeyCaps:
    """One API key's own caps (None: none beyond its user's); `name` names it in refusals."""

    name: str
    calls: int | None = None
    unanswered: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidValue(f"key caps need a name, got {self.name!r}")
        for name in ("calls", "unanswered"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise InvalidValue(f"key caps {name} must be a whole number of at least 1, got {value!r}")


@dataclass(frozen=True, slots=True)
class CapsTable:
    """The caps of every user: `default`, and `users` (user id, caps) for those with their own; `keys`
    (key id, caps) for the API keys with caps of their own. A table built without config caps nobody
    (`default` None); gateway.yaml's has the `limits` section's."""

    default: CallCaps | None = None
    users: tuple[tuple[str, CallCaps], ...] = ()
    keys: tuple[tuple[str, KeyCaps], ...] = ()

    def for_user(self, user_id: str) -> CallCaps | None:
        """The caps of `user_id`; None for a room's own SIP parties."""
        if user_id.startswith(ROOM_USER_PREFIX):
            return None
        return next((caps for uid, caps in self.users if uid == user_id), self.default)

    def for_key(self, key_id: str) -> KeyCaps | None:
        """The own caps of the API key `key_id` (gateway.config.users.api_key_id); None: only its user's."""
        return next((caps for kid, caps in self.keys if kid == key_id), None)

    @classmethod
    def from_config(cls, config: Config) -> CapsTable:
        """`limits` and users[].limits; the port budget a share of media.rtp_ports' even ports."""
        limits, ports = config.limits, config.media.rtp_ports
        first = ports.start + ports.start % 2
        pairs = max(0, (ports.end - first + 1) // 2)

        def budget(share: float) -> int:
            return max(1, int(pairs * share))

        default = CallCaps(limits.calls_per_user, limits.unanswered_per_user, budget(limits.port_share))
        users: list[tuple[str, CallCaps]] = []
        keys: list[tuple[str, KeyCaps]] = []
        for user in config.users:
            for index, key in enumerate(user.api_keys):
                if key.max_calls is not None or key.max_unanswered is not None:
                    key_id = api_key_id(user.id, index)
                    keys.append((key_id, KeyCaps(key.name or key_id, key.max_calls, key.max_unanswered)))
            own = user.limits
            if own is None:
                continue
            users.append(
                (
                    user.id,
                    CallCaps(
                        own.calls if own.calls is not None else default.calls,
                        own.unanswered if own.unanswered is not None else default.unanswered,
                        budget(own.port_share if own.port_share is not None else limits.port_share),
                    ),
                )
            )
        return cls(default, tuple(users), tuple(keys))


class CallLimitReached(CallError):
    """A user's call over one of her caps: `limit` names it (too_many_calls, too_many_unanswered_calls,
    port_budget, too_many_calls_for_key, too_many_unanswered_calls_for_key), `setting` the gateway.yaml
    key that sets it."""

    code = "limit_reached"

    def __init__(self, limit: str, setting: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit
        self.setting = setting


@dataclass(frozen=True, slots=True)
class Usage:
    """What one user holds now."""

    calls: int = 0
    unanswered: int = 0
    port_pairs: int = 0


def users_of(call: CallMachine, rung: Mapping[str, str]) -> frozenset[str]:
    """The web users taking part in `call`: who dialled it, or whose sessions it rings or was taken by
    (`rung`: each session the call rang, and its user)."""
    if call.direction is CallDirection.OUTBOUND and call.user is not None:
        return frozenset({call.user.id})
    found = set(call.ringing.values())
    found.update(rung[s] for s in call.sessions if s in rung)
    return frozenset(found)


def usage(
    user_id: str,
    calls: Iterable[tuple[CallMachine, Mapping[str, str]]],
    port_pairs: Callable[[str], int],
) -> Usage:
    """What `user_id` holds among `calls` (each with the sessions it rang; `port_pairs(call_id)`: the
    pairs a call has leased)."""
    count = unanswered = pairs = 0
    for call, rung in calls:
        if user_id not in users_of(call, rung):
            continue
        count += 1
        if call.direction is CallDirection.OUTBOUND and call.state in _UNANSWERED:
            unanswered += 1
        pairs += max(1, port_pairs(call.call_id))
    return Usage(count, unanswered, pairs)


def key_usage(calls: Iterable[CallMachine]) -> Usage:
    """What one API key holds: `calls` are the ones dialled with it (no port budget per key)."""
    count = unanswered = 0
    for call in calls:
        count += 1
        if call.direction is CallDirection.OUTBOUND and call.state in _UNANSWERED:
            unanswered += 1
    return Usage(count, unanswered)


def admit_key(caps: KeyCaps | None, now: Usage) -> None:
    """Refuse (CallLimitReached) a new call with an API key that would take the key over its own cap."""
    if caps is None:
        return
    if caps.calls is not None and now.calls >= caps.calls:
        raise CallLimitReached(
            "too_many_calls_for_key",
            "users[].api_keys[].max_calls",
            f"API key {caps.name} has {now.calls} calls, the most allowed at once "
            f"(api_keys[].max_calls {caps.calls})",
        )
    if caps.unanswered is not None and now.unanswered >= caps.unanswered:
        raise CallLimitReached(
            "too_many_unanswered_calls_for_key",
            "users[].api_keys[].max_unanswered",
            f"API key {caps.name} has {now.unanswered} calls not answered yet, the most allowed "
            f"(api_keys[].max_unanswered {caps.unanswered})",
        )


def admit(user_id: str, caps: CallCaps | None, now: Usage) -> None:
    """Refuse (CallLimitReached) a new outbound call of `user_id` that would take her over a cap."""
    if caps is None:
        return
    if now.calls >= caps.calls:
        raise CallLimitReached(
            "too_many_calls",
            "limits.calls_per_user",
            f"{user_id} has {now.calls} calls, the most allowed at once (limits.calls_per_user {caps.calls})",
        )
    if now.unanswered >= caps.unanswered:
        raise CallLimitReached(
            "too_many_unanswered_calls",
            "limits.unanswered_per_user",
            f"{user_id} has {now.unanswered} calls not answered yet, the most allowed "
            f"(limits.unanswered_per_user {caps.unanswered})",
        )
    if caps.port_pairs is not None and now.port_pairs + 1 > caps.port_pairs:
        raise CallLimitReached(
            "port_budget",
            "limits.port_share",
            f"{user_id}'s calls hold {now.port_pairs} RTP port pairs, her share of media.rtp_ports "
            f"(limits.port_share: {caps.port_pairs} pairs)",
        )
