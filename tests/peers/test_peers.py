"""The real-peer harness proves itself against real peers only (no gateway yet): sipp against sipp, sipp
against the pjsua2 desk phone, phone against phone (directly and through Kamailio), and Kamailio's digest
registrar against both.
"""

from __future__ import annotations

import asyncio
import math
import socket
from collections.abc import Sequence
from pathlib import Path

import pytest

from peers.audio import detect_tone, has_tone, read_wav, silence, sine, tone_ratio
from peers.binaries import require_binary
from peers.kamailio import Kamailio
from peers.phone import DeskPhone
from peers.sipp import SCENARIOS, Sipp, check_loads, load_errors


@pytest.fixture
def sipp() -> str:
    return require_binary("sipp")


def heard(path: Path, freq: float, *, skip: float = 0.3, seconds: float = 0.5, share: float = 0.5) -> bool:
    """The WAV holds `freq` clearly over half a second (after `skip` seconds of set-up; a later window
    counts too: on a loaded machine a phone's media may start a little late): at least `share` of the
    window's energy is at `freq`. Half a second, not more: a loaded jitter buffer's resync jumps the
    tone's phase, and one Goertzel across the jump cancels itself (a clean echo read 0.35 over 1 s)."""
    rate, samples = read_wav(path)
    window = samples[int(skip * rate) : int((skip + seconds) * rate)]
    assert len(window) >= rate * seconds * 0.9, f"{path}: only {len(samples) / rate:.2f} s recorded"
    return any(
        detect_tone(block, rate, freq, threshold=share) for block in windows(samples, rate, skip, seconds)
    )


def windows(samples: Sequence[int], rate: int, skip: float, seconds: float) -> list[Sequence[int]]:
    step, size = rate // 8, int(seconds * rate)
    starts = range(int(skip * rate), max(int(skip * rate), len(samples) - size) + 1, step)
    return [samples[start : start + size] for start in starts]


PHONE_SHARE = 0.05  # the tone's share of a second's energy in a desk phone's own recording (see below)


def ratio(path: Path, freq: float, *, skip: float = 0.3, seconds: float = 0.5) -> float:
    """The best window's share of `freq`, for a failing assertion's message."""
    rate, samples = read_wav(path)
    return max(
        (tone_ratio(block, rate, freq) for block in windows(samples, rate, skip, seconds)), default=0.0
    )


# --- sipp scenarios ----------------------------------------------------------------------------------------
async def test_every_scenario_loads(sipp: str, tmp_path: Path) -> None:
    scenarios = sorted(SCENARIOS.glob("*.xml"))
    assert len(scenarios) >= 10
    options = {
        "service": "2000",
        "auth": ("2000", "secret"),
        "inf": [["2000", "secret"]],
        # the session-timer scenarios' Session-Expires; where the pickup scenarios write the dialog's ids;
        # the CANCEL's Reason header of uac_cancel_reason; the G.729, G.722 and Opus scenarios' RTP peer's port;
        # the SIPREC server's two RTP ports
        "keys": {
            "se": "90",
            "dialog_file": str(tmp_path / "dialog.csv"),
            "reason": "SIP;cause=200",
            "g729_port": "4000",
            "g722_port": "4000",
            "opus_port": "4000",
            "port1": "4002",
            "port2": "4004",
        },
    }
    results = await asyncio.gather(*(check_loads(tmp_path, s, **options) for s in scenarios))
    problems = {s.name: load_errors(r) for s, r in zip(scenarios, results, strict=True) if load_errors(r)}
    assert not problems


