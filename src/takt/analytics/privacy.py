"""No report shows a group smaller than ``analytics.min_group_size`` people.

:func:`suppress` drops the cells of a report whose ``people`` are fewer (and, where a report shows a total,
one more: the next smallest, so the hidden cell cannot be recovered by subtraction); the report says how
many cells it hid. A scope of fewer people than the minimum shows nothing at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def suppress(rows: Sequence[dict[str, Any]], min_people: int, *, people: str = "people",
             complementary: bool = True) -> tuple[list[dict[str, Any]], int]:
    """(the rows shown, how many were hidden). ``complementary``: the rows add up to a total the report
    shows, so a single hidden row takes the next smallest with it."""
    small = [r for r in rows if int(r[people]) < min_people]
    kept = [r for r in rows if int(r[people]) >= min_people]
    if complementary and len(small) == 1 and kept:
        smallest = min(range(len(kept)), key=lambda i: (int(kept[i][people]), i))
        small.append(kept.pop(smallest))
    return kept, len(small)


def note(hidden: int, min_people: int) -> str | None:
    if not hidden:
        return None
    return (f"{hidden} group{'s' if hidden != 1 else ''} of fewer than {min_people} people "
            f"{'are' if hidden != 1 else 'is'} not shown (analytics.min_group_size)")
