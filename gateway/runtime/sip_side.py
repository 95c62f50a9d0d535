"""`SipSide`: one call's SIP leg as the driver sees it: the UA's call object, its commands, its events.

Commands that only hand something to the UA (INVITE, CANCEL, a response) run at once; requests that
wait for the far end (BYE, re-INVITE, INFO) run as tasks of the call and feed their outcome back as
events. The UA call's event stream is pumped into the call as call events (translate.py); the UA itself
answers CANCEL with 487 and ACKs every 2xx. Each SIP command has its handler in one dispatch table.
This module owns a call's SIP leg; it imports the call layer's commands and events, the SIP UA, sipcore
and the runtime's translations and dispatch table, never the driver or the media.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Final

from gateway.calls.boundary import commands as cmd
from gateway.calls.boundary import events as ev
from gateway.calls.states import CallDirection
from gateway.config.addresses import family_of
from gateway.media.codecs.dtmf import DTMF_RELAY, format_dtmf_relay
from gateway.runtime.dispatch import Table
from gateway.runtime.translate import sip_to_call_events
from gateway.sip import UserAgent
from gateway.sip.useragent.incoming import IncomingCall
from gateway.sip.useragent.outgoing import OutgoingCall
from gateway.sip.useragent.ua_calls import Call as SipCall
from gateway.sip.useragent.ua_calls import CallError, MessageGate
from gateway.sip.useragent.ua_calls import CallState as SipCallState
from sipcore.dialogs.refer import Replaces, refer_to
from sipcore.errors import SIPError
from sipcore.location.routing import uri_target
from sipcore.syntax.headers import NameAddr, warning_value
from sipcore.syntax.uri import SipURI, parse_uri

logger = logging.getLogger(__name__)
_ANSWERED = (SipCallState.CONFIRMED, SipCallState.ANSWERED)  # a 2xx sent or received

SipCommand = (
    cmd.SipInvite | cmd.SipCancel | cmd.SipRespond | cmd.SipBye | cmd.SipReinvite | cmd.SipRespondReinvite
    | cmd.SipInfoDtmf | cmd.SipInfo | cmd.SipMessage | cmd.SipRefer | cmd.SipAnswerRefer | cmd.SipNotifyRefer
    | cmd.SipTakeOver | cmd.SipRefuseReplacing
)  # fmt: skip

SipCallLookup = Callable[[str], "SipCall | None"]  # another call of the gateway's SIP leg, by call id


class SipSide:
    def __init__(
        self,
        call_id: str,
        direction: CallDirection,
        feed: Callable[[ev.Event], None],
        spawn: Callable[[Coroutine[Any, Any, None]], None],
        ua: Callable[[], UserAgent],
        other_call: SipCallLookup | None = None,
    ) -> None:
        self.call_id = call_id
        self._other_call = other_call
        self.consult_call_id: str | None = None  # the consultation call of our attended transfer
        self.direction = direction
        self.call: SipCall | None = None
        # An INVITE with Replaces naming this call (RFC 3891): offered by the driver, answered as the SIP
        # party's re-INVITE once the call core takes it (SipTakeOver); the old leg is retired then.
        self.replacing: IncomingCall | None = None
        self._taken: IncomingCall | None = None
        self._retired: set[SipCall] = set()
        self._feed = feed
        self._spawn = spawn
        self._ua = ua
        # the Call-ID of our first INVITE, chosen when the call was made (its log lines carry it from the
        # first); later INVITEs (a followed redirect) get new ones from the UA
        self.next_call_id: str | None = None
        # MESSAGEs in the dialog: the call's owner's rate limit (limits.message_rate), set on every leg
        self.message_gate: MessageGate | None = None

    def attach(self, call: SipCall) -> None:
        self.call = call
        call.message_gate = self.message_gate
        call.transfers = (
            True  # REFER and NOTIFY reach this call's machine (gateway/calls/connected/transfer.py)
        )
        self._spawn(self._pump(call))

    async def _pump(self, call: SipCall) -> None:
        async for event in call.events():
            if call in self._retired:  # replaced by an INVITE with Replaces: its ending is not the call's
                continue
            for item in sip_to_call_events(event, self.direction):
                self._feed(item)

    def family(self) -> str | None:
        """The address family ("IP4", "IP6") an incoming call's INVITE came from; None otherwise."""
        call = self.call
        return family_of(call.source.host) if isinstance(call, IncomingCall) else None

    def _live(self) -> SipCall | None:
        call = self.call
        return call if call is not None and not call.ended else None

    async def execute(self, command: SipCommand) -> None:
        await _COMMANDS.handler(type(command))(self, command)

    async def _invite(self, command: cmd.SipInvite) -> None:
        target, headers = command.target, command.headers
        try:
            ua = self._ua()
            hop = uri_target(parse_uri(target)) if command.direct else None  # a redirect's own host
            if hop is None and command.pbx is not None:  # several PBXs: the chosen one's (config/pbxs.py)
                hop = dict(ua.settings.pbx_targets).get(command.pbx)
            sip_call_id, self.next_call_id = self.next_call_id, None
            outgoing = await ua.invite(
                target, command.sdp, command.identity, headers=headers, next_hop=hop, call_id=sip_call_id
            )
        except (SIPError, RuntimeError, ValueError) as exc:
            logger.warning("call=%s INVITE to %s not sent: %s", self.call_id, target, exc)
            self._feed(ev.SipFailed(503, "Service Unavailable"))
            return
        outgoing.info_packages = _recv_info(headers)
        self.attach(outgoing)

    async def _cancel(self, command: cmd.SipCancel) -> None:
        call = self._live()
        if isinstance(call, OutgoingCall) and call.state in _ANSWERED:
            # The 2xx came before the core's CANCEL (its SipAnswered still queued): too late to
            # cancel (RFC 3261 §9.1), end the dialog with a BYE (§15) as the UA does for a 2xx
            # crossing a CANCEL. Was: CallError, and the call never closed.
            self._spawn(self._bye(call))
        elif isinstance(call, OutgoingCall):
            call.cancel()  # held back by the UA until a provisional response came (RFC 3261 §9.1)

    async def _respond_command(self, command: cmd.SipRespond) -> None:
        c = command
        self._respond(self._live(), c.status, c.phrase, c.sdp, c.warning, c.headers)

    async def _bye_command(self, command: cmd.SipBye) -> None:
        call = self._live()
        if call is None:
            self._feed(ev.SipLegClosed())
        elif call.state in (SipCallState.CONFIRMED, SipCallState.ANSWERED):
            self._spawn(self._bye(call))
        elif isinstance(call, OutgoingCall):
            call.cancel()  # a 2xx that crosses the CANCEL is ACKed and BYEd by the UA

    async def _reinvite_command(self, command: cmd.SipReinvite) -> None:
        call = self._live()
        if call is not None:
            self._spawn(self._reinvite(call, command.sdp))

    async def _respond_reinvite(self, command: cmd.SipRespondReinvite) -> None:
        status, phrase, body = command.status, command.phrase, command.sdp
        if self._taken is not None:
            self._answer_replacing(self._taken, status, phrase, body)
            return
        call = self._live()
        if call is None:
            return
        if 200 <= status < 300 and body is not None:
            call.answer_reinvite(body)
        else:
            call.reject_reinvite(status, phrase or None)

    async def _info_dtmf(self, command: cmd.SipInfoDtmf) -> None:
        self.send_info(DTMF_RELAY, format_dtmf_relay(command.digit, command.duration_ms))

    async def _info_command(self, command: cmd.SipInfo) -> None:
        live = self._live()
        if live is None:
            self._feed(ev.SipInfoResult(481))
        else:
            self._spawn(self._relay_info(live, command.content_type, command.body))

    async def _message_command(self, command: cmd.SipMessage) -> None:
        live = self._live()
        if live is None:
            self._feed(ev.SipMessageResult(481))
        else:
            self._spawn(self._relay_message(live, command.body))

    async def _refer_command(self, command: cmd.SipRefer) -> None:
        call = self._live()
        if call is not None:
            self._spawn(self._refer(call, command.target, command.consult_call_id))

    async def _answer_refer(self, command: cmd.SipAnswerRefer) -> None:
        call = self._live()
        if call is not None:
            call.transfer.answer(command.status, command.phrase)

    async def _notify_refer(self, command: cmd.SipNotifyRefer) -> None:
        call = self._live()
        if call is not None:
            self._spawn(call.transfer.notify(command.status, command.phrase))

    async def _take_over(self, command: cmd.SipTakeOver) -> None:
        self._taken, self.replacing = self.replacing, None

    async def _refuse_replacing(self, command: cmd.SipRefuseReplacing) -> None:
        new, self.replacing = self.replacing or self._taken, None
        self._taken = None  # taken over, then refused (its offer unusable, the browser left)
        if new is not None and not new.ended:
            new.reject(command.status, command.phrase or None)

    def _answer_replacing(self, new: IncomingCall, status: int, phrase: str, body: str | None) -> None:
        """The answer to the INVITE with Replaces (RFC 3891 §3): a 2xx makes it the call's SIP leg and
        ends the old dialog (BYE; CANCEL when it was our early dialog); a refusal keeps the old leg."""
        self._taken = None
        if new.ended or new.state not in (SipCallState.INCOMING, SipCallState.EARLY):
            logger.info("call=%s the replacing INVITE is gone: not answered", self.call_id)
            return
        if not (200 <= status < 300 and body is not None):
            new.reject(status, phrase or None)
            return
        try:
            new.answer(body)
        except CallError as exc:  # cancelled meanwhile
            logger.info("call=%s the replacing INVITE was not answered: %s", self.call_id, exc)
            return
        old = self.call
        self.attach(new)
        if old is None or old.ended:
            return
        self._retired.add(old)
        logger.info("call=%s SIP leg %s replaced by %s", self.call_id, old.call_id, new.call_id)
        if isinstance(old, OutgoingCall) and old.state is not SipCallState.CONFIRMED:
            old.cancel()
        elif isinstance(old, IncomingCall) and old.state in (SipCallState.INCOMING, SipCallState.EARLY):
            old.reject(487, "Request Terminated")
        else:
            self._spawn(self._retire(old))

    async def _retire(self, old: SipCall) -> None:
        try:
            await old.bye()
        except (SIPError, OSError, CallError) as exc:
            logger.info("call=%s BYE of the replaced leg failed: %s", self.call_id, exc)

    def _respond(
        self,
        call: SipCall | None,
        status: int,
        phrase: str,
        body: str | None,
        warning: tuple[int, str] | None = None,
        extra: Sequence[tuple[str, str]] = (),
    ) -> None:
        if not isinstance(call, IncomingCall):
            logger.info("call=%s no INVITE to answer with %s", self.call_id, status)
            return
        if status < 200:
            if body is not None:
                call.progress(body)
            elif status != 100:
                call.info_packages = _recv_info(extra) or call.info_packages
                call.ring(extra)  # a pass-through call's: Recv-Info: trickle-ice (RFC 8840 §4.1)
        elif status < 300:
            assert body is not None  # SipRespond refuses a 2xx without SDP
            call.info_packages = _recv_info(extra)
            call.answer(body, extra)
        else:
            headers = (("Warning", warning_value(*warning)),) if warning is not None else ()
            call.reject(status, phrase or None, headers=headers)

    def send_info(self, content_type: str, body: str, headers: Sequence[tuple[str, str]] = ()) -> None:
        call = self._live()
        if call is not None:
            self._spawn(self._info(call, content_type, body, headers))

    async def _bye(self, call: SipCall) -> None:
        try:
            await call.bye()
        except (SIPError, OSError) as exc:
            logger.info("call=%s BYE failed: %s", self.call_id, exc)
            self._feed(ev.SipLegClosed())

    async def _reinvite(self, call: SipCall, offer: str) -> None:
        try:
            result = await call.reinvite(offer)
        except (SIPError, OSError) as exc:
            logger.info("call=%s re-INVITE failed: %s", self.call_id, exc)
            self._feed(ev.SipReinviteResult(500))
            return
        status = max(200, result.status)
        self._feed(ev.SipReinviteResult(status, (result.sdp or None) if 200 <= status < 300 else None))

    def _refer_to(self, target: str | None, consult: str | None) -> NameAddr:
        """Refer-To: the target (blind), or the far end of the consultation call with Replaces naming its
        dialog as that far end sees it: its tag is the to-tag, ours the from-tag (RFC 3891 §3, §5)."""
        if target is not None:
            uri = parse_uri(target)
            if not isinstance(uri, SipURI):
                raise ValueError(f"transfer target {target!r} is not a SIP URI")
            return refer_to(uri)
        other = self._other_call(consult) if self._other_call is not None and consult is not None else None
        dialog = other.dialog if other is not None and not other.ended else None
        if dialog is None or not isinstance(dialog.remote_target, SipURI) or dialog.id.remote_tag is None:
            raise ValueError(f"consultation call {consult!r} has no established SIP dialog")
        self.consult_call_id = consult
        replaces = Replaces(dialog.id.call_id, dialog.id.remote_tag, dialog.id.local_tag)
        return refer_to(dialog.remote_target, replaces)

    async def _refer(self, call: SipCall, target: str | None, consult: str | None) -> None:
        try:
            refer = self._refer_to(target, consult)
            dialog = call.dialog
            referred_by = NameAddr(dialog.local_uri.uri) if dialog is not None else None
            response = await call.transfer.refer(refer, referred_by)
        except (SIPError, OSError, ValueError) as exc:
            logger.info("call=%s REFER not sent: %s", self.call_id, exc)
            self._feed(ev.SipReferResult(500, str(exc)[:80]))
            return
        self._feed(ev.SipReferResult(max(200, response.status), response.reason))

    async def _info(
        self, call: SipCall, content_type: str, body: str, headers: Sequence[tuple[str, str]] = ()
    ) -> None:
        try:
            response = await call.info(content_type, body, headers)
            if response.status >= 300:
                logger.info("call=%s INFO answered %s", self.call_id, response.status)
        except (SIPError, OSError) as exc:
            logger.info("call=%s INFO failed: %s", self.call_id, exc)

    async def _relay_info(self, call: SipCall, content_type: str, body: str) -> None:
        """The browser's INFO: its final answer goes back to the browser (`info_result`)."""
        try:
            status = (await call.info(content_type, body)).status
        except (SIPError, OSError, RuntimeError) as exc:
            logger.info("call=%s INFO failed: %s", self.call_id, exc)
            status = 503
        self._feed(ev.SipInfoResult(max(200, status)))

    async def _relay_message(self, call: SipCall, text: str) -> None:
        """The browser's chat text as MESSAGE in the dialog (RFC 3428 §4); its final answer goes back."""
        try:
            status = (await call.message(text)).status
        except (SIPError, OSError, RuntimeError) as exc:
            logger.info("call=%s MESSAGE failed: %s", self.call_id, exc)
            status = 503
        if status >= 300:
            logger.info("call=%s MESSAGE answered %s", self.call_id, status)
        self._feed(ev.SipMessageResult(max(200, status)))

    def teardown(self) -> None:
        """End the SIP leg directly (the machine could not): CANCEL, BYE or 500, as its state allows."""
        call = self._live()
        try:
            if isinstance(call, OutgoingCall):
                if call.state is SipCallState.CONFIRMED:
                    self._spawn(self._bye(call))
                else:
                    call.cancel()
            elif isinstance(call, IncomingCall):
                if call.state in (SipCallState.INCOMING, SipCallState.EARLY):
                    call.reject(500, "Server Internal Error")
                elif call.state is SipCallState.CONFIRMED:
                    self._spawn(self._bye(call))
        except (SIPError, OSError):
            logger.exception("call=%s SIP leg not torn down", self.call_id)


