"""Several gateways sharing state in Redis (the `cluster:` section; docs/deploy.md).

`ClusterNode` (node.py) owns the Redis client and this instance's heartbeat; behind the store
interfaces the identity and signaling layers already have it puts Redis implementations: presence
(presence.py), HTTP-API/WHIP session ownership (sessions.py), token revocation (stores.py), PBX
registration ownership (registrations.py) and the call-record stream (stores.py). Routing between
instances: a call for a web user whose sessions are on another instance is redirected there (302, which
Kamailio follows: deploy/kamailio-cluster.cfg), an HTTP request for another instance's session is
forwarded to it (gateway/signaling/cluster_http.py), a page's `/ws` login whose calls wait on another
instance is relayed to it (gateway/signaling/ws/relay.py). Without the section nothing here is imported.
"""

from gateway.cluster.errors import ClusterUnavailable
from gateway.cluster.node import ClusterNode, InstanceInfo

__all__ = ["ClusterNode", "ClusterUnavailable", "InstanceInfo"]
