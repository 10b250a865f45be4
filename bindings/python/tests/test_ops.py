"""Batch get, cursors and online backup from Python."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest

import sextant


def _fill(db: sextant.Database, name: str, n: int, index: str = "flat", dim: int = 8) -> np.ndarray:
    rng = np.random.default_rng(7)
    vecs = rng.standard_normal((n, dim)).astype(np.float32)
    with db.write() as w:
        w.create_collection(name, dim=dim, index=index)
        w.upsert(name, [f"id{i}" for i in range(n)], vecs,
                 [{"i": i} if i % 3 == 0 else None for i in range(n)])
    return vecs


@pytest.mark.parametrize("index", ["flat", "hnsw"])
def test_get_many_in_order_with_missing(tmp_path: Path, index: str) -> None:
    with sextant.open(tmp_path / "g.sx", sync="off") as db:
        vecs = _fill(db, "c", 100, index)
        with db.read() as r:
            got = r.get_many("c", ["id3", "nope", "id4", "id3"])
            assert [g.id if g else None for g in got] == ["id3", None, "id4", "id3"]
            assert got[0] is not None and got[2] is not None
            np.testing.assert_array_equal(got[0].vector, vecs[3])
            assert got[0].metadata == {"i": 3}
            assert got[2].metadata is None
            assert r.get_many("c", []) == []
            with pytest.raises(sextant.InvalidArgument, match="item 1"):
                r.get_many("c", ["id1", ""])
            with pytest.raises(TypeError):
                r.get_many("c", "id1")
            with pytest.raises(sextant.NotFound):
                r.get_many("nosuch", ["id1"])


@pytest.mark.parametrize("index", ["flat", "hnsw"])
def test_cursor_walks_snapshot_in_id_order_and_resumes(tmp_path: Path, index: str) -> None:
    with sextant.open(tmp_path / "c.sx", sync="off") as db:
        vecs = _fill(db, "c", 500, index)
        r = db.read()
        cur = r.cursor("c", batch=64)
        assert cur.remaining == 500
        # A writer deletes while the cursor walks the snapshot.
        with db.write() as w:
            w.delete("c", ["id1", "id2"])
        recs = list(cur)
        assert [x.id for x in recs] == sorted(f"id{i}" for i in range(500))
        for x in recs:
            i = int(x.id[2:])
            np.testing.assert_array_equal(x.vector, vecs[i])
            assert x.metadata == ({"i": i} if i % 3 == 0 else None)
        assert cur.remaining == 0 and cur.next_batch() == []
        ids = [x.id for x in recs]
        assert [x.id for x in r.cursor("c", after=ids[99])] == ids[100:]
        assert len(r.cursor("c").next_batch(7)) == 7
        r.end()
        with pytest.raises(sextant.Closed):
            cur.next_batch()
        with db.read() as r2:  # the next snapshot has the deletes
            assert len(list(r2.cursor("c"))) == 498
        with db.write() as w:
            wc = w.cursor("c", batch=10)
            w.delete("c", [f"id{i}" for i in range(100)])
            assert len(list(wc)) == 400  # id1 and id2 were among the first 100
            w.abort()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # boom() below
def test_backup_with_progress_and_cancel(tmp_path: Path) -> None:
    with sextant.open(tmp_path / "b.sx", sync="off") as db:
        _fill(db, "c", 30000, "flat")
        calls: List[Tuple[int, int]] = []
        dest = tmp_path / "copy.sx"
        db.backup(dest, progress=lambda d, t: calls.append((d, t)))
        assert calls and calls[-1][0] == calls[-1][1]
        with sextant.open(dest, read_only=True) as b:
            b.check()
            with b.read() as r:
                assert r.count("c") == 30000
        with pytest.raises(sextant.Exists):
            db.backup(dest)
        # A true result stops it; so does an exception; nothing is left at dest.
        dest2 = tmp_path / "copy2.sx"
        with pytest.raises(sextant.Cancelled):
            db.backup(dest2, progress=lambda d, t: True)
        assert not dest2.exists()

        def boom(d: int, t: int) -> None:
            raise KeyboardInterrupt

        with pytest.raises(sextant.Cancelled):
            db.backup(dest2, progress=boom)
        assert not dest2.exists()
        assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]
        # Overwriting a database a handle has open would remove its WAL under it: Busy.
        with sextant.open(dest) as held:
            with held.write() as w:
                w.create_collection("only_in_the_wal", 2)
            with pytest.raises(sextant.Busy, match="is a database open in another handle"):
                db.backup(dest, overwrite=True)
            with held.read() as r:
                assert "only_in_the_wal" in r.list_collections()
        db.backup(dest, overwrite=True)
        with sextant.open(dest, read_only=True) as b, b.read() as r:
            assert r.list_collections() == ["c"]


def test_backup_while_threads_write(tmp_path: Path) -> None:
    with sextant.open(tmp_path / "w.sx", sync="off") as db:
        _fill(db, "c", 1000, "flat")
        stop = threading.Event()

        def writer() -> None:
            b = 0
            while not stop.is_set():
                with db.write(timeout=5) as w:
                    w.upsert("c", [f"w{b}-{i}" for i in range(10)], np.ones((10, 8), np.float32))
                b += 1

        t = threading.Thread(target=writer)
        t.start()
        try:
            for i in range(5):
                dest = tmp_path / f"b{i}.sx"
                db.backup(dest)
                with sextant.open(dest) as b:
                    b.check()
                    with b.read() as r:
                        assert (r.count("c") - 1000) % 10 == 0
        finally:
            stop.set()
            t.join()


def test_compact_reclaims_and_keeps_survivors(tmp_path: Path) -> None:
    with sextant.open(tmp_path / "k.sx", sync="off") as db:
        vecs = _fill(db, "c", 4000, "hnsw")
        with db.write() as w:
            w.delete("c", [f"id{i}" for i in range(4000) if i % 4])
        before = db.space()
        assert before["reclaimable_bytes"] > 0 and before["live_bytes"] > 0
        old = db.read()
        calls: List[Tuple[int, int]] = []
        db.compact(timeout=5, progress=lambda d, t: calls.append((d, t)))
        assert calls[-1] == (1000, 1000)
        after = db.space()
        assert after["live_bytes"] == before["live_bytes"]
        assert after["reclaimable_bytes"] < before["reclaimable_bytes"] // 10
        assert after["page_count"] < before["page_count"] // 2  # the tail is given back
        db.check()
        with db.read() as r:
            got = r.get_many("c", [f"id{i}" for i in range(0, 4000, 4)])
            assert all(g is not None for g in got)
            np.testing.assert_array_equal(got[1].vector, vecs[4])  # type: ignore[union-attr]
            hits = r.search("c", vecs[8], k=1)
            assert hits[0].id == "id8"
        assert old.count("c") == 1000  # the old snapshot is still readable
        old.end()
        with pytest.raises(sextant.Cancelled):
            db.compact(progress=lambda d, t: True)
        with db.write():
            with pytest.raises(sextant.Busy):
                db.compact(timeout=0)


def test_one_cursor_from_threads_at_once_is_misuse_never_a_crash(tmp_path: Path) -> None:
    # next_batch releases the GIL: two threads in one cursor at once once both moved it
    # past its end (SIGSEGV). The second is now Misuse and changes nothing.
    with sextant.open(tmp_path / "t.sx", sync="off") as db:
        _fill(db, "c", 20000)
        with db.read() as r:
            for _ in range(5):
                cur = r.cursor("c", batch=97)
                got: List[str] = []
                misuse = [0]
                lock = threading.Lock()

                def work() -> None:
                    while True:
                        try:
                            batch = cur.next_batch()
                        except sextant.Misuse:
                            with lock:
                                misuse[0] += 1
                            continue
                        if not batch:
                            return
                        with lock:
                            got.extend(rec.id for rec in batch)

                ts = [threading.Thread(target=work) for _ in range(4)]
                for t in ts:
                    t.start()
                for t in ts:
                    t.join()
                assert len(got) == 20000 and len(set(got)) == 20000
                assert cur.remaining == 0
