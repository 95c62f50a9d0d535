"""Call records out: one JSON object per call when it ends, to a JSON lines file, the log and/or a webhook.

The file is opened for each record and appended to in one write (a record is one line, so a reader or
logrotate never sees half of one). The webhook is POSTed in a task of its own with the configured timeout:
a slow or dead collector delays no call; a failure is logged (WARNING) and the record stays in the
file/log if those are on. `close()` gives the POSTs still out until their timeout, then cancels them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from gateway.config.ops import CdrSection
from gateway.ops.records import CallRecord

logger = logging.getLogger(__name__)

Poster = Callable[[str, str, float], Awaitable[int]]  # (url, JSON body, timeout) -> HTTP status


class CallRecorder:
    def __init__(self, section: CdrSection, post: Poster | None = None, base_dir: Path = Path(".")) -> None:
        self.section = section
        self.path = (base_dir / section.file) if section.file is not None else None
        self._post = post
        self._tasks: set[asyncio.Task[None]] = set()
        self.written = 0

    @property
    def enabled(self) -> bool:
        return self.path is not None or self.section.log or self.section.webhook is not None

    def write(self, record: CallRecord) -> None:
        line = json.dumps(record.to_json(), separators=(",", ":"), default=str)
        if self.path is not None:
            try:
                with self.path.open("a", encoding="utf-8") as out:
                    out.write(line + "\n")
            except OSError as exc:
                logger.warning("call=%s record not written to %s: %s", record.call_id, self.path, exc)
        if self.section.log:
            logger.info("call record %s", line)
        if self.section.webhook is not None and self._post is not None:
            task = asyncio.get_running_loop().create_task(
                self._send(self._post, self.section.webhook, line, record.call_id)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self.written += 1

    async def _send(self, post: Poster, url: str, body: str, call_id: str) -> None:
        try:
            status = await asyncio.wait_for(
                post(url, body, self.section.webhook_timeout), self.section.webhook_timeout
            )
        except Exception as exc:  # any failure of the collector (timeout, refused, HTTP client error)
            logger.warning("call=%s record not posted to the webhook: %s", call_id, exc or type(exc).__name__)
            return
        if not 200 <= status < 300:
            logger.warning("call=%s record posted, the webhook answered %d", call_id, status)

    async def close(self) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=self.section.webhook_timeout + 0.5)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
