"""A call's handover (issue 34 item 3): what an instance writes to Redis of each call another could carry
on, read back by the survivor (gateway/runtime/continuity/takeover.py). Plain data and its checks: a
handover that cannot be read raises `HandoverError` naming its field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from gateway.runtime.passthrough import HANDOVER_KIND as PASSTHROUGH

# of the handover's JSON; a version it does not read, an instance does not take over (a rolling upgrade).
# 2: a pass-through call of an HTTP API session, a JSON-RPC peer or a SIP library, whose media outlives the
# instance: an instance that reads only 1 would cut it when its grace ends (it knows no `media_intact`), so
# it refuses it (a drain's hand-off then leaves the call where it is)
VERSION: Final = 1
INTACT_VERSION: Final = 2
READS: Final = (VERSION, INTACT_VERSION)
_TIMES: Final = ("created_at", "connected_at", "ended_at")  # the machine's monotonic times


class HandoverError(ValueError):
    """A handover that cannot be read: the field and what is wrong with it."""


@dataclass(frozen=True, slots=True)
class HttpIds:
    """An HTTP API session's ids and what it was opened with: made again under them by the survivor, so
    that the client's next offer with its `session_id` renews the call's media there. A WHIP resource's
    (`whip`) is renewed by its client's next publish to the same destination (signaling/whip/whip.py)."""

    public_id: str  # the id its user knows it by
    id: str  # the gateway's own (the call machine's session id)
    dial: str | None
    api_key: str | None  # the API key's id (not the key)
    whip: bool = False

    def to_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"public_id": self.public_id, "id": self.id, "dial": self.dial}
        found["api_key"] = self.api_key
        if self.whip:  # (absent otherwise: the same text as before for the HTTP API's sessions)
            found["whip"] = True
        return found

    @classmethod
    def from_dict(cls, data: object) -> HttpIds | None:
        if data is None:
            return None
        if not isinstance(data, dict):
            raise HandoverError("http: not an object")
        for name in ("public_id", "id"):
            if not isinstance(data.get(name), str) or not data[name]:
                raise HandoverError(f"http.{name}: {data.get(name)!r}")
        for name in ("dial", "api_key"):
            if data.get(name) is not None and not isinstance(data[name], str):
                raise HandoverError(f"http.{name}: {data[name]!r}")
        if not isinstance(data.get("whip", False), bool):
            raise HandoverError(f"http.whip: {data['whip']!r}")
        return cls(
            data["public_id"], data["id"], data.get("dial"), data.get("api_key"), data.get("whip", False)
        )


@dataclass(frozen=True, slots=True)
class RpcIds:
    """A JSON-RPC peer's session id and announced peer id: the survivor makes a detached peer under them,
    which the client's `announce` of the id takes back there (gateway/signaling/jsonrpc/resume.py)."""

    session_id: str  # the call machine's session id
    peer_id: str

    def to_dict(self) -> dict[str, Any]:
        return {"session_id": self.session_id, "peer_id": self.peer_id}

    @classmethod
    def from_dict(cls, data: object) -> RpcIds | None:
        if data is None:
            return None
        if not isinstance(data, dict):
            raise HandoverError("rpc: not an object")
        for name in ("session_id", "peer_id"):
            if not isinstance(data.get(name), str) or not data[name]:
                raise HandoverError(f"rpc.{name}: {data.get(name)!r}")
        return cls(data["session_id"], data["peer_id"])


def library_of(data: object) -> Mapping[str, Any] | None:
    """A SIP library's dialog in a handover (`FlowSink.handover`: gateway/websip/takeover.py reads the
    rest), checked for what this module needs: the session id it is made again under."""
    if data is None:
        return None
    if not isinstance(data, dict):
        raise HandoverError("websip: not an object")
    if not isinstance(data.get("session_id"), str) or not data["session_id"]:
        raise HandoverError(f"websip.session_id: {data.get('session_id')!r}")
    return data


def merge_of(data: object, call_id: object) -> Mapping[str, Any] | None:
    """The three-way conference a handover names (gateway/runtime/merge/three_way.py `merge_of`): its
    id and its two call ids, the carrier first, one of them the handover's own call."""
    if data is None:
        return None
    if not isinstance(data, dict):
        raise HandoverError("merge: not an object")
    if not isinstance(data.get("conference_id"), str) or not data["conference_id"]:
        raise HandoverError(f"merge.conference_id: {data.get('conference_id')!r}")
    ids = data.get("call_ids")
    if (
        not isinstance(ids, list)
        or len(ids) != 2
        or not all(isinstance(i, str) and i for i in ids)
        or ids[0] == ids[1]
        or call_id not in ids
    ):
        raise HandoverError(f"merge.call_ids: {ids!r}")
    return data


def room_of(data: object) -> Mapping[str, Any] | None:
    """A room's SIP party in a handover (gateway/runtime/rooms/service.py `party_of`): the room, the
    party's far end, whether it called in, the room's owner, and the room's own user when it called in."""
    if data is None:
        return None
    if not isinstance(data, dict):
        raise HandoverError("room: not an object")
    for name in ("room_id", "remote"):
        if not isinstance(data.get(name), str) or not data[name]:
            raise HandoverError(f"room.{name}: {data.get(name)!r}")
    if not isinstance(data.get("inbound"), bool):
        raise HandoverError(f"room.inbound: {data.get('inbound')!r}")
    for name in ("owner", "aor"):
        if data.get(name) is not None and not isinstance(data[name], str):
            raise HandoverError(f"room.{name}: {data[name]!r}")
    if data["inbound"] and not data.get("aor"):
        raise HandoverError("room.aor: a party that called in needs the room's own address")
    return data


