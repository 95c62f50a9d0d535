"""A call's legs lent to a mixer (issue 37 item 2: three-way calls), a base of ``MediaBridge``.

How it works: ``lend_to_mix(web=..., sip=...)`` stops the bridge forwarding between its two legs; from
then on each leg's audio payloads (of the codec it negotiated) go to its callback, or are dropped where
the callback is None, and ``send_mixed(leg, payload, timestamp)`` sends a payload of that codec on the
leg, its timestamp counted from where the leg's own timeline stood when it was lent (the far end's
jitter buffer sees no jump). While lent, the fast lane stays unlinked (every packet comes through
Python, as for a WHEP tap) and the comfort fill is off. ``end_mix()`` gives the legs back: forwarding
as before (the paths are configured again, the fast lane may link). A web leg renewed while lent (the
browser came back: a reattach, or a call taken over from another instance) starts a timeline of its own
and may have another codec: ``web_renewed`` tells the owner, who puts it in the mix again. The mixer
itself and its clock are the owner's (gateway/runtime/merge/). Telephone events and RFC 2198 redundancy are not mixed: the
primary of a ``red`` packet is taken, events are dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from gateway.media.bridge_state import BridgeFields, BridgeState
from gateway.media.errors import MediaError
from gateway.media.events import Leg
from gateway.media.rtp import red

if TYPE_CHECKING:
    from gateway.media.codecs.comfort_fill import ComfortFill
    from gateway.media.fastlane.controller import FastLaneController
    from gateway.media.forward import MediaPath
    from gateway.media.rtp.packet import RtpPacket

logger = logging.getLogger("gateway.media.bridge")

MixInput = Callable[[bytes], None]  # one payload of the leg's codec, to the mixer
MIXABLE = ("pcmu", "pcma", "opus")
_MIX_TAP = "mix"


class MixPorts(BridgeFields):
    """See the module note. ``_mixing`` is None while the bridge forwards as usual."""

    _mixing: dict[Leg, MixInput | None] | None = None
    _mix_base: dict[Leg, int]
    _mix_renewed: Callable[[], None] | None = None

    if TYPE_CHECKING:
        fast_lane: FastLaneController | None
        _to_sip: MediaPath
        _to_web: MediaPath
        _fill: ComfortFill
        _clock: Callable[[], float]
        _web_gone: bool

        def _start_fill(self) -> None: ...

        _taps: dict[str, tuple[Callable[[RtpPacket], None], Callable[[], None]]]

    @property
    def mixing(self) -> bool:
        return self._mixing is not None

    @property
    def web_up(self) -> bool:
        """Whether the web leg's media is negotiated (not: a call taken over whose browser is not back)."""
        return self._web_side is not None

    def mix_codec(self, leg: Leg) -> str:
        """The codec the mixer must decode and encode for ``leg`` (its negotiated one)."""
        side = self._web_side if leg is Leg.WEB else self._sip.negotiated
        if self._state is not BridgeState.ACTIVE or side is None:
            raise MediaError(f"call={self._call} the {leg.value} leg's media is not up")
        name = side.codec.name.lower()
        if name not in MIXABLE:
            raise MediaError(f"call={self._call} the {leg.value} leg's codec {name} cannot be mixed")
        return name

    def lend_to_mix(
        self, *, web: MixInput | None, sip: MixInput | None, web_renewed: Callable[[], None] | None = None
    ) -> None:
        """Stop forwarding; each leg's audio to its callback (None: dropped). ``web_renewed``: called
        when a new web leg replaced the one lent (see the module note)."""
        self._expect("lend_to_mix", BridgeState.ACTIVE)
        self._mix_renewed = web_renewed
        self._mixing = {Leg.WEB: web, Leg.SIP: sip}
        self._fill.cancel()
        self._taps[_MIX_TAP] = (lambda packet: None, lambda: None)  # keeps the fast lane unlinked
        if self.fast_lane is not None:
            self.fast_lane.unlink()
        # the mix sends the browser its own codec: not the Opus the gateway may send it instead meanwhile
        # (conceal_steer.py), whose clock the timeline, its digits and the sender's reports would keep
        self._configure_paths()
        now = self._clock()
        self._mix_base = {
            Leg.WEB: self._to_web.now_timestamp(now), Leg.SIP: self._to_sip.now_timestamp(now),
        }  # fmt: skip
        logger.info(
            "call=%s legs lent to a mix (web %s, sip %s)", self._call, web is not None, sip is not None
        )

    def end_mix(self) -> None:
        """Forward between the legs again (idempotent)."""
        if self._mixing is None:
            return
        self._mixing = self._mix_renewed = None
        self._taps.pop(_MIX_TAP, None)
        for path in self._to_sip, self._to_web:  # what the mixer took is no gap in either direction
            path.forget_input()
        if self._state is BridgeState.ACTIVE:
            self._configure_paths()  # the fast lane links again where it may
            self._start_fill()  # the browser away (a call taken over): the SIP party hears the fill again
            logger.info("call=%s legs back from the mix", self._call)

    def _mix_web_renewed(self) -> None:
        """A new web leg while lent (``renew_web``): its own timeline; the owner puts it in the mix."""
        if self._mixing is None:
            return
        self._mix_base[Leg.WEB] = self._to_web.now_timestamp(self._clock())
        if self._mix_renewed is not None:
            self._mix_renewed()

    def send_mixed(self, leg: Leg, payload: bytes, timestamp: int) -> None:
        """A mixed payload of ``leg``'s codec out on ``leg`` (dropped when the bridge is not lent)."""
        if self._mixing is None or self._state is not BridgeState.ACTIVE:
            return
        stamp = (self._mix_base[leg] + timestamp) & 0xFFFFFFFF
        try:
            if leg is Leg.SIP:
                sip = self._sip.negotiated
                if sip is not None:
                    self._sip.send(sip.codec.payload_type, payload, stamp, False)
            elif self._web_side is not None:
                self._web.send(payload, stamp, self._web_side.codec.payload_type, False, self._clock())
        except (MediaError, OSError) as exc:  # a leg closing meanwhile: the mix goes on for the others
            logger.debug("call=%s mixed audio to the %s leg not sent: %s", self._call, leg.value, exc)

    def _to_mix(self, leg: Leg, payload_type: int, payload: bytes) -> bool:
        """A packet from ``leg`` while lent: its audio to the mixer. True: it was taken (never forwarded)."""
        mixing = self._mixing
        target = mixing.get(leg) if mixing is not None else None
        side = self._web_side if leg is Leg.WEB else self._sip.negotiated
        if target is None or side is None:
            return True
        codec = side.incoming.get(payload_type)
        if codec is not None and codec.name.lower() == "red":
            blocks = red.unpack(payload, 0)
            if not blocks:
                return True
            payload_type, payload = blocks[-1].payload_type, blocks[-1].payload
            codec = side.incoming.get(payload_type)
        if codec is not None and codec.name.lower() == side.codec.name.lower():
            target(payload)
        return True
