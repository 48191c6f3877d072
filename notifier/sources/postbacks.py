"""Konnektive CRM postbacks: an Export Profile's query fields -> one status-change record.

An Export Profile of type Postback calls our URL with the fields the operator picked, named
as the operator typed them. By default the names are the Konnektive spellings of
docs/design.md §2 (`orderId`, `fulfillmentStatus`, `trackingNumber`, ...); `fields` remaps other
names (`{"tracking": "tracking_number"}`) so an existing profile need not change.
Fulfillment Delivered and RMA events need nothing more: `dateDelivered` is a record field,
the status is any of docs/design.md §1 (`DELIVERED`, `RMA_PENDING`, `RETURNED`), and the RMA
number (`rmaNumber`, `returnMerchandiseAuthorization`) lands in `record.extra.rma_number`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from notifier.core.records import ALIASES, KNOWN_FIELDS, RecordInvalid
from notifier.errors import ConfigError
from notifier.sources.crm_fields import extra_name

# Parameters that authenticate the call and are never part of the record.
TOKEN_PARAM = "token"
TOKEN_HEADER = "X-Notifier-Token"


@dataclass(frozen=True, slots=True)
class PostbackFields:
    """How incoming parameter names map onto record fields."""

    fields: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, remap: Mapping[str, str]) -> PostbackFields:
        """Check every target is a record field (either spelling); ConfigError names the bad one."""
        bad = {
            name: target
            for name, target in remap.items()
            if target not in KNOWN_FIELDS and target not in ALIASES
        }
        if bad:
            listed = ", ".join(f"{name!r} -> {target!r}" for name, target in bad.items())
            known = ", ".join(sorted(KNOWN_FIELDS))
            raise ConfigError(
                f"NOTIFIER_POSTBACK_FIELDS: not a record field: {listed} (fields: {known})"
            )
        return cls(dict(remap))

    def record_data(self, params: Iterable[tuple[str, Any]]) -> dict[str, Any]:
        """The record's raw fields from the call's parameters (query, then form body).

        A name given twice is an error rather than a silent pick of one value.
        """
        data: dict[str, Any] = {}
        for name, value in params:
            if name == TOKEN_PARAM:
                continue
            # An RMA number arrives as `rmaNumber` or its long name: templates read one name.
            target = self.fields.get(name) or extra_name(name)
            if target in data:
                raise RecordInvalid(f"parameter {name!r} is given twice")
            data[target] = value
        return data
