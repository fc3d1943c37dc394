from __future__ import annotations

import html

from reprokit.redact import Redactor, redact_uri


def test_uri_credentials_are_hidden_everywhere() -> None:
    text = 'uri="mongodb://admin:s3cr%40t@db:27017/?replicaSet=rs" and mongodb+srv://u:p@x/y'
    out = redact_uri(text)
    assert "s3cr" not in out and "u:p" not in out
    assert "mongodb://***@db:27017" in out and "mongodb+srv://***@x/y" in out
    assert redact_uri("mongodb://127.0.0.1:1/") == "mongodb://127.0.0.1:1/"


def test_longest_prefix_wins_and_root_is_never_a_prefix() -> None:
    r = Redactor({"/p": "<project>", "/p/_build/envs/v": "<venv>", "/": "<root>"})
    assert r.text("/p/_build/envs/v/lib/x.py and /p/code/app.py") == (
        "<venv>/lib/x.py and <project>/code/app.py"
    )
    assert r.text("/usr/lib") == "/usr/lib"


def test_html_paths_are_matched_escaped_and_placeholders_are_escaped() -> None:
    r = Redactor({"/tmp/a&b": "<tmp>"})
    fragment = f'<span style="color:red">File "{html.escape("/tmp/a&b/x.py")}"</span>'
    out = r.html(fragment)
    assert out == '<span style="color:red">File "&lt;tmp&gt;/x.py"</span>'


def test_data_is_redacted_recursively() -> None:
    r = Redactor({"/srv/u": "<home>"})
    data = {"frames": [{"file": "/srv/u/x.py", "line": 3}], "uri": "mongodb://a:b@h/"}
    assert r.data(data) == {"frames": [{"file": "<home>/x.py", "line": 3}], "uri": "mongodb://***@h/"}
