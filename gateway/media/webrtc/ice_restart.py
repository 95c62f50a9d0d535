"""An ICE restart done in place on aioice's ``Connection`` (aioice 0.13), keeping DTLS and SRTP.

aiortc 1.16 has no ICE restart: ``RTCIceTransport.start()`` runs once, and the DTLS transport reads and
writes through that one aioice ``Connection`` (``RTCIceTransport._recv``/``_send``), so replacing the
connection would end DTLS. This module restarts ICE *inside* the same ``Connection`` instead, for the
agent that answers the restart (the client's offer restarts ICE: a WHIP PATCH, a re-offer of the same
RTCPeerConnection; the offerer controls, RFC 8445 §6.1.1, and libwebrtc re-determines the roles at each
restart its offer starts, so a gateway that offered the call first becomes the controlled agent then;
a peer that does not is brought round by the role-conflict repair, RFC 8445 §7.3.1.1):

* ``restart(remote)``: new local credentials (RFC 8445 §9: a restart changes ufrag and pwd, RFC 8839
  §4.4.1.1.1), the remote's new ones set, and the check list and remote candidates emptied (RFC 8445
  §9: checks start anew, "as if" a new session). The local candidates are kept (§9 allows it): the
  same sockets, so the DTLS transport's reading loop and the fast lane's web socket stay valid.
* The selected pair stays in ``Connection._nominated`` until a new one is nominated: media keeps
  flowing on it during the restart (RFC 8445 §9), and ``sendto`` never finds it empty (aiortc's RTP
  loops stop on the ``ConnectionError`` it would raise).
* The client's checks with the new credentials reach aioice's own ``check_incoming`` (its learning of
  peer-reflexive candidates and triggered checks, RFC 8445 §7.3.1.3-7.3.1.4, run as for the first
  session, since the check list of ``connect()`` is long done): when the client nominates a pair
  (USE-CANDIDATE, §7.3.1.5) and our triggered check on it succeeded, ``check_complete`` puts it in
  ``_nominated`` and ``sendto`` (and the DTLS transport above it) uses it from then on. A wrapped
  ``check_complete`` reports that pair to ``on_selected``.
* It reports every later change of the nominated pair too, restart or not: the controlling browser may
  nominate another pair at any time (RFC 8445 §8.1.1; Chromium switches its selected pair when a check of
  another candidate succeeds late, e.g. an IPv6 one after an IPv4 one), which aioice takes
  (``check_incoming``, ``check_complete``): media goes on that pair, maybe on another of our sockets.
  The web leg makes this object as soon as it connects, so that no renomination goes unreported.
* Until then the client's checks with the *previous* credentials (its consent freshness on the old
  pair, RFC 7675 §5.1, while it has not applied our answer yet) are answered with the previous
  credentials (a wrapped ``request_received``), so the old path is not cut before the new one works.
* Consent freshness (RFC 7675) goes on in aioice's ``query_consent`` task, which builds each check from
  the connection's current credentials, on the selected pair. While a restart is pending, the old
  pair's ``protocol`` is a ``_PreviousSession`` wrapper whose ``request()`` signs with the previous
  credentials (the client answers the old pair's checks with those until it moves); once the new pair
  is nominated, consent checks it with the new ones. Its other attributes are the real protocol's
  (``transport``: the fast lane and the direct sender write to the same socket).

Only ``restart()``, the two wrappers and ``_selected`` touch aioice internals; ``check_internals()`` runs at
construction and raises ``HookError`` when an aioice upgrade removed one of them
(``tests/media/webrtc/test_ice_restart.py`` checks the behaviour with two real aioice connections).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import aioice
import aioice.ice
import aioice.stun
from aioice import Connection
from aioice.utils import random_string

from gateway.media.errors import MediaError
from gateway.media.webrtc.aiortc_hooks import HookError

logger = logging.getLogger(__name__)

SUPPORTED_AIOICE: Final = "0.13."
# what restart() and the wrappers read or replace on a Connection (aioice 0.13)
_INTERNALS: Final = (
    "_check_list",
    "_remote_candidates",
    "_remote_candidates_end",
    "_nominated",
    "_nominating",
    "_local_username",
    "_local_password",
    "_early_checks_done",
    "_check_list_done",
    "_closing",
    "check_complete",
    "request_received",
    "ice_controlling",
    "switch_role",
)
_ICE_CHARS = re.compile(r"[A-Za-z0-9+/]+\Z")
UFRAG_CHARS: Final = 16  # RFC 8445 §5.3: at least 24 bits of randomness; 16 of 62 characters is ~95
PWD_CHARS: Final = 32  # at least 128 bits: 32 of 62 characters is ~190


class RestartRefused(MediaError):
    """This connection cannot restart ICE now (not connected yet, closing, bad credentials)."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """One ICE session's two credential pairs (RFC 8839 §5.4: ufrag 4-256, pwd 22-256 ice-chars)."""

    local_ufrag: str
    local_pwd: str
    remote_ufrag: str
    remote_pwd: str

    def __post_init__(self) -> None:
        for name, value, low in (
            ("local_ufrag", self.local_ufrag, 4),
            ("local_pwd", self.local_pwd, 22),
            ("remote_ufrag", self.remote_ufrag, 4),
            ("remote_pwd", self.remote_pwd, 22),
        ):
            if not (low <= len(value) <= 256 and _ICE_CHARS.match(value)):
                raise RestartRefused(f"{name} must be {low}-256 ice-chars (RFC 8839 §5.4): {value[:64]!r}")


