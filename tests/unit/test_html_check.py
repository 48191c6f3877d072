"""The standalone-document check `notifier check` runs on every HTML part."""

from __future__ import annotations

import pytest

from notifier.authoring.html_check import email_html_problems, standalone_problems

GOOD = (
    '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Shipped</title>'
    '</head><body><div><p>Hi<br>there</p><img src="https://cdn.example/x.png" alt=""/></div>'
    "</body></html>"
)


def test_a_complete_document_has_no_problems() -> None:
    """Doctype, html/head/body, charset, title and balanced tags: nothing to report."""
    assert standalone_problems(GOOD) == []


@pytest.mark.parametrize(
    ("html", "problem"),
    [
        (GOOD.replace("<!DOCTYPE html>\n", ""), "no <!DOCTYPE html> declaration"),
        (GOOD.replace('<meta charset="utf-8">', ""), 'no <meta charset="utf-8"> in <head>'),
        (GOOD.replace("<title>Shipped</title>", ""), "<title> appears 0 times"),
        (GOOD.replace("Shipped", " "), "<title> is empty"),
        (GOOD.replace("<head>", "").replace("</head>", ""), "<head> appears 0 times"),
        (GOOD.replace("</div>", ""), "line 2: <div> is not closed before </body>"),
        (GOOD.replace("</html>", "</html></td>"), "</td> closes nothing"),
        (GOOD.replace("</body></html>", ""), "<body> is never closed"),
        (GOOD.replace("<!DOCTYPE html>", "<p></p><!DOCTYPE html>"), "is not the first thing"),
    ],
)
def test_each_defect_is_named(html: str, problem: str) -> None:
    """Each way a part falls short of a standalone document is reported in words."""
    assert any(problem in found for found in standalone_problems(html)), standalone_problems(html)


def test_http_equiv_charset_counts() -> None:
    """The older http-equiv Content-Type declaration of the charset is accepted too."""
    legacy = GOOD.replace(
        '<meta charset="utf-8">',
        '<meta http-equiv="Content-Type" content="text/html; charset=utf-8">',
    )
    assert standalone_problems(legacy) == []


def test_relative_links_and_images_are_named() -> None:
    """Relative hrefs and srcs break in mail clients; absolute, mailto and cid ones do not."""
    html = GOOD.replace(
        "<p>Hi",
        '<a href="/orders/1">o</a><a href="mailto:a@b.c">m</a><img src="logo.png" alt="">'
        '<img src="cid:logo" alt=""><a href="https://x.example/t?n=1">t</a><p>Hi',
    )
    assert email_html_problems(html) == [
        "line 2: <a href='/orders/1'> is not absolute",
        "line 2: <img src='logo.png'> is not absolute",
    ]
    assert standalone_problems(html) == []  # a document may link relatively; an email may not


def test_gmail_clipping_size_is_named() -> None:
    """An HTML part past 102 KB is reported: Gmail would hide the rest behind a link."""
    big = GOOD.replace("<p>Hi", "<p>" + "x" * (103 * 1024) + "</p><p>Hi")
    assert email_html_problems(big) == ["103 KB of HTML: Gmail clips messages past 102 KB"]
