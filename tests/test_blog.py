"""Real Sphinx builds of a small blog (tests/roots/test-blog): ABlog features,
the old post header, drafts, Chinese search, page metadata and the sitemap.

Each build runs `python -m sphinx` in a child process: ABlog keeps its state in
a class attribute, so two builds in one process would share posts.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOTS = Path(__file__).parent / "roots"
BASE = "https://tests.example.net/blog/"


def sphinx_build(src: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-q", *extra, str(src), str(out)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("blog") / "html"
    proc = sphinx_build(ROOTS / "test-blog", out)
    assert proc.returncode == 0, proc.stderr
    return out, proc.stderr


def read(site: tuple[Path, str], rel: str) -> str:
    return (site[0] / rel).read_text(encoding="utf-8")


def search_index(out: Path) -> dict[str, object]:
    text = (out / "searchindex.js").read_text(encoding="utf-8")
    return json.loads(text[text.index("(") + 1 : text.rindex(")")])


def test_warnings_keep_the_authors_line_numbers(site: tuple[Path, str]) -> None:
    # posts/public.rst has a 5-line header; the bad reference is on line 12 of the file.
    assert re.search(r"posts/public\.rst:12: WARNING: unknown document: 'nosuchdoc'", site[1])
    assert "ERROR" not in site[1]


def test_index_lists_public_posts_with_date_tags_and_summary(site: tuple[Path, str]) -> None:
    index = read(site, "index.html")
    assert "公开的文章" in index and "没有摘要的文章" in index and "普通的 ABlog 文章" in index
    assert "草稿文章" not in index
    assert "这是摘要，连接数忽高忽低。" in index  # the header's summary
    assert "第一段会成为摘要" in index  # empty summary: first paragraph
    assert "第二段不会" not in index
    posts = read(site, "blog.html")
    assert "2015-05-20" in posts and "mongodb" in posts and "草稿文章" not in posts


def test_summary_is_not_repeated_in_the_post(site: tuple[Path, str]) -> None:
    page = read(site, "posts/public.html")
    body = page[page.index('<div class="body"') :]
    assert "这是摘要" not in body.split("</h1>", 1)[1].split('class="sphinxsidebar"')[0]


def test_tag_pages_archives_and_drafts(site: tuple[Path, str]) -> None:
    out = site[0]
    mongodb = read(site, "blog/tag/mongodb.html")
    assert "公开的文章" in mongodb and "草稿文章" not in mongodb
    assert "标签：" in mongodb  # ABlog's page title, translated
    motor = read(site, "blog/tag/motor.html")
    assert "公开的文章" in motor and "草稿文章" not in motor
    assert not (out / "blog/tag/secretdraft.html").exists()  # a draft-only tag has no page
    assert "公开的文章" in read(site, "blog/2015.html")
    assert "普通的 ABlog 文章" in read(site, "blog/2014.html")
    assert "草稿文章" not in read(site, "blog/archive.html")
    draft = read(site, "posts/draft.html")  # built, for the author to read locally
    assert "隐藏草稿词" in draft
    assert '<meta name="robots" content="noindex" />' in draft


def test_atom_feed_has_full_content_and_no_drafts(site: tuple[Path, str]) -> None:
    feed = ET.parse(site[0] / "blog/atom.xml").getroot()
    ns = {"a": "http://www.w3.org/2005/Atom"}
    titles = [e.findtext("a:title", namespaces=ns) for e in feed.findall("a:entry", ns)]
    assert sorted(titles) == sorted(["公开的文章", "没有摘要的文章", "普通的 ABlog 文章"])
    public = next(
        e
        for e in feed.findall("a:entry", ns)
        if e.findtext("a:title", namespaces=ns) == "公开的文章"
    )
    content = public.findtext("a:content", namespaces=ns) or ""
    assert "两个操作同时出发" in content  # the full text, not only the excerpt
    assert public.findtext("a:summary", namespaces=ns) == "这是摘要，连接数忽高忽低。"
    terms = {c.get("term") for c in public.findall("a:category", ns)}
    assert terms == {"mongodb", "motor"}
    link = public.find("a:link", ns)
    assert link is not None and link.get("href") == BASE + "posts/public.html"


def test_chinese_search_index(site: tuple[Path, str]) -> None:
    terms = search_index(site[0])["terms"]
    assert isinstance(terms, dict)
    # jieba segments the sentences into words; a character-level index would not have these.
    for word in ("死锁", "进程", "启动", "greenlet", "线程"):
        assert word in terms, word
    assert "隐藏" not in terms and "草稿" not in terms  # the draft is not searchable


def test_wrapped_chinese_lines_are_joined(site: tuple[Path, str]) -> None:
    page = read(site, "posts/public.html")
    assert "的时候，两个操作同时出发" in page


def test_description_open_graph_and_canonical(site: tuple[Path, str]) -> None:
    page = read(site, "posts/public.html")
    url = BASE + "posts/public.html"
    assert f'<link rel="canonical" href="{url}" />' in page
    assert '<meta name="description" content="这是摘要，连接数忽高忽低。" />' in page
    assert '<meta property="og:title" content="公开的文章" />' in page
    assert '<meta property="og:description" content="这是摘要，连接数忽高忽低。" />' in page
    assert f'<meta property="og:url" content="{url}" />' in page
    assert '<meta property="og:type" content="article" />' in page
    assert '<meta property="article:tag" content="mongodb" />' in page
    nosummary = read(site, "posts/nosummary.html")
    assert 'og:description" content="第一段会成为摘要：greenlet 在同一个线程里切换。"' in nosummary
    index = read(site, "index.html")
    assert '<meta property="og:type" content="website" />' in index
    assert '<meta name="description" content="站点的默认描述" />' in index
    assert f'<meta property="og:url" content="{BASE}index.html" />' in index


def test_sitemap_lists_every_public_page(site: tuple[Path, str]) -> None:
    root = ET.parse(site[0] / "sitemap.xml").getroot()
    ns = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}
    locs = {e.findtext("s:loc", namespaces=ns) for e in root.findall("s:url", ns)}
    expected = {
        "index.html",
        "posts/public.html",
        "posts/nosummary.html",
        "posts/plain.html",
        "blog.html",
        "blog/tag.html",
        "blog/tag/mongodb.html",
        "blog/2015.html",
        "blog/archive.html",
    }
    assert {BASE + rel for rel in expected} <= locs
    for hidden in ("posts/draft.html", "blog/drafts.html", "search.html", "genindex.html"):
        assert BASE + hidden not in locs
    for loc in locs:  # every listed page exists
        assert (site[0] / loc.removeprefix(BASE)).is_file(), loc


def test_malformed_header_fails_the_build_naming_file_and_line(tmp_path: Path) -> None:
    out = tmp_path / "html"
    for _ in range(2):  # an unchanged bad header fails the incremental build as well
        proc = sphinx_build(ROOTS / "test-blog-bad", out)
        assert proc.returncode != 0
        assert re.search(
            r"posts/bad\.rst:3: ERROR: post header: tags list is not closed with '\]'",
            proc.stderr,
        ), proc.stderr
