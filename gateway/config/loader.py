"""Reads gateway.yaml into `Config`, driven by the dataclasses' field types (no per-key code).

`_Reader.read(value, type, path)` dispatches on the type: sections (dataclasses) check their keys
and recurse, `tuple[X, ...]` reads lists, `X | None` admits null, enums match case-insensitively,
`Annotated` metadata adds ranges or a parse function, classes with `from_config` parse themselves,
and `Secret` resolves an env/file reference. Every problem is collected with its key path; the
caller gets one `ConfigError` listing all of them.

Environment overrides: `GATEWAY_SIP__PUBLIC_ADDRESS=203.0.113.5` sets `sip.public_address`
(`__` separates levels, list elements by index: `GATEWAY_SIP__LISTEN__0__PORT=5070`). Values are
parsed as YAML (`8081` is a number, `[PCMU, opus]` a list). Not overrides: `GATEWAY_CONFIG` (the
config file path) and variables that a secret reference in the file names, e.g. `{env: GATEWAY_X}`.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import os
import re
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import yaml

from gateway.config.errors import ConfigError, ConfigFileError, InvalidValue, join_path
from gateway.config.schema import Config
from gateway.config.secret import Secret, SecretSource
from gateway.config.values import FloatRange, IntRange, Parse

logger = logging.getLogger(__name__)

ENV_PREFIX: Final = "GATEWAY_"
RESERVED_ENV: Final = frozenset({"GATEWAY_CONFIG"})
_ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FAILED: Final = object()  # a value that could not be read; its error is already recorded

PathPart = str | int


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping (PyYAML silently keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] = os.environ) -> Config:
    """Read the file at `path` and apply `GATEWAY_*` overrides from `env`; ConfigError lists all problems
    (ConfigFileError when the file cannot be read at all)."""
    return load_config_and_overrides(path, env)[0]


def load_config_and_overrides(
    path: str | os.PathLike[str], env: Mapping[str, str]
) -> tuple[Config, dict[str, str]]:
    """`load_config`, and which settings the environment set instead of the file: key path -> the
    `GATEWAY_*` variable (`{"http.port": "GATEWAY_HTTP__PORT"}`), for `check` to say so."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigFileError([f"{path}: no such file"]) from None
    except OSError as exc:
        raise ConfigFileError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigFileError(
            [f"{path}: not UTF-8 text (byte {exc.start}): a configuration is YAML in UTF-8"]
        ) from None
    return _from_text(text, env, path.parent, str(path))


def load_config_text(
    text: str, env: Mapping[str, str], base_dir: Path = Path("."), source: str = "<config>"
) -> Config:
    return _from_text(text, env, base_dir, source)[0]


def _from_text(
    text: str, env: Mapping[str, str], base_dir: Path, source: str
) -> tuple[Config, dict[str, str]]:
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_problem(exc, source)]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            [f"{source}: expected a mapping of sections at the top level, got {type(data).__name__}"]
        )
    return _from_mapping(data, env, base_dir)


def _yaml_problem(exc: yaml.YAMLError, source: str) -> str:
    """PyYAML's error with the file's name where it says `"<unicode string>"` (it was given the text):
    `gateway.yaml, line 3, column 8: not valid YAML: expected ..., but found ':' (while parsing a flow
    node at line 2)`."""
    if not isinstance(exc, yaml.MarkedYAMLError) or exc.problem_mark is None:
        return f"{source}: not valid YAML: {exc}"
    mark, context = exc.problem_mark, exc.context_mark
    began = f" at line {context.line + 1}" if context is not None and context.line != mark.line else ""
    during = f" ({exc.context}{began})" if exc.context else ""
    return f"{source}, line {mark.line + 1}, column {mark.column + 1}: not valid YAML: {exc.problem}{during}"


def config_from_mapping(data: dict[str, Any], env: Mapping[str, str], base_dir: Path = Path(".")) -> Config:
    return _from_mapping(data, env, base_dir)[0]


def _from_mapping(
    data: dict[str, Any], env: Mapping[str, str], base_dir: Path
) -> tuple[Config, dict[str, str]]:
    reader = _Reader(env, base_dir)
    _apply_overrides(data, env, reader)
    config = reader.read(data, Config, "")
    if reader.errors:
        raise ConfigError(reader.errors)
    assert isinstance(config, Config)
    return config, dict(reader.origins)


