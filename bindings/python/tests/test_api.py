"""The Pythonic surface: sessions as context managers, numpy in and out, errors."""

from __future__ import annotations

import os
import pickle
import sys
import threading
import time
from typing import Any, List

import numpy as np
import pytest

import sextant
from sextant import _api
from sextant import _sextant as _c


def make(db: sextant.Database, name: str = "c", dim: int = 4, n: int = 10, index: str = "flat",
         metric: str = "l2") -> np.ndarray:
    vecs = np.arange(n * dim, dtype=np.float32).reshape(n, dim) / 10
    with db.write() as w:
        w.create_collection(name, dim, metric=metric, index=index)
        w.upsert(name, [f"id{i}" for i in range(n)], vecs)
    return vecs


# ---- databases and sessions -------------------------------------------------------------


def test_open_close_and_context_managers(db_path: str) -> None:
    with sextant.open(db_path) as db:
        assert db.path == db_path
        assert db_path in repr(db)
        with db.read() as r:
            assert r.list_collections() == []
    db.close()  # closing twice is harmless
    with pytest.raises(sextant.Closed):
        db.read()


def test_open_accepts_pathlike(tmp_path: Any) -> None:
    with sextant.open(tmp_path / "p.sx") as db:
        assert db.path == str(tmp_path / "p.sx")


def test_wal_size_limit_cuts_the_wal_after_a_checkpoint(tmp_path: Any) -> None:
    import os

    p = str(tmp_path / "w.sx")

    def wal_bytes() -> int:
        return sum(os.path.getsize(p + s) for s in ("-wal", "-wal2") if os.path.exists(p + s))

    vecs = np.random.default_rng(3).standard_normal((3000, 256), dtype=np.float32)
    with sextant.open(p, sync="off", wal_size_limit=0) as db:
        with db.write() as w:
            w.create_collection("c", 256, index="flat")
            w.upsert("c", [str(i) for i in range(len(vecs))], vecs)
        assert wal_bytes() > 3_000_000
        db.checkpoint()
        assert wal_bytes() == 0  # while the database is open
        with db.read() as r:
            assert r.count("c") == 3000
    with sextant.open(p, sync="off") as db:  # the default limit (64 MiB) keeps small WALs
        with db.write() as w:
            w.upsert("c", [str(i) for i in range(len(vecs))], vecs)
        before = wal_bytes()
        db.checkpoint()
        assert wal_bytes() == before > 0
    with pytest.raises(sextant.InvalidArgument):
        sextant.open(p, wal_size_limit=-1)


def test_write_block_commits_on_success(db: sextant.Database) -> None:
    with db.write() as w:
        w.create_collection("c", 2, index="flat")
        w.upsert("c", "a", [1, 2])
    with db.read() as r:
        assert r.count("c") == 1


def test_write_block_aborts_on_exception(db: sextant.Database) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with db.write() as w:
            w.create_collection("c", 2, index="flat")
            raise RuntimeError("boom")
    with db.read() as r:
        assert r.list_collections() == []
    with db.write(timeout=0):  # the lock was given back
        pass


def test_explicit_commit_and_abort_inside_the_block(db: sextant.Database) -> None:
    with db.write() as w:
        w.create_collection("c", 2, index="flat")
        w.commit()
    with db.write() as w:
        w.drop_collection("c")
        w.abort()
    with db.read() as r:
        assert r.list_collections() == ["c"]
    w = db.write()
    w.commit()
    with pytest.raises(sextant.Closed):
        w.commit()
    with pytest.raises(sextant.Closed):
        w.abort()


def test_read_session_is_a_snapshot(db: sextant.Database) -> None:
    make(db, n=3)
    r = db.read()
    with db.write() as w:
        w.delete("c", ["id0", "id1"])
        w.upsert("c", "new", [0, 0, 0, 0])
    assert r.count("c") == 3
    with pytest.raises(KeyError):
        r.get("c", "new")
    r.end()
    r.end()
    with db.read() as r2:
        assert r2.count("c") == 2


