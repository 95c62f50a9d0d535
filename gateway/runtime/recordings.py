"""`Recordings`: the calls' recordings (issue 37 item 3): which calls may or must be recorded, starting,
pausing, resuming and stopping them for every dialect and the admin API, and telling the call's browser.

A call's mode (`never`, `on_demand`, `always`: gateway/config/recording.py) is decided when it is
answered: its route's, else its user's, else the `recording` section's. `always` starts at once;
`on_demand` waits for a request (`control`). Each call with a mode other than `never` tells its session
`recording {call_id, state, mode, files}` when answered and on every change. The recorder
(gateway/media/recording/) hears the SIP leg through a tap of the bridge (which keeps the fast lane
unlinked: a recorded call's media goes through Python) and the web leg through the bridge's audio filter;
both are removed when the recording stops. A pass-through call cannot be recorded (its media never
crosses the gateway). The files end up in the call record (`recording`) and so in the `ended` webhook.

With `recording.siprec` each recording also goes to a SIPREC recording server (RFC 7866): `_Siprec`
INVITEs it (gateway/sip/useragent/siprec.py) when the recording starts and, once answered, sends each
leg's PCM the recorder decodes as PCMU RTP (gateway/media/recording/siprec_rtp.py); a pause sends
nothing; a stop or the call's end sends BYE. A refused or silent SRS is logged and shown in the state
(`siprec`), never felt by the call.

A start that would make a new file is admitted first (`_admit`): at most `max_per_call` per call (a
start/stop loop made one file each time), `max_per_user` of a user's calls recorded at once (429
`too_many_recordings`), and not while the directory's disk has less than `min_free_mb` free (507
`recording_disk_low`). `disk()` is what /healthz and the metrics say of that disk; `refused` counts.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from gateway.config.recording import RecordingMode, RecordingSection, SiprecSection, recording_mode
from gateway.config.routes import RouteConfig, route_for
from gateway.config.users import UserConfig
from gateway.media.codecs.codec_choice import LegCodecs
from gateway.media.recording.recorder import CallFacts, CallRecorder, RecorderSettings
from gateway.media.recording.siprec_rtp import SiprecStreams
from gateway.media.recording.timeline import RecordingAction, RecordingError, RecordingState
from gateway.media.rtp.packet import RtpPacket
from gateway.runtime.call_media import CallMedia
from gateway.signaling.errors import BadRequest, Conflict, Forbidden, NotFound, ServiceError
from gateway.signaling.events import RecordingChanged
from gateway.sip.useragent.siprec import RecordedCall, SiprecClient, SiprecRefused, SiprecSession

if TYPE_CHECKING:
    from gateway.runtime.call_runtime import CallRuntime
    from gateway.runtime.driver_core import DriverCore

logger = logging.getLogger(__name__)

TAP: Final = "recording"
MIB: Final = 1024 * 1024
REFUSALS: Final = ("call_cap", "user_cap", "disk")  # gateway_recordings_refused{reason}
ACTIONS: Final = tuple(action.value for action in RecordingAction)


def parse_action(value: object, name: str = "action") -> RecordingAction:
    """`start`, `pause`, `resume` or `stop`; anything else a `BadRequest` naming the field."""
    if not isinstance(value, str) or value not in ACTIONS:
        raise BadRequest(f"{name} must be one of {', '.join(ACTIONS)}, got {value!r}", field=name)
    return RecordingAction(value)


class _WebFilter:
    """The bridge's audio filter while a recording is on: hears both legs' audio and changes nothing
    (the SIP leg's is heard through the tap, with its RTP header: this one passes it on as it is)."""

    def __init__(self, recorder: CallRecorder) -> None:
        self.recorder = recorder

    def web(self, payload_type: int, payload: bytes, codecs: LegCodecs | None) -> tuple[int, bytes]:
        if codecs is not None:
            self.recorder.feed(0, codecs.incoming, None, None, payload_type, payload, time.monotonic())
        return payload_type, payload

    def sip(self, packet: RtpPacket, codecs: LegCodecs | None) -> RtpPacket:
        return packet


@dataclass(slots=True)
class _Siprec:
    """One recording's SIPREC session: connecting, then recording, else why not (``state``)."""

    state: str = "connecting"
    streams: SiprecStreams | None = None
    session: SiprecSession | None = None
    closed: bool = False


@dataclass(slots=True)
class _Call:
    mode: RecordingMode
    recorder: CallRecorder | None = None
    files: list[str] = field(default_factory=list)
    siprec: _Siprec | None = None
    siprec_state: str | None = None  # the last session's, once it ended
    starts: int = 0  # recordings started (each a file): recording.max_per_call
    user: str | None = None  # the web user carrying the call when answered: recording.max_per_user


class Recordings:
    def __init__(
        self,
        driver: DriverCore,
        runtime_of: Callable[[str], CallRuntime],
        section: RecordingSection,
        users: tuple[UserConfig, ...],
    ) -> None:
        self._driver = driver
        self._runtime_of = runtime_of  # a live call's runtime, else NotFound naming call_id
        self.section = section
        self._user_modes: Mapping[str, RecordingMode | None] = {u.id: u.recording for u in users}
        self._calls: dict[str, _Call] = {}
        self._writing: list[CallRecorder] = []  # of ended calls, until their last file is written
        self._siprec_client: SiprecClient | None = None
        self.refused: dict[str, int] = dict.fromkeys(REFUSALS, 0)
        routes = tuple(route.recording for route in driver.routes)
        modes = {section.mode, *(mode for mode in self._user_modes.values() if mode), *filter(None, routes)}
        self.enabled = modes != {RecordingMode.NEVER}  # some call may be recorded

    def disk(self) -> dict[str, object] | None:
        """The recording directory's disk (None when no call may be recorded): its free space, the floor
        and whether recordings may start (state ok) or not (low)."""
        if not self.enabled:
            return None
        free = _free_bytes(Path(self.section.directory))
        floor = self.section.min_free_mb * MIB
        state = "unknown" if free is None else "ok" if free >= floor else "low"
        free_mb = None if free is None else free // MIB
        return {
            "state": state,
            "free_mb": free_mb,
            "min_free_mb": self.section.min_free_mb,
            "free_bytes": free,
        }

    def _admit(self, runtime: CallRuntime, call: _Call) -> None:
        """A new recording (file) of the call may start, or a ServiceError says why not (module note)."""
        section = self.section
        if call.starts >= section.max_per_call:
            self._refuse("call_cap", runtime, f"call {runtime.call_id!r} has made its {section.max_per_call} recordings (recording.max_per_call)", 429, "too_many_recordings")  # fmt: skip
        user = call.user = call.user or _web_user(runtime)  # (a capturing call was admitted: it has one)
        if user is not None:
            recorded = sum(
                1 for other in self._calls.values()
                if other is not call and other.user == user and other.recorder is not None
                and other.recorder.capturing
            )  # fmt: skip
            if recorded >= section.max_per_user:
                self._refuse("user_cap", runtime, f"{user} has {recorded} calls recorded already (recording.max_per_user)", 429, "too_many_recordings")  # fmt: skip
        free = _free_bytes(Path(section.directory))
        if free is not None and free < section.min_free_mb * MIB:
            self._refuse("disk", runtime, f"the recording disk has {free // MIB} MB free, under recording.min_free_mb ({section.min_free_mb})", 507, "recording_disk_low")  # fmt: skip

    def _refuse(self, reason: str, runtime: CallRuntime, message: str, status: int, code: str) -> None:
        self.refused[reason] += 1
        logger.warning("call=%s recording not started: %s", runtime.call_id, message)
        raise ServiceError(message, code=code, field="action", http_status=status)

    def mode_of(self, runtime: CallRuntime) -> RecordingMode:
        machine = runtime.machine
        routes: tuple[RouteConfig, ...] = tuple(self._driver.routes)
        target = None
        if machine is not None:
            target = machine.target if runtime.direction.value == "outbound" else machine.remote_uri
        route = route_for(routes, target)
        who = _web_user(runtime)
        user = self._user_modes.get(who) if who is not None else None
        return recording_mode(self.section.mode, user, route.recording if route is not None else None)

    def answered(self, runtime: CallRuntime) -> None:
        """The call was answered: its mode; `always` starts now. Its session hears the state."""
        mode = self.mode_of(runtime)
        call = self._calls[runtime.call_id] = _Call(mode, user=_web_user(runtime))
        if mode is RecordingMode.NEVER:
            return
        if mode is RecordingMode.ALWAYS:
            try:
                self._apply(runtime, call, RecordingAction.START)
                return
            except (Conflict, RecordingError, ServiceError) as exc:
                logger.warning("call=%s not recorded: %s", runtime.call_id, exc)
        self._tell(runtime.call_id, call)

    def control(self, call_id: str, action: RecordingAction) -> dict[str, object]:
        """Start, pause, resume or stop call `call_id`'s recording; what it is now (`info`)."""
        runtime = self._runtime_of(call_id)
        call = self._calls.get(call_id)
        if call is None:
            raise Conflict(f"call {call_id!r} is not answered yet: nothing to record", field="call_id")
        if call.mode is RecordingMode.NEVER:
            raise Forbidden(f"recording is off for call {call_id!r} (mode never)", field="action")
        try:
            self._apply(runtime, call, action)
        except RecordingError as exc:
            raise Conflict(str(exc), field="action") from None
        return self.info(call_id)

    def info(self, call_id: str) -> dict[str, object]:
        call = self._calls.get(call_id)
        if call is None:
            raise NotFound(f"no answered call {call_id!r}", field="call_id")
        state = call.recorder.state if call.recorder is not None else RecordingState.IDLE
        info: dict[str, object] = {
            "call_id": call_id, "state": state.value, "mode": call.mode.value, "files": list(call.files),
        }  # fmt: skip
        if self.section.siprec is not None:
            info["siprec"] = call.siprec.state if call.siprec is not None else call.siprec_state
        return info

    def ended(self, runtime: CallRuntime) -> None:
        """The call is over (its bridge closed): the last file finished; its files on the runtime."""
        call = self._calls.pop(runtime.call_id, None)
        if call is None:
            return
        self._siprec_stop(call)
        if call.recorder is not None:
            call.recorder.close()
            self._writing = [r for r in self._writing if not r.written] + [call.recorder]
        runtime.recording_files = tuple(call.files)

    def close(self, timeout: float = 2.0) -> None:
        """Shutdown (blocking: run it off the event loop): every recording stopped, its file written."""
        recorders = [c.recorder for c in self._calls.values() if c.recorder is not None] + self._writing
        for recorder in recorders:
            recorder.close()
            recorder.join(timeout)

    # --- the bridge's side ---------------------------------------------------------------------------
    def _apply(self, runtime: CallRuntime, call: _Call, action: RecordingAction) -> None:
        bridge = runtime.bridge
        if bridge is None or bridge.passes_through:
            raise Conflict("a pass-through call's media never crosses the gateway: it cannot be recorded")
        if not bridge.audio_up:
            raise Conflict(f"call {runtime.call_id!r} has no media up yet", field="call_id")
        recorder = call.recorder
        if recorder is None and action is not RecordingAction.START:
            raise RecordingError(f"cannot {action.value} a recording that is idle")
        new_file = action is RecordingAction.START and (recorder is None or not recorder.capturing)
        if new_file:
            self._admit(runtime, call)
        if recorder is None:
            recorder = call.recorder = self._recorder(runtime, call.mode)
        if action is RecordingAction.START:
            attach(bridge, recorder)  # first: a refusal leaves the recording as it was
        try:
            recorder.apply(action)
        except RecordingError:
            if action is RecordingAction.START and not recorder.capturing:
                detach(bridge)
            raise
        if new_file:
            call.starts += 1
        call.files = list(recorder.files)
        if not recorder.capturing:
            detach(bridge)
            self._siprec_stop(call)
        elif action is RecordingAction.START and self.section.siprec is not None and call.siprec is None:
            call.siprec = _Siprec()
            recorder.notes["siprec"] = {"server": self.section.siprec.server, "state": "connecting"}
            self._driver.spawn(self._siprec_run(self.section.siprec, recorder, call.siprec))
        elif call.siprec is not None and call.siprec.streams is not None and action is RecordingAction.PAUSE:
            call.siprec.streams.pause()
        self._tell(runtime.call_id, call)

    # --- SIPREC ----------------------------------------------------------------------------------------
    async def _siprec_run(self, section: SiprecSection, recorder: CallRecorder, link: _Siprec) -> None:
        """INVITE the SRS; once answered, the recorder's PCM goes to it as RTP (see the module note)."""
        facts = recorder.facts
        outbound = facts.direction == "outbound"
        web, sip = (facts.from_uri, facts.to_uri) if outbound else (facts.to_uri, facts.from_uri)
        recorded = RecordedCall(facts.call_id, facts.sip_call_ids, web or f"{facts.user}", sip or "")
        try:
            if self._siprec_client is None:
                self._siprec_client = SiprecClient(self._driver.ua, section.server, section.transport.value)
            address = self._siprec_client.local_address()
            try:
                link.streams = SiprecStreams(address, recorder.settings.rate)
            except OSError:  # an advertised (public) address that is not ours: any, the SDP says it
                link.streams = SiprecStreams("::" if ":" in address else "0.0.0.0", recorder.settings.rate)
            session = await self._siprec_client.open(recorded, address, link.streams.ports)
        except (SiprecRefused, OSError, RuntimeError, ValueError) as exc:
            link.state = f"failed: {exc}"
            recorder.notes["siprec"] = {"server": section.server, "state": link.state}
            logger.warning("call=%s SIPREC to %s failed: %s", facts.call_id, section.server, exc)
            if link.streams is not None:
                link.streams.close()
            return
        if link.closed:  # the recording stopped meanwhile
            await session.close()
            return
        link.session, link.state = session, "recording"
        notes = {"server": section.server, "state": "answered", "sip_call_id": session.sip_call_id}
        recorder.notes["siprec"] = notes
        link.streams.send_to(session.destinations)
        recorder.listener = link.streams.pcm
        logger.info("call=%s SIPREC session %s to %s", facts.call_id, session.sip_call_id, section.server)
        if await session.ended_by_server() and not link.closed:
            link.closed, link.state = True, "ended by the server"
            recorder.notes["siprec"] = {**notes, "state": link.state}
            recorder.listener = None
            link.streams.close()
            logger.warning("call=%s SIPREC session ended by %s", facts.call_id, section.server)

    def _siprec_stop(self, call: _Call) -> None:
        link, call.siprec = call.siprec, None
        if link is None:
            return
        link.closed = True
        if link.state in ("connecting", "recording"):
            link.state = "stopped"
        call.siprec_state = link.state
        if call.recorder is not None:
            call.recorder.listener = None
        if link.streams is not None:
            link.streams.close()
        if link.session is not None:
            self._driver.spawn(link.session.close())

    def _recorder(self, runtime: CallRuntime, mode: RecordingMode) -> CallRecorder:
        machine = runtime.machine
        outbound = runtime.direction.value == "outbound"
        user_aor = machine.user.aor.aor if machine is not None and machine.user is not None else None
        remote = None if machine is None else machine.target if outbound else machine.remote_uri
        facts = CallFacts(
            call_id=runtime.call_id,
            direction=runtime.direction.value,
            mode=mode.value,
            user=_web_user(runtime),
            from_uri=user_aor if outbound else remote,
            to_uri=remote if outbound else user_aor,
            sip_call_ids=tuple(runtime.log_context.sip_call_ids),
        )
        settings = RecorderSettings(
            Path(self.section.directory), self.section.format.value, self.section.rate
        )
        return CallRecorder(settings, facts)

    def _tell(self, call_id: str, call: _Call) -> None:
        info = self.info(call_id)
        event = RecordingChanged(call_id, str(info["state"]), call.mode.value, tuple(call.files))
        registry = self._driver.registry
        sessions = registry.get(call_id).sessions if call_id in registry else frozenset()
        for session_id in sessions:
            session = self._driver.session(session_id)
            if session is not None and not session.closed:
                self._driver.spawn(session.send_event(event))


def _free_bytes(directory: Path) -> int | None:
    """Free bytes for an unprivileged writer on the disk of ``directory`` (or of its nearest existing
    parent: it is made at the first recording); None when it cannot be read."""
    path = directory.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def _web_user(runtime: CallRuntime) -> str | None:
    """The web user carrying the call (the runtime learns hers after the event that answered it)."""
    machine = runtime.machine
    return runtime.web_user or (machine.user.id if machine is not None and machine.user is not None else None)


def attach(bridge: CallMedia, recorder: CallRecorder) -> None:
    """``recorder`` hears both legs of ``bridge``: the SIP leg through a tap (the fast lane unlinked
    meanwhile), the web leg through the audio filter; idempotent. ``Conflict`` while another feature
    holds the filter (an audio stream to an app: one or the other, not both, for now)."""
    current = bridge.audio_filter
    if isinstance(current, _WebFilter):
        return
    if current is not None:  # an audio stream's (runtime/audio_streams), which refuses ours likewise
        raise Conflict("the call's audio is taken by another feature (an audio stream)", field="call_id")

    def sip(packet: RtpPacket) -> None:
        codecs = bridge.sip_audio
        if codecs is not None:
            recorder.feed(1, codecs.incoming, packet.ssrc, packet.timestamp, packet.payload_type,
                          packet.payload, time.monotonic())  # fmt: skip

    bridge.audio_filter = _WebFilter(recorder)
    bridge.add_tap(TAP, sip, recorder.close)


def detach(bridge: CallMedia) -> None:
    """The recorder's tap and filter removed; the fast lane may link again."""
    if isinstance(bridge.audio_filter, _WebFilter):
        bridge.audio_filter = None
    bridge.remove_tap(TAP)
