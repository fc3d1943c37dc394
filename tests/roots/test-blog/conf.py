# A small blog for tests/test_blog.py: the site's own extensions, without the
# evidence directives, so it builds before any evidence exists.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

project = "测试博客"
language = "zh_CN"
extensions = ["ablog", "reprokit.blogheader", "reprokit.blogsite"]
exclude_patterns = ["_build"]
html_baseurl = "https://tests.example.net/blog/"
blog_baseurl = html_baseurl
blog_path = "blog"
blog_title = "测试博客"
blog_feed_fulltext = True
post_date_format = "%Y-%m-%d"
html_search_language = "zh"
html_theme = "alabaster"
blogsite_description = "站点的默认描述"
