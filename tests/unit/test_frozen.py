"""quick_init writes the dataclass's own __init__, only faster: same parameters, same values."""

from __future__ import annotations

import dataclasses
import inspect
from datetime import UTC, datetime

import pytest

from notifier.core.frozen import quick_init
from notifier.core.models import FulfillmentState, Record, Status


@dataclasses.dataclass(frozen=True, slots=True)
class Plain:
    name: str
    count: int = 3
    tags: list[str] = dataclasses.field(default_factory=list)
    label: str = dataclasses.field(init=False, default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "label", f"{self.name}x{self.count}")


@quick_init
@dataclasses.dataclass(frozen=True, slots=True)
class Quick:
    name: str
    count: int = 3
    tags: list[str] = dataclasses.field(default_factory=list)
    label: str = dataclasses.field(init=False, default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "label", f"{self.name}x{self.count}")


def _label_of(name: str, count: int) -> str:
    return f"{name}x{count}"


@quick_init(derived={"label": _label_of})
@dataclasses.dataclass(frozen=True, slots=True)
class Derived:
    name: str
    count: int = 3
    tags: list[str] = dataclasses.field(default_factory=list)
    label: str = dataclasses.field(init=False, default="")


def _values(item: object) -> dict[str, object]:
    return {f.name: getattr(item, f.name) for f in dataclasses.fields(item)}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [(("a",), {}), (("a", 5), {}), (("a",), {"tags": ["t"]}), ((), {"name": "b", "count": 0})],
)
def test_the_same_call_gives_the_same_values(
    args: tuple[object, ...], kwargs: dict[str, object]
) -> None:
    assert _values(Quick(*args, **kwargs)) == _values(Plain(*args, **kwargs))  # type: ignore[arg-type]


def test_same_signature_fresh_factories_still_frozen() -> None:
    assert str(inspect.signature(Quick)) == str(inspect.signature(Plain))
    assert Quick("a").tags is not Quick("a").tags
    with pytest.raises(dataclasses.FrozenInstanceError):
        Quick("a").name = "b"  # type: ignore[misc]
    with pytest.raises(TypeError, match="name"):
        Quick()  # type: ignore[call-arg]
    assert dataclasses.replace(Quick("a"), count=9).label == "ax9"


@pytest.mark.parametrize("cls", [Record, FulfillmentState])
def test_the_models_keep_their_parameters(cls: type) -> None:
    """Each init field, in order, with its default (a factory's shows as a sentinel); and
    the __init__ is quick_init's (the models once went without it, unnoticed)."""
    assert "_twin" in cls.__init__.__code__.co_names  # type: ignore[misc]
    init_fields = [f for f in dataclasses.fields(cls) if f.init]
    parameters = list(inspect.signature(cls).parameters.values())
    assert [p.name for p in parameters] == [f.name for f in init_fields]
    for parameter, field in zip(parameters, init_fields, strict=True):
        if field.default is not dataclasses.MISSING:
            assert parameter.default == field.default
        elif field.default_factory is dataclasses.MISSING:
            assert parameter.default is inspect.Parameter.empty


def test_a_record_is_built_as_before() -> None:
    now = datetime.now(UTC)
    record = Record("O1", "F1", Status.SHIPPED, now, event_id="e1")
    assert (record.order_id, record.status, record.received_at, record.extra) == (
        "O1",
        Status.SHIPPED,
        now,
        {},
    )
    assert record.dedup_key == Record("O2", "F2", Status.HOLD, now, event_id="e1").dedup_key


def test_the_instance_is_of_its_own_class_when_built() -> None:
    """Built as its unfrozen twin, it leaves __init__ as itself: its class, its equality and
    hash, and no way to assign a field afterwards."""
    quick = Quick("a", 2, ["t"])
    assert type(quick) is Quick and isinstance(quick, Quick)
    assert quick == Quick("a", 2, ["t"]) and quick != Quick("a", 3, ["t"])
    assert repr(quick) == "Quick(name='a', count=2, tags=['t'], label='ax2')"
    for name in ("name", "count", "tags", "label"):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(quick, name, None)
    record = Record("O1", "F1", Status.SHIPPED, datetime.now(UTC))
    assert type(record) is Record and record == dataclasses.replace(record)
    state = FulfillmentState("F1", "O1", Status.SHIPPED, datetime.now(UTC))
    assert type(state) is FulfillmentState and hash(state) == hash(dataclasses.replace(state))


def test_a_subclass_is_built_the_usual_way() -> None:
    class Labelled(Quick):
        __slots__ = ("note",)

    labelled = Labelled("a", 4)
    assert type(labelled) is Labelled
    assert _values(labelled) == _values(Plain("a", 4))


def test_a_class_without_slots_is_refused_when_decorated() -> None:
    # Its twin would have no slots to copy: say so at import time.
    with pytest.raises(TypeError, match="slots=True"):

        @quick_init
        @dataclasses.dataclass(frozen=True)
        class Unslotted:
            name: str


def test_a_class_with_a_base_is_refused_when_decorated() -> None:
    # The twin copies the class's own slots, not a base's: the layouts would differ.
    with pytest.raises(TypeError, match="object alone"):

        @quick_init
        @dataclasses.dataclass(frozen=True, slots=True)
        class Derived(Plain):
            extra: int = 0


@pytest.mark.parametrize(
    ("args", "kwargs"), [(("a",), {}), (("a", 5), {}), ((), {"name": "b", "count": 0})]
)
def test_a_derived_field_is_what_post_init_made(
    args: tuple[object, ...], kwargs: dict[str, object]
) -> None:
    assert _values(Derived(*args, **kwargs)) == _values(Plain(*args, **kwargs))  # type: ignore[arg-type]
    assert dataclasses.replace(Derived("a"), count=9).label == "ax9"
    with pytest.raises(dataclasses.FrozenInstanceError):
        Derived("a").label = "b"  # type: ignore[misc]


def test_a_derived_field_must_be_an_init_false_field_of_init_fields() -> None:
    def of_missing(nothing: str) -> str:
        return nothing

    with pytest.raises(TypeError, match="not init fields"):
        quick_init(derived={"label": of_missing})(
            dataclasses.dataclass(frozen=True, slots=True)(
                type(
                    "A",
                    (),
                    {
                        "__annotations__": {"name": "str", "label": "str"},
                        "label": dataclasses.field(init=False, default=""),
                    },
                )
            )
        )
    with pytest.raises(TypeError, match="no field with init=False"):
        quick_init(derived={"name": _label_of})(
            dataclasses.dataclass(frozen=True, slots=True)(
                type("B", (), {"__annotations__": {"name": "str", "count": "int"}})
            )
        )
