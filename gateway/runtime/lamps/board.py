"""Busy lamps and the voicemail light (issue 37): what the PBX says of a web user's colleagues and mailbox,
told to her sessions.

`lamp_specs` turns the config into subscriptions (gateway/sip/useragent/subscriptions.py): for each user
whose own PBX has an address (her `pbx`, else her tenant's, else `pbx:`: config/pbxs.py), at that PBX as
her REGISTERs are (its domain for a bare extension, its hop, its `subscribe_expiry`, her `pbx_auth`
answering its `realm` only), one `dialog` subscription (RFC 4235) per entry of `users[].watch`, and one
`message-summary` subscription (RFC 3842) to her mailbox: her own number's when she has `pbx_auth` and `users[].voicemail` is on (the default),
another one when it names a mailbox, none when it is off. `Lamps` keeps the last state of each (the
dialogs of a watched extension merged from full and partial documents, RFC 4235 §4.1) and tells a change
to the owner's sessions (`contact_state`, `voicemail`: gateway/signaling/ws/lamp_events.py); `snapshot`
gives a session what is known when it logs in. A subscription that is not active (refused, failed,
waiting to retry) shows its lamp `unknown`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Iterable, Mapping
from functools import partial
from typing import Any

from gateway.config import Config
from gateway.identity import WebUser
from gateway.signaling.events import Event
from gateway.signaling.service import SessionSink
from gateway.signaling.ws.lamp_events import ContactState, Voicemail
from gateway.sip import UserAgent
from gateway.sip.useragent.subscriptions import (
    Notice,
    NotifyFront,
    SubscriptionClient,
    SubscriptionSpec,
    pbx_place,
)
from sipcore.dialogs.requests import Endpoint
from sipcore.event_bodies import DIALOG_INFO, MESSAGE_SUMMARY, DialogInfo, DialogSummary, MessageSummary
from sipcore.location.routing import Target
from sipcore.subscription import SubscriptionConfig
from sipcore.syntax.uri import SipURI, parse_uri

__all__ = ["Lamps", "lamp_specs", "start_lamps"]

logger = logging.getLogger(__name__)

INACTIVE = frozenset({"retry wait", "failed", "idle"})  # a lamp then shows `unknown`


def _uri(target: str, domain: str | None) -> SipURI | None:
    """An extension (`1002`, on the PBX's domain) or a SIP URI as written in the config."""
    if target.lower().startswith(("sip:", "sips:")):
        uri = parse_uri(target)
        return uri if isinstance(uri, SipURI) else None
    return SipURI(domain, target) if domain else None


def lamp_specs(
    config: Config, users: Iterable[WebUser], hops: Mapping[str, Target] | None = None
) -> tuple[SubscriptionSpec, ...]:
    """The subscriptions the config asks for (see the module note), each user's at her own PBX (sent to
    its hop in ``hops``, by PBX name; `default` and a PBX missing there: the UA's outbound hop)."""
    settings = {user.id: user for user in config.users}
    specs: list[SubscriptionSpec] = []
    for user in users:
        conf = settings.get(user.id)
        place = pbx_place(config, user, hops or {})
        if conf is None or place is None:
            continue
        domain, hop, realm, expires = place.domain, place.hop, place.realm, place.expires
        aor = user.aor
        subscriber = SipURI(aor.host, aor.user, port=aor.port, scheme=aor.scheme)
        creds = user.credentials
        username, password = (creds.username, creds.password.reveal()) if creds is not None else (None, None)
        spec = partial(SubscriptionSpec, username=username, password=password, hop=hop, realm=realm)
        for target in conf.watch:
            uri = _uri(target, domain)
            if uri is None or uri.user is None:
                continue
            config_ = SubscriptionConfig(uri, subscriber, "dialog", DIALOG_INFO, expires=expires)
            specs.append(spec(user.id, "contact", uri.user, config_))
        if conf.voicemail == "off" or (conf.voicemail == "on" and creds is None):
            continue
        mailbox = subscriber if conf.voicemail == "on" else _uri(conf.voicemail, domain)
        if mailbox is None or mailbox.user is None:
            continue
        config_ = SubscriptionConfig(mailbox, subscriber, "message-summary", MESSAGE_SUMMARY, expires=expires)
        specs.append(spec(user.id, "voicemail", mailbox.user, config_))
    return tuple(specs)


class Lamps:
    """The last known lamp of every subscription, told to the owner's sessions (see the module note)."""

    def __init__(
        self,
        sessions: Callable[[], Iterable[SessionSink]],
        spawn: Callable[[Coroutine[Any, Any, None]], None],
        pickup_prefix: str = "**",
        pickup_prefixes: Mapping[str, str] | None = None,
    ) -> None:
        self._sessions = sessions
        self._spawn = spawn
        self._pickup_prefix = pickup_prefix
        self._pickup_prefixes = dict(pickup_prefixes or {})  # a user of a named PBX: its pickup_prefix
        self._states: dict[str, dict[tuple[str, str], Event]] = {}  # owner -> (kind, target) -> event
        self._dialogs: dict[tuple[str, str], dict[str, DialogSummary]] = {}  # (owner, number) -> id -> dialog
        self.client: SubscriptionClient | None = None
        self.front: NotifyFront | None = None  # the layer's TU in front of the UA (takes NOTIFYs)
        self.endpoint: Endpoint | None = None  # our Via/Contact toward the PBX

    def snapshot(self, user_id: str) -> tuple[Event, ...]:
        """What is known for `user_id`'s lamps and mailbox, for a session that just logged in."""
        return tuple(self._states.get(user_id, {}).values())

    def on_notice(self, notice: Notice) -> None:
        """The subscription client's callback: update the state, tell the owner's sessions on change."""
        spec = notice.spec
        event = self._event(notice)
        if event is None:
            return
        states = self._states.setdefault(spec.owner, {})
        key = (spec.kind, spec.target)
        if states.get(key) == event:
            return
        states[key] = event
        logger.info("lamp of %s: %s %s -> %s", spec.owner, spec.kind, spec.target, event.to_json())
        for session in self._sessions():
            if session.user.id == spec.owner and not session.closed:
                self._spawn(session.send_event(event))

    def _event(self, notice: Notice) -> Event | None:
        spec, body = notice.spec, notice.body
        if spec.kind == "voicemail":
            if isinstance(body, MessageSummary):
                return Voicemail(
                    spec.target, body.waiting, body.new, body.old, body.urgent_new, body.urgent_old
                )
            return None
        dialogs = self._dialogs.setdefault((spec.owner, spec.target), {})
        if isinstance(body, DialogInfo):
            if body.full:
                dialogs.clear()
            for dialog in body.dialogs:  # RFC 4235 §4.1: a partial document lists the changed dialogs
                if dialog.lamp == "idle":
                    dialogs.pop(dialog.id, None)
                else:
                    dialogs[dialog.id] = dialog
            lamp = DialogInfo(body.entity, body.version, True, tuple(dialogs.values())).lamp
        elif notice.state in INACTIVE:
            dialogs.clear()
            lamp = "unknown"
        else:
            return None
        prefix = self._pickup_prefixes.get(spec.owner, self._pickup_prefix)
        pickup = prefix + spec.target if lamp == "ringing" and prefix else None
        return ContactState(spec.target, lamp, pickup)

    async def close(self) -> None:
        """Unsubscribe (before the UA closes); idempotent."""
        client, self.client = self.client, None
        if client is not None:
            await client.stop()


def start_lamps(
    config: Config,
    ua: UserAgent,
    users: Iterable[WebUser],
    sessions: Callable[[], Iterable[SessionSink]],
    spawn: Callable[[Coroutine[Any, Any, None]], None],
) -> Lamps:
    """Subscribe for every user as the config says, through `ua` (its NOTIFYs taken first: NotifyFront);
    with a PBX, the client is there even without such subscriptions, for the SIP libraries' (websip)."""
    users, hops = tuple(users), dict(ua.settings.pbx_targets)
    places = {user.id: place for user in users if (place := pbx_place(config, user, hops)) is not None}
    prefixes = {user_id: place.pickup_prefix for user_id, place in places.items()}
    lamps = Lamps(sessions, spawn, config.pbx.pickup_prefix, prefixes)
    if config.pbx.address is None and not any(p.address for p in config.pbxs.values()):
        return lamps
    specs = lamp_specs(config, users, hops)
    outbound = ua.settings.outbound
    endpoint = ua.endpoint_for(outbound.host if outbound else None)
    client = SubscriptionClient(ua.layer, endpoint, specs, outbound=outbound, on_notice=lamps.on_notice)
    lamps.front = NotifyFront(ua.layer.tu, client)
    ua.layer.tu = lamps.front
    lamps.client, lamps.endpoint = client, endpoint
    client.start()
    logger.info("busy lamps and voicemail: %d subscriptions at the PBX", len(specs))
    return lamps
