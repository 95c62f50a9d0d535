"""Logging set-up for the gateway process: text for people, JSON lines for log collectors."""

from __future__ import annotations

import json
import logging
import logging.handlers
import queue
import re
import sys
import time
from collections.abc import Callable
from typing import Final, TextIO

from gateway.ops.logctx import call_fields, install_record_factory

TEXT_FORMAT: Final = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

# LogRecord attributes that are bookkeeping, not context worth shipping in a JSON line.
_RECORD_FIELDS: Final = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


# Control characters a peer may put in a Call-ID, a header or a WebSocket message: written raw they
# would move the cursor, recolour or clear an operator's terminal, or forge a log line (CR/LF).
_ESCAPES: Final = {
    code: f"\\x{code:02x}" for code in [*range(0x20), 0x7F, *range(0x80, 0xA0)] if code != 0x09
}


# Secrets that travel inside messages a DEBUG log may quote: ICE passwords, SDES keys (a=crypto
# inline:), login secrets and Authorization values. They are masked in every log line.
_SECRETS: Final = re.compile(
    r"(ice-pwd:|inline:|\"secret\":\s*\"|\"password\":\s*\"|Authorization:\s*\w+\s+)([^\s\"\\|]+)",
    re.IGNORECASE,
)


def mask_secrets(text: str) -> str:
    """``text`` with ICE passwords, SDES keys, login secrets and Authorization credentials as ``***``."""
    return _SECRETS.sub(lambda m: m.group(1) + "***", text)


def escape_controls(text: str) -> str:
    """``text`` with every control character (C0 but tab, DEL, C1) written as ``\\xNN``."""
    return text.translate(_ESCAPES)


class TextFormatter(logging.Formatter):
    """The text format, one line per message whatever a peer put in it (a traceback keeps its lines);
    a line about a call ends with the call's ids the message does not already show (gateway/ops/logctx.py)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(mask_secrets(record.message + call_fields(record)))
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with any `extra=` fields kept as top-level keys (json.dumps escapes
    control and non-ASCII characters)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": mask_secrets(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class _Handed(logging.handlers.QueueHandler):
    """Hands each record to the writer thread as it is: only its message is made here (``%`` applied to
    its arguments, which may change after), its format, masking and write are the thread's."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record.msg, record.args = record.getMessage(), None
        return record


class Writer:
    """Where the log records go: straight to ``handler``, or, ``queued``, to a thread that formats and
    writes them, so that an event loop never waits on a terminal, a pipe or a disk (the CLI's gateway).
    ``stop()`` writes what is queued and ends the thread; idempotent."""

    def __init__(self, handler: logging.Handler, *, queued: bool) -> None:
        self._listener: logging.handlers.QueueListener | None = None
        self.handler = handler
        if queued:
            self._listener = logging.handlers.QueueListener(queue.SimpleQueue(), handler)
            self.handler = _Handed(self._listener.queue)
            self._listener.start()

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()


def configure_logging(
    level: str = "INFO", fmt: str = "text", stream: TextIO | None = None, *, queued: bool = False
) -> Writer:
    """Send the gateway's logs to `stream` (stderr by default) at `level`, as `fmt` ('text' or 'json').
    ``queued``: formatted and written by a thread of their own (``Writer``, returned: stop it at exit),
    never on the event loop that logged them (a slow terminal, pipe or disk)."""
    install_record_factory()  # `call` and `sip_call_id` on the records of a call's lines
    handler: logging.Handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter(TEXT_FORMAT))
    writer = Writer(handler, queued=queued)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(writer.handler)
    root.setLevel(level.upper())
    # aiohttp's access log and aioice's per-check chatter are noise at INFO.
    logging.getLogger("aiohttp.access").setLevel(max(root.level, logging.WARNING))
    logging.getLogger("aioice").setLevel(max(root.level, logging.WARNING))
    return writer


class RateLimit:
    """At most ``burst`` lines per ``window`` seconds for one kind of event a peer can cause at will
    (malformed requests...): the first ones are logged, then one line says how many were left out."""

    def __init__(
        self, burst: int = 10, window: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.burst, self.window, self._clock = burst, window, clock
        self._start, self._count, self._suppressed = -window, 0, 0

    def allow(self, logger: logging.Logger, level: int) -> bool:
        """Whether to log one more line now; logs the count of the suppressed ones when a window ends."""
        now = self._clock()
        if now - self._start >= self.window:
            if self._suppressed:
                logger.log(level, "... and %d more like it in the last %g s", self._suppressed, self.window)
            self._start, self._count, self._suppressed = now, 0, 0
        self._count += 1
        if self._count > self.burst:
            self._suppressed += 1
            return False
        return True
