"""Call ids on log records: from the context the call's tasks run in, or from the id a line names."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gateway.ops import logctx

logger = logging.getLogger("tests.ops.logctx")


async def test_records_of_a_call_carry_both_ids(caplog: pytest.LogCaptureFixture) -> None:
    logctx.install_record_factory()
    logctx.install_record_factory()  # idempotent
    caplog.set_level(logging.INFO, logger="tests.ops.logctx")
    with logctx.bind_call() as context:
        call_id = logctx.new_call_id()
        assert context.call_id == call_id

        async def task() -> None:
            logger.info("inside a task of the call")

        worker = asyncio.get_running_loop().create_task(task())
    logctx.add_sip_call_id(context, "abc@host")
    await worker
    # outside the call's context, named by its Call-ID under that id's own name
    logger.info("sip_call_id=%s from the SIP layer", "abc@host")
    logger.info("nothing about a call")
    # the fast lane's engine hands a call's packets over outside its tasks; the SIP leg's latch names
    # itself by an argument ("call=<id> RTP")
    logger.info("%s latched to %s:%d", f"call={call_id} RTP", "127.0.0.1", 4000)
    inside, named, other, by_argument = caplog.records
    assert by_argument.call == call_id and by_argument.sip_call_id == "abc@host"  # type: ignore[attr-defined]
    assert inside.call == call_id and inside.sip_call_id == "abc@host"  # type: ignore[attr-defined]
    assert named.call == call_id and named.sip_call_id == "abc@host"  # type: ignore[attr-defined]
    assert not hasattr(other, "call") and not hasattr(other, "sip_call_id")
    # each id under one name, once: the gateway's id added, the SIP Call-ID the line already says not repeated
    assert logctx.call_fields(named) == f" call={call_id}"
    assert logctx.call_fields(inside) == f" call={call_id} sip_call_id=abc@host"
