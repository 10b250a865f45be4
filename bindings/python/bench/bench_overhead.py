#!/usr/bin/env python3
"""Per-call overhead of the Python binding's search.

Times one k=10 search on a small collection (100 vectors of dimension 8) three ways:
  C loop     sx_collection_search called in a C loop (sx_py_bench_search, compiled
             into the extension): the floor, the cost of the search itself
  SWIG call  the generated low-level function (argument checks, buffer export, GIL
             release, Hit objects built in C)
  sextant    ReadSession.search, the public call (view cache, numpy fast path)
and prints each per-call time and the overhead of the public call over C (goal:
under 3 us). Figures are the best of several rounds, to shed the noise of a shared
machine.

  python bench/bench_overhead.py [--n 100] [--dim 8] [--k 10] [--index flat]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import timeit

import numpy as np

import sextant
from sextant import _sextant as _c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100, help="vectors in the collection")
    ap.add_argument("--dim", type=int, default=8)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--index", default="flat", choices=["flat", "hnsw"])
    ap.add_argument("--calls", type=int, default=50000, help="calls per round")
    ap.add_argument("--rounds", type=int, default=7)
    a = ap.parse_args()

    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp:
        db = sextant.open(os.path.join(tmp, "bench.sx"), sync="off")
        with db.write() as w:
            w.create_collection("c", a.dim, index=a.index)
            w.upsert("c", [f"id{i}" for i in range(a.n)], rng.random((a.n, a.dim), dtype=np.float32))
        r = db.read()
        q = rng.random(a.dim, dtype=np.float32)
        ql = q.tolist()
        view = r._view("c")  # the collection view the public call uses
        assert [h.id for h in r.search("c", q, a.k)] == [h.id for h in _c.sx_collection_search(view, q, a.k, None)]

        best = {"C loop": 1.0, "SWIG call": 1.0, "sextant": 1.0, "sextant, list query": 1.0}
        for _ in range(a.rounds):
            best["C loop"] = min(best["C loop"], _c.sx_py_bench_search(view, q, a.k, a.calls))
            t = timeit.timeit(lambda: _c.sx_collection_search(view, q, a.k, None), number=a.calls)
            best["SWIG call"] = min(best["SWIG call"], t / a.calls)
            t = timeit.timeit(lambda: r.search("c", q, a.k), number=a.calls)
            best["sextant"] = min(best["sextant"], t / a.calls)
            t = timeit.timeit(lambda: r.search("c", ql, a.k), number=a.calls // 5)
            best["sextant, list query"] = min(best["sextant, list query"], t / (a.calls // 5))
        r.end()
        db.close()

    c = best["C loop"]
    print(f"search k={a.k} on {a.n} x {a.dim} ({a.index}), best of {a.rounds} rounds of {a.calls} calls")
    for name, t in best.items():
        extra = "" if name == "C loop" else f"   overhead over C {(t - c) * 1e6:6.3f} us"
        print(f"  {name:22s} {t * 1e6:7.3f} us/call{extra}")
    over = (best["sextant"] - c) * 1e6
    print(f"overhead of sextant.ReadSession.search over the C call: {over:.3f} us (goal < 3 us): "
          f"{'met' if over < 3 else 'NOT met'}")


if __name__ == "__main__":
    main()
