"""One call of the desk phone: a pjsua2 ``Call`` whose callbacks become events.

pjsua2 calls these methods from the library's thread (the phone's main thread, as the endpoint runs with
no worker threads). They only read state, emit events and wire the conference bridge; anything that
destroys objects (the recorder, the call itself) is left to the phone's loop after the callback returns.

Audio routing on the conference bridge once the call's media is up:

    tone generator ──► call            (--play-tone)
    call ──► call                      (--echo: what arrives goes straight back)
    call ──► WAV recorder              (--record-dir: what the far side sent)
    silent tone generator ──► recorder (the recording keeps wall time: a gap in the call's port is silence)
"""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pjsua2 as pj

if TYPE_CHECKING:
    from .phone import Phone

STATES = {
    pj.PJSIP_INV_STATE_NULL: "NULL",
    pj.PJSIP_INV_STATE_CALLING: "CALLING",
    pj.PJSIP_INV_STATE_INCOMING: "INCOMING",
    pj.PJSIP_INV_STATE_EARLY: "EARLY",
    pj.PJSIP_INV_STATE_CONNECTING: "CONNECTING",
    pj.PJSIP_INV_STATE_CONFIRMED: "CONFIRMED",
    pj.PJSIP_INV_STATE_DISCONNECTED: "DISCONNECTED",
}
MEDIA_STATUS = {
    pj.PJSUA_CALL_MEDIA_NONE: "none",
    pj.PJSUA_CALL_MEDIA_ACTIVE: "active",
    pj.PJSUA_CALL_MEDIA_LOCAL_HOLD: "local_hold",
    pj.PJSUA_CALL_MEDIA_REMOTE_HOLD: "remote_hold",
    pj.PJSUA_CALL_MEDIA_ERROR: "error",
}
DTMF_METHODS = {pj.PJSUA_DTMF_METHOD_RFC2833: "rfc2833", pj.PJSUA_DTMF_METHOD_SIP_INFO: "info"}


def split_message(whole: str) -> tuple[dict[str, str], str]:
    """Headers (lower-case names, first occurrence) and body of a raw SIP message."""
    head, _, body = whole.partition("\r\n\r\n")
    headers: dict[str, str] = {}
    for line in head.split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers.setdefault(name.strip().lower(), value.strip())
    if "c" in headers:  # compact form of Content-Type (RFC 3261 §7.3.3)
        headers.setdefault("content-type", headers["c"])
    return headers, body


def request_user(whole: str) -> str:
    """The user part of a request's Request-URI (RFC 3261 §7.1, §19.1.1): "2001" for
    ``INVITE sip:2001@127.0.0.1:5070 SIP/2.0``; empty when it has none."""
    parts = whole.split("\r\n", 1)[0].split(" ")
    if len(parts) != 3:
        return ""
    _, _, rest = parts[1].partition(":")  # sip:, sips:, tel:
    user, at, _ = rest.partition("@")
    if not at and not parts[1].lower().startswith("tel:"):
        return ""
    return user.split(";", 1)[0]


Callback = TypeVar("Callback", bound=Callable[..., None])


def guarded(callback: Callback) -> Callback:
    """Turn an exception in a pjsua2 callback into an "error" event instead of letting it cross into C++."""

    @functools.wraps(callback)
    def wrapper(self: Any, *args: Any) -> None:
        try:
            callback(self, *args)
        except Exception as exc:  # reported, and the phone keeps running
            message = exc.info() if isinstance(exc, pj.Error) else f"{type(exc).__name__}: {exc}"
            self.phone.emit("error", cmd=None, where=callback.__name__, message=message)
            traceback.print_exc()  # on stderr, with the library's log

    return wrapper  # type: ignore[return-value]


def wav_is_complete(path: Path | None) -> bool:
    """True once the WAV header's RIFF size matches the file (pjmedia writes it when the file closes)."""
    try:
        with open(path or "", "rb") as f:
            head = f.read(8)
            size = f.seek(0, 2)
    except OSError:
        return False
    return len(head) == 8 and head[:4] == b"RIFF" and int.from_bytes(head[4:8], "little") == size - 8


