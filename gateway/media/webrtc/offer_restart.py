"""An ICE restart carried by a browser's full re-offer, and the answer that completes it (issue 34).

WHIP restarts ICE with an sdpfrag (RFC 9725 §4.3.3); every other dialect restarts it with a whole new
offer on the same RTCPeerConnection: a SIP library's re-INVITE, the softphone page's and a JSON-RPC
peer's `offer` for their call, an HTTP client's offer for its session. Such an offer restarts ICE when
its ice-ufrag differs from the one the ICE session has (RFC 8839 §4.4.1.1.1: a restart changes ufrag
and pwd); the rest of it (codecs, directions, the DTLS fingerprint) says what the previous one said.

* ``restart_offered``: the offer's new credentials and candidates (those of the m-line the audio is
  bundled on), or None when it keeps the ICE session (a hold, a resume, a session refresh). A changed
  DTLS fingerprint is a new DTLS association (RFC 8842 §5), which an in-place restart cannot give:
  ``SdpUnacceptable`` (the softphone page then renews its media with `reattach`).
* ``local_fragment``: our side of the new session (the credentials ``ice_restart.InPlaceRestart`` made,
  the unchanged local candidates: the same sockets) as a trickle fragment.

Pure SDP (no aiortc): the SIP-over-WebSocket sessions use ``with_credentials`` and ``credentials_of``
on the SDP they keep for the library.
* ``with_credentials``: an SDP we gave the browser (our last answer) with the new credentials, its
  version one higher (RFC 3264 §8: a changed description gets a new o= version); the candidates stay,
  the local ones are the same.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import sdp
from gateway.media.webrtc.web_sdp import audio_section

_ORIGIN = re.compile(r"^o=(\S+) (\S+) (\d+) (.*)$")


@dataclass(frozen=True, slots=True)
class RestartOffer:
    """The browser's new ICE session as its re-offer gives it: credentials, and the bundle's candidates."""

    ice: sdp.IceParameters
    mid: str | None
    index: int  # of the audio m-line in the offer
    candidates: tuple[sdp.Candidate, ...]
    end_of_candidates: bool

    def inits(self) -> list[sdp.IceCandidateInit]:
        """The candidates as trickled ones of the audio m-line (end-of-candidates last, when said)."""
        found = [sdp.IceCandidateInit(c, self.mid, self.index, self.ice.ufrag) for c in self.candidates]
        if self.end_of_candidates:
            found.append(sdp.IceCandidateInit(None, self.mid, self.index, self.ice.ufrag))
        return found


def restart_offered(
    offer_text: str, ufrag: str | None, fingerprints: Iterable[sdp.Fingerprint]
) -> RestartOffer | None:
    """The restart ``offer_text`` asks for, against the ICE session's remote ``ufrag`` and the DTLS
    association's remote ``fingerprints``; None when it keeps the ICE session (or there is none yet)."""
    offer = sdp.parse(offer_text)
    index, section = audio_section(offer)
    ice = offer.ice_for(index)
    if ice is None or ufrag is None or ice.ufrag == ufrag:
        return None
    dtls = offer.dtls_for(index)
    known = {(f.algorithm.lower(), f.value.upper()) for f in fingerprints}
    offered = {(f.algorithm.lower(), f.value.upper()) for f in dtls.fingerprints} if dtls else set()
    if known and offered and not known & offered:
        raise sdp.SdpUnacceptable(
            "the offer restarts ICE with a new DTLS fingerprint: a new DTLS association is not an ICE "
            "restart in place (renew the media: reattach)"
        )
    candidates = tuple(c for c in section.candidates if c.component == 1)
    end = section.end_of_candidates or offer.has("end-of-candidates")
    return RestartOffer(ice, section.mid, index, candidates, end)


def local_fragment(mid: str, ufrag: str, pwd: str, candidates: Iterable[str]) -> sdp.TrickleFragment:
    """Our new ICE session as an sdpfrag (RFC 8840 §9): the restart's credentials and our local
    ``candidates`` (a=candidate values; unchanged by a restart in place: the same sockets)."""
    found = tuple(sdp.Candidate.parse("candidate:" + c.removeprefix("candidate:")) for c in candidates)
    media = sdp.TrickleMedia(mid, found, end_of_candidates=True, m_line="audio 9 UDP/TLS/RTP/SAVPF 0")
    return sdp.TrickleFragment(sdp.IceParameters(ufrag, pwd), (media,))


def with_credentials(description: str, ice: sdp.IceParameters) -> str:
    """``description`` (an SDP we gave the browser) with ``ice``'s ufrag and pwd wherever it had its own,
    and its o= version one higher; every other line as it was, line endings kept."""
    newline = "\r\n" if "\r\n" in description else "\n"
    lines: list[str] = []
    for line in description.split(newline):
        if line.startswith("a=ice-ufrag:"):
            line = f"a=ice-ufrag:{ice.ufrag}"
        elif line.startswith("a=ice-pwd:"):
            line = f"a=ice-pwd:{ice.pwd}"
        elif (origin := _ORIGIN.match(line)) is not None:
            user, session, version, rest = origin.groups()
            line = f"o={user} {session} {int(version) + 1} {rest}"
        lines.append(line)
    return newline.join(lines)


def credentials_of(description: str) -> sdp.IceParameters:
    """The ICE credentials of ``description``'s audio m-line (``SdpUnacceptable`` when it has none)."""
    parsed = sdp.parse(description)
    ice = parsed.ice_for(audio_section(parsed)[0])
    if ice is None:
        raise sdp.SdpUnacceptable("the description has no ICE credentials")
    return ice
