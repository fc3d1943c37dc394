"""reprokit.sphinxext: real Sphinx builds of the fixture roots under tests/roots/.

The evidence in those roots is hand-made (see tests/roots/README.md). Every
build here is a real one, on a private copy of a root: in-process through
sphinx.testing's make_app, or as a `sphinx-build` subprocess (for -W and the
default theme); the layout check runs a real headless Chromium.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from sphinx.util.console import strip_colors

from reprokit.sphinxext import evidence

pytest_plugins = ("sphinx.testing.fixtures",)

ROOTS = Path(__file__).parent / "roots"
POST = "posts/motor-66"
EVIDENCE = "posts/evidence/motor-66"


def copy_root(name: str, tmp_path: Path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(ROOTS / name, src)
    return src


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A private copy of the clean fixture root, free to be edited by the test."""
    return copy_root("test-reprokit", tmp_path)


@pytest.fixture
def build(make_app: Callable[..., Any]) -> Callable[..., Any]:
    """Build `srcdir` with a fresh app (and a cold evidence cache); return the app."""

    def run(srcdir: Path, buildername: str = "html", **kwargs: Any) -> Any:
        evidence.clear_cache()
        app = make_app(buildername, srcdir=srcdir, status=StringIO(), warning=StringIO(), **kwargs)
        try:
            app.build()
        finally:
            app.cleanup()  # unregister nodes etc., so the next app in this test starts clean
        return app

    return run


def warnings_of(app: Any) -> str:
    return strip_colors(app.warning.getvalue())


def page(app: Any, docname: str = POST) -> str:
    return (Path(app.outdir) / f"{docname}.html").read_text(encoding="utf-8")


def line_of(srcdir: Path, docname: str, needle: str) -> int:
    lines = (srcdir / f"{docname}.rst").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if needle in line)


# -- a clean build --------------------------------------------------------------------------


def test_clean_build_embeds_traces_table_and_timeline(
    project: Path, build: Callable[..., Any]
) -> None:
    app = build(project)
    assert warnings_of(app) == ""
    html = page(app)

    # Both traces, each in its scrollable, focusable box, with the tracer's HTML inside.
    boxes = re.findall(r'<div class="repro-trace-box" role="region" tabindex="0"', html)
    assert len(boxes) == 2
    assert 'aria-label="Stacks captured for motor-0.4"' in html
    assert 'aria-label="Stacks captured for motor-0.4.1"' in html
    assert "__monitor_lock" in html and "started_event" in html and "_impl" in html
    assert '<span style="color:#BA2121">' in html  # Pygments colours survived
    # The default caption: variant, verdict badge, capture date.
    assert (
        '<p class="repro-caption"><strong class="repro-variant">motor-0.4</strong> · '
        '<span class="repro-verdict repro-verdict-deadlock">deadlock</span>'
        '<span class="repro-captured"> · captured 2026-12-03</span></p>'
    ) in html
    # The :caption: override (parsed as inline markup) and :class: / :name: options.
    assert '<p class="repro-caption">Motor <strong>0.4.1</strong> answers every request</p>' in html
    assert re.search(r'<div class="repro-trace fixed-trace docutils container"', html)
    assert '<div class="repro-trace docutils container" id="trace-motor-04">' in html
    # The non-HTML fallback is not in the HTML.
    assert "repro-trace-text" not in html

    # The variants table: real table markup, in index.json order, every column.
    table = html[html.index('<table class="repro-variants') : html.index("</table>")]
    assert 'id="motor-66-variants"' in table
    assert "Variants of <em>motor-66</em>" in table
    headers = re.findall(r"<th[^>]*>(?:<p>)?(.*?)(?:</p>)?</th>", table)
    assert headers == [
        "Variant",
        "Verdict",
        "Expected",
        "Python",
        "motor",
        "pymongo",
        "tornado",
        "greenlet",
        "Server",
        "Time to verdict",
        "Captured",
    ]
    rows = re.findall(r"<tr class=\"row-(?:even|odd)\">(.*?)</tr>", table, re.DOTALL)[1:]
    cells = [
        re.sub(r"<[^>]+>", "", cell).strip()
        for cell in re.findall(r"<td[^>]*>(.*?)</td>", rows[0], re.DOTALL)
    ]
    assert cells == [
        "motor-0.4",
        "deadlock",
        "deadlock",
        "2.7.18",
        "0.4",
        "2.8",
        "4.1",
        "1.1.3.post0",
        "SecantusDB 0.7.0b3 via gateway",
        "1.4 s",
        "2026-12-03",
    ]
    assert '<span class="repro-verdict repro-verdict-deadlock">deadlock</span>' in rows[0]
    assert "motor-0.4.1" in rows[1]
    assert '<span class="repro-verdict repro-verdict-ok">ok</span>' in rows[1]

    # The timeline is an ordinary image, copied by Sphinx.
    assert (Path(app.outdir) / "_images" / "timeline.svg").is_file()
    assert 'alt="Timeline of the motor-0.4 run"' in html
    # The stylesheet is linked and shipped.
    assert "_static/reprokit.css" in html
    assert (Path(app.outdir) / "_static" / "reprokit.css").is_file()
    # References to the named table and trace resolve.
    assert 'href="#motor-66-variants"' in html and 'href="#trace-motor-04"' in html


