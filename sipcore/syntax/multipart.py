"""Multipart message bodies (RFC 5621, RFC 2046 §5.1): the SDP part of one.

A SIP-I or SIP-T carrier gateway (ITU-T Q.1912.5, RFC 3204) sends its INVITE, and its answers, with a
``multipart/mixed`` body: the SDP and the ISUP message the call came with. A UA takes the parts it
understands (RFC 5621 §3.1); one it does not understand matters only when its Content-Disposition says
``handling=required`` (RFC 5621 §9.1, RFC 3261 §20.11). :func:`with_sdp_body` gives the message with its
one SDP part as the body, so that everything after it reads SDP as from any other peer; a body it
cannot take so (no SDP part, two, a required part of another type, no boundary) stays as it came and is
refused like any body the UA cannot use (415 with Accept, RFC 3261 §8.2.3).
"""

from __future__ import annotations

import dataclasses
import re
from typing import TypeVar

from sipcore.syntax.message import Request, Response

__all__ = ["sdp_part", "with_sdp_body"]

SDP = "application/sdp"
_BOUNDARY = re.compile(r';\s*boundary\s*=\s*(?:"([^"]{1,70})"|([^\s;"]{1,70}))', re.IGNORECASE)
_HANDLING = re.compile(r";\s*handling\s*=\s*required\b", re.IGNORECASE)
_BLANK = re.compile(rb"\r?\n\r?\n")
M = TypeVar("M", bound=Request | Response)


def _media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def _part_headers(head: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in head.decode("utf-8", "replace").splitlines():
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return headers


def sdp_part(content_type: str, body: bytes) -> bytes | None:
    """The content of the one ``application/sdp`` part of a ``multipart/mixed`` body (RFC 2046 §5.1.1),
    None when it has none, more than one, or a part of another type marked ``handling=required``."""
    if _media_type(content_type) != "multipart/mixed":
        return None
    found = _BOUNDARY.search(content_type)
    if found is None:
        return None
    delimiter = b"--" + (found.group(1) or found.group(2)).encode()
    chunks = re.split(rb"(?:^|\r?\n)" + re.escape(delimiter), body)
    sdp: list[bytes] = []
    for chunk in chunks[1:]:  # chunks[0] is the preamble
        if chunk.startswith(b"--"):  # the close delimiter: the epilogue follows
            break
        line_end = chunk.find(b"\n")
        if line_end < 0:
            return None  # a delimiter line with no part after it
        part = chunk[line_end + 1 :]  # after the delimiter line (and its transport padding)
        if part.startswith((b"\r\n", b"\n")):  # no part headers: text/plain (§5.1.1), not SDP
            continue
        blank = _BLANK.search(part)
        if blank is None:
            return None
        headers = _part_headers(part[: blank.start()])
        kind = _media_type(headers.get("content-type", "text/plain"))
        if kind == SDP:
            sdp.append(part[blank.end() :])
        elif _HANDLING.search(headers.get("content-disposition", "")):
            return None  # a part we cannot use that the sender requires: 415 as for the whole body
    return sdp[0] if len(sdp) == 1 else None


def with_sdp_body(message: M) -> M:
    """``message`` with the SDP part of its multipart/mixed body as its body (and Content-Type); any
    other message as it is."""
    content_type = message.headers.get("Content-Type")
    if content_type is None or not message.body or _media_type(content_type) != "multipart/mixed":
        return message
    sdp = sdp_part(content_type, message.body)
    if sdp is None:
        return message
    # (Content-Length is the body's own length when the message is written: no header to change)
    return dataclasses.replace(message, headers=message.headers.replace("Content-Type", SDP), body=sdp)
