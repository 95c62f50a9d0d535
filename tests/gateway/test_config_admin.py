"""The `admin` and `webhooks` sections and users[].roles (gateway/config/admin.py): values and errors."""

from __future__ import annotations

import pytest

from gateway.config import ConfigError
from gateway.config.loader import config_from_mapping

TOKEN = "admin-token-0123456789"


def test_admin_token_roles_and_webhooks_read() -> None:
    config = config_from_mapping(
        {
            "admin": {"token": {"env": "ADMIN_TOKEN"}},
            "pbx": {"domain": "pbx.example.org"},
            "users": [{"id": "ann", "sip": "1001", "web_token": "ann-token-000000", "roles": ["admin"]}],
            "web_auth": {"mode": "token"},
            "webhooks": [{"url": "https://hooks.example.org/x", "secret": "s" * 16, "events": ["ended"]}],
        },
        {"ADMIN_TOKEN": TOKEN},
    )
    assert config.admin.token is not None and config.admin.token.reveal() == TOKEN
    assert config.users[0].roles == ("admin",)
    assert config.webhooks[0].events == ("ended",) and config.webhooks[0].max_attempts == 5


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"admin": {"token": "short"}}, "admin.token: must be at least 16 characters"),
        ({"admin": {"tokn": TOKEN}}, "admin.tokn"),
        ({"webhooks": [{"url": "ftp://x", "secret": "s" * 16}]}, "webhooks[0].url"),
        ({"webhooks": [{"url": "http://x", "secret": "short"}]}, "webhooks[0].secret: must be at least 16"),
        (
            {"webhooks": [{"url": "http://x", "secret": "s" * 16, "events": ["rang"]}]},
            "webhooks[0].events[0]",
        ),
        ({"webhooks": [{"url": "http://x", "secret": "s" * 16, "events": []}]}, "webhooks[0].events"),
        (
            {"webhooks": [{"url": "http://x", "secret": "s" * 16, "backoff": 5, "backoff_max": 1}]},
            "webhooks[0].backoff_max",
        ),
        (
            {
                "pbx": {"domain": "pbx.example.org"},
                "web_auth": {"mode": "token"},
                "users": [{"id": "ann", "sip": "1001", "web_token": "t" * 16, "roles": ["root"]}],
            },
            "users[0].roles[0]",
        ),
    ],
)
def test_bad_values_name_their_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(data, {})
    assert message in str(caught.value)
