"""Several PBXs and trunks, tenants, number rewriting and caller-ID presentation (issue 37 item 5).

    pbxs:                       # named entries, each with every key of `pbx:` (its own transport,
      b:                        # registration, keep-alive, realm), plus `auth` (a trunk's own digest
        address: 10.0.0.2:5060  # credentials), `rewrite` and `caller_id`
        rewrite:
          - {match: "0(\\d+)", replace: "+44\\1"}   # E.164: every matching rule applies, in order
    tenants:
      acme: {pbx: b}            # users[].tenant: acme -> their calls go to b
    routes:
      - match: "9."             # a dial pattern, or "@domain"
        pbx: b
        rewrite: [{strip: 1}]
        caller_id: {display: "ACME", user: "+442000000000", privacy: false}

The single `pbx:` section is the entry named ``default``. A web user's own PBX is ``users[].pbx``,
else her tenant's ``pbx``, else ``default``: her bare extension takes that PBX's domain, she
registers there (with its `register`) and her calls go there with her own `pbx_auth`. The first
route that names a `pbx`, a `rewrite` or a `caller_id`, matches the dialled number (as
``sip:<number>@<her PBX's domain>``) or SIP URI, and is the tenant's (`routes[].tenant`) or
everyone's, sends the call to its PBX: then the dialled number is rewritten by the route's rules and
then that PBX's, and a PBX not her own is answered with its `auth` (a trunk's), never hers.
The user's `allow_outbound` is checked on what she dialled, before any rewrite.

This module is pure: :class:`PbxPlan` is built from the configuration and asked by the call core
(gateway/calls/setup/outbound.py) for a call's :class:`PbxChoice`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Final

from gateway.config.errors import InvalidValue
from gateway.config.values import IntRange, Parse

if TYPE_CHECKING:
    from gateway.config.routes import RouteConfig
    from gateway.config.schema import Config, PbxSection

__all__ = ["DEFAULT_PBX", "CallerId", "PbxChoice", "PbxPlan", "RewriteRule", "TenantConfig", "pbx_checks"]

DEFAULT_PBX: Final = "default"  # the name of the `pbx:` section among the `pbxs:`
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_NUMBER: Final = re.compile(r"\+?[0-9*#]*")
_GROUP_REF: Final = re.compile(r"\\g<(\w+)>|\\(\d+)")


def _regex(value: object) -> re.Pattern[str]:
    if not isinstance(value, str):
        raise ValueError(f"expected a regular expression, got {value!r}")
    try:
        return re.compile(value)
    except re.error as exc:
        raise ValueError(f"bad regular expression {value!r}: {exc}") from None


def _digits(value: object) -> str:
    if not isinstance(value, (str, int)) or isinstance(value, bool) or not _NUMBER.fullmatch(str(value)):
        raise ValueError(f"expected digits (with an optional leading +, * or #), got {value!r}")
    return str(value)


@dataclass(frozen=True, slots=True)
class RewriteRule:
    """One rule for the dialled number: ``match`` (a regular expression on the whole number; none:
    every number) replaced by ``replace`` (``\\1`` for groups), then ``strip`` leading characters
    removed and ``prefix`` put in front."""

    match: Annotated[re.Pattern[str], Parse(_regex)] | None = None
    replace: str | None = None
    strip: Annotated[int, IntRange(0, 32)] = 0
    prefix: Annotated[str, Parse(_digits)] = ""

    def __post_init__(self) -> None:
        if self.replace is not None and self.match is None:
            raise InvalidValue("replace", "needs a match")
        if self.replace is None and not self.strip and not self.prefix:
            raise InvalidValue("", "a rewrite rule needs replace, strip or prefix")
        if self.replace is not None and self.match is not None:
            for named, numbered in _GROUP_REF.findall(self.replace):
                ref = named or numbered
                known = (ref.isdigit() and int(ref) <= self.match.groups) or ref in self.match.groupindex
                if not known:
                    raise InvalidValue("replace", f"{self.replace!r} names group {ref!r}, which match lacks")

    def apply(self, number: str) -> str:
        if self.match is not None and not self.match.fullmatch(number):
            return number
        if self.match is not None and self.replace is not None:
            number = self.match.sub(self.replace, number, count=1)
        return self.prefix + number[self.strip :]


def rewrite(rules: Sequence[RewriteRule], number: str) -> str:
    """``number`` after every rule in order (each sees the previous one's result)."""
    for rule in rules:
        number = rule.apply(number)
    return number


@dataclass(frozen=True, slots=True)
class CallerId:
    """What the called side is shown: ``display`` (the From display name; default the user's),
    ``user`` (the From user part, e.g. a trunk's E.164 number; default the user's), ``privacy``
    (RFC 3323: an anonymous From and ``Privacy: id``; the P-Asserted-Identity, sent only to a PBX
    that trusts the gateway, still carries the identity)."""

    display: str | None = None
    user: Annotated[str, Parse(_digits)] | None = None
    privacy: bool = False

    def __post_init__(self) -> None:
        if self.display is not None and any(c in self.display for c in '"\r\n\\'):
            raise InvalidValue("display", f"no quotes, backslashes or line breaks, got {self.display!r}")


def _tenant_name(value: object) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError(f"expected a name (letters, digits, '.', '_', '-'), got {value!r}")
    return value


PbxName = Annotated[str, Parse(_tenant_name)]


@dataclass(frozen=True, slots=True)
class TenantConfig:
    """A group of users (``users[].tenant``): their PBX, and the routes that name the tenant."""

    pbx: PbxName | None = None  # default: `default` (the `pbx:` section)


@dataclass(frozen=True, slots=True)
class PbxChoice:
    """Where a dialled call goes: the PBX's name, the Request-URI, and what the From presents."""

    pbx: str
    target: str
    number: str  # the dialled number after rewriting (the SIP URI's user part for a dialled URI)
    caller_id: CallerId | None = None
    own: bool = True  # the user's own PBX: her credentials answer its challenges, else its `auth`


@dataclass(frozen=True, slots=True)
class PbxPlan:
    """The PBXs by name (`default` first), the routes that choose among them, and the tenants."""

    pbxs: Mapping[str, PbxSection] = field(default_factory=dict)
    routes: tuple[RouteConfig, ...] = ()
    tenants: Mapping[str, TenantConfig] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Config) -> PbxPlan:
        return cls(
            {DEFAULT_PBX: config.pbx, **config.pbxs},
            tuple(r for r in config.routes if r.pbx or r.rewrite or r.caller_id),
            dict(config.tenants),
        )

    @property
    def several(self) -> bool:
        """Whether calls need the plan: more than `pbx:`, tenants, routes or `pbx:`'s own rewrite or
        caller ID (else the single-PBX path, as before)."""
        custom = any(entry.rewrite or entry.caller_id for entry in self.pbxs.values())
        return len(self.pbxs) > 1 or bool(self.routes) or bool(self.tenants) or custom

    def user_pbx(self, pbx: str | None, tenant: str | None) -> str:
        """A user's own PBX: ``users[].pbx``, else her tenant's, else ``default``."""
        if pbx is not None:
            return pbx
        chosen = self.tenants.get(tenant) if tenant is not None else None
        return chosen.pbx if chosen is not None and chosen.pbx is not None else DEFAULT_PBX

    def domain(self, name: str) -> str | None:
        entry = self.pbxs.get(name)
        return entry.effective_domain if entry is not None else None

    def choose(self, own: str, tenant: str | None, target: str, number: str | None) -> PbxChoice:
        """The PBX of a call to ``target`` (a Request-URI formed with ``own``'s domain) by a user of
        ``tenant`` whose PBX is ``own``; ``number``: the dialled number (None: a SIP URI was dialled)."""
        route = self.route(tenant, target)
        name = route.pbx if route is not None and route.pbx is not None else own
        entry = self.pbxs.get(name)
        if entry is None:  # Config checks every name; a hand-built plan may not
            raise ValueError(f"no PBX named {name!r}")
        caller_id = (route.caller_id if route is not None else None) or entry.caller_id
        if number is None:
            user = target.split(":", 1)[-1].split("@", 1)[0]
            return PbxChoice(name, target, user, caller_id, name == own)
        rules = (*(route.rewrite if route is not None else ()), *entry.rewrite)
        number = rewrite(rules, number)
        domain = entry.effective_domain or self.domain(own)
        return PbxChoice(name, f"sip:{number.replace('#', '%23')}@{domain}", number, caller_id, name == own)

    def route(self, tenant: str | None, target: str) -> RouteConfig | None:
        """The first route for a user of ``tenant`` that matches ``target`` (a Request-URI), if one does."""
        return next((r for r in self.routes if r.tenant in (None, tenant) and r.match.matches(target)), None)

    def source_pbx(self, host: str) -> str | None:
        """The PBX whose `address` or `outbound_proxy` host is ``host`` (as written), if one is."""
        host = host.strip("[]").lower()
        for name, entry in self.pbxs.items():
            for hop in (entry.address, entry.outbound_proxy):
                if hop is not None and hop.host.strip("[]").lower() == host:
                    return name
        return None

    def number_at_pbx(self, host: str, port: int | None) -> str | None:
        """The domain of the PBX whose own SIP service ``host``:``port`` is (its `address`, the port
        5060 when either leaves it out), None for any other. A PBX names its own numbers that way
        (Asterisk's Transfer() and blind transfers REFER to sip:2000@<its address>): such a URI is the
        number at that PBX, which a dial policy judges as the number (config/pbxs.py's routes)."""
        host = host.strip("[]").lower()
        for entry in self.pbxs.values():
            address = entry.address
            if address is None or address.host.strip("[]").lower() != host:
                continue
            if (address.port or _SIP_PORT) == (port or _SIP_PORT):
                return entry.effective_domain
        return None


