"""gateway.runtime.rooms.party: a SIP party's state moves only along TRANSITIONS; the same state again
is no move, and every other pair raises IllegalPartyMove naming both states (walked pair by pair).
Driven without a network: the conference is a stand-in that records what the party announces."""

from __future__ import annotations

import itertools
from collections.abc import Coroutine
from typing import Any, cast

import pytest

from gateway.identity import SipAddress, WebUser
from gateway.runtime.rooms import IllegalPartyMove, PartySession, PartyState
from gateway.runtime.rooms.conference import Conference
from gateway.runtime.rooms.party import TRANSITIONS
from gateway.signaling import events as sig

USER = WebUser("room:r1", "Room r1", SipAddress.parse("sip:700@rooms.invalid"))


class Room:
    """What a party asks of its conference when it moves: `spawn(announce(party))`."""

    room_id = "r1"

    def __init__(self) -> None:
        self.announced: list[PartyState] = []

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        coroutine.close()

    async def announce(self, party: PartySession) -> None:
        self.announced.append(party.state)


def party(room: Room, state: PartyState) -> PartySession:
    session = PartySession(cast(Conference, room), "room-r1-1", USER, "sip:2001@pbx.invalid", inbound=False)
    session.state = state
    return session


@pytest.mark.parametrize(("old", "new"), list(itertools.product(PartyState, repeat=2)))
def test_every_pair_of_states(old: PartyState, new: PartyState) -> None:
    room = Room()
    session = party(room, old)
    if new is old:
        assert session._set_state(new) is False  # no move, nothing announced
    elif (old, new) in TRANSITIONS:
        assert session._set_state(new) is True
    else:
        with pytest.raises(IllegalPartyMove, match=f"{old.value} -> {new.value}") as raised:
            session._set_state(new)
        assert (raised.value.old, raised.value.new) == (old, new)
        assert session.state is old  # an illegal move changes nothing
        return
    assert session.state is new


def test_the_table_reaches_every_state_from_calling() -> None:
    reached = {PartyState.CALLING}
    for _ in PartyState:
        reached |= {new for old, new in TRANSITIONS if old in reached}
    assert reached == set(PartyState)
    assert not any(old is PartyState.ENDED for old, _ in TRANSITIONS)  # ENDED is final


async def test_a_ringing_after_the_answer_raises() -> None:
    room = Room()
    session = party(room, PartyState.CALLING)
    await session.send_event(sig.Ringing("c1"))
    await session.send_event(sig.Connected("c1", None))
    assert session.state is PartyState.CONNECTED
    with pytest.raises(IllegalPartyMove, match="connected -> ringing"):
        await session.send_event(sig.Ringing("c1"))
