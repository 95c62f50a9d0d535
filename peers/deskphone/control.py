"""How the phone talks to whoever drives it: events out, commands in.

Events are dicts such as ``{"event": "state", "call": 1, "state": "CONFIRMED", "code": 200}``. With
``--control`` each is one JSON line on stdout (for tests and other programs); without it they are printed
for a person.

Commands come in on stdin, one per line, either JSON (``{"cmd": "dtmf", "digits": "123"}``) or words
(``dtmf 123``). A thread reads stdin and puts commands on a queue; it never touches pjsua2, whose own
thread takes them from the queue between two rounds of ``libHandleEvents``.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
from typing import Any, TextIO

Command = dict[str, Any]

# Words a person may type, and the JSON field their first argument fills.
_WORD_ARGUMENT = {
    "call": "uri", "dtmf": "digits", "answer": "code", "reject": "code", "tone": "freq", "message": "body",
    "transfer": "to",
}  # fmt: skip

# What `help` prints: the commands a person types (JSON lines take the same names: {"cmd": "dtmf", ...}).
_HELP = """\
commands (one a line):
  call 1001              call a number or user: sip:1001@{dial_domain}
  call sip:1001@HOST:PORT  call a SIP URI
  hangup                 end the newest call
  answer | reject [CODE] answer a ringing call (200) / refuse it (486, or CODE)
  dtmf 123#              send DTMF digits (RFC 2833)
  hold | unhold          put the call on hold / take it off
  transfer URI           blind transfer of the call to URI (REFER)
  info TYPE BODY         send an INFO (info text/plain hello)
  message TEXT           send a MESSAGE in the call
  tone HZ                play another tone to every call (0: silence)
  status                 registration and calls
  help                   this list
  quit                   stop this phone (under `make run`: the whole demo, the gateway too)"""


def help_text(dial_domain: str) -> str:
    """The `help` command's answer; `dial_domain` is where a bare number goes (empty: nowhere yet)."""
    return _HELP.format(dial_domain=dial_domain or "? (start the phone with --dial-domain HOST:PORT)")


def parse_command(line: str) -> Command | None:
    """A command dict from one input line (JSON or words); None for a blank line."""
    line = line.strip()
    if not line:
        return None
    if line.startswith("{"):
        command = json.loads(line)
        if not isinstance(command, dict) or not isinstance(command.get("cmd"), str):
            raise ValueError(f"a command is a JSON object with a string 'cmd': {line!r}")
        return command
    words = line.split(maxsplit=2 if line.startswith("info ") else 1)
    command = {"cmd": words[0]}
    if words[0] == "info" and len(words) == 3:  # info text/plain hello world
        command.update(content_type=words[1], body=words[2])
    elif len(words) > 1 and words[0] in _WORD_ARGUMENT:
        command[_WORD_ARGUMENT[words[0]]] = words[1]
    return command


# How a person sees the events (control mode sends the same fields as JSON).
_READABLE = {
    "ready": "phone {uri} listening on {host}:{port} (codecs {codecs})",
    "registered": "registration: {code} {reason} (registered: {registered})",
    "incoming": "call {call}: incoming from {from} to {to}",
    "state": "call {call}: {state} {code} {reason}",
    "bye": "call {call}: BYE received (Reason: {reason})",
    "media": "call {call}: audio {status} ({codec})",
    "dtmf": "call {call}: DTMF {digit} ({method})",
    "info": "call {call}: INFO {content_type}: {body!r}",
    "info_response": "call {call}: INFO answered {code} {reason}",
    "message": "call {call}: MESSAGE {content_type}: {body!r}",
    "message_status": "call {call}: MESSAGE answered {code} {reason}",
    "replaced": "call {call}: replaced by call {new_call} from {from}",
    "transfer_request": "call {call}: REFER to {to} (new call {new_call})",
    "transfer_status": "call {call}: transfer {code} {reason} (final: {final})",
    "recording": "call {call}: recording to {path}",
    "recorded": "call {call}: recorded {path}",
    "error": "error ({cmd}): {message}",
    "help": "{text}",
    "stopped": "phone stopped",
}


class EventSink:
    """Writes events: JSON lines in control mode, readable lines otherwise, on the real stdout.

    pjlib prints its log to file descriptor 1 (already during libCreate, before any log setting applies).
    The sink keeps a private copy of stdout for events and points descriptor 1 at stderr, so stdout
    carries events only and the library's log goes with the other diagnostics.
    """

    def __init__(self, control: bool) -> None:
        self.control = control
        self._lock = threading.Lock()
        sys.stdout.flush()
        self._out: TextIO = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
        os.dup2(2, 1)

    def emit(self, event: str, **fields: Any) -> None:
        with self._lock:
            if self.control:
                self._out.write(json.dumps({"event": event, **fields}) + "\n")
            else:
                try:
                    text = _READABLE[event].format_map(fields)
                except KeyError:  # an event without a readable form, or a field missing
                    text = f"{event} " + " ".join(f"{k}={v}" for k, v in fields.items())
                self._out.write(text.rstrip() + "\n")
            self._out.flush()


class CommandReader:
    """A daemon thread turning stdin lines into commands on a queue (``{"cmd": "eof"}`` at the end)."""

    def __init__(self, stream: TextIO, sink: EventSink) -> None:
        self.commands: queue.Queue[Command] = queue.Queue()
        self._stream = stream
        self._sink = sink
        self._thread = threading.Thread(target=self._run, name="stdin-commands", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        for line in self._stream:
            try:
                command = parse_command(line)
            except ValueError as exc:  # json.JSONDecodeError is a ValueError
                self._sink.emit("error", cmd=None, message=f"bad command: {exc}")
                continue
            if command is not None:
                self.commands.put(command)
        self.commands.put({"cmd": "eof"})

    def pending(self) -> list[Command]:
        out = []
        while True:
            try:
                out.append(self.commands.get_nowait())
            except queue.Empty:
                return out
