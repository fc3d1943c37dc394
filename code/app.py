# -*- coding: utf-8 -*-
"""The MOTOR-66 reproduction: a small Tornado app on one MotorReplicaSetClient.

With Motor 0.4, the first request to a fresh process starts two queries in the
same IOLoop turn; the first takes PyMongo's monitor lock inside a greenlet and
switches away, the second blocks the only thread on that lock: a deadlock.

Runs on Python 2.7 and 3.x. Usage:
    MONGODB_URI=mongodb://127.0.0.1:27017/?replicaSet=rs0 python app.py --port 8888
The URI may instead come from credentials.json ({"mongodb_uri": "..."}), next
to this file or in the current directory.
"""
from __future__ import print_function

import argparse
import json
import logging
import os
import random
import sys

import motor
from tornado import gen, httpserver, ioloop, netutil, web

import stacktracer

HERE = os.path.dirname(os.path.abspath(__file__))
log = logging.getLogger("app")


def mongodb_uri():
    """The URI from $MONGODB_URI, else from credentials.json; None if neither."""
    if os.environ.get("MONGODB_URI"):
        return os.environ["MONGODB_URI"]
    for directory in (HERE, os.getcwd()):
        path = os.path.join(directory, "credentials.json")
        if os.path.exists(path):
            with open(path) as handle:
                data = json.load(handle)
            if not isinstance(data, dict):
                raise ValueError("%s does not hold a JSON object" % path)
            return data.get("mongodb_uri")
    return None


@gen.coroutine
def read_both(db):
    # Both finds start before either is awaited. On a fresh client they reach
    # PyMongo's __ensure_monitor in the same IOLoop turn: that is the trigger.
    docs1, docs2 = yield [db.testcol1.find().to_list(length=None),
                          db.testcol2.find().to_list(length=None)]
    raise gen.Return((docs1, docs2))


class BaseHandler(web.RequestHandler):
    def prepare(self):
        # Tornado's access log records each finished request; this records the
        # start, so a request that never finishes still shows up in the log.
        log.info("start %s %s", self.request.method, self.request.uri)


class MainHandler(BaseHandler):
    @gen.coroutine
    def get(self):
        docs1, docs2 = yield read_both(self.settings["db"])
        self.set_header("X-Doc-Counts", "%d,%d" % (len(docs1), len(docs2)))
        self.write("done")


class InsertHandler(BaseHandler):
    @gen.coroutine
    def get(self):
        try:
            batches = int(self.get_argument("batches", "2"))
            size = int(self.get_argument("size", "100"))
        except ValueError:
            raise web.HTTPError(400, "batches and size must be integers")
        db = self.settings["db"]
        count = 0
        for _ in range(batches):
            for collection in (db.testcol1, db.testcol2):
                docs = [{"v": random.random(), "t": random.randint(0, 2 ** 31 - 1)}
                        for _ in range(size)]
                yield collection.insert(docs)
                count += len(docs)
        self.write("inserted %d" % count)


def main(argv=None):
    parser = argparse.ArgumentParser(description="MOTOR-66 reproduction app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8888, help="0 picks a free port")
    parser.add_argument("--debug", action="store_true", help="Tornado debug mode (autoreload)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")

    try:
        uri = mongodb_uri()
    except ValueError as exc:
        print("app.py: credentials.json is not usable: %s" % exc, file=sys.stderr)
        return 2
    if not uri:
        print("app.py: no MongoDB URI: set MONGODB_URI or write "
              '{"mongodb_uri": "mongodb://..."} to credentials.json next to app.py '
              "or in the current directory", file=sys.stderr)
        return 2

    # Fresh and unconnected: the first operation connects, as in the incident.
    client = motor.MotorReplicaSetClient(uri)
    application = web.Application(
        [(r"/", MainHandler), (r"/doinsert", InsertHandler)],
        db=client.test, debug=args.debug)

    sockets = netutil.bind_sockets(args.port, address=args.host)
    httpserver.HTTPServer(application).add_sockets(sockets)
    port = sockets[0].getsockname()[1]

    stacktracer.trace_start(
        os.environ.get("STACKTRACER_PATH") or os.path.join(os.getcwd(), "trace.html"),
        interval=float(os.environ.get("STACKTRACER_INTERVAL") or 5.0),
        auto=True,
        trigger=os.environ.get("STACKTRACER_TRIGGER") or None)

    print("Listening on http://%s:%d/" % (args.host, port))
    sys.stdout.flush()
    # No signal handlers on purpose: a deadlocked main thread never runs Python
    # signal handlers, so SIGTERM keeps its default action and ends the process.
    try:
        ioloop.IOLoop.current().start()
    except KeyboardInterrupt:
        pass
    finally:
        stacktracer.trace_stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