def test_text_builder_falls_back_to_frames(project: Path, build: Callable[..., Any]) -> None:
    app = build(project, "text")
    assert warnings_of(app) == ""
    text = (Path(app.outdir) / f"{POST}.txt").read_text()
    assert "repro-trace-box" not in text and "<span" not in text
    assert "Thread MainThread (main)" in text
    assert "line 1087, in __ensure_monitor" in text
    assert "self.__monitor_lock.acquire()" in text
    assert "Greenlet greenlet 0x7f3a2c1d5e10" in text
    assert re.search(r"\| motor-0\.4 +\| deadlock +\| deadlock +\| 2\.7\.18 +\| 0\.4 +\|", text)


# -- warnings -------------------------------------------------------------------------------


def test_stale_code_hash_warns_at_each_directive(project: Path, build: Callable[..., Any]) -> None:
    app = build(project)
    assert warnings_of(app) == ""

    (project / "code" / "app.py").write_text("print('changed after the capture')\n")
    app = build(project)
    warnings = warnings_of(app)
    table_line = line_of(project, POST, "repro-variants::")
    src = project / f"{POST}.rst"
    for variant in ("motor-0.4", "motor-0.4.1"):
        assert (
            f"{src}:{table_line}: WARNING: repro-variants: the evidence of variant "
            f"'{variant}' ({EVIDENCE}/{variant}) is stale: the code it was captured from "
            "(code/app.py, code/stacktracer.py) has changed since; "
            "run `make repro` to capture it again "
            "[reprokit.stale]"
        ) in warnings
    # Once per variant and page: the trace directives below the table do not repeat it.
    assert warnings.count("[reprokit.stale]") == 2
    # The page is still built with the (stale) evidence.
    assert "__monitor_lock" in page(app)

    # The changed code file is a dependency: restoring it re-reads the page, warning-free.
    shutil.copy(ROOTS / "test-reprokit" / "code" / "app.py", project / "code" / "app.py")
    app = build(project)
    assert warnings_of(app) == ""