def test_sessions_are_distinct_types_and_read_refuses_writes(db: sextant.Database) -> None:
    make(db)
    with db.read() as r:
        assert isinstance(r, sextant.ReadSession) and isinstance(r, sextant.Session)
        for call in (
            lambda: r.create_collection("x", 2),
            lambda: r.drop_collection("c"),
            lambda: r.upsert("c", "a", [1, 2, 3, 4]),
            lambda: r.delete("c", ["a"]),
            lambda: r.commit(),
            lambda: r.abort(),
            lambda: r.set_user_version(1),
        ):
            with pytest.raises(sextant.Misuse):
                call()
    w = db.write()
    assert isinstance(w, sextant.WriteSession)
    with pytest.raises(sextant.Misuse):
        w.end()
    w.abort()


def test_write_session_sees_its_own_changes(db: sextant.Database) -> None:
    with db.write() as w:
        w.create_collection("c", 2, index="flat")
        w.upsert("c", ["a", "b"], [[1, 0], [0, 1]])
        assert w.count("c") == 2
        assert [h.id for h in w.search("c", [1, 0], 2)] == ["a", "b"]
        w.drop_collection("c")
        with pytest.raises(sextant.NotFound):
            w.count("c")
        w.create_collection("c", 3, index="flat")  # a new one under the same name
        assert w.describe("c")["dim"] == 3
        assert w.count("c") == 0


def test_busy_and_timeouts(db_path: str) -> None:
    a = sextant.open(db_path)
    b = sextant.open(db_path)
    w = a.write()
    with pytest.raises(sextant.Busy):
        b.write(timeout=0)
    t0 = time.monotonic()
    with pytest.raises(sextant.Busy):
        b.write(timeout=0.2)
    assert time.monotonic() - t0 >= 0.15
    with pytest.raises(sextant.InvalidArgument):
        b.write(timeout=-1)
    # A string is not a number of seconds (float("5") once made it one).
    for text in ("5", b"5"):
        with pytest.raises(TypeError, match="timeout must be a number of seconds or None"):
            b.write(timeout=text)  # type: ignore[arg-type]
    w.abort()
    b.write(timeout=0).abort()
    a.close()
    b.close()


def test_gil_is_released_while_waiting_for_the_write_lock(db_path: str) -> None:
    a = sextant.open(db_path)
    b = sextant.open(db_path)
    w = a.write()
    got: List[float] = []

    def wait() -> None:
        with b.write():  # waits for ever, with the GIL released
            got.append(time.monotonic())

    t = threading.Thread(target=wait)
    t.start()
    # Python keeps running in this thread while the other waits in C.
    spins = 0
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:
        spins += 1
    assert spins > 1000 and not got
    released = time.monotonic()
    w.commit()
    t.join(10)
    assert got and got[0] >= released
    a.close()
    b.close()


def test_read_only(db_path: str) -> None:
    with pytest.raises(sextant.NotFound):
        sextant.open(db_path, read_only=True)
    sextant.open(db_path).close()
    with sextant.open(db_path, read_only=True) as ro:
        with pytest.raises(sextant.ReadOnly):
            ro.write(timeout=0)
        with ro.read() as r:
            assert r.list_collections() == []


def test_open_options(db_path: str) -> None:
    # Unknown levels are named, with the known ones, by the core's parser; nothing is created.
    with pytest.raises(sextant.InvalidArgument, match=r"^unknown sync level 'sometimes' \(full, normal, off\)$"):
        sextant.open(db_path, sync="sometimes")
    with pytest.raises(sextant.InvalidArgument, match=r"^unknown sync level '2' "):
        sextant.open(db_path, sync=2)
    assert not os.path.exists(db_path)
    for sync in ("full", "normal", "off"):
        with sextant.open(db_path, sync=sync, page_size=8192, autocheckpoint_frames=10, wal_max_frames=100000) as db:
            assert db.stats()["page_size"] == 8192  # the first open created it with 8192


