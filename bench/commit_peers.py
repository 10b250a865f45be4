#!/usr/bin/env python3
"""One-vector commits through Python: Sextant beside Python's sqlite3 (issue 23).

Each commit stores one new 128-d float32 vector under a new id:
  Sextant:  with db.write() as w: w.upsert(coll, id, vec)      (flat or hnsw collection)
  SQLite:   BEGIN; INSERT INTO t(id, v) VALUES (?, ?); COMMIT  (WAL mode, 512-byte blob)
at sync full and normal (Sextant's sync=, SQLite's synchronous=), default checkpoint
settings on both sides (Sextant 1,000 frames, SQLite wal_autocheckpoint 1,000).
The systems take turns in blocks of --block commits until each has made --commits,
the first one alternating between repeats; the median of --repeats rounds of
commits/s is reported with the paired ratio Sextant/SQLite, and the load average.

  python bench/commit_peers.py [--sync normal,full] [--index flat,hnsw]
                               [--commits 3000] [--block 250] [--repeats 3] [--dim 128]
"""
import argparse
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np
import sextant


class SextantSide:
    def __init__(self, d, sync, index, dim):
        self.name = "sextant-" + index
        self.db = sextant.open(os.path.join(d, "s.sx"), sync=sync)
        with self.db.write() as w:
            w.create_collection("c", dim=dim, index=index)
        self.i = 0

    def commit(self, vec):
        with self.db.write() as w:
            w.upsert("c", "id%d" % self.i, vec)
        self.i += 1

    def close(self):
        self.db.close()


class SqliteSide:
    def __init__(self, d, sync, dim):
        self.name = "sqlite"
        self.db = sqlite3.connect(os.path.join(d, "q.db"), isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=%s" % sync.upper())
        self.db.execute("CREATE TABLE t(id TEXT PRIMARY KEY, v BLOB NOT NULL)")
        self.i = 0

    def commit(self, vec):
        c = self.db
        c.execute("BEGIN")
        c.execute("INSERT INTO t(id, v) VALUES (?, ?)", ("id%d" % self.i, vec.tobytes()))
        c.execute("COMMIT")
        self.i += 1

    def close(self):
        self.db.close()


def round_(sync, index, args, rnd):
    d = tempfile.mkdtemp(prefix="sx-commit-", dir=args.dir)
    try:
        sides = [SextantSide(d, sync, index, args.dim), SqliteSide(d, sync, args.dim)]
        if rnd % 2:
            sides.reverse()
        rng = np.random.default_rng(rnd)
        vecs = rng.standard_normal((args.block, args.dim), dtype=np.float32)
        spent = {s.name: 0.0 for s in sides}
        done = 0
        while done < args.commits:
            n = min(args.block, args.commits - done)
            for s in sides:
                t0 = time.perf_counter()
                for j in range(n):
                    s.commit(vecs[j])
                spent[s.name] += time.perf_counter() - t0
            done += n
        for s in sides:
            s.close()
        return {k: args.commits / v for k, v in spent.items()}
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sync", default="normal,full")
    ap.add_argument("--index", default="flat")
    ap.add_argument("--commits", type=int, default=3000)
    ap.add_argument("--block", type=int, default=250)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--out", default=None, help="also write the output (markdown) to this file")
    args = ap.parse_args()
    lines = []

    def out(line):
        print(line)
        sys.stdout.flush()
        lines.append(line)

    out("Command: `%s`" % " ".join(["python", "bench/commit_peers.py"] + sys.argv[1:]))
    out("")
    out("SQLite %s (Python's sqlite3); load average at start: %.2f %.2f %.2f"
        % ((sqlite3.sqlite_version,) + os.getloadavg()))
    out("")
    out("| sync | index | Sextant commits/s | SQLite commits/s | ratio (median of paired) |")
    out("|---|---|---:|---:|---:|")
    for sync in args.sync.split(","):
        for index in args.index.split(","):
            rows = [round_(sync, index, args, r) for r in range(args.repeats)]
            sx = [r["sextant-" + index] for r in rows]
            sq = [r["sqlite"] for r in rows]
            ratios = [a / b for a, b in zip(sx, sq)]
            out("| %s | %s | %.0f [%.0f..%.0f] | %.0f [%.0f..%.0f] | %.2fx [%.2f..%.2f] |" % (
                sync, index, statistics.median(sx), min(sx), max(sx), statistics.median(sq),
                min(sq), max(sq), statistics.median(ratios), min(ratios), max(ratios)))
    out("")
    out("load average at end: %.2f %.2f %.2f" % os.getloadavg())
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
