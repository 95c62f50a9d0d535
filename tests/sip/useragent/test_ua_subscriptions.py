"""The subscription client of the user agent against a PBX's notifier played by sipp
(peers/scenarios/uas_blf_mwi.xml), without a gateway around it: the dialog package's NOTIFYs (RFC 4235)
give ringing, busy and idle, message-summary's (RFC 3842) the counts, a malformed body gets 400 and
changes nothing, and closing unsubscribes (Expires: 0)."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.sip.useragent.subscriptions import Notice, NotifyFront, SubscriptionClient, SubscriptionSpec
from peers.binaries import require_binary
from peers.sipp import Sipp
from sipcore.event_bodies import DIALOG_INFO, MESSAGE_SUMMARY, DialogInfo, MessageSummary
from sipcore.location.routing import Target
from sipcore.subscription import SubscriptionConfig
from sipcore.syntax.uri import SipURI
from sipcore.transaction import TimerConfig
from tests.e2e.harness import wait_until
from tests.sip.ua_helpers import running_ua

ALICE = SipURI("127.0.0.1", "1001")


def specs() -> tuple[SubscriptionSpec, ...]:
    lamp = SubscriptionConfig(SipURI("127.0.0.1", "1002"), ALICE, "dialog", DIALOG_INFO, expires=300)
    mailbox = SubscriptionConfig(ALICE, ALICE, "message-summary", MESSAGE_SUMMARY, expires=300)
    return (
        SubscriptionSpec("alice", "contact", "1002", lamp),
        SubscriptionSpec("alice", "voicemail", "1001", mailbox),
    )


async def test_lamps_and_counts_from_the_notifier_then_unsubscribed(tmp_path: Path) -> None:
    require_binary("sipp")
    pbx = Sipp(tmp_path, "uas_blf_mwi", calls=2, duration_ms=300, timeout=30)
    await pbx.start()
    notices: list[Notice] = []
    try:
        async with running_ua(TimerConfig(), outbound=Target("UDP", "127.0.0.1", pbx.port)) as ua:
            client = SubscriptionClient(ua.layer, ua.endpoint, specs(), outbound=ua.settings.outbound,
                                        on_notice=notices.append)  # fmt: skip
            ua.layer.tu = NotifyFront(ua.layer.tu, client)
            client.start()

            def lamps() -> list[str]:
                return [n.body.lamp for n in notices if isinstance(n.body, DialogInfo)]

            await wait_until(lambda: lamps()[-1:] == ["idle"] and len(lamps()) == 4, timeout=10)
            assert lamps() == ["idle", "ringing", "busy", "idle"]
            await wait_until(lambda: len([n for n in notices if isinstance(n.body, MessageSummary)]) == 2)
            counts = [(n.body.new, n.body.old) for n in notices if isinstance(n.body, MessageSummary)]
            assert counts == [(2, 8), (3, 8)]
            assert client.states() == {"alice contact 1002": "active", "alice voicemail 1001": "active"}
            await wait_until(lambda: "SIP/2.0 400" in (pbx.workdir / "messages.log").read_text(), timeout=5)
            assert lamps()[-1] == "idle"  # the malformed NOTIFY changed nothing
            await client.stop()
            assert set(client.states().values()) == {"idle"}
    finally:
        result = await pbx.wait(timeout=10)
    assert result.ok, result
    assert result.count("SIP/2.0 400") == 1 and result.logs.count("unsubscribed: Expires 0") == 2, result


async def test_403_terminated_481_and_489_from_the_notifier(tmp_path: Path) -> None:
    """403: retried after the backoff; terminated (deactivated): subscribed again at once, a new dialog;
    481 to the refresh: a new subscription at once; 489: given up, no more SUBSCRIBEs."""
    require_binary("sipp")
    pbx = Sipp(tmp_path, "uas_subscribe_refusals", calls=4, timeout=30)
    await pbx.start()
    notices: list[Notice] = []
    try:
        async with running_ua(TimerConfig(), outbound=Target("UDP", "127.0.0.1", pbx.port)) as ua:
            config = SubscriptionConfig(
                SipURI("127.0.0.1", "1002"), ALICE, "dialog", DIALOG_INFO, expires=600, retry_base=0.2
            )
            spec = SubscriptionSpec("alice", "contact", "1002", config)
            client = SubscriptionClient(ua.layer, ua.endpoint, (spec,), outbound=ua.settings.outbound,
                                        on_notice=notices.append)  # fmt: skip
            ua.layer.tu = NotifyFront(ua.layer.tu, client)
            client.start()
            await wait_until(lambda: client.states() == {"alice contact 1002": "failed"}, timeout=15)
            states = [n.state for n in notices if n.body is None]
            assert states == [
                "subscribing",  # call 1
                "retry wait",  # 403
                "subscribing",  # call 2
                "active",
                "subscribing",  # terminated;reason=deactivated: call 3 at once
                "active",
                "refreshing",  # Expires: 2
                "subscribing",  # 481: call 4
                "failed",  # 489
            ], states
            lamps = [n.body.lamp for n in notices if isinstance(n.body, DialogInfo)]
            assert lamps == ["idle", "busy"], lamps
    finally:
        result = await pbx.wait(timeout=10)
    assert result.ok, result
    call_ids = set(re.findall(r"^Call-ID: (.+)$", result.messages, re.M))
    assert len(call_ids) == 4, call_ids  # each new subscription is a new dialog
    assert result.count("SUBSCRIBE") == 5, result  # 4 new ones and the refresh


async def test_a_subscription_added_later_reports_to_its_own_callback_and_is_removed(tmp_path: Path) -> None:
    """What the SIP libraries' relay (gateway/websip/subscriptions.py) uses: `add` starts a subscription
    at once, its notices (with the NOTIFY's body as it came) go to the spec's own callback, and `remove`
    unsubscribes it (Expires: 0) while the client goes on."""
    require_binary("sipp")
    pbx = Sipp(tmp_path, "uas_blf_mwi", calls=1, duration_ms=200, timeout=30)
    await pbx.start()
    own: list[Notice] = []
    shared: list[Notice] = []
    try:
        async with running_ua(TimerConfig(), outbound=Target("UDP", "127.0.0.1", pbx.port)) as ua:
            client = SubscriptionClient(ua.layer, ua.endpoint, (), outbound=ua.settings.outbound,
                                        on_notice=shared.append)  # fmt: skip
            ua.layer.tu = NotifyFront(ua.layer.tu, client)
            client.start()
            config = SubscriptionConfig(SipURI("127.0.0.1", "1002"), ALICE, "dialog", DIALOG_INFO)
            spec = SubscriptionSpec("alice", "relay", "1002", config, on_notice=own.append)
            client.add(spec, ua.endpoint)
            await wait_until(lambda: any(b"<state>terminated</state>" in n.raw for n in own), timeout=10)
            assert all(n.content_type == DIALOG_INFO for n in own if n.raw), own
            assert shared == []
            await wait_until(lambda: "SIP/2.0 400" in (pbx.workdir / "messages.log").read_text())
            client.remove(spec)
            await wait_until(lambda: "unsubscribed: Expires 0" in (pbx.workdir / "logs.log").read_text())
            assert client.states() == {}
            await client.stop()
    finally:
        result = await pbx.wait(timeout=10)
    assert result.ok, result


async def test_the_notifiers_final_notify_after_an_unsubscribe_is_answered_200(tmp_path: Path) -> None:
    """RFC 6665 §4.1.2.3 and §4.4.1: an unsubscribe's 200 does not end the subscription; the notifier's
    last NOTIFY (Subscription-State: terminated) does, and it is answered 200, as Asterisk sends it. The
    gateway answered 481 once the 200 had come (peers/scenarios/uas_subscribe_final_notify.xml fails a
    call on anything but 200)."""
    require_binary("sipp")
    pbx = Sipp(tmp_path, "uas_subscribe_final_notify", calls=1, timeout=30)
    await pbx.start()
    own: list[Notice] = []
    try:
        async with running_ua(TimerConfig(), outbound=Target("UDP", "127.0.0.1", pbx.port)) as ua:
            client = SubscriptionClient(ua.layer, ua.endpoint, (), outbound=ua.settings.outbound)
            ua.layer.tu = NotifyFront(ua.layer.tu, client)
            client.start()
            config = SubscriptionConfig(SipURI("127.0.0.1", "1002"), ALICE, "dialog", DIALOG_INFO)
            spec = SubscriptionSpec("alice", "relay", "1002", config, on_notice=own.append)
            client.add(spec, ua.endpoint)
            await wait_until(lambda: any(n.raw for n in own), timeout=10)
            client.remove(spec)
            await wait_until(lambda: "final NOTIFY answered 200" in _log(pbx), timeout=10)
            await client.stop()
    finally:
        result = await pbx.wait(timeout=10)
    assert result.ok, result
    assert "SIP/2.0 481" not in result.messages, result.messages[-2000:]


def _log(pbx: Sipp) -> str:
    path = pbx.workdir / "logs.log"
    return path.read_text() if path.exists() else ""
