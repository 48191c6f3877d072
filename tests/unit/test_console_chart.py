"""The overview's server-drawn SVG chart: scaled bars, escaped labels, no inline style."""

from __future__ import annotations

import re
from xml.etree import ElementTree

from notifier.http.console.chart import HEIGHT, Bar, bar_chart

SVG = "{http://www.w3.org/2000/svg}"


def _bars(svg: str) -> list[float]:
    root = ElementTree.fromstring(svg)
    return [float(rect.attrib["height"]) for rect in root.iter(f"{SVG}rect")]


def test_bars_are_scaled_to_the_largest() -> None:
    svg = bar_chart([Bar("a", 10, "ten"), Bar("b", 5, "five"), Bar("c", 0, "none")], caption="x")
    tall, half, empty = _bars(svg)
    assert tall > half > empty and abs(tall - 2 * half) < 0.2
    assert empty == 1.0, "an empty slot still shows a sliver on the axis"
    assert tall < HEIGHT
    assert 'class="bar empty"' in svg


def test_an_all_zero_chart_draws_without_dividing_by_zero() -> None:
    assert _bars(bar_chart([Bar("", 0, "none")] * 24, caption="today")) == [1.0] * 24


def test_labels_and_titles_are_escaped_and_nothing_is_styled_inline() -> None:
    hostile = '<script>alert(1)</script>" onload="alert(2)'
    svg = str(bar_chart([Bar(hostile, 3, hostile)], caption=hostile))
    assert "<script" not in svg and 'onload="' not in svg
    assert re.search(r"\sstyle=", svg) is None
    ElementTree.fromstring(svg)  # still well-formed
    texts = [t.text for t in ElementTree.fromstring(svg).iter(f"{SVG}text")]
    assert hostile in texts