def test_threads_option(tmp_path: Any) -> None:
    with pytest.raises(sextant.InvalidArgument, match="65"):
        sextant.open(str(tmp_path / "bad.sx"), threads=65)
    # One thread or two link the same vectors into HNSW graphs that both find every
    # vector from itself (a batch this large is linked in parallel with threads=2).
    vecs = np.random.default_rng(7).standard_normal((800, 16)).astype(np.float32)
    ids = [f"v{i}" for i in range(len(vecs))]
    for t in (1, 2):
        with sextant.open(str(tmp_path / f"t{t}.sx"), threads=t) as db:
            with db.write() as w:
                w.create_collection("c", 16, index="hnsw")
                w.upsert("c", ids, vecs)
            db.check()
            with db.read() as r:
                found, _ = r.search_batch("c", vecs, 1, ef=64)
                assert list(found[:, 0]) == ids


def test_stats_check_checkpoint(db: sextant.Database) -> None:
    make(db)
    s = db.stats()
    assert set(s) == {
        "page_size", "page_count", "wal_frames", "wal_backfilled", "commits", "checkpoints",
        "readers", "reader_slots", "oldest_reader_lag", "oldest_reader_pid",
    }
    assert all(isinstance(v, int) for v in s.values())
    assert s["commits"] >= 1
    with db.read():
        assert db.stats()["readers"] == 1
    db.check()
    db.checkpoint()
    db.checkpoint(timeout=0)
    assert db.stats()["checkpoints"] >= 1


def test_user_version(db: sextant.Database) -> None:
    with db.read() as r:
        assert r.user_version() == 0
    with db.write() as w:
        w.set_user_version(2**64 - 1)
        assert w.user_version() == 2**64 - 1
    with db.read() as r:
        assert r.user_version() == 2**64 - 1
    with db.write() as w:
        with pytest.raises(sextant.InvalidArgument):
            w.set_user_version(-1)


def test_versions() -> None:
    assert sextant.version().count(".") == 2
    assert sextant.format_version() >= 1
    assert isinstance(sextant.__version__, str)


# ---- collections ---------------------------------------------------------------------------


def test_create_describe_list(db: sextant.Database) -> None:
    with db.write() as w:
        w.create_collection("h", 8)
        w.create_collection("f", 3, metric="cosine", index="flat")
        w.create_collection("p", 5, metric="ip", index="hnsw", m=8, ef_construction=50)
        with pytest.raises(sextant.Exists):
            w.create_collection("h", 8)
        with pytest.raises(sextant.InvalidArgument):
            w.create_collection("bad name", 8)
        with pytest.raises(sextant.InvalidArgument):
            w.create_collection("x", 8, metric="manhattan")
        with pytest.raises(sextant.InvalidArgument, match=r"^unknown index type 'ivf' \(flat, hnsw\)$"):
            w.create_collection("x", 8, index="ivf")
        with pytest.raises(sextant.InvalidArgument, match=r"^unknown index type 'HNSW' "):
            w.create_collection("x", 8, index="HNSW")
        with pytest.raises(sextant.InvalidArgument):
            w.create_collection("x", 0)
        with pytest.raises(sextant.InvalidArgument):
            w.create_collection("x", -3)
    with db.read() as r:
        assert r.list_collections() == ["f", "h", "p"]
        assert r.describe("h") == {
            "name": "h", "dim": 8, "metric": "l2",
            "index": {"type": "hnsw", "m": 16, "ef_construction": 200, "quantization": "none"}, "count": 0,
        }
        assert r.describe("f") == {"name": "f", "dim": 3, "metric": "cosine", "index": {"type": "flat"}, "count": 0}
        assert r.describe("p")["index"] == {"type": "hnsw", "m": 8, "ef_construction": 50, "quantization": "none"}
        with pytest.raises(sextant.NotFound):
            r.describe("nope")


