"""The `users` section of gateway.yaml: a web user, her SIP identity and credentials, and the values
they are read from (user ids, SIP identities, dial rules, HA1 digests, destinations).

Like every section (gateway.config.schema), each dataclass validates itself in `__post_init__`; a field's
type says how its YAML value is read (gateway.config.values).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Final

from gateway.config.admin import parse_role
from gateway.config.errors import InvalidValue
from gateway.config.limits import UserLimits
from gateway.config.recording import RecordingMode
from gateway.config.secret import Secret
from gateway.config.values import IntRange, Parse
from gateway.identity.address import SipAddress
from gateway.identity.passwords import PasswordHash
from gateway.identity.patterns import DialPattern

_USER_ID: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_EXTENSION: Final = re.compile(r"[A-Za-z0-9+*#._~-]+")


def _user_id(value: object) -> str:
    if not isinstance(value, (str, int)) or isinstance(value, bool) or not _USER_ID.fullmatch(str(value)):
        raise ValueError(
            f"expected a user id (lower-case letters, digits, '.', '_', '-'; up to 64), got {value!r}"
        )
    return str(value)


def parse_sip_identity(value: object) -> str:
    """A SIP URI (`sip:1001@pbx.example.org`) or a bare extension (`1001`), kept as written."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(f"expected a SIP URI or an extension, got {value!r}")
    text = str(value)
    if text.lower().startswith(("sip:", "sips:")):
        try:
            address = SipAddress.parse(text)
        except ValueError as exc:
            raise ValueError(f"bad SIP URI: {exc}") from None
        if address.user is None:
            raise ValueError(f"SIP URI {text!r} has no user part")
        return text
    if not _EXTENSION.fullmatch(text):
        raise ValueError(f"expected a SIP URI (sip:user@host) or an extension such as '1001', got {text!r}")
    return text


