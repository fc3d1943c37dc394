# -*- coding: utf-8 -*-
"""Dump the stack of every thread and every suspended greenlet to HTML + JSON.

Strategy: a daemon thread wakes every 50 ms. It dumps when the interval has
passed (auto mode), when the output file is missing ("only if missing" mode),
or at once when a trigger file appears. A dump is a snapshot of
sys._current_frames() plus, if the program imported greenlet, every greenlet
found by gc.get_objects() that is suspended (its gr_frame is set): a greenlet
that switched away while holding a lock is invisible to _current_frames().

Invariants:
- Runs unchanged on Python 2.7 and 3.x; never raises into the host program.
- Writes are atomic: both files are written to temp files in the target
  directory, then the JSON is renamed into place, then the HTML. So at any
  instant json.sequence is html.sequence or html.sequence + 1; a reader that
  needs a matching pair reads both and retries while the sequences differ.
- A trigger file is deleted only after both files are in place: when it has
  gone, the dump it asked for can be read.
- Frames are listed outermost first, innermost last, like a traceback.
- Everything taken from the program (names, paths, source) is HTML-escaped;
  styles are inline (Pygments noclasses=True), so the fragment embeds anywhere.

This is a rewrite of the classic "stacktracer" recipe (whose trace_stop used
an undefined name and which wrote with the Python-2-only file()).
"""
from __future__ import absolute_import, division, print_function, unicode_literals

import gc
import json
import linecache
import os
import sys
import tempfile
import threading
import time

try:
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonTracebackLexer
except ImportError:  # Pygments is optional: fall back to escaped <pre>.
    highlight = None

__all__ = ["trace_start", "trace_stop", "dump", "snapshot", "render_html", "json_path_for"]

FORMAT = "reprokit.stacks/1"
STEP = 0.05  # seconds between checks of the trigger file and the clock
PYGMENTS_STYLE = "default"  # dark text on a light (#f8f8f8) background
TRIGGER_MAX_BYTES = 4096

_THIS_FILE = os.path.splitext(os.path.abspath(__file__))[0]
_monotonic = getattr(time, "monotonic", time.time)
_replace = getattr(os, "replace", os.rename)  # os.rename replaces on POSIX (Python 2)
try:
    _text_type = unicode  # noqa: F821  (Python 2)
except NameError:
    _text_type = str

_dump_lock = threading.Lock()  # one dump at a time, so sequence numbers stay ordered
_sequence = [0]
_tracer = [None]  # the running _Tracer, if any
_tracer_lock = threading.Lock()


