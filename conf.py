# Sphinx configuration of the blog. The source directory is the project root:
# pages are index.rst, about.rst and posts/*.rst; everything else is excluded.
# Posts are ABlog posts, either with a `.. post::` directive or with the
# author's old header (`public:`, `tags:`, `summary:`, `date:` lines before
# the title, see reprokit/blogheader.py). SITE_URL sets the one base URL that
# canonical links, Open Graph tags, the Atom feed and the sitemap are built from.
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # reprokit is importable without installing it

DEFAULT_SITE_URL = "https://blog.example.org/"
SITE_URL = os.environ.get("SITE_URL", "").strip() or DEFAULT_SITE_URL
if not SITE_URL.endswith("/"):
    SITE_URL += "/"

project = "可复现的 Bug"
author = "reprokit"
copyright = "2015–2026, reprokit"
language = "zh_CN"
root_doc = "index"

extensions = [
    "ablog",
    "reprokit.blogheader",
    "reprokit.blogsite",
    "reprokit.sphinxext",
]

exclude_patterns = [
    "_build",
    "_templates",
    "_static",
    "code",
    "tests",
    "bench",
    "reprokit",
    "reprokit.egg-info",
    "posts/evidence",
    "node_modules",
    ".ci",
    ".git",
    ".venv",
    "venv",
    "README.md",
    "DESIGN.md",
    "Thumbs.db",
    ".DS_Store",
]
templates_path = ["_templates"]

# --- ABlog ---
blog_title = "可复现的 Bug"
blog_path = "blog"
blog_baseurl = SITE_URL
blog_feed_fulltext = True
blog_feed_subtitle = "会自己复现的故障复盘：每篇文章的证据都由构建现场采集。"
blog_feed_length = 20
blog_authors = {"reprokit": ("reprokit", None)}
blog_default_author = "reprokit"
post_date_format = "%Y-%m-%d"
post_date_format_short = "%Y-%m-%d"
post_auto_excerpt = 1
post_show_prev_next = True

# --- HTML ---
html_title = "可复现的 Bug"
html_short_title = "可复现的 Bug"
html_baseurl = SITE_URL
html_search_language = "zh"
try:  # Sphinx's Chinese search segments words with jieba; keep its start-up chatter quiet
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
except ImportError:
    pass
html_theme = "alabaster"
html_static_path = ["_static"]
html_favicon = "_static/favicon.svg"
html_css_files = ["blog.css"]
html_copy_source = False
html_show_sourcelink = False
html_last_updated_fmt = None
html_theme_options = {
    "description": "会自己复现的故障复盘",
    "fixed_sidebar": False,
    "show_powered_by": False,
    "page_width": "1080px",
    "sidebar_width": "240px",
    "body_max_width": "none",
    "font_family": "var(--blog-sans)",
    "head_font_family": "var(--blog-sans)",
    "code_font_family": "var(--blog-mono)",
    "font_size": "17px",
    "code_font_size": "0.82em",
}
html_sidebars = {
    "**": [
        "about.html",
        "ablog/postcard.html",
        "ablog/tagcloud.html",
        "ablog/archives.html",
        "searchfield.html",
    ]
}

# --- page metadata, sitemap, CJK text (reprokit.blogsite) ---
blogsite_description = "会自己复现的故障复盘：每篇文章的证据都由构建现场采集。"
