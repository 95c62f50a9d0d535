"""SIGHUP (`systemctl reload`): read gateway.yaml again and apply what can change under running calls.

Applied: `users` (the identity store is replaced: new users can log in, removed users cannot, changed
secrets and dial policies hold from the next login or dial), `routes` (media per destination, for calls
placed from then on) and the TLS certificates (HTTPS and SIP TLS: files read again, new handshakes get
the new certificate). Calls, WebSockets and registrations go on untouched.

Not applied (logged as needing a restart): every other section (listen addresses and ports, the PBX and
its registrations — so a new user's `pbx_auth` registers only after a restart —, media, codecs, ICE,
HTTP, web_auth, logging, state_dir). A file that does not load or validate changes nothing, nor does one
whose users would be refused beyond loopback (the demo users' published secrets: gateway/config/exposure.py).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import ssl
from typing import TYPE_CHECKING, Final

from gateway.config import Config, ConfigError
from gateway.config.exposure import exposure_problems
from gateway.config.loader import load_config
from gateway.identity.store import InMemoryIdentityStore

if TYPE_CHECKING:
    from gateway.app import Gateway

logger = logging.getLogger(__name__)

RELOADED: Final = ("users", "routes")


@dataclasses.dataclass(frozen=True, slots=True)
class ReloadResult:
    applied: bool
    needs_restart: tuple[str, ...] = ()  # top-level keys that changed but are not reloaded
    errors: tuple[str, ...] = ()


def changed_sections(old: Config, new: Config) -> tuple[str, ...]:
    """Top-level keys whose values differ (secrets compared by where they come from, never by value)."""
    return tuple(
        f.name for f in dataclasses.fields(Config) if repr(getattr(old, f.name)) != repr(getattr(new, f.name))
    )


async def reload_config(gateway: Gateway, path: str) -> ReloadResult:
    """Apply `path`'s users and routes to `gateway`, and reload its certificates; see the module note."""
    try:
        new = load_config(path, os.environ)
    except ConfigError as exc:
        logger.error("reload: %s is invalid, nothing changed: %s", path, "; ".join(exc.errors))
        return ReloadResult(False, errors=tuple(exc.errors))
    except OSError as exc:
        logger.error("reload: cannot read %s, nothing changed: %s", path, exc.strerror or exc)
        return ReloadResult(False, errors=(str(exc),))
    old = gateway.config
    exposed = _new_exposure(old, dataclasses.replace(old, users=new.users, routes=new.routes))
    if exposed:
        logger.error("reload: %s refused beyond loopback, nothing changed: %s", path, "; ".join(exposed))
        return ReloadResult(False, errors=exposed)
    changed = changed_sections(old, new)
    if "users" in changed:
        gateway.identities.store = InMemoryIdentityStore.from_config(new)
        logger.info("reload: %d users (were %d)", len(new.users), len(old.users))
    if "routes" in changed:
        gateway.driver.reload_routes(new.routes)
        logger.info("reload: %d routes (for calls placed from now on)", len(new.routes))
    gateway.config = dataclasses.replace(old, users=new.users, routes=new.routes)
    gateway.reload_tls()
    _reload_sip_tls(gateway, new)
    restart = tuple(name for name in changed if name not in RELOADED)
    if restart:
        logger.warning("reload: %s changed: restart the gateway to apply", ", ".join(restart))
    return ReloadResult(True, restart)


def _new_exposure(old: Config, new: Config) -> tuple[str, ...]:
    """What `run` would refuse in `new` beyond loopback that it did not in `old` (demo users' secrets
    added by a reload; a gateway started with --insecure-lab keeps what it started with)."""
    before = set(exposure_problems(old))
    return tuple(problem for problem in exposure_problems(new) if problem not in before)


def _reload_sip_tls(gateway: Gateway, config: Config) -> None:
    """Load SIP TLS's certificate again into the server context its listeners use."""
    tls = config.sip.tls
    contexts = gateway.sip.layer.tls if gateway.sip is not None else None
    if tls is None or tls.certificate is None or tls.private_key is None or contexts is None:
        return
    server: ssl.SSLContext = contexts[0]
    try:
        server.load_cert_chain(tls.certificate, tls.private_key)
    except (ssl.SSLError, OSError) as exc:
        logger.error("reload: SIP TLS certificate not reloaded, the old one stays in service: %s", exc)
        return
    logger.info("reload: SIP TLS certificate reloaded from %s", tls.certificate)
