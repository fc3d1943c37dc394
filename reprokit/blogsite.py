# The blog site's Sphinx glue beyond ABlog itself: description and Open Graph
# tags on every page, `noindex` on drafts, a sitemap.xml of every public page,
# Chinese text that may be wrapped in the source, and ABlog's own Chinese
# labels (its wheel ships the zh_CN .po but no compiled .mo).
#
# Strategy: everything derives from one base URL (`html_baseurl`, which conf.py
# takes from SITE_URL) and from what ABlog already knows about each post (its
# excerpt is the header's summary, or the first paragraph when the summary is
# empty). The string builders below are pure; the Sphinx hooks only gather
# inputs. The sitemap lists the source documents (even those an incremental
# build did not rewrite) plus the pages generated in this build, minus drafts
# and the search/index pages, sorted so the file is stable between builds.
# Line joining is a read-time transform, so the page, the search index, the
# excerpts and the feed all see the joined text; literal text is never touched.
from __future__ import annotations

import html
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape as xml_escape

from docutils import nodes
from sphinx.transforms import SphinxTransform

DESCRIPTION_LIMIT = 160
NOT_IN_SITEMAP = frozenset({"search", "genindex", "py-modindex", "404"})

# CJK ideographs, kana, hangul and full-width punctuation: no space between them.
_CJK = (
    "\u2e80-\u2fff\u3000-\u303f\u3040-\u30ff\u3100-\u31ff\u3400-\u4dbf"
    "\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef"
)
_CJK_CHAR = re.compile(f"[{_CJK}]")
_CJK_BREAK = re.compile(f"(?<=[{_CJK}])[ \t]*\n[ \t]*(?=[{_CJK}])")
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


def plain_text(markup: str) -> str:
    """Text of an HTML snippet (Sphinx titles may carry markup), whitespace collapsed."""
    return _SPACE.sub(" ", html.unescape(_TAG.sub("", markup))).strip()


def join_cjk_lines(text: str) -> str:
    """Drop the line breaks a wrapped source leaves between two CJK characters.

    A browser shows such a break as a space, which Chinese text must not have.
    """
    return _CJK_BREAK.sub("", text)


def is_cjk(char: str) -> bool:
    return bool(char) and _CJK_CHAR.match(char) is not None


def shorten(text: str, limit: int = DESCRIPTION_LIMIT) -> str:
    """`text` cut to at most `limit` characters, ending with an ellipsis when cut."""
    text = _SPACE.sub(" ", text).strip()
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + "…"


def meta_tags(
    *,
    title: str,
    description: str,
    url: str | None,
    kind: str,
    site_name: str,
    locale: str,
    published: str | None = None,
    tags: Iterable[str] = (),
    noindex: bool = False,
) -> str:
    """The `<meta>` elements for one page, attribute values escaped."""

    def prop(name: str, value: str) -> str:
        return f'<meta property="{name}" content="{html.escape(value, quote=True)}" />'

    out = [f'<meta name="description" content="{html.escape(description, quote=True)}" />']
    if noindex:
        out.append('<meta name="robots" content="noindex" />')
    out += [
        prop("og:title", title),
        prop("og:description", description),
        prop("og:type", kind),
        prop("og:site_name", site_name),
        prop("og:locale", locale),
    ]
    if url:
        out.append(prop("og:url", url))
    if published:
        out.append(prop("article:published_time", published))
    out += [prop("article:tag", tag) for tag in tags]
    return "\n".join(out) + "\n"


def sitemap_xml(urls: Mapping[str, str | None]) -> str:
    """A sitemap for `urls` (absolute URL -> lastmod date or None), sorted by URL."""
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">',
    ]
    for url in sorted(urls):
        lines.append(f"  <url><loc>{xml_escape(url)}</loc>")
        if urls[url]:
            lines.append(f"    <lastmod>{urls[url]}</lastmod>")
        lines.append("  </url>")
    lines.append("</urlset>")
    return "\n".join(lines) + "\n"


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


# --- Sphinx glue ---------------------------------------------------------------------------


class JoinCJKLines(SphinxTransform):
    """Join wrapped lines of CJK text, across inline markup too."""

    default_priority = 100  # before ABlog copies excerpts (doctree-read)

    def apply(self, **kwargs: Any) -> None:
        for block in self.document.findall(nodes.TextElement):
            if isinstance(block, nodes.FixedTextElement) or isinstance(
                block.parent, nodes.TextElement
            ):
                continue  # literal blocks keep their lines; nested elements are walked below
            texts = [
                node
                for node in block.findall(nodes.Text)
                if not isinstance(node.parent, (nodes.literal, nodes.FixedTextElement, nodes.raw))
            ]
            for index, node in enumerate(texts):
                text = join_cjk_lines(str(node))
                before = str(texts[index - 1])[-1:] if index else ""
                after = str(texts[index + 1])[:1] if index + 1 < len(texts) else ""
                if text.startswith("\n") and is_cjk(before) and is_cjk(text.lstrip()[:1]):
                    text = text.lstrip()
                if text.endswith("\n") and is_cjk(text.rstrip()[-1:]) and is_cjk(after):
                    text = text.rstrip()
                if text != str(node):
                    node.parent.replace(node, nodes.Text(text))
                    texts[index] = nodes.Text(text)  # neighbours read the joined text


