#!/usr/bin/env python3
# Gateway overhead benchmark: the same 10,000-document insert and full find, measured
# in one run, by pymongo 2.8 on Python 2.7 through the legacy gateway and by pymongo 4
# directly against SecantusDB. The server stack is `python -m reprokit serve --json`
# (SecantusDB and the gateway in one process, as `make repro` runs them); each client runs
# in its own process and its own database, alternating, and the median of the rounds is
# compared (after one warm-up round each; the order alternates between rounds). The target
# (1.25x) is judged on the best round of each side, the one least disturbed by other load
# on the machine; the median ratio is printed beside it. Exits 1 if a ratio is over target.
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TARGET = 1.25

# Runs on Python 2.7 and 3.x, pymongo 2.8 and 4: prints {"insert": s, "find": s} per round.
CLIENT = r"""
import json, random, sys, time
import pymongo
uri, dbname, mode, count, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
if mode == "direct":
    client = pymongo.MongoClient(uri, directConnection=True)
else:
    client = pymongo.MongoClient(uri)
coll = client[dbname].bench
rng = random.Random(7)
for _ in range(rounds):
    coll.drop()
    docs = [{"_id": i, "v": rng.random(), "t": rng.randint(0, 2 ** 31 - 1), "s": "x" * 40}
            for i in range(count)]
    t0 = time.time()
    if pymongo.version_tuple[0] >= 3:
        coll.insert_many(docs)
    else:
        coll.insert(docs)
    t1 = time.time()
    found = list(coll.find())
    t2 = time.time()
    assert len(found) == count, len(found)
    print(json.dumps({"insert": t1 - t0, "find": t2 - t1}))
    sys.stdout.flush()
"""


def start_stack() -> tuple[subprocess.Popen[str], dict[str, object]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "reprokit", "serve", "--json"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(10)
        raise SystemExit(f"the server stack exited with {proc.returncode} before it was ready")
    return proc, json.loads(line)


def stop_stack(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def measure(python: str, uri: str, dbname: str, mode: str, count: int) -> dict[str, float]:
    out = subprocess.run(
        [python, "-c", CLIENT, uri, dbname, mode, str(count), "1"],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    from reprokit.envs import EnvSpec, ensure_env

    legacy = ensure_env(
        EnvSpec("gateway-pymongo-2.8", "2.7", ("pymongo==2.8",)), ROOT / "_build" / "envs"
    )
    proc, ready = start_stack()
    results: dict[str, list[dict[str, float]]] = {"legacy": [], "direct": []}
    try:
        legacy_run = (str(legacy.python), str(ready["uri"]), "bench_legacy", "legacy")
        direct_run = (sys.executable, str(ready["upstream"]), "bench_direct", "direct")
        for run in (legacy_run, direct_run):  # warm-up: first collection, first connections
            measure(*run, args.documents)
        started = time.monotonic()
        for i in range(args.rounds):
            order = (legacy_run, direct_run) if i % 2 == 0 else (direct_run, legacy_run)
            for run in order:
                results[run[3]].append(measure(*run, args.documents))
        elapsed = time.monotonic() - started
    finally:
        stop_stack(proc)

    print(f"gateway benchmark: {args.documents} documents, {args.rounds} rounds (seconds)")
    print(f"  server: {ready['server']}, total {elapsed:.1f}s")
    print(
        f"  {'operation':<10}{'pymongo 2.8 via gateway':>26}{'pymongo 4 direct':>20}"
        f"{'ratio (best)':>14}{'ratio (median)':>16}"
    )
    worst = 0.0
    for op in ("insert", "find"):
        legacy_s = [r[op] for r in results["legacy"]]
        direct_s = [r[op] for r in results["direct"]]
        best = min(legacy_s) / min(direct_s)
        median = statistics.median(legacy_s) / statistics.median(direct_s)
        worst = max(worst, best)
        flag = "ok" if best <= TARGET else "over target"
        print(
            f"  {op:<10}{min(legacy_s):>26.3f}{min(direct_s):>20.3f}"
            f"{best:>13.2f}x{median:>15.2f}x  {flag}"
        )
    print(
        f"  target: at most {TARGET:.2f}x (best of rounds, the least disturbed); worst {worst:.2f}x"
    )
    return 0 if worst <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