def test_quantized_collection(db: sextant.Database) -> None:
    rng = np.random.default_rng(5)
    vecs = rng.standard_normal((1500, 32)).astype(np.float32)
    qs = rng.standard_normal((20, 32)).astype(np.float32)
    ids = [f"v{i}" for i in range(len(vecs))]
    with db.write() as w:
        w.create_collection("q", 32, quantization="int8")
        with pytest.raises(sextant.InvalidArgument, match="int8"):
            w.create_collection("f", 32, index="flat", quantization="int8")
        with pytest.raises(sextant.InvalidArgument, match="int4"):
            w.create_collection("u", 32, quantization="int4")
        w.upsert("q", ids, vecs)
    with db.read() as r:
        assert r.describe("q")["index"] == {"type": "hnsw", "m": 16, "ef_construction": 200, "quantization": "int8"}
        found = 0
        for q in qs:
            hits = r.search("q", q, 10, ef=64)
            exact = ((vecs - q) ** 2).sum(axis=1)
            truth = set(np.argsort(exact)[:10])
            found += sum(int(h.id[1:]) in truth for h in hits)
            # The final candidates are measured again exactly: float32 distances.
            for h in hits:
                assert h.distance == pytest.approx(float(exact[int(h.id[1:])]), rel=1e-5, abs=1e-5)
        assert found / (10 * len(qs)) >= 0.9
    db.check()


def test_collection_stats_count_dead_and_free_slots(db: sextant.Database) -> None:
    rng = np.random.default_rng(3)
    vecs = rng.standard_normal((640, 8)).astype(np.float32)
    ids = [f"v{i}" for i in range(640)]
    with db.write() as w:
        w.create_collection("h", 8)
        w.create_collection("f", 8, index="flat")
        for name in ("h", "f"):
            w.upsert(name, ids, vecs)
            assert w.delete(name, ids[:10]) == 10
        # HNSW: deleted nodes stay waypoints below 1/32 of the slots; flat frees at once.
        assert w.collection_stats("h") == {"count": 630, "slots": 640, "dead": 10, "free": 0}
        assert w.collection_stats("f") == {"count": 630, "slots": 640, "dead": 0, "free": 10}
        w.delete("h", ids[10:20])  # 20 * 32 >= 640: unlinked and freed
        assert w.collection_stats("h") == {"count": 620, "slots": 640, "dead": 0, "free": 20}
        w.upsert("h", [f"n{i}" for i in range(20)], vecs[:20])
    with db.read() as r:
        assert r.collection_stats("h") == {"count": 640, "slots": 640, "dead": 0, "free": 0}
        hits = r.search("h", vecs[5], k=1)
        assert hits[0].id == "n5"
        with pytest.raises(sextant.NotFound):
            r.collection_stats("nope")


# ---- vectors in ------------------------------------------------------------------------------


