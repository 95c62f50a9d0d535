"""A call's SIP leg handed over to another gateway instance when its own dies (issue 34 item 3).

The instance that carries the call writes ``MediaBridge.handover()``, a plain JSON dict (``SipHandover``
below), after every offer/answer of the SIP side; when it dies, a survivor builds a fresh bridge the
way the runtime builds one and calls ``resume_sip(data)``::

    data = bridge.handover()                        # instance A, stored (Redis) with the call's records
    offer = await survivor.resume_sip(data)         # instance B: our re-INVITE's offer
    await survivor.answer_to_reoffer(plain_answer)  # the SIP party's answer (its 2xx): media flows
    web_answer = await survivor.renew_web(web_offer)  # the browser came back: a new web leg

``resume_sip`` opens this instance's own SIP-leg RTP socket, takes the codec negotiated before, and
offers it first with the others of the last SDP we gave the SIP side (their payload types: RFC 3264
§8.3.2), from our address and port, with the o= line of that SDP and its version one above the dead
instance's counter (RFC 3264 §8), sendrecv (sendonly when the web user held the call, §8.4). The bridge
is ACTIVE at once with that re-offer out (the session exists: the dialog survived), so the existing
``answer_to_reoffer`` applies the answer and ``renew_web`` can attach the browser before or after it.
Meanwhile the SIP party hears the reconnecting fill, as for a detached web leg (no ``WebMediaLost`` is
reported: the loss was the dead instance's); the endpoint stays inactive until the answer, so the fill
is heard from then on. Other m-lines (video) are kept in place at port 0 (§8.2): a takeover resumes audio.

Key material: none. SDES (RFC 4568) keys are stripped from both descriptions; only our key's tag and
suite are kept, and the re-offer carries a new key (§7.1.4 lets a re-offer change keys). DTLS-SRTP
needs a new handshake with this instance's certificate: it is resumed only when our offers carry WebRTC
media (``BridgeSettings.offer_webrtc``), and is refused with ``HandoverError`` otherwise, as a plain
call is on a bridge that would offer WebRTC media.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import sdp
from gateway.media.bridge_state import BridgeError, BridgeFields, BridgeState
from gateway.media.codecs import codec_choice as choice
from gateway.media.codecs.codec_choice import LegCodecs
from gateway.media.errors import MediaError
from gateway.media.events import MediaEvent
from gateway.media.webrtc.web_sdp import audio_section

if TYPE_CHECKING:
    from gateway.media.codecs.comfort_fill import ComfortFill

logger = logging.getLogger("gateway.media.bridge")

FORMAT: Final = 1  # the dict's "format": bumped when a key changes meaning
SECURITY: Final = ("none", "sdes", "dtls")  # what protected the SIP leg's RTP
KEYS: Final = frozenset(
    {"format", "sip_local", "sip_remote", "sip_version", "sip_codec", "sip_event", "packet_ms",
     "local_hold", "sip_srtp", "sdes", "web_codec"}
)  # fmt: skip


class HandoverError(MediaError):
    """A handover dict that cannot be resumed: malformed, or a call this bridge cannot take over."""


@dataclass(frozen=True, slots=True)
class SipHandover:
    """What another instance needs to take the SIP leg over (``as_dict`` / ``from_dict``: plain JSON).

    ``local``: the last SDP we gave the SIP side, ``remote``: the SIP party's (its answer, or its offer
    when we answered), both without a=crypto keys; ``version``: our highest o= version with the SIP side;
    ``codec``/``event``: what it negotiated (we send ``codec``), ``packet_ms`` its packet time;
    ``local_hold``: the web user held the call; ``srtp``: "none", "sdes" (``sdes``: our key's tag and
    suite) or "dtls"; ``web_codec``: the browser's codec, "name/rate" (informational: ``renew_web``
    chooses from the browser's new offer, the SIP codec first)."""

    local: sdp.SessionDescription
    remote: sdp.SessionDescription
    version: int
    codec: sdp.Codec
    event: sdp.Codec | None
    packet_ms: int
    local_hold: bool
    srtp: str
    sdes: tuple[int, str] | None
    web_codec: str | None

    def __post_init__(self) -> None:
        if not 0 <= self.version < 2**64:
            raise HandoverError(f"sip_version must be an o= version (0 to 2**64-1): {self.version!r}")
        if not 0 < self.packet_ms <= 1000:
            raise HandoverError(f"packet_ms must be 1-1000: {self.packet_ms!r}")
        if self.srtp not in SECURITY:
            raise HandoverError(f"sip_srtp must be one of {list(SECURITY)}: {self.srtp!r}")
        if (self.sdes is not None) != (self.srtp == "sdes"):
            raise HandoverError(f"sdes must be given exactly when sip_srtp is 'sdes': {self.sdes!r}")
        if self.sdes is not None:
            try:
                sdp.Crypto.new(*self.sdes)
            except ValueError as exc:
                raise HandoverError(f"sdes: {exc}") from None
        for name, description in (("sip_local", self.local), ("sip_remote", self.remote)):
            try:
                audio_section(description)
            except sdp.SdpError:
                raise HandoverError(f"{name} has no active audio m-line") from None

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "sip_local": sdp.write(self.local),
            "sip_remote": sdp.write(self.remote),
            "sip_version": self.version,
            "sip_codec": _codec_dict(self.codec),
            "sip_event": _codec_dict(self.event) if self.event is not None else None,
            "packet_ms": self.packet_ms,
            "local_hold": self.local_hold,
            "sip_srtp": self.srtp,
            "sdes": {"tag": self.sdes[0], "suite": self.sdes[1]} if self.sdes is not None else None,
            "web_codec": self.web_codec,
        }

    @classmethod
    def from_dict(cls, data: object) -> SipHandover:
        """``HandoverError`` naming the key when ``data`` is not a handover dict of this format."""
        if not isinstance(data, Mapping):
            raise HandoverError(f"a handover must be a JSON object, not {type(data).__name__}")
        unknown, missing = set(data) - KEYS, KEYS - set(data)
        if unknown or missing:
            raise HandoverError(
                f"handover keys: unknown {sorted(map(str, unknown))}, missing {sorted(missing)}"
            )
        if data["format"] != FORMAT:
            raise HandoverError(f"handover format {data['format']!r}, this gateway reads {FORMAT}")
        sdes = _typed(data, "sdes", dict, none=True)
        return cls(
            local=_description(data, "sip_local"),
            remote=_description(data, "sip_remote"),
            version=_typed(data, "sip_version", int),
            codec=_codec(data, "sip_codec"),
            event=_codec(data, "sip_event") if data["sip_event"] is not None else None,
            packet_ms=_typed(data, "packet_ms", int),
            local_hold=_typed(data, "local_hold", bool),
            srtp=_typed(data, "sip_srtp", str),
            sdes=(_typed(sdes, "tag", int), _typed(sdes, "suite", str)) if sdes is not None else None,
            web_codec=_typed(data, "web_codec", str, none=True),
        )


