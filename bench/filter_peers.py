#!/usr/bin/env python3
"""Filtered search against selectivity: Sextant beside hnswlib, zvec and numpy.

    build/py-venv/bin/python bench/filter_peers.py [--quick] [--queries N] [--repeats R]

Data: Fashion-MNIST (60,000 x 784 train rows as the base, the first --queries test
images as queries), converted by tools/fashion_mnist_npy.py into --data (made when
missing). Item i carries a category c = i % 1000; the filter c < m (Sextant:
{"c": {"$lt": m}}, hnswlib: a functor over the label, zvec: "c < m", numpy: the
precomputed subset) matches the same items everywhere, m = 1000, 500, 100, 10, 1 for
100 %, 50 %, 10 %, 1 %, 0.1 % of the items.

Libraries (k = 10, M = 16, ef_construction = 200, search ef = 64, searches on one
thread, one query per call; builds may use two threads, they are not timed here):
  - sextant: the Python binding, HNSW collection, metadata {"c": c}, search(filter=);
  - hnswlib (0.8.0): knn_query(q, k, filter=callable); the callable is the bound
    __getitem__ of a Python list of booleans (the cheapest callable there is). When
    fewer than k items are found, hnswlib raises; that query then counts its hits as
    zero and is reported under "short";
  - zvec: an INT32 field c with an inverted index (InvertIndexParam, range
    optimisation on), query(..., filter="c < m"), zvec.init(query_threads=1);
  - numpy: exact brute force over the matching rows, kept as a separate array per
    selectivity (as a user keeping one array per category would): ||x||^2 - 2 x.q,
    argpartition. It is also the ground truth.
A peer that does not import or fails to build is skipped, and the reason printed and
written to the results.

Recall@10 is tie-aware against the exact answer over the matching items (a hit counts
when it matches the filter and its true distance is within the k-th exact distance).
QPS: median over --repeats rounds; in each round every selectivity is run by every
library, in an order that rotates from round to round.

Writes <out>/filter-peers.md (table, command, machine, load average), .json, and
filter-peers-recall.png / filter-peers-qps.png; --quick (10,000 base rows, 200
queries, 2 repeats) writes filter-peers-quick.* instead; --from-json FILE only
rewrites the .md and the plots from a results .json.
"""
import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
NCAT = 1000
# (label, m): the filter c < m matches m / NCAT of the items.
SELECTIVITIES = [("100%", 1000), ("50%", 500), ("10%", 100), ("1%", 10), ("0.1%", 1)]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


class Sextant:
    name = "sextant"

    def __init__(self, tmp, k, m, efc, ef):
        import sextant

        self.sx, self.k, self.m, self.efc, self.ef = sextant, k, m, efc, ef
        self.path = os.path.join(tmp, "filter.sx")

    def build(self, X, cat):
        with self.sx.open(self.path, sync="off", threads=2) as db:
            with db.write() as w:
                w.create_collection("c", X.shape[1], index="hnsw", m=self.m, ef_construction=self.efc)
            for i in range(0, len(X), 5000):
                j = min(i + 5000, len(X))
                with db.write() as w:
                    w.upsert("c", [str(x) for x in range(i, j)], X[i:j], [{"c": int(c)} for c in cat[i:j]])
            db.checkpoint()
        self.db = self.sx.open(self.path, sync="off", threads=1)
        self.r = self.db.read()

    def prepare(self, m):
        self.filter = {"c": {"$lt": m}}

    def search(self, q):
        return [int(h.id) for h in self.r.search("c", q, self.k, ef=self.ef, filter=self.filter)]

    def close(self):
        self.r.close()
        self.db.close()


class Hnswlib:
    name = "hnswlib"

    def __init__(self, tmp, k, m, efc, ef):
        import hnswlib

        self.lib, self.k, self.m, self.efc, self.ef = hnswlib, k, m, efc, ef
        self.short = 0

    def build(self, X, cat):
        self.cat = cat
        self.p = self.lib.Index(space="l2", dim=X.shape[1])
        self.p.init_index(max_elements=len(X), M=self.m, ef_construction=self.efc, random_seed=100)
        self.p.add_items(X, np.arange(len(X)), num_threads=2)
        self.p.set_num_threads(1)
        self.p.set_ef(self.ef)

    def prepare(self, m):
        self.ok = (self.cat < m).tolist()
        self.fn = self.ok.__getitem__

    def search(self, q):
        try:
            return self.p.knn_query(q, k=self.k, num_threads=1, filter=self.fn)[0][0].tolist()
        except RuntimeError:  # fewer than k results found
            self.short += 1
            return []

    def close(self):
        del self.p


