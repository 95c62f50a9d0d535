"""The real-time text of one call: RFC 4103 T.140 RTP on the SIP side <-> an RFC 8865 T.140 data channel
on the web leg.

The ``MediaBridge`` owns one when ``BridgeSettings.realtime_text`` is on:

* **SDP**: a SIP offer's first usable ``m=text`` (``sdp.text``) opens the SIP side's text endpoint (a
  port of its own, plain RTP at 1000 Hz, no inactivity rule: text comes in bursts) and is answered with
  its payload types and redundancy (``answer_sip_offer``); the browser is offered a T.140 data channel
  (label and subprotocol ``t140``, RFC 8865 §4: opened by the gateway with DCEP, RFC 8832). Our own SIP
  offer (``offer_section``, the browser calling with a data channel) carries RED with two generations
  and T.140, made when the browser asks (``wanted``: its offer's ``a=dcmap`` names subprotocol t140,
  RFC 8865 §5.1; it then opens the channel itself) or on every data channel call with
  ``media.realtime_text: offer``; once the SIP side's answer takes it (``apply_sip_answer``) the gateway
  opens the channel on the browser's SCTP association unless the browser opens its own. A SIP side that
  turns the text down gets the browser's channel closed.
* **Media**: packets from the SIP side go through ``T140Receiver`` (redundancy recovered, duplicates
  left out, U+FFFD for text lost beyond it) to the channel as text messages; the channel's messages go
  into ``T140Sender`` and out every 300 ms while there is text or redundancy to send, never while idle.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Final

from aiortc import RTCDataChannel

import sdp
from gateway.media.bridge_settings import BridgeSettings
from gateway.media.codecs import codec_choice as choice
from gateway.media.rtp.endpoint_state import RtpEndpointConfig
from gateway.media.rtp.latch import RELATCH_PACKETS
from gateway.media.rtp.packet import RtpPacket
from gateway.media.rtp.rtp_endpoint import RtpEndpoint
from gateway.media.text.t140 import T140Receiver, T140Sender, TextStats
from sdp import text

__all__ = ["T140_PROTOCOL", "TextBridge"]

logger = logging.getLogger(__name__)

T140_PROTOCOL: Final = "t140"  # RFC 8865 §4.1: the data channel's subprotocol (and our label)
MAX_WAITING: Final = 4096  # characters from the SIP side kept for a channel still opening


class TextBridge:
    def __init__(self, settings: BridgeSettings) -> None:
        self._settings = settings
        self._call = settings.call_id
        self._clock = settings.clock
        self.endpoint: RtpEndpoint | None = None
        self.index: int | None = None  # of the text m-line in the SIP offer (theirs or ours)
        self._offer: sdp.MediaDescription | None = None  # the SIP side's m=text, when it offered
        self._address = ""
        self.format: text.TextFormat | None = None  # negotiated with the SIP side
        self._receiver: T140Receiver | None = None
        self._sender: T140Sender | None = None
        self._channel: RTCDataChannel | None = None
        self._waiting = ""  # SIP side's text before the channel is open
        self._timer: asyncio.TimerHandle | None = None
        self.to_web = self.to_sip = 0  # characters passed each way
        self.browser_opens = False  # the browser asked for text in its offer: it opens the channel itself
        self.ended = False  # closed (or never wanted, or turned down): a T.140 channel is closed at once

    @property
    def active(self) -> bool:
        """Text negotiated with the SIP side."""
        return self.format is not None and self.endpoint is not None

    # ------------------------------------------------------------------------------------------ SDP

    async def _open(self, fmt: text.TextFormat, family: str | None) -> None:
        rtp = self._settings.rtp_address(family)
        payload_types = frozenset(c.payload_type for c in fmt.codecs)
        endpoint = RtpEndpoint(
            self._settings.allocator,
            RtpEndpointConfig(
                payload_types=payload_types, host=rtp.bind_host, clock_rate=text.CLOCK_RATE,
                inactivity_timeout=None, hold_timeout=None, relatch_after=RELATCH_PACKETS,
            ),
            on_rtp=self._from_sip, call_id=self._call,
        )  # fmt: skip
        await endpoint.open()
        endpoint.set_direction(sdp.Direction.INACTIVE)  # until both sides are known
        self.endpoint = endpoint
        self._address = rtp.public or endpoint.local_rtp_address[0]

    async def open_for_sip_offer(self, offer: sdp.SessionDescription, family: str | None) -> bool:
        """The SIP offer's first usable ``m=text``: its endpoint opened, sending to the phone; False
        without one (its m-line, if any, is answered with port 0)."""
        index = text.text_index(offer)
        if index is None:
            return False
        fmt = text.text_format(offer.media[index])
        assert fmt is not None
        await self._open(fmt, family)
        assert self.endpoint is not None
        self.endpoint.set_remote(*choice.remote_rtp(offer, index))
        self._offer, self.index, self.format = offer.media[index], index, fmt
        return True

    def answer_sip_offer(self, direction: sdp.Direction) -> sdp.MediaDescription | None:
        """Our answer to the phone's ``m=text`` (its payload types and redundancy); None without one."""
        offer, endpoint, fmt = self._offer, self.endpoint, self.format
        if offer is None or endpoint is None or fmt is None:
            return None
        answer = text.answer_section(offer, self._address, endpoint.local_rtp_address[1], direction)
        endpoint.set_direction(direction)
        self._start(fmt)
        return answer

    def wanted(self, web_offer: sdp.SessionDescription) -> bool:
        """Whether our SIP offer for the browser's ``web_offer`` carries ``m=text``: the browser asked
        (``a=dcmap`` subprotocol t140 on its data channel line: it opens the channel itself, DCEP), or
        ``media.realtime_text: offer`` and the browser's offer has a live data channel line."""
        self.browser_opens = text.asks_for_t140(web_offer)
        channel = any(m.media == "application" and not m.rejected for m in web_offer.media)
        return self.browser_opens or (self._settings.realtime_text == "offer" and channel)

    def renew_web(self, web_offer: sdp.SessionDescription) -> bool:
        """A new web leg (the browser took the call back with a new offer, ``MediaBridge.renew_web``):
        the old leg's channel is gone, the SIP side's text waits for the new one (``MAX_WAITING``).
        True when the gateway opens the new T.140 channel: the offer has a data channel line but does
        not ask for text (when it asks, ``a=dcmap`` RFC 8865 §5.1, the browser opens its own)."""
        self._channel = None
        self.browser_opens = text.asks_for_t140(web_offer)
        channel = any(m.media == "application" and not m.rejected for m in web_offer.media)
        if not channel:
            logger.info("call=%s the new web leg has no data channel: no real-time text", self._call)
        return channel and not self.browser_opens

    async def offer_section(self, family: str | None) -> sdp.MediaDescription:
        """Our ``m=text`` for the SIP offer (the browser calls): RED, two generations, and T.140."""
        section = text.offer_section("0.0.0.0", 9)
        fmt = text.text_format(section)
        assert fmt is not None
        await self._open(fmt, family)
        assert self.endpoint is not None
        return text.offer_section(self._address, self.endpoint.local_rtp_address[1])

    def apply_sip_answer(self, answer: sdp.SessionDescription) -> bool:
        """The SIP side's answer to our ``m=text`` (at ``index``): False when it turned the text down
        (the endpoint closed, the call goes on without it)."""
        index, endpoint = self.index, self.endpoint
        section = answer.media[index] if index is not None and index < len(answer.media) else None
        fmt = text.text_format(section) if section is not None else None
        if endpoint is None or index is None or fmt is None:
            logger.info("call=%s the SIP side took no real-time text", self._call)
            self.close()
            return False
        endpoint.set_remote(*choice.remote_rtp(answer, index))
        endpoint.set_direction(answer.effective_direction(index).reversed())
        self.format = fmt
        self._start(fmt)
        return True

    def answer_reoffer(
        self, offer: sdp.SessionDescription, policy: sdp.Direction
    ) -> sdp.MediaDescription | None:
        """The SIP side's re-INVITE (hold, resume, a session refresh, a new address) still offering the
        text line: our answer to it (its payload types; the direction limited by ``policy``), the text
        going on where it now says; None when the text is not active or the re-offer dropped it (then
        closed, RFC 3264 §8.2)."""
        index, endpoint = self.index, self.endpoint
        if not self.active or index is None or endpoint is None:
            return None
        section = offer.media[index] if index < len(offer.media) else None
        fmt = text.text_format(section) if section is not None else None
        if section is None or fmt is None:
            logger.info("call=%s the SIP side's re-offer drops the real-time text", self._call)
            self.close()
            return None
        direction = offer.effective_direction(index).reversed().limited_to(policy)
        endpoint.set_remote(*choice.remote_rtp(offer, index))
        endpoint.set_direction(direction)
        if fmt != self.format:  # new payload types or redundancy: the text goes on with them
            self.format = fmt
            self._start(fmt)
        self._offer = section
        return text.answer_section(section, self._address, endpoint.local_rtp_address[1], direction)

    def _start(self, fmt: text.TextFormat) -> None:
        assert self.endpoint is not None
        self.endpoint.reconfigure(frozenset(c.payload_type for c in fmt.codecs), frozenset(), text.CLOCK_RATE)
        self._receiver = T140Receiver(fmt, self._call)
        self._sender = T140Sender(fmt, timestamp_base=secrets.randbits(32))
        logger.info(
            "call=%s real-time text: T.140 %d%s", self._call, fmt.t140,
            f", RED {fmt.red} with {fmt.generations} generations" if fmt.red is not None else "",
        )  # fmt: skip

    # ------------------------------------------------------------------------------ the data channel

    def adopt(self, channel: RTCDataChannel) -> None:
        """The web leg's T.140 data channel (ours, or one the browser opened with subprotocol t140);
        closed at once when the SIP side took no text."""
        if self.ended:
            logger.info(
                "call=%s T.140 data channel %r closed: no text on the SIP side", self._call, channel.label
            )
            channel.close()
            return
        self._channel = channel
        logger.info("call=%s T.140 data channel %r (id %s)", self._call, channel.label, channel.id)

        def opened() -> None:
            waiting, self._waiting = self._waiting, ""
            if waiting and channel is self._channel:
                channel.send(waiting)

        def message(data: str | bytes) -> None:
            self._from_web(data)

        channel.on("open", opened)
        channel.on("message", message)
        if channel.readyState == "open":  # the browser's, opened by DCEP before aiortc reported it
            opened()

    # ---------------------------------------------------------------------------------------- media

    def _from_sip(self, packet: RtpPacket) -> None:
        receiver = self._receiver
        if receiver is None:
            return
        found = receiver.feed(packet)
        if not found:
            return
        self.to_web += len(found)
        channel = self._channel
        if channel is not None and channel.readyState == "open":
            channel.send(found)
        elif len(self._waiting) < MAX_WAITING:
            self._waiting += found

    def _from_web(self, data: str | bytes) -> None:
        sender = self._sender
        if sender is None:
            return
        found = data if isinstance(data, str) else data.decode("utf-8", "replace")  # RFC 8865 §4.3: UTF-8
        sender.write(found, self._clock())
        self.to_sip += len(found)
        self._schedule()

    def _schedule(self) -> None:
        sender = self._sender
        due = sender.due() if sender is not None else None
        if due is None or self._timer is not None:
            return
        delay = max(0.0, due - self._clock())
        self._timer = asyncio.get_running_loop().call_later(delay, self._send_due)

    def _send_due(self) -> None:
        self._timer = None
        sender, endpoint = self._sender, self.endpoint
        if sender is None or endpoint is None:
            return
        packet = sender.take(self._clock())
        if packet is not None:
            payload_type, payload, timestamp, marker = packet
            endpoint.send_rtp(payload_type, payload, timestamp, marker=marker)
        self._schedule()

    # ------------------------------------------------------------------------------------- teardown

    def stats(self) -> TextStats:
        return self._receiver.stats if self._receiver is not None else TextStats()

    def close(self) -> None:
        """Close the SIP side's text endpoint and the T.140 data channel; stop sending. Idempotent."""
        self.ended = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._sender = self._receiver = None
        self.format = None
        if self.endpoint is not None:
            self.endpoint.close()
            self.endpoint = None
        channel, self._channel = self._channel, None
        if channel is not None and channel.readyState != "closed":
            channel.close()
