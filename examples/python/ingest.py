"""Upserts embeddings into a Sextant file in batched commits, while any number of
searchers (uvicorn workers, other programs, other languages) read the same file.

    python ingest.py --db vectors.sx [--dim 64] [--batch 200] [--batches 0] [--interval 0.05]

Each commit adds --batch new vectors (ids doc-0000000, doc-0000001, ...) and sets the
database's user version to the batch number, so a reader can tell which commit its
snapshot holds. After each commit it prints one JSON line with one vector of the
batch (the "probe"), which a searcher must now find at distance 0. --batches 0 runs
until SIGTERM or SIGINT, which end it after the commit in progress. Re-running it on
the same file continues where it stopped.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time

import numpy as np
import sextant


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default="vectors.sx")
    ap.add_argument("--collection", default="docs")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--batch", type=int, default=200, help="vectors per commit")
    ap.add_argument("--batches", type=int, default=0, help="commits to make (0: until signalled)")
    ap.add_argument("--interval", type=float, default=0.05, help="seconds between commits")
    ap.add_argument("--sync", default="full", choices=["full", "normal", "off"])
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--quiet", action="store_true", help="no line per commit, only the summary")
    ap.add_argument("--progress", type=float, default=0, metavar="SECONDS",
                    help="instead of a JSON line per commit, a readable line every SECONDS")
    args = ap.parse_args()

    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    rng = np.random.default_rng(args.seed)
    commits = vectors = 0
    commit_secs = 0.0
    t0 = time.monotonic()
    next_progress = t0 + args.progress
    with sextant.open(args.db, sync=args.sync) as db:
        while not stop and (args.batches == 0 or commits < args.batches):
            with db.write() as w:  # waits for the write lock; commits at the end of the block
                if args.collection not in w.list_collections():
                    w.create_collection(args.collection, dim=args.dim, metric="l2")
                first = w.count(args.collection)
                generation = w.user_version() + 1
                ids = [f"doc-{first + i:07d}" for i in range(args.batch)]
                vecs = rng.standard_normal((args.batch, args.dim), dtype=np.float32)
                meta = [{"batch": generation, "n": first + i} for i in range(args.batch)]
                w.upsert(args.collection, ids, vecs, meta)
                w.set_user_version(generation)
                tc = time.monotonic()
            # the block has committed: durable (sync=full) and visible to new snapshots
            commits += 1
            vectors += args.batch
            commit_secs += time.monotonic() - tc
            if args.progress > 0:
                if time.monotonic() >= next_progress:
                    next_progress += args.progress
                    print(f"ingest pid {os.getpid():<7} committed gen {generation:5d}, {first + args.batch:7d} vectors "
                          f"(+{args.batch} per commit, commit {commit_secs / commits * 1000:.1f} ms on average)",
                          flush=True)
            elif not args.quiet:
                p = int(rng.integers(args.batch))
                print(json.dumps({
                    "event": "commit", "generation": generation, "count": first + args.batch,
                    "commit_ms": round((time.monotonic() - tc) * 1000, 2),
                    "probe_id": ids[p], "probe": vecs[p].tolist(),
                }), flush=True)
            if args.interval > 0 and not stop:
                time.sleep(args.interval)
    secs = time.monotonic() - t0
    if args.progress > 0:
        print(f"ingest pid {os.getpid():<7} DONE: {commits} commits, {vectors} vectors in {secs:.1f} s = "
              f"{vectors / secs if secs > 0 else 0:.0f} vectors/s", flush=True)
        return 0
    print(json.dumps({"event": "done", "commits": commits, "vectors": vectors, "seconds": round(secs, 2),
                      "vectors_per_s": round(vectors / secs, 1) if secs > 0 else 0}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
