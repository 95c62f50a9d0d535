"""The HTTP side of the call-event webhooks (gateway/ops/webhooks.py): one signed POST, its status.

aiohttp lives in this package only (ARCHITECTURE.md); the queue, the signature and the retries are in
gateway/ops/webhooks.py.
"""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp


async def post_webhook(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
    """POST `body` with `headers` to `url` (no redirect followed: a signed event goes where configured);
    the HTTP status. Raises on a timeout or a failed connection."""
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with (
        aiohttp.ClientSession(timeout=client_timeout) as session,
        session.post(url, data=body, headers=dict(headers), allow_redirects=False) as response,
    ):
        await response.read()
        return response.status