def check_internals(connection: object) -> None:
    """Raise ``HookError`` unless ``connection`` is an aioice 0.13 ``Connection`` with every internal used."""
    if not aioice.__version__.startswith(SUPPORTED_AIOICE):
        raise HookError(
            f"ICE restart in place is written for aioice {SUPPORTED_AIOICE}x, not {aioice.__version__}"
        )
    if not isinstance(connection, Connection):
        raise HookError(f"not an aioice Connection: {type(connection).__name__}")
    missing = [name for name in _INTERNALS if not hasattr(connection, name)]
    if missing:
        raise HookError(f"aioice Connection lost {', '.join(missing)}: ICE restart in place is unsound")


class InPlaceRestart:
    """ICE restarts of one aioice ``Connection`` (module note); one object per connection.

    ``on_selected(pair)`` is called whenever another pair is nominated (a restart's new pair, or a
    renomination at any time: the remote address or local socket of the media changed, or at least its
    credentials): the fast lane re-reads the pair from there.
    ``ice_transport``: aiortc's ``RTCIceTransport`` of the connection, whose own end-of-candidates flag
    (``iceGatherer._remote_candidates_end``) must be cleared too, so that new trickled candidates and a
    new end-of-candidates reach aioice.
    """

    def __init__(
        self,
        connection: Connection,
        on_selected: Callable[[Any], None],
        *,
        ice_transport: object | None = None,
        label: str = "-",
    ) -> None:
        check_internals(connection)
        self._connection = connection
        self._ice_transport = ice_transport
        self._on_selected = on_selected
        self._label = label
        self._previous: Credentials | None = None  # answered until the new pair is nominated
        self._old_pair: Any = None  # the pair media used when the pending restart began
        self._reported: Any = _selected(connection)  # the pair media is on, as last reported
        self.restarts = 0
        self.completed = 0
        original_request: Callable[..., None] = connection.request_received
        original_complete: Callable[[Any], None] = connection.check_complete

        def request_received(message: aioice.stun.Message, addr: tuple[str, int], protocol: Any) -> None:
            if not self._answer_previous(message, addr, protocol):
                original_request(message, addr, protocol)

        def check_complete(pair: Any) -> None:
            original_complete(pair)
            self._maybe_selected()

        connection.request_received = request_received  # type: ignore[method-assign]
        connection.check_complete = check_complete  # type: ignore[method-assign]

    @property
    def pending(self) -> bool:
        """A restart began and no new pair is nominated yet."""
        return self._previous is not None

    def credentials(self) -> Credentials:
        c = self._connection
        return Credentials(
            c.local_username, c.local_password, c.remote_username or "", c.remote_password or ""
        )

    def restart(self, remote_ufrag: str, remote_pwd: str) -> Credentials:
        """Restart ICE with the remote's new credentials; returns the new credentials of both sides."""
        c = self._connection
        if c._closing:
            raise RestartRefused("the ICE connection is closing")
        if not c._early_checks_done or not c._check_list_done or not c._nominated:
            raise RestartRefused("ICE has not connected yet: there is no session to restart")
        if remote_ufrag == c.remote_username:
            raise RestartRefused("an ICE restart needs a new ice-ufrag (RFC 8839 §4.4.1.1.1)")
        new = Credentials(random_string(UFRAG_CHARS), random_string(PWD_CHARS), remote_ufrag, remote_pwd)
        if c.ice_controlling:  # we offered first; the restart's offerer controls the new session
            c.switch_role(ice_controlling=False)
        if self._previous is None:  # a restart of a restart keeps answering the pair media still uses
            self._previous = self.credentials()
            self._old_pair = c._nominated.get(min(c._nominated))
            if self._old_pair is not None:
                self._old_pair.protocol = _PreviousSession(self._old_pair.protocol, self._previous)
        for pair in c._check_list:  # RFC 8445 §9: the old session's checks are abandoned
            if pair.task is not None:
                pair.task.cancel()
        c._check_list = []
        c._remote_candidates = []
        c._remote_candidates_end = False
        c._nominating.clear()
        c._local_username, c._local_password = new.local_ufrag, new.local_pwd
        c.remote_username, c.remote_password = new.remote_ufrag, new.remote_pwd
        gatherer = getattr(self._ice_transport, "iceGatherer", None)
        if gatherer is not None:
            if not hasattr(gatherer, "_remote_candidates_end"):
                raise HookError("aiortc RTCIceGatherer._remote_candidates_end is gone")
            gatherer._remote_candidates_end = False
        self.restarts += 1
        logger.info(
            "%s ICE restart %d: local ufrag %s, remote ufrag %s; media stays on %s until a new pair",
            self._label, self.restarts, new.local_ufrag, new.remote_ufrag, self._old_pair,
        )  # fmt: skip
        return new

    def _maybe_selected(self) -> None:
        """Report the nominated pair (component 1) when it is another than the one last reported."""
        pair = _selected(self._connection)
        if pair is None or pair is self._reported:  # a restart's old pair is the one reported last
            return
        reported, self._reported = self._reported, pair
        if self._previous is None and _same_path(pair, reported):
            return  # another pair object on the same socket and address (aioice's aggressive nomination)
        if self._previous is None:
            host, port = pair.remote_addr[:2]
            logger.info("%s ICE renomination: media on %s, to %s:%s", self._label, pair, host, port)
        else:
            old = self._old_pair
            if old is not None and isinstance(old.protocol, _PreviousSession):
                old.protocol = old.protocol.protocol
            self._previous, self._old_pair = None, None
            self.completed += 1
            logger.info("%s ICE restart %d done: media on %s", self._label, self.restarts, pair)
        self._on_selected(pair)

    def _answer_previous(self, message: aioice.stun.Message, addr: tuple[str, int], protocol: Any) -> bool:
        """Answer a check made with the previous credentials (RFC 8489 §9.1.3 with that pwd); True if so."""
        previous = self._previous
        if previous is None or message.message_method != aioice.stun.Method.BINDING:
            return False
        username = message.attributes.get("USERNAME")
        if (
            username != f"{previous.local_ufrag}:{previous.remote_ufrag}"
            or "MESSAGE-INTEGRITY" not in message.attributes
        ):
            return False
        key = previous.local_pwd.encode("utf8")
        if not message.check_message_integrity(key):
            return False
        response = aioice.stun.Message(
            message_method=aioice.stun.Method.BINDING,
            message_class=aioice.stun.Class.RESPONSE,
            transaction_id=message.transaction_id,
        )
        response.attributes["XOR-MAPPED-ADDRESS"] = addr
        response.add_message_integrity(key)
        protocol.send_stun(response, addr)
        return True


