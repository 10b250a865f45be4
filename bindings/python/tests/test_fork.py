"""fork() after open, the gunicorn --preload pattern: a child uses the Database it
inherited (the core re-opens its files there), sessions begun before the fork raise
Misuse in the child, and the parent is unaffected."""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict, List

import numpy as np
import pytest

import sextant

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def in_child(fn: Callable[[], Dict[str, Any]]) -> Dict[str, Any]:
    """Runs fn in a forked child; returns what it returned (or the error it raised)."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 0
        try:
            os.close(rfd)
            try:
                out = fn()
            except BaseException as e:  # noqa: BLE001 - reported to the parent
                out = {"error": f"{type(e).__name__}: {e}"}
                code = 1
            os.write(wfd, json.dumps(out).encode())
            os.close(wfd)
        finally:
            os._exit(code)
    os.close(wfd)
    chunks: List[bytes] = []
    while True:
        b = os.read(rfd, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(rfd)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status), f"child died: status {status}"
    res: Dict[str, Any] = json.loads(b"".join(chunks) or b"{}")
    assert os.WEXITSTATUS(status) == 0, res
    return res


def code_of(fn: Callable[[], Any]) -> str:
    try:
        fn()
    except sextant.Error as e:
        return e.code
    return "OK"


def test_child_reads_and_writes_through_the_inherited_database(db_path: str) -> None:
    db = sextant.open(db_path)
    with db.write() as w:
        w.create_collection("c", 2, index="flat")
        w.upsert("c", ["a", "b"], [[1, 0], [0, 1]])
    r_pre = db.read()

    def child() -> Dict[str, Any]:
        out: Dict[str, Any] = {
            "pre_fork_read": code_of(lambda: r_pre.count("c")),
            # Ending it is allowed (idempotent, and the core leaves the parent's reader
            # slot alone); using it stays MISUSE.
            "pre_fork_end": code_of(r_pre.end),
            "pre_fork_read_after_end": code_of(lambda: r_pre.count("c")),
        }
        with db.read() as r:
            out["count"] = r.count("c")
            out["hit"] = r.search("c", [1, 0], 1)[0].id
        with db.write(timeout=10) as w:
            w.upsert("c", "from_child", [0.5, 0.5])
        with db.read() as r:
            out["count_after"] = r.count("c")
        db.close()  # closing in the child must not release anything of the parent's
        return out

    res = in_child(child)
    assert res == {
        "pre_fork_read": "MISUSE",
        "pre_fork_end": "OK",
        "pre_fork_read_after_end": "MISUSE",
        "count": 2,
        "hit": "a",
        "count_after": 3,
    }
    # The parent: its pre-fork session still works on its snapshot; the child's commit
    # is visible to new sessions; writing works.
    assert r_pre.count("c") == 2
    assert db.stats()["readers"] == 1  # still pinned by the parent
    r_pre.end()
    with db.read() as r:
        assert r.count("c") == 3
        assert np.array_equal(r.get("c", "from_child").vector, np.array([0.5, 0.5], dtype=np.float32))
    with db.write(timeout=10) as w:
        w.delete("c", ["from_child"])
    db.check()
    db.close()


def test_pre_fork_write_session_is_misuse_in_the_child_and_keeps_the_lock(db_path: str) -> None:
    db = sextant.open(db_path)
    with db.write() as w:
        w.create_collection("c", 2, index="flat")
    w_pre = db.write()
    w_pre.upsert("c", "parent", [1, 1])

    def child() -> Dict[str, Any]:
        return {
            "upsert": code_of(lambda: w_pre.upsert("c", "child", [2, 2])),
            "commit": code_of(w_pre.commit),
            "abort": code_of(w_pre.abort),
            "new_write": code_of(lambda: db.write(timeout=0)),  # the parent holds the writer
            "read": code_of(lambda: db.read().count("c")),
        }

    res = in_child(child)
    assert res == {"upsert": "MISUSE", "commit": "MISUSE", "abort": "MISUSE", "new_write": "BUSY", "read": "OK"}
    # The parent's session is intact and still holds the writer lock.
    other = sextant.open(db_path)
    with pytest.raises(sextant.Busy):
        other.write(timeout=0)
    w_pre.commit()
    with other.read() as r:
        assert r.count("c") == 1
    other.close()
    db.close()


def test_preload_pattern_several_children(db_path: str) -> None:
    """Open once in the parent, fork workers that serve reads, as gunicorn --preload does."""
    db = sextant.open(db_path)
    vecs = np.eye(4, dtype=np.float32)
    with db.write() as w:
        w.create_collection("c", 4, index="flat")
        w.upsert("c", ["e0", "e1", "e2", "e3"], vecs)

    def worker(i: int) -> Callable[[], Dict[str, Any]]:
        def run() -> Dict[str, Any]:
            hits = []
            for _ in range(50):
                with db.read() as r:
                    hits.append(r.search("c", vecs[i], 1)[0].id)
            return {"hits": sorted(set(hits))}

        return run

    for i in range(3):
        assert in_child(worker(i)) == {"hits": [f"e{i}"]}
    with db.read() as r:
        assert r.count("c") == 4
    db.close()
