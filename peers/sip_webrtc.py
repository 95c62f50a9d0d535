"""A WebRTC endpoint on the SIP side: aiortc's media (`peers.webpeer.WebPeer`) behind a small SIP UA
over UDP on 127.0.0.1, built with the project's own sipcore messages.

It stands for what a WebRTC-capable PBX or SIP client sends (UDP/TLS/RTP/SAVPF, rtcp-mux, BUNDLE, opus
and PCMU, a full ICE agent, ``a=setup:actpass`` in its offers):

    async with SipWebRtcPeer(freq=440) as peer:
        await peer.call(f"sip:1001@{host}:{port}")        # INVITE with aiortc's offer, ACK, accept
        ...peer.media.heard(1000, last=1.0)...
        await peer.hangup()

    async with SipWebRtcPeer(freq=440, trickle=True) as peer:   # called: 180, 200 with aiortc's answer
        ...the gateway's INVITE arrives; peer.wait_for_call() returns its request...
        ...peer.ring() rings only (its early dialog, for a pickup); a CANCEL is answered 487 (cancelled)...

With ``trickle=True`` (RFC 8840) its SDP carries no candidates: they go in an INFO with
``Info-Package: trickle-ice`` and an ``application/trickle-ice-sdpfrag`` body once the dialog exists, and
INFO trickle from the far end is added to aiortc's ICE agent (``infos_received`` keeps those bodies).
Transactions are kept as simple as loopback allows: a request is retransmitted every 500 ms until its
final response, a 2xx until its ACK.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Coroutine
from types import TracebackType
from typing import Any

from aiortc import RTCIceCandidate
from aiortc.sdp import candidate_from_sdp

import sdp
from gateway.media.webrtc import aiortc_hooks
from gateway.media.webrtc.ice_restart import InPlaceRestart
from peers.webpeer import WebPeer
from sipcore.dialogs.requests import Endpoint, build_invite, build_request
from sipcore.syntax.headers import NameAddr, new_call_id, new_tag
from sipcore.syntax.message import Request, Response, make_response
from sipcore.syntax.parser import parse_message
from sipcore.syntax.uri import SipURI, parse_uri

__all__ = ["SipWebRtcPeer", "split_candidates"]

logger = logging.getLogger(__name__)

TRICKLE_HEADERS = (("Recv-Info", "trickle-ice"), ("Supported", "trickle-ice"))
_CANDIDATE = re.compile(r"^a=(candidate:.*|end-of-candidates)\r?$", re.MULTILINE)


def _fingerprints(description: str) -> list[str]:
    return re.findall(r"(?m)^a=fingerprint:(.+?)\r?$", description)


def split_candidates(description: str) -> tuple[str, str, list[str]]:
    """``description`` without its a=candidate / a=end-of-candidates lines, its first mid, and the
    candidates (``candidate:...``) that were in it."""
    candidates = [m.group(1) for m in _CANDIDATE.finditer(description) if m.group(1).startswith("candidate:")]
    stripped = "\r\n".join(line for line in description.splitlines() if not _CANDIDATE.match(line))
    mid = next((line[6:].strip() for line in description.splitlines() if line.startswith("a=mid:")), "0")
    return stripped + "\r\n", mid, candidates


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner: SipWebRtcPeer) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.owner.received(data, addr)


class SipWebRtcPeer:
    """One call at a time; ``media`` is the aiortc peer (tone out, recording in)."""

    def __init__(
        self,
        *,
        freq: float = 440.0,
        trickle: bool = False,
        user: str = "webrtc",
        recv_info: bool = True,
        addresses: tuple[str, ...] | None = ("127.0.0.1",),
    ) -> None:
        """``recv_info`` False: a trickling peer whose 200 does not name the package in Recv-Info;
        ``addresses``: where its media gathers host candidates (WebPeer's; None with a browser at the far
        end: Chromium leaves loopback out of its own candidates, so a peer on 127.0.0.1 alone depends on
        the browser's checks reaching it before its own to the browser's address fail)."""
        self.freq = freq
        self.trickle = trickle
        self.recv_info = recv_info
        self.user = user
        self.media = WebPeer(freq=freq, addresses=addresses)
        self._addresses = addresses
        self.renewals = 0  # re-offers from a new RTCPeerConnection, answered by a new connection
        self.reanswer_delay = 0.0  # s before a re-INVITE is answered (a slow far end: tests set it)
        self.endpoint: Endpoint | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self.infos_received: list[str] = []
        self.infos_sent = 0
        self.responses: list[Response] = []
        self.requests: list[Request] = []
        self.ended = asyncio.Event()
        self.cancelled = asyncio.Event()  # the call that rang here was CANCELled (487 sent)
        self.invite: Request | None = None  # an incoming INVITE (we are called)
        self.invite_body: str | None = None  # the offer our own INVITE carried (we call)
        self._incoming: asyncio.Queue[Request] = asyncio.Queue()
        self._waiting: dict[tuple[str, int, str], asyncio.Queue[Response]] = {}
        self._dialog: dict[str, object] = {}
        self._cseq = 1
        self._far: tuple[str, int] | None = None
        self._acked = asyncio.Event()
        self._acks: set[int] = set()  # the CSeq numbers of the ACKs received (re-INVITEs' too)
        self._tasks: set[asyncio.Task[None]] = set()
        self.reinvites: list[Request] = []  # re-INVITEs received, in order (retransmissions not repeated)
        self._reanswers: dict[int, Response | None] = {}  # CSeq -> the 200 sent (None: being answered)
        self._restart: InPlaceRestart | None = None  # ICE restarts in place of its aioice connection
        self._remote_ufrag: str | None = None  # the far end's ICE ufrag now
        self._local_ice: tuple[str, str] | None = None  # our ICE ufrag and pwd since the last restart
        self._offers = 0  # re-offers of ours (reinvite)
        self._early: tuple[str, str, list[str]] | None = None  # the 183's answer (answer_early)
        self.early_infos: list[str] = []  # trickle INFO bodies received before our 200
        self.early_info: Response | None = None  # the response to our INFO in the early dialog (call)
        self.offers_sent: list[str] = []  # their SDP, in order

    # --- set-up ------------------------------------------------------------------------------------
    async def __aenter__(self) -> SipWebRtcPeer:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=("127.0.0.1", 0)
        )
        self.transport = transport
        port = transport.get_extra_info("sockname")[1]
        supported = ("trickle-ice",) if self.trickle else ()
        self.endpoint = Endpoint("127.0.0.1", port, user_agent="aiortc-sip-peer", supported=supported,
                                 contact_user=self.user)  # fmt: skip
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.media.close()
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    @property
    def address(self) -> str:
        assert self.endpoint is not None
        return f"{self.endpoint.host}:{self.endpoint.port}"

    @property
    def uri(self) -> str:
        return f"sip:{self.user}@{self.address}"

    # --- the wire ----------------------------------------------------------------------------------
    def _send(self, message: Request | Response, addr: tuple[str, int]) -> None:
        if self.transport is not None:
            self.transport.sendto(message.serialize(), addr)

    def received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            message = parse_message(data, supported=None)
        except Exception as exc:  # a test peer: log and drop what it cannot read
            logger.warning("sip peer: unreadable message from %s: %s", addr, exc)
            return
        if isinstance(message, Response):
            self.responses.append(message)
            cseq = message.cseq
            if cseq is not None:
                queue = self._waiting.get((message.call_id or "", cseq.seq, cseq.method))
                if queue is not None:
                    queue.put_nowait(message)
            return
        self.requests.append(message)
        self._far = self._far or addr
        self._on_request(message, addr)

    def _on_request(self, request: Request, addr: tuple[str, int]) -> None:
        method = request.method
        tag = self._dialog.get("local_tag")
        local_tag = tag if isinstance(tag, str) else None
        to = request.to
        if method == "INVITE" and to is not None and to.param("tag"):  # in the dialog: a re-INVITE
            self._on_reinvite(request, addr)
        elif method == "INVITE" and self.invite is None:
            self.invite = request
            self._dialog.update(local_tag=new_tag(), remote=addr)
            self._send(make_response(request, 100), addr)
            self._incoming.put_nowait(request)
        elif method == "INVITE":
            return  # a retransmission: the answer is on its way
        elif method == "ACK":
            self._acked.set()
            if request.cseq is not None:
                self._acks.add(request.cseq.seq)
        elif method == "INFO":
            self._send(make_response(request, 200, to_tag=local_tag), addr)
            if (request.headers.get("Content-Type") or "").startswith(sdp.TRICKLE_MEDIA_TYPE):
                body = request.body.decode()
                self.infos_received.append(body)
                if not self._acked.is_set() and self.invite is not None:
                    self.early_infos.append(body)
                self._spawn(self._add_trickled(body))
        elif method == "BYE":
            self._send(make_response(request, 200, to_tag=local_tag), addr)
            self.ended.set()
        elif method == "CANCEL" and self.invite is not None and not self._acked.is_set():
            self._send(make_response(request, 200, to_tag=local_tag), addr)  # RFC 3261 §9.2
            self._send(make_response(self.invite, 487, to_tag=local_tag), addr)  # (its ACK ends it)
            self.cancelled.set()
        else:
            self._send(make_response(request, 200, to_tag=local_tag), addr)

    async def _transaction(self, request: Request, addr: tuple[str, int], timeout: float = 15) -> Response:
        """Send ``request`` until a final response (every 500 ms), which is returned."""
        cseq = request.cseq
        assert cseq is not None
        key = (request.call_id or "", cseq.seq, cseq.method)
        queue: asyncio.Queue[Response] = asyncio.Queue()
        self._waiting[key] = queue
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        provisional = False
        try:
            while True:
                if not provisional:
                    self._send(request, addr)
                try:
                    response = await asyncio.wait_for(queue.get(), 0.5)
                except TimeoutError:
                    if loop.time() > deadline:
                        raise TimeoutError(f"no final response to {request.method}") from None
                    continue
                if response.status >= 200:
                    return response
                provisional = True  # the far end has it: INVITE stops retransmitting (RFC 3261 §17.1.1.2)
        finally:
            del self._waiting[key]

    # --- calling out ---------------------------------------------------------------------------------
    async def call(self, target: str, *, early_trickle: bool = False) -> Response:
        """INVITE ``target`` with aiortc's offer; on a 2xx: ACK, the answer to aiortc, trickle INFO.
        ``early_trickle``: the candidates go in an INFO of the early dialog as soon as an 18x names
        trickle-ice in its Recv-Info (RFC 8840 §4.1); ``early_info`` is then that INFO's response."""
        assert self.endpoint is not None
        uri = parse_uri(target)
        assert isinstance(uri, SipURI)
        addr = (uri.host, uri.port or 5060)
        offer = await self.media.offer()
        body, mid, candidates = split_candidates(offer) if self.trickle else (offer, "0", [])
        self.invite_body = body
        invite = build_invite(
            self.endpoint,
            from_=NameAddr(self.endpoint.contact_uri()),
            to=NameAddr(uri),
            body=body.encode(),
            call_id=new_call_id("127.0.0.1"),
            headers=(("Recv-Info", "trickle-ice"),) if self.trickle else (),
        )
        early = (
            asyncio.ensure_future(self._trickle_early(invite, addr, mid, candidates))
            if early_trickle
            else None
        )
        try:
            final = await self._transaction(invite, addr)
        finally:
            if early is not None and not early.done():
                early.cancel()
        if final.status >= 300:
            self._send(self._ack(invite, final, addr), addr)
            return final
        to = final.to
        contact = final.contacts[0].uri if final.contacts else uri
        self._dialog.update(
            call_id=invite.call_id, local=invite.from_, remote_addr=to, target=contact, remote=addr, cseq=1
        )
        self._send(self._ack(invite, final, addr), addr)
        await self.media.accept(final.body.decode())
        if self.trickle and self.early_info is None:
            await self.send_candidates(mid, candidates)
        return final

    async def _trickle_early(
        self, invite: Request, addr: tuple[str, int], mid: str, candidates: list[str]
    ) -> None:
        """Our candidates in an INFO of the early dialog of the first 18x naming trickle-ice."""
        while True:
            for response in self.responses:
                named = "trickle-ice" in (response.headers.get("Recv-Info") or "")
                to = response.to
                if 180 <= response.status < 200 and named and to is not None and to.param("tag"):
                    contact = response.contacts[0].uri if response.contacts else invite.uri
                    self._dialog.update(
                        call_id=invite.call_id, local=invite.from_, remote_addr=to, target=contact,
                        remote=addr,
                    )  # fmt: skip
                    self.early_info = await self.send_candidates(mid, candidates)
                    return
            await asyncio.sleep(0.05)

    def _ack(self, invite: Request, final: Response, addr: tuple[str, int]) -> Request:
        assert self.endpoint is not None and final.to is not None and invite.from_ is not None
        target = final.contacts[0].uri if 200 <= final.status < 300 and final.contacts else invite.uri
        cseq = invite.cseq
        assert cseq is not None
        # RFC 3261 §17.1.1.3 / §13.2.2.4: a non-2xx ACK keeps the INVITE's branch, a 2xx ACK is new
        branch = None if final.status < 300 else (invite.top_via.param("branch") if invite.top_via else None)
        return build_request(
            "ACK", target, endpoint=self.endpoint, from_=invite.from_, to=final.to,
            call_id=invite.call_id or "", cseq=cseq.seq, branch=branch,
        )  # fmt: skip

    # --- being called --------------------------------------------------------------------------------
    async def wait_for_call(self, timeout: float = 15) -> Request:
        return await asyncio.wait_for(self._incoming.get(), timeout)

    def ring(self) -> tuple[str, str, str]:
        """180 to the INVITE (no SDP: the far end's offer waits unanswered) and nothing more until
        ``answer`` or a CANCEL; the early dialog it made: (Call-ID, the caller's tag, our tag), what an
        INVITE with Replaces names to pick the call up (RFC 3891 §3)."""
        invite, addr = self.invite, self._dialog.get("remote")
        assert invite is not None and isinstance(addr, tuple) and invite.from_ is not None
        tag = str(self._dialog["local_tag"])
        self._send(make_response(invite, 180, to_tag=tag), addr)
        return invite.call_id or "", invite.from_.param("tag") or "", tag

    async def answer(self) -> None:
        """Ring (180), then 200 with aiortc's answer (candidates trickled after the ACK when trickling);
        after ``answer_early`` the 200 carries the answer the 183 did, and the candidates went already."""
        invite, addr = self.invite, self._dialog.get("remote")
        assert invite is not None and isinstance(addr, tuple) and self.endpoint is not None
        tag = str(self._dialog["local_tag"])
        early = self._early
        if early is None:
            self._send(make_response(invite, 180, to_tag=tag), addr)
        body, mid, candidates = early or await self._answer_for(invite, tag)
        ok = make_response(invite, 200, to_tag=tag, headers=self._answer_headers(), body=body.encode())
        for _ in range(30):
            self._send(ok, addr)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._acked.wait(), 0.5)
                break
        if self.trickle and early is None:
            await self.send_candidates(mid, candidates)

    async def answer_early(self) -> Response:
        """183 with aiortc's answer (Recv-Info: trickle-ice when trickling) and, trickling, our candidates
        in an INFO of that early dialog (RFC 8840 §4.1), whose final response is returned; ``answer()``
        sends the 200 later. ``early_infos``: the INFO bodies the far end sent before the 200."""
        invite, addr = self.invite, self._dialog.get("remote")
        assert invite is not None and isinstance(addr, tuple)
        tag = str(self._dialog["local_tag"])
        self._early = body, mid, candidates = await self._answer_for(invite, tag)
        progress = make_response(invite, 183, to_tag=tag, headers=self._answer_headers(), body=body.encode())
        self._send(progress, addr)
        return await self.send_candidates(mid, candidates)

    async def _answer_for(self, invite: Request, tag: str) -> tuple[str, str, list[str]]:
        """aiortc's answer to ``invite`` (without candidates when trickling), its mid and candidates; the
        dialog is ours from now on (the 18x or 200 with ``tag`` goes next)."""
        answer = await self.media.answer(invite.body.decode())
        contact = invite.contacts[0].uri if invite.contacts else invite.uri
        to = invite.to
        assert to is not None and invite.from_ is not None
        self._dialog.update(
            call_id=invite.call_id, local=to.with_param("tag", tag), remote_addr=invite.from_, target=contact,
            cseq=0,
        )  # fmt: skip
        return split_candidates(answer) if self.trickle else (answer, "0", [])

    def _answer_headers(self) -> tuple[tuple[str, str], ...]:
        assert self.endpoint is not None
        return (
            ("Contact", str(self.endpoint.contact())),
            ("Content-Type", "application/sdp"),
            *(h for h in TRICKLE_HEADERS if self.trickle and (self.recv_info or h[0] != "Recv-Info")),
        )

    # --- re-INVITEs ----------------------------------------------------------------------------------
    @property
    def restarts(self) -> int:
        """ICE restarts the far end's re-offers asked for (new ICE credentials in their SDP)."""
        return self._restart.restarts if self._restart is not None else 0

    @property
    def restarts_done(self) -> int:
        """...of which a new pair was nominated (its media on the restarted ICE session)."""
        return self._restart.completed if self._restart is not None else 0

    def _on_reinvite(self, request: Request, addr: tuple[str, int]) -> None:
        """A re-offer: answered 200 with our description; new ICE credentials in it restart ICE in place
        (gateway.media.webrtc.ice_restart, as a WebRTC PBX would: aiortc itself cannot), same DTLS."""
        cseq = request.cseq
        if cseq is None:
            return
        tag = str(self._dialog.get("local_tag") or "")
        if cseq.seq in self._reanswers:  # a retransmission: the same final response, if there is one yet
            sent = self._reanswers[cseq.seq]
            if sent is not None:
                self._send(sent, addr)
            return
        self._reanswers[cseq.seq] = None
        self.reinvites.append(request)
        target = request.contacts[0].uri if request.contacts else None
        # a target refresh (RFC 3261 §12.2.2): our next requests go there (this peer keeps no route set:
        # its tests reach the gateway directly; behind a Record-Route proxy they would go to its first hop)
        if isinstance(target, SipURI):
            self._dialog["target"] = target
            self._dialog["remote"] = (target.host, target.port or 5060)
        self._send(make_response(request, 100, to_tag=tag), addr)
        self._spawn(self._reanswer(request, addr, tag))

    async def _reanswer(self, request: Request, addr: tuple[str, int], tag: str) -> None:
        assert self.endpoint is not None and request.cseq is not None
        if self.reanswer_delay > 0:
            await asyncio.sleep(self.reanswer_delay)
        text = request.body.decode()
        offer = sdp.parse(text)
        if _fingerprints(text) != _fingerprints(self.media.pc.remoteDescription.sdp):
            await self._renew(request, addr, tag, text)  # a new DTLS association: a new connection
            return
        ice = offer.ice_for(0)
        pc = self.media.pc
        local = pc.localDescription.sdp
        if self._remote_ufrag is None:
            remote = sdp.parse(pc.remoteDescription.sdp).ice_for(0)
            self._remote_ufrag = remote.ufrag if remote is not None else None
        if ice is not None and ice.ufrag != self._remote_ufrag:
            if self._restart is None:
                self._restart = InPlaceRestart(
                    aiortc_hooks.ice_connection(pc), lambda pair: None,
                    ice_transport=self.media.transceiver.receiver.transport.transport, label="sip peer",
                )  # fmt: skip
            new = self._restart.restart(ice.ufrag, ice.pwd)
            self._remote_ufrag = ice.ufrag
            self._local_ice = (new.local_ufrag, new.local_pwd)
            for index, media in enumerate(offer.media):  # those gathered before the offer went
                for candidate in media.candidates:
                    init = candidate_from_sdp(candidate.to_sdp().removeprefix("candidate:"))
                    init.sdpMid = media.mid or str(index)
                    await pc.addIceCandidate(init)
        if self._local_ice is not None:  # our credentials of the last restart (the same sockets' candidates)
            ufrag, pwd = self._local_ice
            local = re.sub(r"(?m)^a=ice-ufrag:\S+", f"a=ice-ufrag:{ufrag}", local)
            local = re.sub(r"(?m)^a=ice-pwd:\S+", f"a=ice-pwd:{pwd}", local)
        version = len(self.reinvites)  # RFC 3264 §8: a changed description has a higher o= version
        local = re.sub(r"(?m)^(o=\S+ \S+ )(\d+)", lambda m: f"{m[1]}{int(m[2]) + version}", local)
        await self._answer_again(request, addr, tag, local)

    async def _renew(self, request: Request, addr: tuple[str, int], tag: str, offer: str) -> None:
        """A re-offer from a new RTCPeerConnection (its browser reconnected: RFC 5763 §5, a new
        fingerprint is a new DTLS association): answered by a new aiortc connection of ours."""
        old = self.media
        self.media = WebPeer(freq=self.freq, addresses=self._addresses)
        self.renewals += 1
        self._restart, self._remote_ufrag, self._local_ice = None, None, None
        await old.close()
        await self._answer_again(request, addr, tag, await self.media.answer(offer))

    async def _answer_again(self, request: Request, addr: tuple[str, int], tag: str, answer: str) -> None:
        """200 with ``answer`` to the re-INVITE, sent every 500 ms until its ACK."""
        assert self.endpoint is not None and request.cseq is not None
        headers = (("Contact", str(self.endpoint.contact())), ("Content-Type", "application/sdp"))
        ok = make_response(request, 200, to_tag=tag, headers=headers, body=answer.encode())
        self._reanswers[request.cseq.seq] = ok
        for _ in range(30):
            self._send(ok, addr)
            await asyncio.sleep(0.5)
            if request.cseq.seq in self._acks:
                break

    # --- in the dialog -------------------------------------------------------------------------------
    def _in_dialog(self, method: str, body: bytes = b"", content_type: str | None = None,
                   headers: tuple[tuple[str, str], ...] = ()) -> tuple[Request, tuple[str, int]]:  # fmt: skip
        assert self.endpoint is not None
        local, remote, target, addr = (
            self._dialog.get(k) for k in ("local", "remote_addr", "target", "remote")
        )
        assert isinstance(local, NameAddr) and isinstance(remote, NameAddr) and isinstance(addr, tuple)
        self._cseq += 1
        request = build_request(
            method, target if isinstance(target, SipURI) else remote.uri, endpoint=self.endpoint,
            from_=local, to=remote, call_id=str(self._dialog["call_id"]), cseq=self._cseq,
            body=body, content_type=content_type, headers=headers,
        )  # fmt: skip
        return request, addr

    async def send_candidates(self, mid: str, candidates: list[str]) -> Response:
        """One INFO with every candidate and a=end-of-candidates (RFC 8840 §5.3, §9)."""
        ice = sdp.parse(self.media.pc.localDescription.sdp).ice_for(0)
        assert ice is not None
        fragment = sdp.TrickleFragment(
            sdp.IceParameters(ice.ufrag, ice.pwd),
            (sdp.TrickleMedia(mid, tuple(sdp.Candidate.parse(c) for c in candidates), True),),
        )
        request, addr = self._in_dialog(
            "INFO",
            sdp.encode_sdpfrag(fragment).encode(),
            sdp.TRICKLE_MEDIA_TYPE,
            (("Info-Package", "trickle-ice"),),
        )
        self.infos_sent += 1
        return await self._transaction(request, addr)

    async def reinvite(self, direction: str) -> Response:
        """A re-offer of ours in the dialog, as a WebRTC PBX holds and resumes (RFC 3264 §8.4:
        ``sendonly`` or ``inactive`` to hold, ``sendrecv`` to resume): our description with that
        direction, its o= version raised past any we sent, the same ICE credentials and DTLS role (no
        new session: RFC 8842 §5.5); the 2xx is ACKed and returned (its answer is not applied: aiortc
        renegotiates nothing, and the media goes on over the same association)."""
        assert self.endpoint is not None
        local = self.media.pc.localDescription.sdp
        if self._local_ice is not None:
            ufrag, pwd = self._local_ice
            local = re.sub(r"(?m)^a=ice-ufrag:\S+", f"a=ice-ufrag:{ufrag}", local)
            local = re.sub(r"(?m)^a=ice-pwd:\S+", f"a=ice-pwd:{pwd}", local)
        self._offers += 1
        version = 100 + self._offers  # above the re-answers' (len(self.reinvites))
        local = re.sub(r"(?m)^(o=\S+ \S+ )(\d+)", lambda m: f"{m[1]}{int(m[2]) + version}", local)
        local = re.sub(r"(?m)^a=(sendrecv|sendonly|recvonly|inactive)\r?$", f"a={direction}\r", local)
        request, addr = self._in_dialog(
            "INVITE", local.encode(), "application/sdp", (("Contact", str(self.endpoint.contact())),)
        )
        self.offers_sent.append(local)
        final = await self._transaction(request, addr)
        if 200 <= final.status < 300:
            local_tag, remote = self._dialog.get("local"), self._dialog.get("remote_addr")
            target = self._dialog.get("target")
            assert isinstance(local_tag, NameAddr) and isinstance(remote, NameAddr) and final.to is not None
            ack = build_request(
                "ACK", target if isinstance(target, SipURI) else remote.uri, endpoint=self.endpoint,
                from_=local_tag, to=final.to, call_id=str(self._dialog["call_id"]), cseq=self._cseq,
            )  # fmt: skip
            self._send(ack, addr)
        return final

    async def _add_trickled(self, body: str) -> None:
        fragment = sdp.decode_sdpfrag(body)
        for media in fragment.media:
            for candidate in media.candidates:
                ice: RTCIceCandidate = candidate_from_sdp(candidate.to_sdp().removeprefix("candidate:"))
                ice.sdpMid = media.mid
                await self.media.pc.addIceCandidate(ice)
            if media.end_of_candidates or fragment.end_of_candidates:
                await self.media.pc.addIceCandidate(None)

    async def hangup(self) -> Response:
        request, addr = self._in_dialog("BYE")
        response = await self._transaction(request, addr)
        self.ended.set()
        return response

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
