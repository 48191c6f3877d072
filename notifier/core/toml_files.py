"""Operator-written TOML files (rules, campaigns) parsed into pydantic models, with errors
that name the file and the key — written once for every kind of file."""

from __future__ import annotations

import tomllib
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from notifier.errors import ConfigError

Model = TypeVar("Model", bound=BaseModel)


def parse_toml(
    text: str,
    model: type[Model],
    *,
    source: str,
    error: type[ConfigError] = ConfigError,
    noun: str = "field",
) -> Model:
    """Validate a TOML document against `model`; `error` says `<source>: <noun> 'x': why`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{source}: not valid TOML: {exc}") from None
    except RecursionError:
        raise error(f"{source}: not valid TOML: nested too deeply") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{noun} {'.'.join(str(p) for p in err['loc']) or '(top)'!r}: {err['msg']}"
            for err in exc.errors()
        )
        raise error(f"{source}: {problems}") from None