def test_float32_contiguous_arrays_are_passed_without_a_copy(db: sextant.Database,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    seen: List[Any] = []
    real_upsert = _c.sx_write_upsert
    real_search = _c.sx_collection_search

    def spy_upsert(w: Any, coll: str, batch: Any) -> Any:
        seen.append(batch[1])
        return real_upsert(w, coll, batch)

    def spy_search(view: Any, q: Any, k: int, opts: Any) -> Any:
        seen.append(q)
        return real_search(view, q, k, opts)

    monkeypatch.setattr(_api._c, "sx_write_upsert", spy_upsert)
    monkeypatch.setattr(_api._c, "sx_collection_search", spy_search)
    vecs = np.ones((3, 4), dtype=np.float32)
    q = np.ones(4, dtype=np.float32)
    with db.write() as w:
        w.create_collection("c", 4, index="flat")
        w.upsert("c", ["a", "b", "c"], vecs)
        w.search("c", q, 1)
    assert seen[0] is vecs
    assert seen[1] is q
    # Anything else is converted (a new array).
    with db.write() as w:
        w.upsert("c", ["a", "b", "c"], vecs.astype(np.float64))
    assert seen[2] is not vecs and seen[2].dtype == np.float32


@pytest.mark.parametrize(
    "make_input",
    [
        lambda a: a.astype(np.float64),  # converted by value, never reinterpreted
        lambda a: a.tolist(),
        lambda a: [tuple(row) for row in a.tolist()],
        lambda a: np.asfortranarray(a),
        lambda a: a.astype(">f4"),  # big-endian
        lambda a: np.repeat(a, 2, axis=1)[:, ::2],  # non-contiguous view
        lambda a: a.astype(np.float16),
    ],
)
def test_other_inputs_are_converted_by_value(db: sextant.Database, make_input: Any) -> None:
    vecs = np.array([[1.5, -2.25, 3.0], [0.5, 0.0, -1.0]], dtype=np.float32)
    with db.write() as w:
        w.create_collection("c", 3, index="flat")
        w.upsert("c", ["a", "b"], make_input(vecs))
        np.testing.assert_array_equal(w.get("c", "a").vector, vecs[0])
        np.testing.assert_array_equal(w.get("c", "b").vector, vecs[1])
        assert w.search("c", make_input(vecs)[0] if not isinstance(make_input(vecs), list) else make_input(vecs)[0], 1)[0].id == "a"


def test_integer_and_single_vector_inputs(db: sextant.Database) -> None:
    with db.write() as w:
        w.create_collection("c", 3, index="flat")
        w.upsert("c", "one", np.array([1, 2, 3], dtype=np.int64), {"k": "v"})
        w.upsert("c", ["two"], [4, 5, 6])
        rec = w.get("c", "one")
        assert rec.id == "one" and rec.metadata == {"k": "v"}
        np.testing.assert_array_equal(rec.vector, [1, 2, 3])
        assert w.get("c", "two").metadata is None
        w.upsert("c", [], np.empty((0, 3), dtype=np.float32))
        w.upsert("c", [], [])
        assert w.count("c") == 2


def test_bad_vectors(db: sextant.Database) -> None:
    with db.write() as w:
        w.create_collection("c", 3, index="flat")
        w.create_collection("cos", 3, metric="cosine", index="flat")
        with pytest.raises(sextant.DimensionMismatch):
            w.upsert("c", "a", [1, 2])
        with pytest.raises(sextant.DimensionMismatch):
            w.upsert("c", ["a", "b"], [[1, 2, 3], [1, 2]])
        with pytest.raises(sextant.InvalidArgument):
            w.upsert("c", "a", [1, float("nan"), 3])
        with pytest.raises(sextant.InvalidArgument):
            w.upsert("c", "a", [1, float("inf"), 3])
        with pytest.raises(sextant.InvalidArgument):
            w.upsert("c", "a", np.array([1e300, 0, 0]))  # overflows float32
        with pytest.raises(sextant.InvalidArgument):
            w.upsert("c", "a", ["x", "y", "z"])
        with pytest.raises(sextant.InvalidArgument):
            w.upsert("c", ["a", "b"], [[1, 2, 3]])
        with pytest.raises(sextant.InvalidArgument):
            w.upsert("c", "a", np.zeros((1, 1, 3)))
        with pytest.raises(sextant.InvalidArgument):
            w.upsert("cos", "z", [0, 0, 0])
        with pytest.raises(sextant.NotFound):
            w.upsert("missing", ["a", "b"], [[1, 2, 3], [1, 2]])  # the collection is reported first
        assert w.count("c") == 0


def test_ids_and_metadata(db: sextant.Database) -> None:
    with db.write() as w:
        w.create_collection("c", 2, index="flat")
        w.upsert("c", ["é🙂", "b"], [[1, 0], [0, 1]], [{"nested": {"a": [1, 2.5, None, True]}}, None])
        assert w.get("c", "é🙂").metadata == {"nested": {"a": [1, 2.5, None, True]}}
        with pytest.raises(sextant.InvalidArgument):
            w.upsert("c", "", [1, 1])
        with pytest.raises(sextant.InvalidArgument):
            w.upsert("c", "a\0b", [1, 1])
        with pytest.raises(sextant.InvalidArgument):
            w.upsert("c", "\ud800", [1, 1])
        with pytest.raises(sextant.InvalidArgument):
            w.upsert("c", "x" * 256, [1, 1])
        w.upsert("c", "x" * 255, [1, 1])
        with pytest.raises(TypeError):
            w.upsert("c", [1], [[1, 1]])  # type: ignore[list-item]
        with pytest.raises(sextant.InvalidArgument):
            w.upsert("c", "m", [1, 1], {"bad": float("nan")})
        with pytest.raises(sextant.InvalidArgument):
            w.upsert("c", "m", [1, 1], {"bad": object()})
        with pytest.raises(sextant.InvalidArgument):
            w.upsert("c", ["m", "n"], [[1, 1], [2, 2]], [None])
        with pytest.raises(sextant.InvalidArgument):
            w.upsert("c", ["m"], [[1, 1]], [[1, 2]])  # type: ignore[list-item]  # not an object
        # Bytes are not a sequence of ids (they iterate as ints): named as what they are.
        for raw in (b"ab", bytearray(b"ab"), memoryview(b"ab")):
            with pytest.raises(TypeError, match=f"not a single {type(raw).__name__}"):
                w.upsert("c", raw, [[1, 1], [2, 2]])  # type: ignore[arg-type]
            with pytest.raises(TypeError, match=f"not a single {type(raw).__name__}"):
                w.delete("c", raw)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match=f"not a single {type(raw).__name__}"):
                w.get_many("c", raw)  # type: ignore[arg-type]
        # A cursor's batch of 0 is refused, as the core refuses next_batch(0).
        with pytest.raises(sextant.InvalidArgument, match="batch size is 0"):
            w.cursor("c", batch=0)
        assert w.delete("c", "b") == 1
        assert w.delete("c", ["b", "never"]) == 0
        assert w.count("c") == 2