def _same_path(pair: Any, other: Any) -> bool:
    """Whether two pairs carry media on the same socket to the same address (nothing to follow)."""
    return other is not None and pair.protocol is other.protocol and pair.remote_addr == other.remote_addr


def _selected(connection: Connection) -> Any:
    """The nominated pair of component 1 (RTP; rtcp-mux: the only one), None before ICE connected."""
    return connection._nominated.get(1)


class _PreviousSession:
    """The old pair's ``StunProtocol`` while a restart is pending: its consent checks (RFC 7675 §5.1)
    carry the previous credentials; everything else is the real protocol's."""

    def __init__(self, protocol: Any, previous: Credentials) -> None:
        self.protocol, self._previous = protocol, previous

    def __getattr__(self, name: str) -> Any:
        return getattr(self.protocol, name)

    async def request(
        self,
        request: aioice.stun.Message,
        addr: tuple[str, int],
        integrity_key: bytes | None = None,
        retransmissions: int | None = None,
    ) -> tuple[aioice.stun.Message, tuple[str, int]]:
        previous = self._previous
        request.attributes["USERNAME"] = f"{previous.remote_ufrag}:{previous.local_ufrag}"
        result: tuple[aioice.stun.Message, tuple[str, int]] = await self.protocol.request(
            request, addr, integrity_key=previous.remote_pwd.encode("utf8"), retransmissions=retransmissions
        )
        return result


