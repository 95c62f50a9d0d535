"""The desk phone: one pjsua2 endpoint, one account, up to four calls, driven by one thread.

How it runs: the endpoint is created with no worker threads (``threadCnt = 0`` for SIP and media), so
every pjsua2 callback happens inside ``libHandleEvents``, called by ``run()`` in a loop. Between two rounds
the loop takes commands from the stdin reader's queue, fires due timers (delayed answer, hang up after N
seconds) and releases ended calls. Nothing else ever calls into pjsua2.

pjsua2 rules followed here (ARCHITECTURE.md, "where pjsua2 is used"): keep every Endpoint/Account/Call referenced while
the library may use it; set codec priorities explicitly; destroy media ports (recorder, tone generator)
explicitly, in this thread; shut down in order: calls, media ports, account, library.
"""

from __future__ import annotations

import gc
import heapq
import itertools
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import pjsua2 as pj

from .call import PhoneCall, guarded, request_user
from .control import Command, CommandReader, EventSink, help_text
from .options import PhoneOptions

MAX_CALLS = 4  # compiled into the pjsua2 wheel (PJSUA_MAX_CALLS)


def pj_message(exc: pj.Error) -> str:
    """One line: what pjsua said and in which call, not where in its C++ source it said it."""
    return f"{exc.reason} (in {exc.title.split('(', 1)[0]})"


class PhoneAccount(pj.Account):  # type: ignore[misc]
    def __init__(self, phone: Phone) -> None:
        super().__init__()
        self.phone = phone

    @guarded
    def onRegState(self, prm: pj.OnRegStateParam) -> None:
        active = self.getInfo().regIsActive
        self.phone.emit(
            "registered", code=prm.code, reason=prm.reason, registered=active, expires=prm.expiration
        )
        if active and self.phone.options.call and not self.phone.called_at_start:
            self.phone.called_at_start = True
            self.phone.later(0, lambda: self.phone.execute({"cmd": "call", "uri": self.phone.options.call}))

    @guarded
    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        self.phone.incoming(prm.callId, request_user(prm.rdata.wholeMsg))