class _Reader:
    def __init__(self, env: Mapping[str, str], base_dir: Path) -> None:
        self.env = env
        self.base_dir = base_dir
        self.errors: list[str] = []
        self.origins: dict[str, str] = {}  # key path -> the environment variable that set it

    def error(self, path: str, message: str) -> None:
        origin = next(
            (
                var
                for key, var in self.origins.items()
                if path == key or path.startswith((key + ".", key + "["))
            ),
            None,
        )
        self.errors.append(f"{path or '<top>'}: {message}" + (f" (from {origin})" if origin else ""))

    def read(self, value: object, tp: Any, path: str) -> object:
        metadata: tuple[object, ...] = ()
        if typing.get_origin(tp) is typing.Annotated:
            tp, *extra = typing.get_args(tp)
            metadata = tuple(extra)
        for meta in metadata:
            if isinstance(meta, Parse):
                return self._call(meta.function, value, path)
        origin = typing.get_origin(tp)
        if origin in (typing.Union, types.UnionType):
            arms = [arm for arm in typing.get_args(tp) if arm is not type(None)]
            if value is None:
                return None
            if len(arms) != 1:
                raise TypeError(f"{path}: unions need an Annotated Parse function")
            if arms[0] is Secret:
                return self._secret(value, path, nullable=True)
            return self.read(value, arms[0], path)
        if tp is Secret:
            return self._secret(value, path, nullable=False)
        if hasattr(tp, "from_config"):  # value objects that parse themselves (HostPort, DialPattern, ...)
            return self._call(tp.from_config, value, path)
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            return self._section(value, tp, path)
        if origin is tuple:
            return self._list(value, typing.get_args(tp)[0], path)
        if origin in (dict, Mapping):  # named entries (`pbxs:`, `tenants:`): name -> section
            return self._mapping(value, typing.get_args(tp)[1], path)
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return self._enum(value, tp, path)
        if tp in (bool, int, float, str):
            return self._scalar(value, tp, metadata, path)
        raise TypeError(f"{path}: no reader for type {tp!r}")

    def _call(self, function: Any, value: object, path: str) -> object:
        try:
            return function(value)
        except InvalidValue as exc:
            for key, message in exc.problems:
                self.error(join_path(path, key), message)
        except (ValueError, TypeError) as exc:
            self.error(path, str(exc))
        return _FAILED

    def _section(self, value: object, cls: type[Any], path: str) -> object:
        if not isinstance(value, dict):
            self.error(path, f"expected a mapping of keys, got {value!r}")
            return _FAILED
        hints = typing.get_type_hints(cls, include_extras=True)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        kwargs: dict[str, object] = {}
        ok = True
        for key in value:
            if key not in fields:
                self.error(join_path(path, str(key)), "unknown key")
                ok = False
        for name, fld in fields.items():
            key_path = join_path(path, name)
            if name not in value:
                if fld.default is dataclasses.MISSING and fld.default_factory is dataclasses.MISSING:
                    self.error(key_path, "required")
                    ok = False
                continue
            result = self.read(value[name], hints[name], key_path)
            if result is _FAILED:
                ok = False
            else:
                kwargs[name] = result
        if not ok:
            return _FAILED
        return self._call(lambda _: cls(**kwargs), value, path)

    def _list(self, value: object, item_type: Any, path: str) -> object:
        if not isinstance(value, list):
            self.error(path, f"expected a list, got {value!r}")
            return _FAILED
        items = [self.read(item, item_type, f"{path}[{index}]") for index, item in enumerate(value)]
        return _FAILED if any(item is _FAILED for item in items) else tuple(items)

    def _mapping(self, value: object, item_type: Any, path: str) -> object:
        if not isinstance(value, dict):
            self.error(path, f"expected a mapping of names to entries, got {_kind(value)}")
            return _FAILED
        items = {
            str(key): self.read(item, item_type, join_path(path, str(key))) for key, item in value.items()
        }
        return _FAILED if any(item is _FAILED for item in items.values()) else items

    def _enum(self, value: object, cls: type[enum.Enum], path: str) -> object:
        if isinstance(value, str):
            for member in cls:
                if str(member.value).lower() == value.lower():
                    return member
        choices = ", ".join(str(m.value) for m in cls)
        self.error(path, f"expected one of {choices}, got {value!r}")
        return _FAILED

    def _scalar(self, value: object, tp: type, metadata: tuple[object, ...], path: str) -> object:
        bounds = next((m for m in metadata if isinstance(m, (IntRange, FloatRange))), None)
        span = f" {bounds.low}-{bounds.high}" if bounds is not None else ""
        if tp is bool:
            if isinstance(value, bool):
                return value
            self.error(path, f"expected true or false, got {value!r}")
        elif tp is str:
            if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
                return str(value)  # an extension such as 1001 reads as an int in YAML
            self.error(path, f"expected a string, got {value!r}")
        elif (
            isinstance(value, bool)
            or not isinstance(value, (int, float) if tp is float else int)
            or (bounds is not None and not bounds.low <= value <= bounds.high)
        ):
            self.error(path, f"expected {'a number' if tp is float else 'an integer'}{span}, got {value!r}")
        else:
            return tp(value)
        return _FAILED

    def _secret(self, value: object, path: str, nullable: bool) -> object:
        if isinstance(value, str):
            if not value:
                self.error(path, "secret is empty")
                return _FAILED
            return Secret(SecretSource.INLINE, "", value)
        if not isinstance(value, dict):
            # Never quote the value: it may be a secret typed in the wrong shape.
            self.error(
                path, f"expected a secret: {{env: NAME}}, {{file: PATH}} or a string, got {_kind(value)}"
            )
            return _FAILED
        unknown = [key for key in value if key not in ("env", "file", "optional")]
        for key in unknown:
            self.error(join_path(path, str(key)), "unknown key")
        sources = [key for key in ("env", "file") if key in value]
        optional = value.get("optional", False)
        if len(sources) != 1 or not isinstance(optional, bool) or unknown:
            if len(sources) != 1:
                self.error(path, "a secret reference needs exactly one of env: or file:")
            if not isinstance(optional, bool):
                self.error(join_path(path, "optional"), f"expected true or false, got {optional!r}")
            return _FAILED
        source = SecretSource(sources[0])
        ref = value[source.value]
        if not isinstance(ref, str) or (source is SecretSource.ENV and not _ENV_NAME.fullmatch(ref)):
            what = "an environment variable name" if source is SecretSource.ENV else "a file path"
            self.error(join_path(path, source.value), f"expected {what}, got {ref!r}")
            return _FAILED
        if source is SecretSource.ENV:
            secret = self.env.get(ref)
            problem = (
                f"environment variable {ref} is not set"
                if secret is None
                else f"environment variable {ref} is empty"
            )
        else:
            file = self.base_dir / ref
            try:
                secret = file.read_text(encoding="utf-8").rstrip("\r\n")
                problem = f"secret file {str(file)!r} is empty"
            except OSError as exc:
                secret, problem = None, f"cannot read secret file {str(file)!r}: {exc.strerror or exc}"
            except UnicodeDecodeError:
                secret, problem = None, f"secret file {str(file)!r} is not UTF-8 text"
        if secret:
            return Secret(source, ref, secret)
        if secret is None and optional and nullable:
            logger.debug("%s: optional secret %s:%s not set", path, source.value, ref)
            return None
        self.error(path, problem)
        return _FAILED


