"""What Asterisk does inside a call's dialog: a re-INVITE that changes the codec (the dialplan's
PJSIP_MEDIA_OFFER + PJSIP_SEND_SESSION_REFRESH), direct media (a re-INVITE moving the web user's media
to the desk phone itself), session timers Asterisk refreshes itself (RFC 4028, refresher=uac on its own
INVITE), and Asterisk restarted mid-call, gracefully and killed (what the web user sees, and the
gateway registering again)."""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from peers.asterisk import RTP_PORTS, Asterisk
from peers.webpeer import WebPeer
from sipcore import RegState
from tests.e2e.asterisk import pbx as conf
from tests.e2e.asterisk.pbx import ALICE_EXT, MILLIWATT_HZ, PHONE_EXT
from tests.e2e.asterisk.session import ALICE_AOR, alice_registered, asterisk_phone, web_call
from tests.e2e.harness import wait_until

PHONE_HZ, WEB_HZ = 440.0, 1000.0
SESSION_EXPIRES = 90  # RFC 4028's least; Asterisk (pjsip) accepts no less


def _endpoints() -> str:
    """alice's extension and the phone with direct media, alice's with short session timers."""
    alice = conf.endpoint(ALICE_EXT, direct_media=True).replace(
        "timers=yes", f"timers=yes\ntimers_sess_expires={SESSION_EXPIRES}\ntimers_min_se=90"
    )
    return alice + conf.endpoint(PHONE_EXT, direct_media=True) + conf.endpoint(conf.BOB_EXT)


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Asterisk]:
    # Dial() without the transfer keys (tT): Asterisk bridges natively (direct media) only when it
    # need not listen for DTMF features, as FreePBX's direct media notes say
    files = {"pjsip.conf": _endpoints(), "extensions.conf": conf.DIALPLAN.replace(",30,tT)", ",30)")}
    yield from conf.asterisk_pbx(Path(tmp_path_factory.mktemp("asterisk")), **files)


@pytest.fixture(autouse=True)
def since(pbx: Asterisk) -> int:
    """Where the shared Asterisk's log stood when the test began: each test reads its own messages."""
    return pbx.log_mark()


def sip_messages(pbx: Asterisk, start: str, since: int) -> list[str]:
    """The SIP messages Asterisk sent or received since ``since`` whose first line starts with ``start``."""
    messages = re.split(
        r"<--- (?:Transmitting|Received) SIP \w+ \(\d+ bytes\) (?:to|from) \S+ --->\n", pbx.log(since)
    )
    return [m for m in messages[1:] if m.startswith(start)]


def in_dialog(message: str, to: str = "") -> bool:
    """A request in a dialog already up (its To has a tag), to the user part ``to`` when given."""
    return re.search(rf"\nTo: [^\n]*{re.escape(to)}[^\n]*;tag=", message) is not None


async def test_a_reinvite_of_asterisks_changes_the_codec_mid_call(pbx: Asterisk, since: int) -> None:
    async with alice_registered(pbx) as (_gateway, alice), web_call(alice, "604", freq=WEB_HZ) as (_c, peer):
        await wait_until(lambda: peer.heard(WEB_HZ, last=1.0), timeout=10)  # Echo() after the re-INVITE
        reinvites = [m for m in sip_messages(pbx, "INVITE sip:", since) if in_dialog(m)]
        assert reinvites and "a=rtpmap:9 G722/8000" in reinvites[-1] and "PCMU" not in reinvites[-1]
        answers = [m for m in sip_messages(pbx, "SIP/2.0 200 OK", since) if "CSeq: " in m and " INVITE" in m]
        assert "a=rtpmap:9 G722/8000" in answers[-1], answers[-1]  # the gateway took G.722
        peer.clear()
        await wait_until(lambda: peer.heard(WEB_HZ, last=1.0), timeout=10)  # and still hears herself