def sphinx_build(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html", *args]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)


def test_stale_evidence_fails_sphinx_build_w(project: Path, tmp_path: Path) -> None:
    clean = sphinx_build(str(project), str(tmp_path / "out1"))
    assert clean.returncode == 0, clean.stderr

    (project / "code" / "stacktracer.py").write_text("# edited\n")
    stale = sphinx_build(str(project), str(tmp_path / "out2"))
    assert stale.returncode != 0
    assert "is stale" in stale.stderr and "[reprokit.stale]" in stale.stderr

    # suppress_warnings filters by subtype, like any Sphinx warning.
    quiet = sphinx_build(
        "-D", "suppress_warnings=reprokit.stale", str(project), str(tmp_path / "o3")
    )
    assert quiet.returncode == 0, quiet.stderr


def test_missing_evidence_gives_located_warnings(tmp_path: Path, build: Callable[..., Any]) -> None:
    app = build(copy_root("test-reprokit-missing", tmp_path))
    warnings = warnings_of(app)
    src = Path(app.srcdir) / "index.rst"
    trace_line = line_of(Path(app.srcdir), "index", "repro-trace::")
    table_line = line_of(Path(app.srcdir), "index", "repro-variants::")
    timeline_line = line_of(Path(app.srcdir), "index", "repro-timeline::")
    assert (
        f"{src}:{trace_line}: WARNING: repro-trace: evidence/never-captured/v1/run.json "
        "does not exist; run `make repro` to capture it [reprokit.missing]"
    ) in warnings
    assert (
        f"{src}:{table_line}: WARNING: repro-variants: evidence/never-captured/index.json "
        "does not exist; run `make repro` to capture it [reprokit.missing]"
    ) in warnings
    assert (
        f"{src}:{timeline_line}: WARNING: repro-timeline: no timeline at "
        "evidence/never-captured/v1/timeline.svg; run `make repro` to capture it "
        "[reprokit.missing]"
    ) in warnings
    assert warnings.count("WARNING") == 3
    # The page still builds, with nothing in place of the missing evidence.
    html = (Path(app.outdir) / "index.html").read_text()
    assert "Nothing has been captured" in html and "repro-trace-box" not in html


def test_missing_evidence_keeps_warning_until_captured(
    project: Path, build: Callable[..., Any]
) -> None:
    missing = project / EVIDENCE / "motor-0.4.1"
    shutil.move(missing, project / "captured-later")
    app = build(project)
    assert warnings_of(app).count("[reprokit.missing]") == 2  # the table and the trace
    # The table still lists the variant, marked missing.
    assert '<span class="repro-verdict repro-verdict-missing">missing</span>' in page(app)

    # Unchanged tree, but the evidence is still missing: the page is read again and warns again.
    app = build(project)
    assert warnings_of(app).count("[reprokit.missing]") == 2

    # Once captured, the page picks it up without -E.
    # (`make repro` writes new files; a copy gives them fresh mtimes like it does.)
    shutil.copytree(project / "captured-later", missing, copy_function=shutil.copy)
    app = build(project)
    assert warnings_of(app) == ""
    assert 'aria-label="Stacks captured for motor-0.4.1"' in page(app)


def test_unknown_schema_version_warns(project: Path, build: Callable[..., Any]) -> None:
    run_json = project / EVIDENCE / "motor-0.4" / "run.json"
    record = json.loads(run_json.read_text())
    record["schema"] = "reprokit.run/2"
    run_json.write_text(json.dumps(record))
    index_json = project / EVIDENCE / "index.json"
    index = json.loads(index_json.read_text())
    index["schema"] = "reprokit.evidence/9"
    index_json.write_text(json.dumps(index))
    trace_json = project / EVIDENCE / "motor-0.4.1" / "trace.json"
    trace_json.write_text("{not json")

    app = build(project)
    warnings = warnings_of(app)
    assert (
        f"{EVIDENCE}/motor-0.4/run.json has schema 'reprokit.run/2', this reprokit reads "
        "'reprokit.run/1'; upgrade reprokit or run `make repro` to capture it again "
        "[reprokit.schema]"
    ) in warnings
    assert f"{EVIDENCE}/index.json has schema 'reprokit.evidence/9'" in warnings
    assert f"{EVIDENCE}/motor-0.4.1/trace.json is not valid JSON" in warnings
    assert warnings.count("[reprokit.schema]") == 3
    assert str(project) not in warnings.replace(str(project / f"{POST}.rst"), "")


# -- incremental builds ---------------------------------------------------------------------


def test_noop_rebuild_reads_nothing_and_evidence_edits_rebuild(
    project: Path, build: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = build(project)
    assert warnings_of(first) == ""

    reads: list[Path] = []
    real_read = evidence._read_text

    def counting_read(path: Path) -> str:
        reads.append(path)
        return real_read(path)

    monkeypatch.setattr(evidence, "_read_text", counting_read)

    second = build(project)
    assert "0 added, 0 changed, 0 removed" in second._status.getvalue()
    assert reads == []

    # Editing one variant's evidence re-reads the page that embeds it, and only that page.
    run_json = project / EVIDENCE / "motor-0.4" / "run.json"
    record = json.loads(run_json.read_text())
    record["time_to_verdict"] = 2.5
    run_json.write_text(json.dumps(record))
    future = time.time() + 5
    os.utime(run_json, (future, future))
    third = build(project)
    assert "0 added, 1 changed, 0 removed" in third._status.getvalue()
    assert run_json in reads
    assert "<td><p>2.5 s</p></td>" in page(third)


def test_parallel_read_and_write(project: Path, build: Callable[..., Any]) -> None:
    names = [f"posts/extra{i}" for i in range(8)]
    for name in names:
        (project / f"{name}.rst").write_text(
            f"Extra {name}\n=============\n\n.. repro-trace:: evidence/motor-66/motor-0.4\n"
        )
    (project / "index.rst").write_text(
        (project / "index.rst").read_text() + "".join(f"   {n}\n" for n in names)
    )
    (project / "code" / "app.py").write_text("# changed: every page warns stale\n")
    app = build(project, parallel=2)
    assert app.parallel == 2 and app.is_parallel_allowed("read")
    warnings = warnings_of(app)
    for name in names:
        assert f"{project / name}.rst:4: WARNING: repro-trace: the evidence of variant" in warnings
        assert 'aria-label="Stacks captured for motor-0.4"' in page(app, name)
    # Dependencies recorded in the worker processes reached the main environment.
    deps = app.env.dependencies[names[0]]
    assert project / EVIDENCE / "motor-0.4" / "trace.html" in deps
    assert project / "code" / "app.py" in deps


# -- what a published page may carry ----------------------------------------------------------


def test_hostile_trace_is_stripped_at_embed_time(project: Path, build: Callable[..., Any]) -> None:
    # Written straight to disk, bypassing the store-time sanitizer of `make repro`.
    hostile = (
        '<section class="stacktracer-thread"><h4 onclick="alert(1)">Thread MainThread</h4>'
        "<script>alert('trace')</script>"
        '<img src=x onerror="alert(2)">'
        '<iframe src="https://evil.example/"></iframe>'
        '<svg onload="alert(3)"><script>alert(4)</script></svg>'
        '<a href="javascript:alert(5)">click</a>'
        '<pre style="color: red; background: url(javascript:alert(6)); '
        'width: expression(alert(7))">File "x.py", line 1, in boom</pre></section>'
    )
    (project / EVIDENCE / "motor-0.4" / "trace.html").write_text(hostile)
    app = build(project)
    assert warnings_of(app) == ""
    html = page(app)
    box = html[html.index('aria-label="Stacks captured for motor-0.4"') :]
    box = box[: box.index('<div class="repro-trace fixed-trace')]
    for needle in ("<script", "onerror", "onclick", "onload", "<iframe", "<svg", "<img"):
        assert needle not in box
    assert "javascript:" not in html and "expression(" not in html and "alert(" not in html
    assert '<pre style="color:red">File "x.py", line 1, in boom</pre>' in box
    assert "click" in box


# -- layout in a real browser -----------------------------------------------------------------

# Headless Chromium will not make a window narrower than 500 px, so the page is
# loaded in an iframe of the width under test; the probe inside it reports the
# page's layout to the harness, which writes it into the DOM that --dump-dom prints.
PROBE_JS = """
window.addEventListener("load", function () {
  var boxes = Array.prototype.map.call(
    document.querySelectorAll(".repro-trace-box, .repro-variants-scroll"),
    function (b) { return [b.className, b.scrollWidth, b.clientWidth]; });
  parent.postMessage(JSON.stringify({viewport: window.innerWidth,
    page: document.documentElement.scrollWidth, boxes: boxes}), "*");
});
"""

HARNESS_HTML = """<!DOCTYPE html>
<html><body style="margin:0">
<iframe src="{src}" style="width:{width}px;height:900px;border:0"></iframe>
<script>
window.addEventListener("message", function (event) {{
  document.body.setAttribute("data-probe", event.data);
}});
</script>
</body></html>
"""


@pytest.fixture
def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise AssertionError("no Chromium on PATH: apt-get install chromium (.ci/run does)")


def dump_dom(browser: str, url: str, width: int, profile: Path) -> str:
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--window-size={width + 100},1000",
        "--virtual-time-budget=3000",
        "--dump-dom",
        url,
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True, text=True
    )
    try:
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        else:
            try:  # helpers left behind by the browser, if any
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return out


@pytest.mark.slow
@pytest.mark.parametrize("width", [390, 1200])
def test_page_never_scrolls_sideways(
    project: Path, tmp_path: Path, chromium: str, width: int
) -> None:
    # The default theme (alabaster) as a user gets it, plus a probe script.
    static = project / "_probe"
    static.mkdir()
    (static / "probe.js").write_text(PROBE_JS)
    with (project / "conf.py").open("a") as conf:
        conf.write("html_static_path = ['_probe']\nhtml_js_files = ['probe.js']\n")
    out = tmp_path / "html"
    built = sphinx_build(str(project), str(out))
    assert built.returncode == 0, built.stderr
    harness = out / "probe.html"
    harness.write_text(HARNESS_HTML.format(src=f"{POST}.html", width=width))
    dom = dump_dom(chromium, harness.as_uri(), width, tmp_path / "profile")
    match = re.search(r"data-probe=\"([^\"]*)\"", dom)
    assert match, dom[-2000:]
    probe = json.loads(match.group(1).replace("&quot;", '"'))
    assert probe["viewport"] == width
    assert probe["page"] <= probe["viewport"], probe
    traces = [b for b in probe["boxes"] if b[0] == "repro-trace-box"]
    assert len(traces) == 2
    # The long trace lines are there and scroll inside their own box.
    assert all(scroll > client for _, scroll, client in traces), probe


def test_variants_default_and_normalized_package_columns(
    project: Path, build: Callable[..., Any]
) -> None:
    (project / "index.rst").write_text(
        "Tables\n======\n\n"
        ".. repro-variants:: posts/evidence/motor-66\n\n"
        ".. repro-variants:: posts/evidence/motor-66\n   :packages: PyMongo GreenLet\n\n"
        ".. toctree::\n\n   posts/motor-66\n"
    )
    app = build(project, "text")
    assert warnings_of(app) == ""
    text = (Path(app.outdir) / "index.txt").read_text()
    headers = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith("| Variant")
    ]
    # Without :packages:, the columns are the packages the variants pin, in pin order.
    assert headers[0][4:8] == ["motor", "pymongo", "tornado", "greenlet"]
    # Names are matched as PEP 503 does, and shown as the author wrote them.
    assert headers[1][4:6] == ["PyMongo", "GreenLet"]
    assert re.search(r"\| motor-0\.4 +\| deadlock +\| deadlock +\| 2\.7\.18 +\| 2\.8 +\| 1\.1\.3\.post0 +\|", text)


