"""Render the reliability tests' results (JSON lines) into the table in docs/reliability.md.

    python tests/support/reliability_report.py RESULTS.jsonl docs/reliability.md

Replaces what lies between the `<!-- results:start -->` and `<!-- results:end -->` markers;
`make reliability` runs the tests with the full sizes, then this.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path
from typing import Any

START = "<!-- results:start -->"
END = "<!-- results:end -->"


def cell(value: Any) -> str:
    if value is None:
        return "-"
    text = f"{value:,}" if isinstance(value, int) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def render(entries: list[dict[str, Any]]) -> str:
    if not entries:
        return "_No results yet: run `make reliability`._"
    when = max(entry["at"] for entry in entries)
    sizes = "full" if all(entry.get("full") for entry in entries) else "default (reduced)"
    lines = [
        f"Latest run: {when} UTC, {sizes} sizes, Python {platform.python_version()},"
        f" {platform.system()} {platform.machine()}.",
        "",
        "| test | injects | runs | notices | sent | duplicated | lost | notes |",
        "|---|---|--:|--:|--:|--:|--:|---|",
    ]
    for entry in entries:
        row = [
            entry["test"],
            entry["injects"],
            entry["runs"],
            entry.get("notices"),
            entry.get("sent"),
            entry.get("duplicated"),
            entry.get("lost"),
            entry.get("notes", ""),
        ]
        lines.append("| " + " | ".join(cell(value) for value in row) + " |")
    totals = [e for e in entries if e.get("lost") is not None]
    lines += [
        "",
        f"Totals over the rows with counts: {sum(e['sent'] or 0 for e in totals):,} notices sent,"
        f" {sum(e['duplicated'] or 0 for e in totals):,} delivered twice,"
        f" {sum(e['lost'] or 0 for e in totals):,} lost.",
    ]
    return "\n".join(lines)


def main(results: Path, document: Path) -> None:
    entries = [json.loads(line) for line in results.read_text("utf-8").splitlines() if line.strip()]
    text = document.read_text("utf-8")
    head, found, rest = text.partition(START)
    _, found_end, tail = rest.partition(END)
    if not (found and found_end):
        raise SystemExit(f"{document}: the {START} … {END} markers are missing")
    document.write_text(f"{head}{START}\n{render(entries)}\n{END}{tail}", "utf-8")
    print(f"{document}: {len(entries)} result row(s) written")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
