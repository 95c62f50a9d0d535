"""Errors of the configuration package: one base, `ConfigError`, carrying every problem found."""

from __future__ import annotations

from collections.abc import Iterable


class ConfigError(Exception):
    """The configuration is invalid; `errors` lists every problem found, one line each.

    Each line names the full key path (`sip.listen[0].port: ...`) or the environment variable
    (`GATEWAY_SIP__PROT: ...`) it is about, and quotes the offending value (never a secret's).
    """

    def __init__(self, errors: Iterable[str]) -> None:
        self.errors: tuple[str, ...] = tuple(errors)
        super().__init__("\n".join(self.errors) or "invalid configuration")


class ConfigFileError(ConfigError):
    """The configuration file cannot be read at all (missing, unreadable, not UTF-8 text), which is not an
    invalid configuration: `errors` holds one line naming the file, e.g. `gateway.yaml: no such file`."""


class InvalidValue(ConfigError, ValueError):
    """A value object rejected its value in `__post_init__`.

    `problems` pairs a key path relative to the object (`""` for the object itself, `"port"`,
    `"users[2].sip"`) with a message; the loader prefixes the object's own path.
    """

    def __init__(self, key: str, message: str, *more: tuple[str, str]) -> None:
        self.problems: tuple[tuple[str, str], ...] = ((key, message), *more)
        super().__init__(f"{k}: {m}" if k else m for k, m in self.problems)

    @classmethod
    def many(cls, problems: Iterable[tuple[str, str]]) -> InvalidValue:
        first, *rest = problems
        return cls(first[0], first[1], *rest)


def join_path(prefix: str, key: str) -> str:
    """`join_path("sip", "listen[0]") == "sip.listen[0]"`, `join_path("a", "[1]") == "a[1]"`."""
    if not prefix:
        return key
    if not key:
        return prefix
    return f"{prefix}{key}" if key.startswith("[") else f"{prefix}.{key}"
