"""The enums of a call: its state, which way it goes, its timers, who holds, how a user rejects."""

from __future__ import annotations

import enum


class CallState(enum.StrEnum):
    """The states of one call (see docs/calls.md for the diagram).

    idle       created, no event yet
    inviting   outbound: the browser dialed; the SIP offer is being made or the INVITE is out
    invited    inbound: the INVITE is ringing one or more web sessions
    early      the SIP dialog is early and media is being set up: outbound early media (18x with
               SDP), or inbound after a session answered, until WebRTC is up and 200 OK is sent
    connected  both legs up
    holding    connected, with hold in force from either side (or both)
    closing    the browser was told; waiting for the SIP leg to end (BYE done, CANCEL answered)
    closed     final: no event is accepted, no command is emitted
    """

    IDLE = "idle"
    INVITING = "inviting"
    INVITED = "invited"
    EARLY = "early"
    CONNECTED = "connected"
    HOLDING = "holding"
    CLOSING = "closing"
    CLOSED = "closed"


class CallDirection(enum.StrEnum):
    OUTBOUND = "outbound"  # browser -> SIP
    INBOUND = "inbound"  # SIP -> browser


class TimerName(enum.StrEnum):
    """The timers a call asks for with StartTimer/CancelTimer; they come back as TimerFired."""

    SETUP = "setup"  # outbound: dial until the PBX's first response ("PBX unreachable")
    RING = "ring"  # outbound: first 1xx until answer; inbound: ringing until a session answers
    ANSWER = "answer"  # inbound: a session answered until WebRTC is up and 200 OK goes out
    REINVITE_RETRY = "reinvite_retry"  # our re-INVITE got 491: wait, then retry (RFC 3261 §14.1)
    CLOSING = "closing"  # closing: give up waiting for the SIP leg to confirm the end
    REFER_WAIT = "refer_wait"  # the SIP party's REFER accepted: the browser must place the call by then
    WEB_REOFFER = "web_reoffer"  # the browser re-offered for the SIP party's re-INVITE: its answer by then
    RECONNECT = "reconnect"  # the browser (or its media) is gone: it may take the call back until then
    REPLACED = "replaced"  # an attended transfer replaced this consultation call: its far end ends it by then


class Side(enum.StrEnum):
    """Who put the call on hold (or resumed it)."""

    LOCAL = "local"  # the web user
    REMOTE = "remote"  # the SIP party


class RejectKind(enum.StrEnum):
    """How a web user turns down an incoming call."""

    BUSY = "busy"  # 486 Busy Here
    UNAVAILABLE = "unavailable"  # 480 Temporarily Unavailable (RFC 3261 §21.4.18)
    DECLINE = "decline"  # 603 Decline


class Reinvite(enum.Enum):
    """The one re-INVITE a connected call may have in progress (none when None): no glare from us."""

    PREPARING = "preparing"  # ours: waiting for the bridge's offer
    SENT = "sent"  # ours: waiting for the final response
    RETRY_WAIT = "retry_wait"  # ours got 491: waiting for REINVITE_RETRY (RFC 3261 §14.1)
    ANSWERING = "answering"  # theirs: waiting for the bridge's answer
    OFFERING = "offering"  # theirs had no offer: waiting for the bridge's offer for our 200
    ASKING_WEB = "asking_web"  # theirs changes the video: the browser was offered again, its answer awaited
    AWAITING_ACK = "awaiting_ack"  # our offer went in a 200 (theirs offerless, or the INVITE's): the
    # answer comes in the ACK
