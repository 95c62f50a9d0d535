"""/openapi.json describes every route of the gateway as users run it (issue 39: the signaling harness's
check missed /readyz and /metrics, which the operations wiring adds), and WHIP's and WHEP's errors as
answers to SDP bodies, not JSON ones."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.e2e.harness import gateway_config, running_gateway
from tests.signaling.http_api.test_http_api import route_paths


async def test_every_route_of_a_running_gateway_is_described() -> None:
    async with running_gateway(gateway_config(None)) as gateway:
        assert gateway.http is not None
        async with aiohttp.ClientSession() as http, http.get(gateway.http_url + "/openapi.json") as reply:
            document: dict[str, Any] = await reply.json()
        routes = route_paths(gateway.http.app)
    paths = document["paths"]
    assert ("GET", "/readyz") in routes and ("GET", "/metrics") in routes
    missing = [f"{method} {path}" for method, path in routes if method.lower() not in paths.get(path, {})]
    assert not missing, missing
    whip_415 = paths["/whip"]["post"]["responses"]["415"]["description"]
    assert "application/sdp" in whip_415 and "json" not in whip_415.lower(), whip_415