# ---- search -----------------------------------------------------------------------------------


def test_search_returns_hits(db: sextant.Database) -> None:
    make(db, n=5)
    with db.read() as r:
        hits = r.search("c", [0, 0.1, 0.2, 0.3], 3)
        assert [h.id for h in hits] == ["id0", "id1", "id2"]
        assert isinstance(hits[0], sextant.Hit) and isinstance(hits[0], tuple)
        assert hits[0] == ("id0", 0.0) and hits[0].distance == 0.0
        assert hits[1].distance == pytest.approx(4 * 0.4**2, rel=1e-5)
        assert len(r.search("c", [0, 0, 0, 0], 100)) == 5
        assert len(r.search("c", np.zeros((1, 4)), 2, ef=16)) == 2
        with pytest.raises(sextant.InvalidArgument):
            r.search("c", [0, 0, 0, 0], 0)
        with pytest.raises(sextant.InvalidArgument):
            r.search("c", [0, 0, 0, 0], -1)
        with pytest.raises(sextant.InvalidArgument):
            r.search("c", [0, 0, 0, 0], 1, ef=-1)
        with pytest.raises(sextant.DimensionMismatch):
            r.search("c", [0, 0, 0], 1)
        with pytest.raises(sextant.InvalidArgument):
            r.search("c", [0, float("nan"), 0, 0], 1)
        with pytest.raises(sextant.InvalidArgument):
            r.search("c", np.zeros((2, 4)), 1)


def test_search_batch_shapes_and_padding(db: sextant.Database) -> None:
    vecs = make(db, n=5)
    with db.read() as r:
        ids, dist = r.search_batch("c", vecs[:3], 7)
        # k beyond the count is clamped to it (issue 19: k = 10**9 padded to k).
        assert ids.shape == dist.shape == (3, 5)
        assert ids.dtype == object and dist.dtype == np.float32
        assert list(ids[:, 0]) == ["id0", "id1", "id2"]
        assert not np.isnan(dist).any()
        for q in range(3):
            single = r.search("c", vecs[q], 7)
            assert set(ids[q, : len(single)]) == {h.id for h in single}
            np.testing.assert_allclose(dist[q, : len(single)], [h.distance for h in single], rtol=1e-5, atol=1e-6)
        ids1, dist1 = r.search_batch("c", vecs[0], 2)  # one 1-D query is a batch of one
        assert ids1.shape == (1, 2)
        ids0, dist0 = r.search_batch("c", np.empty((0, 4), dtype=np.float32), 2)
        assert ids0.shape == dist0.shape == (0, 2)


