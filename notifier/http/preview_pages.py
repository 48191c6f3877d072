"""The preview page's HTML: page templates, link listing and security headers.

Kept apart from `preview_web` (routes and the token) so each stays one idea. The page
runs no script; everything dynamic is escaped by Jinja's autoescape.
"""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import jinja2
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

# The page shows customer data and runs no script of its own: lock it down. The email's
# own styles are inline, its images remote; the srcdoc iframe inherits this policy.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


SAFE_SCHEMES = ("https://", "http://", "mailto:")


class _LinkCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = (dict(attrs).get("href") or "").strip() if tag == "a" else ""
        # Listed as live links on our own page, so only schemes that cannot run anything.
        if href.lower().startswith(SAFE_SCHEMES) and href not in self.links:
            self.links.append(href)


def links(html: str) -> list[str]:
    """Every link in the email, so an operator can try each one."""
    collector = _LinkCollector()
    collector.feed(html)
    return collector.links


def secure(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


_env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)


def page(
    template: jinja2.Template,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> Response:
    context.setdefault("error", None)
    # The inner page is already escaped HTML: mark it so, or it is escaped twice.
    body = BASE.render(content=Markup(template.render(**context)), title=context.get("rule"))
    return secure(HTMLResponse(body, status_code=status_code, headers=headers))


BASE = _env.from_string(
    """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{% if title %}{{ title.name }} · {% endif %}notifier preview</title>
<style>
body { font: 15px/1.5 system-ui, sans-serif; margin: 0; color: #1f2933; background: #f4f5f7; }
header { background: #1f2933; color: #fff; padding: 12px 24px; }
header a { color: #fff; text-decoration: none; font-weight: bold; }
main { max-width: 1100px; margin: 0 auto; padding: 24px; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid #e4e7eb;
  vertical-align: top; }
pre { background: #fff; border: 1px solid #e4e7eb; padding: 12px; white-space: pre-wrap;
  word-break: break-word; }
textarea { width: 100%; font: 13px/1.4 ui-monospace, monospace; box-sizing: border-box; }
iframe { width: 100%; height: 720px; border: 1px solid #e4e7eb; background: #fff; }
.error { background: #fde8e8; border: 1px solid #f8b4b4; padding: 12px; white-space: pre-wrap; }
.note { background: #fef6e0; border: 1px solid #f6d589; padding: 8px 12px; margin: 4px 0; }
.muted { color: #7b8794; }
</style></head>
<body><header><a href="/preview">notifier · template preview</a></header>
<main>{{ content }}</main></body></html>
"""
)

LIST = _env.from_string(
    """{% if error %}<p class="error" id="error">{{ error }}</p>{% endif %}
<h1>Rules</h1>
<table id="rules"><thead><tr><th>rule</th><th>name</th><th>fires on</th><th>scope</th>
<th>template</th><th>campaigns</th><th>enabled</th></tr></thead><tbody>
{% for rule in rules %}<tr><td><a href="/preview/{{ rule.id }}">{{ rule.id }}</a></td>
<td>{{ rule.name }}</td><td>{{ rule.on.value }}</td><td>{{ rule.scope.value }}</td>
<td>{{ rule.template }}</td><td>{{ rule.campaigns | sort | join(", ") or "all" }}</td>
<td>{{ "yes" if rule.enabled else "no" }}</td></tr>
{% else %}<tr><td colspan="7" class="muted">No rules in the rules folder.</td></tr>{% endfor %}
</tbody></table>
"""
)

RULE = _env.from_string(
    """<h1>{{ rule.name }} <span class="muted">({{ rule.id }})</span></h1>
<p class="muted">Fires on {{ rule.on.value }} ({{ rule.scope.value }} scope), template
<code>{{ rule.template }}</code>. Rendered exactly as delivery would; nothing is sent or stored.</p>
{% if error %}<p class="error" id="error">{{ error }}</p>{% endif %}
{% if shown %}
<p class="muted" id="source">{{ "From the built-in sample order." if shown.from_sample
  else "From the pasted record(s)." }}</p>
{% for note in shown.notes %}<p class="note">{{ note }}</p>{% endfor %}
<h2>Headers</h2>
<table id="headers">{% for name, value in shown.headers %}
<tr><th>{{ name }}</th><td>{{ value }}</td></tr>{% endfor %}</table>
<h2>HTML</h2>
<iframe id="html-part" title="HTML part" sandbox="allow-popups allow-popups-to-escape-sandbox"
 srcdoc="{{ shown.html }}"></iframe>
{% if links %}<h3>Links in the email</h3><ul id="links">{% for link in links %}
<li><a href="{{ link }}" target="_blank" rel="noopener noreferrer">{{ link }}</a></li>
{% endfor %}</ul>{% endif %}
<h2>Text</h2>
<pre id="text-part">{{ shown.text }}</pre>
{% endif %}
<h2>Render from records</h2>
<form method="post" action="/preview/{{ rule.id }}" id="records-form">
<p>Paste one record, a list of records (an order's fulfillments), or {"records": [...]},
as JSON. Field names as in the records reference.</p>
<textarea name="records" rows="16" spellcheck="false">{{ records_text }}</textarea>
<p><label>Campaign <input name="campaign" value="{{ campaign }}"
 placeholder="as in the records"></label>
<button type="submit">Render</button></p>
</form>
"""
)

DENIED = _env.from_string(
    """<h1>{{ "Wrong token" if wrong else "Token required" }}</h1>
<p>The preview page needs <code>NOTIFIER_PREVIEW_TOKEN</code>: open
<code>/preview?token=…</code> once (a cookie keeps you in), or send it as
<code>Authorization: Bearer …</code>.</p>
"""
)
