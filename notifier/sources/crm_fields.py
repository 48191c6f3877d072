"""The CRM's names for what templates read from `record.extra` (docs/design.md §2, §3).

A record's own fields have their Konnektive spellings in `core/records.py`; these are the
other facts the CRM's fulfillment events carry that a built-in rule shows — the return's
RMA number — under one name, whichever spelling an Export Profile or the order query uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

RMA_NUMBER = "rma_number"
# Konnektive exports call it by its short and its long name; both mean the same number.
EXTRA_SPELLINGS: Mapping[str, str] = {
    "rmaNumber": RMA_NUMBER,
    "returnMerchandiseAuthorization": RMA_NUMBER,
}


def extra_name(name: str) -> str:
    """The name a template reads a CRM field under (itself when it has no other)."""
    return EXTRA_SPELLINGS.get(name, name)


def first_present(*sources: Mapping[str, Any], names: tuple[str, ...]) -> Any:
    """The first non-empty value of any of `names`, looked for in each source in turn."""
    for source in sources:
        for name in names:
            value = source.get(name)
            if value not in (None, ""):
                return value
    return None


RMA_SPELLINGS = (RMA_NUMBER, *EXTRA_SPELLINGS)
