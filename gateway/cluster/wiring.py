"""`ClusterWiring`: the cluster's parts put into one gateway (gateway/app.py calls it when `cluster:` is set).

Order inside the gateway's start-up: the presence is built with the identity map (`presence`), the HTTP
routes get the session-owning offer service, the token revocations and the forwarding middleware
(`prepare_http`), the SIP user agent starts registering nobody (`ua_settings`), then `start` begins the
heartbeat, which takes the registration locks it can and registers those users. `close` runs after the
UA has unregistered: the locks and presence entries are given back, the instance's lease removed.
`drain` (SIGUSR1, `POST /cluster/drain`): no new calls, /readyz 503, the others stop routing here, the
sockets without a call (`/ws`, `/jsonrpc`, rooms, SIP over WebSocket) closed with 1012 at once (the
others once their last call ends: their clients reconnect through HAProxy to another instance;
gateway/ops/drain.py); it returns when the calls have ended or `cluster.drain_timeout` has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.cluster.errors import ClusterUnavailable
from gateway.cluster.live_calls import LiveCallLedger, alive
from gateway.cluster.node import ClusterNode, InstanceInfo
from gateway.cluster.peer_watch import PeerWatch
from gateway.cluster.presence import ClusterPresence
from gateway.cluster.presence_channel import PresenceChannel
from gateway.cluster.registrations import RegistrationOwnership
from gateway.cluster.revocations import RedisRevocations
from gateway.cluster.room_owners import RoomOwners
from gateway.cluster.routing import MARKER, ClusterRouting
from gateway.cluster.sessions import ClusterOfferApi, SessionOwners
from gateway.cluster.stores import CallRecordStream
from gateway.cluster.throttle import RedisLoginThrottle
from gateway.config.cluster import ClusterSection
from gateway.identity import IdentityError, SipAddress
from gateway.identity.throttle import LoginThrottle
from gateway.ops.drain import Drain
from gateway.ops.records import CallRecord, record_of
from gateway.signaling.cluster_http import ClusterHttp, RelayMark
from gateway.signaling.jsonrpc.endpoint import RPC_KEY
from gateway.signaling.jsonrpc.resume import DetachedPeers
from gateway.signaling.revocation import FileRevocations
from gateway.signaling.rooms.endpoint import ROOMS_KEY, RoomsContext
from gateway.signaling.service import OfferService
from gateway.signaling.session_loop import SOCKETS_KEY
from gateway.signaling.ws.endpoint import CONTEXT_KEY
from gateway.sip import UASettings, UserAgent
from gateway.websip.registrar import identities_of

if TYPE_CHECKING:
    from gateway.runtime import CallDriver
    from gateway.signaling.http import WebApp
    from gateway.signaling.sip_ws import SipWsEndpoint
    from gateway.websip.service import WebSipService

logger = logging.getLogger(__name__)

TAKEOVER_MARGIN = 3.0  # s beyond a lease and two heartbeats for a survivor's takeover (its re-INVITE)
TAKEOVER_POLL = 0.2  # s between looks for that survivor
SETTLE_MAX = 20.0  # s more it is waited for while a survivor's claim of the dead one's calls is under way
MAX_FLOW_IDENTITIES = 4  # a REGISTER's Contacts looked up for a relay (JsSIP and SIP.js send one)


class ClusterWiring:
    def __init__(
        self, settings: ClusterSection, driver: CallDriver, revoked_file: Path | None = None
    ) -> None:
        self.settings = settings
        self.node = ClusterNode(settings)
        self.presence = ClusterPresence(self.node)
        self.driver = driver
        # how long a dead instance's records (its sessions, the logins it carries) outlive it: until a
        # survivor has taken its calls over (runtime/continuity/takeover.py), requests for them wait
        self._takeover_wait = settings.lease + 2 * settings.heartbeat + TAKEOVER_MARGIN
        outlive = int(self._takeover_wait * 1000)
        self.owners = SessionOwners(self.node, driver.http_session_ids, outlive_ms=outlive)
        # the logins whose `/ws` calls wait here for their browser: a page's reconnect elsewhere is
        # relayed here (gateway/signaling/ws/relay.py)
        # (and the JSON-RPC peers that wait here for their client: attach_signaling)
        self._rpc_detached: DetachedPeers | None = None
        self.detached = SessionOwners(self.node, self._waiting_here, kind="detached")
        # ...and the logins whose calls here another instance would carry on if this one died: a page's
        # reconnect elsewhere is relayed here, or, once this instance is gone, to the survivor that took
        # its calls over (their record outlives this instance's lease until that is decided)
        self.carried = SessionOwners(self.node, driver.takeovers.families, kind="carried", outlive_ms=outlive)
        # ...and the WHIP resources here by user and destination: a client publishing again after this
        # instance died waits (503) for the survivor, where its call waits for it (signaling/whip/whip.py)
        self.whip_owners = SessionOwners(self.node, driver.whip_keys, kind="whip", outlive_ms=outlive)
        driver.takeovers.on_http_session = self._owned_here
        driver.reconnects.on_detached = self._detached_here
        self._claims: set[asyncio.Task[None]] = set()
        # revocations this instance knows, kept in the state directory (fail-closed: cluster/revocations.py)
        known = FileRevocations(revoked_file) if revoked_file is not None else None
        self.revocations = RedisRevocations(self.node, known)
        self.records = CallRecordStream(self.node)
        # this instance's live calls in Redis; a dead instance's recorded by a survivor (live_calls.py)
        # ...and carried on here when they can be (gateway/runtime/continuity/takeover.py)
        takeovers = driver.takeovers
        self.live_calls = LiveCallLedger(
            self.node, self._live_records, self._no_sink, takeovers.handovers, takeovers.take_over,
            some=(self._some_records, self._some_handovers),
        )  # fmt: skip
        driver.on_steady = self.live_calls.soon  # a call just answered: written now, not at the beat
        driver.on_gone = self.live_calls.ended  # ...and a call over: out of Redis now
        self.live_calls.after_soon.append(self.carried.refresh)  # ...and where its browser is relayed to
        self.live_calls.after_soon.append(self.whip_owners.refresh)
        self.node.add_refresher("live calls", self.live_calls.refresh, self.live_calls.leave)
        self.registrations: RegistrationOwnership | None = None
        self.throttle_store: RedisLoginThrottle | None = None
        self.presence_channel: PresenceChannel | None = None
        self.sip_flows: SessionOwners | None = None  # attach_web_sip
        self.rooms: RoomOwners | None = None  # attach_signaling, when rooms are served
        self._rooms_context: RoomsContext | None = None
        # the signed mark of the sockets this instance relays to another and of those relayed here
        self.relay_mark = RelayMark(
            self.node.id, settings.secret.reveal().encode("utf-8"), url=settings.advertise.http
        )
        self.drainer = Drain(driver)  # the gateway adds its sockets' closers (gateway/app.py)
        self.http: ClusterHttp | None = None
        self.peer_watch: PeerWatch | None = None  # prepare_http
        self.on_drained: Callable[[], None] | None = None
        self._drain: asyncio.Task[None] | None = None
        routing = ClusterRouting(self.node, self.presence)
        driver.inbound_redirect = routing.redirect
        driver.cluster_web_route = routing.web_route
        driver.cluster_route_tag = f";{MARKER}={self.node.id}"

    def _live_records(self) -> list[CallRecord]:
        return [r for r in map(record_of, self.driver.runtimes) if r is not None]

    def _some_handovers(self, only: Collection[str]) -> tuple[dict[str, str], set[str]]:
        takeovers = self.driver.takeovers
        handed = takeovers.handovers(only=only)
        return handed, takeovers.never_carried([c for c in only if c not in handed])

    def _some_records(self, only: Collection[str]) -> list[CallRecord]:
        runtimes = (r for r in self.driver.runtimes if r.call_id in only)
        return [r for r in map(record_of, runtimes) if r is not None]

    @staticmethod
    def _no_sink(record: CallRecord) -> None:
        logger.warning("call=%s a lost call's record has nowhere to go", record.call_id)

    def throttle(self, policy: LoginThrottle) -> RedisLoginThrottle:
        """Login throttling counted in Redis with `policy`'s parameters (the identity map's own)."""
        self.throttle_store = RedisLoginThrottle(self.node, policy)
        return self.throttle_store

    def _owned_here(self, key: str) -> None:
        """An HTTP session taken over here (takeover.py): say so in Redis now (the heartbeat renews it)."""
        self._spawn_claim(self.owners, key)

    def _detached_here(self, family: str) -> None:
        """A `/ws` call of login ``family`` waits here: say so in Redis now (the heartbeat renews it)."""
        self._spawn_claim(self.detached, family)

    def _spawn_claim(self, owners: SessionOwners, key: str) -> None:
        async def claim() -> None:
            with contextlib.suppress(ClusterUnavailable):  # the next heartbeat tries again
                await owners.claim(key)

        task = asyncio.get_running_loop().create_task(claim())
        self._claims.add(task)
        task.add_done_callback(self._claims.discard)

    def _waiting_here(self) -> frozenset[str]:
        """The `/ws` logins and JSON-RPC peers (`peer_family`) whose calls wait here for their browser."""
        rpc = self._rpc_detached.families() if self._rpc_detached is not None else frozenset()
        return self.driver.reconnects.families() | rpc

    async def relay_to(self, family: str, unreachable: str | None = None) -> str | None:
        """Where login ``family``'s calls are, when on another instance: its HTTP base URL. Calls that wait
        for the page (`detached`) first; else a call the page's old socket may still hold (`carried`: a
        network change, no FIN came), or, when that instance is dead (its lease lapsed, or its URL was
        ``unreachable``), the survivor that takes its calls over, waited for (`_taken_over`)."""
        if family in self._waiting_here():
            return None
        owner = await self.detached.owner(family) or await self.carried.owner(family)
        if owner is None or owner == self.node.id:
            return None
        peer = await self.node.instance(owner)
        if peer is None or peer.http == unreachable:  # dead: its calls go to a survivor, or nowhere
            owner = await self._taken_over(family, owner)
            if owner is None or owner == self.node.id:
                return None
            peer = await self.node.instance(owner)
        return peer.http if peer is not None and peer.http != unreachable else None

    async def _taken_over(self, family: str, dead: str) -> str | None:
        """The instance that takes over login ``family``'s calls from ``dead`` (None: this one, or none
        within a lease, two heartbeats and a re-INVITE's round trip, or while a survivor's claim of them
        is under way: `wait_for_survivor`)."""
        logger.info("a login of %s's calls: waiting for a survivor to take them over", dead)

        async def look() -> tuple[bool, str | None]:
            if family in self._waiting_here():
                return True, None  # here
            owner = await self.detached.owner(family)
            return (True, owner) if owner is not None and owner != dead else (False, None)

        return await wait_for_survivor(self._takeover_wait, look, lambda: self.live_calls.unsettled(dead))

    def attach_web_sip(self, web_sip: WebSipService, endpoint: SipWsEndpoint, path: str) -> None:
        """SIP over WebSocket: the browsers whose answered calls are here (their outbound instances, or
        Contacts: gateway/websip/flows.py) recorded in Redis, so that a library's new WebSocket that
        HAProxy sends to another instance is relayed here by its REGISTER (`sip_relay_to`)."""
        # (outliving a dead instance's lease until a survivor has taken its calls over, as `carried`)
        outlive = int(self._takeover_wait * 1000)
        owners = self.sip_flows = SessionOwners(
            self.node, web_sip.carried, kind="sipflow", outlive_ms=outlive
        )

        def held(known: frozenset[str]) -> None:  # its flow just closed: record it now, not at the beat
            for identity in known:
                self._spawn_claim(owners, identity)

        web_sip.on_held = held
        self.live_calls.after_soon.append(owners.refresh)  # a library's call just answered: its flow too
        endpoint.relay_to = self.sip_relay_to
        endpoint.relay_path = path
        endpoint.sockets.relay_marks = self.relay_mark

    async def sip_relay_to(self, first: bytes, unreachable: str | None = None) -> str | None:
        """The base URL of the live instance holding the calls of the browser whose flow's first message
        is ``first`` (a REGISTER: its Contacts' `+sip.instance` or URIs), or None (served here). When that
        instance is dead (its lease lapsed, or its URL was ``unreachable``), the survivor that takes its
        calls over, waited for (gateway/websip/takeover.py makes the library's session again there)."""
        known = sorted(identities_of(first))[:MAX_FLOW_IDENTITIES]  # (before any digest: a few lookups)
        owners = self.sip_flows
        if not known or owners is None:
            return None
        try:
            for identity in known:
                owner = await owners.owner(identity)
                if owner is None:
                    continue
                if owner == self.node.id:
                    return None
                peer = await self.node.instance(owner)
                if peer is None or peer.http == unreachable:
                    owner = await self._flow_taken_over(identity, owner)
                    if owner is None or owner == self.node.id:
                        return None
                    peer = await self.node.instance(owner)
                return peer.http if peer is not None and peer.http != unreachable else None
        except ClusterUnavailable:
            return None  # served here: a library registered is better than one refused
        return None

    async def _flow_taken_over(self, identity: str, dead: str) -> str | None:
        """The instance that takes over the calls of the browser known by ``identity`` from ``dead``
        (None: none within a lease, two heartbeats and a re-INVITE's round trip, or while a survivor's
        claim of them is under way)."""
        flows = self.sip_flows
        assert flows is not None
        logger.info("a SIP library of %s's calls: waiting for a survivor to take them over", dead)

        async def look() -> tuple[bool, str | None]:
            owner = await flows.owner(identity)
            return (True, owner) if owner is not None and owner != dead else (False, None)

        return await wait_for_survivor(self._takeover_wait, look, lambda: self.live_calls.unsettled(dead))

    def attach_signaling(self, app: WebApp) -> None:
        """After the signaling routes: their presence feed hears the other instances' transitions
        (presence_channel.py) and publishes this one's; a page's login whose calls wait on another
        instance is relayed there (ws/relay.py)."""
        app[CONTEXT_KEY] = dataclasses.replace(app[CONTEXT_KEY], relay_to=self.relay_to)
        app[SOCKETS_KEY].relay_marks = self.relay_mark  # /ws, /jsonrpc and rooms
        if ROOMS_KEY in app and app[ROOMS_KEY].settings.enabled:  # a room's peers meet on one instance
            rooms = app[ROOMS_KEY]
            registry = rooms.registry
            self._rooms_context = rooms
            self.rooms = RoomOwners(
                self.node, registry.rooms, lambda room: room not in registry.rooms() or len(registry.peers(room)) < 2,
                lambda: {room: {"peers": registry.peers(room), "owner": registry.owner(room)} for room in registry.rooms()},
            )  # fmt: skip
            rooms.place, rooms.elsewhere = self.rooms.place, self.rooms.elsewhere
            # a dead instance's room party is carried on where its room lives: here, or sent on there
            takeovers = self.driver.takeovers
            takeovers.room_home = self.rooms.place
            if self.http is not None:
                takeovers.forward = self.http.hand_over_or_unknown
                self.http.room_instance = self.rooms.lives_at  # a WHEP viewer watches where the room is
            self.driver.room_redirect = self._room_redirect
        # JSON-RPC peers alike (gateway/signaling/jsonrpc/resume.py), by `peer_family`
        app[RPC_KEY] = dataclasses.replace(app[RPC_KEY], relay_to=self.relay_to)
        self._rpc_detached = app[RPC_KEY].detached
        self._rpc_detached.on_detached = self._detached_here
        context = app[CONTEXT_KEY]
        feed = context.presence_feed
        if feed is None:
            return
        store = context.identity.store

        async def users() -> tuple[str, ...]:
            return tuple(u.id for u in await store.all_users())

        self.presence_channel = PresenceChannel(self.node, self.presence, feed.push, users)
        feed.relay = self.presence_channel

    def offer_service(self, local: OfferService) -> OfferService:
        return ClusterOfferApi(local, self.owners)

    async def _room_redirect(self, request_uri: str) -> str | None:
        """The Contact of the instance where the room of `request_uri`'s number lives, when another (the
        INVITE is answered 302 and the edge sends it there, tagged: never redirected twice); None: the
        number is no room's, or its room is here (taken for this instance when free)."""
        rooms, context = self.rooms, self._rooms_context
        if rooms is None or context is None or MARKER in request_uri or not context.settings.enabled:
            return None
        try:
            number = SipAddress.parse(request_uri).user
        except IdentityError:
            return None
        room_id = context.settings.room_for(number) if number else None
        sip = await rooms.sip_home(room_id) if room_id is not None else None
        user = (number or "").replace("#", "%23")  # (RFC 3261 §25.1: escaped in a URI's user part)
        return None if sip is None else f"sip:{user}@{sip};{MARKER}={self.node.id}"

    def prepare_http(self, app: WebApp) -> None:
        async def instance(instance_id: str) -> InstanceInfo | None:
            return await self.node.instance(instance_id)

        async def drain() -> None:
            self.start_drain()

        self.http = ClusterHttp(
            self.node.id,
            self.settings.secret.reveal().encode("utf-8"),
            self.owners,
            lambda: frozenset(self.driver.http_session_ids()),
            instance,
            drain,
            self.status,
            self.driver.takeovers.take_over_all,
            whip_owners=self.whip_owners,
            local_whips=lambda: frozenset(self.driver.whip_keys()),
        )
        self.http.moved = self.driver.takeovers.moved
        self.driver.takeovers.on_moving = self._tell_moved
        self.http.install(app)
        # a watch on every other instance: a dead process's calls carried on at once, not at its lease's
        # end (peer_watch.py)
        self.peer_watch = PeerWatch(self.node, self.http.watch, alive, self._dead_now)
        self.node.add_refresher("peer watch", self.peer_watch.refresh, self.peer_watch.close)

    async def _tell_moved(self, instance_id: str, call_ids: list[str]) -> None:
        """The drained instance that handed us `call_ids` stops carrying their media: their SIP parties
        move here now (make before break; a drained instance gone already needs no telling)."""
        try:
            info = await self.node.instance(instance_id)
        except ClusterUnavailable:  # (Redis away: it notices the SIP party gone quiet there instead)
            return
        if info is not None and self.http is not None:
            await self.http.tell_moved(info.http, call_ids)

    async def _dead_now(self, instance_id: str) -> None:
        """An instance found dead by its watch (and fenced): its calls claimed now, not at the next beat."""
        await self.live_calls.record_dead()

    @staticmethod
    def ua_settings(settings: UASettings) -> UASettings:
        return dataclasses.replace(settings, register_at_start=False)

    async def start(self, ua: UserAgent) -> None:
        aors = [str(spec.aor) for spec in ua.settings.registrations]
        self.registrations = RegistrationOwnership(self.node, ua.registrations, aors)
        await self.node.start()
        self.revocations.start()
        if self.presence_channel is not None:
            self.presence_channel.start()

    async def status(self) -> dict[str, object]:
        return {
            "draining": self.node.draining,
            "redis": "reachable" if self.node.available else "unreachable",
            "calls": self.driver.calls,
            "users": list(await self.presence.online_users()),
            "http_sessions": list(self.driver.http_session_ids()),
            "registrations": sorted(self.registrations.held) if self.registrations is not None else [],
        }

    def start_drain(self) -> None:
        """Begin draining once (later calls are no-ops); `on_drained` runs when it is over."""
        if self._drain is None:
            self._drain = asyncio.get_running_loop().create_task(self.drain(), name="cluster-drain")

    async def drain(self) -> None:
        await self.drainer.begin()  # first: the idle clients reconnect elsewhere at once
        await self.node.set_draining()
        with contextlib.suppress(ClusterUnavailable):
            await self.hand_off()
        left = await self.drainer.wait(self.settings.drain_timeout)
        await self.driver.takeovers.overlaps_done()  # the media of calls handed over, until they moved
        logger.info("drained: %d calls left, %d sockets closed", left, self.drainer.closed)
        if self.on_drained is not None:
            self.on_drained()

    async def hand_off(self) -> int:
        """A drain hands every call another instance can carry on (their handovers) to the live instances
        that are not draining, spread over them; each call one takes is released here (its page's socket,
        or its SIP library's flow, then closes as idle, and the client takes the call back there). How
        many were handed."""
        handovers = self.driver.takeovers.handovers()
        if not handovers or self.http is None:
            return 0
        peers = [
            info for instance_id, info in sorted((await self.node.instances()).items())
            if instance_id != self.node.id and not info.draining
        ]  # fmt: skip
        if not peers:
            logger.info("draining: no other instance to hand %d calls to", len(handovers))
            return 0
        shares: list[dict[str, str]] = [{} for _ in peers]
        for index, group in enumerate(together(handovers)):
            shares[index % len(peers)].update(group)
        taken = await asyncio.gather(
            *(
                self.http.hand_over(peer.http, share)
                for peer, share in zip(peers, shares, strict=True)
                if share
            )
        )
        handed = [call_id for ids in taken for call_id in ids]
        for call_id in handed:
            self.driver.takeovers.release(call_id)
        logger.info("draining: %d of %d calls handed to other instances", len(handed), len(handovers))
        return len(handed)

    async def close(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.cancel()
        if self.presence_channel is not None:
            await self.presence_channel.close()
        await self.revocations.close()
        await self.records.close()
        await self.node.close()


async def wait_for_survivor(
    wait: float,
    look: Callable[[], Awaitable[tuple[bool, str | None]]],
    under_way: Callable[[], Awaitable[bool]],
    *,
    settle: float = SETTLE_MAX,
    poll: float = TAKEOVER_POLL,
) -> str | None:
    """The instance `look` finds has taken a dead instance's calls over (`look`: (found, that instance;
    None for this one)), or None: looked for `wait` seconds, and on, up to `settle` more, while
    `under_way` says the dead instance's calls are not settled yet (a survivor's claim of them not
    finished): a takeover slower than a lease and two heartbeats (a loaded machine) is waited for,
    rather than the login served here without its calls and the page ending them."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:
        found, owner = await look()
        if found:
            return owner
        elapsed = loop.time() - start
        if elapsed >= wait + settle or (elapsed >= wait and not await under_way()):
            return None
        await asyncio.sleep(poll)


def together(handovers: Mapping[str, str]) -> list[dict[str, str]]:
    """A drain's handovers (call id -> JSON) in groups that go to one instance each: both ends of a
    web-to-web call's dialog (made its own by one instance), the calls of one login (a page reattaches
    them all where its login is served) and of one three-way conference (made again only where both its
    calls are), and so on transitively (a login with a web-to-web call and another call), in a stable
    order."""
    parent = {call_id: call_id for call_id in handovers}

    def root(call_id: str) -> str:
        while parent[call_id] != call_id:
            parent[call_id] = parent[parent[call_id]]
            call_id = parent[call_id]
        return call_id

    first: dict[str, str] = {}  # a key (login, pair, conference) -> the first call seen with it
    for call_id, line in sorted(handovers.items()):
        try:
            data = json.loads(line)
            merge = data.get("merge") or {}
            keys = [f"login:{data['family']}" if data.get("family") else "", f"pair:{data.get('pair') or ''}",
                    f"merge:{min(merge['call_ids'])}" if merge else ""]  # fmt: skip
        except (ValueError, AttributeError, KeyError, TypeError):
            keys = []  # (the taker refuses it, naming why)
        for key in keys:
            if key and key not in ("pair:",):
                other = first.setdefault(key, call_id)
                parent[root(call_id)] = root(other)
    groups: dict[str, dict[str, str]] = {}
    for call_id, line in sorted(handovers.items()):
        groups.setdefault(root(call_id), {})[call_id] = line
    return list(groups.values())
