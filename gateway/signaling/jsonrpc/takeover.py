"""A JSON-RPC peer made again on the instance that carries its calls on after theirs died (issue 34 item
3; runtime/continuity/takeover.py calls `adopt_peer` through the hook gateway/app.py sets).

The peer comes back under its session id (the id the call machine names), detached (resume.py), with the
call taken over as one of its answered calls and what it is told kept; its client's `announce` of the id
(here, or relayed here from another instance) resumes it, and its `offer {call_id, sdp}` from a new
RTCPeerConnection renews the call's media (renew.py), as after a lost network on one instance.
"""

from __future__ import annotations

import logging

from gateway.identity import WebUser
from gateway.signaling.api_auth import ApiPrincipal
from gateway.signaling.jsonrpc.context import RpcContext
from gateway.signaling.jsonrpc.peer import RpcPeer

__all__ = ["adopt_peer"]

logger = logging.getLogger(__name__)


async def _nowhere(text: str) -> None:
    """A peer made again has no socket until its client comes back (then told: `RpcPeer.flush`)."""


async def adopt_peer(context: RpcContext, user: WebUser, session_id: str, peer_id: str, call_id: str) -> bool:
    """Call ``call_id`` of ``user``'s peer ``peer_id`` taken over here: the peer made again, or, for its
    second call, the one made already (detached still, or resumed by its client meanwhile: the takeovers
    of a dead instance's calls run side by side). False when no peer may wait (no reconnect grace, the
    gateway stopping): the call is given up then."""
    made = context.detached.made.get(session_id)
    if isinstance(made, RpcPeer) and not made.closed:  # its second call (resumed meanwhile, or not)
        await made.take_over_call(peer_id, call_id)
        return True
    if not context.detached.accepting:
        return False
    peer = RpcPeer(context, _nowhere, ApiPrincipal(user, via="takeover"), session_id=session_id)
    context.detached.made[session_id] = peer
    await peer.take_over_call(peer_id, call_id)
    logger.info("JSON-RPC peer %r of %s made again here for call %s", peer_id, user.id, call_id)
    return True