def _secret_env_refs(node: object) -> Iterator[str]:
    """Environment variable names that secret references (`{env: NAME}`) in the raw file use."""
    if isinstance(node, dict):
        env = node.get("env")
        if isinstance(env, str):
            yield env
        for child in node.values():
            yield from _secret_env_refs(child)
    elif isinstance(node, list):
        for child in node:
            yield from _secret_env_refs(child)


def _override_path(segments: list[str]) -> list[PathPart] | None:
    """Map `["SIP", "LISTEN", "0", "PORT"]` to `["sip", "listen", 0, "port"]` if Config has that key; a
    named entry's name in lower case (`["PBXS", "B", "ADDRESS"]`: `["pbxs", "b", "address"]`)."""
    tp: Any = Config
    parts: list[PathPart] = []
    expect_index = expect_name = False
    for segment in segments:
        if expect_index:
            if not segment.isdigit():
                return None
            parts.append(int(segment))
            expect_index = False
            continue
        if expect_name:
            parts.append(segment.lower())
            expect_name = False
            continue
        tp = _strip(tp)
        if not (dataclasses.is_dataclass(tp) and isinstance(tp, type)):
            return None
        names = {f.name for f in dataclasses.fields(tp)}
        name = segment.lower()
        if name not in names:
            return None
        parts.append(name)
        tp = _strip(typing.get_type_hints(tp, include_extras=True)[name])
        if typing.get_origin(tp) is tuple:
            tp = typing.get_args(tp)[0]
            expect_index = True
        elif typing.get_origin(tp) in (dict, Mapping):  # `pbxs:`, `tenants:` (config/pbxs.py)
            tp = typing.get_args(tp)[1]
            expect_name = True
    return parts


