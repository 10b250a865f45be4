"""Threads: many threads search one read session at once, with the GIL released."""

from __future__ import annotations

import threading
import time
from typing import Dict, List, Tuple

import numpy as np
import pytest

import sextant

N, DIM, NQ = 4000, 64, 120


@pytest.fixture
def loaded(db: sextant.Database, rng: np.random.Generator) -> Tuple[sextant.Database, np.ndarray]:
    vecs = rng.standard_normal((N, DIM), dtype=np.float32)
    with db.write() as w:
        w.create_collection("flat", DIM, index="flat")
        w.create_collection("hnsw", DIM, metric="cosine", index="hnsw")
        ids = [f"v{i}" for i in range(N)]
        w.upsert("flat", ids, vecs)
        w.upsert("hnsw", ids, vecs)
    return db, rng.standard_normal((NQ, DIM), dtype=np.float32)


def test_threads_searching_one_read_session_match_single_threaded(
    loaded: Tuple[sextant.Database, np.ndarray],
) -> None:
    db, queries = loaded
    with db.read() as r:
        expected: Dict[Tuple[str, int], List[sextant.Hit]] = {}
        for coll in ("flat", "hnsw"):
            for i, q in enumerate(queries):
                expected[coll, i] = r.search(coll, q, 10, ef=64)
        failures: List[str] = []
        errors: List[BaseException] = []
        barrier = threading.Barrier(4)

        def worker(t: int) -> None:
            try:
                barrier.wait()
                order = list(range(NQ)) if t % 2 == 0 else list(reversed(range(NQ)))
                for rep in range(2):
                    for i in order:
                        coll = "flat" if (i + t + rep) % 2 == 0 else "hnsw"
                        got = r.search(coll, queries[i], 10, ef=64)
                        if got != expected[coll, i]:
                            failures.append(f"thread {t}, {coll} query {i}: {got} != {expected[coll, i]}")
            except BaseException as e:  # noqa: BLE001 - reported by the main thread
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)
        assert not errors, errors
        assert not failures, failures[:5]


def test_threads_search_while_a_writer_commits(loaded: Tuple[sextant.Database, np.ndarray]) -> None:
    """Readers on an old snapshot keep seeing it, exactly, while commits go on."""
    db, queries = loaded
    r = db.read()
    expected = [r.search("flat", q, 5) for q in queries[:30]]
    stop = threading.Event()
    failures: List[str] = []

    def reader() -> None:
        while not stop.is_set():
            for i, q in enumerate(queries[:30]):
                if r.search("flat", q, 5) != expected[i]:
                    failures.append(f"query {i} changed")

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for th in threads:
        th.start()
    try:
        for g in range(5):
            with db.write() as w:
                w.upsert("flat", [f"new{g}"], queries[g])  # an exact match for query g
                w.delete("flat", [f"v{g}"])
    finally:
        stop.set()
        for th in threads:
            th.join(60)
    r.end()
    assert not failures, failures[:5]
    with db.read() as r2:
        assert r2.search("flat", queries[0], 1)[0].id == "new0"


def test_gil_is_released_during_a_search(db: sextant.Database, rng: np.random.Generator) -> None:
    """While one thread is inside a long search_batch, this thread keeps running Python:
    its loop iterations cover most of the call's time (with the GIL held they could not)."""
    vecs = rng.standard_normal((20000, 64), dtype=np.float32)
    with db.write() as w:
        w.create_collection("c", 64, index="flat")
        w.upsert("c", [f"v{i}" for i in range(len(vecs))], vecs)
    queries = rng.standard_normal((1500, 64), dtype=np.float32)
    with db.read() as r:
        span: List[float] = []
        started = threading.Event()

        def search() -> None:
            started.set()
            t0 = time.monotonic()
            r.search_batch("c", queries, 10)
            span.extend([t0, time.monotonic()])

        th = threading.Thread(target=search)
        stamps: List[float] = []
        th.start()
        started.wait()
        while th.is_alive():
            stamps.append(time.monotonic())
        th.join()
    t0, t1 = span
    assert t1 - t0 > 0.02, "the search was too quick to tell"
    inside = [s for s in stamps if t0 < s < t1]
    # Bucket the call's time into 20 slices: this thread ran in most of them.
    slices = {int((s - t0) / (t1 - t0) * 20) for s in inside}
    assert len(slices) >= 10, f"this thread ran in {len(slices)} of 20 slices of the search"