async def test_check_loads_catches_a_broken_scenario(sipp: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.xml"
    broken.write_text(
        '<?xml version="1.0"?>\n<scenario name="broken"><recv request="INVITE"/>'
        '<nop next="nowhere"/></scenario>\n'
    )
    errors = load_errors(await check_loads(tmp_path, broken))
    assert errors and "nowhere" in errors[0]


async def test_sipp_uac_calls_sipp_uas(sipp: str, tmp_path: Path) -> None:
    async with Sipp(tmp_path, "uas_basic_call", calls=1, rtp_echo=True) as uas:
        uac = await Sipp(tmp_path, "uac_basic_call", uas.address, service="2000", duration_ms=200).run()
        assert uac.ok, uac
        assert uac.count("SIP/2.0 180") >= 1 and uac.count("BYE") >= 1
        assert (await uas.wait(10)).ok


class _LateRingingUas(asyncio.DatagramProtocol):
    """A UAS that answers an INVITE 100, 200, and only then 180 (as a proxy whose workers forward the two in
    the other order does), retransmits its 200 once after the ACK, and answers BYE 200."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.acks = 0
        self.ok = b""  # the 200 sent, for its retransmission

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        text = data.decode(errors="replace")
        head, _, _ = text.partition("\r\n\r\n")
        lines = head.split("\r\n")
        kept = [
            line for line in lines[1:] if line.split(":", 1)[0].lower() in ("via", "from", "call-id", "cseq")
        ]
        to = next(line for line in lines if line.lower().startswith("to:"))
        tagged = to if ";tag=" in to else to + ";tag=late1"
        local = self.transport.get_extra_info("sockname")  # type: ignore[union-attr]

        def reply(status: str) -> bytes:
            headers = [f"SIP/2.0 {status}", *kept, tagged, f"Contact: <sip:uas@{local[0]}:{local[1]}>"]
            return ("\r\n".join([*headers, "Content-Length: 0", "", ""])).encode()

        assert self.transport is not None
        method = lines[0].split(" ", 1)[0]
        if method == "INVITE":
            self.ok = reply("200 OK")
            for message in (reply("100 Trying"), self.ok, reply("180 Ringing")):
                self.transport.sendto(message, addr)
        elif method == "ACK":
            self.acks += 1
            if self.acks == 1:
                self.transport.sendto(self.ok, addr)  # a retransmitted 200: sipp ACKs it again
        elif method == "BYE":
            self.transport.sendto(reply("200 OK"), addr)


async def test_sipp_uac_ignores_a_180_that_arrives_after_the_200(sipp: str, tmp_path: Path) -> None:
    """RFC 3261 13.2.2.4: a UAC ignores a provisional response after the final one. uac_basic_call's INVITE
    is a SIPp transaction for that: without it, sipp aborted such a call as unexpected (seen through a
    loaded Kamailio in test_cluster_rolling_restart.py); a retransmitted 200 gets its ACK again."""
    loop = asyncio.get_running_loop()
    transport, uas = await loop.create_datagram_endpoint(_LateRingingUas, local_addr=("127.0.0.1", 0))
    try:
        address = f"127.0.0.1:{transport.get_extra_info('sockname')[1]}"
        uac = await Sipp(tmp_path, "uac_basic_call", address, service="2000", duration_ms=500).run()
        assert uac.ok, uac
        assert "Ignoring provisional" in uac.messages and uac.count("BYE") == 1, uac
        assert uas.acks == 2, uac  # the retransmitted 200's ACK
    finally:
        transport.close()


async def test_sipp_starts_again_when_its_ports_are_taken_before_it_binds(sipp: str, tmp_path: Path) -> None:
    uas = Sipp(tmp_path, "uas_basic_call", calls=1)
    chosen = (uas.port, uas.media_port)
    # another process takes the video RTP port (media + 2) between the choice and sipp's bind
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.1", uas.media_port + 2))
        async with uas:
            assert (uas.port, uas.media_port) != chosen
            uac = await Sipp(tmp_path, "uac_basic_call", uas.address, service="2000", duration_ms=100).run()
            assert uac.ok, uac
            assert (await uas.wait(10)).ok
        # ports the caller gave are kept: the bind error is the result, with sipp's own words
        fixed = await Sipp(tmp_path, "uas_basic_call", media_port=squatter.getsockname()[1] - 2).run()
    assert fixed.returncode == 254 and "Unable to bind video RTP socket" in fixed.stderr, fixed


async def test_sipp_load_options_and_background_stop(sipp: str, tmp_path: Path) -> None:
    uas = await Sipp(tmp_path, "uas_basic_call", calls=None).start()  # no -m: runs until stopped
    try:
        uac = Sipp(
            tmp_path,
            "uac_basic_call",
            uas.address,
            service="2000",
            calls=6,
            rate=20,
            limit=3,
            duration_ms=100,
        )
        result = await uac.run()
        assert result.ok, result
        assert result.count("INVITE sip:") == 6
    finally:
        stopped = await uas.stop()  # SIGUSR1: sipp's smooth exit
    assert stopped.ok, stopped
    assert stopped.count("BYE sip:") == 6


async def test_sipp_cancel_after_ringing(sipp: str, tmp_path: Path) -> None:
    async with Sipp(tmp_path, "uas_ring_cancelled", calls=1) as uas:
        uac = await Sipp(tmp_path, "uac_cancel", uas.address, service="2000").run()
        assert uac.ok, uac
        assert uac.count("SIP/2.0 487") >= 1
        assert (await uas.wait(10)).ok


async def test_sipp_uac_meets_busy_uas(sipp: str, tmp_path: Path) -> None:
    async with Sipp(tmp_path, "uas_busy", calls=1) as uas:
        uac = await Sipp(tmp_path, "uac_basic_call", uas.address, service="2000").run()
        assert not uac.ok and uac.count("SIP/2.0 486") >= 1, uac  # uac_basic_call wants a 200
        assert (await uas.wait(10)).ok  # the 486 was ACKed


async def test_sipp_info_against_auto_answering_uas(sipp: str, tmp_path: Path) -> None:
    async with Sipp(tmp_path, "uas_basic_call", calls=1, auto_answer=True) as uas:  # -aa: 200 to INFO
        uac = await Sipp(tmp_path, "uac_info_dtmf", uas.address, service="2000", duration_ms=100).run()
        assert uac.ok, uac
        assert uac.count("INFO sip:") == 2
        assert (await uas.wait(10)).ok


async def test_sipp_early_media_then_answer(sipp: str, tmp_path: Path) -> None:
    async with Sipp(tmp_path, "uas_early_media", calls=1) as uas:
        uac = await Sipp(tmp_path, "uac_basic_call", uas.address, service="2000", duration_ms=200).run()
        assert uac.ok, uac
        assert uac.count("SIP/2.0 183") >= 1
        assert (await uas.wait(10)).ok


async def test_sipp_register_against_verifyauth_registrar(sipp: str, tmp_path: Path) -> None:
    users = [["2000", "secret2000"]]
    async with (
        Sipp(tmp_path, "uas_registrar_auth", inf=users) as good,
        Sipp(tmp_path, "uas_registrar_auth", inf=users) as bad,
    ):
        valid, wrong = await asyncio.gather(
            Sipp(
                tmp_path, "uac_register_auth", good.address, service="2000", auth=("2000", "secret2000")
            ).run(),
            Sipp(tmp_path, "uac_register_auth", bad.address, service="2000", auth=("2000", "nope")).run(),
        )
        assert valid.ok and valid.count("SIP/2.0 200") >= 1, valid
        assert not wrong.ok and wrong.count("SIP/2.0 403") >= 1, wrong
        assert wrong.count("SIP/2.0 200") == 0
        assert (await good.wait(10)).ok
        # The refused UAC aborts its "call" with a stray BYE, which fails the registrar's run: only check
        # that the registrar said 403 itself.
        assert (await bad.wait(10)).count("SIP/2.0 403") >= 1


# --- sipp against the desk phone ----------------------------------------------------------------------------
async def test_sipp_uac_calls_phone_and_echoes_its_tone(sipp: str, tmp_path: Path) -> None:
    async with DeskPhone(tmp_path, user="2000", tone=440) as phone:
        uac = Sipp(tmp_path, "uac_basic_call", phone.address, service="2000", duration_ms=2000, rtp_echo=True)
        result = await uac.run()
        assert result.ok, result
        incoming = await phone.wait_for("incoming")
        assert "sipp@" in incoming["from"]
        await phone.wait_for("state", state="CONFIRMED")
        await phone.wait_for("media", status="active", codec="PCMU")
        await phone.wait_for("state", state="DISCONNECTED", code=200)  # sipp's BYE
        wav = await phone.wait_for_recording()
        assert heard(wav, 440), ratio(wav, 440)  # the phone's own tone, sent back by sipp -rtp_echo


async def test_sipp_cancel_while_phone_rings(sipp: str, tmp_path: Path) -> None:
    async with DeskPhone(tmp_path, user="2000", answer="ring") as phone:
        result = await Sipp(tmp_path, "uac_cancel", phone.address, service="2000").run()
        assert result.ok, result
        await phone.wait_for("incoming")
        await phone.wait_for("state", state="DISCONNECTED", code=487)


async def test_sipp_info_dtmf_reaches_phone(sipp: str, tmp_path: Path) -> None:
    async with DeskPhone(tmp_path, user="2000") as phone:
        result = await Sipp(tmp_path, "uac_info_dtmf", phone.address, service="2000", duration_ms=200).run()
        assert result.ok, result
        assert (await phone.wait_for("dtmf", digit="5"))["method"] == "info"
        assert (await phone.wait_for("dtmf", digit="#"))["method"] == "info"
        info = await phone.wait_for("info", content_type="application/dtmf-relay")
        assert "Signal=5" in info["body"]


async def test_sipp_holds_and_resumes_phone(sipp: str, tmp_path: Path) -> None:
    async with DeskPhone(tmp_path, user="2000") as phone:
        result = await Sipp(
            tmp_path, "uac_reinvite_hold", phone.address, service="2000", duration_ms=300
        ).run()
        assert result.ok, result
        assert "a=recvonly" in result.messages  # the phone's answer to a=sendonly
        await phone.wait_for("media", status="active")
        await phone.wait_for("media", status="remote_hold")
        await phone.wait_for("media", status="active")


async def test_phone_calls_busy_sipp(sipp: str, tmp_path: Path) -> None:
    async with Sipp(tmp_path, "uas_busy", calls=1) as uas, DeskPhone(tmp_path, user="2000") as phone:
        call = await phone.call(uas.uri("2001"))
        await phone.wait_for("state", call=call, state="DISCONNECTED", code=486)
        assert (await uas.wait(10)).ok


async def test_phone_calls_sipp_with_early_media(sipp: str, tmp_path: Path) -> None:
    async with (
        Sipp(tmp_path, "uas_early_media", calls=1, rtp_echo=True) as uas,
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
    ):
        call = await phone.call(uas.uri("2001"))
        await phone.wait_for("state", call=call, state="EARLY", code=183)
        await phone.wait_for("state", call=call, state="CONFIRMED")
        await received_more(phone, call, packets=75)  # 1.5 s of the echo once answered
        await phone.hangup(call)
        assert (await uas.wait(10)).ok
        assert heard(await phone.wait_for_recording(call), 440)


# --- phone against phone ------------------------------------------------------------------------------------
async def received_more(phone: DeskPhone, call: int, *, packets: int) -> None:
    """Wait (15 s at most) until the phone's own stream has received ``packets`` more RTP packets of
    ``call`` than it has now, instead of a fixed sleep: on a loaded machine pjsua's media can lag."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    wanted = (await phone.rtp(call))["received"] + packets
    while loop.time() < deadline and (await phone.rtp(call))["received"] < wanted:
        await asyncio.sleep(0.1)


async def both_received(caller: DeskPhone, callee: DeskPhone, call: int, *, packets: int) -> None:
    """Wait (15 s at most) until each phone's own stream has received ``packets`` RTP packets of the call,
    instead of a fixed sleep: on a loaded machine pjsua's media can start a second or more late."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while loop.time() < deadline:
        if (await caller.rtp(call))["received"] >= packets and (await callee.rtp())["received"] >= packets:
            return
        await asyncio.sleep(0.1)


async def test_phones_hear_each_others_tone(tmp_path: Path) -> None:
    async with (
        DeskPhone(tmp_path, user="2001", tone=880) as bob,
        DeskPhone(tmp_path, user="2000", tone=440) as alice,
    ):
        call = await alice.call(bob.uri)
        await alice.wait_for("state", call=call, state="CONFIRMED")
        incoming = await bob.wait_for("incoming")
        assert "2000@" in incoming["from"]
        await bob.wait_for("state", state="CONFIRMED")
        assert (await bob.wait_for("media", status="active"))["codec"] == "PCMU"  # PCMU first, not speex
        await both_received(alice, bob, call, packets=80)  # 1.6 s each way (a loaded machine starts late)
        await alice.hangup(call)
        await bob.wait_for("state", state="DISCONNECTED")
        alice_wav, bob_wav = await alice.wait_for_recording(call), await bob.wait_for_recording()
        # PHONE_SHARE: a starved pjsua (the suite's other workers) clicks, and the clicks' broadband
        # energy took the tone's share to 0.2, once (CI) to 0.066; the other phone's tone, or silence, is
        # below 0.0001, so 0.05 still tells the tones apart
        assert heard(alice_wav, 880, share=PHONE_SHARE) and not heard(alice_wav, 440, share=0.01), (
            ratio(alice_wav, 880),
            ratio(alice_wav, 440),
        )
        assert heard(bob_wav, 440, share=PHONE_SHARE) and not heard(bob_wav, 880, share=0.01), (
            ratio(bob_wav, 440),
            ratio(bob_wav, 880),
        )


async def test_phone_dtmf_and_info_reach_the_other_phone(tmp_path: Path) -> None:
    async with DeskPhone(tmp_path, user="2001") as bob, DeskPhone(tmp_path, user="2000") as alice:
        call = await alice.call(bob.uri)
        await alice.wait_for("state", call=call, state="CONFIRMED")
        await bob.wait_for("media", status="active")
        await alice.send("dtmf", digits="12#")  # RFC 2833 (RFC 4733) telephone-events
        for digit in "12#":
            assert (await bob.wait_for("dtmf", digit=digit))["method"] == "rfc2833"
        await alice.send("dtmf", digits="9", method="info")  # INFO application/dtmf-relay
        assert (await bob.wait_for("dtmf", digit="9"))["method"] == "info"
        await alice.send("info", content_type="application/x-gateway-test", body="hello=1\r\nworld=2")
        info = await bob.wait_for("info", content_type="application/x-gateway-test")
        assert info["body"] == "hello=1\r\nworld=2"
        assert (await alice.wait_for("info_response", code=200))["call"] == call
        await alice.hangup(call)


async def test_phone_hold_and_resume(tmp_path: Path) -> None:
    async with DeskPhone(tmp_path, user="2001") as bob, DeskPhone(tmp_path, user="2000") as alice:
        call = await alice.call(bob.uri)
        await bob.wait_for("media", status="active")
        await alice.send("hold", call=call)
        await alice.wait_for("media", call=call, status="local_hold")
        await bob.wait_for("media", status="remote_hold")
        await alice.send("unhold", call=call)
        await alice.wait_for("media", call=call, status="active")
        await bob.wait_for("media", status="active")
        await bob.hangup()
        await alice.wait_for("state", call=call, state="DISCONNECTED")


async def test_phone_answers_busy(tmp_path: Path) -> None:
    async with (
        DeskPhone(tmp_path, user="2001", answer="busy") as bob,
        DeskPhone(tmp_path, user="2000") as alice,
    ):
        call = await alice.call(bob.uri)
        await alice.wait_for("state", call=call, state="DISCONNECTED", code=486)


# --- Kamailio -----------------------------------------------------------------------------------------------
async def test_phone_registers_with_digest(kamailio: Kamailio, tmp_path: Path) -> None:
    async with (
        DeskPhone(
            tmp_path, user="2000", register=kamailio.registrar, password=kamailio.users["2000"]
        ) as good,
        DeskPhone(tmp_path, user="2001", register=kamailio.registrar, password="wrong") as bad,
    ):
        ok = await good.wait_for("registered")
        assert (ok["code"], ok["registered"]) == (200, True), ok
        refused = await bad.wait_for("registered")
        assert refused["code"] in (401, 403) and refused["registered"] is False, refused
        assert (await bad.send("status"))["registered"] is False


async def test_phone_calls_registered_phone_through_kamailio(kamailio: Kamailio, tmp_path: Path) -> None:
    def phone(user: str, tone: float) -> DeskPhone:
        return DeskPhone(
            tmp_path, user=user, tone=tone, register=kamailio.registrar, password=kamailio.users[user]
        )

    async with phone("2001", 880) as bob, phone("2000", 440) as alice:
        await bob.wait_for("registered", code=200)
        await alice.wait_for("registered", code=200)
        call = await alice.call(kamailio.aor("2001"))  # by address of record: Kamailio finds the contact
        await alice.wait_for("state", call=call, state="CONFIRMED")
        await bob.wait_for("state", state="CONFIRMED")
        await alice.send("dtmf", digits="4")
        await bob.wait_for("dtmf", digit="4")
        await both_received(alice, bob, call, packets=75)  # 1.5 s each way (a loaded machine starts late)
        await bob.hangup()  # the BYE follows the Record-Route back through Kamailio
        await alice.wait_for("state", call=call, state="DISCONNECTED", code=200)
        assert heard(await bob.wait_for_recording(), 440, share=PHONE_SHARE)
    assert "INVITE sip:2001@" in kamailio.log() and "BYE sip:" in kamailio.log()


async def test_kamailio_rejects_unknown_and_offline_callees(kamailio: Kamailio, tmp_path: Path) -> None:
    async with DeskPhone(tmp_path, user="2000") as alice:
        call = await alice.call(kamailio.aor("2003"))  # a test user, but not registered: offline
        await alice.wait_for("state", call=call, state="DISCONNECTED", code=480)
        call = await alice.call(kamailio.aor("7777"))  # nobody Kamailio knows
        await alice.wait_for("state", call=call, state="DISCONNECTED", code=404)


async def test_sipp_register_against_kamailio(sipp: str, kamailio: Kamailio, tmp_path: Path) -> None:
    valid, wrong = await asyncio.gather(
        Sipp(
            tmp_path, "uac_register_auth", kamailio.address, service="2002", auth=("2002", "secret2002")
        ).run(),
        Sipp(tmp_path, "uac_register_auth", kamailio.address, service="2003", auth=("2003", "nope")).run(),
    )
    assert valid.ok, valid
    assert not wrong.ok and wrong.count("SIP/2.0 403") >= 1, wrong


def test_has_tone_holds_through_a_phase_jump_that_cancels_a_whole_recording_goertzel() -> None:
    """A desk phone's recording of 880 Hz whose phase turned over once (a jitter buffer's resync): one
    Goertzel over the whole of it reads ~0, the half-second blocks each hold the tone (CI's
    test_attended_transfer recording read 0.29 whole, 1.0 in 10 of its 12 quarter seconds)."""
    rate = 8000
    jumped = sine(880, rate, 1.5) + sine(880, rate, 1.5, phase=math.pi)
    assert tone_ratio(jumped, rate, 880) < 0.3
    assert has_tone(jumped, rate, 880, threshold=0.3)


def test_has_tone_ignores_silence_and_wants_most_of_the_sound() -> None:
    rate = 8000
    assert has_tone(sine(1000, rate, 1.0) + silence(rate, 2.0), rate, 1000)  # then held: silent blocks
    assert not has_tone(sine(440, rate, 3.0), rate, 880)
    assert not has_tone(sine(880, rate, 0.5) + sine(440, rate, 2.5), rate, 880)  # a moment of it only
    assert not has_tone(silence(rate, 2.0), rate, 880)