class HandoverOffers(BridgeFields):
    """``handover`` and ``resume_sip`` (see the module note); a base of ``MediaBridge``."""

    if TYPE_CHECKING:
        _fill: ComfortFill
        _web_gone: bool
        _on_event: Callable[[MediaEvent], None]

        def _start_fill(self) -> None: ...

    @property
    def web_present(self) -> bool:
        """Whether the browser's audio reaches this bridge (false from ``resume_sip`` until the browser's
        new web leg delivers its first packet)."""
        return not self._web_gone

    def orphan(self) -> None:
        """Its call goes on at another instance (a drain's hand-off) while this bridge still carries the
        media for a moment (make before break): its events reach no call any more."""
        self._on_event = _ignored

    def handover(self) -> dict[str, Any]:
        """What another instance needs to take this call's SIP leg over (plain JSON, no key material);
        ``BridgeError`` before the SIP side answered (or on a closed bridge)."""
        self._expect("handover", BridgeState.ACTIVE)
        local, remote, sip, endpoint = (
            self._sip_local,
            self._sip.remote,
            self._sip.negotiated,
            self._sip.endpoint,
        )
        if local is None or remote is None or sip is None or endpoint is None:
            raise BridgeError(f"call={self._call} handover() before the SIP side's description is known")
        crypto = self._sip.local_crypto
        srtp = "dtls" if self._sip.dtls is not None else "sdes" if endpoint.srtp is not None else "none"
        web = self._web_side
        return SipHandover(
            local=_keyless(local),
            remote=_keyless(remote),
            version=self._sip_version,
            codec=sip.codec,
            event=sip.event,
            packet_ms=sip.packet_ms,
            local_hold=self._local_hold,
            srtp=srtp,
            sdes=(crypto.tag, crypto.suite) if srtp == "sdes" and crypto is not None else None,
            web_codec=f"{web.codec.name}/{web.codec.clock_rate}" if web is not None else None,
        ).as_dict()

    async def resume_sip(self, data: Mapping[str, Any]) -> str:
        """Take over the SIP leg ``handover()`` described on another instance (this bridge fresh, IDLE):
        our re-INVITE's offer; the bridge is ACTIVE with it out (``answer_to_reoffer`` takes the answer),
        the SIP party hears the reconnecting fill, ``renew_web`` attaches the browser when it is back.
        ``HandoverError`` when ``data`` is malformed or names a call this bridge cannot take over."""
        self._expect("resume_sip", BridgeState.IDLE)
        taken = SipHandover.from_dict(data)
        last = taken.local
        index, section = audio_section(last)
        if not any(choice.matches(taken.codec, name) for name in self.settings.sip_codecs):
            raise HandoverError(
                f"the call's codec {taken.codec.name} is not in {list(self.settings.sip_codecs)}"
            )
        if (taken.srtp == "dtls") != self.settings.offer_webrtc:
            raise HandoverError(
                f"the call's SIP leg used {taken.srtp}; this bridge's offers are "
                f"{'WebRTC media' if self.settings.offer_webrtc else 'plain RTP or SDES'} (offer_webrtc)"
            )
        same = taken.codec.name.lower(), taken.codec.clock_rate
        others = [
            c
            for c in choice.offered(section, self.settings.sip_codecs)
            if (c.name.lower(), c.clock_rate) != same
        ]
        codecs = [taken.codec, *others]
        connection = last.connection_for(index)
        address, port = await self._sip.open(codecs, connection.address_type if connection else None)
        crypto = sdp.Crypto.new(*taken.sdes) if taken.sdes is not None else None
        hold = taken.local_hold
        direction = sdp.Direction.SENDONLY if hold else sdp.Direction.SENDRECV
        events = [taken.event] if taken.event is not None else []
        self._sip.resume(
            LegCodecs.of([taken.codec], events, direction, taken.packet_ms), taken.remote, crypto
        )
        if taken.srtp == "dtls":
            ours = self._sip_offer_for(codecs, direction)  # WebRTC media: a new fingerprint, actpass
        else:
            ours = choice.plain_offer(
                codecs, address=address, port=port, telephone_event=self.settings.telephone_event,
                direction=direction, crypto=crypto, secure=section.proto.upper() == "RTP/SAVP",
            )  # fmt: skip
        media = [ours.media[0] if i == index else _refused(m) for i, m in enumerate(last.media)]
        self._sip_local, self._sip_version = last, taken.version
        self._set_state(BridgeState.AWAITING_SIP_ANSWER)  # our offer out ...
        self._set_state(BridgeState.ACTIVE)  # ... in a session that exists: a re-offer
        offer = self._stamp_sip(ours.with_media(media), keep=False)  # o= of the last, version + 1
        self._reoffer = (offer, hold)
        self._local_hold = hold
        self._web_gone = True  # the browser is away until renew_web: the fill meanwhile (not on hold)
        if not hold:
            self._start_fill()
        logger.info("call=%s taken over: %s from %s:%d, o= version %d", self._call, taken.codec.name,
                    address, port, offer.origin.session_version)  # fmt: skip
        return sdp.write(offer)


