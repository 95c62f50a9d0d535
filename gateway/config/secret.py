"""`Secret`: a password, credential or key whose value never shows in repr, str or logs.

In gateway.yaml a secret is written as one of
  {env: NAME}                  read from environment variable NAME (the recommended form)
  {env: NAME, optional: true}  the same, but an unset variable means "no secret" where that is allowed
  {file: /run/secrets/name}    read from a file (trailing newline stripped; relative to the config file)
  "plain string"               inline; allowed, never required, and best kept to demo values
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from gateway.config.errors import InvalidValue


class SecretSource(enum.StrEnum):
    ENV = "env"
    FILE = "file"
    INLINE = "inline"


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class Secret:
    """A resolved secret. `str()`/`repr()` name where it came from, only `reveal()` gives the value."""

    source: SecretSource
    ref: str = ""  # the variable name or file path; empty for inline secrets
    _value: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        if self.source is not SecretSource.INLINE and not self.ref:
            raise InvalidValue("", f"a secret from {self.source.value} needs a name or path")
        if not self._value:
            # An empty password is always a mistake (an empty variable or file), never a real secret.
            raise InvalidValue("", f"secret from {self.describe()} is empty")

    def reveal(self) -> str:
        """The secret value itself: pass it on, never log it."""
        return self._value

    def describe(self) -> str:
        return f"{self.source.value}:{self.ref}" if self.ref else self.source.value

    def __repr__(self) -> str:
        return f"Secret({self.describe()})"

    __str__ = __repr__
