"""Rendering and carrier-detection cost, as ratios against baselines run in the same process.

    python -m bench.render

- full render (Jinja + CSS inlining + MIME message) vs the bare Jinja render of the same
  three parts: what inlining and message building add per email;
- carrier detection vs whitespace normalisation alone, over the shared test numbers
  (or a built-in handful when ../shared is absent).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from notifier.authoring.preview import preview_message, preview_notice, sample_records
from notifier.core import carriers
from notifier.core.models import Record
from notifier.core.rules import Rule, load_rules
from notifier.rendering.branding import Branding
from notifier.rendering.compose import Composer
from notifier.rendering.renderer import PARTS, Renderer

ROOT = Path(__file__).resolve().parents[1]
NUMBERS_DIR = ROOT.parent / "shared" / "testdata" / "tracking_numbers"


def per_call(fn: Callable[[], object], *, seconds: float = 1.0) -> float:
    """Mean seconds per call over about `seconds` of calls (after one warm-up call)."""
    fn()
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        calls += 1
    return elapsed / calls


def bench_render() -> None:
    branding = Branding(
        mail_from="Example Store <orders@example.com>",
        shop={"name": "Example Store", "support_email": "help@example.com", "url": None},
    )
    composer = Composer(Renderer(ROOT / "templates"), branding)
    for rule in load_rules(ROOT / "rules"):
        records = sample_records(rule)
        notice, order = preview_notice(rule, records)
        context = composer.context(notice, rule, order)

        def bare(rule: Rule = rule, context: dict[str, Any] = context) -> None:
            for part in PARTS:
                composer.renderer.render_part(rule.template, part, context)

        def full(rule: Rule = rule, records: list[Record] = records) -> None:
            preview_message(composer, rule, records)

        base, total = per_call(bare), per_call(full)
        print(
            f"render {rule.id:<26} bare Jinja {base * 1e3:6.2f} ms   full message "
            f"{total * 1e3:6.2f} ms   ratio {total / base:4.1f}x   ({1 / total:,.0f} emails/s)"
        )


def bench_carriers() -> None:
    numbers: list[str] = []
    for path in sorted(NUMBERS_DIR.glob("*.json")):
        for entry in json.loads(path.read_text(encoding="utf-8"))["tracking_numbers"]:
            for kind in ("valid", "invalid"):
                numbers += entry["test_numbers"].get(kind, [])
    if not numbers:
        numbers = ["1Z999AA10123456784", "9400111899223197428490", "123456789012", "N/A"]

    def baseline() -> None:
        for number in numbers:
            "".join(number.split()).upper()

    def detect_all() -> None:
        for number in numbers:
            carriers.detect(number)

    base, total = per_call(baseline), per_call(detect_all)
    print(
        f"carriers: {len(numbers)} numbers, detect {total / len(numbers) * 1e6:.1f} us/number, "
        f"ratio to normalising alone {total / base:.0f}x"
    )


if __name__ == "__main__":
    bench_render()
    bench_carriers()