_COMMANDS: Final = Table[SipSide, Coroutine[Any, Any, None]]()
_COMMANDS.add(cmd.SipInvite, SipSide._invite)
_COMMANDS.add(cmd.SipCancel, SipSide._cancel)
_COMMANDS.add(cmd.SipRespond, SipSide._respond_command)
_COMMANDS.add(cmd.SipBye, SipSide._bye_command)
_COMMANDS.add(cmd.SipReinvite, SipSide._reinvite_command)
_COMMANDS.add(cmd.SipRespondReinvite, SipSide._respond_reinvite)
_COMMANDS.add(cmd.SipInfoDtmf, SipSide._info_dtmf)
_COMMANDS.add(cmd.SipInfo, SipSide._info_command)
_COMMANDS.add(cmd.SipMessage, SipSide._message_command)
_COMMANDS.add(cmd.SipRefer, SipSide._refer_command)
_COMMANDS.add(cmd.SipAnswerRefer, SipSide._answer_refer)
_COMMANDS.add(cmd.SipNotifyRefer, SipSide._notify_refer)
_COMMANDS.add(cmd.SipTakeOver, SipSide._take_over)
_COMMANDS.add(cmd.SipRefuseReplacing, SipSide._refuse_replacing)


def _recv_info(headers: Sequence[tuple[str, str]]) -> frozenset[str]:
    """The Info Packages our INVITE or its 2xx named in Recv-Info: taken in its dialog (RFC 6086 §5.2.2)."""
    recv_info = ",".join(value for name, value in headers if name.lower() == "recv-info")
    return frozenset(p.strip().lower() for p in recv_info.split(",") if p.strip())
