"""The admin API across cluster instances: ask every other live instance for its calls, or pass a hang-up
or transfer on to the instance that carries the call.

Each request goes to the other instance's advertised HTTP URL (its instance record in Redis) with
`?scope=local` (so it never fans out again), `X-Gateway-User: admin:<who>` and `X-Gateway-Forwarded`
signed with `cluster.secret` over that very request (gateway/signaling/cluster_http.py `sign`); the
other instance's cluster middleware checks the signature, and `require_admin` then takes the asserted
admin (gateway/signaling/admin_auth.py). An instance that does not answer in `timeout` seconds is
reported as such in the listing; no credential of the admin's travels.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

import aiohttp

from gateway.signaling.admin_auth import CLUSTER_ADMIN
from gateway.signaling.cluster_http import FORWARDED, USER, sign

logger = logging.getLogger(__name__)

LOCAL: Final = "scope=local"
FAN_OUT_TIMEOUT: Final = 3.0


@dataclass
class AdminFanOut:
    instance_id: str
    secret: bytes = field(repr=False)
    peers: Callable[[], Awaitable[Mapping[str, str]]]  # instance id -> its HTTP base URL (this one too)
    timeout: float = FAN_OUT_TIMEOUT
    clock: Callable[[], float] = time.time
    _client: aiohttp.ClientSession | None = field(default=None, repr=False)

    async def others(self) -> dict[str, str]:
        return {i: url for i, url in (await self.peers()).items() if i != self.instance_id}

    async def request(
        self, base: str, method: str, path: str, who: str, body: bytes = b""
    ) -> tuple[int, object]:
        """`method path?scope=local` at `base` as admin `who`: (HTTP status, JSON body)."""
        if self._client is None:
            self._client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        path_qs = f"{path}?{LOCAL}"
        user = CLUSTER_ADMIN + who.removeprefix(CLUSTER_ADMIN)
        headers = {
            USER: user,
            FORWARDED: sign(self.secret, self.instance_id, method, path_qs, self.clock(), user, body),
        }
        if body:
            headers["Content-Type"] = "application/json"
        async with self._client.request(
            method, base.rstrip("/") + path_qs, data=body or None, headers=headers, allow_redirects=False
        ) as response:
            text = await response.text()
            try:
                return response.status, json.loads(text)
            except ValueError:
                return response.status, {"error": text[:200]}

    async def gather(self, path: str, who: str) -> dict[str, tuple[int, object] | str]:
        """GET `path` from every other instance at once: its (status, body), or why it failed."""
        others = await self.others()

        async def one(base: str) -> tuple[int, object] | str:
            try:
                return await self.request(base, "GET", path, who)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                return f"unreachable: {exc or type(exc).__name__}"

        answers = await asyncio.gather(*(one(base) for base in others.values()))
        return dict(zip(others, answers, strict=True))

    async def find(
        self, method: str, path: str, who: str, body: bytes = b""
    ) -> tuple[str, int, object] | None:
        """`method path` at each other instance until one has the call (any answer but 404): (instance,
        status, body); None when none has it."""
        for instance, base in (await self.others()).items():
            try:
                status, answer = await self.request(base, method, path, who, body)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                logger.warning("admin %s %s: instance %s unreachable: %s", method, path, instance, exc)
                continue
            if status != 404:
                return instance, status, answer
        return None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
