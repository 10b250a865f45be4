#!/usr/bin/env python3
"""A hostile run against Sextant through its Python binding.

Feeds Sextant what a careless user or a bad disk produces and checks its promise:
any bad input or damaged file gives a clear error (a sextant.Error subclass, or a
plain TypeError/ValueError for wrong Python types, with a message naming the
offending value), never a crash, a hang, a silent wrong result, a silent rollback
of committed data, or data loss.

Every probe runs in a fresh temporary directory, in a forked child process (its own
process group) with a timeout, and is classified as one of:

  ok           a clear error, or a result equal to what a small Python reference
               model says (exact flat search, the committed records, ...)
  crash        the child died of a signal (or exited without a verdict)
  hang         the child did not finish within --timeout seconds
  wrong        a result that differs from the reference model, without an error
  rollback     committed data missing (an earlier committed state) without an error
  wrong-error  an exception that is not sextant.Error/TypeError/ValueError, or an
               error message that does not name the offending value

Probe families (chosen at random, weighted, from --seed):
  api.*     misuse of the API: dimensions, NaN/inf and overflowing floats, k values,
            ids, metadata, names and options, closed handles and ended sessions,
            nested sessions, two writers, cancel/progress hooks that end sessions or
            drop collections, a random operation sequence (flat, HNSW, HNSW+int8,
            filters) checked against a model, links to the file, FIFOs
  damage.*  a database with committed data (flat, HNSW and int8 collections with
            metadata), closed cleanly or left with its WAL by os._exit, then damaged
            (byte flips, zeroed pages, truncation, another database's -wal, swapped
            pages, appended garbage) in P, P-wal or P-wal2, then opened, checked,
            listed, described, counted, every id read and searched
  limit.*   RLIMIT_FSIZE and RLIMIT_NOFILE in the child during commits and opens
  kill.*    kill -9 of a writer mid-commit, then every acknowledged commit checked

Run it with the binding built by `bash tools/test.sh python`:

    build/py-venv/bin/python tools/hostile.py                 # --seed 1 --probes 600
    build/py-venv/bin/python tools/hostile.py --seed 7 --probes 1500 --timeout 30
    build/py-venv/bin/python tools/hostile.py --only damage.flip --probes 50 -v

It prints one line per finding (probe number, family, category, detail) and a count
per category; it exits 1 when anything but "ok" was seen. The same --seed and
--probes give the same probes (the kill and hook probes depend on timing, so their
exact interleavings vary). --keep DIR keeps each finding's directory for replay.
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import os
import pickle
import random
import resource
import select
import shutil
import signal
import stat
import sys
import tempfile
import threading
import time
import traceback
import types
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

import sextant

CATEGORIES = ["ok", "crash", "hang", "wrong", "rollback", "wrong-error"]
CLEAR = (sextant.Error, TypeError, ValueError)
DAMAGE_OK = (sextant.Corrupt, sextant.IoError, sextant.Version)


class Finding(Exception):
    def __init__(self, cat: str, detail: str) -> None:
        super().__init__(detail)
        self.cat = cat
        self.detail = detail


# ---- helpers used inside probes --------------------------------------------------------


def errname(e: BaseException) -> str:
    return f"{type(e).__name__}({str(e)[:200]!r})"


def must_fail(what: str, fn: Callable[[], Any], names: Tuple[str, ...] = (), allowed: Tuple[type, ...] = CLEAR) -> BaseException:
    """fn must raise a clear error whose message names one of names (when given)."""
    try:
        got = fn()
    except allowed as e:
        msg = str(e)
        if names and not any(n in msg for n in names):
            raise Finding("wrong-error", f"{what}: {errname(e)} does not name any of {names}")
        return e
    except RecursionError as e:
        raise Finding("wrong-error", f"{what}: RecursionError {e}")
    except BaseException as e:  # noqa: BLE001
        raise Finding("wrong-error", f"{what}: {errname(e)} is not sextant.Error/TypeError/ValueError")
    raise Finding("wrong", f"{what}: accepted, returned {str(got)[:200]}")


def may_fail(what: str, fn: Callable[[], Any], allowed: Tuple[type, ...] = CLEAR) -> Tuple[bool, Any]:
    """(True, result) or (False, exception) for a clear error; anything else is a finding."""
    try:
        return True, fn()
    except allowed as e:
        return False, e
    except BaseException as e:  # noqa: BLE001
        raise Finding("wrong-error", f"{what}: {errname(e)} is not sextant.Error/TypeError/ValueError")


def ref_dist(metric: str, q: np.ndarray, v: np.ndarray) -> float:
    q64 = q.astype(np.float64)
    v64 = v.astype(np.float64)
    if metric == "l2":
        return float(np.sum((q64 - v64) ** 2))
    dot = float(np.dot(q64, v64))
    if metric == "ip":
        return 1.0 - dot
    return 1.0 - dot / (float(np.linalg.norm(q64)) * float(np.linalg.norm(v64)))


def dist_tol(metric: str, q: np.ndarray, v: np.ndarray, ref: float) -> float:
    q64 = q.astype(np.float64)
    v64 = v.astype(np.float64)
    if metric == "l2":
        scale = float(np.dot(q64, q64) + np.dot(v64, v64))
    elif metric == "ip":
        scale = float(np.linalg.norm(q64) * np.linalg.norm(v64))
    else:
        scale = 1.0
    return 1e-4 * (1.0 + abs(ref) + scale)


def check_hits(what: str, metric: str, data: Dict[str, Tuple[np.ndarray, Any]], q: np.ndarray, k: int, hits: List[Any], exact: bool, allowed: Optional[set] = None) -> None:
    """hits from search(q, k) over data (id -> (vector, metadata)); allowed: the ids a
    filter lets through (None: all). exact: no closer item may be missing."""
    ids = [i for i in data if allowed is None or i in allowed]
    want_n = min(k, len(ids))
    if len(hits) != want_n:
        raise Finding("wrong", f"{what}: {len(hits)} hits, want {want_n} (k={k}, {len(ids)} candidates)")
    seen = set()
    prev = None
    for h in hits:
        hid, d = h[0], h[1]
        if hid not in data or (allowed is not None and hid not in allowed):
            raise Finding("wrong", f"{what}: hit {hid!r} is not a live (matching) id")
        if hid in seen:
            raise Finding("wrong", f"{what}: hit {hid!r} twice")
        seen.add(hid)
        if not isinstance(d, float) or math.isnan(d):
            raise Finding("wrong", f"{what}: hit {hid!r} distance {d!r}")
        r = ref_dist(metric, q, data[hid][0])
        if abs(r) > 3.4e38:
            if not math.isinf(d) and abs(d) < 3.4e38:
                raise Finding("wrong", f"{what}: hit {hid!r} distance {d} vs reference {r}")
        elif abs(d - r) > dist_tol(metric, q, data[hid][0], r):
            raise Finding("wrong", f"{what}: hit {hid!r} distance {d} vs reference {r}")
        if prev is not None and (d, hid.encode()) < prev:
            raise Finding("wrong", f"{what}: hits not ordered by (distance, id) at {hid!r}")
        prev = (d, hid.encode())
    if exact and hits:
        last = hits[-1][1]
        for i in ids:
            if i in seen:
                continue
            r = ref_dist(metric, q, data[i][0])
            if r < last - dist_tol(metric, q, data[i][0], r):
                raise Finding("wrong", f"{what}: {i!r} at reference distance {r} missing (last hit at {last})")


def same_vec(a: np.ndarray, b: np.ndarray) -> bool:
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    return a.shape == b.shape and a.tobytes() == b.tobytes()


def rt(meta: Any) -> Any:
    """The metadata get() should give back: Python's own JSON round trip."""
    return None if meta is None else json.loads(json.dumps(meta, default=dict))


# ---- a reference filter evaluator (sextant.h, section Filters) -------------------------

_MISSING = object()


def _path(meta: Any, path: str) -> Any:
    cur = meta
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return _MISSING
        cur = cur[part]
    return cur


