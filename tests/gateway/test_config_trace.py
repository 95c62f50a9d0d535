"""The `trace` section (gateway/config/trace.py): defaults, values, and errors naming the key."""

from __future__ import annotations

import pytest

from gateway.config import ConfigError
from gateway.config.loader import config_from_mapping


def test_tracing_is_off_by_default_and_reads_its_hep_server() -> None:
    assert not config_from_mapping({}, {}).trace.enabled
    config = config_from_mapping(
        {"trace": {"enabled": True, "keep_calls": 5, "hep": {"address": "[::1]:9060", "agent_id": 7,
                                                             "password": {"env": "HEP_PASSWORD"}}}},
        {"HEP_PASSWORD": "hep-secret"},
    )  # fmt: skip
    trace = config.trace
    assert trace.enabled and trace.keep_calls == 5 and trace.max_messages == 500
    assert trace.hep is not None and (trace.hep.address.host, trace.hep.address.port) == ("::1", 9060)
    assert trace.hep.agent_id == 7 and trace.hep.password is not None
    assert trace.hep.password.reveal() == "hep-secret"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"trace": {"enabled": "yes please"}}, "trace.enabled"),
        ({"trace": {"keep_calls": -1}}, "trace.keep_calls"),
        ({"trace": {"max_bytes": 10}}, "trace.max_bytes"),
        ({"trace": {"max_mesages": 10}}, "trace.max_mesages"),
        ({"trace": {"hep": {"address": "10.0.0.5"}}}, "trace.hep.address: needs a port"),
        ({"trace": {"hep": {"address": "10.0.0.5:9060", "agent_id": 2**32}}}, "trace.hep.agent_id"),
        ({"trace": {"hep": {}}}, "trace.hep.address"),
    ],
)
def test_bad_trace_values_name_their_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("[", r"\[")):
        config_from_mapping(data, {})
