"""The browser's data channels on a gateway call: chat text in and out (RFC 8831 channels over SCTP, over
the web leg's DTLS, bundled with the audio: RFC 8841, RFC 8843).

How it works: on calls the browser places, the browser opens the channels (its offer carries the
``m=application`` line the web leg keeps, ``web_sdp.prune_offer``); aiortc reports each as ``datachannel``
and :class:`ChatChannels` adopts it. On calls the browser receives, the gateway's offer opens one, ``chat``
(``WebRtcLeg.create_offer``), adopted the same way; the browser sees it as its ``datachannel`` event. A text message on any of them goes to ``on_text`` (the call turns it into SIP MESSAGE, RFC 3428);
:meth:`ChatChannels.send` writes the SIP party's text on every open one. Binary messages and text
beyond ``MAX_TEXT_BYTES`` (a MESSAGE body's limit) are dropped and counted, never passed on. aiortc runs
SCTP itself: its DTLS records take aiortc's own path past the direct RTP hooks (``aiortc_receive``: only
first bytes 128-191, RTP and RTCP, are taken early; RFC 7983) and past the fast lane, which leaves
anything but the RTP of an armed lane to Python.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

from aiortc import RTCDataChannel

logger = logging.getLogger(__name__)

MAX_TEXT_BYTES: Final = 8192  # as a SIP MESSAGE body in the call's dialog (gateway/sip/useragent/ua_calls.py)
MAX_WAITING: Final = 32  # texts kept for a channel still connecting
T140: Final = "t140"  # the subprotocol of a T.140 data channel (RFC 8865 §4.1)


class ChatChannels:
    """The data channels the browser opened on one web leg, for text."""

    def __init__(self, on_text: Callable[[str], None], call_id: str = "-") -> None:
        self._on_text = on_text
        self._call = call_id
        self._channels: list[RTCDataChannel] = []
        self._waiting: list[str] = []  # text for channels still connecting (SCTP not up yet)
        self.dropped = 0  # binary or oversized messages from the browser
        # where channels of subprotocol ``t140`` go instead (RFC 8865 real-time text: gateway/media/text)
        self.t140: Callable[[RTCDataChannel], None] | None = None

    def adopt(self, channel: RTCDataChannel, by: str = "the browser") -> None:
        """A channel the browser opened (aiortc's ``datachannel`` event), or the one of our offer."""
        if channel.protocol == T140 and self.t140 is not None:
            self.t140(channel)
            return
        logger.info("call=%s data channel %r opened by %s", self._call, channel.label, by)
        self._channels.append(channel)

        def message(data: str | bytes) -> None:
            self._received(channel, data)

        def closed() -> None:
            if channel in self._channels:
                self._channels.remove(channel)
            logger.info("call=%s data channel %r closed", self._call, channel.label)

        def opened() -> None:
            waiting, self._waiting = self._waiting, []
            for text in waiting:
                channel.send(text)

        channel.on("message", message)
        channel.on("close", closed)
        channel.on("open", opened)

    def _received(self, channel: RTCDataChannel, data: str | bytes) -> None:
        if (
            not isinstance(data, str)
            or not data
            or len(data.encode("utf-8", "surrogatepass")) > MAX_TEXT_BYTES
        ):
            self.dropped += 1
            logger.info(
                "call=%s data channel %r: %s message dropped", self._call, channel.label,
                "binary" if isinstance(data, bytes) else "empty or oversized",
            )  # fmt: skip
            return
        self._on_text(data)

    @property
    def open(self) -> bool:
        return any(channel.readyState == "open" for channel in self._channels)

    def send(self, text: str) -> bool:
        """Write ``text`` on every open channel, or keep it for the first one that opens while one is
        still connecting (the gateway's own, offered on a call to a web user: a MESSAGE can come as soon
        as the call is up, before SCTP is); False when there is none."""
        sent = False
        for channel in list(self._channels):
            if channel.readyState == "open":
                channel.send(text)
                sent = True
        connecting = any(c.readyState == "connecting" for c in self._channels)
        if not sent and connecting and len(self._waiting) < MAX_WAITING:
            self._waiting.append(text)
            return True
        return sent

    def close(self) -> None:
        """Forget the channels (the peer connection's close ends them). Idempotent."""
        self._channels.clear()
        self._waiting.clear()