def _ignored(event: MediaEvent) -> None:
    logger.debug("a handed-over call's bridge: %r", event)


def _keyless(description: sdp.SessionDescription) -> sdp.SessionDescription:
    """``description`` without a=crypto lines (their keys are secrets: RFC 4568 §8.3)."""
    return description.with_media(m.without("crypto") for m in description.media).without("crypto")


def _refused(section: sdp.MediaDescription) -> sdp.MediaDescription:
    """An m-line kept in its place at port 0 (RFC 3264 §8.2)."""
    return sdp.MediaDescription(section.media, 0, section.proto, section.formats)


def _codec_dict(codec: sdp.Codec) -> dict[str, Any]:
    return {
        "payload_type": codec.payload_type,
        "name": codec.name,
        "clock_rate": codec.clock_rate,
        "channels": codec.channels,
        "fmtp": codec.fmtp,
    }


def _codec(data: Mapping[str, Any], key: str) -> sdp.Codec:
    value = _typed(data, key, dict)
    try:
        return sdp.Codec(
            _typed(value, "payload_type", int),
            _typed(value, "name", str),
            _typed(value, "clock_rate", int),
            _typed(value, "channels", int),
            _typed(value, "fmtp", str, none=True),
        )
    except (HandoverError, sdp.SdpError) as exc:
        raise HandoverError(f"{key}: {exc}") from None


def _description(data: Mapping[str, Any], key: str) -> sdp.SessionDescription:
    try:
        return sdp.parse(_typed(data, key, str))
    except sdp.SdpError as exc:
        raise HandoverError(f"{key} is not an SDP: {exc}") from None


def _typed(data: Mapping[str, Any], key: str, kind: type[Any], *, none: bool = False) -> Any:
    """``data[key]`` when it is a ``kind`` (an int is no bool), else ``HandoverError`` quoting it."""
    if key not in data:
        raise HandoverError(f"handover key {key!r} missing")
    value = data[key]
    if value is None and none:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise HandoverError(f"handover key {key!r} must be {kind.__name__}: {value!r}")
    return value
