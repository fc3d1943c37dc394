"""reprokit.sanitize: hostile markup never survives; Pygments output keeps its colours."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer, PythonTracebackLexer

from reprokit.sanitize import sanitize_trace_html

TRACEBACK = """\
Traceback (most recent call last):
  File "<venv>/lib/python2.7/site-packages/pymongo/mongo_replica_set_client.py", line 1087, in x
    self.__monitor_lock.acquire()
RuntimeError: <script>alert('from a source line')</script>
"""

# Every entry must lose all of FORBIDDEN below; `keep` is text that must survive.
HOSTILE = [
    ("<script>alert(1)</script>ok", "ok"),
    ("<SCRIPT SRC=//evil.example/x.js></SCRIPT>ok", "ok"),
    ('<div onload="alert(1)" onclick=alert(2)>ok</div>', "ok"),
    ('<body onload="alert(1)">ok</body>', "ok"),
    ('<a href="javascript:alert(1)">ok</a>', "ok"),
    ('<a href="JaVaScRiPt:alert(1)">ok</a>', "ok"),
    ('<a href="data:text/html;base64,PHNjcmlwdD4=">ok</a>', "ok"),
    ("<img src=x onerror=alert(1)>ok", "ok"),
    ('<iframe src="https://evil.example"></iframe>ok', "ok"),
    ('<object data="x.swf"></object><embed src="x.swf">ok', "ok"),
    ("<svg onload=alert(1)><script>alert(2)</script></svg>ok", "ok"),
    ('<svg><a xlink:href="javascript:alert(1)"><text>x</text></a></svg>ok', "ok"),
    ('<math><mtext><a href="javascript:alert(1)">x</a></mtext></math>ok', "ok"),
    ('<span style="color: expression(alert(1))">ok</span>', "ok"),
    ('<span style="background: url(javascript:alert(1))">ok</span>', "ok"),
    ('<span style="background-image: url(&quot;javascript:alert(1)&quot;)">ok</span>', "ok"),
    ('<span style="color:red;background:url(https://evil.example/track.png)">ok</span>', "ok"),
    ('<span style="color: \\65 xpression(alert(1))">ok</span>', "ok"),
    ('<span style="behavior: url(x.htc); -moz-binding: url(x.xml#x)">ok</span>', "ok"),
    ('<div style="position:fixed;top:0;left:0;width:100%;height:100%">ok</div>', "ok"),
    ("<style>body { background: url(javascript:alert(1)) }</style>ok", "ok"),
    ('<link rel="stylesheet" href="https://evil.example/x.css">ok', "ok"),
    ('<meta http-equiv="refresh" content="0;url=javascript:alert(1)">ok', "ok"),
    ('<form action="javascript:alert(1)"><input type=submit value=go></form>ok', "ok"),
    ('<base href="javascript:alert(1)//">ok', "ok"),
    ('<noscript><p title="</noscript><img src=x onerror=alert(1)>">ok', ""),
    ("<template><script>alert(1)</script></template>ok", "ok"),
    ('<pre id="__proto__" name="x">ok</pre>', "ok"),
    ("<!--<script>alert(1)</script>-->ok", "ok"),
    ("<scr<script>ipt>alert(1)</scr</script>ipt>ok", "ok"),
    ('<span class="x" data-x="1" srcset="x">ok</span>', "ok"),
]

FORBIDDEN = re.compile(
    r"<script|<iframe|<object|<embed|<svg|<math|<img|<a\b|<style|<link|<meta|<form|<base"
    r"|<template|<noscript|\son\w+\s*=|javascript:|expression\(|url\(|href=|src=|srcset="
    r"|position:|behavior|binding|<!--|\sid=|\sname=|data-",
    re.IGNORECASE,
)


@pytest.mark.parametrize(("hostile", "keep"), HOSTILE)
def test_hostile_markup_is_removed(hostile: str, keep: str) -> None:
    cleaned = sanitize_trace_html(hostile)
    assert not FORBIDDEN.search(cleaned), cleaned
    assert keep in cleaned
    assert sanitize_trace_html(cleaned) == cleaned


def test_hostile_text_inside_a_trace_stays_text() -> None:
    html = highlight(TRACEBACK, PythonTracebackLexer(), HtmlFormatter(noclasses=True))
    cleaned = sanitize_trace_html(html)
    assert "<script" not in cleaned
    assert "&lt;script&gt;alert(" in cleaned


def test_pygments_inline_styles_survive_with_colours() -> None:
    source = "def f(x):\n    return x + 1  # comment\n"
    html = highlight(source, PythonLexer(), HtmlFormatter(noclasses=True))
    cleaned = sanitize_trace_html(html)
    # The keyword, the function name and the comment keep their colours and weights.
    assert '<span style="color:#008000;font-weight:bold">def</span>' in cleaned
    assert '<span style="color:#00F">f</span>' in cleaned
    assert '<span style="color:#3D7B7B;font-style:italic"># comment</span>' in cleaned
    assert '<div class="highlight" style="background:#f8f8f8">' in cleaned
    assert '<pre style="line-height:125%">' in cleaned
    # Nothing but the markup was touched: the text is the same.
    strip = re.compile(r"<[^>]+>")
    assert strip.sub("", cleaned) == strip.sub("", html)


def test_pygments_line_number_table_survives() -> None:
    html = highlight(
        "a = 1\nb = 2\n", PythonLexer(), HtmlFormatter(noclasses=True, linenos="table")
    )
    cleaned = sanitize_trace_html(html)
    assert '<table class="highlighttable">' in cleaned
    assert '<td class="linenos">' in cleaned
    assert "padding-left:5px" in cleaned
    assert "background-color:transparent" in cleaned


def test_tracer_section_markup_survives() -> None:
    html = (
        '<section class="stacktracer-thread"><h4>Thread <em>MainThread</em> (main)</h4>'
        "<p><strong>3</strong> frames<br>innermost last</p></section>"
    )
    assert sanitize_trace_html(html) == html


def test_style_keeps_only_allowed_properties_with_plain_values() -> None:
    html = (
        '<span style="COLOR: #abc; position: absolute; border: 1px solid #f00; '
        'font-size: 99px; white-space: pre; margin: 0 -9999px; padding: 0 4px">x</span>'
    )
    assert sanitize_trace_html(html) == (
        '<span style="color:#abc;border:1px solid #f00;white-space:pre;padding:0 4px">x</span>'
    )


def test_style_with_nothing_allowed_disappears() -> None:
    assert sanitize_trace_html('<span style="position:fixed">x</span>') == "<span>x</span>"


html_fragments = st.lists(
    st.sampled_from(
        [
            "<span>",
            "</span>",
            "<div style='color:red'>",
            "</div>",
            "<pre>",
            "<script>",
            "</script>",
            "<svg>",
            "<a href='javascript:x'>",
            "<img src=x onerror=y>",
            "<!--",
            "-->",
            "&lt;",
            "&amp;",
            "<",
            ">",
            "'",
            '"',
            "text",
            " ",
            "\n",
            "<span style='background:url(x)'>",
            "<h4>",
            "<section class='a b'>",
            "<table><tr><td>",
        ]
    )
    | st.text(max_size=8),
    max_size=25,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(html_fragments)
def test_sanitize_is_idempotent_and_safe(html: str) -> None:
    once = sanitize_trace_html(html)
    assert sanitize_trace_html(once) == once
    assert not re.search(r"<script|<svg|<img|<a\b|javascript:|url\(|\son\w+=", once, re.IGNORECASE)


def test_invalid_nesting_found_by_hypothesis_is_stable() -> None:
    # Regression: html5 restructures <h4> inside <h4> differently on each pass.
    once = sanitize_trace_html("<h4><a href='javascript:x'><h4>")
    assert once == sanitize_trace_html(once) == "<h4></h4><h4></h4>"
