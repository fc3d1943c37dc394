"""Conformance matrix: old drivers on their own interpreters, through the gateway, see what
pymongo 4 sees directly against the same SecantusDB.

One driver-neutral script (`CASES`, valid Python 2.7 and 3.x) runs each case and prints
normalized results; it runs once per old driver through the gateway and once with pymongo 4
(the tooling venv) straight at the server, each in its own database, and the outputs must
match case by case. Legacy-only operations (unacknowledged writes read back with
getLastError) are compared with the acknowledged result pymongo 4 reports for the same write.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_gateway import ROOT, LiveStack, stack  # noqa: F401  (live SecantusDB + gateway)

DRIVERS = [
    ("pymongo-2.7.1", "2.7", ("pymongo==2.7.1",)),
    ("pymongo-2.8", "2.7", ("pymongo==2.8",)),
    ("pymongo-3.12", "3.6", ("pymongo==3.12.3",)),
]

CASES = r"""
import json, sys
import pymongo
from pymongo import ASCENDING, DESCENDING
uri, dbname, mode = sys.argv[1:4]
V = pymongo.version_tuple[0]
if mode == "direct":
    client = pymongo.MongoClient(uri, directConnection=True)
else:
    client = pymongo.MongoClient(uri)
db = client[dbname]
out = {}