class PhoneCall(pj.Call):  # type: ignore[misc]
    def __init__(self, phone: Phone, number: int, call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(phone.account, call_id)
        self.phone = phone
        self.number = number  # ours, never reused (pjsua reuses its call ids 0..3)
        self.ended = False
        self.audio: pj.AudioMedia | None = None
        self.audio_slot = -1
        self.recorder: pj.AudioMediaRecorder | None = None
        # a silent source always connected to the recorder: the conference bridge writes a frame to a port
        # only while something transmits to it, so without it a re-INVITE that replaces the call's port
        # (pjsua recreates the stream) left its gap out of the file instead of recording it as silence
        self.silence: pj.ToneGenerator | None = None
        self.wav_path: Path | None = None

    # --- callbacks -------------------------------------------------------------------------------------
    @guarded
    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        info = self.getInfo()
        state = STATES.get(info.state, str(info.state))
        self.phone.emit(
            "state", call=self.number, state=state, code=info.lastStatusCode, reason=info.lastReason
        )
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.phone.call_confirmed(self)
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.ended = True  # the phone's loop releases us once this callback has returned

    @guarded
    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        info = self.getInfo()
        for media in info.media:
            if media.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            status = MEDIA_STATUS.get(media.status, str(media.status))
            codec = ""
            if media.audioConfSlot >= 0:
                codec = self.getStreamInfo(media.index).codecName
                self._wire_audio(media.index, media.audioConfSlot)
            self.phone.emit("media", call=self.number, status=status, codec=codec)

    @guarded
    def onStreamDestroyed(self, prm: pj.OnStreamDestroyedParam) -> None:
        """pjsua is about to destroy this call's stream (the call ends, or a re-INVITE replaces it), then
        perhaps its media transport: the conference clock must not be sending into it meanwhile (see
        Phone.pause_clock). The phone's loop starts the clock again once the library call returns."""
        self.phone.pause_clock()

    @guarded
    def onCallTransferRequest(self, prm: pj.OnCallTransferRequestParam) -> None:
        """A REFER (RFC 3515): pjsua answers 202 and calls the target; the new call is one of ours, so
        its states and media are reported like any other (and it plays the phone's tone)."""
        if prm.statusCode // 100 != 2:
            return
        call = PhoneCall(self.phone, self.phone.next_number())
        self.phone.calls[call.number] = call
        prm.newCall = call
        self.phone.emit("transfer_request", call=self.number, to=prm.dstUri, new_call=call.number)

    @guarded
    def onCallReplaced(self, prm: pj.OnCallReplacedParam) -> None:
        """An INVITE with Replaces (RFC 3891 §3) took this call over: pjsua answers the new call and hangs
        this one up. The new call is one of ours, reported like any other (states, media, recording)."""
        call = PhoneCall(self.phone, self.phone.next_number(), prm.newCallId)
        self.phone.calls[call.number] = call
        prm.newCall = call
        info = call.getInfo()
        self.phone.emit("replaced", call=self.number, new_call=call.number, **{"from": info.remoteUri})

    @guarded
    def onCallTransferStatus(self, prm: pj.OnCallTransferStatusParam) -> None:
        """The NOTIFYs of our own REFER (``transfer`` command): the referred call's status."""
        self.phone.emit(
            "transfer_status", call=self.number, code=prm.statusCode, reason=prm.reason, final=prm.finalNotify
        )

    @guarded
    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:
        method = DTMF_METHODS.get(prm.method, str(prm.method))
        self.phone.emit("dtmf", call=self.number, digit=prm.digit, method=method)

    @guarded
    def onCallTsxState(self, prm: pj.OnCallTsxStateParam) -> None:
        """INFO in either direction: requests received become "info" events, answers "info_response". A
        BYE received becomes a "bye" event with its Reason header (RFC 3326; "" without one)."""
        event = prm.e
        if event.type != pj.PJSIP_EVENT_TSX_STATE:
            return
        tsx_event = event.body.tsxState
        tsx = tsx_event.tsx
        received = tsx.role == pj.PJSIP_ROLE_UAS and tsx.state == pj.PJSIP_TSX_STATE_TRYING
        if tsx.method == "BYE" and received and tsx_event.type == pj.PJSIP_EVENT_RX_MSG:
            headers, _ = split_message(tsx_event.src.rdata.wholeMsg)
            self.phone.emit("bye", call=self.number, reason=headers.get("reason", ""))
            return
        if tsx.method != "INFO":
            return
        if received and tsx_event.type == pj.PJSIP_EVENT_RX_MSG:
            headers, body = split_message(tsx_event.src.rdata.wholeMsg)
            content_type = headers.get("content-type", "")
            self.phone.emit("info", call=self.number, content_type=content_type, body=body)
            return  # pjsua answers it 200 itself (and turns dtmf-relay into onDtmfDigit)
        # The final answer to our INFO, reported once: when the transaction completes (UDP) or ends (TCP).
        completed = tsx.state == pj.PJSIP_TSX_STATE_COMPLETED or (
            tsx.state == pj.PJSIP_TSX_STATE_TERMINATED and tsx_event.prevState != pj.PJSIP_TSX_STATE_COMPLETED
        )
        if tsx.role == pj.PJSIP_ROLE_UAC and tsx.statusCode >= 200 and completed:
            self.phone.emit("info_response", call=self.number, code=tsx.statusCode, reason=tsx.statusText)

    @guarded
    def onInstantMessage(self, prm: pj.OnInstantMessageParam) -> None:
        """A MESSAGE in the call's dialog (RFC 3428 §4): pjsua answers it 200 itself."""
        self.phone.emit("message", call=self.number, content_type=prm.contentType, body=prm.msgBody)

    @guarded
    def onInstantMessageStatus(self, prm: pj.OnInstantMessageStatusParam) -> None:
        """The final answer to our MESSAGE in the dialog."""
        self.phone.emit("message_status", call=self.number, code=int(prm.code), reason=prm.reason)

    # --- audio -----------------------------------------------------------------------------------------
    def _wire_audio(self, index: int, slot: int) -> None:
        # Wired at every media change, even to the same slot: a re-INVITE that moves the far end's media
        # (a takeover) replaces the stream's port, and pjmedia's bridge removes the old one on its clock
        # thread. Usually the new port gets another slot; when the removal ran first it gets the same one,
        # with none of its connections: the phone sent silence (a takeover test, twice in a series).
        # Connecting what is connected already is a no-op.
        self.audio_slot = slot
        self.audio = self.getAudioMedia(index)
        tone = self.phone.tone
        if tone is not None:
            tone.startTransmit(self.audio)
        if self.phone.options.echo:
            self.audio.startTransmit(self.audio)
        record_dir = self.phone.options.record_dir
        if record_dir is not None and self.recorder is None and self.wav_path is None:
            self.wav_path = record_dir / f"call-{self.number}.wav"
            recorder = pj.AudioMediaRecorder()
            try:
                recorder.createRecorder(str(self.wav_path))
            except pj.Error as exc:
                self.phone.emit("error", cmd=None, call=self.number, message=f"recorder: {exc.info()}")
                return
            self.recorder = recorder
            silence = pj.ToneGenerator()
            silence.createToneGenerator(16000, 1)  # plays nothing: a clock for the recording
            silence.startTransmit(recorder)
            self.silence = silence
            self.phone.emit("recording", call=self.number, path=str(self.wav_path))
        if self.recorder is not None:
            self.audio.startTransmit(self.recorder)

    def release_media(self) -> None:
        """Close the WAV file (its header gets its final length only now) and drop the media objects.

        Called once the call has ended. Its conference port is gone by then, so no stopTransmit here:
        pjlib asserts (and aborts the process) on a port id of -1."""
        self.silence = None
        if self.recorder is not None:
            self.recorder = None  # the last reference: pjsua2 destroys the recorder here...
            self.phone.wait_until(lambda: wav_is_complete(self.wav_path), timeout=2)  # ...and closes it soon
            self.phone.emit("recorded", call=self.number, path=str(self.wav_path))
        self.audio = None
