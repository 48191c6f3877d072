"""The overview's chart of emails sent: an SVG bar chart drawn on the server.

No script and no external request: the page embeds the SVG as markup. Every label passes
through `markupsafe.escape`; bars are styled by class from console.css (the console's
Content-Security-Policy forbids inline styles), sized by presentation attributes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

__all__ = ["Bar", "bar_chart"]

WIDTH = 640
HEIGHT = 200
_TOP = 22  # room for the value above the tallest bar
_BOTTOM = 26  # room for the labels under the bars
_LEFT = 4


@dataclass(frozen=True, slots=True)
class Bar:
    label: str  # under the bar; "" for none (every other hour, say)
    value: int
    title: str  # the tooltip: what the bar counts, in words


def bar_chart(bars: Sequence[Bar], *, caption: str) -> Markup:
    """An SVG of `bars`, scaled to the largest, that scales to its container's width."""
    plot = HEIGHT - _TOP - _BOTTOM
    peak = max((bar.value for bar in bars), default=0)
    slot = (WIDTH - _LEFT) / max(len(bars), 1)
    gap = min(6.0, slot / 4)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(caption)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(caption)}</title>",
        f'<line class="axis" x1="0" y1="{HEIGHT - _BOTTOM}" x2="{WIDTH}" y2="{HEIGHT - _BOTTOM}"/>',
    ]
    for index, bar in enumerate(bars):
        x = _LEFT + index * slot + gap / 2
        height = 0.0 if peak == 0 else plot * bar.value / peak
        # An empty hour still shows a sliver, so the axis reads as time.
        drawn = max(height, 1.0)
        y = HEIGHT - _BOTTOM - drawn
        parts.append(
            f"<g><title>{escape(bar.title)}</title>"
            f'<rect class="{"bar" if bar.value else "bar empty"}" x="{x:.1f}" y="{y:.1f}" '
            f'width="{slot - gap:.1f}" height="{drawn:.1f}"/>'
        )
        if bar.value:
            parts.append(
                f'<text class="value" x="{x + (slot - gap) / 2:.1f}" y="{y - 3:.1f}" '
                f'text-anchor="middle">{bar.value}</text>'
            )
        if bar.label:
            parts.append(
                f'<text class="label" x="{x + (slot - gap) / 2:.1f}" y="{HEIGHT - 6}" '
                f'text-anchor="middle">{escape(bar.label)}</text>'
            )
        parts.append("</g>")
    parts.append("</svg>")
    return Markup("".join(parts))