class Zvec:
    name = "zvec"

    def __init__(self, tmp, k, m, efc, ef):
        import zvec

        try:
            zvec.init(query_threads=1, optimize_threads=2)
        except RuntimeError:  # already initialised
            pass
        self.z, self.k, self.m, self.efc = zvec, k, m, efc
        self.path = os.path.join(tmp, "zvec")
        self.param = zvec.HnswQueryParam(ef=ef)

    def build(self, X, cat):
        z = self.z
        schema = z.CollectionSchema(
            name="c",
            fields=z.FieldSchema("c", z.DataType.INT32,
                                 index_param=z.InvertIndexParam(enable_range_optimization=True)),
            vectors=z.VectorSchema("v", z.DataType.VECTOR_FP32, X.shape[1],
                                   z.HnswIndexParam(metric_type=z.MetricType.L2, m=self.m,
                                                    ef_construction=self.efc)))
        self.c = z.create_and_open(self.path, schema)
        for i in range(0, len(X), 1000):
            self.c.insert([z.Doc(id=str(j), vectors={"v": X[j]}, fields={"c": int(cat[j])})
                           for j in range(i, min(i + 1000, len(X)))])
        self.c.optimize(z.OptimizeOption(concurrency=2))

    def prepare(self, m):
        self.filter = f"c < {m}"

    def search(self, q):
        res = self.c.query(self.z.Query("v", vector=q, param=self.param), topk=self.k, filter=self.filter,
                           output_fields=[])
        return [int(d.id) for d in res]

    def close(self):
        del self.c


class Numpy:
    """Exact search over the matching rows, one array per selectivity."""

    name = "numpy"

    def __init__(self, tmp, k, m, efc, ef):
        self.k = k

    def build(self, X, cat):
        self.X, self.cat = X, cat

    def prepare(self, m):
        self.idx = np.flatnonzero(self.cat < m)
        self.Xs = np.ascontiguousarray(self.X[self.idx])
        self.xn = (self.Xs.astype(np.float32) ** 2).sum(1)

    def search(self, q):
        d = self.xn - 2 * (self.Xs @ q)
        k = min(self.k, len(d))
        top = np.argpartition(d, k - 1)[:k] if k < len(d) else np.arange(len(d))
        return self.idx[top[np.argsort(d[top])]].tolist()

    def close(self):
        self.Xs = None


LIBS = [Sextant, Hnswlib, Zvec, Numpy]


def ground_truth(X, Q, cat, m, k):
    """The k-th exact distance (float64) of each query over the rows with c < m."""
    idx = np.flatnonzero(cat < m)
    Xs = X[idx]
    xn = (Xs.astype(np.float64) ** 2).sum(1)
    kth = np.empty(len(Q))
    ids = np.empty((len(Q), k), dtype=np.int64)
    for s in range(0, len(Q), 250):
        Qb = Q[s : s + 250]
        d32 = xn[None, :].astype(np.float32) - 2 * (Qb @ Xs.T)
        c = min(4 * k, Xs.shape[0])
        cand = np.argpartition(d32, c - 1, axis=1)[:, :c] if c < Xs.shape[0] else np.tile(np.arange(c), (len(Qb), 1))
        for r in range(len(Qb)):
            dd = ((Xs[cand[r]].astype(np.float64) - Qb[r].astype(np.float64)) ** 2).sum(1)
            o = np.argsort(dd)[:k]
            kth[s + r] = dd[o[-1]]
            ids[s + r] = idx[cand[r][o]]
    return kth, ids


def recall(X, Q, cat, m, kth, found, k):
    """Tie-aware recall@k over the matching items; also counts hits that fail the filter."""
    hit = bad = 0
    for qi, ids in enumerate(found):
        ids = np.asarray([i for i in ids[:k] if i >= 0], dtype=np.int64)
        if len(ids) == 0:
            continue
        okf = cat[ids] < m
        bad += int((~okf).sum())
        ids = ids[okf]
        d = ((X[ids].astype(np.float64) - Q[qi].astype(np.float64)) ** 2).sum(1)
        hit += int((d <= kth[qi] * (1 + 1e-6) + 1e-6).sum())
    return hit / (len(found) * k), bad


def rotate(xs, r):
    r %= len(xs)
    return xs[r:] + xs[:r]


def machine():
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "load_start": list(os.getloadavg())}


def versions():
    from importlib.metadata import version

    v = {}
    for pkg in ("sextant", "hnswlib", "zvec", "numpy"):
        try:
            v[pkg] = version(pkg)
        except Exception:  # noqa: BLE001 - not installed
            pass
    try:
        v["sextant_commit"] = subprocess.check_output(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                                      text=True).strip()
    except Exception:  # noqa: BLE001
        pass
    return v


