"""Access to sdp-transform's line grammar, one line at a time.

sdp-transform (a port of the JavaScript sdp-transform) holds a table of regular expressions, one per
known line type, and a formatter per rule. Its whole-document ``parse``/``write`` are lossy for a
gateway (they reorder attributes, keep one fingerprint, drop ``tcptype``, turn ``"0"`` into ``0``:
see tests/sdp/test_transform_quirks.py), so this package keeps the ordered raw lines itself and uses
only the per-line grammar: ``match`` gives the raw (string) groups of one rule, ``format_line`` writes
one line with the rule's own formatter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sdp_transform import grammar as _transform_grammar
from sdp_transform import writer as _transform_writer

_GRAMMAR: dict[str, list[dict[str, Any]]] = _transform_grammar.grammar

# (field letter, rule key) -> rule; the key is the rule's "push" or "name" in sdp-transform's table.
_RULES: dict[tuple[str, str], dict[str, Any]] = {}
for _field, _rules in _GRAMMAR.items():
    for _rule in _rules:
        _key = _rule.get("push") or _rule.get("name")
        if _key is not None:
            _RULES.setdefault((_field, _key), _rule)


def _names(key: str, rule: Mapping[str, Any]) -> list[str]:
    names: list[str] | None = rule.get("names")
    return list(names) if names else [key]


# (field, key) -> the rule's regular expression compiled once and its group names (``match`` runs on
# every candidate, rtpmap and fmtp line of every description: re.match's cache lookup per call cost more
# than the match)
_MATCHERS: dict[tuple[str, str], tuple[re.Pattern[str], tuple[str, ...]]] = {
    rule_key: (re.compile(rule["reg"]), tuple(_names(rule_key[1], rule))) for rule_key, rule in _RULES.items()
}


def match(field: str, key: str, content: str, *, whole: bool = True) -> dict[str, str | None] | None:
    """Match ``content`` (the text after ``x=``) against one rule; raw string groups or None.

    With ``whole`` the rule must consume the entire content (sdp-transform's own parser accepts any
    line whose beginning matches, silently dropping the rest).
    """
    compiled, names = _MATCHERS[(field, key)]
    found = compiled.match(content)
    if found is None or (whole and found.end() != len(content)):
        return None
    return dict(zip(names, found.groups(), strict=True))


def format_line(field: str, key: str, values: Mapping[str, object]) -> str:
    """Write one line's content (without ``x=``) with the rule's formatter from sdp-transform."""
    rule = _RULES[(field, key)]
    location: dict[str, object]
    if rule.get("push") or not rule.get("names"):
        location = dict(values) if rule.get("push") else {key: values[key]}
    else:
        location = {key: dict(values)}
    line: str = _transform_writer.makeLine(field, rule, location)
    return line[2:]
