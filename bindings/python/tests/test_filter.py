"""Filtered search from Python: filter= (dict or JSON text), include=, exact=, on
search and search_batch, read and write sessions; invalid filters raise InvalidArgument."""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np
import pytest

import sextant


def fill(db: sextant.Database, index: str, n: int = 200, dim: int = 4) -> np.ndarray:
    vecs = np.arange(n * dim, dtype=np.float32).reshape(n, dim) / 100
    meta: List[Dict[str, Any]] = [{"i": i, "c": i % 5, "tags": ["even" if i % 2 == 0 else "odd"]} for i in range(n)]
    meta[3] = {}  # no fields
    with db.write() as w:
        w.create_collection("c", dim, index=index)
        w.upsert("c", [f"v{i}" for i in range(n)], vecs, meta)
        w.upsert("c", ["none"], vecs[:1] + 1000)  # no metadata at all
    return vecs


@pytest.mark.parametrize("index", ["flat", "hnsw"])
def test_filter_dict_and_text(db: sextant.Database, index: str) -> None:
    vecs = fill(db, index)
    with db.read() as r:
        hits = r.search("c", vecs[0], 5, filter={"c": 2})
        assert [h.id for h in hits] == ["v2", "v7", "v12", "v17", "v22"]
        assert r.search("c", vecs[0], 5, filter='{"c": 2}') == hits
        hits = r.search("c", vecs[0], 3, filter={"$and": [{"i": {"$gte": 10}}, {"tags": "odd"}]})
        assert [h.id for h in hits] == ["v11", "v13", "v15"]
        hits = r.search("c", vecs[0], 3, filter={"c": {"$exists": False}})
        assert [h.id for h in hits] == ["v3", "none"]
        assert r.search("c", vecs[0], 3, filter={"c": {"$in": []}}) == []
        assert r.search("c", vecs[0], 2, filter={}) == r.search("c", vecs[0], 2)
        exact = r.search("c", vecs[50], 4, filter={"c": {"$ne": 0}}, exact=True)
        assert [h.id for h in exact] == ["v49", "v51", "v48", "v52"] or [h.id for h in exact][0] in ("v49", "v51")
        # hits stay pairs
        hid, dist = hits[0]
        assert hid == "v3" and isinstance(dist, float)


def test_write_session_sees_its_own_changes(db: sextant.Database) -> None:
    vecs = fill(db, "flat")
    with db.write() as w:
        w.upsert("c", ["v0"], vecs[:1], [{"c": 9}])
        assert [h.id for h in w.search("c", vecs[0], 5, filter={"c": 9})] == ["v0"]
        w.delete("c", ["v0"])
        assert w.search("c", vecs[0], 5, filter={"c": 9}) == []


def test_include_metadata_and_vectors(db: sextant.Database) -> None:
    vecs = fill(db, "flat")
    with db.read() as r:
        plain = r.search("c", vecs[0], 2)
        assert plain[0].metadata is None and plain[0].vector is None
        hits = r.search("c", vecs[0], 2, include=("metadata", "vector"))
        assert hits[0].metadata == {"i": 0, "c": 0, "tags": ["even"]}
        assert hits[0].vector is not None and hits[0].vector.dtype == np.float32
        np.testing.assert_array_equal(hits[1].vector, vecs[1])
        hits = r.search("c", vecs[0] + 1000, 1, include="metadata")
        assert hits[0].id == "none" and hits[0].metadata is None and hits[0].vector is None
        ids, dist, meta, vv = r.search_batch("c", vecs[:2], 3, filter={"c": 1}, include=["metadata", "vector"])
        assert ids.tolist() == [["v1", "v6", "v11"], ["v1", "v6", "v11"]]
        assert meta is not None and meta[1][2] == {"i": 11, "c": 1, "tags": ["odd"]}
        assert vv is not None and vv.shape == (2, 3, 4)
        np.testing.assert_array_equal(vv[0][1], vecs[6])
        # padding: fewer hits than k
        ids, dist, meta, vv = r.search_batch("c", vecs[:1], 3, filter={"i": 7}, include=["metadata", "vector"])
        assert ids.tolist() == [["v7", None, None]]
        assert meta is not None and meta[0][1] is None
        assert vv is not None and np.isnan(vv[0][1]).all()
        ids, dist, meta, vv = r.search_batch("c", vecs[:1], 1, include=["vector"])
        assert meta is None and vv is not None
        assert len(r.search_batch("c", vecs[:1], 1, filter={"i": 7})) == 2


def test_batch_with_filter_equals_one_by_one(db: sextant.Database) -> None:
    vecs = fill(db, "hnsw", n=500, dim=8)
    with db.read() as r:
        f = {"c": {"$lt": 2}, "i": {"$gt": 30}}
        ids, dist = r.search_batch("c", vecs[:20], 5, filter=f)
        for q in range(20):
            assert [h.id for h in r.search("c", vecs[q], 5, filter=f)] == ids[q].tolist()


@pytest.mark.parametrize(
    "bad",
    [
        {"c": {"$regex": "x"}},
        {"$and": {"c": 1}},
        {"c": [1, 2]},
        {"c": {"$gt": True}},
        "[1]",
        "not json",
        {"a..b": 1},
    ],
)
def test_invalid_filters_raise_invalid_argument(db: sextant.Database, bad: Any) -> None:
    vecs = fill(db, "flat", n=10)
    with db.read() as r:
        with pytest.raises(sextant.InvalidArgument):
            r.search("c", vecs[0], 1, filter=bad)
        with pytest.raises(sextant.InvalidArgument):
            r.search_batch("c", vecs[:2], 1, filter=bad)
    with pytest.raises(sextant.InvalidArgument):
        sextant.check_filter(bad)


def test_check_filter_names_the_part_and_bad_arguments() -> None:
    sextant.check_filter({"a": {"$gte": 1}, "$or": [{"b": None}]})
    sextant.check_filter("{}")
    with pytest.raises(sextant.InvalidArgument, match=r"\$foo"):
        sextant.check_filter({"a": {"$foo": 1}})
    with pytest.raises(TypeError):
        sextant.check_filter(5)  # type: ignore[arg-type]
    with pytest.raises(sextant.InvalidArgument):
        sextant.check_filter({"a": float("nan")})


def test_bad_include_and_filter_types(db: sextant.Database) -> None:
    vecs = fill(db, "flat", n=10)
    with db.read() as r:
        with pytest.raises(sextant.InvalidArgument):
            r.search("c", vecs[0], 1, include=["ids"])
        with pytest.raises(TypeError):
            r.search("c", vecs[0], 1, filter=3)  # type: ignore[arg-type]


def nested_not(depth: int) -> Dict[str, Any]:
    f: Dict[str, Any] = {"i": 1}
    for _ in range(depth):
        f = {"$not": f}
    return f


@pytest.mark.parametrize("depth", [65, 5000, 100000])
def test_filter_dict_nested_past_any_limit_is_invalid_argument(db: sextant.Database, depth: int) -> None:
    # A dict nested past Python's recursion limit made json.dumps raise RecursionError.
    vecs = fill(db, "flat", n=10)
    bad = nested_not(depth)
    with db.read() as r:
        with pytest.raises(sextant.InvalidArgument, match="nested deeper than 64"):
            r.search("c", vecs[0], 1, filter=bad)
        with pytest.raises(sextant.InvalidArgument, match="nested deeper than 64"):
            r.search_batch("c", vecs[:2], 1, filter=bad)
    with pytest.raises(sextant.InvalidArgument, match="nested deeper than 64"):
        sextant.check_filter(bad)
    sextant.check_filter(nested_not(63))  # within the limit: valid
