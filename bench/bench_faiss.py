#!/usr/bin/env python3
"""64 queries per call: Sextant's flat batch search beside faiss IndexFlatL2.

    python3 bench/bench_faiss.py --bench-flat build/release/bench/bench_flat [--n N] [--repeats R]

Runs bench_flat (which stores N x 128 generated vectors in a Sextant collection and
times sx_collection_search_batch with 64 queries, k = 10) and faiss IndexFlatL2 on
exactly the same vectors and queries (bench_flat dumps its data; the queries come
from the same splitmix64 generator, seed 99), alternating the two systems, and
reports the median queries/s of each. Both use every core (faiss through its own
threads, Sextant through its batch threads). Needs numpy and faiss-cpu from PyPI.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np


def splitmix(seed: int, count: int) -> np.ndarray:
    mask = (1 << 64) - 1
    state = seed
    out = np.empty(count, dtype=np.float32)
    for i in range(count):
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        z ^= z >> 31
        out[i] = (z >> 40) / 16777216.0 * 2 - 1
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench-flat", required=True, help="path to the bench_flat program")
    ap.add_argument("--n", type=int, default=1000000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    import faiss  # noqa: E402  (imported late so --help works without it)

    dim, nq, k = 128, 64, 10
    with tempfile.TemporaryDirectory() as tmp:
        dump = os.path.join(tmp, "data.f32")
        sextant_qps = []
        faiss_qps = []
        index = None
        queries = splitmix(99, nq * dim).reshape(nq, dim)
        for rep in range(args.repeats):
            out = subprocess.run(
                [args.bench_flat, "--n", str(args.n), "--repeats", "3", "--dir", tmp]
                + (["--dump", dump] if index is None else []),
                check=True, capture_output=True, text=True).stdout
            m = re.search(r"RESULT sextant 64-query batch: ([0-9.]+) queries/s", out)
            if not m:
                print(out, file=sys.stderr)
                return 1
            sextant_qps.append(float(m.group(1)))
            if index is None:
                data = np.fromfile(dump, dtype=np.float32).reshape(args.n, dim)
                index = faiss.IndexFlatL2(dim)
                index.add(data)
            best = 0.0
            for _ in range(3):
                t0 = time.perf_counter()
                index.search(queries, k)
                best = max(best, nq / (time.perf_counter() - t0))
            faiss_qps.append(best)
            print(f"repeat {rep + 1}: sextant {sextant_qps[-1]:.1f} q/s, faiss {faiss_qps[-1]:.1f} q/s",
                  flush=True)
    s, f = statistics.median(sextant_qps), statistics.median(faiss_qps)
    print(f"RESULT 64-query flat batch over {args.n} x {dim}: sextant {s:.1f} q/s, "
          f"faiss IndexFlatL2 {f:.1f} q/s, ratio {s / f:.2f} (goal >= 1.0): "
          f"{'PASS' if s >= f else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
