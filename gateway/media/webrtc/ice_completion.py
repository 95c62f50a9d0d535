"""ICE connected as soon as the check list completes (issue 14 goal 3).

``prompt_ice_completion(pc)``: aioice's ``connect()`` paces its checks with a 20 ms sleep (Ta, RFC
8445 §14.2) and reads the check list's outcome only after that loop ends, so ICE was reported
connected (and DTLS started) up to 20 ms after the nominated pair's check succeeded: ~17 ms of each
call's offer -> connected on loopback (issue 14 goal 3). ``_connect`` is aioice 0.13's ``connect()``
with the pacing wait ending at the outcome; the checks, their order and their pacing are unchanged.

Guarded as ``aiortc_hooks`` is: a missing aioice internal raises ``HookError`` when the hook is set.
"""

from __future__ import annotations

import asyncio

import aioice.ice
from aioice import Connection
from aiortc import RTCPeerConnection

from gateway.media.slim_waiters import Waiters

from .aiortc_hooks import HookError, ice_connection

ICE_PACING = 0.02  # aioice's Ta between two checks started (RFC 8445 §14.2)
_CONNECT_INTERNALS = (
    "_local_candidates_end", "_remote_candidates", "_pair_remote_candidate", "_unfreeze_initial",
    "_early_checks", "_early_checks_done", "_check_periodic", "_check_list", "_check_list_state",
)  # fmt: skip


def prompt_ice_completion(pc: RTCPeerConnection) -> None:
    """Report ICE connected as soon as the check list completes (module note). Call after the transceiver
    exists and before the connection connects."""
    connection = ice_connection(pc)
    missing = [name for name in _CONNECT_INTERNALS if not hasattr(connection, name)]
    if missing:
        raise HookError(f"aioice's Connection has no {', '.join(missing)}")

    async def connect() -> None:
        await _connect(connection)

    connection.connect = connect  # type: ignore[method-assign]


async def _connect(connection: Connection) -> None:
    """aioice 0.13's ``Connection.connect`` (returns once a pair is nominated, raises ConnectionError
    otherwise), its pacing sleep cut short by the check list's outcome."""
    if not connection._local_candidates_end:
        raise ConnectionError("Local candidates gathering was not performed")
    if connection.remote_username is None or connection.remote_password is None:
        raise ConnectionError("Remote username or password is missing")
    for remote_candidate in connection._remote_candidates:  # pairs (RFC 8445 §6.1.2.2)
        connection._pair_remote_candidate(remote_candidate)
    connection.sort_check_list()
    connection._unfreeze_initial()
    for early_check in connection._early_checks:  # the checks received before connect()
        connection.check_incoming(*early_check)
    # never appended to once done (aioice's check_incoming): an empty list instead of the deque's block
    connection._early_checks = Waiters()  # type: ignore[assignment]
    connection._early_checks_done = True
    outcome = asyncio.ensure_future(connection._check_list_state.get())
    try:
        while not outcome.done() and connection._check_periodic():
            await asyncio.wait((outcome,), timeout=ICE_PACING)
        if outcome.done():
            result = outcome.result()
        elif connection._check_list:
            result = await outcome
        else:
            result = aioice.ice.ICE_FAILED
    finally:
        outcome.cancel()
    for check in connection._check_list:  # cancel the remaining checks
        if check.task:
            check.task.cancel()
    if result != aioice.ice.ICE_COMPLETED:
        raise ConnectionError("ICE negotiation failed")
    connection._query_consent_task = asyncio.create_task(connection.query_consent())  # RFC 7675
