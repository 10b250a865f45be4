"""The Python runner of the conformance suite.

Reads every case file (*.json) in $CONFORMANCE_CASES (default: <repo>/conformance/cases),
in name order, and runs each test of each file as one pytest test, named
``<file stem>.<test name>``, by interpreting its steps against the public Python API
(the ``sextant`` package). The format is shared/conformance/FORMAT.md (version 1) with
the project's extensions in conformance/FORMAT.md, which this runner follows as the C
runner (conformance/runner_c.cc) does:

- ops ``write_file`` (path, text | hex, pad_to) and the free-text ``comment`` field;
- a handle of the wrong kind for an op (a session given to ``close``, a database given
  to ``count``) is MISUSE; a write op given a read session reaches the binding, whose
  ReadSession raises Misuse;
- a batch whose vectors differ in length among themselves is DIMENSION_MISMATCH;
- ``$TMP`` is ``<fresh dir>/tmp``, so files made next to it go away with the test.

Known gaps are listed with reasons in a skip file: $CONFORMANCE_SKIP, else
conformance/skip/python.json when the project has made it (FORMAT.md, "Skip files"),
else bindings/python/conformance_skip.json. A listed test still runs and is reported
as xfail with its reason (XPASS, with a loud note, when it passes), and
test_skip_file fails while any listed test passes or an entry names no test, so that
the list only shrinks.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np
import pytest

import sextant

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
CASES_DIR = Path(os.environ.get("CONFORMANCE_CASES") or REPO / "conformance" / "cases")


def _skip_file() -> Path:
    """$CONFORMANCE_SKIP; else conformance/skip/python.json, where the project's
    conformance/FORMAT.md puts each binding's list."""
    env = os.environ.get("CONFORMANCE_SKIP")
    if env:
        return Path(env)
    return REPO / "conformance" / "skip" / "python.json"


SKIP_FILE = _skip_file()

CAPABILITIES = {"index:flat", "index:hnsw", "metric:l2", "metric:ip", "metric:cosine", "metadata", "filter"}
KNOWN_TAGS = CAPABILITIES | {"filter"}

COMMON_KEYS = {"op", "expect", "expect_error", "as", "tolerance", "comment"}
OP_ARGS: Dict[str, set] = {
    "open": {"path", "options"},
    "close": {"db"},
    "begin_write": {"db", "timeout_ms"},
    "commit": {"session"},
    "abort": {"session"},
    "begin_read": {"db"},
    "end": {"session"},
    "create_collection": {"session", "name", "dim", "metric", "index"},
    "drop_collection": {"session", "name"},
    "list_collections": {"session"},
    "describe_collection": {"session", "name"},
    "upsert": {"session", "collection", "items"},
    "upsert_generated": {"session", "collection", "count", "dim", "seed", "id_prefix", "metadata_mod"},
    "delete": {"session", "collection", "ids"},
    "get": {"session", "collection", "id"},
    "get_many": {"session", "collection", "ids"},
    "scan": {"session", "collection", "after", "batch"},
    "count": {"session", "collection"},
    "search": {"session", "collection", "vector", "k", "ef", "filter", "include", "exact"},
    "search_generated": {"session", "collection", "count", "dim", "seed", "k", "ef", "filter", "exact"},
    "write_file": {"path", "text", "hex", "pad_to"},
}
HANDLE_OPS = {"open", "begin_write", "begin_read"}

MASK64 = (1 << 64) - 1
FLOAT32_ROUNDS_TO_INF = float.fromhex("0x1.ffffffp+127")


class CaseError(Exception):
    """A problem with the case itself, as opposed to the library answering differently."""


# ---- generated vectors (FORMAT.md, "Generated vectors") -------------------------------


def splitmix64(seed: int, n: int) -> List[int]:
    """n outputs of splitmix64 seeded with seed, in Python ints masked to 64 bits."""
    state = seed & MASK64
    out = []
    for _ in range(n):
        state = (state + 0x9E3779B97F4A7C15) & MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        out.append(z ^ (z >> 31))
    return out


def generate(seed: int, count: int, dim: int) -> np.ndarray:
    """count vectors of dim components: (z >> 40) / 2^24 * 2 - 1, exact in float32."""
    comps = [(z >> 40) / 2**24 * 2 - 1 for z in splitmix64(seed, count * dim)]
    return np.array(comps, dtype=np.float64).astype(np.float32).reshape(count, dim)


# ---- JSON values --------------------------------------------------------------------------