def load_data(args):
    train = os.path.join(args.data, "fashion-train.npy")
    test = os.path.join(args.data, "fashion-test.npy")
    if not (os.path.exists(train) and os.path.exists(test)):
        log(f"making {args.data} with tools/fashion_mnist_npy.py")
        subprocess.check_call([sys.executable, os.path.join(ROOT, "tools", "fashion_mnist_npy.py"), args.data])
    X = np.ascontiguousarray(np.load(train)[: args.base], dtype=np.float32)
    Q = np.ascontiguousarray(np.load(test)[: args.queries], dtype=np.float32)
    return X, Q


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="10,000 base rows, 200 queries, 2 repeats")
    ap.add_argument("--data", default=os.path.join(ROOT, "build", "data"))
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--base", type=int, default=60000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--ef", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--libs", default="sextant,hnswlib,zvec,numpy")
    ap.add_argument("--from-json", metavar="JSON", help="only rewrite the .md and the plots from a results .json")
    args = ap.parse_args()
    if args.from_json:
        with open(args.from_json) as f:
            res = json.load(f)
        a = res["args"]
        stem = "filter-peers-quick" if a["quick"] else "filter-peers"
        shape = (a["base"], 784)
        write_markdown(res, os.path.join(args.out, stem + ".md"), shape, a["queries"])
        plots(res, args.out, stem, shape, a["queries"])
        return 0
    if args.quick:
        args.base, args.queries, args.repeats = 10000, 200, 2
    want = args.libs.split(",")
    stem = "filter-peers-quick" if args.quick else "filter-peers"
    os.makedirs(args.out, exist_ok=True)
    info = machine()
    info["command"] = " ".join(["python", os.path.relpath(os.path.abspath(sys.argv[0]), ROOT)] + sys.argv[1:])
    X, Q = load_data(args)
    k = args.k
    cat = np.arange(len(X)) % NCAT
    log(f"data: {X.shape[0]} x {X.shape[1]}, {len(Q)} queries; k={k} M={args.m} efc={args.ef_construction} "
        f"ef={args.ef}; load {info['load_start'][0]:.1f}")
    gt = {}
    for label, m in SELECTIVITIES:
        gt[label] = ground_truth(X, Q, cat, m, k)
    log("ground truth done")
    tmp = tempfile.mkdtemp(prefix="sx-fpeers-")
    res = {"info": info, "versions": versions(), "args": vars(args), "selectivity": [s for s, _ in SELECTIVITIES],
           "build_seconds": {}, "qps": {}, "qps_runs": {}, "recall": {}, "off_filter": {}, "short": {},
           "skipped": {}, "load_per_round": []}
    try:
        libs = []
        for cls in LIBS:
            if cls.name not in want:
                continue
            try:
                lib = cls(tmp, k, args.m, args.ef_construction, args.ef)
                log(f"build {cls.name} ...")
                t0 = time.perf_counter()
                lib.build(X, cat)
                res["build_seconds"][cls.name] = time.perf_counter() - t0
                log(f"  {res['build_seconds'][cls.name]:.1f} s")
            except Exception as e:  # noqa: BLE001 - a peer that cannot run is reported, not fatal
                res["skipped"][cls.name] = f"{type(e).__name__}: {e}"
                log(f"skip {cls.name}: {e}")
                continue
            libs.append(lib)
        names = [lib.name for lib in libs]
        runs = {n: {s: [] for s, _ in SELECTIVITIES} for n in names}
        for n in names:
            res["recall"][n], res["off_filter"][n], res["short"][n] = {}, {}, {}
        for rep in range(args.repeats):
            for si, (label, m) in enumerate(SELECTIVITIES):
                for lib in rotate(libs, rep + si):
                    lib.prepare(m)
                    short0 = getattr(lib, "short", 0)
                    out = []
                    s = lib.search
                    t0 = time.perf_counter()
                    for q in Q:
                        out.append(s(q))
                    dt = time.perf_counter() - t0
                    runs[lib.name][label].append(len(Q) / dt)
                    if rep == 0:
                        rec, bad = recall(X, Q, cat, m, gt[label][0], out, k)
                        res["recall"][lib.name][label] = rec
                        res["off_filter"][lib.name][label] = bad
                        res["short"][lib.name][label] = getattr(lib, "short", 0) - short0
                log(f"round {rep + 1}/{args.repeats} {label}: " + ", ".join(
                    f"{n} {runs[n][label][-1]:.0f} q/s r={res['recall'][n][label]:.4f}" for n in names)
                    + f" (load {os.getloadavg()[0]:.1f})")
            res["load_per_round"].append(list(os.getloadavg()))
        for n in names:
            res["qps"][n] = {s: statistics.median(v) for s, v in runs[n].items()}
            res["qps_runs"][n] = runs[n]
        for lib in libs:
            lib.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res["info"]["load_end"] = list(os.getloadavg())
    with open(os.path.join(args.out, stem + ".json"), "w") as f:
        json.dump(res, f, indent=1)
    write_markdown(res, os.path.join(args.out, stem + ".md"), X.shape, len(Q))
    plots(res, args.out, stem, X.shape, len(Q))
    log(f"wrote {args.out}/{stem}.md, .json, -recall.png, -qps.png")
    return 0


