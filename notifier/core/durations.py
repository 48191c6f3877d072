"""Durations as operators write them in rule files: "90s", "10m", "1h30m", "2d"."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: str | int | float) -> timedelta:
    """Parse "1h30m" style text, or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    try:
        if isinstance(value, int | float):
            if value < 0:
                raise ValueError(f"a duration cannot be negative: {value!r}")
            return timedelta(seconds=value)
        text = value.strip().lower().replace(" ", "")
        if not text or _PART.sub("", text):
            raise ValueError(f"not a duration: {value!r} (write e.g. '90s', '10m', '1h30m', '2d')")
        return timedelta(seconds=sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(text)))
    except OverflowError:
        raise ValueError(f"duration too long: {value!r}") from None


def format_duration(value: timedelta) -> str:
    """The inverse of parse_duration, for display: 90 s -> "1m30s"."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
