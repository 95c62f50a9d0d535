"""Example 5: register the gateway with a SIP registrar, and take a call from a desk phone through it.

Run it from anywhere:  python examples/05_register_and_answer.py   (needs Debian's `kamailio`)

It starts Kamailio on a free loopback port as a registrar with digest auth (the configuration of
the test suite, peers/kamailio/kamailio.cfg: users 2000-2003 and `gateway`), registers the
gateway's user agent there as sip:gateway@127.0.0.1:PORT, registers a pjsua2 desk phone as 2000,
has the phone call the gateway's address of record, answers through Kamailio, hangs up, and on
the way out unregisters and stops the phone and Kamailio.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from gateway.sip import Bye, Confirmed, RegistrationChanged, RegistrationSpec, UASettings, UserAgent
from gateway.sip.transactions.policy import AcceptAll
from peers.demo import require_desk_phone
from peers.kamailio import running_kamailio
from peers.phone import DeskPhone
from sipcore import RegState, SipURI

ANSWER = (
    "v=0\r\no=gateway 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 40002 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    "a=sendrecv\r\n"
)


def show(change: RegistrationChanged) -> None:
    print(f"  registration {change.aor}: {change.old.value} -> {change.new.value} ({change.reason})")


async def main() -> int:
    require_desk_phone()
    with (
        tempfile.TemporaryDirectory(prefix="gateway-example-") as tmp,
        running_kamailio(Path(tmp)) as kamailio,
    ):
        port = kamailio.port
        phone = None
        registrar = f"sip:127.0.0.1:{port}"
        aor = f"sip:gateway@127.0.0.1:{port}"
        spec = RegistrationSpec(
            SipURI("127.0.0.1", "gateway", port=port), "gateway", "gatewaysecret", expires=300
        )
        ua = UserAgent(UASettings(registrations=(spec,)), policy=AcceptAll(), on_registration=show)
        try:
            await ua.start()
            for _ in range(100):  # until Kamailio answers OPTIONS
                if (await ua.options(registrar)).status == 200:
                    break
                await asyncio.sleep(0.1)
            print(f"1. Kamailio registrar on 127.0.0.1:{port}; gateway user agent on port {ua.endpoint.port}")
            state = await ua.registrations.wait_for(aor, RegState.REGISTERED, RegState.FAILED)
            print(f"2. gateway registered as {aor} with digest auth: {state.value}")
            phone = await DeskPhone(Path(tmp), user="2000", register=registrar, password="secret2000").start()
            registered = await phone.wait_for("registered")
            print(f"3. desk phone 2000 registered: {registered['code']} {registered['reason']}")
            await phone.call(aor)
            call = await ua.next_incoming(10)
            print(f"4. incoming call from {call.caller} to {call.callee} (Request-URI {call.request_uri})")
            print(f"   through Kamailio: Record-Route {call.request.headers.get('Record-Route')}")
            call.ring()
            call.answer(ANSWER)
            event = await call.next_event(10)
            assert isinstance(event, Confirmed)
            print("5. answered 200 OK with our SDP; the phone's ACK confirmed the call")
            await phone.wait_for("state", state="CONFIRMED")
            print("   the phone says: CONFIRMED")
            await asyncio.sleep(1.0)
            await call.bye()
            bye = await call.next_event(5)
            assert isinstance(bye, Bye)
            print(f"6. hung up: our BYE was answered {bye.status}")
            ended = await phone.wait_for("state", state="DISCONNECTED")
            print(f"   the phone says: DISCONNECTED ({ended['code']} {ended['reason']})")
        finally:
            await ua.close()
            left = ", ".join(f"{aor} {state}" for aor, state in ua.registration_states().items())
            print(f"7. gateway closed: {left or 'no registration'}")
            if phone is not None:
                await phone.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
