"""4 reader processes and 1 writer process on one database, with no lock of their own.

The writer's commit g rewrites a known set of vectors whose values encode g (see
sx_workers.py); each reader checks that every snapshot it takes shows exactly one
generation, that generations never go back, and that a snapshot held across commits
does not move. Runs for $SX_PY_STRESS_SECONDS (default 10) seconds.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from pathlib import Path

import numpy as np

import sextant

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sx_workers  # noqa: E402

SECONDS = float(os.environ.get("SX_PY_STRESS_SECONDS", "10"))


def test_four_readers_one_writer(db_path: str) -> None:
    with sextant.open(db_path) as db:
        with db.write() as w:
            w.create_collection("gen", sx_workers.DIM, index="flat")
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(5) as pool:
        writer = pool.apply_async(sx_workers.writer, (db_path, SECONDS))
        readers = [pool.apply_async(sx_workers.reader, (db_path, SECONDS, seed)) for seed in range(4)]
        w = writer.get(SECONDS + 120)
        rs = [r.get(SECONDS + 120) for r in readers]
    failures = [f for r in rs for f in r["failures"]]
    assert not failures, failures
    assert w["commits"] >= 10, w
    for r in rs:
        assert r["snapshots"] >= 10, rs
        assert r["generations"] >= 2, rs
    with sextant.open(db_path) as db:
        db.check()
        with db.read() as r:
            assert r.user_version() == w["commits"]
            assert sx_workers.check_snapshot(r, np.random.default_rng(0)) == w["commits"]
    print(f"writer commits: {w['commits']}; reader snapshots: {[r['snapshots'] for r in rs]}")
