"""Which PBX a web user's call goes to, and who it presents itself as (several PBXs, config/pbxs.py).

With one PBX nothing changes: the dialled number becomes ``sip:<number>@<pbx.domain>``, the From is the
user's AOR and her `pbx_auth` answers the challenges. With `pbxs:`, `tenants:` or routes naming a PBX,
:func:`pbx_target` asks the plan: the user's own PBX (hers, her tenant's) or a route's, the number
rewritten, and a caller ID; :func:`invite_identity` then builds the From, the credentials (hers at her
own PBX, a trunk's `auth` at another one, else none) and P-Asserted-Identity / Privacy (RFC 3323, 3325).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.calls.reasons import EndReason
from gateway.config.pbxs import DEFAULT_PBX, PbxChoice
from gateway.identity.address import SipAddress
from gateway.identity.model import PbxCredentials, SipIdentity, WebUser

if TYPE_CHECKING:
    from gateway.calls.machine import CallMachine
    from gateway.calls.settings import CallSettings

ANONYMOUS = SipAddress("sip", "anonymous", "anonymous.invalid")  # RFC 3323 §4.1.1.3


def pbx_target(settings: CallSettings, user: WebUser, destination: str) -> PbxChoice | tuple[EndReason, str]:
    """Where a call to ``destination`` goes (PBX name ``default`` for the single `pbx:`), or why not."""
    from gateway.calls.setup.outbound import BadDestination, allowed_target, dial_target

    plan = settings.pbx_plan
    if not plan.several:
        target = allowed_target(user, destination, settings.pbx_domain)
        return PbxChoice(DEFAULT_PBX, target, "") if isinstance(target, str) else target
    if user.pbx not in plan.pbxs:  # users reloaded (SIGHUP) naming a PBX that only a restart brings
        return EndReason.BAD_DESTINATION, f"no PBX named {user.pbx!r}: the gateway must be restarted"
    domain = plan.domain(user.pbx)
    target = allowed_target(user, destination, domain)
    if not isinstance(target, str):
        return target
    try:
        _, checked = dial_target(destination, domain)
    except BadDestination as exc:  # allowed_target took it: cannot happen
        return EndReason.BAD_DESTINATION, str(exc)
    number = None if checked.lower().startswith(("sip:", "sips:")) else checked
    return plan.choose(user.pbx, user.tenant, target, number)


def dial_domain(settings: CallSettings, user: WebUser, pbx: str | None = None) -> str | None:
    """The domain numbers are dialled at: ``pbx``'s (a call's chosen PBX), else the user's own PBX's."""
    plan = settings.pbx_plan
    if not plan.several:
        return settings.pbx_domain
    return plan.domain(pbx or user.pbx)


def invite_identity(call: CallMachine, user: WebUser) -> tuple[SipIdentity, tuple[tuple[str, str], ...]]:
    """The From identity (with its credentials) and the identity headers of ``call``'s INVITE."""
    settings = call.settings
    pbx, caller_id = call.pbx, call.caller_id
    credentials: PbxCredentials | None = user.credentials
    aor, name = user.aor, user.display_name
    if pbx is not None and pbx != user.pbx:  # a trunk or another tenant's PBX: never her credentials
        entry = settings.pbx_plan.pbxs[pbx]
        credentials = PbxCredentials(entry.auth.username, entry.auth.password) if entry.auth else None
        domain = entry.effective_domain
        if domain is not None and aor.user is not None:
            aor = SipAddress(aor.scheme, aor.user, domain)
    if caller_id is not None:
        if caller_id.user is not None:
            aor = SipAddress(aor.scheme, caller_id.user, aor.host, aor.port)
        name = caller_id.display or name
    asserting = settings.asserting_pbxs if pbx is not None else None
    headers: list[tuple[str, str]] = []
    if settings.assert_identity if asserting is None else pbx in asserting:  # RFC 3325 §9.1
        shown = f'"{_quoted(name)}" ' if name else ""
        headers.append(("P-Asserted-Identity", f"{shown}<{aor}>"))
    if caller_id is not None and caller_id.privacy:  # RFC 3323 §4.1.1.3: an anonymous From
        headers.append(("Privacy", "id"))
        return SipIdentity(ANONYMOUS, "Anonymous", credentials), tuple(headers)
    return SipIdentity(aor, name, credentials), tuple(headers)


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
