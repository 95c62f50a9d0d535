"""Example 4: call a real SIP desk phone from Python with the gateway's user agent.

Run it from anywhere:  python examples/04_call_a_phone.py

It starts a pjsua2 desk phone (examples/desk_phone.py) on a free loopback port, calls it with
:class:`gateway.sip.UserAgent`, prints every event of the call, sends a DTMF digit by SIP INFO,
puts the phone on hold and back, hangs up, and stops the phone.
"""

from __future__ import annotations

import asyncio
import sys

from gateway.sip import Answered, Bye, Listen, Provisional, UASettings, UserAgent
from gateway.sip.transactions.policy import AcceptAll
from peers.demo import require_desk_phone
from peers.phone import DeskPhone

OFFER = (
    "v=0\r\no=gateway 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-15\r\na=sendrecv\r\n"
)


async def main() -> int:
    require_desk_phone()
    phone = await DeskPhone(user="2000", tone=440).start()
    port = phone.port
    print(f"desk phone (pjsua2) listening on 127.0.0.1:{port}")
    ua = UserAgent(UASettings(listen=(Listen("udp", "127.0.0.1", 0),)), policy=AcceptAll())
    try:
        await ua.start()
        print(f"user agent listening on {ua.endpoint.host}:{ua.endpoint.port}")
        call = await ua.invite(f"sip:2000@127.0.0.1:{port}", OFFER, "sip:gateway@127.0.0.1")
        print(f"INVITE sent (Call-ID {call.call_id})")
        async for event in call.events():
            if isinstance(event, Provisional):
                print(f"  the phone answered {event.status} {event.reason}")
            if isinstance(event, Answered):
                media = next(line for line in event.sdp.splitlines() if line.startswith("m=audio"))
                print(
                    f"  the phone answered 200 OK, its audio on RTP port {media.split()[1]}; we sent the ACK"
                )
                break
        else:
            return 1
        await phone.wait_for("state", state="CONFIRMED")
        print("the phone says: CONFIRMED")
        response = await call.info("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n")
        print(f"INFO DTMF 5 answered {response.status}; the phone heard digit "
              f"{(await phone.wait_for('dtmf'))['digit']}")  # fmt: skip
        held = await call.hold()
        print(f"hold (re-INVITE a=sendonly) answered {held.status}: the phone answers "
              f"{'a=recvonly' if 'a=recvonly' in held.sdp else held.sdp!r}")  # fmt: skip
        resumed = await call.resume()
        print(f"resume (re-INVITE a=sendrecv) answered {resumed.status}")
        await call.bye()
        event = await call.next_event(5)
        assert isinstance(event, Bye)
        print(f"BYE sent: the phone answered {event.status}")
        state = await phone.wait_for("state", state="DISCONNECTED")
        print(f"the phone says: DISCONNECTED ({state['code']} {state['reason']})")
        return 0
    finally:
        await ua.close()
        await phone.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