def _text(value):
    """Any value as text; bytes are decoded as UTF-8 with replacement."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, _text_type):
        return value
    return _text_type(value)


def _escape(text):
    text = _text(text)
    for char, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"),
                         ("'", "&#39;")):
        text = text.replace(char, entity)
    return text


def json_path_for(path):
    """The JSON twin of an HTML path: same name, extension .json."""
    root, ext = os.path.splitext(path)
    if ext.lower() == ".json":
        raise ValueError("the tracer path must not end in .json: %r" % (path,))
    return root + ".json"


def _frames(frame):
    """Frame records for a frame chain, outermost first."""
    records = []
    while frame is not None:
        code = frame.f_code
        filename = _text(code.co_filename)
        line = frame.f_lineno
        source = linecache.getline(code.co_filename, line, frame.f_globals)
        records.append({"file": filename, "line": line, "function": _text(code.co_name),
                        "source": _text(source).strip()})
        frame = frame.f_back
    records.reverse()
    return records


def _is_ours(record):
    return os.path.splitext(os.path.abspath(record["file"]))[0] == _THIS_FILE


def _main_ident():
    main_thread = getattr(threading, "main_thread", None)
    if main_thread is not None:
        return main_thread().ident
    for thread in threading.enumerate():
        if isinstance(thread, getattr(threading, "_MainThread", ())):
            return thread.ident
    return None


def _threads(tracer_ident):
    """One record per live thread: main thread first, then by name, tracer last."""
    known = dict((t.ident, t) for t in threading.enumerate())
    main_ident = _main_ident()
    current = threading.current_thread().ident
    records = []
    for ident, frame in sys._current_frames().items():
        thread = known.get(ident)
        frames = _frames(frame)
        if ident == current:
            # The dumping thread: drop the tracer's own innermost frames so a
            # one-off dump() shows its caller, not this module.
            while frames and _is_ours(frames[-1]):
                frames.pop()
        records.append({
            "kind": "thread",
            "name": _text(thread.name) if thread is not None else "thread %d" % ident,
            "ident": ident,
            "main": ident == main_ident,
            "daemon": bool(thread is not None and thread.daemon),
            "tracer": ident == tracer_ident,
            "frames": frames,
        })
    records.sort(key=lambda r: (not r["main"], r["tracer"], r["name"], r["ident"]))
    return records


def _greenlets():
    """One record per suspended greenlet, if the program uses greenlet at all."""
    module = sys.modules.get("greenlet")
    greenlet_type = getattr(module, "greenlet", None)
    if not isinstance(greenlet_type, type):
        return []
    records = []
    for obj in gc.get_objects():
        try:
            if not isinstance(obj, greenlet_type):
                continue
            frame = obj.gr_frame  # None while running, before start and when dead
        except Exception:  # a greenlet of another thread may refuse; skip it
            continue
        if frame is None:
            continue
        records.append({
            "kind": "greenlet",
            "name": "greenlet 0x%x" % id(obj),
            "ident": id(obj),
            "main": obj.parent is None,  # the root greenlet of some thread
            "daemon": False,
            "tracer": False,
            "frames": _frames(frame),
        })
    records.sort(key=lambda r: r["ident"])
    return records


def _timestamp(now):
    millis = int((now - int(now)) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%03dZ" % millis


def snapshot(reason="manual", trigger=None, tracer_ident=None):
    """The stacks of this process as a dict in the reprokit.stacks/1 format.

    The sequence number is 0 here; dump() assigns the real one.
    """
    return {
        "format": FORMAT,
        "captured_at": _timestamp(time.time()),
        "pid": os.getpid(),
        "python": "%d.%d.%d" % tuple(sys.version_info[:3]),
        "sequence": 0,
        "reason": reason,
        "trigger": trigger,
        "threads": _threads(tracer_ident),
        "greenlets": _greenlets(),
    }


def _stack_text(frames):
    lines = []
    for frame in frames:
        lines.append('  File "%s", line %d, in %s' % (frame["file"], frame["line"],
                                                     frame["function"]))
        if frame["source"]:
            lines.append("    " + frame["source"])
    return "\n".join(lines) + "\n"


def _highlight(text):
    if highlight is not None:
        try:
            formatter = HtmlFormatter(noclasses=True, style=PYGMENTS_STYLE)
            return highlight(text, PythonTracebackLexer(), formatter)
        except Exception:  # never let highlighting break a dump
            pass
    return '<pre style="background: #f8f8f8; color: #000000; line-height: 125%%">%s</pre>\n' % (
        _escape(text))


def _title(record):
    if record["kind"] == "greenlet":
        title = "Greenlet 0x%x (suspended)" % record["ident"]
        if record["main"]:
            title += ", root greenlet of its thread"
        return title
    notes = []
    if record["main"]:
        notes.append("main thread")
    if record["daemon"]:
        notes.append("daemon")
    if record["tracer"]:
        notes.append("this tracer")
    title = "Thread %s" % record["name"]
    return title + (" (%s)" % ", ".join(notes) if notes else "")


def render_html(snap):
    """The HTML fragment for a snapshot: a caption, then one section per stack."""
    parts = [
        '<div class="stacktracer" data-sequence="%d" data-reason="%s">\n'
        % (snap["sequence"], _escape(snap["reason"])),
        '<p class="stacktracer-caption" style="margin: 0 0 0.5em 0; color: #333333">'
        "Stacks of process %d (Python %s), captured %s, dump #%d (%s); "
        "most recent call last.</p>\n"
        % (snap["pid"], _escape(snap["python"]), _escape(snap["captured_at"]),
           snap["sequence"], _escape(snap["reason"])),
    ]
    for record in snap["threads"] + snap["greenlets"]:
        parts.append('<div class="stacktracer-stack" data-kind="%s" style="margin: 0 0 1em 0">\n'
                     % record["kind"])
        parts.append('<p class="stacktracer-title" style="margin: 0 0 0.25em 0; '
                     'font-weight: bold; color: #000000">%s</p>\n' % _escape(_title(record)))
        if record["frames"]:
            parts.append(_highlight(_stack_text(record["frames"])))
        else:
            parts.append('<p style="margin: 0; color: #555555">(no frames)</p>\n')
        parts.append("</div>\n")
    parts.append("</div>\n")
    return "".join(parts)


def _write_temp(directory, name, data):
    fd, temp = tempfile.mkstemp(prefix="." + name + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(temp, 0o644)
    except Exception:
        os.remove(temp)
        raise
    return temp


def dump(path, reason="manual", trigger=None, _tracer_ident=None):
    """Write the stacks to `path` (HTML) and its .json twin, atomically; return the snapshot."""
    json_path = json_path_for(path)
    directory = os.path.dirname(os.path.abspath(path))
    with _dump_lock:
        snap = snapshot(reason, trigger, _tracer_ident)
        _sequence[0] += 1
        snap["sequence"] = _sequence[0]
        json_data = json.dumps(snap, indent=1, sort_keys=True)
        html_data = render_html(snap)
        json_temp = _write_temp(directory, os.path.basename(json_path),
                                _text(json_data).encode("utf-8"))
        try:
            html_temp = _write_temp(directory, os.path.basename(path),
                                    html_data.encode("utf-8"))
        except Exception:
            os.remove(json_temp)
            raise
        _replace(json_temp, json_path)  # JSON first: never older than the HTML
        _replace(html_temp, path)
    return snap


class _Tracer(threading.Thread):
    def __init__(self, path, interval, auto, trigger):
        threading.Thread.__init__(self, name="stacktracer")
        self.daemon = True
        self.path = path
        self.interval = interval
        self.auto = auto
        self.trigger = trigger
        self.stopping = threading.Event()

    def run(self):
        next_due = _monotonic()  # the first check happens at once
        while not self.stopping.is_set():
            try:
                if self.trigger and os.path.exists(self.trigger):
                    self._dump_for_trigger()
                if _monotonic() >= next_due:
                    next_due = _monotonic() + self.interval
                    if self.auto:
                        dump(self.path, "interval", None, self.ident)
                    elif not os.path.exists(self.path):
                        dump(self.path, "missing", None, self.ident)
            except Exception as exc:  # keep tracing; the host program must not notice
                _complain("dump failed", exc)
            self.stopping.wait(STEP)

    def _dump_for_trigger(self):
        try:
            with open(self.trigger, "rb") as handle:
                content = _text(handle.read(TRIGGER_MAX_BYTES))
        except (IOError, OSError):
            content = None  # removed meanwhile or unreadable: still dump
        dump(self.path, "trigger", content, self.ident)
        try:
            os.remove(self.trigger)
        except OSError as exc:
            if os.path.exists(self.trigger):  # stop watching it, or we would dump every step
                self.trigger = None
                _complain("cannot delete the trigger file, no longer watching it", exc)


def _complain(what, exc):
    try:
        sys.stderr.write("stacktracer: %s: %s: %s\n" % (what, type(exc).__name__, exc))
        sys.stderr.flush()
    except Exception:
        pass


def trace_start(path, interval=5.0, auto=True, trigger=None):
    """Start the tracer thread.

    auto=True rewrites `path` every `interval` seconds; auto=False writes it only
    when it is missing (checked every interval). `trigger` names a file whose
    appearance causes an immediate dump (checked every 50 ms).
    """
    json_path_for(path)  # validate early
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ValueError("the tracer's directory does not exist: %r" % (directory,))
    if interval <= 0:
        raise ValueError("interval must be positive, not %r" % (interval,))
    with _tracer_lock:
        if _tracer[0] is not None:
            raise RuntimeError("the stack tracer is already running")
        tracer = _Tracer(path, float(interval), auto, trigger)
        tracer.start()
        _tracer[0] = tracer
    return tracer


def trace_stop(timeout=5.0):
    """Stop the tracer thread and wait for it; does nothing if it is not running."""
    with _tracer_lock:
        tracer, _tracer[0] = _tracer[0], None
    if tracer is None:
        return
    tracer.stopping.set()
    if tracer is not threading.current_thread():
        tracer.join(timeout)
