"""The Python interop worker: tests/interop/PROTOCOL.md through the sextant package.

Usage: interop_py.py write-fixture DB | dump DB | writer DB SECONDS ACKFILE |
       reader DB SECONDS | verify DB ACKFILE
"""

from __future__ import annotations

import json
import os
import struct
import sys
import time
from typing import Any, Dict, List

import numpy as np

import sextant

MASK = (1 << 64) - 1


def splitmix_vector(seed: int, dim: int) -> np.ndarray:
    state = seed & MASK
    out = []
    for _ in range(dim):
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        z ^= z >> 31
        out.append((z >> 40) / float(1 << 24) * 2 - 1)
    return np.array(out, dtype=np.float32)


def fixture_id(i: int) -> str:
    return [f"item-{i}", f"é-{i}-ü✓", f"ключ/{i}"][i % 3]


def fixture_meta(i: int) -> Dict[str, Any]:
    return {"i": i, "id": fixture_id(i), "half": i * 0.5, "tags": [f"t{i % 4}", "x"],
            "nested": {"even": i % 2 == 0, "deep": {"k": [i, None, True]}}}


def bits(x: float) -> str:
    return struct.pack(">f", float(x)).hex()


def write_fixture(path: str) -> Dict[str, Any]:
    ids = [fixture_id(i) for i in range(200)]
    vecs = np.stack([splitmix_vector(1000 + i, 16) for i in range(200)])
    metas = [fixture_meta(i) for i in range(200)]
    with sextant.open(path, threads=1) as db, db.write() as w:
        w.create_collection("flat", 16, metric="l2", index="flat")
        w.create_collection("graph", 16, metric="cosine", index="hnsw", m=8, ef_construction=64)
        w.upsert("flat", ids, vecs, metas)
        w.upsert("graph", ids, vecs, metas)
        w.set_user_version(42)
    return {"ok": True}


def dump(path: str) -> Dict[str, Any]:
    out: Dict[str, Any] = {"describe": {}, "items": {}, "search": {}}
    with sextant.open(path, read_only=True) as db, db.read() as r:
        out["user_version"] = r.user_version()
        for coll in ("flat", "graph"):
            d = r.describe(coll)
            out["describe"][coll] = {
                "name": d["name"], "dim": d["dim"], "metric": d["metric"], "index": d["index"]["type"],
                "hnsw_m": d["index"].get("m", 0), "hnsw_ef_construction": d["index"].get("ef_construction", 0),
                "count": d["count"]}
            items = {}
            for i in range(200):
                rec = r.get(coll, fixture_id(i))
                items[rec.id] = {"vector": [bits(x) for x in rec.vector],
                                 "metadata": json.dumps(rec.metadata)}
            out["items"][coll] = items
            out["search"][coll] = [
                [[h.id, bits(h.distance)] for h in r.search(coll, splitmix_vector(77 + q, 16), 10)]
                for q in range(5)]
    return out


def setup_live(db: sextant.Database) -> None:
    with db.read() as r:
        have = set(r.list_collections())
    if {"live", "book"} <= have:
        return
    with db.write(timeout=None) as w:
        have = set(w.list_collections())
        if "live" not in have:
            w.create_collection("live", 8, metric="l2", index="hnsw")
        if "book" not in have:
            w.create_collection("book", 1, metric="l2", index="flat")


def writer(path: str, seconds: float, ackfile: str) -> Dict[str, Any]:
    commits, last = 0, 0
    deadline = time.monotonic() + seconds
    with sextant.open(path) as db:
        setup_live(db)
        ack = os.open(ackfile, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            while time.monotonic() < deadline:
                with db.write(timeout=None) as w:  # commits when the block ends
                    g = w.user_version() + 1
                    w.upsert("live", [f"g{g}-{j}" for j in range(20)],
                             np.stack([splitmix_vector(g * 100 + j, 8) for j in range(20)]))
                    if g > 3:
                        w.delete("live", [f"g{g - 3}-{j}" for j in range(5)])
                    count = w.count("live")
                    w.upsert("book", ["state"], np.array([[float(g)]], dtype=np.float32),
                             [{"gen": g, "count": count}])
                    w.set_user_version(g)
                os.write(ack, f"{g}\n".encode())
                os.fsync(ack)
                commits, last = commits + 1, g
        finally:
            os.close(ack)
    return {"commits": commits, "last": last}


def check_session(r: sextant.ReadSession) -> int:
    """Invariants 1-3 of PROTOCOL.md in one read session; returns its generation."""
    g = r.user_version()
    names = set(r.list_collections())
    if "book" not in names or "live" not in names:
        if g != 0:
            raise AssertionError(f"generation {g} without the live/book collections")
        return g
    try:
        state = r.get("book", "state").metadata
    except sextant.NotFound:
        state = None
    count = r.count("live")
    if state is None:
        if g != 0 or count != 0:
            raise AssertionError(f"generation {g}, count {count}, but no state record")
        return g
    if state["gen"] != g or state["count"] != count:
        raise AssertionError(f"session sees user version {g} and count {count}; state says {state}")
    if g > 0:
        a = r.get("live", f"g{g}-0").vector.tobytes()
        b = r.get("live", f"g{g}-0").vector.tobytes()
        if a != b or a != splitmix_vector(g * 100, 8).tobytes():
            raise AssertionError(f"g{g}-0 read twice differs, or differs from what was written")
        hits = r.search("live", splitmix_vector(g * 7 + 1, 8), 5)
        if len(hits) != min(5, count) or any(hits[i].distance > hits[i + 1].distance
                                             for i in range(len(hits) - 1)):
            raise AssertionError(f"search returned {len(hits)} hits of {count}, or out of order")
    return g


def reader(path: str, seconds: float) -> Dict[str, Any]:
    sessions, max_gen = 0, 0
    deadline = time.monotonic() + seconds
    with sextant.open(path, read_only=True) as db:
        while time.monotonic() < deadline:
            with db.read() as r:
                max_gen = max(max_gen, check_session(r))
            sessions += 1
    return {"sessions": sessions, "max_gen": max_gen}


def verify(path: str, ackfile: str) -> Dict[str, Any]:
    acked = 0
    if os.path.exists(ackfile):
        lines = [ln for ln in open(ackfile, encoding="ascii").read().split("\n") if ln.strip()]
        acked = int(lines[-1]) if lines else 0
    with sextant.open(path) as db:
        db.check()
        with db.read() as r:
            g = check_session(r)
    if g < acked:
        raise AssertionError(f"generation {g} after recovery, but {acked} was acknowledged")
    return {"gen": g, "acked": acked}


def main(argv: List[str]) -> int:
    cmd, args = argv[1], argv[2:]
    try:
        if cmd == "write-fixture":
            res = write_fixture(args[0])
        elif cmd == "dump":
            res = dump(args[0])
        elif cmd == "writer":
            res = writer(args[0], float(args[1]), args[2])
        elif cmd == "reader":
            res = reader(args[0], float(args[1]))
        elif cmd == "verify":
            res = verify(args[0], args[1])
        else:
            print(f"unknown command {cmd!r}", file=sys.stderr)
            return 2
    except (AssertionError, sextant.Error) as e:
        print(f"interop_py {cmd}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(res, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
