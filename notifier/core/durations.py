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


_SPELLED = (("d", "day", 86400), ("h", "hour", 3600), ("m", "minute", 60), ("s", "second", 1))


def _split(value: timedelta) -> list[tuple[int, str, str]]:
    """(count, short unit, word) for each non-zero unit, largest first."""
    seconds = int(value.total_seconds())
    parts = []
    for short, word, size in _SPELLED:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append((count, short, word))
    return parts


def format_duration(value: timedelta) -> str:
    """The inverse of parse_duration, for display: 90 s -> "1m30s"."""
    return "".join(f"{count}{short}" for count, short, _ in _split(value)) or "0s"


def spoken_duration(value: timedelta) -> str:
    """As people say it, to two units: "3 days", "1 day 12 hours", "90 minutes" is "1 hour
    30 minutes"."""
    words = [f"{count} {word}{'s' if count != 1 else ''}" for count, _, word in _split(value)]
    return " ".join(words[:2]) or "0 seconds"