def test_a_package_no_variant_has_is_a_located_warning(
    project: Path, build: Callable[..., Any]
) -> None:
    (project / "index.rst").write_text(
        "Tables\n======\n\n"
        ".. repro-variants:: posts/evidence/motor-66\n   :packages: motor, nosuchpkg\n\n"
        ".. toctree::\n\n   posts/motor-66\n"
    )
    app = build(project, "html")
    warnings = warnings_of(app)
    assert "index.rst:4: WARNING: repro-variants: no variant in posts/evidence/motor-66 has the package 'nosuchpkg'" in warnings
    assert "[reprokit.packages]" in warnings
    assert "'motor'" not in warnings


def test_labels_follow_the_site_language(project: Path, build: Callable[..., Any]) -> None:
    (project / "index.rst").write_text(
        "Tables\n======\n\n"
        ".. repro-variants:: posts/evidence/motor-66\n   :packages: motor\n\n"
        ".. toctree::\n\n   posts/motor-66\n"
    )
    app = build(project, "html", confoverrides={"language": "zh_CN"})
    assert warnings_of(app) == ""
    html = (Path(app.outdir) / "index.html").read_text()
    table = html[html.index('<table class="repro-variants') : html.index("</table>")]
    headers = re.findall(r"<th[^>]*>(?:<p>)?(.*?)(?:</p>)?</th>", table)
    assert headers[:3] == ["版本组合", "结论", "预期"] and "判定用时" in headers
    assert "SecantusDB 0.7.0b3 经协议网关" in table
    # Verdicts stay the words the evidence uses, in every language.
    assert '<span class="repro-verdict repro-verdict-deadlock">deadlock</span>' in table
    post = (Path(app.outdir) / "posts" / "motor-66.html").read_text()
    assert "采集于 " in post