def parse_voicemail(value: object) -> str:
    """`users[].voicemail`: true/on (her own number's mailbox), false/off, or a mailbox (an extension or URI)."""
    if value is True or value in ("on", "yes"):
        return "on"
    if value is False or value in ("off", "no"):
        return "off"
    try:
        return parse_sip_identity(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected true, false or a mailbox (extension, SIP URI): {value!r}") from None


def parse_outbound_rule(value: object) -> DialPattern | SipAddress:
    """An allow_outbound entry: a `sip:`/`sips:` URI allowed exactly, or a dial pattern."""
    if isinstance(value, str) and value.lower().startswith(("sip:", "sips:")):
        return SipAddress.parse(value)
    return DialPattern.from_config(value)


@dataclass(frozen=True, slots=True)
class PbxAuth:
    username: str  # digest user name at the PBX (often the extension)
    password: Secret


def _hex_digest(length: int) -> Callable[[object], str]:
    def parse(value: object) -> str:
        if (
            not isinstance(value, str)
            or len(value) != length
            or any(c not in "0123456789abcdefABCDEF" for c in value)
        ):
            raise ValueError(f"expected {length} hex digits (an HA1), got a {type(value).__name__}")
        return value.lower()

    return parse


@dataclass(frozen=True, slots=True)
class SipAuth:
    """How a user's SIP client (JsSIP, SIP.js) authenticates to the gateway over SIP WebSocket: a password,
    or only HA1 = H(username:realm:password) per algorithm, so no clear password need be stored. Never the
    web secret."""

    username: str | None = None  # digest user name; default the user id (with a password: or the extension)
    password: Secret | None = None
    ha1_md5: Annotated[str, Parse(_hex_digest(32))] | None = None
    ha1_sha256: Annotated[str, Parse(_hex_digest(64))] | None = None

    def __post_init__(self) -> None:
        if self.password is None and self.ha1_md5 is None and self.ha1_sha256 is None:
            raise InvalidValue("password", "a password, ha1_md5 or ha1_sha256 is needed")


def parse_on_busy(value: object) -> str:
    """`ring`, `reject` or `forward:<number or SIP URI>`."""
    if not isinstance(value, str):
        raise ValueError(f"expected ring, reject or forward:<number>, got {value!r}")
    text = value.strip()
    if text in ("ring", "reject"):
        return text
    if text.startswith("forward:"):
        return "forward:" + _destination(text.removeprefix("forward:"))
    raise ValueError(f"expected ring, reject or forward:<number>, got {value!r}")


def _destination(value: object) -> str:
    """A number or SIP URI to call (an API client's default destination): no spaces, at most 256 chars."""
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ValueError(f"expected a number or SIP URI, got a {type(value).__name__}")
    text = str(value).strip()
    if not text or len(text) > 256 or any(c.isspace() or not c.isprintable() for c in text):
        raise ValueError(f"{text[:40]!r} is not a number or SIP URI")
    return text


@dataclass(frozen=True, slots=True)
class ApiKeyConfig:
    """A key for the HTTP offer API and JSON-RPC (`Authorization: Bearer <key>` or `X-API-Key`), acting as
    its user; `default_dial` is called when an offer names no destination (else the user's)."""

    key: Secret
    name: str | None = None  # shown in logs instead of the key
    default_dial: Annotated[str, Parse(_destination)] | None = None
    # This key's own caps, within its user's limits (None: only hers), in every dialect it authenticates
    # (HTTP offer API, WHIP, JSON-RPC): calls at once, of those calls not answered yet, and event streams
    max_calls: Annotated[int, IntRange(1, 10_000)] | None = None
    max_unanswered: Annotated[int, IntRange(1, 10_000)] | None = None
    max_event_streams: Annotated[int, IntRange(1, 10_000)] | None = None


def api_key_id(user_id: str, index: int) -> str:
    """What names the key users[`user_id`].api_keys[`index`] to the caps that count its calls and
    streams (its `name` need not be unique): also its name in logs when it has none."""
    return f"{user_id}/api_keys[{index}]"


@dataclass(frozen=True, slots=True)
class UserConfig:
    id: Annotated[str, Parse(_user_id)]
    sip: Annotated[str, Parse(parse_sip_identity)]
    display_name: str | None = None
    pbx_auth: PbxAuth | None = None
    allow_outbound: tuple[Annotated[DialPattern | SipAddress, Parse(parse_outbound_rule)], ...] = ()
    aliases: tuple[Annotated[str, Parse(parse_sip_identity)], ...] = ()
    inbound_patterns: tuple[DialPattern, ...] = ()
    web_secret_hash: PasswordHash | None = None
    web_token: Secret | None = None
    sip_auth: SipAuth | None = None  # SIP over WebSocket credentials (sip.websocket)
    default_dial: Annotated[str, Parse(_destination)] | None = None  # HTTP/JSON-RPC offers without dial
    api_keys: tuple[ApiKeyConfig, ...] = ()
    # A call for this user while every session of hers is in a call (gateway/runtime/web_calls.py):
    # ring (call waiting), reject (486 Busy Here) or forward:<number> (302 to that number).
    on_busy: Annotated[str, Parse(parse_on_busy)] = "ring"
    # Busy lamps (RFC 4235) of these extensions or URIs, and her voicemail light (RFC 3842): on by default
    # when she has pbx_auth (her own number's mailbox), off, or another mailbox (gateway/runtime/lamps/)
    watch: tuple[Annotated[str, Parse(parse_sip_identity)], ...] = ()
    voicemail: Annotated[str, Parse(parse_voicemail)] = "on"
    limits: UserLimits | None = None  # her own caps instead of the `limits` section's (config/limits.py)
    roles: tuple[Annotated[str, Parse(parse_role)], ...] = ()  # `admin`: the admin page and API
    recording: RecordingMode | None = None  # her calls' recording mode (config/recording.py)
    pbx: str | None = None  # her PBX among `pbxs:` (default: her tenant's, else `pbx:`; config/pbxs.py)
    tenant: str | None = None  # her group among `tenants:`
