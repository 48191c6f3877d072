"""The console's HTML: one Jinja environment (autoescape on, strict undefined), its
filters, and the security headers every console response carries.

The pages run no script of their own and load nothing from elsewhere: the policy below
allows only this server's stylesheet and frames, no inline script or style (so a value
that slipped past escaping still could not run), and no framing of the console itself.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from fastapi.responses import HTMLResponse, Response

__all__ = ["EMAIL_HEADERS", "SECURITY_HEADERS", "html_page", "notice_path", "secure"]

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'none'; style-src 'self'; img-src 'self' data:; "
        "frame-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
        "object-src 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}

# The email's own HTML, framed by the notice page: a sandbox (no script, no same-origin
# access to the console), framable only by the console, with the inline styles the CSS
# inliner wrote; remote images stay unloaded (no request leaves the operator's browser).
EMAIL_HEADERS = {
    "Content-Security-Policy": (
        "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        "frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


def notice_path(key: str) -> str:
    """The notice page's path; keys hold ':', '#', '/' and more, so every byte is quoted."""
    return "/console/notices/" + quote(key, safe="")


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _query(params: dict[str, Any], **changes: Any) -> str:
    """A query string of `params` with `changes`, empty values left out."""
    merged = {**params, **changes}
    return urlencode({k: v for k, v in merged.items() if v not in (None, "")})


_env = jinja2.Environment(
    loader=jinja2.PackageLoader("notifier.http.console", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["when"] = _when
_env.filters["notice_path"] = notice_path
_env.filters["quote"] = lambda value: quote(str(value), safe="")
_env.globals["query"] = _query


def secure(response: Response, headers: dict[str, str] = SECURITY_HEADERS) -> Response:
    response.headers.update(headers)
    return response


def html_page(
    template: str,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> Response:
    """A console page: the template rendered into the layout, with the security headers."""
    context.setdefault("operator", None)
    context.setdefault("flash", None)
    context.setdefault("section", "")
    body = _env.get_template(template).render(**context)
    return secure(HTMLResponse(body, status_code=status_code, headers=headers))
