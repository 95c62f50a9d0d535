"""Can the web leg take a browser's offer? Decided in full before the call is dialled (issue 32).

The web leg answers a browser's offer only once the SIP side answered (``WebRtcLeg.accept_offer``):
an offer that our parser takes but aiortc cannot was found out after the PBX had been called, and the
call died with a traceback. ``check_web_offer`` runs everything the media path does with the offer, up
front: our parse (RFC 8866), the web leg's pruning (web_sdp.py: a WebRTC audio m-line, a codec it
allows), the transport lines aiortc needs (a=setup actpass/active/passive, RFC 5763 §5; a=rtcp-mux,
RFC 8858 §5.1.3; ICE credentials, RFC 8839 §5.4), aiortc's own SDP parser on what it will be given (with
the video m-line too), and aiortc's ``setRemoteDescription`` + ``createAnswer`` in a throwaway
RTCPeerConnection that gathers nothing (no socket is opened). That throwaway costs about a millisecond of
each call's set-up, so the offers aiortc took are remembered by shape (offer_shape.py: the offer with its
per-call values fixed): a later offer of the same shape from the same kind of client skips it, our own
checks still run on every offer. Every refusal is an ``sdp.SdpError`` whose
``field`` names the SDP line at fault ("a=setup", "a=ssrc"...): 400 for the APIs, 488 for SIP.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from typing import Final

from aiortc import RTCCertificate, RTCConfiguration, RTCSessionDescription
from aiortc import sdp as aiortc_sdp

import sdp
from gateway.media.codecs import codec_choice
from gateway.media.webrtc import aiortc_hooks, web_sdp
from gateway.media.webrtc.offer_shape import shape
from gateway.media.webrtc.webrtc_leg import capabilities

__all__ = ["check_web_offer"]

logger = logging.getLogger(__name__)

_TAKEN_SHAPES: Final = 512  # how many shapes aiortc took are remembered (least recently seen go first)
_taken: OrderedDict[tuple[str, tuple[str, ...], bool, bool], None] = OrderedDict()
_SETUP: Final = frozenset({"actpass", "active", "passive"})  # RFC 5763 §5; holdconn: RFC 4145 §4
# aiortc's messages that already say which line is missing -> that line
_AIORTC_FIELDS: Final = (
    ("RTCP mux", "a=rtcp-mux"),
    ("ICE username", "a=ice-ufrag"),
    ("send parameters", "a=rtpmap"),
)


async def check_web_offer(
    text: str,
    web_codecs: Sequence[str],
    *,
    video: bool = True,
    data_channel: bool = True,
    certificate: RTCCertificate | None = None,
) -> sdp.SessionDescription:
    """The browser's offer, parsed, when the web leg can answer it; else ``sdp.SdpError`` naming the
    line (see the module note). ``certificate``: the process's DTLS certificate (None: aiortc makes one)."""
    offer = sdp.parse(text)
    pruned = web_sdp.prune_offer(offer, data_channel=data_channel)
    usable = codec_choice.offered(pruned.audio, web_codecs)
    if not usable:
        raise sdp.SdpUnacceptable(f"the audio m-line offers none of {list(web_codecs)}", field="a=rtpmap")
    _check_transport(offer, pruned.index)
    key = (shape(text), tuple(web_codecs), video, data_channel)
    if key in _taken:  # aiortc took an offer of this shape (the module note)
        _taken.move_to_end(key)
        return offer
    if video:  # the video m-line aiortc gets when the call takes video, as it gets it
        with_video = web_sdp.prune_offer(offer, video=True, data_channel=data_channel)
        if with_video.video_index is not None:
            _aiortc_parse(sdp.write(with_video.description))
            # and answered with it, as the call will (issue 33: FreeSWITCH's video without a direction
            # passed the audio-only answer and failed the call with "None is not in list")
            pruned = with_video
    await _aiortc_answers(pruned, sdp.write(pruned.description), usable, certificate)
    _taken[key] = None
    if len(_taken) > _TAKEN_SHAPES:
        _taken.popitem(last=False)
    return offer


