"""Type hints: mypy --strict passes on the installed package (py.typed, inline
annotations, stubs of the generated module) and on typical user code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

USER_CODE = '''
from typing import Any, Dict, List, Optional, Tuple
import numpy as np
import numpy.typing as npt
import sextant

def use(path: str) -> Tuple[List[sextant.Hit], Optional[Dict[str, Any]]]:
    with sextant.open(path, sync="normal") as db:
        with db.write(timeout=1.5) as w:
            w.create_collection("docs", 4, metric="cosine", index="hnsw", m=16, ef_construction=200)
            w.upsert("docs", ["a", "b"], np.ones((2, 4), dtype=np.float32), [{"t": 1}, None])
            w.upsert("docs", "c", [1.0, 2.0, 3.0, 4.0], {"t": 2})
            n: int = w.delete("docs", ["b"])
        with db.read() as r:
            hits = r.search("docs", np.ones(4, dtype=np.float32), 3, ef=64)
            first: str = hits[0].id
            dist: float = hits[0].distance
            ids, dists = r.search_batch("docs", np.ones((2, 4)), 3)
            d32: npt.NDArray[np.float32] = dists
            rec = r.get("docs", "a")
            v: npt.NDArray[np.float32] = rec.vector
            info: Dict[str, Any] = r.describe("docs")
            names: List[str] = r.list_collections()
            count: int = r.count("docs")
        stats: Dict[str, int] = db.stats()
        db.checkpoint(timeout=None)
        db.check()
    try:
        sextant.open(path, read_only=True)
    except sextant.NotFound as e:
        code: str = e.code
    return hits, rec.metadata
'''


def mypy(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    try:
        import mypy  # noqa: F401
    except ImportError:
        pytest.fail("mypy is not installed: pip install mypy (bindings/python/run_tests.sh does)")
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cwd / ".mypy_cache"), *args],
        cwd=cwd, capture_output=True, text=True, timeout=600,
    )


def test_mypy_strict_on_the_package(tmp_path: Path) -> None:
    res = mypy("-p", "sextant", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr


def test_mypy_strict_on_user_code(tmp_path: Path) -> None:
    (tmp_path / "user.py").write_text(USER_CODE)
    res = mypy("user.py", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
