#!/usr/bin/env python3
"""Incremental ingest through Python: Sextant's small durable commits beside hnswlib
(issue 23).

A base of --base random vectors (dim --dim, float32) goes into a Sextant HNSW
collection (sync full, m 16, ef_construction 200, one thread) and into an hnswlib
index (same M and ef_construction, one thread). Then every batch is 100 new vectors
and 20 deletes of live base items:
  Sextant: with db.write() as w: w.upsert(c, ids, vecs); w.delete(c, dead)  (one commit)
  hnswlib: add_items(vecs, labels); mark_deleted(label) x 20; then the bytes of the
           100 vectors appended to a file and os.fdatasync of it (what durability costs
           at least: hnswlib has no commit of its own)
  fsync:   the same append + fdatasync alone, on its own file (the floor)
The three take turns batch by batch (the first one rotating), --batches per round,
--rounds rounds on the same indexes; each figure is the median over rounds of the
round's median time per batch, with the load average. The issue's goal: Sextant's
batch costs no more than hnswlib's add_items + mark_deleted plus the fsync.

  python bench/ingest_peers.py [--base 20000] [--dim 128] [--batches 40] [--rounds 3]
                               [--out bench/results/ingest-peers.md]
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

import hnswlib  # noqa: E402
import sextant  # noqa: E402

M, EFC, UPS, DELS = 16, 200, 100, 20


class Appender:
    """Appends bytes to a file and makes them durable with one fdatasync."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)

    def put(self, data):
        os.write(self.fd, data)
        os.fdatasync(self.fd)

    def close(self):
        os.close(self.fd)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", type=int, default=20000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--out", default=None, help="also write the table (markdown) and a .json beside it")
    args = ap.parse_args()
    load0 = os.getloadavg()
    rng = np.random.default_rng(7)
    total_new = args.batches * args.rounds * UPS
    base = rng.standard_normal((args.base, args.dim), dtype=np.float32)
    new = rng.standard_normal((total_new, args.dim), dtype=np.float32)
    # The same deletes for both: distinct base items, 20 per batch.
    dead = rng.permutation(args.base)[: args.batches * args.rounds * DELS]
    d = tempfile.mkdtemp(prefix="sx-ingest-", dir=args.dir)
    try:
        db = sextant.open(os.path.join(d, "s.sx"), sync="full", threads=1)
        t0 = time.perf_counter()
        with db.write() as w:
            w.create_collection("c", dim=args.dim, index="hnsw", m=M, ef_construction=EFC)
            w.upsert("c", [str(i) for i in range(args.base)], base)
        sx_build = time.perf_counter() - t0
        hi = hnswlib.Index(space="l2", dim=args.dim)
        hi.init_index(max_elements=args.base + total_new, M=M, ef_construction=EFC)
        hi.set_num_threads(1)
        t0 = time.perf_counter()
        hi.add_items(base, np.arange(args.base))
        hn_build = time.perf_counter() - t0
        log = Appender(os.path.join(d, "hnswlib.log"))
        floor = Appender(os.path.join(d, "fsync.log"))
        print("base built: sextant %.1f s, hnswlib %.1f s (%d x %d)" % (sx_build, hn_build, args.base, args.dim),
              file=sys.stderr)

        def sx_batch(b):
            ids = [str(args.base + b * UPS + j) for j in range(UPS)]
            with db.write() as w:
                w.upsert("c", ids, new[b * UPS:(b + 1) * UPS])
                w.delete("c", [str(x) for x in dead[b * DELS:(b + 1) * DELS]])

        def hn_batch(b):
            vecs = new[b * UPS:(b + 1) * UPS]
            hi.add_items(vecs, np.arange(args.base + b * UPS, args.base + (b + 1) * UPS))
            for x in dead[b * DELS:(b + 1) * DELS]:
                hi.mark_deleted(int(x))
            log.put(vecs.tobytes())

        def fs_batch(b):
            floor.put(new[b * UPS:(b + 1) * UPS].tobytes())

        sides = [("sextant", sx_batch), ("hnswlib+fdatasync", hn_batch), ("fdatasync alone", fs_batch)]
        rounds = []
        b = 0
        for r in range(args.rounds):
            times = {name: [] for name, _ in sides}
            for k in range(args.batches):
                order = sides[(b % 3):] + sides[:(b % 3)]
                for name, fn in order:
                    t0 = time.perf_counter()
                    fn(b)
                    times[name].append(time.perf_counter() - t0)
                b += 1
            rounds.append({name: statistics.median(v) * 1e3 for name, v in times.items()})
            print("round %d: %s" % (r + 1, ", ".join("%s %.2f ms" % kv for kv in rounds[-1].items())),
                  file=sys.stderr)
        log.close()
        floor.close()
        with db.read() as rd:
            count = rd.count("c")
        db.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)
    load1 = os.getloadavg()
    med = {name: statistics.median(r[name] for r in rounds) for name, _ in sides}
    hn_add = [r["hnswlib+fdatasync"] - r["fdatasync alone"] for r in rounds]
    sx_over = [r["sextant"] - r["hnswlib+fdatasync"] for r in rounds]
    ratio = [r["sextant"] / r["hnswlib+fdatasync"] for r in rounds]
    lines = [
        "# Incremental ingest: %d upserts + %d deletes per commit, %d x %d base, HNSW M %d, ef_construction %d, one thread"
        % (UPS, DELS, args.base, args.dim, M, EFC),
        "",
        "Command: `%s`" % " ".join(["python", "bench/ingest_peers.py"] + sys.argv[1:]),
        "",
        "Machine: %s, %d CPUs, Python %s, hnswlib %s, load average %.1f at start, %.1f at end."
        % (platform.machine(), os.cpu_count(), platform.python_version(),
           getattr(hnswlib, "__version__", "0.8.0"), load0[0], load1[0]),
        "",
        "Milliseconds per batch (median over %d rounds of each round's median over %d batches):"
        % (args.rounds, args.batches),
        "",
        "| | ms per batch | per round |",
        "|---|---:|---|",
    ]
    for name, _ in sides:
        lines.append("| %s | %.2f | %s |" % (name, med[name], ", ".join("%.2f" % r[name] for r in rounds)))
    lines += [
        "",
        "- hnswlib's add_items + mark_deleted alone (its batch minus the fsync floor): %.2f ms"
        % statistics.median(hn_add),
        "- Sextant minus hnswlib+fdatasync: %+.2f ms per batch; ratio %.2fx (per round: %s)"
        % (statistics.median(sx_over), statistics.median(ratio), ", ".join("%.2f" % x for x in ratio)),
        "- Sextant count after the run: %d (expected %d)" % (count, args.base + total_new - len(dead)),
        "- base build: Sextant %.1f s, hnswlib %.1f s" % (sx_build, hn_build),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
        with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
            json.dump({"args": vars(args), "rounds_ms": rounds, "median_ms": med, "load": [load0, load1],
                       "sextant_build_s": sx_build, "hnswlib_build_s": hn_build}, f, indent=1)


if __name__ == "__main__":
    main()
