"""A page's socket relayed to the instance holding its calls (gateway/signaling/ws/relay.py): an owner that
refuses the upgrade lives (`refused`: the page is told to try again, 1013), one that cannot be reached is
dead (its calls may be going to a survivor)."""

from __future__ import annotations

import socket
from types import SimpleNamespace
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.signaling.ws.relay import WsRelay
from peers.ports import free_port


def page_socket() -> Any:
    """What the relay reads of the page's socket (an in-memory stand-in)."""
    return SimpleNamespace(headers={"Origin": "http://127.0.0.1"}, remote="192.0.2.7", relay_stamp=None)


async def test_an_owner_that_refuses_the_upgrade_lives_and_one_that_is_gone_does_not() -> None:
    async def busy(_request: web.Request) -> web.Response:
        return web.Response(status=429, text="too many sockets awaiting login from your address")

    app = web.Application()
    app.router.add_get("/ws", busy)
    async with TestServer(app) as server:
        relay = WsRelay(page_socket(), str(server.make_url("")).rstrip("/"))
        assert not await relay.open('{"type": "login", "token": "t"}')
        assert relay.refused  # it lives: the page tries again later (1013)
    gone = WsRelay(page_socket(), f"http://127.0.0.1:{free_port(socket.SOCK_STREAM)}")
    assert not await gone.open('{"type": "login", "token": "t"}')
    assert not gone.refused  # dead: where its calls went instead is looked for
