#!/usr/bin/env python3
"""Self-recall of fresh inserts: is a vector its own first hit right after its commit?
Sextant beside hnswlib, through Python.

The example services (examples/) ingest batches of random vectors while a prober
searches each batch's vectors right after the commit. HNSW is approximate, so at a
small ef a vector can miss itself. This counts how often, for both libraries on the
same data and parameters (M 16, ef_construction 200, one thread):

  for each of --batches batches of --batch new Gaussian vectors (dim --dim):
    Sextant: one commit (upsert), then a read session searches each new vector (k 1)
    hnswlib: add_items, then knn_query of each new vector (k 1)
    at each ef of --efs; an ef of 0 means the collection's count (exhaustive)

and prints, per ef, the misses of each library over all queries and --seeds seeds.

  python bench/self_recall.py [--dim 64] [--batch 200] [--batches 15] [--seeds 10]
                              [--efs 16,32,64,0]
"""
import argparse
import os
import shutil
import tempfile

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

import hnswlib  # noqa: E402
import sextant  # noqa: E402

M, EFC = 16, 200


def run_seed(seed, args, efs, misses):
    rng = np.random.default_rng(seed)
    tmp = tempfile.mkdtemp(prefix="sx-self-recall-")
    try:
        hl = hnswlib.Index(space="l2", dim=args.dim)
        hl.init_index(max_elements=args.batch * args.batches, M=M, ef_construction=EFC, random_seed=seed)
        hl.set_num_threads(1)
        with sextant.open(os.path.join(tmp, "v.sx"), threads=1) as db:
            with db.write() as w:
                w.create_collection("c", dim=args.dim, metric="l2", index="hnsw", m=M,
                                    ef_construction=EFC)
            for b in range(args.batches):
                n0 = b * args.batch
                x = rng.standard_normal((args.batch, args.dim)).astype(np.float32)
                ids = [f"v{n0 + i}" for i in range(args.batch)]
                with db.write() as w:
                    w.upsert("c", ids, x)
                hl.add_items(x, np.arange(n0, n0 + args.batch))
                n = n0 + args.batch
                with db.read() as r:
                    for ef in efs:
                        e = ef or n
                        hl.set_ef(e)
                        labels, _ = hl.knn_query(x, k=1)
                        misses[ef]["hnswlib"] += int(np.count_nonzero(labels[:, 0] != np.arange(n0, n)))
                        misses[ef]["sextant"] += sum(r.search("c", x[i], 1, ef=e)[0].id != ids[i]
                                                     for i in range(args.batch))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--batches", type=int, default=15)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--efs", default="16,32,64,0")
    args = ap.parse_args()
    efs = [int(e) for e in args.efs.split(",")]
    misses = {ef: {"sextant": 0, "hnswlib": 0} for ef in efs}
    for seed in range(args.seeds):
        run_seed(seed, args, efs, misses)
    total = args.seeds * args.batches * args.batch
    print(f"{total} fresh vectors ({args.dim}-d Gaussian, {args.batches} batches of {args.batch}, "
          f"{args.seeds} seeds; M {M}, ef_construction {EFC}), each searched for itself (k 1) "
          f"right after its batch was added:")
    print(f"{'ef':>8} {'Sextant misses':>15} {'hnswlib misses':>15}")
    for ef in efs:
        print(f"{ef or 'count':>8} {misses[ef]['sextant']:>15} {misses[ef]['hnswlib']:>15}")


if __name__ == "__main__":
    main()
