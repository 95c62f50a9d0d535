"""The state directory keeps the session signing key across restarts (created 0700, key file 0600)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from gateway.config.loader import config_from_mapping
from gateway.signaling.routes import session_tokens_from_config
from gateway.state_dir import SESSION_KEY_FILE, StateDir, StateDirError


def test_the_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "state"
    first = StateDir.open(path).session_key()
    assert len(first) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert stat.S_IMODE((path / SESSION_KEY_FILE).stat().st_mode) == 0o600
    # a restart: a new StateDir over the same directory reads the same key
    assert StateDir.open(path).session_key() == first


def test_a_corrupt_or_short_key_is_an_error_naming_the_file(tmp_path: Path) -> None:
    state = StateDir.open(tmp_path)
    (tmp_path / SESSION_KEY_FILE).write_text("not base64 !!\n")
    with pytest.raises(StateDirError, match=r"session\.key: not a base64 key"):
        state.session_key()
    (tmp_path / SESSION_KEY_FILE).write_text("c2hvcnQ=\n")  # b"short"
    with pytest.raises(StateDirError, match="key too short"):
        state.session_key()


def test_a_state_dir_that_is_a_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("")
    with pytest.raises(StateDirError, match="state_dir"):
        StateDir.open(tmp_path / "state")


def test_tokens_survive_a_restart_with_the_kept_key(tmp_path: Path) -> None:
    """Without web_auth.session_secret, a token issued before a restart is accepted after it; a
    configured session_secret wins over the kept key."""
    config = config_from_mapping({"state_dir": str(tmp_path / "state")}, {})
    before = session_tokens_from_config(config, clock=lambda: 1e9, state=StateDir.open(tmp_path / "state"))
    token = before.issue("alice")
    after = session_tokens_from_config(config, clock=lambda: 1e9, state=StateDir.open(tmp_path / "state"))
    assert after.verify(token).user_id == "alice"
    configured = config_from_mapping(
        {"state_dir": str(tmp_path / "state"), "web_auth": {"session_secret": "s" * 32}}, {}
    )
    tokens = session_tokens_from_config(
        configured, clock=lambda: 1e9, state=StateDir.open(tmp_path / "state")
    )
    assert tokens.key == b"s" * 32