def _check_transport(offer: sdp.SessionDescription, index: int) -> None:
    """The ICE and DTLS lines of the audio m-line (media level, else session level)."""
    section = offer.media[index]
    setup = section.get("setup") or offer.get("setup")
    if setup is None:
        raise sdp.SdpParseError("the audio m-line has no a=setup (RFC 5763 §5)", field="a=setup")
    if setup.strip().lower() not in _SETUP:
        raise sdp.SdpUnacceptable(
            f"a=setup:{setup} is not actpass, active or passive (RFC 5763 §5)", field="a=setup"
        )
    if section.get("rtcp-mux") is None:
        raise sdp.SdpUnacceptable(
            "the audio m-line has no a=rtcp-mux (WebRTC multiplexes RTCP, RFC 8858)", field="a=rtcp-mux"
        )
    ice = section.ice or offer.ice
    if ice is None or not ice.ufrag or not ice.pwd:
        raise sdp.SdpParseError(
            "the audio m-line has no ICE credentials (a=ice-ufrag, a=ice-pwd: RFC 8839 §5.4)",
            field="a=ice-ufrag",
        )


def _aiortc_parse(text: str) -> None:
    """aiortc's own parser on ``text``; its failure names the line at fault (``_culprit``)."""
    error = _parse_error(text)
    if error is not None:
        line = _culprit(text, error)
        quoted = f"{line[:100]!r}" if line is not None else "the description"
        raise sdp.SdpParseError(f"{quoted} is not valid WebRTC SDP ({error})", field=_field(line))


def _parse_error(text: str) -> str | None:
    try:
        aiortc_sdp.SessionDescription.parse(text)
    except Exception as exc:  # aiortc's parser raises whatever its int()/split() raise
        return f"{type(exc).__name__}: {exc}"
    return None


def _culprit(text: str, error: str) -> str | None:
    """The first attribute, bandwidth or connection line without which aiortc parses ``text``, else the
    last without which it fails otherwise (a line others refer to, an rtpmap its fmtp needs: aiortc
    reads the lines in order, so one before the culprit changes the error only by failing earlier)."""
    lines = text.splitlines()
    changed: str | None = None
    for i, line in enumerate(lines):
        if line[:2] not in ("a=", "b=", "c="):
            continue
        other = _parse_error("\r\n".join(lines[:i] + lines[i + 1 :]) + "\r\n")
        if other is None:
            return line
        if other != error:
            changed = line
    return changed


def _field(line: str | None) -> str:
    if line is None:
        return "sdp"
    if line.startswith("a="):
        return line.split(":", 1)[0]
    return line[:2]


async def _aiortc_answers(
    pruned: web_sdp.PrunedOffer,
    given: str,
    usable: Sequence[sdp.Codec],
    certificate: RTCCertificate | None,
) -> None:
    """aiortc takes ``given`` as the web leg would (``WebRtcLeg.accept_offer``) and answers it."""
    aiortc_hooks.register_telephone_event()
    pc = aiortc_hooks.peer_connection(RTCConfiguration(), certificate)
    try:
        transceiver = pc.addTransceiver("audio", direction="sendrecv")
        transceiver.setCodecPreferences(capabilities(usable))
        if pruned.video_index is not None:
            pc.addTransceiver("video", direction="sendrecv")
        await pc.setRemoteDescription(RTCSessionDescription(given, "offer"))
        answer = await pc.createAnswer()
        web_sdp.restore_answer(pruned, sdp.parse(answer.sdp))
    except sdp.SdpError:
        raise
    except Exception as exc:  # aiortc raises what its code happens to raise (issue 32: KeyError...)
        _aiortc_parse(given)  # its parser's (a line it cannot read) named by that line
        message = str(exc) or type(exc).__name__
        field = next((f for text, f in _AIORTC_FIELDS if text in message), f"m={pruned.audio.media}")
        logger.info("browser offer refused by aiortc (%s): %s", field, message)
        raise sdp.SdpUnacceptable(
            f"the WebRTC stack cannot take the offer ({field}): {message}", field=field
        ) from None
    finally:
        try:
            await aiortc_hooks.close_throwaway(pc)
        except Exception as exc:  # a half-applied offer leaves aiortc's transports half-made
            logger.debug("throwaway peer connection closed with %r", exc)
