"""Presence pushed over /ws (gateway/signaling/ws/presence_feed.py): a contact's first login and last logout
reach the sessions of users who may call her, as `presence` events; nothing else does."""

from __future__ import annotations

import asyncio
import json

from aiohttp import ClientWebSocketResponse, WSMsgType

from tests.signaling.harness import ALICE_SECRET, BOB_SECRET, make_harness
from tests.signaling.ws.test_ws import login, start


async def next_presence(ws: ClientWebSocketResponse, timeout: float = 2.0) -> dict[str, object] | None:
    """The next `presence` event (other events skipped), or None when none comes in time."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while (left := end - loop.time()) > 0:
        try:
            msg = await ws.receive(timeout=left)
        except TimeoutError:
            return None
        if msg.type is WSMsgType.TEXT and (event := json.loads(msg.data)).get("type") == "presence":
            return dict(event)
    return None


async def test_contacts_hear_first_login_and_last_logout_only() -> None:
    client = await start(make_harness())
    try:
        async with client.ws_connect("/ws") as alice:
            await login(alice, "alice", ALICE_SECRET)
            async with client.ws_connect("/ws") as bob:
                await login(bob, "bob", BOB_SECRET)
                assert await next_presence(alice) == {
                    "type": "presence", "user": "bob", "display_name": "Bob (demo)", "number": "1002",
                    "online": True,
                }  # fmt: skip
                assert await next_presence(bob, 0.3) is None  # never about herself or himself
                async with client.ws_connect("/ws") as bob_again:  # a second session: still online
                    await login(bob_again, "bob", BOB_SECRET)
                    assert await next_presence(alice, 0.3) is None
                assert await next_presence(alice, 0.3) is None  # one of his sessions is still open
            event = await next_presence(alice)
            assert event is not None and (event["user"], event["online"]) == ("bob", False)
    finally:
        await client.close()