def write_markdown(res, path, shape, nq):
    info, a, v = res["info"], res["args"], res["versions"]
    names = list(res["qps"])
    sels = res["selectivity"]
    L = [f"# Filtered search against selectivity{' (quick)' if a['quick'] else ''}\n",
         f"Command: `{info['command']}`\n",
         f"Data: Fashion-MNIST {shape[0]:,} x {shape[1]} base rows, the first {nq:,} test images as queries; "
         f"item i has category c = i % {NCAT}, the filter c < m matches the same items in every library. "
         f"k = {a['k']}, HNSW M = {a['m']}, ef_construction = {a['ef_construction']}, ef = {a['ef']}; "
         f"one query per call on one thread; QPS is the median of {a['repeats']} interleaved rounds; "
         f"recall@{a['k']} is tie-aware against the exact answer over the matching items.\n",
         f"Machine: {info['cpu']}, {info['cores']} cores shared with other work, Python {info['python']}; "
         f"load average (1/5/15 min) {'/'.join(f'{x:.1f}' for x in info['load_start'])} at the start, "
         f"{'/'.join(f'{x:.1f}' for x in info['load_end'])} at the end: absolute QPS are depressed and noisy, "
         f"compare within the run. Versions: " + ", ".join(f"{k} {x}" for k, x in v.items()) + ".\n"]
    for n, why in res["skipped"].items():
        L.append(f"- {n} skipped: {why}")
    if res["skipped"]:
        L.append("")
    L.append("| match | " + " | ".join(f"{n} recall | {n} QPS" for n in names) + " |")
    L.append("|---|" + "---:|---:|" * len(names))
    for s in sels:
        cells = []
        for n in names:
            r = f"{res['recall'][n][s]:.4f}"
            extra = []
            if res["short"][n].get(s):
                extra.append(f"{res['short'][n][s]} short")
            if res["off_filter"][n].get(s):
                extra.append(f"{res['off_filter'][n][s]} off-filter")
            if extra:
                r += " (" + ", ".join(extra) + ")"
            cells.append(f"{r} | {res['qps'][n][s]:,.0f}")
        L.append(f"| {s} | " + " | ".join(cells) + " |")
    L.append("")
    L.append("\"short\": queries for which the library found fewer than k items (hnswlib raises; counted as no "
             "hits). \"off-filter\": returned items that do not match the filter. Build seconds (not part of the "
             "comparison; builds may use two threads): "
             + ", ".join(f"{n} {t:.0f}" for n, t in res["build_seconds"].items()) + ".")
    L.append("")
    L.append("What each column is: sextant evaluates the filter on each item's stored JSON metadata (no index over "
             "c): its HNSW collection walks the graph through non-matching items at 100 % to 10 % and scans the "
             ""
             "collection below that (its estimate of the share decides): every item's filter evaluated, distances "
             "only to the matching ones. hnswlib calls a Python callable "
             "per visited node and walks only the graph. zvec keeps an inverted index over the INT32 field c, so "
             "its selective cases start from the matching ids. numpy is exact search over a per-selectivity array "
             "prepared beforehand (preparing it is not timed), i.e. a caller who already holds each category's rows "
             "apart: at 1 % and 0.1 % it scans only "
             f"{shape[0] // 100:,} and {shape[0] // 1000:,} rows.")
    L.append("")
    L.append("Per-round QPS (the rounds behind each median):\n")
    L.append("| match | " + " | ".join(names) + " |")
    L.append("|---|" + "---|" * len(names))
    for s in sels:
        L.append(f"| {s} | " + " | ".join(", ".join(f"{x:,.0f}" for x in res["qps_runs"][n][s]) for n in names) + " |")
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n")


def plots(res, out, stem, shape, nq):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib missing: no plots")
        return
    pct = [float(s.rstrip("%")) for s in res["selectivity"]]
    for what, ylabel, fname, logy in [("recall", "recall@10", "recall", False),
                                      ("qps", "queries per second (one thread)", "qps", True)]:
        fig, ax = plt.subplots(figsize=(7, 5))
        for n in res["qps"]:
            ax.plot(pct, [res[what][n][s] for s in res["selectivity"]], marker="o", label=n,
                    linewidth=2.5 if n == "sextant" else 1.3)
        ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel("items matching the filter (%)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"Filtered search, Fashion-MNIST {shape[0]:,} x {shape[1]}, {nq} queries, "
                     f"ef {res['args']['ef']}", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(out, f"{stem}-{fname}.png"), dpi=110)
        plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
