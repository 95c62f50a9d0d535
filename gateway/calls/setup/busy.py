"""What an INVITE for a busy web user gets (users[].on_busy), decided before any call rings. Sans-I/O.

Busy (users[].on_busy): a call for a user every one of whose sessions is in a call already:
  ring    - ring her sessions anyway (the page shows call waiting); the default
  reject  - 486 Busy Here (RFC 3261 §21.4.24)
  forward - 302 Moved Temporarily to the number (RFC 3261 §21.3.3): the caller's side calls it

The runtime asks `busy_refusal` with the registry of this gateway's calls before it hands the INVITE to
a call (gateway/runtime/sip_inbound.py) and answers what it says. This module owns that policy; it
imports the call layer's registry and states and the identity model, nothing with I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gateway.calls.registry import CallRegistry
from gateway.calls.states import CallState
from gateway.identity.address import dialed_sip_uri
from gateway.identity.model import Found, WebUser


@dataclass(frozen=True, slots=True)
class BusyAction:
    """What to answer an INVITE for a busy user with: `status` and, for a forward, the `contact`."""

    status: int
    contact: str | None = None

    def __post_init__(self) -> None:
        if self.status not in (302, 486):
            raise ValueError(f"a busy answer is 302 or 486, not {self.status!r}")
        if (self.status == 302) != (self.contact is not None):
            raise ValueError("a 302 needs a contact, and only a 302 has one")


def busy_action(user: WebUser, pbx_domain: str | None) -> BusyAction | None:
    """The answer `user`'s on_busy asks for once all her sessions are busy (None: ring them anyway)."""
    policy = user.on_busy
    if policy == "reject":
        return BusyAction(486)
    if policy.startswith("forward:"):
        target = policy.removeprefix("forward:")
        if pbx_domain is None and "@" not in target and ":" not in target:
            return BusyAction(486)  # a number needs the PBX's domain to be called
        target = dialed_sip_uri(target) or f"sip:{target}@{pbx_domain}"
        return BusyAction(302, target)
    return None


def busy(registry: CallRegistry, session_ids: Iterable[str]) -> bool:
    """Whether every one of `session_ids` (at least one) carries a call already."""
    carrying = {m.session_id for m in registry if m.state is not CallState.CLOSED}
    ids = tuple(session_ids)
    return bool(ids) and all(s in carrying for s in ids)


def busy_refusal(registry: CallRegistry, target: Found, pbx_domain: str | None) -> BusyAction | None:
    """users[].on_busy for an INVITE whose users are all busy: 486, a 302, or None (ring anyway). With
    several users addressed, it is refused only when each of them is busy and would refuse it."""
    actions = []
    for user in target.users:
        action = busy_action(user, pbx_domain)
        if action is None or not busy(registry, target.sessions.get(user.id, ())):
            return None
        actions.append(action)
    return actions[0] if actions else None