def norm(value):
    if isinstance(value, dict):
        return dict((str(k), norm(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [norm(v) for v in value]
    if isinstance(value, bytes) and not isinstance(value, str):
        return value.decode("latin-1")
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return str(value)

def case(name):
    def wrap(fn):
        try:
            out[name] = norm(fn())
        except Exception as exc:
            out[name] = {"raised": type(exc).__name__, "code": getattr(exc, "code", None),
                         "message": str(exc)[:200]}
        return fn
    return wrap

def insert_many(coll, docs):
    if V >= 3:
        return coll.insert_many(docs).inserted_ids
    return coll.insert(docs)

def count(coll, query=None):
    if V >= 4:
        return coll.count_documents(query or {})
    return coll.find(query or {}).count()

@case("crud")
def _():
    c = db.crud
    insert_many(c, [{"_id": i, "v": i} for i in range(3)])
    if V >= 3:
        c.update_one({"_id": 1}, {"$set": {"v": 10}})
        c.replace_one({"_id": 2}, {"w": 2})
        c.delete_one({"_id": 0})
    else:
        c.update({"_id": 1}, {"$set": {"v": 10}})
        c.update({"_id": 2}, {"w": 2})
        c.remove({"_id": 0})
    return list(c.find().sort("_id", ASCENDING))

@case("cursors")
def _():
    c = db.cur
    insert_many(c, [{"_id": i, "x": i % 7} for i in range(250)])
    early = c.find().batch_size(5)
    first = next(early)
    early.close()
    return {
        "all": [d["_id"] for d in c.find()],
        "batched": [d["_id"] for d in c.find().batch_size(7)],
        "limit": [d["_id"] for d in c.find().sort("_id", ASCENDING).limit(5)],
        "skip": [d["_id"] for d in c.find().sort("_id", ASCENDING).skip(240)],
        "sort": [d["_id"] for d in c.find().sort([("x", DESCENDING), ("_id", ASCENDING)]).limit(12)],
        "skip_limit_sort": [d["_id"] for d in c.find({"x": 3}).sort("_id", DESCENDING).skip(2).limit(4)],
        "one": c.find_one({"_id": 77}),
        "projection": list(c.find({"_id": {"$lt": 3}}, {"x": 1, "_id": 0}).sort("x", ASCENDING)),
        "early": first,
    }

@case("count")
def _():
    return [count(db.cur), count(db.cur, {"x": 3}), count(db.nothing)]

@case("distinct")
def _():
    return sorted(db.cur.distinct("x"))

@case("aggregate")
def _():
    pipeline = [{"$group": {"_id": "$x", "n": {"$sum": 1}}}, {"$sort": {"_id": 1}}]
    result = db.cur.aggregate(pipeline)
    if isinstance(result, dict):
        return result["result"]
    return list(result)

@case("find_and_modify")
def _():
    db.fam.insert_one({"_id": 1, "n": 0}) if V >= 3 else db.fam.insert({"_id": 1, "n": 0})
    if V >= 4:
        from pymongo import ReturnDocument
        return db.fam.find_one_and_update({"_id": 1}, {"$inc": {"n": 5}},
                                          return_document=ReturnDocument.AFTER)
    return db.fam.find_and_modify({"_id": 1}, {"$inc": {"n": 5}}, new=True)

@case("create_index")
def _():
    name = db.idx.create_index([("a", ASCENDING), ("b", DESCENDING)], unique=True)
    info = db.idx.index_information()
    return {"name": name, "keys": sorted((k, v["key"]) for k, v in info.items()),
            "unique": info[name].get("unique")}

@case("duplicate_key")
def _():
    c = db.dup
    insert_many(c, [{"_id": 1}])
    try:
        c.insert_one({"_id": 1}) if V >= 3 else c.insert({"_id": 1})
    except pymongo.errors.PyMongoError as exc:
        return {"type": "DuplicateKeyError" if exc.code == 11000 else type(exc).__name__,
                "code": exc.code}
    return "no error"

@case("bad_query")
def _():
    try:
        db.cur.find_one({"$bogus": 1})
    except pymongo.errors.OperationFailure as exc:
        return {"code": exc.code, "unknown operator": "unknown top level operator" in str(exc)}
    return "no error"

@case("unacknowledged")
def _():
    c = db.unack
    result = {}
    if mode == "direct":
        c.insert_one({"_id": 1})
        result["insert"] = {"n": 1, "err": None}
        try:
            c.insert_one({"_id": 1})
        except pymongo.errors.DuplicateKeyError as exc:
            result["dup"] = {"n": 0, "code": exc.code}
        r = c.update_one({"_id": 1}, {"$set": {"a": 1}})
        result["update"] = {"n": r.matched_count, "updatedExisting": True}
        r = c.update_one({"_id": 2}, {"$set": {"a": 2}}, upsert=True)
        result["upsert"] = {"n": 1, "updatedExisting": False, "upserted": r.upserted_id}
        r = c.delete_many({"a": {"$gte": 1}})
        result["delete"] = {"n": r.deleted_count}
    else:
        if V >= 3:
            w0 = c.with_options(write_concern=pymongo.WriteConcern(w=0))
            ins = lambda d: w0.insert_one(d)
            upd = lambda q, u, up=False: w0.update_one(q, u, upsert=up)
            rem = lambda q: w0.delete_many(q)
        else:
            ins = lambda d: c.insert(d, w=0)
            upd = lambda q, u, up=False: c.update(q, u, upsert=up, w=0)
            rem = lambda q: c.remove(q, w=0)
        def gle():
            return db.command("getlasterror")
        ins({"_id": 1})
        g = gle()
        result["insert"] = {"n": g["n"], "err": g["err"]}
        ins({"_id": 1})
        g = gle()
        result["dup"] = {"n": g["n"], "code": g.get("code")}
        upd({"_id": 1}, {"$set": {"a": 1}})
        g = gle()
        result["update"] = {"n": g["n"], "updatedExisting": g["updatedExisting"]}
        upd({"_id": 2}, {"$set": {"a": 2}}, True)
        g = gle()
        result["upsert"] = {"n": g["n"], "updatedExisting": g["updatedExisting"],
                            "upserted": g.get("upserted")}
        rem({"a": {"$gte": 1}})
        result["delete"] = {"n": gle()["n"]}
    result["left"] = count(c)
    return result

print("RESULT " + json.dumps(out, sort_keys=True))
"""


def run_cases(python: str | Path, uri: str, dbname: str, mode: str) -> dict[str, Any]:
    proc = subprocess.run(
        [str(python), "-c", CASES, uri, dbname, mode],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return dict(json.loads(line[len("RESULT ") :]))


@pytest.fixture(scope="module")
def reference(stack: LiveStack) -> dict[str, Any]:  # noqa: F811
    """What pymongo 4 sees, directly against SecantusDB."""
    return run_cases(sys.executable, stack.upstream_uri, "conf_direct", "direct")


@pytest.mark.slow
@pytest.mark.parametrize(("name", "python", "pins"), DRIVERS, ids=[d[0] for d in DRIVERS])
def test_old_driver_matches_pymongo4(
    stack: LiveStack,  # noqa: F811
    reference: dict[str, Any],
    name: str,
    python: str,
    pins: tuple[str, ...],
) -> None:
    from reprokit.envs import EnvSpec, ensure_env

    env = ensure_env(EnvSpec(f"gateway-{name}", python, pins), ROOT / "_build" / "envs")
    dbname = "conf_" + name.replace(".", "_").replace("-", "_")
    seen = run_cases(env.python, stack.uri, dbname, "legacy")
    assert sorted(seen) == sorted(reference)
    for case_name, expected in reference.items():
        assert seen[case_name] == expected, f"{name}: case {case_name!r} differs"
    failed = [k for k, v in reference.items() if isinstance(v, dict) and "raised" in v]
    assert not failed, f"pymongo 4 itself failed cases {failed}: {reference}"