# ABlog 0.11.13's zh_CN catalog leaves these page titles untranslated.
ABLOG_ZH_EXTRA = {
    "Posts by": "作者：",
    "Posts from": "地点：",
    "Posts in": "分类：",
    "All posts": "全部文章",
    "Posted in": "发表于",
    "Posts tagged": "标签：",
    "All Posts": "全部文章",
    "All": "全部",
    "Drafts": "草稿",
}


def _ablog_catalog(app: Any) -> None:
    """Compile ABlog's .po for the site language and register it (ABlog ships no .mo)."""
    language = app.config.language
    if not language:
        return
    import ablog
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    po = Path(ablog.__file__).parent / "locales" / language / "LC_MESSAGES" / "sphinx.po"
    if not po.is_file():
        return
    target_dir = Path(app.doctreedir) / "ablog-locale"
    mo = target_dir / language / "LC_MESSAGES" / "sphinx.mo"
    if not mo.is_file() or mo.stat().st_mtime < max(
        po.stat().st_mtime, Path(__file__).stat().st_mtime
    ):
        mo.parent.mkdir(parents=True, exist_ok=True)
        with po.open("rb") as handle:
            catalog = read_po(handle, locale=language)
        if language.startswith("zh"):
            for message in catalog:
                if message.id in ABLOG_ZH_EXTRA and not message.string:
                    message.string = ABLOG_ZH_EXTRA[message.id]
        fd, tmp = tempfile.mkstemp(dir=mo.parent, prefix=".sphinx.mo.")
        with os.fdopen(fd, "wb") as out:
            write_mo(out, catalog)
        os.replace(tmp, mo)
    app.add_message_catalog("sphinx", str(target_dir))


def _is_html(app: Any) -> bool:
    builder = app.builder
    return builder.format == "html" and builder.name in ("html", "dirhtml")


def _blog(app: Any) -> Any:
    from ablog.blog import Blog

    return Blog(app)


def _draft_pages(blog: Any) -> set[str]:
    return {post.docname for post in blog.drafts} | {blog.drafts.docname}


def _page_context(
    app: Any, pagename: str, templatename: str, context: dict[str, Any], doctree: Any
) -> None:
    if not _is_html(app):
        return
    app.__dict__.setdefault("reprokit_pages", set()).add(pagename)
    blog = _blog(app)
    post = blog[pagename] if pagename in blog else None  # noqa: SIM401 (Blog has no .get)
    description = app.config.blogsite_description or ""
    published = None
    tags: list[str] = []
    if post is not None:
        excerpt = " ".join(node.astext() for node in post.excerpt or [])
        description = shorten(excerpt) or description
        if post.published and post.date:
            published = post.date.date().isoformat()
        tags = [str(tag) for tag in post.tags or []]
    existing = context.get("metatags", "")
    if 'name="description"' in existing:  # the page set its own with `.. meta::`
        found = re.search(r'name="description" content="([^"]*)"', existing)
        description = html.unescape(found.group(1)) if found else description
    title = plain_text(context.get("title", "")) or app.config.project
    tags_html = meta_tags(
        title=title,
        description=description,
        url=context.get("pageurl"),
        kind="article" if post is not None else "website",
        site_name=app.config.html_title or app.config.project,
        locale=app.config.language or "en",
        published=published,
        tags=tags,
        noindex=pagename in _draft_pages(blog),
    )
    if 'name="description"' in existing:
        tags_html = tags_html.split("\n", 1)[1]
    context["metatags"] = existing + tags_html


def _build_finished(app: Any, exception: BaseException | None) -> None:
    if exception is not None or not _is_html(app):
        return
    base = app.config.html_baseurl
    if not base:
        return
    blog = _blog(app)
    hidden = _draft_pages(blog) | {post.docname for post in blog.posts if post.external_link}
    redirects = {redirect for post in blog.posts for redirect in post.redirect or []}
    pages = set(app.env.found_docs) | app.__dict__.get("reprokit_pages", set())
    urls: dict[str, str | None] = {}
    for page in pages:
        if page in NOT_IN_SITEMAP or page in hidden or page in redirects:
            continue
        target = app.builder.get_target_uri(page)
        if not (Path(app.outdir) / target).exists() and not target.endswith("/"):
            continue
        lastmod = None
        if page in blog.posts:
            post = blog[page]
            lastmod = (post.update or post.date).date().isoformat()
        urls[base.rstrip("/") + "/" + target] = lastmod
    _write_atomic(Path(app.outdir) / "sitemap.xml", sitemap_xml(urls))


def setup(app: Any) -> dict[str, Any]:
    app.setup_extension("ablog")
    app.add_config_value("blogsite_description", "", "html", types=frozenset({str}))
    app.add_transform(JoinCJKLines)
    _ablog_catalog(app)
    app.connect("html-page-context", _page_context)
    app.connect("build-finished", _build_finished)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
