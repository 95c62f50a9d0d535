"""The web legs' peer connections made ahead of their calls (ahead/peer_pool.py, issue 64 item 2).

A web leg takes a peer connection the pool made before its call, answers a real aiortc peer from it and
connects; the pool makes the next ones after the take, off the request; a pair made with another
certificate (a renewed one) is never given out; closed, the pool closes what waits and makes no more.
"""

from __future__ import annotations

import asyncio

import sdp
from gateway.media.bridge_settings import web_certificate
from gateway.media.events import IceFailed, MediaEvent
from gateway.media.rtp.dtls_srtp import DtlsCertificates
from gateway.media.webrtc import aiortc_hooks
from gateway.media.webrtc.ahead import peer_pool
from gateway.media.webrtc.ahead.peer_pool import PeerPool
from peers.webpeer import WebPeer
from tests.media.webrtc.test_ice_ports import connected
from tests.media.webrtc.test_web_answer import CERTIFICATE, PREFERENCES, leg_for


def _ufrag(leg: object) -> str:
    return str(aiortc_hooks.ice_connection(leg._pc).local_username)  # type: ignore[attr-defined]


def _waiting_ufrags(pool: PeerPool) -> set[str]:
    return {str(aiortc_hooks.ice_connection(made.pc).local_username) for made in pool._idle}


async def _refilled(pool: PeerPool, size: int) -> None:
    for _ in range(200):
        if pool.idle == size:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the pool holds {pool.idle} peer connections, not {size}")


async def test_a_leg_answers_from_a_peer_connection_made_before_its_call_and_connects() -> None:
    pool = PeerPool(size=2)
    events: list[MediaEvent] = []
    first = leg_for([], peers=pool)  # the first call: nothing made yet, its own is made now
    try:
        assert (pool.taken, pool.missed, pool.idle) == (0, 1, 0)  # and none made on its request's path
        await _refilled(pool, 2)  # after the take, off the request
        waiting = _waiting_ufrags(pool)
        leg, peer = leg_for(events, peers=pool), WebPeer()
        try:
            assert (pool.taken, pool.missed) == (1, 1) and _ufrag(leg) in waiting
            assert _ufrag(leg) != _ufrag(first)
            answer = await leg.accept_offer(sdp.parse(await peer.offer()), PREFERENCES["opus"])
            await peer.accept(sdp.write(answer))
            await connected(events)
            assert not [e for e in events if isinstance(e, IceFailed)]  # aiortc wrote the answer we gave
            assert answer.media[0].ice is not None and answer.media[0].ice.ufrag == _ufrag(leg)
        finally:
            await peer.close()
            await leg.close()
    finally:
        await first.close()
        await pool.close()


async def test_a_peer_connection_made_with_another_certificate_is_never_given_out() -> None:
    pool = PeerPool(size=2)
    renewed = web_certificate(DtlsCertificates())
    assert renewed is not CERTIFICATE
    try:
        pool.take((), CERTIFICATE)
        await _refilled(pool, 2)
        pc, _ = pool.take((), renewed)  # the certificate was renewed meanwhile
        assert pool.missed == 2 and pool.taken == 0 and pool.idle == 0  # the stale ones are dropped
        assert getattr(pc, aiortc_hooks.CERTIFICATES) == [renewed]
        await aiortc_hooks.close_throwaway(pc)
        await _refilled(pool, 2)  # with the certificate of the last take
        assert all(getattr(m.pc, aiortc_hooks.CERTIFICATES) == [renewed] for m in pool._idle)
    finally:
        await pool.close()


async def test_a_closed_pool_closes_what_waits_and_makes_no_more() -> None:
    pool = PeerPool(size=2)
    pc, _ = pool.take((), CERTIFICATE)
    await _refilled(pool, 2)
    waiting = [m.pc for m in pool._idle]
    await pool.close()
    await pool.close()  # idempotent
    assert pool.idle == 0 and all(p.signalingState == "closed" for p in waiting)
    made, _ = pool.take((), CERTIFICATE)  # a call still being set up makes its own
    await asyncio.sleep(peer_pool.REFILL_DELAY * 3)
    assert pool.idle == 0
    for each in (pc, made):
        await aiortc_hooks.close_throwaway(each)
