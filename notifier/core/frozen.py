"""A faster __init__ for the frozen dataclasses built once per record.

A frozen dataclass cannot assign its own fields: its __setattr__ refuses, so the generated
__init__ sets each one through `object.__setattr__(self, name, value)`, a call per field.
For Record (18 fields) that cost more than decoding its JSON line: callgrind counted ~30,000
instructions for the fields alone, against ~8,000 for msgspec's decoding of the line and
~6,700 for a plain class with the same slots, whose assignments the interpreter runs
inline.

`quick_init` writes the same __init__ -- the same parameters, defaults and factories, then
__post_init__ -- but lets the interpreter assign the fields as it would for that plain
class: for the length of the assignments the new instance belongs to a twin class with
exactly its slots and no __setattr__ of its own, then it is handed back its class (~9,400
instructions for Record's fields, its __post_init__ aside). CPython allows `__class__` to
change between classes of the same layout, and checks the layout when it does. No one
ever sees the twin: the instance is only reachable from __init__ until it returns.
Everything else about the class (frozen, slots, eq, hash, repr, dataclasses.replace) is
the dataclass's own; a subclass, with a layout of its own, takes the usual way.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class _Factory:
    """The default of a field with a default factory, as the dataclass's own shows it."""

    def __repr__(self) -> str:
        return "<factory>"


_MISSING_FACTORY = _Factory()


def quick_init(
    cls: type[T] | None = None, *, derived: Mapping[str, Callable[..., Any]] | None = None
) -> Any:
    """Give a frozen dataclass (applied above @dataclass(frozen=True, slots=True)) the
    faster __init__. It must derive from object alone: the twin copies its slots, not a
    base's.

    `derived` names fields (init=False) worked out from others, each by a function whose
    parameters are init fields by name: `@quick_init(derived={"key": key_of})`. The
    __init__ assigns them with the rest, where a __post_init__ would set each through
    object.__setattr__ after a call of its own (a quarter of building a Record)."""
    if cls is None:
        return lambda cls: _quick_init(cls, derived or {})
    return _quick_init(cls, derived or {})


def _quick_init(cls: type[T], derived: Mapping[str, Callable[..., Any]]) -> type[T]:
    slots = cls.__dict__.get("__slots__")
    if slots is None:
        raise TypeError(f"quick_init needs a dataclass with slots=True, not {cls.__name__}")
    if cls.__bases__ != (object,):
        raise TypeError(f"quick_init needs a class that derives from object alone: {cls.__name__}")
    twin = type(f"_{cls.__name__}UnderConstruction", (), {"__slots__": tuple(slots)})
    params: list[str] = []
    factories: list[str] = []
    names: list[str] = []
    scope: dict[str, Any] = {
        "_cls": cls,
        "_twin": twin,
        "_object_setattr": object.__setattr__,
        "_none": _MISSING_FACTORY,
    }
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not field.init:
            continue
        name = field.name
        names.append(name)
        if field.default is not dataclasses.MISSING:
            scope[f"_default_{name}"] = field.default
            params.append(f"{name}=_default_{name}")
        elif field.default_factory is not dataclasses.MISSING:
            scope[f"_factory_{name}"] = field.default_factory
            params.append(f"{name}=_none")
            factories.append(f"    if {name} is _none:\n        {name} = _factory_{name}()")
        else:
            params.append(name)
    computed: list[tuple[str, str]] = []  # (field, the expression that works it out)
    for name, derive in derived.items():
        field = next((f for f in dataclasses.fields(cls) if f.name == name), None)  # type: ignore[arg-type]
        if field is None or field.init:
            raise TypeError(f"quick_init: {cls.__name__}.{name} is no field with init=False")
        arguments = list(inspect.signature(derive).parameters)
        if unknown := [a for a in arguments if a not in names]:
            raise TypeError(f"quick_init: {name} is derived from {unknown}, not init fields")
        scope[f"_derive_{name}"] = derive
        computed.append((name, f"_derive_{name}({', '.join(arguments)})"))
    body = [
        *factories,
        "    if type(self) is _cls:",
        "        _object_setattr(self, '__class__', _twin)",
        *(f"        self.{name} = {name}" for name in names),
        *(f"        self.{name} = {expression}" for name, expression in computed),
        "        self.__class__ = _cls",
        "    else:",
        *(f"        _object_setattr(self, {name!r}, {name})" for name in names),
        *(
            f"        _object_setattr(self, {name!r}, {expression})"
            for name, expression in computed
        ),
    ]
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
