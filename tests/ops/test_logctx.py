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
    logger.info("call=%s from the SIP layer", "abc@host")  # outside the call's context, named by its Call-ID
    logger.info("nothing about a call")
    inside, named, other = caplog.records
    assert inside.call == call_id and inside.sip_call_id == "abc@host"  # type: ignore[attr-defined]
    assert named.call == call_id and named.sip_call_id == "abc@host"  # type: ignore[attr-defined]
    assert not hasattr(other, "call") and not hasattr(other, "sip_call_id")
    assert logctx.call_fields(named) == f" call={call_id} sip_call_id=abc@host"
