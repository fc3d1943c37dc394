"""A hostile reproduction, for the sanitizer and redaction tests.

A tiny HTTP server (standard library only, Python 2.7 or 3) whose handler
blocks the only thread on a lock that is already held. The lines on its stack
carry markup, an event handler, a javascript: URL and a password in a
mongodb:// URI, all of which the captured trace must not publish as such.
"""
from __future__ import print_function

import os
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "code"))
import stacktracer  # noqa: E402

try:
    from http.server import BaseHTTPRequestHandler, HTTPServer
except ImportError:  # Python 2
    from BaseHTTPServer import BaseHTTPRequestHandler, HTTPServer

LOCK = threading.Lock()
LOCK.acquire()


def connect(uri):
    LOCK.acquire()  # <script>alert("x")</script><img src=x onload="alert(1)"><a href="javascript:alert(2)">


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        connect("mongodb://admin:hunter2@db.example.org:27017/?replicaSet=rs0")


def main():
    server = HTTPServer(("127.0.0.1", 0), Handler)
    stacktracer.trace_start(
        os.environ.get("STACKTRACER_PATH", "trace.html"),
        interval=float(os.environ.get("STACKTRACER_INTERVAL", "5")),
        trigger=os.environ.get("STACKTRACER_TRIGGER"),
    )
    print("Listening on http://127.0.0.1:%d/" % server.server_address[1])
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
