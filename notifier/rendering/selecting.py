"""`selectattr` and `rejectattr` as Jinja's, with the per-item work done once per call.

Every built-in shipping template picks its parcels with
``order.fulfillments | selectattr("status", "in", [...])``, a few times a message. Jinja's
filter builds an attribute getter and, for each item, looks the test up by name, works
out what else it wants passed, then calls it: a twentieth of a delivery's CPU
(bench/delivery.py), for lists of one to three dicts. Here the test is looked up once per
call, and a dict's own key is read directly -- what the sandbox's `getitem` does first
anyway. Whatever this shortcut does not cover (a dotted or numeric attribute, keyword
arguments, a test that asks for the context) goes to Jinja's own filter, so the results
and the errors are Jinja's in every case.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, cast

import jinja2
from jinja2 import filters as jinja_filters
from jinja2.utils import _PassArg


def _with_shortcut(jinja_filter: Callable[..., Iterator[Any]], *, keep: bool) -> Callable[..., Any]:
    """Jinja's `selectattr` (keep: the items whose attribute passes the test) or
    `rejectattr` (the others), through the shortcut where it applies."""

    @jinja2.pass_context
    def attribute_filter(
        context: jinja2.runtime.Context, value: Any, *args: Any, **kwargs: Any
    ) -> Any:
        plain = _plain_test(context.environment, args, kwargs)
        if plain is None:
            return jinja_filter(context, value, *args, **kwargs)
        return _selected(context.environment, value, args[0], *plain, keep=keep)

    attribute_filter.__doc__ = jinja_filter.__doc__
    return attribute_filter


# Over Jinja's own synchronous variants: our environment is never async.
selectattr = _with_shortcut(jinja_filters.sync_do_selectattr, keep=True)
rejectattr = _with_shortcut(jinja_filters.sync_do_rejectattr, keep=False)


def _plain_test(
    env: jinja2.Environment, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Callable[..., Any], tuple[Any, ...]] | None:
    """The test and its further arguments, when the call is one this module takes on:
    a plain attribute name (Jinja would split a dotted one, and read "0" as an index), a
    named test that is a plain function, no keyword arguments. Else None."""
    if kwargs or len(args) < 2:
        return None  # no test named (Jinja tests truth), or options Jinja alone reads
    attribute, name, *rest = args
    if not isinstance(attribute, str) or "." in attribute or attribute.isdigit():
        return None
    # Jinja types its tests as bare functions. Quoted, the type is not built at each call
    # (a generic alias made per call cost a fifth of this function in a profile).
    tests = cast("Mapping[str, Callable[..., Any]]", env.tests)
    test = tests.get(name) if isinstance(name, str) else None
    if test is None or _PassArg.from_obj(test) is not None:
        return None  # Jinja raises for an unknown test, and passes what a marked one asks
    return test, tuple(rest)


def _selected(
    env: jinja2.Environment,
    value: Iterable[Any],
    attribute: str,
    test: Callable[..., Any],
    rest: tuple[Any, ...],
    *,
    keep: bool,
) -> Iterator[Any]:
    # A generator, as Jinja's: nothing (not even the emptiness check) runs until iterated.
    if not value:
        return
    getitem = env.getitem
    for item in value:
        if type(item) is dict and attribute in item:
            found = item[attribute]
        else:
            found = getitem(item, attribute)
        if bool(test(found, *rest)) is keep:
            yield item
