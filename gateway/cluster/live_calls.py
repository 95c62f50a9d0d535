"""`LiveCallLedger`: each instance's live calls kept in Redis, so that a survivor writes the call records
of an instance that died (kill -9, a lost machine) instead of none being written (issue 36 item 3).

At every heartbeat an instance writes what it would record of each live call if the call ended now
(`record_of` on the live runtime: parties, times, media figures so far) into the hash
`{prefix}live:{instance}` (field: call id, value: the record's JSON) when something other than its
media figures changed, and every FIGURES_EVERY heartbeats for those, removes the calls that ended
(their own record was written by the instance, gateway/ops/wiring.py), stamps `_seen` with the time of
the heartbeat, and lists itself in the set `{prefix}live-instances`. A clean exit deletes the hash.

Every heartbeat an instance also looks for hashes whose instance holds no lease any more (the
`{prefix}instances` sorted set, node.py). One survivor claims such a hash (`SET NX` of
`{prefix}live-claim:{instance}`), writes a record for each call in it through `write` (the file, log,
webhook and Redis stream sinks: gateway/ops/wiring.py `Operations.foreign_record`) with the end
reason `instance_lost`, hung up by the gateway, ended at the dead instance's last heartbeat, and
`recorded_by` naming the survivor, then deletes the hash. An instance that restarts under the same id
finds its own hash from before (it has no such call now) and records those calls itself.

Calls that can go on elsewhere (issue 34 item 3) have a *handover* too, in the hash
`{prefix}handover:{instance}` (field: call id, value: gateway/runtime/continuity/takeover.py's JSON), written in the
same pipeline when it changed. A survivor that claims a dead instance's calls first offers each call's
handover to `take_over` (the driver: the call is carried on here, its SIP party re-INVITEd to this
instance); only the calls it could not carry on are recorded as lost.

Every field of both hashes is sealed (`value;HMAC` over the instance, the field and the value, under a
key derived from `cluster.secret`: gateway/cluster/signing.py): a field without a valid seal is ignored
and logged once, so whoever can write to Redis cannot make a survivor re-INVITE a party of its choosing,
hand a call to a login of its choosing or write a call record it made up (docs/deploy.md, "Redis is not
trusted"). An entry of an instance from before the seals is ignored alike: its calls are not carried on
(upgrade in one go, or drain first).

Before it acts on a dead instance's hash, the survivor looks whether that instance still accepts a
connection at its advertised HTTP address (written in the hash as `_http`): one that does lost its lease
but not its life (cut off from Redis), and its calls are left to it, neither carried on nor recorded. A
hash whose `_http` does not open (unsealed, or missing) is left alone too: whether its instance lives
cannot be asked.

A call answered (or taken over) here is not left for the next heartbeat: `soon` writes its record and
handover within SOON_SECONDS (many calls answered at once: one write for them all), looking again while
its media settles (up to SOON_TRIES times), so that a call is carried on even when its instance dies a
moment after its answer; `_seen` then says when it was written. A call that ends goes out of both
hashes as soon (`ended`), so that a survivor neither re-INVITEs its dead dialog nor records it twice.

What is not known: a call that died with its instance in the first SOON_SECONDS after its answer, or
while ringing and younger than a heartbeat (never written), and how the figures moved after the last
heartbeat. An instance cut off from Redis whose HTTP port
cannot be reached either is taken for dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import urllib.parse
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Any, Final

from gateway.cluster.errors import ClusterUnavailable
from gateway.cluster.node import ClusterNode, text
from gateway.cluster.signing import HANDOVER, LIVE
from gateway.ops.records import CallRecord, LegRecord

logger = logging.getLogger(__name__)

INSTANCE_LOST: Final = "instance_lost"  # the end reason of a survivor's record
SEEN: Final = "_seen"
HTTP: Final = "_http"  # the field of the hash with its instance's advertised HTTP URL
PROBE_SECONDS: Final = 0.5  # a survivor's look at whether a lapsed instance still answers  # the field of the hash with the time (Unix s) of its instance's last heartbeat
KEEP_SECONDS: Final = 86_400  # an unclaimed hash (no survivor ever ran) lapses after a day
CLAIM_SECONDS: Final = 60  # a survivor's claim on a dead instance's hash
FIGURES_EVERY: Final = 5  # heartbeats between writes of calls whose only change is their media figures
SOON_SECONDS: Final = 0.2  # a call answered here is written this soon, not at the next heartbeat
SOON_TRIES: Final = 10  # looks (SOON_SECONDS apart) for its handover while its media settles


def record_json(record: CallRecord) -> str:
    return json.dumps(dataclasses.asdict(record), separators=(",", ":"), default=str)


def _steady(record: CallRecord | None) -> CallRecord | None:
    """A record without what changes at every heartbeat (its end time: now; its media figures)."""
    return None if record is None else dataclasses.replace(record, end_time=0.0, legs={})


def lost_record(line: str, seen: float, survivor: str) -> CallRecord | None:
    """The record of one call of a dead instance from its last written snapshot (None if unreadable)."""
    try:
        fields: dict[str, Any] = json.loads(line)
        known = {f.name for f in dataclasses.fields(LegRecord)}  # a newer instance's fields left out
        legs = {
            name: LegRecord(**{k: v for k, v in figures.items() if k in known})
            for name, figures in (fields.pop("legs", None) or {}).items()
        }
        for name in ("sip_call_ids", "recording"):  # tuples, lists in JSON
            fields[name] = tuple(fields.get(name) or ())
        record = CallRecord(**fields, legs=legs)
    except (ValueError, TypeError) as exc:
        logger.warning("cluster: an unreadable live call entry (%s): %.120s", exc, line)
        return None
    return dataclasses.replace(
        record,
        end_time=max(record.start_time, seen or record.end_time),
        end_reason=INSTANCE_LOST,
        hangup_by="gateway",
        sip_status=None,
        recorded_by=survivor,
    )


TakeOver = Callable[[str, str, str], Awaitable[bool]]  # (call id, handover JSON, dead instance) -> carried on
Some = Callable[[Collection[str]], Iterable[CallRecord]]  # the records of those live calls
# their handovers (and their pairs'), and those of them that will never have one here (no browser would
# come back for them: a WHIP call, no reconnect grace)
SomeHandovers = Callable[[Collection[str]], tuple[dict[str, str], Collection[str]]]


class LiveCallLedger:
    def __init__(
        self,
        node: ClusterNode,
        live: Callable[[], Iterable[CallRecord]],
        write: Callable[[CallRecord], None],
        handovers: Callable[[], dict[str, str]] = dict,
        take_over: TakeOver | None = None,
        *,
        some: tuple[Some, SomeHandovers] | None = None,
    ) -> None:
        self._node = node
        self._live = live  # the records of this instance's live calls as of now
        self.write = write  # where a dead instance's records go (set by the gateway: Operations)
        self._handovers = handovers  # call id -> handover JSON of the calls another instance may carry on
        self.take_over = (
            take_over  # a dead instance's call carried on here (gateway/runtime/continuity/takeover.py)
        )
        self._written: dict[str, CallRecord] = {}  # call id -> the record last written
        self._handed: dict[str, str] = {}  # call id -> the handover last written
        self._generation = node.generation  # of the node's Redis when they were written (node.py)
        self.taken_over = 0  # dead instances' calls carried on here
        # a dead instance's calls being claimed: in a task of their own, never holding up the heartbeat
        # (a takeover waits for the SIP party's answer to its re-INVITE)
        self._claiming: dict[str, asyncio.Task[None]] = {}
        self._beats = 0
        self._own_checked = False
        self._cut_off: set[str] = set()  # lapsed instances found still answering (logged once each)
        self.recorded = 0  # records written for dead instances' calls
        # what `soon` writes: only the calls named (else all filtered: tests)
        self._some = some
        self._soon: dict[str, int] = {}  # call id -> looks left for its handover
        self._ended: set[str] = set()  # calls over since written: taken out at once too
        self._closed = False
        self._soon_task: asyncio.Task[None] | None = None
        self._writing = asyncio.Lock()  # a heartbeat's write and `soon`'s, one at a time
        # what else `soon` writes with the calls: where their browsers are relayed to (wiring.py)
        self.after_soon: list[Callable[[], Awaitable[None]]] = []

    @property
    def key(self) -> str:
        return self._node.key("live", self._node.id)

    @property
    def handover_key(self) -> str:
        return self._node.key("handover", self._node.id)

    # --- this instance's calls -----------------------------------------------------------------
    async def refresh(self) -> None:
        """The heartbeat's refresher: this instance's calls written, then any dead instance's recorded."""
        node = self._node
        if not self._own_checked:  # a hash of ours from before a restart: those calls are gone
            await self._record(node.id, self.key)
            self._own_checked = True
        async with self._writing:
            await self._write_all()
        await self.record_dead()

    def _forget_if_lost(self) -> None:
        """What Redis may have lost (the node's generation moved on) is written again: all of it."""
        if self._generation != self._node.generation:
            self._generation = self._node.generation
            self._written, self._handed = {}, {}

    async def _write_all(self) -> None:
        self._forget_if_lost()
        self._beats += 1
        figures = self._beats % FIGURES_EVERY == 0  # media figures move all the time: not every beat
        now = {record.call_id: record for record in self._live()}
        changed = {
            call_id: record_json(record)
            for call_id, record in now.items()
            if figures or _steady(self._written.get(call_id)) != _steady(record)
        }
        gone = [call_id for call_id in self._written if call_id not in now]
        handed = {call_id: line for call_id, line in self._handovers().items() if call_id in now}
        handed_changed = {k: v for k, v in handed.items() if self._handed.get(k) != v}
        unhanded = [call_id for call_id in self._handed if call_id not in handed]
        await self._sync("write the live calls", changed, handed_changed, gone, unhanded)
        self._written = now
        self._handed = handed

    def soon(self, call_id: str) -> None:
        """Call `call_id` was answered or taken over here: its record and handover written within
        SOON_SECONDS, not at the next heartbeat (up to one later). Not before the first heartbeat has
        looked at this instance's hash from before a restart (its calls would be taken for lost ones)."""
        if self._own_checked and not self._closed:
            self._soon[call_id] = SOON_TRIES
            self._start_soon()

    def ended(self, call_id: str) -> None:
        """Call `call_id` is over (recorded by this instance): out of Redis within SOON_SECONDS too, so
        that a survivor neither re-INVITEs its dead dialog nor records it twice."""
        if call_id in self._written and not self._closed:
            self._ended.add(call_id)
            self._start_soon()

    def _start_soon(self) -> None:
        if self._soon_task is None or self._soon_task.done():
            self._soon_task = asyncio.get_running_loop().create_task(self._write_soon(), name="live-soon")

    async def _write_soon(self) -> None:
        while self._soon or self._ended:
            await asyncio.sleep(SOON_SECONDS)
            asked = set(self._soon)
            try:
                async with self._writing:
                    done, wrote = await self._write_some(asked)
                if wrote:
                    await self._after_soon()
            except ClusterUnavailable:  # (said by the node; the heartbeat writes them once it is back)
                done = asked
                self._ended.clear()
            except Exception:  # one call's odd state must not stop this for the others
                logger.exception("cluster: the calls just answered were not written (the heartbeat will)")
                done = asked
                self._ended.clear()
            for call_id in asked:
                left = self._soon.get(call_id, 0) - 1
                if call_id in done or left <= 0:
                    self._soon.pop(call_id, None)
                else:
                    self._soon[call_id] = left

    async def _after_soon(self) -> None:
        for also in self.after_soon:
            with contextlib.suppress(ClusterUnavailable):  # (the heartbeat writes them)
                await also()

    async def _write_some(self, asked: set[str]) -> tuple[set[str], bool]:
        """The records and handovers of the calls `asked` (and the other end of a pair among them) that
        changed since last written, and the calls ended since out: (the calls done with: written with a
        handover, over, or never to have one here; whether anything was written)."""
        self._forget_if_lost()
        never: Collection[str] = ()
        if self._some is None:
            handed = {k: v for k, v in self._handovers().items() if k in asked}
            records = {r.call_id: r for r in self._live() if r.call_id in asked or r.call_id in handed}
        else:
            handed, never = self._some[1](asked)
            records = {r.call_id: r for r in self._some[0](asked | set(handed))}
        handed = {k: v for k, v in handed.items() if k in records}
        changed = {
            k: record_json(r) for k, r in records.items() if _steady(self._written.get(k)) != _steady(r)
        }
        handed_changed = {k: v for k, v in handed.items() if self._handed.get(k) != v}
        ended = [k for k in self._ended if k not in records]
        self._ended.clear()
        if not (changed or handed_changed or ended):
            return set(handed) | set(never) | (asked - set(records)), False
        await self._sync("write the calls just answered", changed, handed_changed, ended, ended)
        self._written.update(records)
        self._handed.update(handed)
        for call_id in ended:
            self._written.pop(call_id, None)
            self._handed.pop(call_id, None)
        return set(handed) | set(never) | (asked - set(records)), True

    async def _sync(
        self,
        what: str,
        changed: dict[str, str],
        handed: dict[str, str],
        gone: Collection[str],
        unhanded: Collection[str],
    ) -> None:
        """One pipeline: the records and handovers ``changed``/``handed`` written, sealed, with the time
        and where this instance answers (for a survivor's look before it acts: alive); those of the calls
        ``gone``/``unhanded`` deleted."""
        node = self._node
        fields = {SEEN: f"{node.now_ms() / 1000:.3f}", HTTP: node.settings.advertise.http, **changed}
        sealed = {name: self._seal(LIVE, name, value) for name, value in fields.items()}
        sealed_handovers = {name: self._seal(HANDOVER, name, value) for name, value in handed.items()}

        async def sync(client: Any) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            pipe.hset(self.key, mapping=sealed)
            if gone:
                pipe.hdel(self.key, *gone)
            pipe.expire(self.key, KEEP_SECONDS)
            if sealed_handovers:
                pipe.hset(self.handover_key, mapping=sealed_handovers)
            if unhanded:
                pipe.hdel(self.handover_key, *unhanded)
            if sealed_handovers or unhanded:
                pipe.expire(self.handover_key, KEEP_SECONDS)
            pipe.sadd(node.key("live-instances"), node.id)
            result: list[Any] = await pipe.execute()
            return result

        await node.run(what, sync)

    def _seal(self, purpose: str, name: str, value: str) -> str:
        """A field of this instance's hashes as written: `value;HMAC(instance, field, value)`."""
        return self._node.signer.seal(purpose, value, self._node.id, name)

    def _unseal(self, purpose: str, instance_id: str, key: str, hashed: dict[Any, Any]) -> dict[str, str]:
        """The fields of a hash read back whose seal is good (the others logged once, left out)."""
        signer, opened = self._node.signer, {}
        for raw_name, raw_value in hashed.items():
            name = text(raw_name)
            value = signer.unseal(
                purpose, text(raw_value), f"{key} {name}", f"a {purpose}", instance_id, name
            )
            if value is not None:
                opened[name] = value
        return opened

    async def leave(self) -> None:
        """A clean exit: every call has ended and been recorded here."""
        node = self._node
        self._closed = True  # nothing written after the hash is forgotten
        if self._soon_task is not None:
            self._soon_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._soon_task
        for task in list(self._claiming.values()):  # its claim lapses: another survivor takes over
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

        async def forget(client: Any) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            pipe.delete(self.key, self.handover_key)
            pipe.srem(node.key("live-instances"), node.id)
            result: list[Any] = await pipe.execute()
            return result

        await node.run("forget the live calls", forget)

    # --- the dead ones ---------------------------------------------------------------------------
    async def unsettled(self, instance_id: str) -> bool:
        """Whether dead `instance_id`'s live calls are still in Redis: neither carried on nor recorded yet
        (a survivor's claim under way, or none has looked yet). False when Redis cannot say."""
        key = self._node.key("live", instance_id)
        try:
            return bool(await self._node.run("look at a lost instance's calls", lambda c: c.exists(key)))
        except ClusterUnavailable:
            return False

    async def record_dead(self) -> None:
        node = self._node
        found = await node.run(
            "list the instances with live calls", lambda c: c.smembers(node.key("live-instances"))
        )
        listed = sorted(text(member) for member in found)
        if listed == [node.id]:
            return
        alive = set(await node.instances())
        for instance_id in listed:
            if instance_id not in alive and instance_id != node.id and instance_id not in self._claiming:
                task = asyncio.get_running_loop().create_task(
                    self._record(instance_id, node.key("live", instance_id)), name=f"claim-{instance_id}"
                )
                self._claiming[instance_id] = task
                task.add_done_callback(functools.partial(self._claimed, instance_id))

    def _claimed(self, instance_id: str, _task: asyncio.Task[None]) -> None:
        self._claiming.pop(instance_id, None)

    async def wait_claims(self) -> None:
        """Until the claims under way are over (tests; a clean exit cancels them in `leave`)."""
        await asyncio.gather(*self._claiming.values(), return_exceptions=True)

    async def _record(self, instance_id: str, key: str) -> None:
        """Claim `instance_id`'s hash, carry on the calls that have a handover (`take_over`) and write a
        record for each other call in it; the hashes deleted after."""
        node = self._node
        claim = node.key("live-claim", instance_id)
        handover_key = node.key("handover", instance_id)

        async def take(client: Any) -> tuple[dict[Any, Any], dict[Any, Any]] | None:
            if not await client.set(claim, node.id, nx=True, ex=CLAIM_SECONDS):
                return None
            pipe = client.pipeline(transaction=False)
            pipe.hgetall(key)
            pipe.hgetall(handover_key)
            entries, handovers = await pipe.execute()
            return entries, handovers

        try:
            found = await node.run("claim a lost instance's calls", take)
        except ClusterUnavailable:  # (said by the node) the claim may be set, the hashes not read
            await self._release(claim)
            return  # the next heartbeat tries again
        if found is None:
            return  # another survivor has it
        entries, handovers = found
        if not entries:
            await node.run("release a claim", lambda c: c.delete(claim, handover_key))
            return
        fields = self._unseal(LIVE, instance_id, key, entries)
        if instance_id != node.id and await self._left_alone(instance_id, fields.pop(HTTP, None), claim):
            return
        try:
            seen = float(fields.pop(SEEN, "0"))
        except ValueError:
            seen = 0.0
        carried = await self._carry_on(
            instance_id, self._unseal(HANDOVER, instance_id, handover_key, handovers), fields
        )
        for call_id, line in sorted(fields.items()):
            if call_id in carried:
                continue
            record = lost_record(line, seen, node.id)
            if record is None:
                continue
            logger.warning(
                "call=%s of instance %s lost with it (last heard %.1f s ago): recorded by %s",
                call_id, instance_id, node.now_ms() / 1000 - seen, node.id,
            )  # fmt: skip
            try:
                self.write(record)
            except Exception:
                logger.exception("call=%s the record of a lost call could not be written", call_id)
            self.recorded += 1

        async def done(client: Any) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            pipe.delete(key, handover_key, claim)  # the hash gone, a later claim finds nothing to record
            if instance_id != node.id:
                pipe.srem(node.key("live-instances"), instance_id)
            result: list[Any] = await pipe.execute()
            return result

        try:
            await node.run("forget a lost instance's calls", done)
        except ClusterUnavailable:
            logger.warning("cluster: %s's recorded calls stay in Redis until the claim lapses", instance_id)

    async def _release(self, claim: str) -> None:
        """Let go of this survivor's ``claim`` when its read failed: the claim is set before the hashes
        are read, and left standing it would keep every survivor, this one too, from the dead instance's
        calls for CLAIM_SECONDS (60 s: every call lost). Only a claim that is still ours is deleted."""
        script = (
            "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
        )
        node = self._node
        with contextlib.suppress(ClusterUnavailable):  # (Redis still failing: the claim lapses by itself)
            await node.run("release a failed claim", lambda c: c.eval(script, 1, claim, node.id))

    async def _left_alone(self, instance_id: str, http: str | None, claim: str) -> bool:
        """Whether another instance's calls are left to it: it still answers at its sealed HTTP address
        (cut off from Redis, not dead: looked at again at the next heartbeat, said once), or its hash names
        no such address (whether it lives cannot be asked: its claim lapses in CLAIM_SECONDS)."""
        if http is None:
            logger.warning(
                "cluster: instance %s's live calls name no sealed HTTP address: neither carried on nor "
                "recorded (written by an instance without the seals, or not by a gateway)", instance_id,
            )  # fmt: skip
            return True
        if not await alive(http):
            self._cut_off.discard(instance_id)
            return False
        if instance_id not in self._cut_off:
            self._cut_off.add(instance_id)
            logger.warning(
                "cluster: instance %s lost its lease but answers at %s (cut off from Redis?): its calls are "
                "left to it", instance_id, http,
            )  # fmt: skip
        await self._node.run("release a claim", lambda c: c.delete(claim))
        return True

    async def _carry_on(self, instance_id: str, handovers: dict[str, str], live: dict[str, str]) -> set[str]:
        """The calls of dead `instance_id` carried on here: each live call with a handover, offered to
        `take_over` (and to nothing else when an instance restarted under its own id: its calls died)."""
        carried: set[str] = set()
        if self.take_over is None or instance_id == self._node.id:
            return carried
        take_over = self.take_over

        async def one(call_id: str) -> None:
            try:
                if await take_over(call_id, handovers[call_id], instance_id):
                    carried.add(call_id)
            except Exception:
                logger.exception("call=%s of instance %s: the takeover failed", call_id, instance_id)

        # all at once: each waits for its SIP party's answer (20 calls' re-INVITEs in one round trip)
        await asyncio.gather(*(one(call_id) for call_id in sorted(handovers) if call_id in live))
        self.taken_over += len(carried)
        return carried


async def alive(url: str) -> bool:
    """Whether something accepts a TCP connection at HTTP base URL `url` within PROBE_SECONDS: an
    instance whose lease lapsed but which still listens is cut off from Redis, not dead, and its calls
    must not be taken from under it (a dead process's port refuses at once; a lost machine's times out)."""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname is None:
        return False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, port), PROBE_SECONDS)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
