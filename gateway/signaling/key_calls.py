"""`KeyCalls`: an API key's own cap on calls at once (users[].api_keys[].max_calls), for the HTTP offer
API and WHIP (issue 32 item 8).

Every key counts against its user's caps in the call core (gateway/calls/caps.py); a key with
`max_calls` is bounded on its own as well, so that one leaked kiosk key cannot use all of its user's
calls. A key's calls are the HTTP sessions it opened that have not finished (their progress says so);
an offer in flight holds a place from the check until it is answered or fails, so concurrent offers
cannot pass the cap together. One more gets 429 `too_many_calls_for_key`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from gateway.signaling.api_auth import ApiPrincipal
from gateway.signaling.errors import NotFound, ServiceError
from gateway.signaling.service import OfferService

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Place:
    """One call of a key: `session_id` once its offer was answered."""

    session_id: str | None = None


class KeyCalls:
    """The open HTTP sessions of each capped API key (see the module note)."""

    def __init__(self) -> None:
        self._places: dict[str, list[Place]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, principal: ApiPrincipal, offers: OfferService) -> AsyncIterator[Place]:
        """A place for one more call of `principal`'s key, kept if the body sets its `session_id`;
        ServiceError (429) when the key has `max_calls` open already. Principals without a capped key
        pass freely."""
        cap, key = principal.key_max_calls, principal.key_name
        if cap is None or key is None:
            yield Place()
            return
        places = self._places.setdefault(key, [])
        await self._prune(principal, places, offers)
        if len(places) >= cap:
            logger.info("HTTP offer with API key %s refused: %d calls open (max_calls)", key, len(places))
            raise ServiceError(
                f"API key {key} has {len(places)} calls, the most allowed at once (api_keys[].max_calls {cap})",
                code="too_many_calls_for_key",
                http_status=429,
            )
        place = Place()
        places.append(place)
        try:
            yield place
        finally:
            if place.session_id is None:
                places.remove(place)

    async def _prune(self, principal: ApiPrincipal, places: list[Place], offers: OfferService) -> None:
        for place in list(places):
            if place.session_id is None:
                continue  # an offer in flight
            try:
                progress = await offers.progress(principal.user, place.session_id)
            except NotFound:
                progress = None
            if progress is None or progress.finished:
                places.remove(place)
