"""The first post in a real headless Chromium (Debian's `chromium`, driven by
playwright's own driver; `playwright install` is never run).

The site is built from the real sources into a temporary directory and served
on 127.0.0.1 with a port the OS picks. Screenshots land in _build/screenshots/.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
EVIDENCE = ROOT / "posts" / "evidence" / "motor-66"
SCREENSHOTS = ROOT / "_build" / "screenshots"
POST = "posts/motor-deadlock.html"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    for variant in ("motor-0.4", "motor-0.4.1"):
        trace = EVIDENCE / variant / "trace.html"
        assert trace.is_file(), f"no evidence at {trace}: run `make repro` and commit it"
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-b",
            "html",
            "-q",
            "-d",
            str(out / "doctrees"),
            str(ROOT),
            str(out / "html"),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return out / "html"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server(site: Path) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, name="site-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Debian's chromium is not installed (apt-get install chromium; .ci/run does)")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


def open_page(browser: Any, url: str, viewport: dict[str, int]) -> tuple[Any, list[str]]:
    page = browser.new_page(viewport=viewport, device_scale_factor=1)
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("requestfailed", lambda req: problems.append(f"request failed: {req.url}"))
    page.on(
        "response",
        lambda resp: (
            problems.append(f"HTTP {resp.status}: {resp.url}") if resp.status >= 400 else None
        ),
    )
    page.goto(url, wait_until="load")
    page.wait_for_load_state("networkidle")
    return page, problems


def local_targets(page: Any, origin: str) -> set[str]:
    urls = page.evaluate(
        """() => [
            ...[...document.querySelectorAll('a[href], link[href]')].map(e => e.href),
            ...[...document.querySelectorAll('img[src], script[src], source[src]')].map(e => e.src),
        ]"""
    )
    targets = set()
    for url in urls:
        clean = urllib.parse.urldefrag(url).url
        if clean.startswith(origin):
            targets.add(clean)
    return targets


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_post_on_desktop(browser: Any, server: str) -> None:
    page, problems = open_page(browser, server + POST, DESKTOP)
    try:
        traces = page.locator("div.repro-trace")
        assert traces.count() == 2
        texts = [traces.nth(i).inner_text() for i in range(2)]
        assert "motor-0.4 " in texts[0] or texts[0].startswith("motor-0.4")
        assert "__monitor_lock.acquire()" in texts[0] and "deadlock" in texts[0]
        assert "motor-0.4.1" in texts[1] and "ok" in texts[1]
        for i in range(2):
            box = traces.nth(i).locator("div.repro-trace-box")
            assert box.is_visible()
            # Highlighted: Pygments' inline-styled spans, in more than one colour.
            colours = box.evaluate(
                """b => [...b.querySelectorAll('span')]
                        .map(s => getComputedStyle(s).color)
                        .filter(c => c !== getComputedStyle(b).color)"""
            )
            assert len(colours) > 10 and len(set(colours)) >= 2, colours[:5]
        tables = page.locator("table.repro-variants")
        assert tables.count() == 2  # the two variants, then every release
        variants, releases = tables.nth(0), tables.nth(1)
        assert variants.is_visible() and releases.is_visible()
        rows = variants.inner_text()
        for word in ("motor-0.4", "motor-0.4.1", "deadlock", "ok", "0.4.1", "2.8"):
            assert word in rows
        rows = releases.inner_text()
        for word in ("motor-0.3", "motor-0.3.4", "2.7.1", "motor-0.5"):
            assert word in rows
        assert rows.count("deadlock") == 2  # 0.4's verdict and its expectation
        timelines = page.locator("img.repro-timeline-image")
        assert timelines.count() == 2
        for index in range(2):
            assert timelines.nth(index).evaluate("i => i.complete && i.naturalWidth > 0")
        assert page.locator("div.literal-block-wrapper").count() >= 2  # code from code/
        assert page.title().startswith("Motor 0.4 的死锁")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "post-desktop.png"), full_page=True)
        assert problems == []
    finally:
        page.close()


@pytest.mark.parametrize("path", [POST, "index.html"])
def test_no_broken_local_links_or_images(browser: Any, server: str, path: str) -> None:
    page, problems = open_page(browser, server + path, DESKTOP)
    try:
        broken_images = page.evaluate(
            "() => [...document.images].filter(i => !i.complete || i.naturalWidth === 0)"
            ".map(i => i.src)"
        )
        assert broken_images == []
        targets = local_targets(page, server)
        assert len(targets) > 10  # the post links to tags, archives, the feed, static files
        broken = {url: code for url in sorted(targets) if (code := status_of(url)) != 200}
        assert broken == {}
        assert problems == []
        if path == "index.html":
            page.screenshot(path=str(SCREENSHOTS / "index-desktop.png"), full_page=True)
    finally:
        page.close()


def test_post_on_a_phone(browser: Any, server: str) -> None:
    page, problems = open_page(browser, server + POST, PHONE)
    try:
        width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], f"the page scrolls sideways: {width}"
        boxes = page.evaluate(
            """() => [...document.querySelectorAll('div.repro-trace-box')].map(b => ({
                scroll: b.scrollWidth, client: b.clientWidth,
                overflow: getComputedStyle(b).overflowX,
                right: b.getBoundingClientRect().right}))"""
        )
        assert len(boxes) == 2
        for box in boxes:
            assert box["scroll"] > box["client"], box  # long frames overflow the box...
            assert box["overflow"] in ("auto", "scroll"), box  # ...and scroll inside it
            assert box["right"] <= PHONE["width"], box
        # Scrolling a trace box moves its content, not the page.
        first = page.locator("div.repro-trace-box").first
        first.evaluate("b => { b.scrollLeft = 200; }")
        assert first.evaluate("b => b.scrollLeft") > 0
        assert page.evaluate("() => window.scrollX") == 0
        page.evaluate("() => window.scrollTo(0, 0)")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        first.evaluate("b => { b.scrollLeft = 0; }")
        page.screenshot(path=str(SCREENSHOTS / "post-phone.png"), full_page=True)
        assert problems == []
    finally:
        page.close()
