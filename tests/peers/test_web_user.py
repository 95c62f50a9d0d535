"""The WebSocket-protocol test client (peers/web_user.py) against a running gateway: a refused login raises
WebUserError carrying the gateway's error and leaves nothing open (no aiohttp session, no reader task)."""

from __future__ import annotations

import asyncio

import pytest

from peers.web_user import WebUser, WebUserError
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway


async def test_a_refused_login_raises_and_closes_everything() -> None:
    async with running_gateway(gateway_config(None)) as gateway:
        user = WebUser(gateway.http_url, "alice", "not-her-secret")
        with pytest.raises(WebUserError, match="unauthorized"):
            await user.__aenter__()
        assert user._http is None and user._ws is None and user._reader is None  # closed, not leaked
        readers = [t for t in asyncio.all_tasks() if "WebUser._read" in repr(t.get_coro())]
        assert not readers, readers
        async with WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice:  # the right secret still works
            assert alice.session_id