def _seq(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    return False


def _scmp(a: Any, b: Any, op: str) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return False
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        x, y = float(a), float(b)
    elif isinstance(a, str) and isinstance(b, str):
        x, y = a.encode(), b.encode()  # type: ignore[assignment]
    else:
        return False
    return {"$gt": x > y, "$gte": x >= y, "$lt": x < y, "$lte": x <= y}[op]


def _any(v: Any, pred: Callable[[Any], bool]) -> bool:
    if isinstance(v, list):
        return any(pred(e) for e in v if not isinstance(e, (list, dict)))
    if isinstance(v, dict):
        return False
    return pred(v)


def fmatch(f: Dict[str, Any], meta: Any) -> bool:
    for key, cond in f.items():
        if key == "$and":
            if not all(fmatch(g, meta) for g in cond):
                return False
            continue
        if key == "$or":
            if not any(fmatch(g, meta) for g in cond):
                return False
            continue
        if key == "$not":
            if fmatch(cond, meta):
                return False
            continue
        v = _path(meta, key) if meta is not None else _MISSING
        ops = cond if isinstance(cond, dict) else {"$eq": cond}
        for op, arg in ops.items():
            if op == "$exists":
                ok = (v is not _MISSING) == bool(arg)
            elif v is _MISSING:
                ok = op in ("$ne", "$nin")
            elif op == "$eq":
                ok = _any(v, lambda e: _seq(e, arg))
            elif op == "$ne":
                ok = not _any(v, lambda e: _seq(e, arg))
            elif op == "$in":
                ok = _any(v, lambda e: any(_seq(e, a) for a in arg))
            elif op == "$nin":
                ok = not _any(v, lambda e: any(_seq(e, a) for a in arg))
            else:
                ok = _any(v, lambda e: _scmp(e, arg, op))
            if not ok:
                return False
    return True


def rand_meta(rng: random.Random) -> Any:
    if rng.random() < 0.15:
        return None
    m: Dict[str, Any] = {}
    if rng.random() < 0.8:
        m["a"] = rng.choice([0, 1, 2, 3, 2.5, -1, 10**20])
    if rng.random() < 0.8:
        m["b"] = rng.choice(["x", "y", "z", "é", ""])
    if rng.random() < 0.5:
        m["c"] = rng.choice([True, False, None, 1, "1"])
    if rng.random() < 0.4:
        m["d"] = [rng.choice([1, 2, "x", True, None]) for _ in range(rng.randrange(0, 4))]
    if rng.random() < 0.4:
        m["n"] = {"x": rng.choice([1, 2, "x"])}
    return m


def rand_filter(rng: random.Random, depth: int = 0) -> Dict[str, Any]:
    r = rng.random()
    if depth < 2 and r < 0.2:
        op = rng.choice(["$and", "$or"])
        return {op: [rand_filter(rng, depth + 1) for _ in range(rng.randrange(1, 3))]}
    if depth < 2 and r < 0.27:
        return {"$not": rand_filter(rng, depth + 1)}
    field = rng.choice(["a", "b", "c", "d", "n.x", "zz"])
    scal = lambda: rng.choice([0, 1, 2, 2.5, 3, "x", "y", "é", True, False, None, ""])  # noqa: E731
    op = rng.choice(["=", "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists"])
    if op == "=":
        return {field: scal()}
    if op in ("$in", "$nin"):
        return {field: {op: [scal() for _ in range(rng.randrange(1, 4))]}}
    if op == "$exists":
        return {field: {op: rng.random() < 0.5}}
    if op in ("$gt", "$gte", "$lt", "$lte"):
        return {field: {op: rng.choice([0, 1, 2.5, "x", "y"])}}
    return {field: {op: scal()}}


# ---- API probes ------------------------------------------------------------------------


def small_db(tmp: str, rng: random.Random, index: str = "flat", metric: str = "l2", dim: int = 8, n: int = 20, quant: str = "none", m: int = 8) -> Tuple[sextant.Database, Dict[str, Tuple[np.ndarray, Any]]]:
    db = sextant.open(os.path.join(tmp, "db.sx"))
    data: Dict[str, Tuple[np.ndarray, Any]] = {}
    vecs = np.array([[rng.uniform(-1, 1) for _ in range(dim)] for _ in range(n)], dtype=np.float32)
    ids = [f"id{i}" for i in range(n)]
    metas = [rand_meta(rng) for _ in range(n)]
    with db.write() as w:
        if index == "flat":
            w.create_collection("c", dim=dim, metric=metric, index="flat")
        else:
            w.create_collection("c", dim=dim, metric=metric, index="hnsw", m=m, ef_construction=64, quantization=quant)
        w.upsert("c", ids, vecs, metas)
    for i, v, mm in zip(ids, vecs, metas):
        data[i] = (v.copy(), rt(mm))
    return db, data


def verify(db: sextant.Database, data: Dict[str, Tuple[np.ndarray, Any]], what: str, coll: str = "c") -> None:
    """The committed data is all there, unchanged."""
    with db.read() as r:
        n = r.count(coll)
        if n != len(data):
            raise Finding("rollback" if n < len(data) else "wrong", f"{what}: count {n}, committed {len(data)}")
        for i, (v, mm) in data.items():
            try:
                rec = r.get(coll, i)
            except sextant.NotFound:
                # A Finding, not the exception: a caller that tries several states
                # (kill.writer) goes on to the next. Two states of equal count can
                # differ in their ids (a batch of one upsert and one delete).
                raise Finding("wrong", f"{what}: {i!r} is missing (count {n} as committed)") from None
            if not same_vec(rec.vector, v) or rec.metadata != mm:
                raise Finding("wrong", f"{what}: {i!r} reads {rec.vector[:4]}.. {rec.metadata} not {v[:4]}.. {mm}")
    db.check()


def api_dims(tmp: str, rng: random.Random) -> None:
    dim = rng.choice([1, 3, 8, 17])
    db, data = small_db(tmp, rng, index=rng.choice(["flat", "hnsw"]), dim=dim, n=10)
    bad: List[Tuple[str, Any, Tuple[type, ...]]] = [
        ("short", [0.5] * (dim + 1 if dim == 1 else dim - 1), CLEAR),
        ("long", [0.5] * (dim + 1), CLEAR),
        ("empty", [], CLEAR),
        ("3-D", np.zeros((1, 1, dim), np.float32), CLEAR),
        ("ragged", [[0.1] * dim, [0.1] * (dim + 1)], CLEAR),
        ("None", None, CLEAR),
        ("str", "abc", CLEAR),
        ("dict", {"a": 1}, CLEAR),
        ("objects", [object()] * dim, CLEAR),
        ("complex", [1j] * dim, CLEAR),
        ("f64 wrong", np.zeros(dim + 2), CLEAR),
        ("strided", np.zeros((2, dim * 2), np.float32)[:, ::2][:1, : dim - 1] if dim > 1 else np.zeros((1, 3), np.float32)[:, ::2], CLEAR),
    ]
    for name, vec, allowed in rng.sample(bad, 5):
        with db.write() as w:
            must_fail(f"upsert {name}", lambda: w.upsert("c", ["x"], vec), allowed=allowed)
            w.abort()
        with db.read() as r:
            must_fail(f"search {name}", lambda: r.search("c", vec, k=3), allowed=allowed)
            if name not in ("3-D",):
                must_fail(f"search_batch {name}", lambda: r.search_batch("c", vec if name != "empty" else [[]], k=3), allowed=allowed)
    # ids / vectors count mismatch
    with db.write() as w:
        must_fail("2 ids 1 vector", lambda: w.upsert("c", ["p", "q"], [[0.1] * dim]))
        must_fail("1 id 2 vectors", lambda: w.upsert("c", ["p"], [[0.1] * dim, [0.2] * dim]))
        must_fail("metadata count", lambda: w.upsert("c", ["p", "q"], [[0.1] * dim] * 2, [None]))
        w.abort()
    verify(db, data, "after bad dimensions")


def api_floats(tmp: str, rng: random.Random) -> None:
    metric = rng.choice(["l2", "ip", "cosine"])
    index = rng.choice(["flat", "hnsw", "int8"])
    dim = rng.choice([2, 8])
    db = sextant.open(os.path.join(tmp, "db.sx"))
    with db.write() as w:
        if index == "flat":
            w.create_collection("c", dim=dim, metric=metric, index="flat")
        else:
            w.create_collection("c", dim=dim, metric=metric, index="hnsw", m=8, quantization="int8" if index == "int8" else "none")
    specials = [float("nan"), float("inf"), -float("inf"), 3e38, -3e38, 1e38, 1e-45, 1e-40, 0.0, 1.0, -1.0, 2e19, 1e-20, 3.4028235e38]
    data: Dict[str, Tuple[np.ndarray, Any]] = {}
    vectors: List[np.ndarray] = []
    for t in range(8):
        kind = rng.random()
        if kind < 0.3:
            v = np.array([rng.choice(specials)] * dim, np.float32)
        elif kind < 0.6:
            v = np.array([rng.choice(specials) for _ in range(dim)], np.float32)
        else:
            v = np.array([rng.uniform(-1, 1) for _ in range(dim)], np.float32)
        if t == 0:
            v = np.array([3e38, -3e38] * (dim // 2), np.float32)
        vectors.append(v)
    with np.errstate(all="ignore"):
        for t, v in enumerate(vectors):
            ok, got = None, None
            with db.write() as w:
                ok, got = may_fail(f"upsert {v.tolist()}", lambda: w.upsert("c", f"v{t}", v))
            if ok:
                # accepted: it must be finite and (cosine) nonzero, (ip/cosine) its norm representable
                if not np.all(np.isfinite(v)):
                    raise Finding("wrong", f"{metric}/{index}: non-finite vector {v.tolist()} accepted")
                data[f"v{t}"] = (v.copy(), None)
            else:
                if not isinstance(got, (sextant.InvalidArgument,)):
                    raise Finding("wrong-error", f"upsert {v.tolist()}: {errname(got)}")
        queries = vectors + [np.array([rng.uniform(-1, 1) for _ in range(dim)], np.float32)]
        with db.read() as r:
            for q in queries:
                ok, got = may_fail(f"search {q.tolist()}", lambda: r.search("c", q, k=len(data) + 1, ef=100))
                if not ok:
                    if not isinstance(got, sextant.InvalidArgument):
                        raise Finding("wrong-error", f"search {q.tolist()}: {errname(got)}")
                    if np.all(np.isfinite(q)) and (metric != "cosine" or np.any(q != 0)) and float(np.dot(q.astype(np.float64), q)) <= 1.7e38 and (metric != "cosine" or float(np.dot(q.astype(np.float64), q)) >= 2.0**-133):
                        raise Finding("wrong", f"{metric}/{index}: valid query {q.tolist()} refused: {got}")
                    continue
                if not np.all(np.isfinite(q)):
                    raise Finding("wrong", f"{metric}/{index}: non-finite query {q.tolist()} accepted")
                for h in got:
                    if math.isnan(h.distance):
                        raise Finding("wrong", f"{metric}/{index}: query {q.tolist()} gives NaN distance for {data[h.id][0].tolist()}")
                check_hits(f"{metric}/{index} query {q.tolist()}", metric, data, q, len(data) + 1, got, exact=index == "flat")


def api_k(tmp: str, rng: random.Random) -> None:
    db, data = small_db(tmp, rng, index=rng.choice(["flat", "hnsw"]), n=rng.choice([0, 1, 12]))
    q = np.zeros(8, np.float32) + 0.1
    with db.read() as r:
        for k in rng.sample([0, -1, 2**64, 2**64 - 1, 2**63, 2**62, 2**53 - 1, 2**100, -(2**64), 1.5, "3", None, 10**9, 2**32, 2**31, np.int64(-3), np.uint64(2**64 - 1), True, 3.0], 6):
            # {} matches every item but sends an HNSW search through the walk-or-scan
            # choice, which once divided by zero for a k of 2**62 (SIGFPE).
            flt = rng.choice([None, {}])
            for batch in (False, True):
                call = (lambda: r.search_batch("c", [q, q], k=k, filter=flt)) if batch else (lambda: r.search("c", q, k=k, filter=flt))
                what = f"{'search_batch' if batch else 'search'}(k={k!r}, filter={flt!r})"
                t0 = time.time()
                ok, got = may_fail(what, call)
                if time.time() - t0 > 5:
                    raise Finding("hang", f"{what} took {time.time() - t0:.1f}s")
                if ok:
                    try:
                        kk = int(k.__index__())  # type: ignore[union-attr]
                    except Exception:
                        raise Finding("wrong", f"{what}: accepted a non-integer k")
                    if kk <= 0:
                        raise Finding("wrong", f"{what}: accepted k {kk}")
                    if batch:
                        ids, dist = got
                        if ids.shape[1] > max(len(data), 1) and ids.shape[1] > min(kk, len(data)):
                            raise Finding("wrong", f"{what}: result width {ids.shape[1]} for {len(data)} items")
                        for row_ids, row_d in zip(ids, dist):
                            hits = [(i, float(d)) for i, d in zip(row_ids, row_d) if i is not None]
                            check_hits(what, "l2", data, q, kk, hits, exact=False)
                    else:
                        check_hits(what, "l2", data, q, kk, got, exact=False)
                else:
                    e = got
                    if isinstance(e, sextant.Error) and not isinstance(e, sextant.InvalidArgument):
                        raise Finding("wrong-error", f"{what}: {errname(e)}")
                    if isinstance(k, int) and not isinstance(k, bool) and str(k) not in str(e) and str(k)[:12] not in str(e):
                        raise Finding("wrong-error", f"{what}: {errname(e)} does not name k")
        for ef in rng.sample([0, -1, 2**32, 2**64, 1.5, "x", 10**6, 2**31, 2**32 - 1], 4):
            flt = rng.choice([None, {}])
            ok, got = may_fail(f"search(ef={ef!r})", lambda: r.search("c", q, k=3, ef=ef, filter=flt))
            valid = isinstance(ef, int) and 0 <= ef < 2**32
            if ok and not valid:
                raise Finding("wrong", f"search(ef={ef!r}) accepted")
            if not ok and valid:
                # Any ef in range is an answer: beyond the collection it is exhaustive
                # (an ef of 2**31 once sized gigabytes and failed with NoMem).
                raise Finding("wrong", f"search(ef={ef!r}, filter={flt!r}) failed: {errname(got)}")
            if ok:
                check_hits(f"search(ef={ef!r}, filter={flt!r})", "l2", data, q, 3, got, exact=ef == 0 or ef >= len(data))


def api_ids(tmp: str, rng: random.Random) -> None:
    db, data = small_db(tmp, rng, index=rng.choice(["flat", "hnsw"]), n=5)
    v = [0.25] * 8
    bad = [("", ("item 0", "empty", "id")), ("a" * 256, ("256", "item 0")), ("a\x00b", ("NUL", "item 0", "nul")), (1, ()), (b"\xff\xfe", ()), (None, ()), ("\ud800", ())]
    with db.write() as w:
        for bid, names in rng.sample(bad, 4):
            must_fail(f"upsert id {bid!r}", lambda: w.upsert("c", [bid], [v]), names)
            ok, got = may_fail(f"get id {bid!r}", lambda: w.get("c", bid))
            if ok:
                raise Finding("wrong", f"get {bid!r} returned {got}")
            ok, got = may_fail(f"delete id {bid!r}", lambda: w.delete("c", [bid]))
            if ok and got != 0:
                raise Finding("wrong", f"delete {bid!r} deleted {got}")
        # the longest id and odd valid ids round trip
        good = ["a" * 255, "é" * 127, " ", "\U0001f600", "id0\n", "x" * 254 + "é"[:1]]
        for gid in good:
            if len(gid.encode()) > 255:
                must_fail(f"upsert id of {len(gid.encode())} bytes", lambda: w.upsert("c", gid, v))
                continue
            w.upsert("c", gid, v, {"k": gid})
            data[gid] = (np.array(v, np.float32), {"k": gid})
        # duplicates in one batch: last wins (or a clear error)
        ok, _ = may_fail("duplicate ids", lambda: w.upsert("c", ["dup", "dup"], [[0.1] * 8, [0.2] * 8], [{"n": 1}, {"n": 2}]))
        if ok:
            data["dup"] = (np.array([0.2] * 8, np.float32), {"n": 2})
    verify(db, data, "after bad ids")
    with db.read() as r:
        ids = [rec.id for rec in r.cursor("c")]
        if ids != sorted(data, key=lambda s: s.encode()):
            raise Finding("wrong", f"cursor order {ids[:5]}.. not bytewise sorted ids")
        got = r.get_many("c", ["nope", "id0", "dup"])
        if got[0] is not None or got[1] is None:
            raise Finding("wrong", f"get_many {got}")


def api_metadata(tmp: str, rng: random.Random) -> None:
    db, data = small_db(tmp, rng, n=3)
    v = [0.5] * 8

    def nest(n: int) -> Any:
        m: Any = {"leaf": 1}
        for _ in range(n - 1):
            m = {"a": m}
        return m

    def nest_list(n: int) -> Any:
        m: Any = 1
        for _ in range(n - 1):
            m = [m]
        return {"a": m}

    depth = rng.choice([127, 128, 129, 200, 1500, 10000, 200000])
    cases: List[Tuple[str, Any, Optional[bool]]] = [
        (f"dict depth {depth}", nest(depth), depth <= 128),
        (f"list depth {depth}", nest_list(depth), depth <= 128),
        ("huge 2MB", {"s": "x" * (2 << 20)}, None),
        ("many keys", {f"k{i}": i for i in range(20000)}, None),
        ("set", {"s": {1, 2}}, False),
        ("bytes", {"b": b"x"}, False),
        ("object", {"o": object()}, False),
        ("nan", {"f": float("nan")}, False),
        ("inf", {"f": float("inf")}, False),
        ("NUL in key", {"a\x00b": 1}, True),
        ("NUL in value", {"a": "x\x00y"}, True),
        ("int > int64", {"big": 2**70, "neg": -(2**70)}, True),
        ("int 2**64", {"big": 2**64 - 1}, True),
        ("float", {"f": 1e308, "g": 5e-324, "h": -0.0}, True),
        ("mappingproxy", types.MappingProxyType({"a": 1}), True),
        ("nested mappingproxy", {"m": types.MappingProxyType({"a": [1, 2]})}, True),
        ("list not dict", [1, 2], False),
        ("str not dict", "abc", False),
        ("int not dict", 5, False),
        ("surrogate", {"s": "\ud800"}, None),
        ("unicode", {"é": "日本", "e": "\U0001f600"}, True),
        ("empty", {}, True),
        ("bool keys", {True: 1}, None),
        ("int keys", {1: "x"}, None),
        ("tuple", {"t": (1, 2)}, True),
        ("huge number", {"x": 10**400}, None),
    ]
    for name, meta, valid in rng.sample(cases, 6):
        with db.write() as w:
            ok, got = may_fail(f"metadata {name}", lambda: w.upsert("c", "m", v, meta))
            if not ok:
                if valid:
                    raise Finding("wrong", f"valid metadata {name} refused: {errname(got)}")
                if name.startswith(("dict depth", "list depth")) and "128" not in str(got) and "deep" not in str(got):
                    raise Finding("wrong-error", f"metadata {name}: {errname(got)} does not say how deep")
                w.abort()
                continue
            if valid is False:
                raise Finding("wrong", f"invalid metadata {name} accepted")
        want = rt(meta)
        with db.read() as r:
            ok, rec = may_fail(f"get after metadata {name}", lambda: r.get("c", "m"))
            if not ok:
                raise Finding("wrong", f"metadata {name} stored but get() fails: {errname(rec)}")
            if rec.metadata != want:
                raise Finding("wrong", f"metadata {name} reads back as {str(rec.metadata)[:100]} not {str(want)[:100]}")
            ok, hits = may_fail(f"search include after {name}", lambda: r.search("c", v, k=1, include=["metadata"]))
            if not ok:
                raise Finding("wrong", f"metadata {name}: search(include) fails: {errname(hits)}")
            if hits[0].metadata != want:
                raise Finding("wrong", f"metadata {name}: search(include) gives {str(hits[0].metadata)[:100]}")
        data["m"] = (np.array(v, np.float32), want)
    verify(db, data, "after metadata")


def api_names(tmp: str, rng: random.Random) -> None:
    db = sextant.open(os.path.join(tmp, "db.sx"))
    cases = [
        ("name ''", dict(name=""), ("''", "name")),
        ("name long", dict(name="a" * 65), ("a" * 20,)),
        ("name .x", dict(name=".x"), (".x",)),
        ("name a/b", dict(name="a/b"), ("a/b",)),
        ("name é", dict(name="é"), ("é",)),
        ("name NUL", dict(name="a\x00b"), ()),
        ("name None", dict(name=None), ()),
        ("name 1", dict(name=1), ()),
        ("dim 0", dict(dim=0), ("0",)),
        ("dim 65537", dict(dim=65537), ("65537",)),
        ("dim 2**32", dict(dim=2**32), (str(2**32),)),
        ("dim -1", dict(dim=-1), ("-1",)),
        ("dim 2.5", dict(dim=2.5), ()),
        ("dim '4'", dict(dim="4"), ()),
        ("metric", dict(metric="L3"), ("L3",)),
        ("metric None", dict(metric=None), ()),
        ("index", dict(index="ivf"), ("ivf",)),
        ("m 1", dict(index="hnsw", m=1), ("1",)),
        ("m huge", dict(index="hnsw", m=10**6), (str(10**6),)),
        ("m 2**40", dict(index="hnsw", m=2**40), (str(2**40),)),
        ("ef_c huge", dict(index="hnsw", ef_construction=2**33), (str(2**33),)),
        ("quant on flat", dict(index="flat", quantization="int8"), ("int8", "flat")),
        ("quant bad", dict(quantization="int4"), ("int4",)),
        ("int8 dim too big", dict(index="hnsw", quantization="int8", dim=5000), ("5000",)),
    ]
    for what, kw, names in rng.sample(cases, 8):
        args = dict(name="c", dim=4, metric="l2", index="flat")
        args.update(kw)
        with db.write() as w:
            must_fail(what, lambda: w.create_collection(**args), names)
            w.abort()
    # accepted odd but valid options: the collection works
    m = rng.choice([2, 3, 4, 64, 200])
    with db.write() as w:
        ok, got = may_fail(f"m={m}", lambda: w.create_collection("h", dim=4, index="hnsw", m=m, ef_construction=rng.choice([1, 2, 16])))
    if ok:
        r2 = random.Random(rng.random())
        n = 300
        vecs = np.array([[r2.uniform(-1, 1) for _ in range(4)] for _ in range(n)], np.float32)
        with db.write() as w:
            w.upsert("h", [f"i{i}" for i in range(n)], vecs)
        data = {f"i{i}": (vecs[i], None) for i in range(n)}
        with db.read() as r:
            # every vector finds itself at a generous ef (reachability)
            missing = [i for i in range(0, n, 7) if r.search("h", vecs[i], k=1, ef=1000)[0].distance != 0.0]
            if missing:
                raise Finding("wrong", f"hnsw m={m}: vectors {missing[:5]} not found as their own nearest at ef=1000")
            check_hits(f"m={m}", "l2", data, vecs[0], 10, r.search("h", vecs[0], k=10, ef=1000), exact=True)
    with db.write() as w:
        w.create_collection("c", dim=4, index="flat")
        must_fail("create twice", lambda: w.create_collection("c", dim=4), ("'c'", "c"))
        must_fail("drop missing", lambda: w.drop_collection("zz"), ("zz",))
        must_fail("upsert missing", lambda: w.upsert("zz", "a", [1, 2, 3, 4]), ("zz",))
    with db.read() as r:
        must_fail("read missing", lambda: r.count("zz"), ("zz",))
        must_fail("read session upsert", lambda: r.upsert("c", "a", [1, 2, 3, 4]))
    must_fail("open page_size 3000", lambda: sextant.open(os.path.join(tmp, "p.sx"), page_size=3000), ("3000",))
    must_fail("open sync bad", lambda: sextant.open(os.path.join(tmp, "p.sx"), sync="fast"), ("fast",))
    must_fail("open read-only missing", lambda: sextant.open(os.path.join(tmp, "nope.sx"), read_only=True))
    must_fail("open a directory", lambda: sextant.open(tmp))
    with open(os.path.join(tmp, "junk"), "wb") as f:
        f.write(bytes(rng.randrange(256) for _ in range(rng.choice([0, 10, 4096, 20000]))) if rng.random() < 0.7 else b"SQLite format 3\x00" + bytes(5000))
    junk = open(os.path.join(tmp, "junk"), "rb").read()
    ok, got = may_fail("open junk", lambda: sextant.open(os.path.join(tmp, "junk")))
    if ok and junk:
        raise Finding("wrong", f"a file of {len(junk)} bytes of junk ({junk[:16]!r}...) opens as a database")


def api_closed(tmp: str, rng: random.Random) -> None:
    db, data = small_db(tmp, rng, index=rng.choice(["flat", "hnsw"]), n=5)
    q = [0.1] * 8
    r = db.read()
    r.count("c")
    w = db.write()
    w.count("c")
    cur = r.cursor("c", batch=2)
    order = rng.sample(["close", "end", "commit", "abort"], 4)
    for step in order:
        if step == "close":
            db.close()
        elif step == "end":
            r.end()
        elif step == "commit":
            may_fail("commit", w.commit)
        else:
            may_fail("abort", w.abort)
        for what, fn in [
            ("r.search", lambda: r.search("c", q, k=2)),
            ("r.get", lambda: r.get("c", "id0")),
            ("r.search_batch", lambda: r.search_batch("c", [q], k=2)),
            ("cursor", lambda: cur.next_batch()),
            ("w.upsert", lambda: w.upsert("c", "z", q)),
            ("w.search", lambda: w.search("c", q, k=2)),
            ("w.count", lambda: w.count("c")),
            ("w.commit", lambda: w.commit()),
        ]:
            dead = (what.startswith(("r.", "cursor")) and ("end" in order[: order.index(step) + 1] or "close" in order[: order.index(step) + 1])) or (
                what.startswith("w.") and any(s in order[: order.index(step) + 1] for s in ("close", "commit", "abort"))
            )
            if dead:
                e = must_fail(f"{what} after {order[: order.index(step) + 1]}", fn)
                if not isinstance(e, (sextant.Closed, sextant.Misuse)):
                    raise Finding("wrong-error", f"{what} after {step}: {errname(e)} not Closed")
    for what, fn in [("db.read", db.read), ("db.write", lambda: db.write(0)), ("checkpoint", db.checkpoint), ("stats", db.stats), ("check", db.check), ("backup", lambda: db.backup(os.path.join(tmp, "b.sx")))]:
        e = must_fail(f"{what} after close", fn)
        if not isinstance(e, sextant.Closed):
            raise Finding("wrong-error", f"{what} after close: {errname(e)} not Closed")
    db.close()
    db2 = sextant.open(os.path.join(tmp, "db.sx"))
    verify(db2, data, "after closed-handle misuse")


def api_sessions(tmp: str, rng: random.Random) -> None:
    path = os.path.join(tmp, "db.sx")
    db, data = small_db(tmp, rng, n=5)
    db2 = sextant.open(path)
    w = db.write()
    w.upsert("c", "new", [0.3] * 8)
    e = must_fail("nested write same thread, wait forever", lambda: db.write())
    if not isinstance(e, sextant.Busy):
        raise Finding("wrong-error", f"nested write: {errname(e)}")
    e = must_fail("second handle writer, timeout 0.2", lambda: db2.write(0.2))
    if not isinstance(e, sextant.Busy):
        raise Finding("wrong-error", f"second writer: {errname(e)}")
    # a second process writer
    pid = os.fork()
    if pid == 0:
        try:
            d3 = sextant.open(path)
            try:
                d3.write(0.2)
                os._exit(3)
            except sextant.Busy:
                os._exit(0)
        except BaseException:
            os._exit(4)
    _, st = os.waitpid(pid, 0)
    if os.WIFSIGNALED(st) or os.WEXITSTATUS(st) != 0:
        raise Finding("wrong", f"writer in another process while one is open: status {st}")
    with db2.read() as r:
        if r.count("c") != len(data):
            raise Finding("wrong", "uncommitted write visible to another handle")
    # readers inside the write session
    with db.read() as r:
        r.count("c")
    if rng.random() < 0.5:
        w.commit()
        data["new"] = (np.array([0.3] * 8, np.float32), None)
    else:
        w.abort()
    w2 = db2.write(5)
    w2.upsert("c", "other", [0.4] * 8)
    w2.commit()
    data["other"] = (np.array([0.4] * 8, np.float32), None)
    must_fail("end() on write", lambda: w2.end())
    # a write session in a with block that the database closes
    try:
        with db.write() as w3:
            w3.upsert("c", "lost", [0.9] * 8)
            db.close()
    except CLEAR:
        pass
    db2.close()
    verify(sextant.open(path), data, "after session misuse")
    # a link and a symlink to the same file: never two writers
    for kind in ("symlink", "link"):
        other = os.path.join(tmp, f"{kind}.sx")
        getattr(os, kind)(path, other)
        oka, a = may_fail(f"open with a {kind} beside", lambda: sextant.open(path))
        okb, b = may_fail(f"open through a {kind}", lambda: sextant.open(other))
        if oka and okb:
            wa = a.write()
            ok2, got = may_fail(f"second writer through a {kind}", lambda: b.write(0.2))
            if ok2:
                raise Finding("wrong", f"two writers at once through a {kind} of one database")
            wa.abort()
        for h in (a, b):
            if isinstance(h, sextant.Database):
                h.close()
        if kind == "link":
            os.unlink(other)


def api_threads(tmp: str, rng: random.Random) -> None:
    """One write session used from several threads at once (not allowed: MISUSE),
    and a read-only handle asked to write."""
    path = os.path.join(tmp, "db.sx")
    db, data = small_db(tmp, rng, index=rng.choice(["flat", "hnsw"]), n=50)
    w = db.write()
    errors: List[str] = []
    done: List[str] = []
    lock = threading.Lock()
    seeds = [rng.randrange(2**31) for _ in range(4)]

    def worker(t: int) -> None:
        r2 = random.Random(seeds[t])
        for j in range(60):
            op = r2.choice(["upsert", "upsert", "delete", "search", "count", "commit", "abort"])
            try:
                if op == "upsert":
                    w.upsert("c", [f"t{t}-{j}-{i}" for i in range(20)], np.full((20, 8), t + j / 100, np.float32))
                elif op == "delete":
                    w.delete("c", [f"t{t}-{j - 1}-0"])
                elif op == "search":
                    w.search("c", np.full(8, 0.5, np.float32), k=5)
                elif op == "count":
                    w.count("c")
                elif op == "commit":
                    w.commit()
                else:
                    w.abort()
                with lock:
                    done.append(op)
            except (sextant.Misuse, sextant.Closed):
                pass
            except BaseException as e:  # noqa: BLE001
                errors.append(f"{op}: {errname(e)}")

    ts = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise Finding("wrong-error", f"one write session from 4 threads: {errors[0]}")
    may_fail("abort", w.abort)
    db.close()
    db = sextant.open(path)
    db.check()
    with db.read() as r:
        for i, (v, mm) in data.items():
            rec = r.get("c", i)
            if not same_vec(rec.vector, v) or rec.metadata != mm:
                raise Finding("wrong", f"after threads on one write session: {i} differs")
    db.close()
    ro = sextant.open(path, read_only=True)
    e = must_fail("write on a read-only handle", lambda: ro.write(0))
    if not isinstance(e, sextant.ReadOnly):
        raise Finding("wrong-error", f"write on a read-only handle: {errname(e)}")
    must_fail("checkpoint on a read-only handle", lambda: ro.checkpoint(0))
    ro.close()


def api_hooks(tmp: str, rng: random.Random) -> None:
    path = os.path.join(tmp, "db.sx")
    idx = rng.choice(["flat", "hnsw", "int8"])
    db, data = small_db(tmp, rng, index="flat" if idx == "flat" else "hnsw", quant="int8" if idx == "int8" else "none", n=300)
    q = np.array([0.1] * 8, np.float32)
    action = rng.choice(["commit", "abort", "close", "end", "drop", "upsert", "search", "raise", "return-obj", "write-begin", "checkpoint", "delete"])
    on_write = rng.random() < 0.6
    s: Any = db.write() if on_write else db.read()
    calls = [0]

    def hook() -> Any:
        calls[0] += 1
        if calls[0] > 1:
            return False
        if action == "commit":
            s.commit()
        elif action == "abort":
            s.abort()
        elif action == "close":
            db.close()
        elif action == "end":
            s.end()
        elif action == "drop":
            s.drop_collection("c")
        elif action == "upsert":
            s.upsert("c", "hook", [0.2] * 8)
        elif action == "delete":
            s.delete("c", list(data)[:50])
        elif action == "search":
            s.search("c", q, k=3, cancel=hook)
        elif action == "raise":
            raise KeyError("from hook")
        elif action == "return-obj":
            return object()
        elif action == "write-begin":
            db.write(0)
        elif action == "checkpoint":
            db.checkpoint(0)
        return False

    batch = rng.random() < 0.4
    call = (lambda: s.search_batch("c", np.stack([q] * 40), k=5, cancel=hook, ef=200)) if batch else (lambda: s.search("c", q, k=5, ef=300, cancel=hook, exact=rng.random() < 0.3))
    ok, got = may_fail(f"search with a hook that does {action}", call, allowed=CLEAR + (KeyError,))
    if ok and calls[0] and not batch:
        check_hits(f"search after hook {action}", "l2", data, q, 5, got, exact=False)
    if not ok and isinstance(got, sextant.Corrupt):
        raise Finding("wrong-error", f"hook {action} on {'write' if on_write else 'read'}: {errname(got)} on a healthy database")
    # finish whatever is left
    for fn in ((s.abort,) if on_write else (s.end,)):
        may_fail("end", fn)
    db.close()
    # progress hooks of backup/compact doing the same
    db = sextant.open(path)
    paction = rng.choice(["close", "write", "raise", "true", "compact", "checkpoint"])

    def progress(done: int, total: int) -> Any:
        if paction == "close":
            db.close()
        elif paction == "write":
            db.write(0)
        elif paction == "raise":
            raise RuntimeError("progress")
        elif paction == "true":
            return True
        elif paction == "compact":
            db.compact(0)
        elif paction == "checkpoint":
            db.checkpoint(0)
        return None

    op = rng.choice(["backup", "compact"])
    ok, got = may_fail(f"{op} with progress doing {paction}", (lambda: db.backup(os.path.join(tmp, "bk.sx"), progress=progress)) if op == "backup" else (lambda: db.compact(0, progress=progress)), allowed=CLEAR + (RuntimeError,))
    db.close()
    db = sextant.open(path)
    with db.read() as r:
        if r.list_collections() == ["c"] and r.count("c") == len(data):
            verify(db, data, f"after hook {action} / {paction}")
        else:
            # only a hook's own commit may have changed the committed state
            if not (on_write and action == "commit"):
                raise Finding("rollback", f"hook {action}: committed collection now {r.list_collections()}")
    db.check()
    if op == "backup" and os.path.exists(os.path.join(tmp, "bk.sx")):
        b = sextant.open(os.path.join(tmp, "bk.sx"))
        b.check()


def api_drop_while_search(tmp: str, rng: random.Random) -> None:
    path = os.path.join(tmp, "db.sx")
    db, data = small_db(tmp, rng, index=rng.choice(["flat", "hnsw"]), n=400, quant="none")
    q = np.array([0.1] * 8, np.float32)
    r = db.read()
    stop = threading.Event()
    errors: List[str] = []

    def reader() -> None:
        try:
            while not stop.is_set():
                hits = r.search("c", q, k=5, ef=64)
                check_hits("search during drop", "l2", data, q, 5, hits, exact=False)
                r.count("c")
        except Finding as f:
            errors.append(f"{f.cat}: {f.detail}")
        except BaseException as e:  # noqa: BLE001
            errors.append(f"error {errname(e)}")

    ts = [threading.Thread(target=reader) for _ in range(2)]
    for t in ts:
        t.start()
    other = sextant.open(path)
    with other.write() as w:
        w.drop_collection("c")
        w.create_collection("c", dim=8, index="flat")
        w.upsert("c", "fresh", [9.0] * 8)
    other.checkpoint()
    with other.write() as w:
        w.drop_collection("c")
    other.checkpoint()
    if rng.random() < 0.5:
        other.compact()
    time.sleep(0.2)
    stop.set()
    for t in ts:
        t.join()
    if errors:
        cat = errors[0].split(":")[0]
        raise Finding(cat if cat in CATEGORIES else "wrong", f"old snapshot while the collection was dropped: {errors[0]}")
    r.end()
    with db.read() as r2:
        if r2.list_collections() != []:
            raise Finding("wrong", f"dropped collection still listed: {r2.list_collections()}")
    db.check()


def api_model(tmp: str, rng: random.Random) -> None:
    """A random sequence of operations checked against a dict model."""
    path = os.path.join(tmp, "db.sx")
    kind = rng.choice(["flat", "hnsw", "int8"])
    metric = rng.choice(["l2", "ip", "cosine"])
    dim = rng.choice([2, 5, 16])
    db = sextant.open(path, sync=rng.choice(["full", "normal", "off"]))
    with db.write() as w:
        if kind == "flat":
            w.create_collection("c", dim=dim, metric=metric, index="flat")
        else:
            w.create_collection("c", dim=dim, metric=metric, index="hnsw", m=rng.choice([4, 8, 16]), quantization="int8" if kind == "int8" else "none")
    model: Dict[str, Tuple[np.ndarray, Any]] = {}
    pool = [f"k{i}" for i in range(rng.choice([10, 60, 200]))]
    for step in range(rng.randrange(3, 12)):
        w = db.write()
        pending = dict(model)
        for _ in range(rng.randrange(1, 5)):
            if rng.random() < 0.7:
                n = rng.randrange(1, 40)
                ids = rng.sample(pool, min(n, len(pool)))
                vecs = np.array([[rng.uniform(-1, 1) for _ in range(dim)] for _ in ids], np.float32)
                vecs[np.all(vecs == 0, axis=1)] = 0.5
                metas = [rand_meta(rng) for _ in ids]
                w.upsert("c", ids, vecs, metas)
                for i, v, mm in zip(ids, vecs, metas):
                    pending[i] = (v.copy(), rt(mm))
            else:
                ids = rng.sample(pool, min(len(pool), rng.randrange(1, 20)))
                n = w.delete("c", ids)
                want = sum(1 for i in ids if i in pending)
                if n != want:
                    raise Finding("wrong", f"delete returned {n}, model {want}")
                for i in ids:
                    pending.pop(i, None)
            if w.count("c") != len(pending):
                raise Finding("wrong", f"write session count {w.count('c')}, model {len(pending)}")
        r = rng.random()
        if r < 0.75:
            w.commit()
            model = pending
        else:
            w.abort()
        if rng.random() < 0.2:
            db.close()
            db = sextant.open(path)
        if rng.random() < 0.15:
            db.checkpoint()
        with db.read() as rd:
            if rd.count("c") != len(model):
                raise Finding("rollback" if rd.count("c") < len(model) else "wrong", f"count {rd.count('c')}, model {len(model)}")
            for i in rng.sample(pool, min(10, len(pool))):
                if i in model:
                    rec = rd.get("c", i)
                    if not same_vec(rec.vector, model[i][0]) or rec.metadata != model[i][1]:
                        raise Finding("wrong", f"get {i}: {rec.metadata} vs {model[i][1]}")
                else:
                    must_fail(f"get deleted {i}", lambda: rd.get("c", i))
            q = np.array([rng.uniform(-1, 1) for _ in range(dim)], np.float32)
            k = rng.choice([1, 5, 20, 500])
            exact = kind == "flat" or len(model) <= 60
            hits = rd.search("c", q, k=k, ef=max(100, len(pool) * 2))
            check_hits(f"{kind}/{metric} search k={k}", metric, model, q, k, hits, exact=exact)
            f = rand_filter(rng)
            allowed = {i for i, (_, mm) in model.items() if fmatch(f, mm)}
            hits = rd.search("c", q, k=k, ef=max(100, len(pool) * 2), filter=f, exact=kind == "flat" or rng.random() < 0.5)
            check_hits(f"{kind}/{metric} filter {json.dumps(f)} k={k}", metric, model, q, k, hits, exact=exact, allowed=allowed)
            ids, dist = rd.search_batch("c", np.stack([q, -q if np.any(q) else q]), k=k, ef=max(100, len(pool) * 2), filter=f)
            hits = [(i, float(d)) for i, d in zip(ids[0], dist[0]) if i is not None]
            check_hits(f"{kind}/{metric} batch filter {json.dumps(f)} k={k}", metric, model, q, k, hits, exact=exact, allowed=allowed)
            curs = [rec.id for rec in rd.cursor("c", batch=rng.choice([1, 7, 1000]))]
            if curs != sorted(model, key=lambda s: s.encode()):
                raise Finding("wrong", "cursor does not list the model's ids in bytewise order")
    db.check()
    # bad filters are clear errors
    with db.read() as rd:
        deep: Any = {"a": 1}
        for _ in range(rng.choice([64, 65, 100, 5000])):
            deep = {"$not": deep}
        deep_text = '{"$not":' * 5000 + '{"a":1}' + "}" * 5000
        for bad in ["{", "[]", '{"a": {"$foo": 1}}', '{"a": {"$in": 1}}', '{"$and": []}', '{"a..b": 1}', "", '{"a": {"$gt": true}}', 5, ["a"], deep, deep_text, {"a": {1, 2}}, {"a": float("nan")}]:
            label = "deep dict" if bad is deep else str(bad)[:40]
            ok, got = may_fail(f"filter {label}", lambda: rd.search("c", np.ones(dim, np.float32), k=3, filter=bad))
            if ok and bad is not deep:
                raise Finding("wrong", f"bad filter {label} accepted")


def api_fifo(tmp: str, rng: random.Random) -> None:
    p = os.path.join(tmp, "fifo.sx")
    os.mkfifo(p)
    must_fail("open a FIFO read-only", lambda: sextant.open(p, read_only=True))
    must_fail("open a FIFO", lambda: sextant.open(p))
    os.mkfifo(os.path.join(tmp, "db.sx-wal"))
    ok, got = may_fail("open with a FIFO as -wal", lambda: sextant.open(os.path.join(tmp, "db.sx")))
    if ok:
        got.close()
    # a -wal that is a directory
    os.mkdir(os.path.join(tmp, "d.sx-wal"))
    ok, got = may_fail("open with a directory as -wal", lambda: sextant.open(os.path.join(tmp, "d.sx")))
    if ok:
        with got.write() as w:
            w.create_collection("c", dim=2, index="flat")
            w.upsert("c", "a", [1, 2])
        got.close()


# ---- resource limits, kill -9 ---------------------------------------------------------


def limit_fsize(tmp: str, rng: random.Random) -> None:
    path = os.path.join(tmp, "db.sx")
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    db = sextant.open(path)
    with db.write() as w:
        w.create_collection("c", dim=32, index=rng.choice(["flat", "hnsw"]))
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    lim = rng.choice([40_000, 100_000, 300_000, 1_000_000])
    acked: Dict[str, np.ndarray] = {}
    resource.setrlimit(resource.RLIMIT_FSIZE, (lim, hard))
    failed = None
    for b in range(200):
        ids = [f"b{b}-{i}" for i in range(50)]
        vecs = np.array([[rng.uniform(-1, 1) for _ in range(32)] for _ in ids], np.float32)
        w = db.write()
        w.upsert("c", ids, vecs)
        ok, got = may_fail("commit at RLIMIT_FSIZE", w.commit)
        if not ok:
            failed = got
            if not isinstance(got, (sextant.Full, sextant.IoError)):
                raise Finding("wrong-error", f"commit over RLIMIT_FSIZE: {errname(got)}")
            break
        acked.update(zip(ids, vecs))
    # reads still work in this process
    ok, got = may_fail("read after FULL", lambda: db.read().count("c"))
    if ok and got != len(acked):
        raise Finding("rollback", f"after FULL count {got}, acknowledged {len(acked)}")
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    may_fail("close", db.close)
    db = sextant.open(path)
    data = {i: (v, None) for i, v in acked.items()}
    verify(db, data, f"after RLIMIT_FSIZE {lim} ({failed and type(failed).__name__})")
    with db.write() as w:
        w.upsert("c", "after", [0.5] * 32)
    data["after"] = (np.array([0.5] * 32, np.float32), None)
    verify(db, data, "a commit after space returned")


def limit_nofile(tmp: str, rng: random.Random) -> None:
    path = os.path.join(tmp, "db.sx")
    db, data = small_db(tmp, rng, n=10)
    db.close()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # the lowest free descriptor: the limit sits a few above it
    lowest = os.dup(0)
    os.close(lowest)
    lim = lowest + rng.randrange(0, 6)
    handles = []
    resource.setrlimit(resource.RLIMIT_NOFILE, (lim, hard))
    try:
        for _ in range(4):
            ok, got = may_fail(f"open at RLIMIT_NOFILE {lim}", lambda: sextant.open(path))
            if not ok:
                if not isinstance(got, (sextant.IoError, sextant.NoMem, sextant.Busy)):
                    raise Finding("wrong-error", f"open with {lim - lowest} free descriptors: {errname(got)}")
                break
            handles.append(got)
            ok, w = may_fail("write", lambda: got.write(0))
            if ok:
                w.upsert("c", "n", [0.7] * 8)
                ok2, e = may_fail("commit", w.commit)
                if ok2:
                    data["n"] = (np.array([0.7] * 8, np.float32), None)
            ok, r = may_fail("read", got.read)
            if ok:
                may_fail("count", lambda: r.count("c"))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    for h in handles:
        h.close()
    verify(sextant.open(path), data, f"after RLIMIT_NOFILE {lim}")


def kill_writer(tmp: str, rng: random.Random) -> None:
    path = os.path.join(tmp, "db.sx")
    kind = rng.choice(["flat", "hnsw", "int8"])
    db = sextant.open(path)
    with db.write() as w:
        w.create_collection("c", dim=16, index="flat" if kind == "flat" else "hnsw", m=8, quantization="int8" if kind == "int8" else "none")
    db.close()
    r, wfd = os.pipe()
    seed = rng.randrange(2**31)
    pid = os.fork()
    if pid == 0:
        os.close(r)
        g = np.random.default_rng(seed)
        d = sextant.open(path, autocheckpoint_frames=rng.choice([0, 50, 100000]))
        b = 0
        while True:
            with d.write() as w:
                n = int(g.integers(1, 200))
                w.upsert("c", [f"b{b}-{i}" for i in range(n)], g.random((n, 16), dtype=np.float32) + 0.01, [{"b": b}] * n)
                if b % 3 == 2:
                    w.delete("c", [f"b{b - 1}-0"])
            os.write(wfd, b"%d\n" % b)
            b += 1
    os.close(wfd)
    time.sleep(rng.uniform(0.05, 1.5))
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    acked = -1
    buf = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        buf += chunk
    os.close(r)
    lines = [x for x in buf.split(b"\n") if x]
    if lines:
        acked = int(lines[-1])
    # replay the acknowledged commits (and the one in flight) into models
    g = np.random.default_rng(seed)
    # acknowledged: batches 0..acked; batch acked + 1 may have committed too (killed
    # before it wrote its acknowledgement). None acknowledged: the empty collection
    # is a state the child may have left as well.
    models: List[Dict[str, Tuple[np.ndarray, Any]]] = [{}] if acked < 0 else []
    model: Dict[str, Tuple[np.ndarray, Any]] = {}
    for b in range(acked + 2):
        n = int(g.integers(1, 200))
        vecs = g.random((n, 16), dtype=np.float32) + 0.01
        for i in range(n):
            model[f"b{b}-{i}"] = (vecs[i], {"b": b})
        if b % 3 == 2:
            model.pop(f"b{b - 1}-0", None)
        if b >= acked:
            models.append({i: (v, mm) for i, (v, mm) in model.items()})
    db = sextant.open(path)
    problems = []
    for model in models:
        try:
            verify(db, model, f"kill -9 after {acked + 1} acknowledged commits")
            return
        except Finding as f:
            problems.append(f)
    # No state the child could have left matches: say how each one differs.
    raise Finding(problems[0].cat, " | ".join(f"state {k + 1} of {len(problems)}: {f.detail}" for k, f in enumerate(problems)))


# ---- damaged files ---------------------------------------------------------------------

COLLS = {
    "flat": dict(dim=8, metric="l2", index="flat"),
    "hn": dict(dim=16, metric="cosine", index="hnsw", m=8, ef_construction=64),
    "q8": dict(dim=12, metric="ip", index="hnsw", m=6, ef_construction=48, quantization="int8"),
}


_KEEP: List[Any] = []


def wal_layout(f: str, ps: int) -> Dict[str, Any]:
    """The generation and commit frames of a WAL file (frames whose salts match its
    header's, in order): commits is a list of byte offsets where each commit ends."""
    out: Dict[str, Any] = {"gen": -1, "commits": [], "live_end": 0}
    if not os.path.exists(f) or os.path.getsize(f) < 64:
        return out
    b = open(f, "rb").read()
    gen = int.from_bytes(b[12:16], "little")
    s0, s1 = b[16:20], b[20:24]
    fsz = 32 + ps
    o = 64
    while o + fsz <= len(b) and b[o + 8 : o + 12] == s0 and b[o + 12 : o + 16] == s1:
        if int.from_bytes(b[o + 4 : o + 8], "little") & 0x7FFFFFFF:
            out["commits"].append(o + fsz)
        o += fsz
    out["gen"] = gen
    out["live_end"] = out["commits"][-1] if out["commits"] else 64
    return out


def build_template(dirpath: str, variant: str, seed: int) -> Dict[str, Any]:
    """Writes a database at dirpath/db.sx with six commits; returns the committed
    states after each commit and the WAL sizes after each."""
    rng = np.random.default_rng(seed)
    path = os.path.join(dirpath, "db.sx")
    db = sextant.open(path, autocheckpoint_frames=100000 if variant != "clean" else 0)
    states: List[Dict[str, Any]] = []
    sizes: List[Tuple[int, int]] = []
    cur: Dict[str, Dict[str, Tuple[np.ndarray, Any]]] = {}
    uv = 0

    def snap() -> None:
        states.append({"colls": {c: {i: (v.copy(), m) for i, (v, m) in d.items()} for c, d in cur.items()}, "uv": uv})
        sizes.append(tuple(os.path.getsize(path + s) if os.path.exists(path + s) else 0 for s in ("-wal", "-wal2")))  # type: ignore[arg-type]

    def put(w: Any, c: str, ids: List[str]) -> None:
        dim = COLLS[c]["dim"]
        vecs = (rng.random((len(ids), dim), dtype=np.float32) - 0.3).astype(np.float32)
        metas = [None if j % 5 == 0 else {"c": c, "i": j, "s": "é" * int(rng.integers(0, 40)), "l": [int(x) for x in rng.integers(0, 9, 3)]} for j in range(len(ids))]
        w.upsert(c, ids, vecs, metas)
        for i, v, m in zip(ids, vecs, metas):
            cur[c][i] = (v.copy(), rt(m))

    sizes_n = {"flat": 60, "hn": 150, "q8": 120}
    states.append({"colls": {}, "uv": 0})  # state 0: the empty database
    sizes.append((0, 0))
    with db.write() as w:
        for c, kw in COLLS.items():
            w.create_collection(c, **kw)
            cur[c] = {}
            put(w, c, [f"{c}{j}" for j in range(sizes_n[c] // 2)])
    snap()
    with db.write() as w:
        for c in COLLS:
            put(w, c, [f"{c}{j}" for j in range(sizes_n[c] // 2, sizes_n[c])])
    snap()
    with db.write() as w:
        for c in COLLS:
            put(w, c, [f"{c}{j}" for j in range(0, sizes_n[c], 7)])
            dels = [f"{c}{j}" for j in range(3, sizes_n[c], 11)]
            w.delete(c, dels)
            for i in dels:
                cur[c].pop(i, None)
    snap()
    if variant in ("wal", "other"):
        db.checkpoint()
    with db.write() as w:
        for c in COLLS:
            put(w, c, [f"{c}{j}" for j in range(1, sizes_n[c], 5)])
    snap()
    with db.write() as w:
        w.drop_collection("flat")
        cur.pop("flat")
        w.create_collection("flat", **COLLS["flat"])
        cur["flat"] = {}
        put(w, "flat", [f"flat{j}" for j in range(40)])
        w.delete("hn", [f"hn{j}" for j in range(0, 150, 4)])
        for j in range(0, 150, 4):
            cur["hn"].pop(f"hn{j}", None)
    snap()
    with db.write() as w:
        put(w, "q8", [f"q8{j}" for j in range(200, 230)])
        w.set_user_version(12345)
        uv = 12345
    snap()
    page_size = db.stats()["page_size"]
    _KEEP.append(db)  # the non-clean variants exit without closing: their WAL stays
    if variant == "clean":
        db.close()
        sizes.append(tuple(os.path.getsize(path + s) if os.path.exists(path + s) else 0 for s in ("-wal", "-wal2")))  # type: ignore[arg-type]
    return {"states": states, "sizes": sizes, "page_size": page_size}


def make_templates(root: str, seed: int) -> Dict[str, Any]:
    meta: Dict[str, Any] = {}
    for variant in ("clean", "wal", "walonly", "other"):
        d = os.path.join(root, variant)
        os.mkdir(d)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                info = build_template(d, variant, seed + (99 if variant == "other" else 0))
                with open(os.path.join(d, "info.pickle"), "wb") as f:
                    pickle.dump(info, f)
                os.write(w, b"ok")
            except BaseException:
                os.write(w, traceback.format_exc().encode()[:4000])
            os._exit(0)  # the non-clean variants stay unclosed: their WAL is left behind
        os.close(w)
        out = os.read(r, 8192)
        os.close(r)
        os.waitpid(pid, 0)
        if out != b"ok":
            sys.exit(f"hostile.py: building the {variant} template failed:\n{out.decode(errors='replace')}")
        with open(os.path.join(d, "info.pickle"), "rb") as f:
            meta[variant] = pickle.load(f)
        meta[variant]["files"] = {s: os.path.getsize(os.path.join(d, "db.sx" + s)) for s in ("", "-wal", "-wal2", "-shm") if os.path.exists(os.path.join(d, "db.sx" + s))}
        ps = meta[variant]["page_size"]
        lay = {s: wal_layout(os.path.join(d, "db.sx" + s), ps) for s in ("-wal", "-wal2")}
        meta[variant]["layout"] = lay
        # the last commit: the newest generation with commits; its frames since the commit before
        cur = max((s for s in lay if lay[s]["commits"]), key=lambda s: lay[s]["gen"], default=None)
        meta[variant]["last_commit"] = None if cur is None else (cur, lay[cur]["commits"][-2] if len(lay[cur]["commits"]) > 1 else 64, lay[cur]["commits"][-1])
        # commit j (1-based, as states[j]) -> (WAL file, byte offset where its frames end)
        order = sorted((s for s in lay if lay[s]["commits"]), key=lambda s: lay[s]["gen"])
        cmap = [(s, end) for s in order for end in lay[s]["commits"]]
        n_commits = len(meta[variant]["states"]) - 1
        meta[variant]["commit_map"] = cmap if len(cmap) == n_commits else None
    return meta


def observe(path: str, state: Dict[str, Any], queries: Dict[str, List[np.ndarray]], allowed_states: List[Dict[str, Any]]) -> Tuple[str, str]:
    """Opens a damaged database and reads everything; returns (category, detail)."""
    log: List[str] = []
    bad_err: List[str] = []

    def attempt(what: str, fn: Callable[[], Any]) -> Tuple[bool, Any]:
        try:
            return True, fn()
        except DAMAGE_OK as e:
            log.append(f"{what}: {type(e).__name__}")
            return False, e
        except sextant.NotFound as e:
            return False, e
        except BaseException as e:  # noqa: BLE001
            bad_err.append(f"{what}: {errname(e)}")
            return False, e

    ok, db = attempt("open", lambda: sextant.open(path))
    if not ok:
        return ("wrong-error", bad_err[0]) if bad_err else ("ok", f"open: {db}")
    ok, _ = attempt("check", db.check)
    check_ok = ok
    ok, rd = attempt("read", db.read)
    if not ok:
        return ("wrong-error", bad_err[0]) if bad_err else ("ok", "read refused")
    obs: Dict[str, Any] = {}
    ok, names = attempt("list", rd.list_collections)
    obs["list"] = names if ok else None
    ok, uv = attempt("user_version", rd.user_version)
    obs["uv"] = uv if ok else None
    all_ids = {c: set() for c in COLLS}
    for st in allowed_states + [state]:
        for c, d in st["colls"].items():
            all_ids[c].update(d)
    for c in COLLS:
        ok, info = attempt(f"describe {c}", lambda: rd.describe(c))
        obs[("describe", c)] = (info["dim"], info["metric"], info["index"]["type"], info["count"]) if ok else ("err", type(info).__name__)
        ok, n = attempt(f"count {c}", lambda: rd.count(c))
        obs[("count", c)] = n if ok else ("err", type(n).__name__)
        for i in sorted(all_ids[c]):
            ok, rec = attempt(f"get {c}/{i}", lambda: rd.get(c, i))
            obs[("get", c, i)] = (rec.vector.tobytes(), rec.metadata) if ok else ("err", type(rec).__name__)
        for qi, q in enumerate(queries.get(c, [])):
            ok, hits = attempt(f"search {c}", lambda: rd.search(c, q, k=7, ef=400))
            obs[("search", c, qi)] = [(h.id, h.distance) for h in hits] if ok else ("err", type(hits).__name__)
    rd.end()
    attempt("close", db.close)
    if bad_err:
        return "wrong-error", bad_err[0] + f" (check {'passed' if check_ok else 'failed'})"

    def mismatches(st: Dict[str, Any]) -> List[str]:
        out: List[str] = []
        colls = st["colls"]
        if obs["list"] is not None and obs["list"] != sorted(colls):
            out.append(f"list {obs['list']} != {sorted(colls)}")
        if obs["uv"] is not None and obs["uv"] != st["uv"]:
            out.append(f"user_version {obs['uv']} != {st['uv']}")
        for c in COLLS:
            d = colls.get(c)
            de = obs[("describe", c)]
            if d is None:
                if de[0] != "err":
                    out.append(f"{c} exists")
                continue
            if de[0] != "err":
                kw = COLLS[c]
                if de != (kw["dim"], kw["metric"], kw["index"], len(d)):
                    out.append(f"describe {c} {de}")
            elif de[1] == "NotFound":
                out.append(f"{c} missing")
            n = obs[("count", c)]
            if isinstance(n, int) and n != len(d):
                out.append(f"count {c} {n} != {len(d)}")
            for i in sorted(all_ids[c]):
                g = obs[("get", c, i)]
                if i in d:
                    if g[0] == "err":
                        if g[1] == "NotFound":
                            out.append(f"{c}/{i} missing")
                    elif g[0] != d[i][0].tobytes() or g[1] != d[i][1]:
                        out.append(f"{c}/{i} differs")
                elif g[0] != "err":
                    out.append(f"{c}/{i} present")
            for qi, q in enumerate(queries.get(c, [])):
                s = obs[("search", c, qi)]
                if s and s[0] == "err":
                    continue
                try:
                    check_hits(f"search {c}", COLLS[c]["metric"], d, q, 7, s, exact=COLLS[c]["index"] == "flat")
                except Finding as f:
                    out.append(f.detail)
        return out

    final = mismatches(state)
    if not final:
        return "ok", "; ".join(log)[:300] or "identical"
    for j, st in enumerate(allowed_states):
        if not mismatches(st):
            return "ok", f"torn tail rolled back (state {j}); " + "; ".join(log)[:200]
    # rolled back to an older commit?
    return "", "; ".join(final[:4]) + f" ({len(final)} differences; check {'passed' if check_ok else 'failed'}; errors: {'; '.join(log)[:200]})"


def damage_probe(tmp: str, rng: random.Random, templates: str, meta: Dict[str, Any], kind: str) -> None:
    variant = rng.choice(["clean", "wal", "walonly"])
    src = os.path.join(templates, variant)
    info = meta[variant]
    for s in ("", "-wal", "-wal2", "-shm"):
        if os.path.exists(os.path.join(src, "db.sx" + s)):
            shutil.copyfile(os.path.join(src, "db.sx" + s), os.path.join(tmp, "db.sx" + s))
    path = os.path.join(tmp, "db.sx")
    ps = info["page_size"]
    frame = 32 + ps
    states = info["states"]
    sizes = info["sizes"]
    final = states[-1]
    targets = [s for s in ("", "-wal", "-wal2") if info["files"].get(s, 0) > 0 and (s == "" or info["layout"][s]["live_end"] > 64 or rng.random() < 0.1)]
    if kind == "wal2":
        targets = [s for s in targets if s == "-wal2"] or targets
    if kind == "copywal":
        # another database's WAL where this one has none (a WAL of its own replaced is
        # a lost file, which nothing can tell from a WAL never written)
        targets = [s for s in ("-wal", "-wal2") if info["layout"][s]["live_end"] <= 64]
        if not targets:
            return
    target = rng.choice(targets)
    f = path + target
    size = os.path.getsize(f) if os.path.exists(f) else 0
    desc = f"{variant}: {kind} in P{target} ({size} bytes)"
    lo_hi: Optional[Tuple[int, int]] = None  # byte range changed
    data = bytearray(open(f, "rb").read()) if size else bytearray()

    live = size if target == "" else max(64 + frame, info["layout"][target]["live_end"])
    live = min(live, size)

    def block(n_blocks: int) -> Tuple[int, int]:
        if target == "":
            b = rng.randrange(max(1, size // ps))
            return b * ps, ps
        nf = max(1, (live - 64) // frame)
        b = rng.randrange(nf)
        return 64 + b * frame, frame

    offs: List[int] = []
    cut = -1
    if kind in ("flip", "wal2"):
        nflip = rng.choice([1, 1, 1, 2, 8])
        for _ in range(nflip):
            r = rng.random()
            o = rng.randrange(live) if r < 0.8 else rng.randrange(min(size, 128)) if r < 0.9 else rng.randrange(size)
            data[o] ^= 1 << rng.randrange(8) if rng.random() < 0.7 else rng.randrange(1, 256)
            offs.append(o)
        lo_hi = (min(offs), max(offs) + 1)
        desc += f" at {sorted(offs)}"
    elif kind == "zero":
        o, n = block(1)
        data[o : o + n] = bytes(n)
        lo_hi = (o, o + n)
        desc += f" zeroed [{o}, {o + n})"
    elif kind == "truncate":
        cut = rng.choice([rng.randrange(live), (rng.randrange(live) // ps) * ps, live - rng.randrange(1, min(live, 100)), rng.randrange(size)])
        data = data[:cut]
        lo_hi = (cut, size)
        desc += f" cut at {cut}"
    elif kind == "swap":
        (a, n), (b, _) = block(1), block(1)
        if a == b:
            return
        data[a : a + n], data[b : b + n] = data[b : b + n], data[a : a + n]
        lo_hi = (min(a, b), max(a, b) + n)
        desc += f" swapped [{a}..] and [{b}..] ({n} bytes)"
    elif kind == "garbage":
        g = bytes(rng.randrange(256) for _ in range(rng.choice([1, 100, frame, 3 * frame])))
        data += g
        lo_hi = (size, size + len(g))
        desc += f" appended {len(g)} bytes"
    elif kind == "copywal":
        other = os.path.join(templates, "other", "db.sx" + target)
        if not os.path.exists(other):
            return
        data = bytearray(open(other, "rb").read())
        lo_hi = (0, len(data))
        desc += f" replaced by another database's {target} ({len(data)} bytes)"
    with open(f, "wb") as fh:
        fh.write(data)
    # which earlier states are legitimate: damage inside the last commit's frames of
    # the WAL it went to may roll back that commit (a torn tail), nothing else
    allowed: List[Dict[str, Any]] = []
    cmap = info["commit_map"]
    if kind == "truncate" and target and cmap:
        # a cut WAL with nothing behind the cut looks like a torn tail: the state of
        # the last commit before the cut is as good as the last one
        before = [j + 1 for j, (fname, end) in enumerate(cmap) if fname == target and end <= cut]
        first = [j + 1 for j, (fname, end) in enumerate(cmap) if fname == target]
        if first and (before or True):
            allowed.append(states[before[-1]] if before else states[first[0] - 1])
    if kind == "truncate" and target == "" and cut == 0 and not any(info["layout"][w]["live_end"] > 64 for w in ("-wal", "-wal2")):
        allowed.append(states[0])  # an empty file is a new database (as in SQLite)
    lc = info["last_commit"]
    if lc and target == lc[0] and lo_hi is not None and kind in ("flip", "wal2", "zero", "truncate", "swap") and lo_hi[0] >= lc[1]:
        allowed.append(states[-2])
    # what kind of damage it was, for the summary
    if target == "":
        why = "P emptied beside a WAL" if kind == "truncate" and cut == 0 else f"P {kind}"
    elif kind in ("flip", "wal2"):
        frames = {("header" if o < 64 else (o - 64) // frame) for o in offs if o < live}
        why = "WAL header" if "header" in frames else f"WAL {len(frames)} frames flipped" if frames else "WAL past its live frames"
    elif kind in ("zero", "swap"):
        why = "WAL whole frames replaced"
    else:
        why = f"WAL {kind}"
    desc = f"({why}) {desc}"
    rq = np.random.default_rng(rng.randrange(2**31))
    queries = {c: [(rq.random(kw["dim"], dtype=np.float32) - 0.3).astype(np.float32) for _ in range(2)] for c, kw in COLLS.items()}
    cat, detail = observe(path, final, queries, allowed)
    if cat == "":
        # which committed state does it equal, if any
        for j in range(len(states) - 1, -1, -1):
            if observe_matches(path, states[j], queries):
                said = "an empty database" if j == 0 else f"commit {j} of {len(states) - 1}"
                raise Finding("rollback", f"{desc}: reads as {said} with no error")
        raise Finding("wrong", f"{desc}: {detail}")
    if cat != "ok":
        raise Finding(cat, f"{desc}: {detail}")


def observe_matches(path: str, st: Dict[str, Any], queries: Dict[str, List[np.ndarray]]) -> bool:
    # a fresh copy of what observe() did is not needed: the files are as observe() left
    # them (recovery may have rewritten them, but only to the state it read)
    cat, _ = observe(path, st, queries, [])
    return cat == "ok"


# ---- the runner ------------------------------------------------------------------------

API = {
    "api.dims": api_dims,
    "api.floats": api_floats,
    "api.k": api_k,
    "api.ids": api_ids,
    "api.metadata": api_metadata,
    "api.names": api_names,
    "api.closed": api_closed,
    "api.sessions": api_sessions,
    "api.hooks": api_hooks,
    "api.threads": api_threads,
    "api.drop": api_drop_while_search,
    "api.model": api_model,
    "api.fifo": api_fifo,
    "limit.fsize": limit_fsize,
    "limit.nofile": limit_nofile,
    "kill.writer": kill_writer,
}
DAMAGE = ["damage.flip", "damage.zero", "damage.truncate", "damage.swap", "damage.garbage", "damage.copywal", "damage.wal2"]
WEIGHTS = {
    "api.dims": 3, "api.floats": 6, "api.k": 3, "api.ids": 3, "api.metadata": 6, "api.names": 3,
    "api.closed": 3, "api.sessions": 2, "api.hooks": 8, "api.threads": 3, "api.drop": 2, "api.model": 10, "api.fifo": 1,
    "limit.fsize": 3, "limit.nofile": 3, "kill.writer": 5,
    "damage.flip": 20, "damage.zero": 8, "damage.truncate": 6, "damage.swap": 5, "damage.garbage": 3,
    "damage.copywal": 3, "damage.wal2": 4,
}


def run_probe(name: str, seed: int, tmp: str, templates: str, meta: Dict[str, Any]) -> Tuple[str, str]:
    rng = random.Random(seed)
    try:
        if name.startswith("damage."):
            damage_probe(tmp, rng, templates, meta, name.split(".", 1)[1])
        else:
            API[name](tmp, rng)
        return "ok", ""
    except Finding as f:
        return f.cat, f.detail
    except CLEAR as e:
        # an error the probe did not expect from a valid call on a healthy database
        return "wrong", f"unexpected {errname(e)}\n{traceback.format_exc(limit=-3)}"
    except BaseException as e:  # noqa: BLE001
        return "wrong-error", f"{errname(e)}\n{traceback.format_exc(limit=-3)}"


VERBOSE = False


def in_child(name: str, seed: int, tmp: str, templates: str, meta: Dict[str, Any], timeout: float) -> Tuple[str, str]:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.setpgid(0, 0)
            if not VERBOSE:
                # exceptions raised inside hooks are reported as unraisable: keep quiet
                sys.unraisablehook = lambda u: None
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 2)
            res = run_probe(name, seed, tmp, templates, meta)
            os.write(w, json.dumps(res).encode()[:60000])
        finally:
            os._exit(0)
    os.close(w)
    buf = b""
    deadline = time.monotonic() + timeout
    hung = False
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            hung = True
            break
        rl, _, _ = select.select([r], [], [], left)
        if rl:
            chunk = os.read(r, 65536)
            if not chunk:
                break
            buf += chunk
    os.close(r)
    if hung:
        for target in (-pid, pid):
            try:
                os.kill(target, signal.SIGKILL)
            except ProcessLookupError:
                pass
        os.waitpid(pid, 0)
        return "hang", f"no verdict after {timeout:.0f}s"
    _, st = os.waitpid(pid, 0)
    try:
        os.killpg(pid, signal.SIGKILL)  # grandchildren a probe left behind
    except (ProcessLookupError, PermissionError):
        pass
    if os.WIFSIGNALED(st):
        return "crash", f"signal {signal.Signals(os.WTERMSIG(st)).name}"
    if not buf:
        return "crash", f"exited with status {os.WEXITSTATUS(st)} and no verdict"
    cat, detail = json.loads(buf)
    return cat, detail


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--probes", type=int, default=600)
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds per probe")
    ap.add_argument("--only", default="", help="comma-separated probe families or prefixes (api, damage.flip, ...)")
    ap.add_argument("--keep", default="", help="copy the directory of each finding under this directory")
    ap.add_argument("--replay", default="", help="run one probe, NAME:SEED as a finding line shows it, in this process")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every probe")
    args = ap.parse_args()
    global VERBOSE
    VERBOSE = args.verbose
    if args.replay:
        name, _, pseed = args.replay.partition(":")
        root = tempfile.mkdtemp(prefix="sx-hostile-replay-")
        templates = os.path.join(root, "templates")
        os.mkdir(templates)
        meta = make_templates(templates, args.seed)
        os.mkdir(os.path.join(root, "p"))
        print(run_probe(name, int(pseed), os.path.join(root, "p"), templates, meta))
        print(f"files kept in {root}")
        return 0
    names = [n for n in WEIGHTS if not args.only or any(n == o or n.startswith(o.rstrip(".") + ".") for o in args.only.split(","))]
    if not names:
        sys.exit(f"hostile.py: --only {args.only!r} matches no probe ({', '.join(WEIGHTS)})")
    master = random.Random(args.seed)
    plan = [(master.choices(names, [WEIGHTS[n] for n in names])[0], master.randrange(2**62)) for _ in range(args.probes)]
    counts = {c: 0 for c in CATEGORIES}
    per: Dict[str, Dict[str, int]] = {}
    findings: List[Tuple[int, str, str, str]] = []
    root = tempfile.mkdtemp(prefix="sx-hostile-")
    t0 = time.time()
    try:
        templates = os.path.join(root, "templates")
        os.mkdir(templates)
        meta = make_templates(templates, args.seed)
        for n, (name, seed) in enumerate(plan):
            tmp = os.path.join(root, f"p{n}")
            os.mkdir(tmp)
            cat, detail = in_child(name, seed, tmp, templates, meta, args.timeout)
            counts[cat] += 1
            per.setdefault(name, {}).setdefault(cat, 0)
            per[name][cat] += 1
            if cat != "ok":
                line = detail.strip().split("\n")
                findings.append((n, name, cat, detail))
                print(f"[{n}] {name} seed={seed} {cat}: {line[0][:400]}", flush=True)
                if args.verbose and len(line) > 1:
                    print("    " + "\n    ".join(line[1:]), flush=True)
                if args.keep:
                    shutil.copytree(tmp, os.path.join(args.keep, f"seed{args.seed}-p{n}-{name}"), symlinks=True, ignore_dangling_symlinks=True, dirs_exist_ok=True)
            elif args.verbose:
                print(f"[{n}] {name} ok {detail[:200]}", flush=True)
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"\nseed {args.seed}, {args.probes} probes, {time.time() - t0:.0f}s")
    kinds: Dict[str, int] = {}
    for _, name, cat, detail in findings:
        key = f"{cat} {name}" + (" " + detail[: detail.index(")") + 1] if detail.startswith("(") else "")
        kinds[key] = kinds.get(key, 0) + 1
    if kinds:
        print("findings by kind:")
        for key in sorted(kinds):
            print(f"  {kinds[key]:4d}  {key}")
    for name in sorted(per):
        print(f"  {name:16s} " + " ".join(f"{c}={per[name][c]}" for c in CATEGORIES if c in per[name]))
    print("counts: " + " ".join(f"{c}={counts[c]}" for c in CATEGORIES))
    return 0 if counts["ok"] == args.probes else 1


if __name__ == "__main__":
    sys.exit(main())
