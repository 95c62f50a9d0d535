"""The boundary between WHEP (whep.py) and the playback of a call's audio (gateway/runtime/playback.py):
`POST /whep/{id}` with the id of a WHIP or HTTP API session, or of its call, plays what the far end of
that call sends (the SIP side's audio) to a WHEP player."""

from __future__ import annotations

from typing import Final, Protocol

from aiohttp import web

from gateway.identity import WebUser


class CallPlayback(Protocol):
    async def watch(self, session_id: str, user: WebUser, offer: str) -> tuple[str, str]:
        """A player of the far end's audio of `user`'s session (or call) `session_id`: (the player's id,
        the SDP answer). `NotFound` when `user` has no such session; other `SignalingError`s (`Conflict`:
        no audio to play yet, a pass-through call, too many players; `BadRequest`: the offer)."""
        ...

    async def unwatch(self, viewer_id: str, user: WebUser) -> bool:
        """End `user`'s player `viewer_id`; False when it is not one of this service's."""
        ...


PLAYBACK_KEY: Final = web.AppKey("signaling_call_playback", CallPlayback)
