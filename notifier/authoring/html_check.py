"""Is an email's HTML part a complete document on its own? (stdlib only; used by `check`)

Mail clients differ wildly; the ones that render a part as a standalone page (Apple Mail,
webmail "view original", a browser opening a saved .eml) need a doctype, a charset and a
balanced tree, or they guess — and a guessed charset turns "Müller" into "MÃ¼ller".
"""

from __future__ import annotations

from html.parser import HTMLParser

# Elements with no end tag (HTML Living Standard, "void elements").
VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input"}
    | {"link", "meta", "source", "track", "wbr"}
)


# Gmail clips an HTML body past about 102 KB behind a "View entire message" link.
GMAIL_CLIP_BYTES = 102 * 1024
# A mail client has no page to resolve a relative link against: only these work.
_ABSOLUTE = ("https://", "http://", "mailto:", "tel:", "cid:", "data:", "#")


class _Structure(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.doctype: str | None = None
        self.seen_before_doctype = False
        self.counts: dict[str, int] = {}
        self.charset = False
        self.title = ""
        self.in_title = False
        self.open: list[tuple[str, int]] = []
        self.problems: list[str] = []
        self.relative: list[str] = []

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.doctype is None:
            self.seen_before_doctype = True
        self.counts[tag] = self.counts.get(tag, 0) + 1
        if tag == "meta":
            values = {name: (value or "") for name, value in attrs}
            if "charset" in values or "charset=" in values.get("content", "").lower():
                self.charset = True
        if tag == "title":
            self.in_title = True
        for name, value in attrs:
            link = (value or "").strip().lower()
            if name in ("href", "src") and link and not link.startswith(_ABSOLUTE):
                line = self.getpos()[0]
                self.relative.append(f"line {line}: <{tag} {name}={value!r}> is not absolute")
        if tag not in VOID:
            self.open.append((tag, self.getpos()[0]))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <br/> style: counts as opened and closed at once.
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.open.pop()

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        if tag in VOID:
            return
        if not any(name == tag for name, _ in self.open):
            self.problems.append(f"line {self.getpos()[0]}: </{tag}> closes nothing")
            return
        while self.open:
            name, line = self.open.pop()
            if name == tag:
                break
            self.problems.append(f"line {line}: <{name}> is not closed before </{tag}>")

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title += data


def standalone_problems(html: str) -> list[str]:
    """What keeps `html` from being a complete standalone HTML document (empty: none)."""
    parser = _Structure()
    parser.feed(html)
    parser.close()
    problems = list(parser.problems)
    if parser.doctype is None or parser.doctype.strip().lower() != "doctype html":
        problems.insert(0, "no <!DOCTYPE html> declaration")
    elif parser.seen_before_doctype:
        problems.insert(0, "<!DOCTYPE html> is not the first thing in the document")
    for tag in ("html", "head", "body", "title"):
        count = parser.counts.get(tag, 0)
        if count != 1:
            problems.append(f"<{tag}> appears {count} times (must be exactly once)")
    if not parser.charset:
        problems.append('no <meta charset="utf-8"> in <head>')
    if parser.counts.get("title") == 1 and not parser.title.strip():
        problems.append("<title> is empty")
    problems += [f"line {line}: <{name}> is never closed" for name, line in parser.open]
    return problems


def email_html_problems(html: str) -> list[str]:
    """Standalone-document problems, plus what breaks in mail clients: relative links and
    images (there is no page to resolve them against) and a body Gmail would clip."""
    parser = _Structure()
    parser.feed(html)
    parser.close()
    problems = standalone_problems(html) + parser.relative
    size = len(html.encode("utf-8"))
    if size > GMAIL_CLIP_BYTES:
        problems.append(
            f"{size / 1024:.0f} KB of HTML: Gmail clips messages past {GMAIL_CLIP_BYTES // 1024} KB"
        )
    return problems
