"""The gateway's state directory (`state_dir`, default `./state`): what must outlive a restart.

    state = StateDir.open(Path(config.state_dir))   # created 0700 if missing
    key = state.session_key()                       # generated once, kept in session.key (0600)

It holds the session signing key (when `web_auth.session_secret` is not configured), so logins survive
restarts, and the revoked session tokens (gateway.signaling.revocation.FileRevocations). Nothing else
reads it; it can be deleted to log every browser out.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Final

logger = logging.getLogger(__name__)

SESSION_KEY_FILE: Final = "session.key"
REVOCATIONS_FILE: Final = "revoked-tokens.json"
KEY_BYTES: Final = 32


class StateDirError(Exception):
    """The state directory or a file in it cannot be used; the message names the path."""


@dataclass(frozen=True, slots=True)
class StateDir:
    path: Path

    @classmethod
    def open(cls, path: Path) -> StateDir:
        """The directory at `path`, created with mode 0700 (parents too) when it does not exist. An
        existing directory readable by others is used but logged: it holds a signing key."""
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            mode = stat.S_IMODE(path.stat().st_mode)
        except OSError as exc:
            raise StateDirError(f"state_dir {str(path)!r}: {exc.strerror or exc}") from None
        if not path.is_dir():
            raise StateDirError(f"state_dir {str(path)!r}: not a directory")
        if mode & 0o077:
            logger.warning(
                "state_dir %s has mode %04o: others may read the session key (chmod 700)", path, mode
            )
        return cls(path)

    def session_key(self) -> bytes:
        """The session signing key: read from `session.key`, or generated (32 random bytes) and written
        there with mode 0600 on first use. Two processes starting at once agree: the file is created
        exclusively, and the loser reads the winner's key."""
        file = self.path / SESSION_KEY_FILE
        for _ in range(2):
            try:
                return self._read_key(file)
            except FileNotFoundError:
                pass
            key = secrets.token_bytes(KEY_BYTES)
            try:
                fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue  # another process wrote it meanwhile: read theirs
            except OSError as exc:
                raise StateDirError(f"cannot create {file}: {exc.strerror or exc}") from None
            with os.fdopen(fd, "w", encoding="ascii") as out:
                out.write(base64.b64encode(key).decode("ascii") + "\n")
                out.flush()
                os.fsync(out.fileno())
            logger.info("generated a new session signing key in %s", file)
            return key
        return self._read_key(file)

    @staticmethod
    def _read_key(file: Path) -> bytes:
        try:
            text = file.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            raise
        except (OSError, UnicodeDecodeError) as exc:
            raise StateDirError(f"cannot read {file}: {getattr(exc, 'strerror', None) or exc}") from None
        try:
            key = base64.b64decode(text, validate=True)
        except binascii.Error:
            raise StateDirError(f"{file}: not a base64 key (delete it to make a new one)") from None
        if len(key) < 16:
            raise StateDirError(f"{file}: key too short ({len(key)} bytes; delete it to make a new one)")
        return key

    @property
    def revocations_file(self) -> Path:
        return self.path / REVOCATIONS_FILE
