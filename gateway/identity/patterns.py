"""Dial patterns: which numbers a web user may call, which inbound numbers ring a web user.

The pattern language (in the manner of Asterisk extension patterns, without the leading `_`):

  0-9 + * #   the character itself (`*` and `#` are dialable keys, as in `*97`, never wildcards)
  x X         any digit 0-9
  n N         any digit 2-9
  z Z         any digit 1-9
  [15-7]      one digit from the class: single digits and ascending ranges, at least one
  .           only at the end: one or more further characters of any kind
  !           only at the end: zero or more further characters of any kind

A pattern matches the whole string: `2xxx` matches `2001` but neither `200` nor `20011`. `.` alone
matches any non-empty number (the "allow everything" pattern). Anything else, such as a letter, an
unclosed `[`, an empty class, `[5-1]` or a `.` before the end, is rejected with a `PatternError`.

When several patterns match, the most specific wins (see `DialPattern.specificity`): a pattern
without a trailing wildcard beats one with, then the longer, then the one with narrower classes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from gateway.identity.errors import PatternError

LITERALS: Final = frozenset("0123456789+*#")
# Single-letter classes: (regex, number of characters the position admits).
_LETTER_CLASSES: Final = {"x": ("[0-9]", 10), "n": ("[2-9]", 8), "z": ("[1-9]", 9)}
_WILDCARDS: Final = {".": ".+", "!": ".*"}


@dataclass(frozen=True, slots=True)
class DialPattern:
    """A compiled dial pattern; `DialPattern("2xxx").matches("2001")`."""

    text: str
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)
    specificity: tuple[int, int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        regex, specificity = _compile(self.text)
        object.__setattr__(self, "_regex", regex)
        object.__setattr__(self, "specificity", specificity)

    @classmethod
    def from_config(cls, value: object) -> DialPattern:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise PatternError(f"expected a dial pattern string, got {value!r}")
        return cls(str(value))

    def matches(self, number: str) -> bool:
        return self._regex.fullmatch(number) is not None

    def __str__(self) -> str:
        return self.text


def _compile(text: str) -> tuple[re.Pattern[str], tuple[int, int, int]]:
    """Translate `text` into a regex and its specificity, or raise PatternError quoting it."""

    def fail(reason: str) -> PatternError:
        return PatternError(f"bad dial pattern {text!r}: {reason}")

    if not text:
        raise fail("empty pattern")
    parts: list[str] = []
    elements = 0
    breadth = 0
    wildcard = False
    i = 0
    while i < len(text):
        char = text[i]
        if char in _WILDCARDS:
            if i != len(text) - 1:
                raise fail(f"{char!r} is only allowed at the end")
            parts.append(_WILDCARDS[char])
            wildcard = True
        elif char in LITERALS:
            parts.append(re.escape(char))
            elements, breadth = elements + 1, breadth + 1
        elif char.lower() in _LETTER_CLASSES:
            regex, size = _LETTER_CLASSES[char.lower()]
            parts.append(regex)
            elements, breadth = elements + 1, breadth + size
        elif char == "[":
            end = text.find("]", i + 1)
            if end < 0:
                raise fail("unclosed '['")
            digits = _class_digits(text[i + 1 : end], fail)
            parts.append("[" + "".join(sorted(digits)) + "]")
            elements, breadth = elements + 1, breadth + len(digits)
            i = end
        else:
            raise fail(f"unexpected character {char!r} at position {i}")
        i += 1
    return re.compile("".join(parts)), (0 if wildcard else 1, elements, -breadth)


def _class_digits(body: str, fail: Callable[[str], PatternError]) -> frozenset[str]:
    """The digits of a `[...]` class body such as `135-7`."""
    if not body:
        raise fail("empty class '[]'")
    digits: set[str] = set()
    i = 0
    while i < len(body):
        char = body[i]
        if not char.isdigit() or not char.isascii():
            raise fail(f"unexpected {char!r} in class '[{body}]' (only digits and ranges like 1-5)")
        if i + 2 < len(body) and body[i + 1] == "-":
            last = body[i + 2]
            if not (last.isdigit() and last.isascii()) or last < char:
                raise fail(f"bad range '{char}-{last}' in class '[{body}]'")
            digits.update(str(d) for d in range(int(char), int(last) + 1))
            i += 3
        else:
            if i + 1 < len(body) and body[i + 1] == "-":
                raise fail(f"unfinished range in class '[{body}]'")
            digits.add(char)
            i += 1
    return frozenset(digits)


def most_specific(patterns: list[DialPattern]) -> list[DialPattern]:
    """The patterns among `patterns` that share the highest specificity."""
    if not patterns:
        return []
    best = max(p.specificity for p in patterns)
    return [p for p in patterns if p.specificity == best]
