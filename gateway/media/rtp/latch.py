"""Symmetric RTP with latching (RFC 4961): which source address to accept and answer to. Sans-I/O."""

from __future__ import annotations

import enum
import logging

__all__ = ["RELATCH_PACKETS", "Address", "LatchState", "SymmetricLatch"]

logger = logging.getLogger(__name__)

Address = tuple[str, int]

# A far end whose RTP comes from a new address (NAT rebinding, an SBC or PBX failing over) is followed
# once this many packets in a row came from there and none from the old one: a stranger cannot take
# the stream over while the real source still sends. The SIP leg's audio and its video ports use it.
RELATCH_PACKETS = 10


class LatchState(enum.Enum):
    UNLATCHED = "unlatched"
    LATCHED = "latched"


class SymmetricLatch:
    """Which source address to accept and answer to (RFC 4961 symmetric RTP with latching), sans-I/O."""

    __slots__ = ("_address", "_candidate", "_count", "_state", "name", "relatch_after")

    def __init__(self, name: str, relatch_after: int = 0) -> None:
        self.name = name
        self.relatch_after = relatch_after
        self._state = LatchState.UNLATCHED
        self._address: Address | None = None
        self._candidate: Address | None = None
        self._count = 0

    @property
    def state(self) -> LatchState:
        return self._state

    @property
    def address(self) -> Address | None:
        return self._address

    def reset(self) -> None:
        self._address, self._candidate, self._count = None, None, 0
        self._set_state(LatchState.UNLATCHED)

    def accept(self, source: Address, latchable: bool) -> bool:
        """Whether a packet from ``source`` is accepted; may latch or re-latch to it."""
        if self._state is LatchState.UNLATCHED:
            if latchable:
                self._latch(source)
            return latchable
        if source == self._address:
            self._candidate, self._count = None, 0
            return True
        if not latchable or self.relatch_after <= 0:
            return False
        if source == self._candidate:
            self._count += 1
        else:
            self._candidate, self._count = source, 1
        if self._count < self.relatch_after:
            return False
        self._latch(source)
        return True

    def _latch(self, source: Address) -> None:
        # the first latch is a detail of every call (DEBUG); a far end that moves mid-call is news (INFO)
        level = logging.DEBUG if self._address is None else logging.INFO
        logger.log(level, "%s latched to %s:%d (was %s)", self.name, source[0], source[1], self._address)
        self._address, self._candidate, self._count = source, None, 0
        self._set_state(LatchState.LATCHED)

    def _set_state(self, state: LatchState) -> None:
        if state is not self._state:
            logger.debug("%s latch %s -> %s", self.name, self._state.value, state.value)
            self._state = state
