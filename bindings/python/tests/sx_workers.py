"""Worker processes of test_multiprocess.py (a module of its own so that processes
started with the spawn method can import it)."""

from __future__ import annotations

import time
from typing import Any, Dict, List

import numpy as np

import sextant

K = 16  # ids "i0" .. "i15" are rewritten by every commit
DIM = 8


def expected_vector(g: int, j: int) -> np.ndarray:
    """What commit g writes under id "i<j>": every component encodes g and j."""
    return np.array([g + j / 100 + c / 10000 for c in range(DIM)], dtype=np.float32)


def writer(path: str, seconds: float) -> Dict[str, Any]:
    """Commit g (g = 1, 2, ...) rewrites i0..i15 with generation-g vectors and metadata,
    adds "x<g>", deletes "x<g-1>" and sets user_version g, atomically."""
    db = sextant.open(path, sync="normal")
    g = 0
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            g += 1
            with db.write() as w:
                vecs = np.stack([expected_vector(g, j) for j in range(K)])
                w.upsert("gen", [f"i{j}" for j in range(K)], vecs, [{"g": g, "j": j} for j in range(K)])
                w.upsert("gen", f"x{g}", expected_vector(g, 99), {"g": g})
                if g > 1:
                    w.delete("gen", [f"x{g - 1}"])
                w.set_user_version(g)
    finally:
        db.close()
    return {"commits": g}


def check_snapshot(r: sextant.ReadSession, rng: np.random.Generator) -> int:
    """Asserts that the snapshot shows exactly one generation; returns it."""
    g = r.user_version()
    if g == 0:
        assert r.count("gen") == 0
        return 0
    assert r.count("gen") == K + 1, f"generation {g}: count {r.count('gen')}"
    for j in rng.choice(K, size=4, replace=False):
        rec = r.get("gen", f"i{j}")
        assert np.array_equal(rec.vector, expected_vector(g, int(j))), f"generation {g}: i{j} holds {rec.vector}"
        assert rec.metadata == {"g": g, "j": int(j)}, f"generation {g}: i{j} metadata {rec.metadata}"
    assert r.get("gen", f"x{g}").metadata == {"g": g}
    if g > 1:
        try:
            r.get("gen", f"x{g - 1}")
        except sextant.NotFound:
            pass
        else:
            raise AssertionError(f"generation {g}: x{g - 1} is still there")
    hits = r.search("gen", expected_vector(g, 3), 2)
    assert hits[0].id == "i3" and hits[0].distance == 0.0, f"generation {g}: search gave {hits}"
    return g


def reader(path: str, seconds: float, seed: int) -> Dict[str, Any]:
    rng = np.random.default_rng(seed)
    db = sextant.open(path, sync="normal")
    seen: List[int] = []
    failures: List[str] = []
    deadline = time.monotonic() + seconds
    last = 0
    try:
        while time.monotonic() < deadline and len(failures) < 5:
            try:
                with db.read() as r:
                    g = check_snapshot(r, rng)
                    if g < last:
                        failures.append(f"generation went back from {last} to {g}")
                    last = g
                    seen.append(g)
                    if len(seen) % 8 == 0:
                        time.sleep(0.02)  # hold the snapshot while commits go on ...
                        if check_snapshot(r, rng) != g:  # ... and it must not move
                            failures.append(f"snapshot moved from generation {g}")
            except AssertionError as e:
                failures.append(str(e))
    finally:
        db.close()
    return {"snapshots": len(seen), "generations": len(set(seen)), "failures": failures}
