"""The cyclic garbage collector, set for a process that works through many records or requests.

Taken once a process has built what it keeps (the engine, rules, templates, the app): by
`notifier run` before it reads its batch, and by the lifecycle of `serve`, `worker` and
`schedule` once their services are up.

A webhook request allocates a few hundred container objects, nearly all freed by reference
counting as soon as the request is answered; CPython's default young-generation threshold
(700 allocations) still ran a collection every couple of requests, and each full collection
walked every object built at start-up (modules, the app, rules, templates: ~125,000) to
find nothing. Measured under load (bench/webhook.py): the collector took ~7% of the
server's CPU before, under 1% after. A batch's records are the same story: ingesting 100,000
records (bench/ingest.py's) took ~12% less CPU with these settings.
"""

from __future__ import annotations

import gc

# Allocations between young-generation collections (CPython's default: 700).
YOUNG_THRESHOLD = 10_000


def settle_after_startup() -> None:
    """Freeze what start-up built (it lives as long as the process: the collector need not
    look at it again) and collect the young generation less often. Objects made later are
    collected as usual; frozen ones are still freed by reference counting."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