async def test_direct_media_moves_the_web_users_media_to_the_phone(
    pbx: Asterisk, tmp_path: Path, since: int
) -> None:
    async with (
        asterisk_phone(pbx, tmp_path, PHONE_HZ, codecs="PCMU") as phone,
        alice_registered(pbx, codecs={"sip": ["PCMU"]}) as (_gateway, alice),
    ):
        before = len([m for m in sip_messages(pbx, "INVITE sip:", since) if in_dialog(m, "sip:1001@")])
        async with web_call(alice, PHONE_EXT, freq=WEB_HZ) as (_call_id, peer):
            incoming = await phone.wait_for("incoming")
            await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
            # Asterisk bridges natively and re-INVITEs the gateway with the phone's own RTP address
            await wait_until(
                lambda: (
                    len([m for m in sip_messages(pbx, "INVITE sip:", since) if in_dialog(m, "sip:1001@")])
                    > before
                ),
                timeout=15,
            )
            reinvite = [m for m in sip_messages(pbx, "INVITE sip:", since) if in_dialog(m, "sip:1001@")][-1]
            port = int(re.search(r"\nm=audio (\d+) ", reinvite).group(1))  # type: ignore[union-attr]
            assert not pbx.rtp_start <= port < pbx.rtp_start + RTP_PORTS, "not the phone's address"
            peer.clear()
            await wait_until(lambda: peer.heard(PHONE_HZ, last=1.0), timeout=10)
            # the phone now gets the gateway's packets, no longer Asterisk's, a stream of them (pjsua's
            # recorder stops at the re-INVITE that moves its media: its recording cannot tell the tone)
            first = await phone.rtp(incoming["call"])
            await asyncio.sleep(1.0)
            then = await phone.rtp(incoming["call"])
            for source in first["source"], then["source"]:
                assert not pbx.rtp_start <= int(source.rsplit(":", 1)[1]) < pbx.rtp_start + RTP_PORTS, source
            assert then["received"] - first["received"] >= 25, (first, then)  # 50 a second, 20 ms each
        await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")


async def test_asterisk_refreshes_its_session_timer(pbx: Asterisk, since: int) -> None:
    async with alice_registered(pbx) as (_gateway, alice):
        peer = WebPeer(freq=WEB_HZ)
        try:
            await pbx.cli(f"channel originate PJSIP/{ALICE_EXT} extension 603@users")
            ringing = await alice.wait_for("incoming")
            await alice.answer(ringing["call_id"], peer.answer)
            invite = [m for m in sip_messages(pbx, "INVITE sip:1001", since) if not in_dialog(m)][-1]
            assert f"Session-Expires: {SESSION_EXPIRES}" in invite, invite
            answer = [m for m in sip_messages(pbx, "SIP/2.0 200 OK", since) if "Session-Expires" in m][-1]
            assert re.search(rf"Session-Expires: {SESSION_EXPIRES};refresher=uac", answer), answer
            # half the interval later Asterisk refreshes (a re-INVITE or UPDATE), and the gateway takes it
            await wait_until(lambda: _refreshes(pbx, since) >= 1, timeout=SESSION_EXPIRES / 2 + 15)
            peer.clear()
            await wait_until(lambda: peer.heard(MILLIWATT_HZ, last=1.0), timeout=10)
            await alice.request({"type": "hangup", "call_id": ringing["call_id"]})
            ended = await alice.wait_for("ended", call_id=ringing["call_id"])
            assert ended["reason"] == "hangup", ended
        finally:
            await peer.close()


def _refreshes(pbx: Asterisk, since: int) -> int:
    """Asterisk's in-dialog INVITEs or UPDATEs to alice answered 200 by the gateway."""
    sent = [
        m
        for m in sip_messages(pbx, "INVITE sip:", since) + sip_messages(pbx, "UPDATE sip:", since)
        if in_dialog(m)
    ]
    answered = {_cseq(m) for m in sip_messages(pbx, "SIP/2.0 200 OK", since)}
    return sum(_cseq(m) in answered for m in sent)


def _cseq(message: str) -> str:
    found = re.search(r"\nCSeq: (\d+ \w+)", message)
    return found.group(1) if found else ""


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["restarted", "killed"])
async def test_asterisk_restarted_mid_call(pbx: Asterisk, how: signal.Signals) -> None:
    async with alice_registered(pbx) as (gateway, alice):
        assert gateway.sip is not None
        async with web_call(alice, "603", freq=WEB_HZ) as (call_id, peer):
            await wait_until(lambda: peer.heard(MILLIWATT_HZ, last=1.0), timeout=10)
            await pbx.stop(how)
            # SIGTERM: Asterisk hangs up its channels (BYE); SIGKILL: the call's media stops, and the
            # gateway ends the call on its own, with a reason, in seconds
            ended = await alice.wait_for("ended", call_id=call_id, timeout=30)
            expected = "remote_hangup" if how is signal.SIGTERM else "media_timeout"
            assert ended["reason"] == expected, ended
            await pbx.start()
        # back: the gateway registers alice again (Asterisk kept her contact in its astdb, or she
        # registers anew) and a new call goes through
        await gateway.sip.registrations.wait_for(ALICE_AOR, RegState.REGISTERED)
        async with web_call(alice, "600", freq=WEB_HZ) as (_call_id, peer):
            await wait_until(lambda: peer.heard(WEB_HZ, last=1.0), timeout=10)
