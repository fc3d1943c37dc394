"""The old post header: table tests for the pure parser and its rewrite."""

from __future__ import annotations

import pytest

from reprokit.blogheader import HeaderError, parse_header, post_directive, rewrite_source

TITLE = "Title\n=====\n\nBody.\n"

# (name, text, expected meta, expected offset)
GOOD = [
    (
        "full header",
        "public: yes\ntags: [mongodb, motor, tornado]\nsummary: It hangs.\n"
        "date: 2015-05-20\nauthor: A. Writer\n\n" + TITLE,
        {
            "public": True,
            "tags": ["mongodb", "motor", "tornado"],
            "summary": "It hangs.",
            "date": "2015-05-20",
            "author": "A. Writer",
        },
        6,
    ),
    ("no header", TITLE, {}, 0),
    ("leading blank line is not a header", "\npublic: yes\n\n" + TITLE, {}, 0),
    ("title that looks like a key", "Update: a title\n===============\n\nBody.\n", {}, 0),
    ("field list is not a header", ":orphan:\n\n" + TITLE, {}, 0),
    (
        "draft without date",
        "public: no\ntags: []\n\n" + TITLE,
        {"public": False, "tags": []},
        3,
    ),
    (
        "empty summary, bare tag list, quoted items",
        "public: true\ntags: 'a b', \"c\"\nsummary:\ndate: 2015-05-20 10:30\n\n" + TITLE,
        {"public": True, "tags": ["a b", "c"], "summary": "", "date": "2015-05-20 10:30:00"},
        5,
    ),
    (
        "continued summary, CRLF, upper-case key and value",
        "Public: YES\r\nsummary: first part\r\n  second part\r\ndate: 2015-05-20\r\n\r\n" + TITLE,
        {"public": True, "summary": "first part second part", "date": "2015-05-20"},
        5,
    ),
    ("public defaults to yes", "date: 2015-05-20\n\n" + TITLE, {"date": "2015-05-20"}, 2),
]

# (name, text, line, words in the message)
BAD = [
    ("unknown key", "public: yes\npublc: no\n\n" + TITLE, 2, "unknown header key 'publc'"),
    ("public maybe", "public: maybe\ndate: 2015-05-20\n\n" + TITLE, 1, "yes or no"),
    ("unclosed list", "date: 2015-05-20\ntags: [a, b\n\n" + TITLE, 2, "not closed"),
    ("nested list", "date: 2015-05-20\ntags: [a, [b]]\n\n" + TITLE, 2, "bad tags list"),
    ("empty item", "date: 2015-05-20\ntags: [a, , b]\n\n" + TITLE, 2, "empty item"),
    ("stray bracket", "date: 2015-05-20\ntags: a, b]\n\n" + TITLE, 2, "no '['"),
    ("bad date", "public: yes\ndate: 20/05/2015\n\n" + TITLE, 2, "date must look like"),
    ("twice", "date: 2015-05-20\ndate: 2015-05-21\n\n" + TITLE, 2, "given twice"),
    ("no blank line", "public: no\nTitle\n=====\n", 2, "expected 'key: value'"),
    ("header only", "public: no\ntags: [a]\n", 2, "not followed by a blank line"),
    ("public without date", "tags: [a]\npublic: yes\n\n" + TITLE, 2, "needs a date"),
    ("no public, no date", "tags: [a]\n\n" + TITLE, 1, "needs a date"),
]


@pytest.mark.parametrize(("name", "text", "meta", "offset"), GOOD, ids=[g[0] for g in GOOD])
def test_parse_good(name: str, text: str, meta: dict[str, object], offset: int) -> None:
    parsed = parse_header(text)
    assert parsed.meta == meta
    assert parsed.offset == offset
    # The body is the original text from line offset + 1 on.
    assert parsed.body == "".join(text.splitlines(keepends=True)[offset:])


@pytest.mark.parametrize(("name", "text", "line", "words"), BAD, ids=[b[0] for b in BAD])
def test_parse_bad(name: str, text: str, line: int, words: str) -> None:
    with pytest.raises(HeaderError) as info:
        parse_header(text)
    assert info.value.line == line
    assert words in info.value.message
    assert str(info.value).startswith(f"line {line}: ")


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        (
            {"public": True, "date": "2015-05-20", "tags": ["a", "b"], "summary": "Short."},
            ".. post:: 2015-05-20\n   :tags: a, b\n   :exclude:\n\n   Short.\n",
        ),
        ({"public": False, "date": "2015-05-20", "tags": ["a"]}, ".. post::\n   :tags: a\n"),
        (
            {"date": "2015-05-20", "summary": "", "author": "Me"},
            ".. post:: 2015-05-20\n   :author: Me\n",
        ),
    ],
)
def test_post_directive(meta: dict[str, object], expected: str) -> None:
    assert post_directive(meta) == expected


def test_rewrite_keeps_line_numbers() -> None:
    text = "public: yes\ntags: [x]\ndate: 2015-05-20\n\nTitle\n=====\n\nline 7\n"
    rewritten, meta = rewrite_source(text)
    assert meta["tags"] == ["x"]
    lines = rewritten.splitlines()
    assert lines[:4] == ["", "", "", ""]
    assert lines[4] == "Title" and lines[7] == "line 7"  # same 0-based index as the original
    assert rewritten.rstrip().endswith(".. post:: 2015-05-20\n   :tags: x")


def test_rewrite_without_header_is_identity() -> None:
    assert rewrite_source(TITLE) == (TITLE, {})
