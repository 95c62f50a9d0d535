"""What every JSON-RPC peer of a gateway shares (peer.py): the call service, credentials, presence,
ICE servers, limits and clock, the peers calling each other (relay.py), the peers waiting for a new
socket (resume.py) and, in a cluster, where a peer waiting elsewhere is (gateway/cluster/wiring.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from gateway.signaling.api_auth import ApiCredentials
from gateway.signaling.jsonrpc.relay import PeerDirectory
from gateway.signaling.jsonrpc.resume import DetachedPeers
from gateway.signaling.limits import SignalingLimits
from gateway.signaling.service import CallService
from gateway.signaling.turn_rest import IceServers
from gateway.signaling.ws.connection import PresenceRegistry

__all__ = ["RpcContext"]


@dataclass(frozen=True, slots=True)
class RpcContext:
    calls: CallService
    credentials: ApiCredentials
    presence: PresenceRegistry
    ice_servers: IceServers
    limits: SignalingLimits
    monotonic: Callable[[], float]
    directory: PeerDirectory = field(default_factory=PeerDirectory)  # peers calling peers (relay.py)
    detached: DetachedPeers = field(default_factory=DetachedPeers)  # peers whose socket went (resume.py)
    # a cluster's: (peer_family, the URL found unreachable just before or None) -> the instance where that
    # peer waits or whose calls it carried, to relay the announcing socket to (None: here, or nowhere)
    relay_to: Callable[[str, str | None], Awaitable[str | None]] | None = None
