"""The one place that wires the gateway's parts together and owns start-up and graceful shutdown.

Start-up order: the identity map and presence, the RTP port allocator, the fast lane's engine pool
(native media threads, when built and `media.fast_path` is on), the call driver (gateway/runtime)
over one CallRegistry; HTTP (health, the softphone page, WebSocket signaling and
the HTTP offer/answer API, served by the driver); then the SIP user agent (transports,
registrations of the users with PBX credentials), whose incoming calls go to the driver.
Shutdown runs the list backwards: the driver stops accepting calls and ends every call (BYE,
CANCEL, 480) and closes the bridges; the UA unregisters and closes; HTTP closes; the fast lane's
engines stop last.
`close()` is idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from gateway.calls import CallRegistry, CallSettings
from gateway.config import Config
from gateway.fd_reserve import FdReserve
from gateway.identity import InMemoryPresence, WebUser
from gateway.identity.lookup import IdentityMap, identity_map_from_config
from gateway.media import fastlane
from gateway.media.bridge_settings import BridgeSettings, settings_from_config
from gateway.media.codecs import g729, opus_settings
from gateway.media.errors import MediaError
from gateway.media.rtp.dtls_srtp import DtlsCertificates
from gateway.media.rtp.ports import PortRange, RtpPortAllocator
from gateway.media.warmup import warm_up
from gateway.media.webrtc import aiortc_hooks, ice_consent, ice_ports
from gateway.media.webrtc.ahead.peer_pool import PeerPool
from gateway.media.webrtc.ice_pool import IcePool
from gateway.media.webrtc.webrtc_leg import WebLegOptions
from gateway.ops import logctx
from gateway.ops.drain import Drain
from gateway.ops.gc_tuning import GcTuning
from gateway.ops.records import CallRecord
from gateway.ops.wiring import Operations
from gateway.reload import reload_config
from gateway.runtime import CallDriver, OfferApi, loopback_bridge_settings
from gateway.runtime.admin_calls import AdminCalls
from gateway.runtime.audio_streams.service import AudioStreams
from gateway.runtime.continuity.handover import RpcIds
from gateway.runtime.lamps import start_lamps
from gateway.runtime.playback import CallPlaybackService
from gateway.runtime.rooms import RoomMediaService
from gateway.signaling.admin.api import add_admin_routes
from gateway.signaling.admin.cluster import AdminFanOut
from gateway.signaling.audio_stream.routes import add_audio_stream_routes
from gateway.signaling.gate import HttpLimits
from gateway.signaling.http import HealthSource, HttpServer, build_app, build_websocket_app
from gateway.signaling.jsonrpc.endpoint import RPC_KEY
from gateway.signaling.jsonrpc.takeover import adopt_peer
from gateway.signaling.routes import add_signaling_routes, origins_for
from gateway.signaling.session_loop import SOCKETS_KEY
from gateway.signaling.sip_ws import SipWsEndpoint
from gateway.signaling.ws.connection import PresenceRegistry
from gateway.sip import UASettings, UserAgent, registrations_for_users
from gateway.sip.transport_ws import WsTransport
from gateway.state_dir import StateDir
from gateway.tls import ServerTls
from gateway.websip import WebSipService
from gateway.websip import takeover as web_sip_takeover

if TYPE_CHECKING:
    from gateway.cluster.wiring import ClusterWiring

logger = logging.getLogger(__name__)

# Shutdown (SIGTERM, Ctrl-C): seconds to end the calls and unregister, so the process exits within 2 s;
# UA_RESERVE of it is kept for unregistering after the calls' BYEs.
SHUTDOWN_TIMEOUT: Final = 1.5
UA_RESERVE: Final = 0.3
HOST_ADDRESSES_TTL: Final = 60.0  # seconds an enumeration of the host's interfaces serves ICE gathering


class Gateway:
    def __init__(self, config: Config, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._settings_made: tuple[Config, BridgeSettings] | None = None  # _bridge_settings
        self._clock = clock
        self._started_at = clock()
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self._closed = False
        self._deadline: float | None = None  # loop time by which close() must be done
        self.http: HttpServer | None = None
        self.tls: ServerTls | None = None  # HTTPS/WSS (http.tls)
        self.sip: UserAgent | None = None
        self.sip_ws: WsTransport | None = None  # SIP over WebSocket (sip.websocket)
        self.sip_ws_endpoint: SipWsEndpoint | None = None  # its upgrades, on the shared session loop
        self.web_sip: WebSipService | None = None
        self.sip_ws_http: HttpServer | None = None  # sip.websocket.listen: SIP over WebSocket's own port
        self.fd_reserve: FdReserve | None = None  # descriptors signaling may never take (start())
        self.state = StateDir.open(Path(config.state_dir))  # session key, revoked tokens
        self.cluster: ClusterWiring | None = None  # several gateways sharing state (gateway/cluster/)
        self.presence: PresenceRegistry = InMemoryPresence()
        ports = config.media.rtp_ports
        self.ports = RtpPortAllocator(PortRange(ports.start, ports.end))
        web = config.media.web_ports  # the web legs' ICE sockets: their own range, else self.ports
        self.web_ports = RtpPortAllocator(PortRange(web.start, web.end)) if web is not None else None
        # the web legs' ICE sockets bound ahead of their calls, from that range (issue 64 item 1)
        self.ice_pool = IcePool(self.web_ports or self.ports)
        self.peer_pool = PeerPool()  # ...and their peer connections made ahead (issue 64 item 2)
        self.fast_lane = (
            fastlane.EnginePool(coalesce=config.media.fast_path_coalesce_ms / 1000)
            if config.media.fast_path and fastlane.available()
            else None
        )
        opus_settings.configure(  # transcoding G.711 -> Opus, both paths (gateway/media/codecs/opus_settings.py)
            opus_settings.OpusEncoderSettings.from_mode(
                config.media.opus_complexity, config.media.opus_inband_fec.value
            )
        )
        self.dtls_certificates = DtlsCertificates()  # DTLS-SRTP toward SIP peers: one certificate
        logctx.install_record_factory()  # call ids on every log line of a call (gateway/ops/logctx.py)
        self.identities: IdentityMap = identity_map_from_config(config, self.presence)
        self.driver = CallDriver(
            CallRegistry(
                # G729 in codecs.sip only when libbcg729 loads (gateway/media/codecs/g729.py)
                CallSettings.from_config(
                    config, sip_codecs=g729.usable_sip_codecs([c.value for c in config.codecs.sip])
                ),
                new_call_id=logctx.new_call_id,
                port_pairs=self.ports.held_by,
            ),
            self.identities,
            self._bridge_settings,
            config,
        )
        self.drainer = Drain(self.driver)  # SIGUSR1 alone; a cluster's own (which also exits when done)
        self._drain: asyncio.Task[int] | None = None
        if config.cluster is not None:
            from gateway.cluster.wiring import ClusterWiring

            self.cluster = ClusterWiring(config.cluster, self.driver, self.state.revocations_file)
            self.drainer = self.cluster.drainer
            self.presence = self.identities.presence = self.cluster.presence
            self.identities.shared_throttle = self.cluster.throttle(self.identities.throttle)
        # SIP parties in rooms: the gateway's own peer and the mix (gateway/runtime/rooms/)
        self.room_media = RoomMediaService(self.driver, config.rooms, self._room_leg_options)
        takeovers = self.driver.takeovers  # a room's SIP party outlives its instance (issue 34)
        takeovers.room_party_of, takeovers.room_user = self.room_media.party_of, self.room_media.room_user
        if config.rooms.enabled:  # (else a room's party handed here is refused before its re-INVITE)
            takeovers.on_room_party = self.room_media.adopt_party
            takeovers.room_party_back = self.room_media.party_back
        # WHEP players of calls' far ends (gateway/runtime/playback.py)
        self.call_playback = CallPlaybackService(self.driver, self._room_leg_options)
        self.ops = Operations(self)  # /metrics, /readyz, call records (docs/operations.md)
        if self.cluster is not None:
            self.ops.record_sinks.append(self.cluster.records.write)
            self.cluster.live_calls.write = self.ops.foreign_record  # a dead instance's calls
        # live audio of calls to apps over WebSockets (gateway/runtime/audio_streams/): hears the calls
        # answered and ended after the ops do
        node = self.cluster.node.id if self.cluster is not None else None
        self.audio_streams = AudioStreams(config.audio_stream, self.driver, instance=node)
        self.audio_streams.attach()

    def _bridge_settings(self, call_id: str) -> BridgeSettings:
        """One call's media settings. RTP binds to the SIP listen hosts (per address family); a gateway
        on loopback serves browsers on this machine only, so its web legs gather 127.0.0.1. Made once
        per config (a reload makes a new one) and given each call's id: ~0.2 ms of every call's setup."""
        made = self._settings_made
        if made is None or made[0] is not self.config:
            settings = settings_from_config(
                self.config,
                self.ports,
                call_id="",
                fast_lane=self.fast_lane,
                dtls_certificates=self.dtls_certificates,
                web_allocator=self.ice_pool,  # in front of self.web_ports, else self.ports
                peer_pool=self.peer_pool,
            )
            if _is_loopback(settings.bind_host):
                settings = loopback_bridge_settings(settings)
            made = self._settings_made = (self.config, settings)
        return dataclasses.replace(made[1], call_id=call_id)

    def _room_leg_options(self) -> WebLegOptions:
        """The WebRTC options of the room conferences' legs: those of a call's web leg."""
        settings = self._bridge_settings("room")
        return WebLegOptions(
            ice_servers=settings.ice_servers,
            include_loopback=settings.include_loopback,
            host_addresses=settings.host_addresses,
            ice_timeout=settings.ice_timeout,
            ports=settings.web_allocator or settings.allocator,
        )

    def _prime_ice_pool(self) -> None:
        """Bind the first calls' ICE sockets on the addresses web legs gather on, and keep the pool
        topped up (gateway/media/webrtc/ice_pool.py); given back last at close."""
        try:
            options = self._room_leg_options()
        except MediaError:  # a config no call can use (a wildcard without public_address): calls say so
            return
        self.ice_pool.prime(ice_ports.gathered_hosts(options.host_addresses, options.include_loopback))
        self.ice_pool.start()
        self._closers.append(self.ice_pool.close)
        self._closers.append(self.peer_pool.close)

    def _http_limits(self) -> HttpLimits:
        limits = self.config.connections
        return HttpLimits(
            max_connections=limits.http_max_connections,
            max_connections_per_ip=limits.http_max_connections_per_ip,
            max_waiting_per_ip=limits.http_max_waiting_per_ip,
            max_handshakes_per_ip=limits.tls_max_handshakes_per_ip,
            max_handshakes=limits.tls_max_handshakes,
            proxies=self.config.http.trusted_proxies,  # every browser behind them comes from their address
            handshake_timeout=limits.tls_handshake_timeout,
            header_timeout=limits.http_header_timeout,
            keepalive_timeout=limits.http_keepalive_timeout,
            body_timeout=limits.http_body_timeout,
        )

    async def start(self) -> None:
        # RLIMIT_NOFILE raised, connections.fd_reserve of it kept for media (gateway/fd_reserve.py)
        self.fd_reserve = FdReserve.at_start(self.config.connections.fd_reserve)
        # a browser gone silent on hold (no RTP expected) is noticed by ICE consent: as soon as by RTP
        ice_consent.set_consent_expiry(self.config.media.inactivity_timeout)
        # the interfaces are enumerated once a minute, not at every call's ICE gathering (~0.5 ms each)
        aiortc_hooks.cache_host_addresses(HOST_ADDRESSES_TTL)
        if self.fast_lane is not None:
            self._closers.append(self._close_fast_lane)
        # the first call's once-per-process work (certificate, codec tables, SDP grammar), made now
        warm_up(self.dtls_certificates, self.fast_lane)
        self._prime_ice_pool()
        health = HealthSource(
            started_at=self._started_at,
            clock=self._clock,
            details=self._health_details,
            show_version=self.config.http.expose_version,
        )
        app = build_app(health, self.config.http.trusted_proxies)
        websocket = self.config.sip.websocket
        if websocket is not None:  # SIP over WebSocket (gateway/websip): HTTP listener and/or its own
            self.sip_ws = WsTransport(
                self.config.http.tls is not None, (self.config.http.host, self.config.http.port)
            )
            self.sip_ws_endpoint = SipWsEndpoint(
                self.sip_ws,
                allowed_origins=origins_for(self.config.http),
                auth_timeout=websocket.auth_timeout,
            )
            if websocket.on_http:
                app.router.add_get(websocket.path, self.sip_ws_endpoint.handle)
        cluster = self.cluster
        if cluster is not None:
            self._closers.append(cluster.close)  # last: after the UA unregistered, give the locks back
            cluster.prepare_http(app)
        add_signaling_routes(
            app,
            call_service=self.driver,
            offer_service=OfferApi(self.driver)
            if cluster is None
            else cluster.offer_service(OfferApi(self.driver)),
            identity=self.identities,
            presence=self.presence,
            config=self.config,
            state=self.state,
            revocations=cluster.revocations if cluster is not None else None,
            room_media=self.room_media,
            call_playback=self.call_playback,
        )
        sockets = app[SOCKETS_KEY]
        self.drainer.add(lambda: sockets.close_idle(self._session_busy))  # idle ones: 1012 at drain

        async def rpc_peer_again(user: WebUser, ids: RpcIds, call_id: str) -> bool:
            # a JSON-RPC call taken over here: its peer waits for its client (jsonrpc/resume.py)
            return await adopt_peer(app[RPC_KEY], user, ids.session_id, ids.peer_id, call_id)

        self.driver.takeovers.on_rpc_peer = rpc_peer_again
        if cluster is not None:
            cluster.attach_signaling(app)  # live presence events across instances
        self.ops.add_routes(app)
        instance = cluster.node.id if cluster is not None else None  # the admin page and API
        add_admin_routes(app, AdminCalls(self.driver, instance), self._admin_fan_out())
        add_audio_stream_routes(app, self.audio_streams)  # start/stop a call's audio stream
        http = self.config.http
        if http.tls is not None:
            self.tls = ServerTls(http.tls.certificate, http.tls.private_key)
        self.http = HttpServer(
            app,
            http.host,
            http.port,
            ssl_context=self.tls.context if self.tls is not None else None,
            redirect_port=http.tls.redirect_port if http.tls is not None else None,
            limits=self._http_limits(),
            fd_reserve=self.fd_reserve,
        )
        await self.http.start()
        self._closers.append(self.http.close)
        if websocket is not None and websocket.listen is not None and self.sip_ws_endpoint is not None:
            self.sip_ws_http = HttpServer(
                build_websocket_app(
                    health, websocket.path, self.sip_ws_endpoint.handle, self.config.http.trusted_proxies
                ),
                websocket.listen.host,
                websocket.listen.port,
                ssl_context=self.tls.context if self.tls is not None else None,
                limits=self._http_limits(),
                fd_reserve=self.fd_reserve,
            )
            await self.sip_ws_http.start("SIP WebSocket")
            self._closers.append(self.sip_ws_http.close)
        ua_settings = UASettings.from_config(self.config)
        registrations = registrations_for_users(  # at each user's PBX (config/pbxs.py)
            await self.identities.store.all_users(),
            self.config.pbx,
            self.config.pbxs,
            dict(ua_settings.pbx_targets),
        )
        ua_settings = dataclasses.replace(
            ua_settings, registrations=registrations, fd_reserve=self.fd_reserve
        )
        self.sip = UserAgent(
            ua_settings if cluster is None else cluster.ua_settings(ua_settings),
            on_incoming_call=self.driver.sip_inbound.on_incoming_call,
            on_registration=self.driver.sip_inbound.on_registration,
        )
        ua = self.sip
        self._closers.append(lambda: ua.close(self._time_left()))
        await self.sip.start()
        self.driver.attach_ua(self.sip)
        users = await self.identities.store.all_users()  # busy lamps, voicemail (runtime/lamps/)
        lamps = start_lamps(self.config, self.sip, users, lambda: self.driver.sessions, self.driver.spawn)
        self.driver.user_states = lamps.snapshot
        self.lamps = lamps  # a SIP library's SUBSCRIBE goes through its client (_start_web_sip)
        self._closers.append(lamps.close)  # before the UA closes: unsubscribed
        # the calls' BYEs get the budget but what unregistering needs after them (UA_RESERVE)
        self._closers.append(lambda: self.driver.close(max(0.2, self._time_left() - UA_RESERVE)))
        self._closers.append(self.room_media.close)  # before the calls end: the rooms' SIP parties first
        self._closers.append(self.call_playback.close)
        self._closers.append(self.audio_streams.close)  # before the calls end: the apps get their stop
        if self.sip_ws is not None:
            await self._start_web_sip(self.sip, self.sip_ws)
        await self.ops.start()
        self._closers.append(self.ops.close)
        if cluster is not None:
            await cluster.start(self.sip)
        if self.config.media.gc_tuning:
            self._start_gc_tuning()
        logger.info("gateway started")

    def _admin_fan_out(self) -> AdminFanOut | None:
        """The admin API's way to the other instances' calls (gateway/signaling/admin/cluster.py)."""
        if self.cluster is None:
            return None
        node = self.cluster.node

        async def peers() -> dict[str, str]:
            return {instance: info.http for instance, info in (await node.instances()).items()}

        return AdminFanOut(node.id, self.cluster.settings.secret.reveal().encode("utf-8"), peers)

    def _start_gc_tuning(self) -> None:
        """Freeze what start-up made, then the calls set up each second (gateway/ops/gc_tuning.py)."""
        tuning = GcTuning(lambda: self.driver.calls)
        tuning.start()
        task = asyncio.get_running_loop().create_task(tuning.run(), name="gc-tuning")

        async def stop() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            tuning.close()

        self._closers.append(stop)

    async def _start_web_sip(self, ua: UserAgent, transport: WsTransport) -> None:
        url = urlsplit(self.http_url if self.sip_ws_http is None else self.sip_ws_http.urls[0])
        transport.local = (url.hostname or self.config.http.host, url.port or self.config.http.port)
        ua.layer.attach(transport)
        transport.start(ua.layer.receive)
        self._closers.append(transport.close)
        self.web_sip = web_sip = WebSipService(
            self.config, ua, self.driver, self.identities, transport, self.presence
        )
        web_sip.start()
        lamps = self.lamps
        if lamps.client is not None and lamps.front is not None and lamps.endpoint is not None:
            web_sip.attach_relay(lamps.client, lamps.front, lamps.endpoint)
        sockets = self.sip_ws_endpoint
        if sockets is not None:  # idle flows: 1012 at drain
            self.drainer.add(lambda: sockets.close_idle(web_sip.flow_busy))
            websocket = self.config.sip.websocket
            # a flow back on another instance, relayed to its calls' by the HTTP listener (where the
            # instances advertise themselves: a separate SIP WebSocket listener is not relayed to)
            if self.cluster is not None and websocket is not None and websocket.on_http:
                self.cluster.attach_web_sip(web_sip, sockets, websocket.path)

        async def library_again(user: WebUser, data: Mapping[str, Any], call_id: str) -> bool:
            # a SIP library's call taken over here: its session waits for its new flow (websip/takeover.py)
            return await web_sip_takeover.adopt(web_sip, user, data, call_id)

        self.driver.takeovers.on_web_sip = library_again
        self._closers.append(self.web_sip.close)

    @property
    def http_url(self) -> str:
        """The first URL the HTTP server listens on (its real port when the config asked for 0)."""
        return self.http.urls[0] if self.http is not None and self.http.urls else ""

    def add_record_sink(self, sink: Callable[[CallRecord], None]) -> None:
        """Embedding (docs/embedding.md): ``sink`` gets each call's record (gateway/ops/records.py) as the
        call ends, beside the configured cdr file and webhook. Called on the event loop: keep it short."""
        self.ops.record_sinks.append(sink)

    @property
    def sip_address(self) -> tuple[str, int]:
        """Where the SIP user agent is reached (host, port)."""
        if self.sip is None:
            raise RuntimeError("the gateway is not started")
        return self.sip.endpoint.host, self.sip.endpoint.port or 5060

    def reload_tls(self) -> None:
        """SIGHUP: load the HTTPS certificate files again (renewed certificates), keeping every call and
        WebSocket; bad files leave the old certificate in service (logged)."""
        if self.tls is None:
            logger.info("SIGHUP: no TLS certificate to reload")
            return
        self.tls.reload()

    def drain(self) -> None:
        """SIGUSR1 or `POST /cluster/drain`: no new calls, /readyz 503, the sockets without a call closed
        with 1012 (the others as their calls end: gateway/ops/drain.py), then (through `on_drained`) exit
        once the calls have ended or cluster.drain_timeout passed. Alone (no cluster): the same, but the
        gateway keeps running (taking no call) until it is stopped."""
        self.ops.draining = True
        if self.cluster is not None:
            self.cluster.start_drain()
        elif self._drain is None:
            self._drain = asyncio.get_running_loop().create_task(self.drainer.run(), name="drain")

    def _session_busy(self, session_id: str) -> bool:
        return bool(self.driver.registry.calls_of(session_id))

    async def _stop_drain(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain

    def _health_details(self) -> dict[str, object]:
        registrations = self.sip.registration_states() if self.sip is not None else {}
        details: dict[str, object] = {"calls": self.driver.calls, "sip": {"registrations": registrations}}
        pbx = self.sip.pbx_state() if self.sip is not None else None
        if pbx is not None:
            details["pbx"] = pbx
        if self.cluster is not None:  # Redis unreachable: degraded (calls go on; no cross-instance routing)
            up = self.cluster.node.available
            details["cluster"] = {"state": "ok" if up else "degraded", "redis": "up" if up else "down"}
        disk = self.driver.recordings.disk()  # low: no recording starts (recording.min_free_mb)
        if disk is not None:
            details["recording"] = {key: disk[key] for key in ("state", "free_mb", "min_free_mb")}
        return details

    async def _close_fast_lane(self) -> None:
        if self.fast_lane is not None:
            self.fast_lane.close()

    def _time_left(self) -> float:
        """Seconds left before the shutdown deadline (at least a little, so a last step still runs)."""
        if self._deadline is None:
            return SHUTDOWN_TIMEOUT
        return max(0.1, self._deadline - asyncio.get_running_loop().time())

    async def close(self, timeout: float = SHUTDOWN_TIMEOUT) -> None:
        """End every call (BYE, CANCEL, 480), unregister and close, in about `timeout` seconds whatever
        the far ends do: waits for answers (BYE's 200, REGISTER's) are cut at the deadline, and the
        transactions still retransmitting end with the transaction layer."""
        if self._closed:
            return
        self._closed = True
        self._deadline = asyncio.get_running_loop().time() + timeout
        logger.info("gateway shutting down (calls: %d)", self.driver.calls)
        if self.sip is not None:  # a BYE the stop cuts says so, and blocklists no hop (issue 67 item 13)
            self.sip.begin_shutdown()
        if self.cluster is not None and self.cluster.http is not None:  # first: the others' watches hear
            await self.cluster.http.stop_watches()  # a clean stop (1001), not a death (cluster/peer_watch.py)
        await self._stop_drain()
        for closer in reversed(self._closers):
            try:
                await closer()
            except Exception:  # one part failing to close must not keep the others open
                logger.exception("error while closing %r", closer)
        self._closers.clear()
        logger.info("gateway stopped")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


async def serve(
    config: Config,
    stop: asyncio.Event | None = None,
    *,
    config_path: str | None = None,
    on_ready: Callable[[Gateway], None] | None = None,
) -> None:
    """Run the gateway until `stop` is set, or SIGINT/SIGTERM arrives when no event is given. SIGHUP
    reloads `config_path`'s users and routes and the certificates (gateway/reload.py; without a path,
    the certificates only). `on_ready` is called once every listener is open."""
    loop = asyncio.get_running_loop()
    if stop is None:
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
    gateway = Gateway(config)
    reloads: set[asyncio.Task[object]] = set()

    def hangup() -> None:
        if config_path is None:
            gateway.reload_tls()
            return
        task: asyncio.Task[object] = loop.create_task(reload_config(gateway, config_path))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, hangup)
    loop.add_signal_handler(signal.SIGUSR1, gateway.drain)
    if gateway.cluster is not None:
        gateway.cluster.on_drained = stop.set
    try:
        await gateway.start()
        if on_ready is not None:
            on_ready(gateway)
        await stop.wait()
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
        loop.remove_signal_handler(signal.SIGUSR1)
        await gateway.close()