def component(v: Any, where: str) -> float:
    if isinstance(v, str):
        if v == "NaN":
            return math.nan
        if v == "Infinity":
            return math.inf
        if v == "-Infinity":
            return -math.inf
        raise CaseError(f'{where}: string component "{v}" (only "NaN", "Infinity", "-Infinity" are allowed)')
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise CaseError(f"{where}: a vector component must be a number")
    if abs(float(v)) >= FLOAT32_ROUNDS_TO_INF:
        raise CaseError(f"{where}: component beyond float32 range")
    return float(v)


def vector(v: Any, where: str) -> List[float]:
    if not isinstance(v, list):
        raise CaseError(f"{where} must be an array")
    return [component(x, f"{where}[{i}]") for i, x in enumerate(v)]


def number_or_name(d: float) -> Any:
    if math.isnan(d):
        return "NaN"
    if math.isinf(d):
        return "Infinity" if d > 0 else "-Infinity"
    return float(d)


def substitute(j: Any, tmp: str) -> Any:
    if isinstance(j, str):
        return j.replace("$TMP", tmp)
    if isinstance(j, list):
        return [substitute(x, tmp) for x in j]
    if isinstance(j, dict):
        return {k.replace("$TMP", tmp): substitute(v, tmp) for k, v in j.items()}
    return j


def dump(j: Any) -> str:
    return json.dumps(j, ensure_ascii=False)


def is_number(j: Any) -> bool:
    return isinstance(j, (int, float)) and not isinstance(j, bool)


def json_type(j: Any) -> str:
    if j is None:
        return "null"
    if isinstance(j, bool):
        return "boolean"
    if isinstance(j, (int, float)):
        return "number"
    if isinstance(j, str):
        return "string"
    if isinstance(j, list):
        return "array"
    return "object"


class Tolerance:
    def __init__(self, absolute: Optional[float] = None) -> None:
        self.absolute_only = absolute is not None
        self.abs = 1e-5 if absolute is None else absolute
        self.rel = 1e-5

    def close(self, expected: float, actual: float) -> bool:
        lim = self.abs if self.absolute_only else self.abs + self.rel * abs(expected)
        return abs(actual - expected) <= lim


def match(e: Any, a: Any, tol: Tolerance, path: str = "", subset_depth: int = 0) -> Optional[str]:
    """None when a matches e (FORMAT.md, "Expectations"), else where and how they differ.
    subset_depth: levels at which only the expected keys of objects are compared."""
    here = path or "(top)"
    if is_number(e) and is_number(a):
        if tol.close(float(e), float(a)):
            return None
        return f"at {here}: expected {dump(e)}, got {dump(a)}"
    if json_type(e) != json_type(a):
        return f"at {here}: expected {dump(e)}, got {dump(a)}"
    if isinstance(e, dict):
        for k, ev in e.items():
            if k not in a:
                return f'at {here}: missing key "{k}"'
            why = match(ev, a[k], tol, f"{path}.{k}", subset_depth - 1 if subset_depth > 0 else 0)
            if why:
                return why
        if subset_depth == 0:
            for k in a:
                if k not in e:
                    return f'at {here}: unexpected key "{k}"'
        return None
    if isinstance(e, list):
        if len(e) != len(a):
            return f"at {here}: expected {len(e)} elements, got {len(a)}"
        for i, (ev, av) in enumerate(zip(e, a)):
            why = match(ev, av, tol, f"{path}[{i}]")
            if why:
                return why
        return None
    if e == a:
        return None
    return f"at {here}: expected {dump(e)}, got {dump(a)}"


# ---- the interpreter of one test's steps ----------------------------------------------------

# A model of what a session sees, kept so that search_generated can compute exact
# neighbours by brute force: collection -> (metric, {id: vector}).
Model = Dict[str, Tuple[str, Dict[str, np.ndarray]]]


def copy_model(m: Model) -> Model:
    return {name: (metric, dict(vecs)) for name, (metric, vecs) in m.items()}


class Handle:
    def __init__(self, kind: str, path: str, obj: Any, model: Optional[Model] = None) -> None:
        self.kind = kind  # "db", "read", "write"
        self.path = path
        self.obj = obj
        self.model: Model = model if model is not None else {}


KIND_NAMES = {"db": "a database", "read": "a read session", "write": "a write session"}


class Outcome:
    def __init__(
        self, code: Optional[str] = None, message: str = "", value: Any = None, problem: str = ""
    ) -> None:
        self.code = code  # None: success
        self.message = message
        self.value = value
        self.problem = problem  # a fault the runner detected in a successful result


