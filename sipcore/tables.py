"""Transition tables of the sans-I/O state machines (the house style, docs/architecture.md).

A table maps (state, event) to the handler function (a reference, so a misspelt one fails at import);
rows name several states and events at once, comma-separated, as the RFCs' figures draw one arrow
for several. The same pair given twice is an error.
"""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

__all__ = ["transition_table"]

S = TypeVar("S", bound=Enum)
E = TypeVar("E", bound=Enum)
H = TypeVar("H")


def transition_table(states: type[S], events: type[E], *rows: tuple[str, str, H]) -> dict[tuple[S, E], H]:
    """``{(state, event): handler}`` from rows of ``("STATE,STATE", "EVENT,EVENT", handler)``."""
    table: dict[tuple[S, E], H] = {}
    for state_names, event_names, handler in rows:
        for state in state_names.split(","):
            for event in event_names.split(","):
                key = (states[state], events[event])
                if key in table:
                    raise ValueError(f"two handlers for ({state}, {event})")
                table[key] = handler
    return table