# --- the role of a leg that answers a browser keeping its ICE session --------------------------------
#
# A browser that keeps an ICE session in which it was the controlled agent (a SIP library answering our
# re-INVITE without an offer after a takeover or a drain: its RTCPeerConnection offers its unchanged
# ufrag, and libwebrtc re-determines its role only when its own credentials change) meets the new web
# leg, which answers as controlled too: a role conflict (RFC 8445 §7.3.1.1). `take_control_in_conflicts`
# settles it for us every time (the highest tie-breaker): the browser answers our first check 487 and
# stays controlled, as it was. We then nominate (aggressively, aioice's way), but those checks reach the
# browser before our answer does (it goes in the ACK, through the library): it answers them, yet keeps
# sending on its old pair, also nominated. So once it has a nominated pair, a leg that took control
# nominates again, RENOMINATIONS times every RENOMINATION_EVERY s, each with a higher NOMINATION value
# (0xC001, libwebrtc's renomination, which a controlled libwebrtc agent honours whether or not it asked
# for it): a controlled agent prefers the pair nominated last, and switches to ours once it can check it.
# Left to the tie-breakers, one run in two the browser took control and kept its old pair a second more
# (libwebrtc's receiving switching delay), and otherwise it kept it until the old instance went silent.

NOMINATION: Final = 0xC001  # libwebrtc's STUN_ATTR_NOMINATION (draft-thatcher-ice-renomination)
RENOMINATIONS: Final = 15
RENOMINATION_EVERY: Final = 0.1  # s: the browser's answer comes through the library within a second
_HIGHEST_TIE_BREAKER: Final = (1 << 64) - 1


def _register_nomination() -> None:
    """aioice's STUN codec learns the NOMINATION attribute (an unsigned 32-bit value)."""
    if NOMINATION in aioice.stun.ATTRIBUTES_BY_TYPE:
        return
    entry = (NOMINATION, "NOMINATION", aioice.stun.pack_unsigned, aioice.stun.unpack_unsigned)
    aioice.stun.ATTRIBUTES_BY_TYPE[NOMINATION] = entry
    aioice.stun.ATTRIBUTES_BY_NAME["NOMINATION"] = entry


def take_control_in_conflicts(connection: Connection, spawn: Callable[[Any], Any]) -> None:
    """``connection`` (a leg that answers) wins every role conflict, and a leg that took control that way
    renominates its pair until the browser follows (see the note above). ``spawn`` runs a coroutine."""
    if not isinstance(getattr(connection, "_tie_breaker", None), int):
        raise HookError("Connection._tie_breaker is gone")
    _register_nomination()
    connection._tie_breaker = _HIGHEST_TIE_BREAKER
    switch = connection.switch_role

    taken: list[bool] = []  # control taken once: one renominating task

    def switch_role(ice_controlling: bool) -> None:
        switch(ice_controlling)
        if ice_controlling and not taken:
            taken.append(True)
            logger.info("ICE role conflict: we control the browser's session, renominating")
            spawn(_renominate(connection))

    connection.switch_role = switch_role  # type: ignore[method-assign]


async def _renominate(connection: Connection) -> None:
    for _ in range(round(5 / RENOMINATION_EVERY)):  # a pair nominated within 5 s, else ICE failed
        if _selected(connection) is not None or connection._closing:
            break
        await asyncio.sleep(RENOMINATION_EVERY)
    for value in range(2, 2 + RENOMINATIONS):
        pair = _selected(connection)
        if pair is None or connection._closing or not connection.ice_controlling:
            return
        request = connection.build_request(pair, nominate=True)
        request.attributes["NOMINATION"] = value
        key = (connection.remote_password or "").encode("utf8")
        with contextlib.suppress(aioice.stun.TransactionError, asyncio.TimeoutError, OSError):
            await asyncio.wait_for(
                pair.protocol.request(request, pair.remote_addr, integrity_key=key, retransmissions=0),
                RENOMINATION_EVERY,
            )
            await asyncio.sleep(RENOMINATION_EVERY)  # (a lost one timed out: its wait was the pause)