class Phone:
    def __init__(self, options: PhoneOptions) -> None:
        self.options = options
        self.sink = EventSink(options.control)
        self.endpoint = pj.Endpoint()
        self.account: PhoneAccount | None = None
        self.tone: pj.ToneGenerator | None = None
        self.calls: dict[int, PhoneCall] = {}  # by our call number
        self.called_at_start = False
        self.quitting = False
        self.clock_paused = False  # the conference bridge's clock, stopped while a call's media is torn down
        self.destroying = False
        self._numbers = itertools.count(1)
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_seq = itertools.count()
        self._commands = {
            "call": self._cmd_call,
            "answer": self._cmd_answer,
            "reject": self._cmd_reject,
            "hangup": self._cmd_hangup,
            "dtmf": self._cmd_dtmf,
            "info": self._cmd_info,
            "message": self._cmd_message,
            "hold": self._cmd_hold,
            "update": self._cmd_update,
            "unhold": self._cmd_unhold,
            "tone": self._cmd_tone,
            "transfer": self._cmd_transfer,
            "status": self._cmd_status,
            "rtp": self._cmd_rtp,
            "quit": self._cmd_quit,
            "help": self._cmd_help,
        }

    def emit(self, event: str, **fields: Any) -> None:
        self.sink.emit(event, **fields)

    def next_number(self) -> int:
        return next(self._numbers)

    def later(self, seconds: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (time.monotonic() + seconds, next(self._timer_seq), action))

    def wait_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Handle events until `condition()` holds (True) or `timeout` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() >= deadline:
                return False
            self.handle_events(10)
        return True

    def handle_events(self, msec: int) -> None:
        """One round of the library's events, then the conference clock runs again if a callback paused it."""
        self.endpoint.libHandleEvents(msec)
        self.resume_clock()

    # --- the conference clock --------------------------------------------------------------------------
    # The null sound device clocks the conference bridge from a thread of its own (a master port), which
    # writes each call's frames into its stream, and so into the stream's UDP media transport, with no lock
    # that call teardown takes (pjmedia's bridge removes ports on its clock since 2.14). Tearing down a call
    # destroys the stream and then its transport, which sets the transport's ioqueue key to NULL without
    # first clearing its "started" flag: a frame the clock was sending at that moment reaches
    # pj_ioqueue_sendto with that NULL key, and pjlib's assertion aborts the process (pjsip 2.15.1,
    # transport_udp.c transport_send_rtp/transport_send_rtcp2; fixed upstream by pjproject#5016, in no
    # release yet). So the clock is stopped (its thread joined) whenever the library is about to destroy a
    # stream (onStreamDestroyed), and started again as soon as the library call that did it returns:
    # a pause of a frame or two.
    def pause_clock(self) -> None:
        if not self.clock_paused and not self.destroying:
            self.endpoint.audDevManager().setNoDev()  # closes the null device: its clock thread is joined
            self.clock_paused = True

    def resume_clock(self) -> None:
        if self.clock_paused:
            self.clock_paused = False
            self.endpoint.audDevManager().setNullDev()

    # --- start-up --------------------------------------------------------------------------------------
    def start(self) -> None:
        o = self.options
        if o.record_dir is not None:
            o.record_dir.mkdir(parents=True, exist_ok=True)
        config = pj.EpConfig()
        config.uaConfig.threadCnt = 0  # no SIP worker thread: run() polls
        config.uaConfig.mainThreadOnly = False
        config.uaConfig.maxCalls = MAX_CALLS
        config.uaConfig.userAgent = "gateway-desk-phone (pjsua2)"
        config.medConfig.hasIoqueue = False  # RTP shares the SIP ioqueue, so libHandleEvents polls it too
        config.medConfig.threadCnt = 0  # and no media worker thread polls it instead
        config.medConfig.noVad = True  # send steady RTP, not comfort noise, so tone checks are simple
        config.medConfig.ecTailLen = 0  # no echo canceller: it must not eat a test's echoed tone
        config.logConfig.level = o.log_level
        config.logConfig.consoleLevel = o.log_level
        # pjlib announces itself on descriptor 1 (stderr by now, see EventSink) during libCreate, before
        # any log level applies: six lines above the prompt in `make run`. Silent unless --log-level.
        quiet = os.open(os.devnull, os.O_WRONLY) if o.log_level == 0 else -1
        saved = os.dup(1)
        try:
            if quiet >= 0:
                os.dup2(quiet, 1)
            self.endpoint.libCreate()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            if quiet >= 0:
                os.close(quiet)
        self.endpoint.libInit(config)
        self.endpoint.audDevManager().setNullDev()  # no sound card, but a clock for the conference bridge

        transport = pj.TransportConfig()
        transport.boundAddress = o.host
        transport.port = o.port
        transport_id = self.endpoint.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
        if o.tls_port:  # then the account speaks TLS only (a phone of a PBX that requires it)
            transport_id = self.endpoint.transportCreate(pj.PJSIP_TRANSPORT_TLS, self._tls_config())
        self.endpoint.libStart()
        self._set_codec_priorities()
        if o.tone:
            self.tone = self._make_tone(o.tone)

        account = pj.AccountConfig()
        name = f'"{o.display_name}" ' if o.display_name else ""
        account.idUri = f"{name}<{o.uri}>"
        account.sipConfig.transportId = transport_id
        account.mediaConfig.transportConfig.boundAddress = o.host
        account.mediaConfig.transportConfig.port = o.rtp_port
        if o.media_public:
            account.mediaConfig.transportConfig.publicAddress = o.media_public
        srtp_use = {"off": pj.PJMEDIA_SRTP_DISABLED, "optional": pj.PJMEDIA_SRTP_OPTIONAL}
        account.mediaConfig.srtpUse = srtp_use.get(o.srtp, pj.PJMEDIA_SRTP_MANDATORY)
        # SDES over plain SIP too (a test peer on loopback), unless it speaks TLS: then SDES only over it
        account.mediaConfig.srtpSecureSignaling = 1 if o.tls_port else 0
        prack_use = {"off": pj.PJSUA_100REL_NOT_USED, "optional": pj.PJSUA_100REL_OPTIONAL}
        account.callConfig.prackUse = prack_use.get(o.prack, pj.PJSUA_100REL_MANDATORY)
        account.natConfig.contactRewriteUse = 0  # loopback: what we bind is what others reach
        account.natConfig.viaRewriteUse = 0
        account.natConfig.sdpNatRewriteUse = 0
        if o.registrar:
            account.regConfig.registrarUri = o.registrar
            account.regConfig.retryIntervalSec = 0  # a failed registration stays failed (tests want that)
            account.regConfig.unregWaitMsec = 1000
            account.sipConfig.authCreds.append(
                pj.AuthCredInfo("digest", "*", o.auth_user or o.user, 0, o.password)
            )
        self.account = PhoneAccount(self)
        self.account.create(account, True)
        self.emit("ready", uri=o.uri, host=o.host, port=o.port, codecs=list(o.codecs))
        if o.call and not o.registrar:
            self.called_at_start = True
            self.later(0, lambda: self.execute({"cmd": "call", "uri": o.call}))

    def _tls_config(self) -> pj.TransportConfig:
        o = self.options
        config = pj.TransportConfig()
        config.boundAddress = o.host
        config.port = o.tls_port
        config.tlsConfig.certFile = str(o.tls_cert)
        config.tlsConfig.privKeyFile = str(o.tls_key)
        if o.tls_ca is not None:
            config.tlsConfig.CaListFile = str(o.tls_ca)
            config.tlsConfig.verifyServer = True  # the gateway's certificate must chain to tls_ca
        return config

    def _set_codec_priorities(self) -> None:
        wanted = [c.upper() for c in self.options.codecs]
        for codec in self.endpoint.codecEnum2():
            name = codec.codecId.split("/", 1)[0].upper()
            rank = wanted.index(name) if name in wanted else None
            # 0 disables a codec; the first wanted codec gets 255, the next 254, ...
            self.endpoint.codecSetPriority(codec.codecId, 0 if rank is None else 255 - rank)

    def _make_tone(self, freq: float) -> pj.ToneGenerator:
        tone = pj.ToneGenerator()
        tone.createToneGenerator()
        desc = pj.ToneDesc()
        desc.freq1 = int(freq)
        desc.freq2 = 0  # a single sine, not a dual-tone pair
        desc.on_msec = 1000
        desc.off_msec = 0
        desc.volume = 0  # pjmedia's default level
        tones = pj.ToneDescVector()
        tones.append(desc)
        tone.play(tones, True)  # loop forever
        return tone

    # --- the loop --------------------------------------------------------------------------------------
    def run(self, reader: CommandReader | None) -> None:
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "quitting", True))
        signal.signal(signal.SIGINT, lambda *_: setattr(self, "quitting", True))
        while not self.quitting:
            self.handle_events(20)
            if reader is not None:
                for command in reader.pending():
                    self.execute(command)
                    self.resume_clock()  # a command that ended a call (hangup) paused it
            while self._timers and self._timers[0][0] <= time.monotonic():
                action = heapq.heappop(self._timers)[2]
                try:
                    action()
                except pj.Error as exc:  # e.g. the call ended while the timer waited
                    self.emit("error", cmd=None, message=exc.info())
                # A timer's closure may hold a Call: kept alive here it would be destroyed only after
                # libDestroy (in shutdown), and pjsua aborts the process on it.
                del action
                self.resume_clock()
            self._release_ended_calls()
        self.shutdown()

    def execute(self, command: Command) -> None:
        """Run one command; answer {"event": "ok"|"error", "cmd": ..., "id": ...} (id echoed if given)."""
        name = command.get("cmd")
        reply = {"cmd": name, "id": command["id"]} if "id" in command else {"cmd": name}
        if name == "eof":
            if self.options.control:  # whoever drove us is gone: do not linger
                self.quitting = True
            return
        handler = self._commands.get(str(name))
        if handler is None:
            self.emit("error", **reply, message=f"unknown command {name!r} (type help for the list)")
            return
        try:
            result = handler(command) or {}
        except pj.Error as exc:
            self.emit("error", **reply, message=pj_message(exc))
        except KeyError as exc:  # a command without its argument: `dtmf` alone
            self.emit("error", **reply, message=f"{name} needs {exc.args[0]!r} (type help)")
        except (ValueError, LookupError) as exc:
            self.emit("error", **reply, message=str(exc))
        else:
            if name != "help" or self.options.control:  # a person reads the list, not "ok" after it
                self.emit("ok", **reply, **result)

    def _release_ended_calls(self) -> None:
        for number, call in list(self.calls.items()):
            if call.ended:
                call.release_media()
                del self.calls[number]  # dropped outside its own callback, after DISCONNECTED

    # --- incoming calls --------------------------------------------------------------------------------
    def incoming(self, call_id: int, dialled: str) -> None:
        """A new INVITE to user part `dialled`: answered per options.answer_for (a busy line, 404...)."""
        call = PhoneCall(self, next(self._numbers), call_id)
        self.calls[call.number] = call
        info = call.getInfo()
        self.emit("incoming", call=call.number, **{"from": info.remoteUri, "to": info.localUri})
        mode = self.options.answer_for(dialled)
        if mode == "busy" or mode == "decline" or mode.isdigit():
            code = {"busy": 486, "decline": 603}.get(mode) or int(mode)
            self._answer(call, code)
            return
        self._answer(call, 180)
        if mode == "auto":
            self.later(self.options.answer_delay_ms / 1000, lambda: self._answer_if_ringing(call))

    def _answer(self, call: PhoneCall, code: int) -> None:
        prm = pj.CallOpParam(True)
        prm.statusCode = code
        call.answer(prm)

    def _answer_if_ringing(self, call: PhoneCall) -> None:
        if not call.ended and call.getInfo().state in (pj.PJSIP_INV_STATE_INCOMING, pj.PJSIP_INV_STATE_EARLY):
            self._answer(call, 200)

    def call_confirmed(self, call: PhoneCall) -> None:
        if self.options.hangup_after:
            self.later(self.options.hangup_after, lambda: self._hangup_if_alive(call))

    def _hangup_if_alive(self, call: PhoneCall) -> None:
        if not call.ended:
            call.hangup(pj.CallOpParam(True))

    # --- commands --------------------------------------------------------------------------------------
    def _call(self, command: Command) -> PhoneCall:
        """The call a command is about: {"call": N}, else the newest call still up."""
        if "call" in command:
            number = int(command["call"])
            if number not in self.calls:
                raise LookupError(f"no call {number}")
            return self.calls[number]
        alive = [c for c in self.calls.values() if not c.ended]
        if not alive:
            raise LookupError("no call")
        return alive[-1]

    def _cmd_call(self, command: Command) -> dict[str, Any]:
        uri = self.options.dial_uri(str(command["uri"]))  # `call 1001`: at the dial domain
        call = PhoneCall(self, next(self._numbers))
        prm = pj.CallOpParam(True)
        prm.opt.audioCount = 1
        prm.opt.videoCount = 0
        call.makeCall(uri, prm)
        self.calls[call.number] = call
        return {"call": call.number, "uri": uri}

    def _cmd_answer(self, command: Command) -> dict[str, Any]:
        call = self._call(command)
        self._answer(call, int(command.get("code", 200)))
        return {"call": call.number}

    def _cmd_reject(self, command: Command) -> dict[str, Any]:
        call = self._call(command)
        self._answer(call, int(command.get("code", 486)))
        return {"call": call.number}

    def _cmd_hangup(self, command: Command) -> dict[str, Any]:
        call = self._call(command)
        prm = pj.CallOpParam(True)
        if "code" in command:
            prm.statusCode = int(command["code"])
        call.hangup(prm)
        return {"call": call.number}

    def _cmd_dtmf(self, command: Command) -> dict[str, Any]:
        call = self._call(command)
        prm = pj.CallSendDtmfParam()
        prm.digits = str(command["digits"])
        method = command.get("method", "rfc2833")
        prm.method = pj.PJSUA_DTMF_METHOD_SIP_INFO if method == "info" else pj.PJSUA_DTMF_METHOD_RFC2833
        call.sendDtmf(prm)
        return {"call": call.number}

    def _cmd_info(self, command: Command) -> dict[str, Any]:
        call = self._call(command)
        prm = pj.CallSendRequestParam()
        prm.method = "INFO"
        prm.txOption.contentType = str(command.get("content_type", "text/plain"))
        prm.txOption.msgBody = str(command.get("body", ""))
        call.sendRequest(prm)
        return {"call": call.number}

    def _cmd_message(self, command: Command) -> dict[str, Any]:
        """{"cmd": "message", "call": n, "body": "..."}: MESSAGE (text/plain) in the call's dialog."""
        call = self._call(command)
        prm = pj.SendInstantMessageParam()
        prm.contentType = str(command.get("content_type", "text/plain"))
        prm.content = str(command.get("body", ""))
        call.sendInstantMessage(prm)
        return {"call": call.number}

    def _cmd_hold(self, command: Command) -> dict[str, Any]:
        call = self._call(command)
        call.setHold(pj.CallOpParam(True))  # re-INVITE with a=sendonly
        return {"call": call.number}

    def _cmd_update(self, command: Command) -> dict[str, Any]:
        """{"cmd": "update"}: an UPDATE with a new offer (RFC 3311), a=sendrecv."""
        call = self._call(command)
        prm = pj.CallOpParam(True)
        prm.opt.flag = pj.PJSUA_CALL_UNHOLD
        call.update(prm)
        return {"call": call.number}

    def _cmd_unhold(self, command: Command) -> dict[str, Any]:
        call = self._call(command)
        prm = pj.CallOpParam(True)
        prm.opt.flag = pj.PJSUA_CALL_UNHOLD  # re-INVITE with a=sendrecv
        call.reinvite(prm)
        return {"call": call.number}

    def _cmd_transfer(self, command: Command) -> dict[str, Any]:
        """{"cmd": "transfer", "to": URI}: REFER the far end to URI (blind); with "replaces": N, attended:
        the far end calls the far end of our call N, replacing it (RFC 3891)."""
        call = self._call(command)
        prm = pj.CallOpParam(True)
        if "replaces" in command:
            call.xferReplaces(self.calls[int(command["replaces"])], prm)
        else:
            call.xfer(str(command["to"]), prm)
        return {"call": call.number}

    def _cmd_tone(self, command: Command) -> dict[str, Any]:
        """{"cmd": "tone", "freq": 880} switches the tone on every call; freq 0 stops it."""
        freq = float(command.get("freq", 0))
        old, self.tone = self.tone, (self._make_tone(freq) if freq else None)
        for call in self.calls.values():
            if self.tone is not None and call.audio is not None and not call.ended:
                self.tone.startTransmit(call.audio)
        if old is not None:
            old.stop()
            del old  # destroyed here, in the library's thread
        return {"freq": freq}

    def _cmd_status(self, command: Command) -> dict[str, Any]:
        assert self.account is not None
        info = self.account.getInfo()
        calls = {n: c.getInfo().stateText for n, c in self.calls.items() if not c.ended}
        return {"registered": info.regIsActive, "reg_code": info.regStatus, "calls": calls}

    def _cmd_rtp(self, command: Command) -> dict[str, Any]:
        """{"cmd": "rtp", "call": n}: the call's audio stream counters as pjmedia keeps them: RTP packets
        received and sent, and the address the last received packet came from (what reached the phone,
        whatever its recording plays)."""
        call = self._call(command)
        info = call.getInfo()  # held: its media vector refers into it (SWIG)
        index = next((m.index for m in info.media if m.type == pj.PJMEDIA_TYPE_AUDIO), None)
        if index is None:
            raise LookupError(f"call {call.number} has no audio stream")
        rtcp = call.getStreamStat(index).rtcp
        source = call.getMedTransportInfo(index).srcRtpName
        return {"call": call.number, "received": rtcp.rxStat.pkt, "sent": rtcp.txStat.pkt, "source": source}

    def _cmd_quit(self, command: Command) -> None:
        self.quitting = True

    def _cmd_help(self, command: Command) -> dict[str, Any]:
        o = self.options
        dial_domain = o.dial_domain or (o.aor_domain if o.registrar else "")
        self.emit("help", text=help_text(dial_domain))
        return {"commands": sorted(self._commands)}

    # --- shutdown --------------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Calls, then media ports, then the account, then the library: in that order."""
        self.endpoint.hangupAllCalls()
        self.resume_clock()
        deadline = time.monotonic() + 3
        while any(not c.ended for c in self.calls.values()) and time.monotonic() < deadline:
            self.handle_events(20)
        for call in self.calls.values():
            call.ended = True
        self._release_ended_calls()
        if self.tone is not None:
            self.tone.stop()
            self.tone = None
        if self.account is not None:
            registered = self.account.getInfo().regIsActive
            self.account.shutdown()  # sends the un-REGISTER if registered
            deadline = time.monotonic() + (0.5 if registered else 0)
            while time.monotonic() < deadline:  # let the un-REGISTER get its answer
                self.handle_events(20)
            self.account = None
        self.emit("stopped")
        # A pjsua2 Call deleted after libDestroy aborts the process (its destructor calls
        # pjsua_call_set_user_data with an id the destroyed library no longer knows: the assertion
        # `call_id>=0 && call_id<max_calls`). A call hung up at shutdown can still be referenced from
        # the library's side when we get here, so every Call left is disowned: its C++ object is then
        # never deleted from Python (the process is ending; the library frees its own state).
        self._timers.clear()
        gc.collect()
        for leftover in [o for o in gc.get_objects() if isinstance(o, pj.Call)]:
            leftover.thisown = False
        self.resume_clock()
        self.destroying = True  # libDestroy closes the sound device itself
        # NO_RX_MSG: we already waited for the un-REGISTER above; without it pjsua sleeps up to 1 s more.
        self.endpoint.libDestroy(pj.PJSUA_DESTROY_NO_RX_MSG)


def main(options: PhoneOptions) -> int:
    phone = Phone(options)
    try:
        phone.start()
    except pj.Error as exc:  # e.g. the SIP port is taken
        phone.emit("error", cmd="start", message=pj_message(exc))
        phone.endpoint.libDestroy(pj.PJSUA_DESTROY_NO_RX_MSG)
        return 1
    reader = CommandReader(sys.stdin, phone.sink)
    reader.start()
    phone.run(reader)
    return 0
