"""A faster __init__ for the frozen dataclasses built once per record.

A frozen dataclass sets each field in its generated __init__ through
`object.__setattr__(self, name, value)`, looked up again for every field; for Record (17
fields) that cost more than decoding its JSON line (bench/ingest.py: ~8 µs a record, where
the line's msgspec decoding takes ~1.5 µs). `quick_init` writes the same __init__ -- the
same parameters, defaults and factories, then __post_init__ -- but sets each field through
its slot's own descriptor, bound once when the class is made, with no attribute lookup by
name: a third of the cost. Everything else about the class (frozen, slots, eq, hash,
dataclasses.replace) is the dataclass's own.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


class _Factory:
    """The default of a field with a default factory, as the dataclass's own shows it."""

    def __repr__(self) -> str:
        return "<factory>"


_MISSING_FACTORY = _Factory()


def quick_init(cls: type[T]) -> type[T]:
    """Give a frozen dataclass (applied above @dataclass) the faster __init__."""
    if "__slots__" not in cls.__dict__:
        raise TypeError(f"quick_init needs a dataclass with slots=True, not {cls.__name__}")
    params: list[str] = []
    body: list[str] = []
    scope: dict[str, Any] = {"_none": _MISSING_FACTORY}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not field.init:
            continue
        name = field.name
        # The slot's member descriptor stores the value: what object.__setattr__ would
        # find by name, every time, before calling it.
        scope[f"_set_{name}"] = cls.__dict__[name].__set__
        if field.default is not dataclasses.MISSING:
            scope[f"_default_{name}"] = field.default
            params.append(f"{name}=_default_{name}")
            body.append(f"    _set_{name}(self, {name})")
        elif field.default_factory is not dataclasses.MISSING:
            scope[f"_factory_{name}"] = field.default_factory
            params.append(f"{name}=_none")
            value = f"_factory_{name}() if {name} is _none else {name}"
            body.append(f"    _set_{name}(self, {value})")
        else:
            params.append(name)
            body.append(f"    _set_{name}(self, {name})")
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()")
    source = f"def __init__(self, {', '.join(params)}):\n" + "\n".join(body)
    exec(source, scope)  # the code is built above from the class's own field names
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__annotations__ = {f.name: f.type for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    init.__annotations__["return"] = None
    cls.__init__ = init  # type: ignore[method-assign]
    return cls