def _strip(tp: Any) -> Any:
    """The type under Annotated[...] and `| None`."""
    if typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        arms = [arm for arm in typing.get_args(tp) if arm is not type(None)]
        if len(arms) == 1:
            return _strip(arms[0])
    return tp


def _format_path(parts: list[PathPart]) -> str:
    path = ""
    for part in parts:
        path = f"{path}[{part}]" if isinstance(part, int) else join_path(path, part)
    return path


def _apply_overrides(data: dict[str, Any], env: Mapping[str, str], reader: _Reader) -> None:
    referenced = set(_secret_env_refs(data))
    for var in sorted(env):
        if not var.startswith(ENV_PREFIX) or var in RESERVED_ENV or var in referenced:
            continue
        segments = var[len(ENV_PREFIX) :].split("__")
        parts = _override_path(segments)
        if not parts and len(segments) == 1:
            # no `__`: a secret for a section this file does not have (GATEWAY_CLUSTER_SECRET on an
            # instance without `cluster:`: issue 39), not an override; it stopped the gateway before
            logger.warning(
                "%s names no setting and no {env: %s} in this file uses it: ignored "
                "(an override names its key with __, e.g. GATEWAY_HTTP__PORT)",
                var,
                var,
            )
            continue
        if not parts:
            reader.errors.append(f"{var}: unknown setting {'.'.join(s.lower() for s in segments)!r}")
            continue
        path = _format_path(parts)
        try:
            value = yaml.safe_load(env[var]) if env[var].strip() else None
        except yaml.YAMLError:
            value = env[var]  # not YAML (e.g. an unbalanced quote): take the text as it is
        node: Any = data
        for depth, part in enumerate(parts[:-1]):
            nxt = parts[depth + 1]
            if isinstance(part, int):
                if not isinstance(node, list) or part >= len(node):
                    reader.errors.append(
                        f"{var}: {_format_path(parts[: depth + 1])} does not exist in the file"
                    )
                    break
                node = node[part]
            else:
                if not isinstance(node, dict):
                    reader.errors.append(f"{var}: {_format_path(parts[:depth])} is not a mapping in the file")
                    break
                node = node.setdefault(part, [] if isinstance(nxt, int) else {})
        else:
            last = parts[-1]
            if isinstance(last, int):
                if not isinstance(node, list) or last >= len(node):
                    reader.errors.append(f"{var}: {path} does not exist in the file")
                    continue
                node[last] = value
            elif isinstance(node, dict):
                node[last] = value
            else:
                reader.errors.append(f"{var}: {_format_path(parts[:-1])} is not a mapping in the file")
                continue
            reader.origins[path] = var
            logger.debug("%s overrides %s", var, path)


def iter_secrets(config: object, path: str = "") -> Iterator[tuple[str, Secret | None]]:
    """Every secret field of `config` with its key path: (`"web_auth.session_secret"`, Secret or None)."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        return
    hints = typing.get_type_hints(type(config), include_extras=True)
    for fld in dataclasses.fields(config):
        value = getattr(config, fld.name)
        key_path = join_path(path, fld.name)
        if _strip(hints[fld.name]) is Secret:
            yield key_path, value
        elif isinstance(value, tuple):
            for index, item in enumerate(value):
                yield from iter_secrets(item, f"{key_path}[{index}]")
        elif isinstance(value, Mapping):
            for name, item in value.items():
                yield from iter_secrets(item, join_path(key_path, str(name)))
        else:
            yield from iter_secrets(value, key_path)


def _kind(value: object) -> str:
    """A description of `value`'s type that does not quote it (for values that may be secrets)."""
    kinds = {bool: "a boolean", int: "an integer", float: "a number", list: "a list"}
    return kinds.get(type(value), f"a {type(value).__name__}")
