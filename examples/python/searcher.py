"""Searches one Sextant file for a while, each search in a fresh read session (a new
snapshot), printing what it sees once a second (the snapshot's generation and count,
a search) and its throughput at the end. The Python part of tools/demo.sh.

    python searcher.py --db vectors.sx [--seconds 10] [--k 10]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import sextant


def newest(r: sextant.ReadSession, args: argparse.Namespace, count: int) -> str:
    """Searches for the vector the ingest committed last in this snapshot (its ids are
    doc-0000000, doc-0000001, ...): it must come first, at distance 0. An ef of at least
    the count makes the HNSW search exact; at the default ef (64) about 1 in 2,000 of
    these vectors would not be its own first hit."""
    newest_id = f"doc-{count - 1:07d}"
    try:
        rec = r.get(args.collection, newest_id)
    except sextant.NotFound:  # another ingest's ids
        return ""
    hit = r.search(args.collection, rec.vector, 1, ef=max(count, 64))[0]
    return f"; newest {newest_id} -> {hit.id} ({hit.distance:.3f})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default="vectors.sx")
    ap.add_argument("--collection", default="docs")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--label", default="python")
    args = ap.parse_args()

    rng = np.random.default_rng()
    label, pid = f"{args.label:<6}", f"{os.getpid():<7}"
    searches = 0
    t0 = time.monotonic()
    deadline, next_report = t0 + args.seconds, t0
    with sextant.open(args.db) as db:
        while (now := time.monotonic()) < deadline:
            with db.read() as r:  # one snapshot
                try:
                    info = r.describe(args.collection)
                except sextant.NotFound:  # not created yet
                    time.sleep(0.01)
                    continue
                hits = r.search(args.collection, rng.standard_normal(info["dim"], dtype=np.float32), args.k)
                searches += 1
                if now >= next_report and hits:
                    next_report = now + 1
                    print(f"{label} pid {pid} snapshot gen {r.user_version():5d}, {info['count']:7d} vectors; "
                          f"random query -> {hits[0].id} ({hits[0].distance:.3f}){newest(r, args, info['count'])}",
                          flush=True)
    print(f"{label} pid {pid} DONE: {searches} searches in {args.seconds:.1f} s = {searches / args.seconds:.0f} "
          f"searches/s (each in its own snapshot)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