class Interpreter:
    def __init__(self, tmp: str = "") -> None:
        self.tmp = tmp  # $TMP: write_file refuses paths outside it
        self.handles: List[Handle] = []
        self.names: Dict[str, Handle] = {}
        self.committed: Dict[str, Model] = {}  # by database path
        self.op = ""
        self.step: Dict[str, Any] = {}

    def close_all(self) -> None:
        """Ends every session, then closes every database; then forgets them."""
        for h in self.handles:
            try:
                if h.kind == "read":
                    h.obj.end()
                elif h.kind == "write":
                    h.obj.abort()
            except sextant.Error:
                pass  # already ended: abort twice is CLOSED
        for h in self.handles:
            if h.kind == "db":
                h.obj.close()
        self.handles.clear()
        self.names.clear()

    def run(self, step: Dict[str, Any]) -> Outcome:
        self.op = op = step.get("op")  # type: ignore[assignment]
        if not isinstance(op, str) or op not in OP_ARGS:
            raise CaseError(f'unknown op "{op}"')
        for key in step:
            if key not in COMMON_KEYS and key not in OP_ARGS[op]:
                raise CaseError(f'op "{op}" takes no argument "{key}"')
        if "as" in step and op not in HANDLE_OPS:
            raise CaseError(f'op "{op}" returns no handle, so "as" makes no sense')
        self.step = step
        fn = getattr(self, "op_" + op)
        try:
            return fn()  # type: ignore[no-any-return]
        except sextant.Error as e:
            return Outcome(e.code, str(e))

    # -- arguments

    def arg(self, key: str, step: Optional[Dict[str, Any]] = None) -> Any:
        s = self.step if step is None else step
        if key not in s:
            raise CaseError(f'op "{self.op}" needs argument "{key}"')
        return s[key]

    def str_arg(self, key: str, step: Optional[Dict[str, Any]] = None) -> str:
        v = self.arg(key, step)
        if not isinstance(v, str):
            raise CaseError(f'argument "{key}" must be a string')
        return v

    def int_arg(self, v: Any, key: str) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise CaseError(f'argument "{key}" must be an integer')
        return v

    def size_arg(self, key: str) -> int:
        x = self.int_arg(self.arg(key), key)
        if x < 0:
            raise CaseError(f'argument "{key}" must not be negative')
        return x

    def named(self, key: str) -> Handle:
        name = self.str_arg(key)
        if name not in self.names:
            raise CaseError(f'no handle named "{name}" (see "as")')
        return self.names[name]

    def expect_kind(self, key: str, want: str) -> Handle:
        """The handle under key if it is of kind want; else MISUSE (the binding cannot
        even be asked: a database has no commit(), a session no read())."""
        h = self.named(key)
        if h.kind != want and not (want == "session" and h.kind != "db"):
            raise sextant.Misuse(
                f'runner: "{self.step[key]}" is {KIND_NAMES[h.kind]}; op "{self.op}" needs '
                + (KIND_NAMES[want] if want != "session" else "a session")
            )
        return h

    def session(self) -> Handle:
        """A read or write session; write ops go through the session object, so that a
        read session answers them itself (ReadSession raises Misuse)."""
        return self.expect_kind("session", "session")

    def bind(self, h: Handle) -> None:
        self.handles.append(h)
        if "as" in self.step:
            if not isinstance(self.step["as"], str):
                raise CaseError('"as" must be a string')
            self.names[self.step["as"]] = h

    # -- databases and sessions

    def op_open(self) -> Outcome:
        path = self.str_arg("path")
        kwargs: Dict[str, Any] = {}
        opts = self.step.get("options")
        if opts is not None:
            if not isinstance(opts, dict):
                raise CaseError('"options" must be an object')
            for k, v in opts.items():
                if k == "read_only":
                    if not isinstance(v, bool):
                        raise CaseError("option read_only must be true or false")
                    kwargs["read_only"] = v
                elif k == "sync":
                    if not isinstance(v, str):
                        raise CaseError("option sync must be a string")
                    kwargs["sync"] = v
                else:
                    raise CaseError(f'unknown open option "{k}"')
        db = sextant.open(path, **kwargs)
        self.bind(Handle("db", path, db))
        return Outcome()

    def op_close(self) -> Outcome:
        self.expect_kind("db", "db").obj.close()
        return Outcome()

    def op_begin_write(self) -> Outcome:
        d = self.expect_kind("db", "db")
        timeout: Optional[float] = None
        if "timeout_ms" in self.step:
            ms = self.int_arg(self.step["timeout_ms"], "timeout_ms")
            timeout = None if ms < 0 else min(ms, 2**31 - 1) / 1000.0
        w = d.obj.write(timeout=timeout)
        self.bind(Handle("write", d.path, w, copy_model(self.committed.get(d.path, {}))))
        return Outcome()

    def op_begin_read(self) -> Outcome:
        d = self.expect_kind("db", "db")
        r = d.obj.read()
        self.bind(Handle("read", d.path, r, copy_model(self.committed.get(d.path, {}))))
        return Outcome()

    def op_commit(self) -> Outcome:
        w = self.session()
        w.obj.commit()
        self.committed[w.path] = copy_model(w.model)
        return Outcome()

    def op_abort(self) -> Outcome:
        self.session().obj.abort()
        return Outcome()

    def op_end(self) -> Outcome:
        self.session().obj.end()
        return Outcome()

    # -- collections

    def op_create_collection(self) -> Outcome:
        w = self.session()
        name = self.str_arg("name")
        dim = self.int_arg(self.arg("dim"), "dim")
        metric = self.str_arg("metric")
        kwargs: Dict[str, Any] = {"index": "hnsw"}  # the format's default
        ix = self.step.get("index")
        if ix is not None:
            if not isinstance(ix, dict):
                raise CaseError('"index" must be an object')
            kwargs["index"] = self.str_arg("type", ix)
            for k, v in ix.items():
                if k in ("m", "ef_construction"):
                    kwargs[k] = self.int_arg(v, k)
                elif k == "quantization":
                    kwargs[k] = self.str_arg(k, ix)
                elif k != "type":
                    raise CaseError(f'unknown index parameter "{k}"')
            kwargs.setdefault("m", 0)  # 0: the core's default, as in C
            kwargs.setdefault("ef_construction", 0)
        else:
            kwargs.update(m=0, ef_construction=0)
        w.obj.create_collection(name, dim, metric, **kwargs)
        w.model[name] = (metric, {})
        return Outcome()

    def op_drop_collection(self) -> Outcome:
        w = self.session()
        name = self.str_arg("name")
        w.obj.drop_collection(name)
        w.model.pop(name, None)
        return Outcome()

    def op_list_collections(self) -> Outcome:
        return Outcome(value=self.session().obj.list_collections())

    def op_describe_collection(self) -> Outcome:
        return Outcome(value=self.session().obj.describe(self.str_arg("name")))

    # -- data

    def upsert_rows(self, w: Handle, coll: str, ids: List[str], vectors: Any, meta: Any) -> Outcome:
        w.obj.upsert(coll, ids, vectors, meta)
        if coll in w.model:
            arr = np.asarray(vectors, dtype=np.float32)
            for i, id_ in enumerate(ids):
                w.model[coll][1][id_] = arr[i].copy()
        return Outcome()

    def op_upsert(self) -> Outcome:
        w = self.session()
        coll = self.str_arg("collection")
        items = self.arg("items")
        if not isinstance(items, list):
            raise CaseError('"items" must be an array')
        ids: List[str] = []
        vecs: List[List[float]] = []
        meta: List[Any] = []
        for i, it in enumerate(items):
            where = f"items[{i}]"
            if not isinstance(it, dict):
                raise CaseError(f"{where} must be an object")
            for k in it:
                if k not in ("id", "vector", "metadata"):
                    raise CaseError(f'{where} has unknown key "{k}"')
            ids.append(self.str_arg("id", it))
            vecs.append(vector(self.arg("vector", it), f"{where}.vector"))
            # Passed as given: a non-object reaches the library, which must refuse it.
            meta.append(it.get("metadata"))
        return self.upsert_rows(w, coll, ids, vecs, meta)

    def gen_args(self) -> Tuple[int, int, int]:
        count = self.size_arg("count")
        dim = self.size_arg("dim")
        seed = self.int_arg(self.arg("seed"), "seed")
        if seed < 0:
            raise CaseError('"seed" must not be negative')
        return count, dim, seed

    def op_upsert_generated(self) -> Outcome:
        w = self.session()
        coll = self.str_arg("collection")
        prefix = self.str_arg("id_prefix")
        count, dim, seed = self.gen_args()
        vecs = generate(seed, count, dim)
        ids = [prefix + str(i) for i in range(count)]
        meta = None
        if "metadata_mod" in self.step:  # extension: item i gets {"i": i, "c": i % m}
            mod = self.step["metadata_mod"]
            if type(mod) is not int or mod < 1:
                raise CaseError('"metadata_mod" must be an integer >= 1')
            meta = [{"i": i, "c": i % mod} for i in range(count)]
        return self.upsert_rows(w, coll, ids, vecs, meta)

    def op_delete(self) -> Outcome:
        w = self.session()
        coll = self.str_arg("collection")
        ids = self.arg("ids")
        if not isinstance(ids, list):
            raise CaseError('"ids" must be an array')
        for i, id_ in enumerate(ids):
            if not isinstance(id_, str):
                raise CaseError(f"ids[{i}] must be a string")
        n = w.obj.delete(coll, ids)
        if coll in w.model:
            for id_ in ids:
                w.model[coll][1].pop(id_, None)
        return Outcome(value=n)

    def op_get(self) -> Outcome:
        s = self.session()
        rec = s.obj.get(self.str_arg("collection"), self.str_arg("id"))
        return Outcome(
            value={
                "id": rec.id,
                "vector": [number_or_name(float(x)) for x in rec.vector],
                "metadata": rec.metadata,
            }
        )

    @staticmethod
    def record_json(rec: Any) -> Dict[str, Any]:
        return {"id": rec.id, "vector": [number_or_name(float(x)) for x in rec.vector], "metadata": rec.metadata}

    def op_get_many(self) -> Outcome:
        s = self.session()
        ids = self.arg("ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise CaseError('"ids" must be an array of strings')
        recs = s.obj.get_many(self.str_arg("collection"), ids)
        return Outcome(value=[None if r is None else self.record_json(r) for r in recs])

    def op_scan(self) -> Outcome:
        s = self.session()
        after = self.step.get("after")
        if after is not None and not isinstance(after, str):
            raise CaseError('"after" must be a string')
        batch = self.int_arg(self.step["batch"], "batch") if "batch" in self.step else 1000
        cur = s.obj.cursor(self.str_arg("collection"), after=after, batch=1000)
        out: List[Dict[str, Any]] = []
        while True:
            recs = cur.next_batch(batch)
            if not recs:
                break
            out.extend(self.record_json(r) for r in recs)
        return Outcome(value=out)

    def op_count(self) -> Outcome:
        return Outcome(value=self.session().obj.count(self.str_arg("collection")))

    def ef(self) -> Optional[int]:
        if "ef" not in self.step:
            return None
        x = self.int_arg(self.step["ef"], "ef")
        return x if 0 <= x <= 2**32 - 1 else 2**32 - 1  # as the C runner: out of range -> UINT32_MAX

    def filter_text(self) -> Optional[str]:
        # Passed on as its JSON text, whatever it is: the library judges it.
        return json.dumps(self.step["filter"]) if "filter" in self.step else None

    def op_search(self) -> Outcome:
        s = self.session()
        coll = self.str_arg("collection")
        q = vector(self.arg("vector"), "vector")
        k = self.size_arg("k")
        include = self.step.get("include", [])
        if not isinstance(include, list) or any(i not in ("metadata", "vector") for i in include):
            raise CaseError('"include" holds "metadata" and "vector" only')
        exact = self.step.get("exact", False)
        if not isinstance(exact, bool):
            raise CaseError('"exact" must be a boolean')
        hits = s.obj.search(coll, q, k, self.ef(), filter=self.filter_text(), include=include, exact=exact)
        out: List[Dict[str, Any]] = []
        for h in hits:
            hit: Dict[str, Any] = {"id": h.id, "distance": number_or_name(h.distance)}
            if "metadata" in include:
                hit["metadata"] = h.metadata
            if "vector" in include:
                hit["vector"] = None if h.vector is None else [number_or_name(float(x)) for x in h.vector]
            out.append(hit)
        return Outcome(value=out)

    def op_search_generated(self) -> Outcome:
        s = self.session()
        coll = self.str_arg("collection")
        count, dim, seed = self.gen_args()
        k = self.size_arg("k")
        qs = generate(seed, count, dim)
        flt = self.filter_text()
        exact_arg = self.step.get("exact", False)
        if not isinstance(exact_arg, bool):
            raise CaseError('"exact" must be a boolean')
        ids, _dist = s.obj.search_batch(coll, qs, k, self.ef(), filter=flt, exact=exact_arg)
        if coll not in s.model:
            return Outcome(problem=f"runner: no record of collection '{coll}' in this session (create it in this test)")
        metric, live = s.model[coll]
        if ids.shape[0] != count:
            return Outcome(problem=f"search_batch answered {ids.shape[0]} queries of {count}")
        exact = None
        if flt is not None:  # extension: the exact answer from the same API, exact set
            exact, _ = s.obj.search_batch(coll, qs, k, filter=flt, exact=True)
        recall, problem = recall_at_k(metric, live, qs, ids, k, exact)
        return Outcome(value=recall, problem=problem)

    # -- files

    def op_write_file(self) -> Outcome:
        path = self.str_arg("path")
        inside = os.path.realpath(os.path.join(self.tmp, os.path.dirname(path) or "."))
        if not (inside + os.sep).startswith(os.path.realpath(self.tmp) + os.sep):
            raise CaseError(f"write_file refuses '{path}': the path must lie inside $TMP")
        text, hexs = self.step.get("text"), self.step.get("hex")
        if (text is None) == (hexs is None):
            raise CaseError('write_file needs exactly one of "text", "hex"')
        if text is not None:
            if not isinstance(text, str):
                raise CaseError('"text" must be a string')
            data = text.encode("utf-8")
        else:
            digits = "".join(self.str_arg("hex").split())
            if len(digits) % 2:
                raise CaseError('"hex" has an odd number of digits')
            try:
                data = bytes.fromhex(digits)
            except ValueError:
                raise CaseError('"hex" has a character that is not a hex digit') from None
        if "pad_to" in self.step:
            n = self.int_arg(self.step["pad_to"], "pad_to")
            if n < 0 or n > 64 << 20:
                raise CaseError('"pad_to" must be from 0 to 64 MiB')
            data = data.ljust(n, b"\0")
        try:
            with open(path, "wb") as f:
                f.write(data)
        except OSError as e:
            raise CaseError(f"write_file cannot write '{path}': {e}") from None
        return Outcome()


def recall_at_k(
    metric: str,
    live: Dict[str, np.ndarray],
    qs: np.ndarray,
    ids: np.ndarray,
    k: int,
    exact_ids: Optional[np.ndarray] = None,
) -> Tuple[float, str]:
    """Mean recall@k of the returned ids against exact neighbours computed by brute
    force in float64 (ties by id), or given (exact_ids: a filtered search's, from the
    API with exact set), and the first problem seen in the results."""
    dim = qs.shape[1]
    names = sorted(i for i, v in live.items() if v.shape[0] == dim)  # ascending id = tie order
    problem = ""
    if names:
        base = np.stack([live[i] for i in names]).astype(np.float64)
    else:
        base = np.zeros((0, dim))
    rank = np.arange(len(names))
    total = 0.0
    for q in range(qs.shape[0]):
        x = qs[q].astype(np.float64)
        if metric == "l2":
            d = ((base - x) ** 2).sum(axis=1)
        elif metric == "ip":
            d = 1 - base @ x
        else:
            d = 1 - (base @ x) / (np.sqrt((base * base).sum(axis=1)) * np.sqrt((x * x).sum()))
        if exact_ids is not None:
            exact = {i for i in exact_ids[q] if i is not None}
            want = len(exact)
        else:
            want = min(k, len(names))
            order = np.lexsort((rank, d))[:want]
            exact = {names[i] for i in order}
        got = [i for i in ids[q] if i is not None]
        if len(got) > k:
            problem = problem or f"query {q} returned {len(got)} hits for k {k}"
        seen = set()
        found = 0
        for sid in got:
            if sid not in live and not problem:
                problem = f'query {q} returned id "{sid}", which is not live'
            if sid in seen and not problem:
                problem = f'query {q} returned id "{sid}" twice'
            seen.add(sid)
            if sid in exact:
                found += 1
        total += found / want if want else (1.0 if not got else 0.0)
    return (total / qs.shape[0] if qs.shape[0] else 1.0), problem


def check(op: str, step: Dict[str, Any], o: Outcome) -> str:
    """"" when the outcome meets the step's expectation, else what differed."""
    has_expect, has_error = "expect" in step, "expect_error" in step
    if has_expect and has_error:
        raise CaseError('a step has at most one of "expect", "expect_error"')
    if has_error:
        want = step["expect_error"]
        if not isinstance(want, str):
            raise CaseError('"expect_error" must be a string')
        if o.code is None:
            return f"expected error {want}, but the op succeeded (result: {dump(o.value)})"
        if o.code != want:
            return f"expected error {want}, got {o.code}: {o.message}"
        return ""
    if o.code is not None:
        return f"the op failed with {o.code}: {o.message}"
    if o.problem:
        return o.problem
    if not has_expect:
        return ""
    expect = step["expect"]
    tol = Tolerance()
    if "tolerance" in step:
        if not is_number(step["tolerance"]):
            raise CaseError('"tolerance" must be a number')
        tol = Tolerance(float(step["tolerance"]))
    actual = o.value

    def differ(why: str) -> str:
        return f"expected: {dump(expect)}\n  actual:   {dump(actual)}\n  difference {why}"

    if op == "search_generated":
        if not isinstance(expect, dict) or set(expect) != {"recall_at_least"} or not is_number(expect["recall_at_least"]):
            raise CaseError('search_generated expects {"recall_at_least": R}')
        if actual + 1e-12 >= expect["recall_at_least"]:
            return ""
        return f"mean recall {actual:.6f} is below {expect['recall_at_least']:.6f}"
    if op == "search" and isinstance(expect, dict):
        if len(expect) != 1 or not (isinstance(expect.get("ids"), list) or isinstance(expect.get("id_set"), list)):
            raise CaseError('search expects a hit array, {"ids": [...]} or {"id_set": [...]}')
        got = [h["id"] for h in actual]
        if "ids" in expect:
            why = match(expect["ids"], got, tol, "ids")
            return differ(why) if why else ""
        if sorted(map(dump, expect["id_set"])) != sorted(map(dump, got)):
            return differ("in the set of ids (order ignored)")
        return ""
    why = match(expect, actual, tol, "", 2 if op == "describe_collection" else 0)
    return differ(why) if why else ""


# ---- case files --------------------------------------------------------------------------


class Case:
    def __init__(self, file: str, name: str, test: Any, requires: Any, load_error: str = "") -> None:
        self.file = file
        self.name = name
        self.test = test
        self.requires = requires
        self.load_error = load_error
        self.skip_reason: Optional[str] = None

    @property
    def id(self) -> str:
        """<file stem>.<test name>, with every character other than A-Z a-z 0-9 _
        replaced by _ (conformance/FORMAT.md, "Test names")."""
        return f"{safe_name(self.file[:-5])}.{safe_name(self.name)}"


def safe_name(s: str) -> str:
    return "".join(ch if (ch.isascii() and ch.isalnum()) or ch == "_" else "_" for ch in s) or "_"


def load_skips() -> Tuple[List[Dict[str, str]], List[str]]:
    problems: List[str] = []
    try:
        root = json.loads(SKIP_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return [], [f"{SKIP_FILE}: {e}"]
    if not isinstance(root, dict) or set(root) != {"skips"} or not isinstance(root["skips"], list):
        return [], [f'{SKIP_FILE}: must be {{"skips": [{{"file": ..., "test": ..., "reason": ...}}, ...]}}']
    skips = []
    for i, s in enumerate(root["skips"]):
        where = f"{SKIP_FILE}: skips[{i}]"
        if not isinstance(s, dict) or not isinstance(s.get("file"), str) or not isinstance(s.get("test"), str):
            problems.append(f'{where} needs string "file" and "test"')
            continue
        if not isinstance(s.get("reason"), str) or not s["reason"]:
            problems.append(f'{where} ({s["file"]} / {s["test"]}) has no "reason": every skip needs one')
            continue
        if set(s) != {"file", "test", "reason"}:
            problems.append(f"{where} has keys other than file, test, reason")
        skips.append(s)
    return skips, problems


def load_cases() -> List[Case]:
    cases: List[Case] = []
    try:
        files = sorted(p.name for p in CASES_DIR.iterdir() if p.name.endswith(".json"))
    except OSError as e:
        return [Case("_cases.json", "directory", None, None, f"cannot read the case directory {CASES_DIR}: {e}")]
    if not files:
        return [Case("_cases.json", "directory", None, None, f"no *.json case files in {CASES_DIR}")]
    for file in files:
        path = CASES_DIR / file
        try:
            root = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_no_duplicates)
        except (OSError, ValueError) as e:
            cases.append(Case(file, "_file", None, None, f"{path}: not valid JSON: {e}"))
            continue
        if not isinstance(root, dict) or root.get("format") != 1 or isinstance(root.get("format"), bool):
            cases.append(Case(file, "_file", None, None, f'{path}: "format" must be 1 (the version this runner reads)'))
            continue
        tests, req = root.get("tests"), root.get("requires")
        if not isinstance(tests, list) or (req is not None and not isinstance(req, list)):
            cases.append(Case(file, "_file", None, None, f'{path}: "tests" (and "requires" if present) must be arrays'))
            continue
        seen = set()
        for i, t in enumerate(tests):
            name = t.get("name") if isinstance(t, dict) else None
            err = ""
            if not isinstance(name, str) or not isinstance(t.get("steps"), list):
                err = f'{path}: tests[{i}] needs a string "name" and a "steps" array'
                name = name if isinstance(name, str) else f"tests[{i}]"
            if safe_name(name) in seen:
                cases.append(Case(file, f"_duplicate_{name}", None, None,
                                  f'{path}: two tests are named "{name}" (names are unique within a file, also '
                                  "after characters other than A-Z a-z 0-9 _ become _)"))
                continue
            seen.add(safe_name(name))
            cases.append(Case(file, name, t, req, err))
    return cases


def _no_duplicates(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    d: Dict[str, Any] = {}
    for k, v in pairs:
        if k in d:
            raise ValueError(f'duplicate key "{k}"')
        d[k] = v
    return d


def run_case(case: Case) -> str:
    """"" when the test passed, else a report naming the file, test, step and op."""
    if case.load_error:
        return case.load_error
    head = f"conformance case failed\n  file: {case.file}\n  test: {case.name}\n"
    for req in (case.requires, case.test.get("requires")):
        for tag in req or []:
            if tag not in KNOWN_TAGS:
                return head + f'  requires unknown capability "{tag}"\n'
            if tag not in CAPABILITIES:
                return head + f'  requires "{tag}", which the Python binding does not support\n'
    outer = tempfile.mkdtemp(prefix="sx-conformance-")
    tmp = os.path.join(outer, "tmp")
    os.mkdir(tmp)
    failure = ""
    interp = Interpreter(tmp)
    try:
        for i, raw in enumerate(case.test["steps"]):
            step = substitute(raw, tmp)
            op = step.get("op") if isinstance(step, dict) else "?"
            where = f'{head}  step: {i} (steps[{i}], op "{op}")\n  step json: {dump(raw)}\n'
            try:
                if not isinstance(step, dict):
                    raise CaseError("a step must be an object")
                o = interp.run(step)
                why = check(op, step, o)  # type: ignore[arg-type]
            except CaseError as e:
                why = f"case error: {e}"
            if why:
                failure = f"{where}  {why}\n"
                break
    finally:
        interp.close_all()  # handles left open, after the steps were checked; then $TMP goes
        shutil.rmtree(outer, ignore_errors=True)
    return failure


SKIPS, SKIP_PROBLEMS = load_skips()
CASES = load_cases()
for _c in CASES:
    for _s in SKIPS:
        if _s["file"] == _c.file and _s["test"] == _c.name:
            _c.skip_reason = _s["reason"]


# Outcomes for $SEXTANT_CONFORMANCE_REPORT (the cross-language matrix,
# tools/conformance.sh): {"runner": "python", "results": [{"file", "test", "outcome"}]},
# outcome "passed", "expected_failure" (listed in the skip file and failing) or
# "failed" (a listed test that passes included).
OUTCOMES: List[Dict[str, str]] = []


@pytest.fixture(scope="module", autouse=True)
def _conformance_report() -> Iterator[None]:
    yield
    path = os.environ.get("SEXTANT_CONFORMANCE_REPORT")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"runner": "python", "results": OUTCOMES}, f, indent=1)