def test_search_batch_is_exactly_search_one_by_one(db: sextant.Database) -> None:
    # Query id2 is equally far from id0 and id4: a tie broken by id. (Before core commit
    # 65056ee the batch kernel rounded differently and broke this tie the other way.)
    vecs = make(db, n=5)
    with db.read() as r:
        ids, dist = r.search_batch("c", vecs[:3], 5)
        for q in range(3):
            single = r.search("c", vecs[q], 5)
            assert list(ids[q]) == [h.id for h in single]
            assert list(dist[q]) == [np.float32(h.distance) for h in single]


def test_cancel_hook(db: sextant.Database) -> None:
    make(db, n=50)
    calls: List[int] = []
    with db.read() as r:
        with pytest.raises(sextant.Cancelled):
            r.search("c", [0, 0, 0, 0], 3, cancel=lambda: True)
        assert len(r.search("c", [0, 0, 0, 0], 3, cancel=lambda: calls.append(1) or False)) == 3
        assert calls
        with pytest.raises(sextant.Cancelled):
            r.search_batch("c", np.zeros((4, 4)), 3, cancel=lambda: True)

        def boom() -> bool:
            raise RuntimeError("hook failed")

        reported: List[Any] = []
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(sys, "unraisablehook", reported.append)
            with pytest.raises(sextant.Cancelled):
                r.search("c", [0, 0, 0, 0], 3, cancel=boom)
        assert reported and isinstance(reported[0].exc_value, RuntimeError)


# ---- errors --------------------------------------------------------------------------------------


def test_error_classes() -> None:
    expected = {
        "NOT_FOUND": (sextant.NotFound, KeyError),
        "EXISTS": (sextant.Exists, None),
        "INVALID_ARGUMENT": (sextant.InvalidArgument, ValueError),
        "DIMENSION_MISMATCH": (sextant.DimensionMismatch, ValueError),
        "READ_ONLY": (sextant.ReadOnly, None),
        "BUSY": (sextant.Busy, None),
        "CLOSED": (sextant.Closed, None),
        "MISUSE": (sextant.Misuse, None),
        "CORRUPT": (sextant.Corrupt, None),
        "IO": (sextant.IoError, OSError),
        "FULL": (sextant.Full, None),
        "NOMEM": (sextant.NoMem, MemoryError),
        "VERSION": (sextant.Version, None),
        "CANCELLED": (sextant.Cancelled, None),
    }
    # Every status of the core has its class, mapped by name.
    names = {_c.sx_status_name(i) for i in range(1, _c.SX_STATUS_COUNT)}
    assert names == set(expected) == set(sextant.ERRORS_BY_CODE)
    for code, (cls, builtin) in expected.items():
        assert cls.code == code and sextant.ERRORS_BY_CODE[code] is cls
        e = cls("a message")
        assert isinstance(e, sextant.Error) and str(e) == "a message"
        if builtin is not None:
            assert isinstance(e, builtin)
        e2 = pickle.loads(pickle.dumps(e))
        assert type(e2) is cls and str(e2) == "a message"


def test_errors_carry_the_c_message(db: sextant.Database) -> None:
    make(db)
    with db.read() as r:
        with pytest.raises(sextant.NotFound) as ei:
            r.get("c", "zzz")
    assert ei.value.code == "NOT_FOUND"
    assert str(ei.value) == "id 'zzz' is not in collection 'c'"
    with pytest.raises(KeyError):
        with db.read() as r:
            r.get("c", "zzz")