_SIP_PORT: Final = 5060  # RFC 3261 §19.1.2


def pbx_checks(config: Config) -> Iterator[tuple[str, str]]:
    """Every PBX name a tenant, a user or a route gives exists; every tenant named exists."""
    names = {DEFAULT_PBX, *config.pbxs}
    tls_listen = any(item.transport.value == "tls" for item in config.sip.listen)
    for name, entry in config.pbxs.items():
        if name == DEFAULT_PBX or not _NAME.fullmatch(name):
            yield f"pbxs.{name}", "a PBX name is letters, digits, '.', '_', '-' and not 'default' (pbx:)"
        if entry.transport.value == "tls" and not tls_listen:
            yield f"pbxs.{name}.transport", "tls needs a sip.listen address with transport tls (and sip.tls)"
    for name, tenant in config.tenants.items():
        if tenant.pbx is not None and tenant.pbx not in names:
            yield f"tenants.{name}.pbx", f"no PBX named {tenant.pbx!r}"
    plan = PbxPlan.from_config(config)
    for index, user in enumerate(config.users):
        if user.pbx is not None and user.pbx not in names:
            yield f"users[{index}].pbx", f"no PBX named {user.pbx!r}"
        home = plan.user_pbx(user.pbx, user.tenant)
        if ":" not in user.sip and plan.domain(home) is None and (home == DEFAULT_PBX or home in names):
            where = "pbx.domain or pbx.address" if home == DEFAULT_PBX else f"pbxs.{home}.domain or address"
            yield f"users[{index}].sip", f"bare extension {user.sip!r} needs {where} to form a SIP URI"
        if user.tenant is not None and user.tenant not in config.tenants:
            yield f"users[{index}].tenant", f"no tenant named {user.tenant!r}"
    for index, route in enumerate(config.routes):
        if route.pbx is not None and route.pbx not in names:
            yield f"routes[{index}].pbx", f"no PBX named {route.pbx!r}"
        if route.tenant is not None and route.tenant not in config.tenants:
            yield f"routes[{index}].tenant", f"no tenant named {route.tenant!r}"
