"""Misuse is an exception, never a crash: use after close, sessions of a closed
database, ending twice, and objects collected in any order, on any thread."""

from __future__ import annotations

import gc
import random
import threading
from typing import Any, List

import numpy as np
import pytest

import sextant
from sextant import _sextant as _c


def setup(db: sextant.Database) -> None:
    with db.write() as w:
        w.create_collection("c", 2, index="flat")
        w.upsert("c", ["a", "b"], [[1, 0], [0, 1]])


def test_use_after_close(db_path: str) -> None:
    db = sextant.open(db_path)
    setup(db)
    db.close()
    db.close()
    for call in (db.read, db.write, db.stats, db.check, db.checkpoint, lambda: db.write(timeout=0)):
        with pytest.raises(sextant.Closed):
            call()


def test_sessions_of_a_closed_database(db_path: str) -> None:
    db = sextant.open(db_path)
    setup(db)
    r = db.read()
    r.count("c")  # opens (and caches) a collection view
    w = db.write()
    w.upsert("c", "x", [1, 1])
    db.close()
    for call in (
        lambda: r.count("c"),
        lambda: r.search("c", [1, 0], 1),
        lambda: r.search_batch("c", [[1, 0]], 1),
        lambda: r.get("c", "a"),
        lambda: r.list_collections(),
        lambda: r.describe("c"),
        r.user_version,
        lambda: w.upsert("c", "y", [1, 1]),
        lambda: w.count("c"),
        lambda: w.delete("c", ["a"]),
        lambda: w.create_collection("d", 2),
        w.commit,
    ):
        with pytest.raises(sextant.Closed):
            call()
    r.end()  # ending is idempotent, even now
    # The write session was aborted by the close: nothing of it was committed.
    with sextant.open(db_path) as db2, db2.read() as r2:
        assert r2.count("c") == 2


def test_write_block_when_the_database_closes_inside(db_path: str) -> None:
    db = sextant.open(db_path)
    setup(db)
    with pytest.raises(sextant.Closed):
        with db.write() as w:
            w.upsert("c", "x", [1, 1])
            db.close()
    db = sextant.open(db_path)
    with pytest.raises(KeyError):  # the block's own error wins over the failed abort
        with db.write() as w:
            db.close()
            raise KeyError("mine")
    db.close()


def test_commit_twice_and_abort_after_commit(db: sextant.Database) -> None:
    w = db.write()
    w.commit()
    with pytest.raises(sextant.Closed):
        w.commit()
    with pytest.raises(sextant.Closed):
        w.abort()
    w2 = db.write()
    w2.abort()
    with pytest.raises(sextant.Closed):
        w2.abort()
    with pytest.raises(sextant.Closed):
        w2.upsert("c", "a", [1, 1])
    r = db.read()
    r.end()
    r.end()
    with pytest.raises(sextant.Closed):
        r.list_collections()


def test_database_collected_before_its_sessions(db_path: str) -> None:
    db = sextant.open(db_path)
    setup(db)
    r = db.read()
    r.count("c")
    w = db.write()
    del db
    gc.collect()  # the Database is gone: it was closed, which ended its sessions
    with pytest.raises(sextant.Closed):
        r.count("c")
    with pytest.raises(sextant.Closed):
        w.upsert("c", "z", [1, 1])
    del r, w
    gc.collect()
    with sextant.open(db_path) as db2:
        db2.write(timeout=0).abort()  # the writer lock was given back


def test_collected_in_any_order(db_path: str) -> None:
    rnd = random.Random(7)
    for round_ in range(30):
        objs: List[Any] = []
        db = sextant.open(db_path)
        if round_ == 0:
            setup(db)
        objs.append(db)
        for _ in range(3):
            r = db.read()
            r.search("c", [1, 0], 1)
            objs.append(r)
        w = db.write()
        w.count("c")
        objs.append(w)
        if rnd.random() < 0.5:
            db.close()
        del db, r, w
        rnd.shuffle(objs)
        while objs:
            objs.pop()
            if rnd.random() < 0.5:
                gc.collect()
    gc.collect()
    with sextant.open(db_path) as db, db.read() as r:
        assert r.count("c") == 2