def _record(case: Case, failure: str) -> None:
    if case.skip_reason is not None:
        outcome = "expected_failure" if failure else "failed"
    else:
        outcome = "failed" if failure else "passed"
    OUTCOMES.append({"file": case.file, "test": case.name, "outcome": outcome})


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case: Case, request: pytest.FixtureRequest) -> None:
    if case.skip_reason is not None:
        # A listed test still runs: XFAIL with the reason, or XPASS with a loud note
        # (and test_skip_file fails) once it passes.
        request.applymarker(pytest.mark.xfail(reason=case.skip_reason, strict=False))
        failure = run_case(case)
        _record(case, failure)
        if not failure:
            note = (f"{case.file} / {case.name} is listed in {SKIP_FILE} (reason: {case.skip_reason}) "
                    "but it PASSED: remove it from the skip list")
            print("*" * 70 + "\nNOTE: " + note + "\n" + "*" * 70, file=sys.stderr)
            warnings.warn(note)
            return
        print(f"failure of a test listed in the skip file (reason: {case.skip_reason}):\n{failure}")
        pytest.fail(failure, pytrace=False)
    failure = run_case(case)
    _record(case, failure)
    if failure:
        pytest.fail(failure, pytrace=False)


def test_skip_file() -> None:
    """The skip file is well formed, names existing tests only, and none of them passes."""
    problems = list(SKIP_PROBLEMS)
    known = {(c.file, c.name) for c in CASES}
    for s in SKIPS:
        if (s["file"], s["test"]) not in known:
            problems.append(f'{SKIP_FILE}: no test "{s["test"]}" in file "{s["file"]}"')
    for c in CASES:
        if c.skip_reason is not None and not run_case(c):
            problems.append(f"{c.file} / {c.name} passes: remove it from {SKIP_FILE}")
    assert not problems, "\n".join(problems)


def test_splitmix64_reference_values() -> None:
    """The generator against values computed independently (the published splitmix64
    sequence for seed 0 starts with 0xE220A8397B1DCDAF)."""
    assert splitmix64(0, 3) == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]
    v = generate(0, 1, 2)
    assert v.dtype == np.float32
    assert v[0, 0] == np.float32((0xE220A8397B1DCDAF >> 40) / 2**24 * 2 - 1)
