"""A call taken over from an instance that died is told to the sessions of its login that are already
open here (gateway/runtime/continuity/reconnect.py `newly_waiting`), once each: a page that logged in at
the survivor before the takeover (CI, under load: its login served 1.4 s before the takeover) was never
told of its call, which ended when its grace ran out. A login after the takeover hears of it as before
(`waiting`), and neither path tells a session twice."""

from __future__ import annotations

import dataclasses
from typing import Any

from gateway.calls.boundary.events import TakenOver
from gateway.calls.machine import CallMachine
from gateway.runtime.continuity.reconnect import Reconnects
from tests.calls import flows as f


class Registry:
    """The two things Reconnects asks of the call registry: a call by id, and the settings."""

    def __init__(self, *machines: CallMachine) -> None:
        self._calls = {m.call_id: m for m in machines}
        self.settings = dataclasses.replace(f.SETTINGS, reconnect_grace=20.0)

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._calls

    def get(self, call_id: str) -> CallMachine:
        return self._calls[call_id]


@dataclasses.dataclass
class Page:
    """A WebSocket session of the softphone protocol (a ResumableSink) of login ``token_family``."""

    id: str
    token_family: str | None = "fam"
    closed: bool = False
    logged_out: bool = False
    user: Any = f.ALICE

    async def send_event(self, event: object) -> None:  # pragma: no cover - not sent here
        raise AssertionError(event)

    async def replaced(self) -> None:  # pragma: no cover
        raise AssertionError("replaced")


def taken_over() -> tuple[CallMachine, Reconnects]:
    machine = f.connected_out()
    reconnects = Reconnects(Registry(machine))  # type: ignore[arg-type]
    reconnects.adopt(machine.call_id, "fam", f.ALICE.id)
    f.run(machine, TakenOver("gw1", session_kept=False, media_intact=False))
    assert machine.waits_for_browser
    return machine, reconnects


def test_a_page_open_before_the_takeover_is_told_once() -> None:
    machine, reconnects = taken_over()
    early, other, gone = Page("s1"), Page("s2", token_family="another"), Page("s3", closed=True)
    told = reconnects.newly_waiting(machine.call_id, [early, other, gone])
    assert [(session.id, summary.call_id) for session, summary in told] == [("s1", machine.call_id)]
    assert reconnects.newly_waiting(machine.call_id, [early]) == []  # once
    assert reconnects.waiting(early) == ()  # its own login's list does not repeat it


def test_a_login_after_the_takeover_hears_of_it_as_before_and_only_once() -> None:
    machine, reconnects = taken_over()
    late = Page("s4")
    assert [summary.call_id for summary in reconnects.waiting(late)] == [machine.call_id]
    assert reconnects.newly_waiting(machine.call_id, [late]) == []
    assert [summary.call_id for summary in reconnects.waiting(Page("s5"))] == [
        machine.call_id
    ]  # another page


def test_a_call_adopted_but_not_yet_waiting_is_kept_for_the_takeover_to_tell() -> None:
    """A login between the adoption and the TakenOver that detaches the call: the record stays (it was
    dropped before, and the call was then told to nobody)."""
    machine = f.connected_out()
    reconnects = Reconnects(Registry(machine))  # type: ignore[arg-type]
    reconnects.adopt(machine.call_id, "fam", f.ALICE.id)
    page = Page("s6")
    assert reconnects.waiting(page) == ()  # still attached as the dead instance left it
    f.run(machine, TakenOver("gw1", session_kept=False, media_intact=False))
    assert [s.id for s, _ in reconnects.newly_waiting(machine.call_id, [page])] == ["s6"]