def test_last_reference_dropped_on_another_thread(db_path: str) -> None:
    db = sextant.open(db_path)
    setup(db)
    box: List[Any] = [db, db.read(), db.write()]
    del db

    def drop() -> None:
        box.clear()
        gc.collect()

    t = threading.Thread(target=drop)
    t.start()
    t.join()
    with sextant.open(db_path) as db2:
        db2.write(timeout=0).abort()


def test_low_level_module_refuses_bad_handles() -> None:
    q = np.zeros(2, dtype=np.float32)
    with pytest.raises(sextant.Misuse):
        _c.sx_collection_search(None, q, 1, None)
    with pytest.raises(sextant.Misuse):
        _c.sx_read_begin(None)
    with pytest.raises(sextant.Misuse):
        _c.sx_db_close(None)
    with pytest.raises(TypeError):
        _c.sx_collection_search(object(), q, 1, None)
    with pytest.raises(TypeError):
        _c.sx_collection_search(None, np.zeros(2), 1, None)  # float64 is never reinterpreted
    with pytest.raises(TypeError):
        _c.sx_collection_search(None, np.zeros((2, 2), dtype=np.float32)[:, 0], 1, None)  # strided


def test_low_level_upsert_checks_counts(db: sextant.Database) -> None:
    setup(db)
    w = db.write()
    h = w._h  # the SWIG handle
    with pytest.raises(sextant.InvalidArgument):
        _c.sx_write_upsert(h, "c", (["a", "b", "c"], np.zeros((2, 2), dtype=np.float32), None))
    with pytest.raises(sextant.InvalidArgument):
        _c.sx_write_upsert(h, "c", (["a"], np.zeros((1, 2), dtype=np.float32), []))
    with pytest.raises(TypeError):
        _c.sx_write_upsert(h, "c", ("ab", np.zeros((2, 2), dtype=np.float32), None))
    with pytest.raises(TypeError):
        _c.sx_write_upsert(h, "c", (["a"], np.zeros(2, dtype=np.float32), None))
    w.abort()


def test_nested_write_on_one_thread_is_busy_at_once(db_path: str) -> None:
    """`with db.write(): db.write()` waited for itself for ever; now Busy at once."""
    import time

    with sextant.open(db_path) as db:
        with db.write() as w:
            w.create_collection("c", 2, index="flat")
            t0 = time.monotonic()
            with pytest.raises(sextant.Busy, match="this thread already holds"):
                db.write()
            with pytest.raises(sextant.Busy):
                db.checkpoint()
            assert time.monotonic() - t0 < 2.0
        with db.read() as r:
            assert r.list_collections() == ["c"]


def test_threads_racing_on_one_write_session_with_commit_and_abort(db_path: str) -> None:
    """Two threads upsert batches on one write session while the main thread commits
    or aborts it: this killed the process within 40 rounds (the transaction was
    freed under the upserts). Every late call is now Misuse or Closed."""
    import time

    vecs = np.random.default_rng(1).random((64, 8), dtype=np.float32)
    ids = [f"id{i}" for i in range(64)]
    with sextant.open(db_path, sync="off") as db:
        with db.write() as w:
            w.create_collection("c", 8)
        outcomes: List[str] = []
        for rnd in range(60):
            w = db.write()
            start = threading.Event()

            def upsert() -> None:
                start.wait()
                for _ in range(20):
                    try:
                        w.upsert("c", ids, vecs)
                        outcomes.append("ok")
                    except sextant.Misuse:
                        outcomes.append("misuse")
                    except sextant.Closed:
                        outcomes.append("closed")
                        return

            threads = [threading.Thread(target=upsert) for _ in range(2)]
            for t in threads:
                t.start()
            start.set()
            time.sleep(0.0005 * (rnd % 4))
            try:
                if rnd % 2:
                    w.commit()
                else:
                    w.abort()
            except sextant.Misuse:
                outcomes.append("end-misuse")
            for t in threads:
                t.join()
            try:
                w.abort()
            except sextant.Closed:
                pass
        db.check()
        assert "ok" in outcomes
        assert set(outcomes) <= {"ok", "misuse", "closed", "end-misuse"}
