"""`WebRtcClient`: the HTTP offer/answer API on aiohttp (see the package note)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiohttp


class WebRtcClientError(Exception):
    """The gateway refused a request: `code` is the HTTP status (as the error body's `code`)."""

    def __init__(
        self, message: str, code: int, reason: str | None = None, session_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.message, self.code, self.reason, self.session_id = message, code, reason, session_id


@dataclass(frozen=True, slots=True)
class IceCandidate:
    candidate: str
    sdp_m_line_index: int | None = 0
    sdp_mid: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"candidate": self.candidate, "sdpMLineIndex": self.sdp_m_line_index, "sdpMid": self.sdp_mid}


@dataclass(frozen=True, slots=True)
class OfferAnswer:
    session_id: str
    sdp: str  # the gateway's SDP answer
    ice_candidates: tuple[Mapping[str, Any], ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    call_id: str | None = None


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """One progress event of a session: `event` ringing, early_media, answered, failed, ended, dtmf,
    held, resumed, web_lost, message, message_result, transfer, transfer_requested, error or closed, and
    its fields in `data` (docs/signaling.md). `transfer_requested` (`data["to"]`) is the SIP party's
    REFER: place that call with `send_offer(sdp, transfer_of=<this session>)`."""

    id: int
    event: str
    data: Mapping[str, Any] = field(default_factory=dict)


class WebRtcClient:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        token: str | None = None,
        basic: tuple[str, str] | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers: dict[str, str] = {}
        if api_key is not None:
            self._headers["X-API-Key"] = api_key
        elif token is not None:
            self._headers["Authorization"] = f"Bearer {token}"
        self._auth = aiohttp.BasicAuth(*basic) if basic is not None else None
        self._own = session is None
        self._http = session

    async def __aenter__(self) -> WebRtcClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own and self._http is not None:
            await self._http.close()
            self._http = None

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        return self._http

    async def _request(self, method: str, path: str, body: object = None) -> Any:
        async with self._session().request(
            method, f"{self.base_url}{path}", json=body, headers=self._headers, auth=self._auth
        ) as response:
            try:
                data = await response.json(content_type=None)
            except (ValueError, aiohttp.ContentTypeError):
                data = None
            if response.status >= 400:
                error = data if isinstance(data, dict) else {}
                raise WebRtcClientError(
                    str(error.get("error") or response.reason), int(error.get("code") or response.status),
                    error.get("reason"), error.get("session_id"),
                )  # fmt: skip
            return data

    async def send_offer(
        self,
        sdp: str,
        session_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        transfer_of: str | None = None,
    ) -> OfferAnswer:
        """A new session calling `metadata["dial"]` (else the credentials' default destination); with
        `transfer_of`, the session whose `transfer_requested` this call carries out (its REFER's target
        unless `metadata` names another; the referrer hears how the call goes)."""
        body: dict[str, Any] = {"sdp": {"type": "offer", "sdp": sdp}}
        if session_id is not None:
            body["session_id"] = session_id
        if metadata is not None:
            body["metadata"] = dict(metadata)
        if transfer_of is not None:
            body["transfer_of"] = transfer_of
        data = await self._request("POST", "/webrtc/offer", body)
        return OfferAnswer(
            data["session_id"], data["sdp"]["sdp"], tuple(data.get("ice_candidates") or ()),
            data.get("metadata") or {}, data.get("call_id"),
        )  # fmt: skip

    async def exchange_sdp(self, sdp: str) -> tuple[str, str]:
        """(session id, answer SDP) for `sdp`, calling the credentials' default destination."""
        answer = await self.send_offer(sdp)
        return answer.session_id, answer.sdp

    async def send_ice_candidate(self, session_id: str, candidate: IceCandidate | None) -> None:
        value = candidate.to_json() if candidate is not None else None
        await self._request("POST", "/webrtc/ice-candidate", {"session_id": session_id, "candidate": value})

    async def setup_session(self, sdp: str, ice_candidates: Sequence[IceCandidate]) -> tuple[str, str]:
        """Offer, then send each candidate and the end of candidates: (session id, answer SDP)."""
        session_id, answer = await self.exchange_sdp(sdp)
        for candidate in ice_candidates:
            await self.send_ice_candidate(session_id, candidate)
        await self.send_ice_candidate(session_id, None)
        return session_id, answer

    async def close_session(self, session_id: str, reason: str | None = None) -> None:
        body: dict[str, Any] = {"session_id": session_id}
        if reason is not None:
            body["reason"] = reason
        await self._request("POST", "/webrtc/close", body)

    async def hold(self, session_id: str) -> None:
        await self._request("POST", "/webrtc/hold", {"session_id": session_id})

    async def resume(self, session_id: str) -> None:
        await self._request("POST", "/webrtc/resume", {"session_id": session_id})

    async def send_dtmf(self, session_id: str, digits: str, duration_ms: int | None = None) -> None:
        body: dict[str, Any] = {"session_id": session_id, "digits": digits}
        if duration_ms is not None:
            body["duration_ms"] = duration_ms
        await self._request("POST", "/webrtc/dtmf", body)

    async def transfer(self, session_id: str, to: str | None = None, *, replaces: str | None = None) -> None:
        """Transfer the session's call: blind to `to`, or attended (`replaces`: another of your sessions,
        connected, whose far end takes the call, RFC 3891); how it goes comes as `transfer` events."""
        body: dict[str, Any] = {"session_id": session_id}
        if to is not None:
            body["to"] = to
        if replaces is not None:
            body["replaces"] = replaces
        await self._request("POST", "/webrtc/transfer", body)

    async def send_message(self, session_id: str, body: str) -> None:
        """Chat in the session's call (SIP MESSAGE in its dialog); `message_result` follows."""
        await self._request("POST", "/webrtc/message", {"session_id": session_id, "body": body})

    async def merge(self, session_id: str, with_session: str) -> None:
        """Three-way call: merge the session's call with the call of your session `with_session` (one of
        the two held) into one conference mixed in the gateway; `merged` follows in both sessions."""
        await self._request("POST", "/webrtc/merge", {"session_id": session_id, "with": with_session})

    async def split(self, session_id: str) -> None:
        """Take the session's call out of its conference (it is held again); `split` follows."""
        await self._request("POST", "/webrtc/split", {"session_id": session_id})

    async def get_ice_servers(self) -> list[dict[str, Any]]:
        servers: list[dict[str, Any]] = await self._request("GET", "/iceservers")
        return servers

    async def session_status(self, session_id: str) -> dict[str, Any]:
        status: dict[str, Any] = await self._request("GET", f"/webrtc/sessions/{session_id}")
        return status

    async def events(self, session_id: str, after: int = 0) -> AsyncIterator[ProgressEvent]:
        """The session's progress events (server-sent), until its final one."""
        url = f"{self.base_url}/webrtc/sessions/{session_id}/events?after={after}"
        async with self._session().get(url, headers=self._headers, auth=self._auth) as response:
            if response.status >= 400:
                error = await response.json(content_type=None)
                raise WebRtcClientError(str(error.get("error")), int(error.get("code") or response.status))
            fields: dict[str, str] = {}
            async for raw in response.content:
                line = raw.decode().rstrip("\r\n")
                if line:
                    if not line.startswith(":"):
                        name, _, value = line.partition(":")
                        fields[name] = value.lstrip(" ")
                    continue
                if "event" in fields and "data" in fields:
                    data = json.loads(fields["data"])
                    yield ProgressEvent(int(fields.get("id", "0")), fields["event"], data)
                fields = {}
