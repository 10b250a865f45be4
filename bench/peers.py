#!/usr/bin/env python3
"""Sextant beside the libraries a user would pick instead, through their Python APIs.

    build/py-venv/bin/python bench/peers.py [--quick] [--out bench/results]

Data: Debian's dataset-fashion-mnist (60,000 x 784 base, the first 2,000 test images
as queries), converted by tools/fashion_mnist_npy.py into --data (made when missing).
Every library gets the same vectors, k = 10, M = 16, ef_construction = 200, and one
thread (OMP/BLAS thread counts are set to 1 before numpy loads; each library's own
thread option is 1). Peers: hnswlib, faiss-cpu (IndexHNSWFlat, IndexFlatL2), usearch,
zvec (each skipped, and said so, when it cannot be imported), numpy for exact search.
Sextant runs through its Python binding (bindings/python), sync=off for the load.

Measured:
  - build: one timed build per library (vectors/s), then bytes per vector of what it
    keeps on disk (Sextant: the database file and its WAL files after a checkpoint;
    the others: their saved index file or directory);
  - HNSW, single query: for each ef of the sweep, every query searched one call at a
    time; QPS is the median over --repeats, the libraries interleaved in an order
    that rotates from repeat to repeat; recall@10 against exact ground truth,
    tie-aware (a hit counts when its true distance is within the k-th true distance);
  - HNSW, batch: the same with all queries in one call (one thread);
  - exact search: Sextant's flat collection, faiss IndexFlatL2 and numpy, single
    query (--exact-single queries) and batch (--exact-batch queries in one call),
    interleaved likewise; one thread.

Writes <out>/peers.md (tables, the command, machine and load), peers.json (every
figure), peers_recall_qps.png (recall against QPS, single and batch) and
peers_build.png (build rate, bytes per vector, exact-search QPS). --quick (10,000
base vectors, 500 queries, a short sweep, 2 repeats) finishes in a couple of minutes
and writes peers-quick.* instead.
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


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def tree_bytes(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for d, _, files in os.walk(path):
        for f in files:
            total += os.path.getsize(os.path.join(d, f))
    return total


# ---- libraries: build(X) once, then search(q) / batch(Q) per ef -----------------


class Sextant:
    name = "sextant"
    quantization = "none"

    def __init__(self, tmp, k, m, efc):
        import sextant

        self.sx, self.k, self.m, self.efc = sextant, k, m, efc
        self.path = os.path.join(tmp, self.name + ".sx")
        self.ef = None

    def build(self, X):
        self.db = self.sx.open(self.path, sync="off", threads=1)
        with self.db.write() as w:
            w.create_collection("c", X.shape[1], index="hnsw", m=self.m, ef_construction=self.efc,
                                quantization=self.quantization)
            ids = [str(i) for i in range(len(X))]
            for i in range(0, len(X), 10000):
                w.upsert("c", ids[i : i + 10000], X[i : i + 10000])
        self.db.checkpoint()
        self.r = self.db.read()

    def disk_bytes(self):
        # The database file; its WAL files (kept up to wal_size_limit, 64 MiB by
        # default, for the next commits) are reported apart.
        self.wal_bytes = sum(os.path.getsize(self.path + s) for s in ("-wal", "-wal2") if os.path.exists(self.path + s))
        return os.path.getsize(self.path)

    def set_ef(self, ef):
        self.ef = ef

    def search(self, q):
        return self.r.search("c", q, self.k, ef=self.ef)

    def batch(self, Q):
        return self.r.search_batch("c", Q, self.k, ef=self.ef)

    @staticmethod
    def ids(res):
        return [int(h.id) for h in res]

    @staticmethod
    def batch_ids(res):
        return res[0].astype(np.int64)

    def close(self):
        self.r.close()
        self.db.close()


class SextantInt8(Sextant):
    """The same collection with int8 codes (walk over codes, exact rerank)."""

    name = "sextant-int8"
    quantization = "int8"


class Hnswlib:
    name = "hnswlib"

    def __init__(self, tmp, k, m, efc):
        import hnswlib

        self.lib, self.k, self.m, self.efc, self.tmp = hnswlib, k, m, efc, tmp

    def build(self, X):
        self.p = self.lib.Index(space="l2", dim=X.shape[1])
        self.p.init_index(max_elements=len(X), M=self.m, ef_construction=self.efc, random_seed=100)
        self.p.set_num_threads(1)
        self.p.add_items(X, np.arange(len(X)), num_threads=1)

    def disk_bytes(self):
        f = os.path.join(self.tmp, "hnswlib.bin")
        self.p.save_index(f)
        return os.path.getsize(f)

    def set_ef(self, ef):
        self.p.set_ef(ef)

    def search(self, q):
        return self.p.knn_query(q, k=self.k, num_threads=1)[0]

    def batch(self, Q):
        return self.p.knn_query(Q, k=self.k, num_threads=1)[0]

    @staticmethod
    def ids(res):
        return res[0].tolist()

    @staticmethod
    def batch_ids(res):
        return res.astype(np.int64)

    def close(self):
        del self.p


class FaissHnsw:
    name = "faiss"

    def __init__(self, tmp, k, m, efc):
        import faiss

        faiss.omp_set_num_threads(1)
        self.f, self.k, self.m, self.efc, self.tmp = faiss, k, m, efc, tmp

    def build(self, X):
        self.idx = self.f.IndexHNSWFlat(X.shape[1], self.m)
        self.idx.hnsw.efConstruction = self.efc
        self.idx.add(X)

    def disk_bytes(self):
        f = os.path.join(self.tmp, "faiss.index")
        self.f.write_index(self.idx, f)
        return os.path.getsize(f)

    def set_ef(self, ef):
        self.idx.hnsw.efSearch = ef

    def search(self, q):
        return self.idx.search(q[None, :], self.k)[1]

    def batch(self, Q):
        return self.idx.search(Q, self.k)[1]

    @staticmethod
    def ids(res):
        return res[0].tolist()

    @staticmethod
    def batch_ids(res):
        return res.astype(np.int64)

    def close(self):
        del self.idx


class Usearch:
    name = "usearch"

    def __init__(self, tmp, k, m, efc):
        from usearch.index import Index

        self.Index, self.k, self.m, self.efc, self.tmp = Index, k, m, efc, tmp

    def build(self, X):
        self.idx = self.Index(ndim=X.shape[1], metric="l2sq", dtype="f32", connectivity=self.m,
                              expansion_add=self.efc)
        self.idx.add(np.arange(len(X)), X, threads=1)

    def disk_bytes(self):
        f = os.path.join(self.tmp, "usearch.bin")
        self.idx.save(f)
        return os.path.getsize(f)

    def set_ef(self, ef):
        self.idx.expansion_search = ef

    def search(self, q):
        return self.idx.search(q, self.k, threads=1)

    def batch(self, Q):
        return self.idx.search(Q, self.k, threads=1)

    @staticmethod
    def ids(res):
        return res.keys.tolist()

    @staticmethod
    def batch_ids(res):
        return np.asarray(res.keys, dtype=np.int64)

    def close(self):
        del self.idx


class Zvec:
    name = "zvec"
    has_batch = False

    def __init__(self, tmp, k, m, efc):
        import zvec

        self.z, self.k, self.m, self.efc = zvec, k, m, efc
        self.path = os.path.join(tmp, "zvec")
        self.param = None

    def build(self, X):
        z = self.z
        schema = z.CollectionSchema(
            name="c",
            vectors=z.VectorSchema("v", z.DataType.VECTOR_FP32, X.shape[1],
                                   z.HnswIndexParam(metric_type=z.MetricType.L2, m=self.m,
                                                    ef_construction=self.efc)))
        self.c = z.create_and_open(self.path, schema)
        for i in range(0, len(X), 1000):
            self.c.insert([z.Doc(id=str(j), vectors={"v": X[j]}) for j in range(i, min(i + 1000, len(X)))])
        self.c.optimize(z.OptimizeOption(concurrency=1))

    def disk_bytes(self):
        self.c.flush()
        return tree_bytes(self.path)

    def set_ef(self, ef):
        self.param = self.z.HnswQueryParam(ef=ef)

    def search(self, q):
        return self.c.query(self.z.Query("v", vector=q, param=self.param), topk=self.k, output_fields=[])

    @staticmethod
    def ids(res):
        return [int(d.id) for d in res]

    def close(self):
        del self.c


HNSW_LIBS = [Sextant, SextantInt8, Hnswlib, FaissHnsw, Usearch, Zvec]


class Exact:
    """Exact search: Sextant's flat collection, Sextant's int8 HNSW collection searched
    with exact=True (its scan reads the 8-bit codes first and measures only the vectors
    whose bound from their code is within the k best: the same hits and distances as
    the flat scan), faiss IndexFlatL2, numpy."""

    def __init__(self, tmp, X, k, libs):
        self.k, self.X = k, X
        self.fns = {}
        if "sextant" in libs or "sextant-int8" in libs:
            import sextant

            self.db = sextant.open(os.path.join(tmp, "flat.sx"), sync="off", threads=1)
            ids = [str(i) for i in range(len(X))]
            todo = [("f", {"index": "flat"})] if "sextant" in libs else []
            if "sextant-int8" in libs:
                todo.append(("q", {"quantization": "int8"}))
            for name, kw in todo:
                with self.db.write() as w:
                    w.create_collection(name, X.shape[1], **kw)
                    for i in range(0, len(X), 10000):
                        w.upsert(name, ids[i : i + 10000], X[i : i + 10000])
            self.db.checkpoint()
            self.r = self.db.read()
            if "sextant" in libs:
                self.fns["sextant"] = (lambda q: self.r.search("f", q, k), lambda Q: self.r.search_batch("f", Q, k))
            if "sextant-int8" in libs:
                self.fns["sextant-int8"] = (lambda q: self.r.search("q", q, k, exact=True),
                                            lambda Q: self.r.search_batch("q", Q, k, exact=True))
        if "faiss" in libs:
            import faiss

            faiss.omp_set_num_threads(1)
            self.flat = faiss.IndexFlatL2(X.shape[1])
            self.flat.add(X)
            self.fns["faiss"] = (lambda q: self.flat.search(q[None, :], k), lambda Q: self.flat.search(Q, k))
        xn = (X.astype(np.float32) ** 2).sum(1)

        def np_one(q):
            d = xn - 2 * (X @ q)
            top = np.argpartition(d, k)[:k]
            return top[np.argsort(d[top])]

        def np_batch(Q):
            d = xn[None, :] - 2 * (Q @ X.T)
            top = np.argpartition(d, k, axis=1)[:, :k]
            return np.take_along_axis(top, np.argsort(np.take_along_axis(d, top, 1), 1), 1)

        self.fns["numpy"] = (np_one, np_batch)

    def close(self):
        if hasattr(self, "r"):
            self.r.close()
            self.db.close()


# ---- measurement -------------------------------------------------------------------


def ground_truth(X, Q, k):
    import faiss

    faiss.omp_set_num_threads(1)
    idx = faiss.IndexFlatL2(X.shape[1])
    idx.add(X)
    D, I = idx.search(Q, k)
    return D, I


def recall(X, Q, gt_d, found, k):
    """Tie-aware recall@k: a hit counts when its true distance is at most the k-th."""
    hit = 0
    for qi, ids in enumerate(found):
        ids = [i for i in list(ids)[:k] if i >= 0]
        if not ids:
            continue
        d = ((X[ids] - Q[qi]) ** 2).sum(1)
        kth = gt_d[qi, k - 1]
        hit += int((d <= kth * (1 + 1e-5) + 1e-3).sum())
    return hit / (len(found) * k)


def timed(fn, arg):
    t0 = time.perf_counter()
    out = fn(arg)
    return time.perf_counter() - t0, out


def run_single(lib, Q):
    out = []
    s = lib.search
    t0 = time.perf_counter()
    for q in Q:
        out.append(s(q))
    return time.perf_counter() - t0, out


def rotate(xs, r):
    if not xs:
        return xs
    r %= len(xs)
    return xs[r:] + xs[:r]


def first_reaching(rows, target):
    for ef, qps, rec in rows:
        if rec >= target:
            return ef, qps, rec
    return None


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
            "load_start": os.getloadavg()[0]}


def versions(names):
    v = {}
    for mod, name in [("sextant", "sextant"), ("hnswlib", "hnswlib"), ("faiss", "faiss"), ("usearch", "usearch"),
                      ("zvec", "zvec"), ("numpy", "numpy")]:
        try:
            m = __import__(mod)
            v[name] = getattr(m, "__version__", "?")
        except Exception:  # noqa: BLE001 - a peer that does not import is reported, not fatal
            pass
    try:
        from importlib.metadata import version

        for pkg, name in [("hnswlib", "hnswlib"), ("faiss-cpu", "faiss"), ("usearch", "usearch"), ("zvec", "zvec")]:
            try:
                v[name] = version(pkg)
            except Exception:  # noqa: BLE001
                pass
    except ImportError:
        pass
    try:
        import sextant

        v["sextant"] = sextant.version() if hasattr(sextant, "version") else v.get("sextant", "?")
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
    ap.add_argument("--quick", action="store_true", help="10,000 base, 500 queries, short sweep, 2 repeats")
    ap.add_argument("--data", default=os.path.join(ROOT, "build", "data"))
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--base", type=int, default=60000)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--efs", default="10,16,24,32,48,64,96,128,192,256")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--exact-single", type=int, default=50, help="queries timed one by one, exact search")
    ap.add_argument("--exact-batch", type=int, default=500, help="queries in one exact batch call")
    ap.add_argument("--libs", default="sextant,sextant-int8,hnswlib,faiss,usearch,zvec")
    ap.add_argument("--only-exact", action="store_true", help="skip the HNSW part")
    ap.add_argument("--exact-dims", default="",
                    help="instead of everything else: exact search only, on random normal vectors of these "
                         "dimensions (e.g. 96,128,384,768,1536), --exact-mb of them each; writes peers-exact-dims.*")
    ap.add_argument("--exact-mb", type=int, default=100, help="megabytes of vectors per dimension (--exact-dims)")
    args = ap.parse_args()
    if args.quick:
        args.base, args.queries, args.efs, args.repeats = 10000, 500, "10,16,32,64,128", 2
        args.exact_single, args.exact_batch = 30, 200
    want = args.libs.split(",")
    if args.exact_dims:
        return exact_dims(args, want)
    efs = [int(x) for x in args.efs.split(",")]
    stem = "peers-quick" if args.quick else "peers"
    os.makedirs(args.out, exist_ok=True)
    info = machine()
    info["command"] = " ".join(["python", os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])
    X, Q = load_data(args)
    k = args.k
    log(f"data: {X.shape[0]} x {X.shape[1]} base, {len(Q)} queries; k={k} M={args.m} efc={args.ef_construction}")
    gt_d, _ = ground_truth(X, Q, k)
    tmp = tempfile.mkdtemp(prefix="sx-peers-")
    res = {"info": info, "versions": versions(want), "args": vars(args), "build": {}, "single": {}, "batch": {},
           "exact": {}, "skipped": {}}
    try:
        libs = []
        for cls in HNSW_LIBS:
            if cls.name not in want or args.only_exact:
                continue
            try:
                lib = cls(tmp, k, args.m, args.ef_construction)
            except Exception as e:  # noqa: BLE001 - a peer missing here is reported, not fatal
                res["skipped"][cls.name] = f"{type(e).__name__}: {e}"
                log(f"skip {cls.name}: {e}")
                continue
            gc.collect()
            log(f"build {cls.name} ...")
            t0 = time.perf_counter()
            try:
                lib.build(X)
            except Exception as e:  # noqa: BLE001
                res["skipped"][cls.name] = f"build failed: {type(e).__name__}: {e}"
                log(f"skip {cls.name}: build failed: {e}")
                continue
            dt = time.perf_counter() - t0
            nbytes = lib.disk_bytes()
            res["build"][cls.name] = {"seconds": dt, "vectors_per_s": len(X) / dt, "bytes_per_vector": nbytes / len(X)}
            if hasattr(lib, "wal_bytes"):
                res["build"][cls.name]["wal_bytes"] = lib.wal_bytes
            log(f"  {dt:.1f} s, {len(X) / dt:.0f} vectors/s, {nbytes / len(X):.0f} bytes/vector")
            libs.append(lib)
        names = [lib.name for lib in libs]
        single = {n: {ef: [] for ef in efs} for n in names}
        batch = {lib.name: {ef: [] for ef in efs} for lib in libs if getattr(lib, "has_batch", True)}
        rec_s = {n: {} for n in names}
        rec_b = {n: {} for n in batch}
        for rep in range(args.repeats if libs else 0):
            for ef in efs:
                for lib in rotate(libs, rep + ef):
                    lib.set_ef(ef)
                    dt, out = run_single(lib, Q)
                    single[lib.name][ef].append(len(Q) / dt)
                    if rep == 0:
                        rec_s[lib.name][ef] = recall(X, Q, gt_d, [lib.ids(o) for o in out], k)
                    if lib.name in batch:
                        dt, out = timed(lib.batch, Q)
                        batch[lib.name][ef].append(len(Q) / dt)
                        if rep == 0:
                            rec_b[lib.name][ef] = recall(X, Q, gt_d, lib.batch_ids(out), k)
                log(f"repeat {rep + 1}/{args.repeats} ef {ef}: " + ", ".join(
                    f"{n} {statistics.median(single[n][ef]):.0f} q/s r={rec_s[n][ef]:.4f}" for n in names))
        for n in names:
            res["single"][n] = [[ef, statistics.median(single[n][ef]), rec_s[n][ef]] for ef in efs]
        for n in batch:
            res["batch"][n] = [[ef, statistics.median(batch[n][ef]), rec_b[n][ef]] for ef in efs]
        for lib in libs:
            lib.close()
        libs = None
        gc.collect()

        # Exact search.
        log("exact search ...")
        res["exact"] = exact_search(X, Q[: args.exact_single], Q[: args.exact_batch], k, want,
                                    max(args.repeats, 3), tmp)
        for n, e in res["exact"].items():
            log(f"  {n}: single {e['single_qps']:.1f} q/s ({e['single_gbps']:.1f} GB/s), batch {e['batch_qps']:.1f} q/s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res["info"]["load_end"] = os.getloadavg()[0]
    with open(os.path.join(args.out, stem + ".json"), "w") as f:
        json.dump(res, f, indent=1)
    write_markdown(res, os.path.join(args.out, stem + ".md"), X.shape, len(Q))
    plots(res, args.out, stem)
    log(f"wrote {args.out}/{stem}.md, .json, _recall_qps.png, _build.png")
    return 0


def exact_search(X, Q1, QB, k, want, repeats, tmp):
    """Median single-query and batch QPS of each exact searcher, interleaved."""
    ex = Exact(tmp, X, k, want)
    e1 = {n: [] for n in ex.fns}
    eb = {n: [] for n in ex.fns}
    order = list(ex.fns)
    for rep in range(repeats):
        for n in rotate(order, rep):
            one, many = ex.fns[n]
            t0 = time.perf_counter()
            for q in Q1:
                one(q)
            e1[n].append(len(Q1) / (time.perf_counter() - t0))
            dt, _ = timed(many, QB)
            eb[n].append(len(QB) / dt)
    ex.close()
    gb = X.nbytes / 1e9
    out = {}
    for n in order:
        s1, sb = statistics.median(e1[n]), statistics.median(eb[n])
        out[n] = {"single_qps": s1, "single_gbps": s1 * gb, "batch_qps": sb}
    return out


def exact_dims(args, want):
    info = machine()
    info["command"] = " ".join(["python", os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])
    rng = np.random.default_rng(1)
    rows = []
    for d in [int(x) for x in args.exact_dims.split(",")]:
        n = args.exact_mb * 1_000_000 // (4 * d)
        X = rng.standard_normal((n, d), dtype=np.float32)
        Q = rng.standard_normal((max(args.exact_single, args.exact_batch), d), dtype=np.float32)
        tmp = tempfile.mkdtemp(prefix="sx-peers-")
        try:
            r = exact_search(X, Q[: args.exact_single], Q[: args.exact_batch], args.k, want, max(args.repeats, 3), tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        log(f"dim {d} (n {n}): " + ", ".join(f"{k} {v['single_qps']:.1f} / {v['batch_qps']:.1f} q/s" for k, v in r.items()))
        rows.append((d, n, r))
        del X
        gc.collect()
    info["load_end"] = os.getloadavg()[0]
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "peers-exact-dims.json"), "w") as f:
        json.dump({"info": info, "rows": rows}, f, indent=1)
    names = list(rows[0][2])
    L = ["# Exact search across dimensions\n", f"Command: `{info['command']}`\n",
         f"Random normal vectors, {args.exact_mb} MB per dimension, k = {args.k}, one thread; single: "
         f"{args.exact_single} queries one by one, batch: {args.exact_batch} queries in one call; medians of "
         f"{max(args.repeats, 3)} interleaved repeats. Machine: {info['cpu']}, {info['cores']} cores, load "
         f"{info['load_start']:.1f} -> {info['load_end']:.1f}.\n",
         ]
    ratios = [x for x in ("sextant", "sextant-int8") if x in names and "faiss" in names]
    L.append("| dim | n | " + " | ".join(f"{n} single QPS (GB/s)" for n in names) + " | " +
             " | ".join(f"{n} batch QPS" for n in names) + " | " +
             "".join(f"{x}/faiss single | {x}/faiss batch | " for x in ratios))
    L.append("|---:|---:|" + "---:|" * (2 * len(names) + 2 * len(ratios)))
    for d, n, r in rows:
        cells = [f"{r[x]['single_qps']:,.1f} ({r[x]['single_gbps']:.1f})" for x in names]
        cells += [f"{r[x]['batch_qps']:,.1f}" for x in names]
        for x in ratios:
            cells += [f"{r[x]['single_qps'] / r['faiss']['single_qps']:.2f}x",
                      f"{r[x]['batch_qps'] / r['faiss']['batch_qps']:.2f}x"]
        L.append(f"| {d} | {n:,} | " + " | ".join(cells) + " |")
    with open(os.path.join(args.out, "peers-exact-dims.md"), "w") as f:
        f.write("\n".join(L) + "\n")
    log(f"wrote {args.out}/peers-exact-dims.md")
    return 0


def write_markdown(res, path, shape, nq):
    info, a = res["info"], res["args"]
    names = list(res["build"])
    L = []
    L.append(f"# Peer benchmark{' (quick)' if a['quick'] else ''}\n")
    L.append(f"Command: `{info['command']}`\n")
    L.append(f"Data: Fashion-MNIST {shape[0]:,} x {shape[1]} base, {nq:,} queries; k = {a['k']}, M = {a['m']}, "
             f"ef_construction = {a['ef_construction']}; one thread everywhere; medians of {a['repeats']} "
             f"interleaved repeats (QPS), recall@{a['k']} tie-aware.\n")
    L.append(f"Machine: {info['cpu']}, {info['cores']} cores, Python {info['python']}; load average "
             f"{info['load_start']:.1f} at the start, {info['load_end']:.1f} at the end (the machine is shared: "
             f"compare within this run). Versions: " + ", ".join(f"{k} {v}" for k, v in res["versions"].items()) + ".\n")
    for n, why in res["skipped"].items():
        L.append(f"- {n} skipped: {why}")
    if res["skipped"]:
        L.append("")
    L.append("## Summary\n")
    L.append("| | " + " | ".join(names) + " |")
    L.append("|---|" + "---:|" * len(names))
    for label, table, target in [("single-query QPS at recall 0.95", "single", 0.95),
                                 ("single-query QPS at recall 0.99", "single", 0.99),
                                 ("batch QPS at recall 0.95", "batch", 0.95),
                                 ("batch QPS at recall 0.99", "batch", 0.99)]:
        cells = []
        for n in names:
            rows = res[table].get(n)
            hit = first_reaching(rows, target) if rows else None
            cells.append("—" if hit is None else f"{hit[1]:,.0f} (ef {hit[0]}, {hit[2]:.4f})")
        L.append(f"| {label} | " + " | ".join(cells) + " |")
    L.append("| build, vectors/s | " + " | ".join(f"{res['build'][n]['vectors_per_s']:,.0f}" for n in names) + " |")
    L.append("| on disk, bytes/vector | " + " | ".join(f"{res['build'][n]['bytes_per_vector']:,.0f}" for n in names) + " |")
    L.append("")
    L.append("QPS at a recall is that of the smallest ef of the sweep reaching it (ef, recall in brackets).")
    for n in [x for x in ("sextant", "sextant-int8") if x in res["single"]]:
        ratios = []
        for target in (0.95, 0.99):
            mine = first_reaching(res["single"][n], target)
            best = max([first_reaching(res["single"][p], target) or [0, 0, 0] for p in ("hnswlib", "faiss")
                        if p in res["single"]] or [[0, 0, 0]], key=lambda r: r[1])
            if mine and best[1]:
                ratios.append(f"{mine[1] / best[1]:.2f}x at {target}")
        if ratios:
            L.append(f"{n} single query against the best of hnswlib and faiss: " + ", ".join(ratios) + ".")
    if "sextant-int8" in res["build"]:
        L.append("sextant-int8 keeps an 8-bit code per vector (dim + 16 bytes) beside the float32 vector, in the "
                 "same file: the walk measures codes, the ef candidates it keeps are measured again exactly.")
    if "sextant" in res["build"] and "wal_bytes" in res["build"]["sextant"]:
        L.append(f"Sextant's bytes are its database file; beside it, its WAL files held "
                 f"{res['build']['sextant']['wal_bytes'] / 1e6:.1f} MB after the checkpoint (kept up to "
                 f"wal_size_limit, 64 MiB by default, for the next commits).")
    L.append("")
    L.append("## Exact search (one thread)\n")
    L.append("| | single query, QPS | single query, GB/s scanned | batch QPS |")
    L.append("|---|---:|---:|---:|")
    for n, e in res["exact"].items():
        L.append(f"| {n} | {e['single_qps']:,.1f} | {e['single_gbps']:.1f} | {e['batch_qps']:,.1f} |")
    for sn, what in [("sextant", "flat collection"), ("sextant-int8", "int8 collection, exact=True")]:
        if sn in res["exact"] and "faiss" in res["exact"]:
            s, f = res["exact"][sn], res["exact"]["faiss"]
            L.append(f"\nSextant ({what}) / faiss IndexFlatL2: single query {s['single_qps'] / f['single_qps']:.2f}x, "
                     f"batch {s['batch_qps'] / f['batch_qps']:.2f}x.")
    if "sextant-int8" in res["exact"]:
        L.append("\nThe int8 collection's exact scan reads each vector's 8-bit code first and measures the "
                 "float32 vector only where the code's bound could place it among the k best; the GB/s column "
                 "divides the float32 bytes by the time, as for the others.")
    L.append(f"Single: {a['exact_single']} queries one by one; batch: {a['exact_batch']} queries in one call.\n")
    for table, title in [("single", "HNSW sweep, single query"), ("batch", "HNSW sweep, batch (all queries in one call)")]:
        bn = list(res[table])
        if not bn:
            continue
        L.append(f"## {title}\n")
        L.append("| ef | " + " | ".join(f"{n} QPS | recall" for n in bn) + " |")
        L.append("|---:|" + "---:|---:|" * len(bn))
        for i, ef in enumerate(res[table][bn[0]]):
            cells = []
            for n in bn:
                _, qps, rec = res[table][n][i]
                cells.append(f"{qps:,.0f} | {rec:.4f}")
            L.append(f"| {ef[0]} | " + " | ".join(cells) + " |")
        L.append("")
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n")


def plots(res, out, stem):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib missing: no plots")
        return
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for ax, table, title in [(axes[0], "single", "single query"), (axes[1], "batch", "batch (one call)")]:
        for n, rows in res[table].items():
            ax.plot([r[2] for r in rows], [r[1] for r in rows], marker="o", label=n,
                    linewidth=2.5 if n.startswith("sextant") else 1.2)
        ax.set_xlabel("recall@10")
        ax.set_ylabel("queries per second (one thread)")
        ax.set_yscale("log")
        ax.set_title(f"Fashion-MNIST, HNSW M=16 efc=200: {title}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, stem + "_recall_qps.png"), dpi=110)
    plt.close(fig)
    names = list(res["build"])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    axes[0].bar(names, [res["build"][n]["vectors_per_s"] for n in names], color="tab:blue")
    axes[0].set_title("HNSW build, vectors/s (one thread)")
    axes[1].bar(names, [res["build"][n]["bytes_per_vector"] for n in names], color="tab:orange")
    axes[1].set_title("on disk, bytes per vector")
    en = list(res["exact"])
    x = np.arange(len(en))
    axes[2].bar(x - 0.2, [res["exact"][n]["single_qps"] for n in en], 0.4, label="single query")
    axes[2].bar(x + 0.2, [res["exact"][n]["batch_qps"] for n in en], 0.4, label="batch")
    axes[2].set_xticks(x, en)
    axes[2].set_yscale("log")
    axes[2].set_title("exact search, QPS (one thread)")
    axes[2].legend()
    for ax in axes:
        ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(out, stem + "_build.png"), dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