def test_corrupt_file(tmp_path: Any) -> None:
    p = tmp_path / "junk.sx"
    p.write_bytes(b"this is not a sextant database" + bytes(8192))
    with pytest.raises(sextant.Corrupt):
        sextant.open(str(p))


# ---- issue 19 item 12: Python-level errors --------------------------------------------


def test_metadata_nesting_is_bounded_and_never_a_recursion_error(db: sextant.Database) -> None:
    def nested(depth: int) -> Any:
        m: Any = {"x": 1}
        for _ in range(depth - 1):
            m = {"a": m}
        return m

    limit = 128  # SX_METADATA_DEPTH_MAX
    with db.write() as w:
        w.create_collection("c", 2, index="flat")
        w.upsert("c", "ok", [1, 2], nested(limit))
        assert w.get("c", "ok").metadata == nested(limit)
        for depth in (limit + 1, 1500, 10_000):
            with pytest.raises(sextant.InvalidArgument, match="nested"):
                w.upsert("c", "deep", [1, 2], nested(depth))
        with pytest.raises(sextant.NotFound):
            w.get("c", "deep")


def test_valid_metadata_the_core_refused_round_trips(db: sextant.Database) -> None:
    import types

    metas = [{"a\x00b": 1}, {"big": 2**70, "neg": -(2**80)}, {"k": "v\x00w"}]
    with db.write() as w:
        w.create_collection("c", 2, index="flat")
        for i, m in enumerate(metas):
            w.upsert("c", f"m{i}", [1, 2], m)
        for i, m in enumerate(metas):
            assert w.get("c", f"m{i}").metadata == m
        # A read-only mapping is a mapping: stored as the dict it shows.
        ro = types.MappingProxyType({"x": types.MappingProxyType({"y": [1]})})
        w.upsert("c", "ro", [1, 2], ro)  # type: ignore[arg-type]
        assert w.get("c", "ro").metadata == {"x": {"y": [1]}}


def test_k_beyond_any_size_and_vectors_none_are_clear_errors(db: sextant.Database) -> None:
    with db.write() as w:
        w.create_collection("c", 2, index="flat")
        w.create_collection("h", 2)
        w.upsert("c", ["a", "b"], [[1, 2], [3, 4]])
        w.upsert("h", ["a", "b"], [[1, 2], [3, 4]])
        for k in (2**64, 2**100):
            with pytest.raises(sextant.InvalidArgument):
                w.search("c", [1, 2], k)
            with pytest.raises(sextant.InvalidArgument):
                w.search_batch("c", [[1, 2]], k)
        with pytest.raises(TypeError, match="None"):
            w.upsert("c", "x", None)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="None"):
            w.search("c", None, 1)  # type: ignore[arg-type]
        assert w.count("c") == 2
        # k far beyond the collection: at most count hits, no padding to k.
        for coll in ("c", "h"):
            assert len(w.search(coll, [1, 2], 10**9)) == 2
            ids, dist = w.search_batch(coll, [[1, 2], [3, 4], [0, 0]], 10**9)
            assert ids.shape == (3, 2) and dist.shape == (3, 2)
            assert list(ids[0]) == ["a", "b"]
        # The largest k and ef are answers too, with a filter (where a k of 2**62 once
        # divided by zero in the core: SIGFPE) and without (an ef from 2**31 sized
        # gigabytes: NoMem).
        w.upsert("h", ["a", "b"], [[1, 2], [3, 4]], [{"t": 1}, {"t": 2}])
        for k in (2**62, 2**64 - 1):
            for ef in (0, 2**31, 2**32 - 1):
                for flt in (None, {"t": 1}, {}):
                    want = ["a"] if flt == {"t": 1} else ["a", "b"]
                    assert [h.id for h in w.search("h", [1, 2], k, ef=ef, filter=flt)] == want
                    ids, _ = w.search_batch("h", [[1, 2]], k, ef=ef, filter=flt)
                    assert [i for i in ids[0] if i is not None] == want  # padded to the count