@dataclass(frozen=True, slots=True)
class RoomParty:
    """A room's SIP party (`room_of`'s fields): its call is made a party of the room again where the room
    lives (gateway/runtime/rooms/service.py)."""

    data: Mapping[str, Any]


# What may take a call back: (login family, user id, the HTTP session, JSON-RPC peer, SIP library's
# session or room party made again)
Owner = tuple[str, str, "HttpIds | RpcIds | RoomParty | Mapping[str, Any] | None"]


@dataclass(frozen=True, slots=True)
class Handover:
    """One call's handover as written to Redis (`to_json`) and read back (`from_json`)."""

    call_id: str
    machine: Mapping[str, Any]
    sip: Mapping[str, Any]
    media: Mapping[str, Any]
    family: str  # the login (token family) that may take the call back; "" for an HTTP API session's
    user: str
    wall: float  # a time.time() reading of the writing process: its monotonic times are moved by it
    mono: float  # time.monotonic() at that same reading
    http: HttpIds | None = None  # the HTTP API session carrying the call, made again on the survivor
    rpc: RpcIds | None = None  # the JSON-RPC peer carrying the call, made again (detached) on the survivor
    websip: Mapping[str, Any] | None = None  # the SIP library's session and dialog, made again there
    merge: Mapping[str, Any] | None = None  # the three-way conference the call is in, made again there
    room: Mapping[str, Any] | None = None  # a room's SIP party: the room, made again where the room lives
    # the SIP Call-ID of a dialog both of whose ends were the instance's own (a web-to-web call through its
    # own listener): the survivor takes both calls over and makes the dialog its own on both ends
    pair: str | None = None

    def to_json(self) -> str:
        fields = {
            "v": INTACT_VERSION if self.media_intact else VERSION, "call_id": self.call_id,
            "machine": self.machine, "sip": self.sip,
            "media": self.media, "family": self.family, "user": self.user, "wall": self.wall,
            "mono": self.mono, "http": None if self.http is None else self.http.to_dict(),
        }  # fmt: skip
        if self.rpc is not None:  # (absent otherwise: the same text as before for other calls)
            fields["rpc"] = self.rpc.to_dict()
        if self.websip is not None:
            fields["websip"] = dict(self.websip)
        if self.merge is not None:
            fields["merge"] = dict(self.merge)
        if self.room is not None:
            fields["room"] = dict(self.room)
        if self.pair is not None:
            fields["pair"] = self.pair
        return json.dumps(fields, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> Handover:
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise HandoverError(f"not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise HandoverError(f"not an object: {type(data).__name__}")
        if data.get("v") not in READS:
            raise HandoverError(f"version {data.get('v')!r}, this instance reads {READS}")
        http = HttpIds.from_dict(data.get("http"))
        rpc = RpcIds.from_dict(data.get("rpc"))
        websip = library_of(data.get("websip"))
        merge = merge_of(data.get("merge"), data.get("call_id"))
        room = room_of(data.get("room"))
        pair = data.get("pair")
        if pair is not None and (not isinstance(pair, str) or not pair):
            raise HandoverError(f"pair: {pair!r}")
        if sum(kept is not None for kept in (http, rpc, websip, room)) > 1:
            raise HandoverError("http, rpc, websip, room: a call has one session")
        familyless = http is not None or websip is not None or room is not None  # no login takes these back
        for name in ("call_id", "family", "user"):
            if not isinstance(data.get(name), str) or (
                not data[name] and (name != "family" or not familyless)
            ):
                raise HandoverError(f"{name}: {data.get(name)!r}")
        for name in ("machine", "sip", "media"):
            if not isinstance(data.get(name), dict):
                raise HandoverError(f"{name}: not an object")
        for name in ("wall", "mono"):
            if not isinstance(data.get(name), int | float) or isinstance(data[name], bool):
                raise HandoverError(f"{name}: {data.get(name)!r}")
        return cls(
            data["call_id"], data["machine"], data["sip"], data["media"], data["family"], data["user"],
            float(data["wall"]), float(data["mono"]), http, rpc, websip, merge, room, pair,
        )  # fmt: skip

    @property
    def media_intact(self) -> bool:
        """A pass-through call's media (end to end) carried by an HTTP API session, a JSON-RPC peer or a
        SIP library: it goes on by itself at the survivor, which needs no new offer from the session
        (`TakenOver`; a library is not asked for one either: gateway/websip/takeover.py)."""
        kept = self.http is not None or self.rpc is not None or self.websip is not None
        return self.media.get("kind") == PASSTHROUGH and kept

    def machine_here(self, wall: float, mono: float) -> dict[str, Any]:
        """The machine's dict with its monotonic times on this instance's clock (now: `wall`, `mono`)."""
        shift = (mono - (wall - self.wall)) - self.mono
        moved = dict(self.machine)
        for name in _TIMES:
            value = moved.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                moved[name] = value + shift
        return moved
