"""A SIP library's REFER (gateway/websip/transfer.py): blind to the Refer-To's user, attended when its
Replaces names the session's other call; 202 then NOTIFYs from the call core's `transfer` events, in
order; refusals answered without NOTIFY."""

from __future__ import annotations

import asyncio
from typing import cast

from gateway.signaling import events as sig
from gateway.signaling.errors import NotFound, SignalingError
from gateway.signaling.service import CallService, SessionSink
from gateway.sip.useragent.ua_calls import Call
from gateway.websip.transfer import LibraryTransfers


class Transfers:
    def __init__(self) -> None:
        self.answers: list[int] = []
        self.notifies: list[tuple[int, str]] = []

    def answer(self, status: int, reason: str | None = None) -> None:
        self.answers.append(status)

    async def notify(self, status: int, reason: str) -> None:
        await asyncio.sleep(0)
        self.notifies.append((status, reason))


class Leg:
    def __init__(self) -> None:
        self.transfer = Transfers()


class Calls:
    def __init__(self, refusal: SignalingError | None = None) -> None:
        self.refusal = refusal
        self.transfers: list[tuple[str, str | None, str | None]] = []

    async def transfer(
        self, session: SessionSink, call_id: str, to: str | None, replaces: str | None
    ) -> None:
        if self.refusal is not None:
            raise self.refusal
        self.transfers.append((call_id, to, replaces))


def _made(calls: Calls) -> tuple[LibraryTransfers, list[asyncio.Task[None]]]:
    tasks: list[asyncio.Task[None]] = []
    dialogs = {"sip-b": "B", "sip-a": "A"}
    transfers = LibraryTransfers(
        cast(SessionSink, object()),
        cast(CallService, calls),
        lambda coro: tasks.append(asyncio.ensure_future(coro)),
        dialogs.get,
    )
    return transfers, tasks


async def test_blind_refer_then_notifies_from_the_transfer_events() -> None:
    calls, leg = Calls(), Leg()
    transfers, tasks = _made(calls)
    await transfers.refer("A", cast(Call, leg), "sip:2001@example.test", "")
    assert calls.transfers == [("A", "2001", None)] and leg.transfer.answers == [202]
    for event in (
        sig.Transfer("A", "requested"),
        sig.Transfer("A", "accepted", 202),
        sig.Transfer("A", "progress", 180),
        sig.Transfer("A", "succeeded", 200),
    ):
        assert transfers.event("A", event, None)
    await transfers.settled("A")  # what our BYE waits for
    assert leg.transfer.notifies == [(100, "Trying"), (180, "Ringing"), (200, "OK")]
    assert not transfers.event("A", sig.Transfer("A", "failed"), None)  # the subscription is over
    await asyncio.gather(*tasks)


async def test_attended_refer_names_the_consultation_call_by_its_dialog() -> None:
    calls, leg = Calls(), Leg()
    transfers, tasks = _made(calls)
    await transfers.refer("A", cast(Call, leg), "sip:2001@x", "sip-b%3Bto-tag%3D1%3Bfrom-tag%3D2")
    assert calls.transfers == [("A", None, "B")] and leg.transfer.answers == [202]
    assert transfers.event("A", sig.Transfer("A", "failed", None, "the subscription ended"), None)
    await asyncio.gather(*tasks)
    assert leg.transfer.notifies == [(100, "Trying"), (503, "Service Unavailable")]


async def test_refusals_are_answered_without_notify() -> None:
    for replaces, refusal, status in (
        ("unknown%3Bto-tag%3D1%3Bfrom-tag%3D2", None, 403),  # no call of the session's
        ("sip-a%3Bto-tag%3D1%3Bfrom-tag%3D2", None, 403),  # the REFER's own call
        ("sip-b", None, 400),  # no tags
        ("", NotFound("no call"), 481),
    ):
        calls, leg = Calls(refusal), Leg()
        transfers, tasks = _made(calls)
        await transfers.refer("A", cast(Call, leg), "sip:2001@x", replaces)
        assert leg.transfer.answers == [status] and not tasks, (replaces, leg.transfer.answers)
        assert not transfers.event("A", sig.Transfer("A", "progress", 180), None)


class Refused:
    status = 603


async def test_the_sip_partys_refer_goes_to_the_library_and_its_invite_carries_it_out() -> None:
    calls, leg = Calls(), Leg()
    transfers, tasks = _made(calls)
    refers: list[str] = []

    async def refer(refer_to: object) -> Refused:
        refers.append(str(refer_to))
        return Refused() if len(refers) > 1 else type("Accepted", (), {"status": 202})()

    leg.transfer.refer = refer  # type: ignore[attr-defined]
    assert transfers.event("A", sig.TransferRequested("A", "sip:2001@example.test"), cast(Call, leg))
    await asyncio.gather(*tasks)
    assert refers == ["<sip:2001@example.test>"]
    assert transfers.referred("2002") is None
    assert transfers.referred("2001") == "A" and transfers.referred("2001") is None  # once
    assert transfers.event("A", sig.TransferRequested("A", "sip:2001@example.test"), cast(Call, leg))
    await asyncio.gather(*tasks)
    assert transfers.referred("2001") is None  # the library refused our REFER
