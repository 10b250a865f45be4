"""The Pythonic surface over the SWIG-generated module sextant._sextant.

This layer only translates: Python values to the C API's arguments (numpy float32
arrays without copies, JSON text for metadata, seconds to milliseconds) and the C
API's results to Python values. Every rule about data and state is the core's; the
exceptions are the core's statuses (see _errors.py), raised by the low-level module.

Lifetimes follow the C API: a Database owns its handle and closes it when closed or
garbage-collected; closing it ends its sessions, whose later use raises Closed.
Sessions do not keep their Database alive: keep a reference to it (or use it as a
context manager) for as long as its sessions are in use.
"""

from __future__ import annotations

import json
import math
import os
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
    Type,
    Union,
)

import numpy as np
import numpy.typing as npt

from . import _sextant as _c
from ._errors import (
    ERRORS_BY_CODE,
    DimensionMismatch,
    Error,
    InvalidArgument,
    Misuse,
)

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "Hit",
    "Filter",
    "check_filter",
    "Record",
    "Cursor",
    "Database",
    "ReadSession",
    "WriteSession",
    "Session",
    "open",
    "version",
    "format_version",
]

#: Anything that converts to float32 vectors: numpy arrays (float32 C-contiguous ones
#: are passed to the core without a copy), nested sequences of numbers, ...
VectorLike = npt.ArrayLike
#: Metadata of one vector: a JSON object (a dict), or None for no metadata.
Metadata = Optional[Mapping[str, Any]]
#: A file system path.
PathLike = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]


class _HitFields(NamedTuple):
    id: str
    distance: float


class Hit(_HitFields):
    """One search result: the vector's id and its distance to the query (smaller is
    closer). A pair (it unpacks as ``id, distance``); when the search was asked to
    include them, ``metadata`` holds the item's metadata (a dict, or None when it has
    none) and ``vector`` its vector (float32), else both are None."""

    metadata: Optional[Dict[str, Any]] = None
    vector: Optional[npt.NDArray[np.float32]] = None


#: A filter over metadata: a dict (turned into JSON), or its JSON text. The language
#: (Chroma/Pinecone style: {"field": value}, $eq $ne $gt $gte $lt $lte $in $nin
#: $exists, $and $or $not, dotted paths) is documented in sextant.h, section Filters.
Filter = Union[Mapping[str, Any], str]


class Record(NamedTuple):
    """One stored vector, as returned by get()."""

    id: str
    vector: npt.NDArray[np.float32]
    metadata: Optional[Dict[str, Any]]


def _register() -> None:
    classes: List[Type[Error]] = []
    for status in range(_c.SX_STATUS_COUNT):
        classes.append(ERRORS_BY_CODE.get(_c.sx_status_name(status), Error))
    _c.sx_py_register(Hit, tuple(classes))


_register()

_F32 = np.dtype(np.float32)
_NDARRAY = np.ndarray
_INT_MAX = 2**31 - 1
_U32_MAX = 2**32 - 1
_U64_MAX = 2**64 - 1
_METADATA_DEPTH_MAX = 128  # SX_METADATA_DEPTH_MAX
_FILTER_DEPTH_MAX = 64  # logical operators nest at most 64 deep (sextant.h, Filters)


def version() -> str:
    """The version of the linked core library, "major.minor.patch"."""
    return str(_c.sx_version())


def format_version() -> int:
    """The on-disk format version the core library writes and reads."""
    return int(_c.sx_format_version())


# ---- argument conversion --------------------------------------------------------------


def _timeout_ms(timeout: Optional[float]) -> int:
    """Seconds (None: wait for ever, 0: do not wait) to the C API's milliseconds."""
    if timeout is None:
        return -1
    try:
        if isinstance(timeout, (str, bytes, bytearray)):
            raise TypeError
        t = float(timeout)
    except (TypeError, ValueError):
        raise TypeError(f"timeout must be a number of seconds or None, not {type(timeout).__name__}") from None
    if math.isnan(t) or t < 0:
        raise InvalidArgument(f"timeout {timeout!r} is not a number of seconds >= 0 (None waits for ever)")
    if t == 0:
        return 0
    if math.isinf(t):
        return -1
    return min(max(1, round(t * 1000)), _INT_MAX)


def _uint(value: Any, what: str, limit: int) -> int:
    try:
        v = int(value.__index__())
    except (AttributeError, TypeError):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}") from None
    if v < 0 or v > limit:
        raise InvalidArgument(f"{what} {v} is out of range (0 to {limit})")
    return v


def _u32_for_core(value: Any, what: str) -> Tuple[int, Optional[str]]:
    """value as a uint32 for an options struct. A value outside uint32 is passed on as
    UINT32_MAX, which the core rejects in its own order of checks (an ended session
    is still CLOSED first); the second item is then the text to show instead."""
    try:
        v = int(value.__index__())
    except (AttributeError, TypeError):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}") from None
    if 0 <= v <= _U32_MAX:
        return v, None
    return _U32_MAX, str(v)


def _reword(e: Error, swaps: List[Tuple[str, str]]) -> Error:
    """e with the stand-ins the binding passed to the core named as the caller wrote them."""
    msg = str(e)
    changed = msg
    for stand_in, original in swaps:
        changed = changed.replace(stand_in, original)
    return e if changed == msg else type(e)(changed)


def _float32(values: Any, what: str) -> npt.NDArray[np.float32]:
    """values as a C-contiguous float32 array: the same array when it already is one,
    else an explicit conversion of the values (never a reinterpretation of bytes)."""
    if type(values) is _NDARRAY and values.dtype is _F32 and values.flags.c_contiguous:
        return values
    if values is None:
        raise TypeError(f"{what} must be a sequence of numbers or a numpy array, not None")
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            arr = np.ascontiguousarray(np.asarray(values, dtype=np.float32))
    except (TypeError, ValueError) as e:
        if isinstance(values, (list, tuple)) and values:
            lengths = set()
            for row in values:
                try:
                    lengths.add(len(row))
                except TypeError:
                    lengths.add(-1)
            if len(lengths) > 1 and -1 not in lengths:
                raise DimensionMismatch(
                    f"{what} have different lengths ({', '.join(map(str, sorted(lengths)))})"
                ) from None
        raise InvalidArgument(f"{what} cannot be converted to float32: {e}") from None
    return arr


def _matrix(vectors: Any, what: str) -> npt.NDArray[np.float32]:
    """A (n, dim) float32 C-contiguous array; a 1-D vector is one row."""
    arr = _float32(vectors, what)
    if arr.ndim == 2:
        return arr
    if arr.ndim == 1:
        return arr.reshape(1, arr.shape[0])
    raise InvalidArgument(f"{what} must be 1- or 2-dimensional, not {arr.ndim}-dimensional")


def _vector(query: Any) -> npt.NDArray[np.float32]:
    if type(query) is _NDARRAY and query.ndim == 1 and query.dtype is _F32 and query.flags.c_contiguous:
        return query
    arr = _float32(query, "query")
    if arr.ndim == 1:
        return arr
    if arr.ndim == 2 and arr.shape[0] == 1:
        return arr.reshape(arr.shape[1])
    raise InvalidArgument(f"query must be one vector (1-dimensional), not of shape {arr.shape}; use search_batch")


_INCLUDE = {"metadata": _c.SX_INCLUDE_METADATA, "vector": _c.SX_INCLUDE_VECTOR}


def _filter_text(filter: Optional[Filter]) -> Optional[str]:
    if filter is None or isinstance(filter, str):
        return filter
    if isinstance(filter, Mapping):
        try:
            return json.dumps(filter, ensure_ascii=False, allow_nan=False)
        except RecursionError:
            # Deeper than Python's recursion limit: far past the core's limit too.
            raise InvalidArgument(f"filter: nested deeper than {_FILTER_DEPTH_MAX}") from None
        except (TypeError, ValueError) as e:
            raise InvalidArgument(f"filter cannot be written as JSON: {e}") from None
    raise TypeError(f"filter must be a dict, a JSON str or None, not {type(filter).__name__}")


def _include_mask(include: Union[str, Iterable[str]]) -> int:
    if isinstance(include, str):
        include = (include,)
    mask = 0
    for name in include:
        bit = _INCLUDE.get(name) if isinstance(name, str) else None
        if bit is None:
            raise InvalidArgument(f"include takes 'metadata' and 'vector', not {name!r}")
        mask |= bit
    return mask


def check_filter(filter: Filter) -> None:
    """Raises InvalidArgument, naming the offending part, if filter is not a valid
    filter; returns None otherwise. Searches check their filter the same way."""
    text = _filter_text(filter)
    _c.sx_filter_check(text)


def _search_options(
    ef: Optional[int],
    cancel: Optional[Callable[[], bool]],
    filter: Optional[Filter] = None,
    include: Union[str, Iterable[str]] = (),
    exact: bool = False,
) -> Any:
    if filter is not None or include or exact:
        return (
            None if ef is None else _uint(ef, "ef", _U32_MAX),
            cancel,
            _filter_text(filter),
            _include_mask(include),
            bool(exact),
        )
    if cancel is not None:
        return (None if ef is None else _uint(ef, "ef", _U32_MAX), cancel)
    if ef is None:
        return None
    return _uint(ef, "ef", _U32_MAX)


def _json_default(o: Any) -> Any:
    """json.dumps' fallback: any Mapping (a read-only MappingProxyType, say) is the dict
    it shows; anything else is not JSON."""
    if isinstance(o, Mapping):
        return dict(o)
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def _metadata_text(metadata: Optional[Sequence[Metadata]], n: int) -> Optional[List[Optional[str]]]:
    if metadata is None:
        return None
    if isinstance(metadata, (str, bytes, Mapping)):
        raise TypeError("metadata must be a list with one dict (or None) per id")
    texts: List[Optional[str]] = []
    for i, m in enumerate(metadata):
        if m is None:
            texts.append(None)
            continue
        try:
            texts.append(
                json.dumps(m, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_json_default)
            )
        except RecursionError:
            raise InvalidArgument(
                f"metadata of item {i} is nested deeper than {_METADATA_DEPTH_MAX} levels"
            ) from None
        except (TypeError, ValueError) as e:
            raise InvalidArgument(f"metadata of item {i} cannot be written as JSON: {e}") from None
    return texts


# ---- sessions -------------------------------------------------------------------------


def _records(batch: Any, keep_missing: bool) -> List[Any]:
    n, dim, ids, vecs, found, metas = batch
    rows = np.frombuffer(vecs, dtype=np.float32).reshape(n, dim) if n else np.zeros((0, dim), np.float32)
    out: List[Any] = []
    for i in range(n):
        if not found[i]:
            out.append(None)
            continue
        m = metas[i]
        out.append(Record(ids[i], rows[i], None if m is None else json.loads(m)))
    return out if keep_missing else [r for r in out if r is not None]


class Cursor:
    """Walks a collection's live records in ascending bytewise id order, in batches
    (see Session.cursor). Iterating gives Records; next_batch() gives lists. It keeps
    its session alive; once the session ends it raises Closed. Use from one thread
    at a time: a call made while another runs on the same cursor raises Misuse and
    changes nothing."""

    __slots__ = ("_session", "_h", "_batch")

    def __init__(self, session: Session, handle: Any, batch: int) -> None:
        self._session = session
        self._h = handle
        self._batch = _uint(batch, "batch", _INT_MAX)
        if self._batch == 0:
            raise InvalidArgument("batch size is 0")  # the core's words for next_batch(0)

    def next_batch(self, max: Optional[int] = None) -> List[Record]:  # noqa: A002
        """The next records, at most max (default: the cursor's batch size); an empty
        list at the end."""
        m = self._batch if max is None else _uint(max, "max", _INT_MAX)
        return _records(_c.sx_cursor_next(self._h, m), keep_missing=False)

    @property
    def remaining(self) -> int:
        """Ids still to visit (records deleted since the cursor opened included)."""
        return int(_c.sx_cursor_remaining(self._h))

    def __iter__(self) -> Iterator[Record]:
        while True:
            batch = self.next_batch()
            if not batch:
                return
            yield from batch

    def __repr__(self) -> str:
        return f"<sextant.Cursor remaining={self.remaining}>"


class Session:
    """What read and write sessions share: every read operation, plus the write
    operations, which a read session refuses with Misuse.

    A session is not tied to a thread. A read session may be used by many threads at
    once; a write session by one thread at a time.
    """

    __slots__ = ("_h", "_views", "__weakref__")

    _kind = "session"

    def __init__(self, handle: Any) -> None:
        self._h = handle
        # Collection views by name, opened on first use. They are valid for the
        # session's life (a write session forgets one when it creates or drops it).
        self._views: Dict[str, Any] = {}

    def _open_view(self, name: str) -> Any:
        raise NotImplementedError

    def _view(self, name: str) -> Any:
        v = self._views.get(name)
        if v is None:
            v = self._open_view(name)
            self._views[name] = v
        return v

    def _refuse(self, op: str) -> Misuse:
        return Misuse(f"{op} needs a write session; this is a {self._kind} session")

    # -- reads --

    def list_collections(self) -> List[str]:
        """Names of the collections this session sees, sorted bytewise."""
        raise NotImplementedError

    def describe(self, name: str) -> Dict[str, Any]:
        """The collection's name, dim, metric, index (type and parameters; for HNSW
        m, ef_construction and quantization) and count."""
        info = _c.sx_collection_describe(self._view(name))
        index_type = _c.sx_index_type_name(info.index) or f"unknown {info.index}"
        index: Dict[str, Any] = {"type": index_type}
        if info.index == _c.SX_INDEX_HNSW:
            index["m"] = info.hnsw_m
            index["ef_construction"] = info.hnsw_ef_construction
            index["quantization"] = _c.sx_quantization_name(info.quantization)
        return {
            "name": info.name,
            "dim": info.dim,
            "metric": _c.sx_metric_name(info.metric),
            "index": index,
            "count": info.count,
        }

    def count(self, collection: str) -> int:
        """Number of live vectors in the collection."""
        return int(_c.sx_collection_count(self._view(collection)))

    def collection_stats(self, collection: str) -> Dict[str, int]:
        """How the collection's slots are used: count (live), slots, dead (HNSW:
        deleted or replaced vectors still walked through by searches, never
        returned, until they are unlinked) and free (reusable);
        slots == count + dead + free."""
        s = _c.sx_collection_stats_get(self._view(collection))
        return {"count": s.count, "slots": s.slots, "dead": s.dead, "free": s.free}

    def get(self, collection: str, id: str) -> Record:
        """The vector stored under id (NotFound when there is none)."""
        rid, vec, meta = _c.sx_collection_get(self._view(collection), id)
        return Record(rid, np.frombuffer(vec, dtype=np.float32), None if meta is None else json.loads(meta))

    def get_many(self, collection: str, ids: Sequence[str]) -> List[Optional[Record]]:
        """The records of many ids in one call, in the order asked: None for an id
        that is not in the collection."""
        if isinstance(ids, (str, bytes, bytearray, memoryview)):
            raise TypeError(f"ids must be a sequence of str, not a single {type(ids).__name__}")
        return _records(_c.sx_collection_get_batch(self._view(collection), ids), keep_missing=True)

    def cursor(self, collection: str, after: Optional[str] = None, batch: int = 1000) -> Cursor:
        """A cursor over the collection's live records in ascending bytewise id order,
        starting after the id `after` (None: from the first). Iterate over it for
        records, or call next_batch(). On a read session it walks the snapshot; on a
        write session, records deleted since it opened are skipped. Resume an
        interrupted walk by passing the last id it gave, in any later session."""
        return Cursor(self, _c.sx_collection_cursor(self._view(collection), after), batch)

    def search(
        self,
        collection: str,
        query: VectorLike,
        k: int,
        ef: Optional[int] = None,
        *,
        cancel: Optional[Callable[[], bool]] = None,
        filter: Optional[Filter] = None,
        include: Union[str, Iterable[str]] = (),
        exact: bool = False,
    ) -> List[Hit]:
        """The k vectors closest to query, closest first (ties by id), as Hits.

        ef: HNSW candidate list size (None: the core's default). cancel: called now and
        then during a long search; returning True stops it with Cancelled.
        filter: only items whose metadata matches (a dict or its JSON text; see
        Filter); an invalid one raises InvalidArgument. include: "metadata" and/or
        "vector", which each Hit then carries (hit.metadata, hit.vector). exact: an
        exact search (a scan of every matching item) whatever the index.
        """
        # The common case (a cached view, a float32 vector, no options) in as few
        # Python operations as possible: this is the per-call overhead.
        view = self._views.get(collection)
        if view is None:
            view = self._view(collection)
        if not (type(query) is _NDARRAY and query.dtype is _F32 and query.ndim == 1 and query.flags.c_contiguous):
            query = _vector(query)
        if type(k) is not int or k < 0 or k > _U64_MAX:
            k = _uint(k, "k", _U64_MAX)
        if ef is None and cancel is None and filter is None and not include and not exact:
            return _c.sx_collection_search(view, query, k, None)
        got: Union[List[Hit], Tuple[List[Hit], Any]] = _c.sx_collection_search(
            view, query, k, _search_options(ef, cancel, filter, include, exact)
        )
        if isinstance(got, list):
            return got
        hits, included = got
        metas, vecs, dim = included
        vectors = None if vecs is None else np.frombuffer(vecs, dtype=np.float32).reshape(len(hits), dim)
        for i, h in enumerate(hits):
            if metas is not None:
                m = metas[i]
                h.metadata = None if m is None else json.loads(m)
            if vectors is not None:
                h.vector = vectors[i]
        return hits

    def search_batch(
        self,
        collection: str,
        queries: VectorLike,
        k: int,
        ef: Optional[int] = None,
        *,
        cancel: Optional[Callable[[], bool]] = None,
        filter: Optional[Filter] = None,
        include: Union[str, Iterable[str]] = (),
        exact: bool = False,
    ) -> Any:
        """Searches nq queries at once (the core spreads them over its threads).

        Returns (ids, distances), both of shape (nq, min(k, count)): ids a numpy
        object array of str, distances float32 (k beyond the collection's count is
        clamped to it, as search does). Where a query has fewer hits, its row is padded
        with None ids and NaN distances (so ``~np.isnan(distances)`` masks real hits).
        filter and exact as for search(). With include ("metadata" and/or "vector"),
        returns (ids, distances, metadata, vectors): metadata an object array (nq, k)
        of dicts (None for an item without metadata, or padding), vectors float32 of
        shape (nq, k, dim) (NaN rows as padding); each None when not included.
        """
        k = _uint(k, "k", _U64_MAX)
        arr = _matrix(queries, "queries")
        got_all = _c.sx_collection_search_batch(
            self._view(collection), arr, k, _search_options(ef, cancel, filter, include, exact)
        )
        nq, width, flat_ids, dist = got_all[:4]
        got = np.frombuffer(dist, dtype=np.float32).reshape(nq, width)
        if width < k:
            k = max(width, min(k, self.count(collection)))
        ids: npt.NDArray[np.object_] = np.empty((nq, k), dtype=object)
        ids[:, :width] = np.array(flat_ids, dtype=object).reshape(nq, width)
        d = got
        if width != k:
            d = np.full((nq, k), np.nan, dtype=np.float32)
            d[:, :width] = got
        if len(got_all) == 4:
            return ids, d
        metas, vecs, dim = got_all[4]
        meta_arr: Optional[npt.NDArray[np.object_]] = None
        if metas is not None:
            meta_arr = np.empty((nq, k), dtype=object)
            for j, m in enumerate(metas):
                if m is not None:
                    meta_arr[j // width, j % width] = json.loads(m)
        vec_arr: Optional[npt.NDArray[np.float32]] = None
        if vecs is not None:
            vec_arr = np.full((nq, k, dim), np.nan, dtype=np.float32)
            vec_arr[:, :width] = np.frombuffer(vecs, dtype=np.float32).reshape(nq, width, dim)
        return ids, d, meta_arr, vec_arr

    # -- writes (refused by read sessions) --

    def create_collection(
        self,
        name: str,
        dim: int,
        metric: str = "l2",
        index: str = "hnsw",
        m: int = 16,
        ef_construction: int = 200,
        quantization: str = "none",
    ) -> None:
        """Creates a collection of dim-dimensional vectors (write sessions only).

        metric: "l2" (squared Euclidean), "ip" (1 - dot) or "cosine" (1 - cosine
        similarity). index: "hnsw" (approximate; m links per node, ef_construction
        candidates while building) or "flat" (exact scan). quantization: "none" or
        "int8" (HNSW only: searches walk 8-bit codes kept beside the vectors, then
        measure the final candidates exactly, so distances stay exact).
        """
        raise self._refuse("create_collection")

    def drop_collection(self, name: str) -> None:
        """Drops a collection and its vectors (write sessions only)."""
        raise self._refuse("drop_collection")

    def upsert(
        self,
        collection: str,
        ids: Union[str, Sequence[str]],
        vectors: VectorLike,
        metadata: Union[Metadata, Sequence[Metadata]] = None,
    ) -> None:
        """Inserts or replaces vectors (write sessions only): all of them or none."""
        raise self._refuse("upsert")

    def delete(self, collection: str, ids: Union[str, Sequence[str]]) -> int:
        """Deletes ids (write sessions only); returns how many existed."""
        raise self._refuse("delete")

    def commit(self) -> None:
        """Commits (write sessions only)."""
        raise self._refuse("commit")

    def abort(self) -> None:
        """Discards the session's changes (write sessions only)."""
        raise self._refuse("abort")

    def end(self) -> None:
        """Ends a read session (idempotent)."""
        raise NotImplementedError

    def user_version(self) -> int:
        """The application-defined 64-bit number as this session sees it."""
        raise NotImplementedError

    def set_user_version(self, value: int) -> None:
        """Sets the application-defined 64-bit number (write sessions only)."""
        raise self._refuse("set_user_version")


class ReadSession(Session):
    """A snapshot: everything committed before it began, for its whole life.

    Use as a context manager (``with db.read() as r:``) or call end(). Any number of
    threads may search one read session at once; the GIL is released while they do.
    """

    __slots__ = ()
    _kind = "read"

    def _open_view(self, name: str) -> Any:
        return _c.sx_read_collection(self._h, name)

    def list_collections(self) -> List[str]:
        return _c.sx_read_list_collections(self._h)

    def end(self) -> None:
        """Ends the session and unpins its snapshot. Idempotent."""
        _c.sx_read_end(self._h)

    close = end

    def user_version(self) -> int:
        return int(_c.sx_read_user_version(self._h))

    def __enter__(self) -> ReadSession:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.end()

    def __repr__(self) -> str:
        return "<sextant.ReadSession>"


class WriteSession(Session):
    """The one writer of a database, across all processes.

    As a context manager it commits when the block ends normally and aborts when it
    raises; commit() and abort() end it explicitly (then the block's end does nothing
    more). Use it from one thread at a time.
    """

    __slots__ = ("_ended",)
    _kind = "write"

    def __init__(self, handle: Any) -> None:
        super().__init__(handle)
        self._ended = False

    def _open_view(self, name: str) -> Any:
        return _c.sx_write_collection(self._h, name)

    def list_collections(self) -> List[str]:
        return _c.sx_write_list_collections(self._h)

    def create_collection(
        self,
        name: str,
        dim: int,
        metric: str = "l2",
        index: str = "hnsw",
        m: int = 16,
        ef_construction: int = 200,
        quantization: str = "none",
    ) -> None:
        opts = _c.sx_collection_options()
        _c.sx_collection_options_init(opts, _c.SX_COLLECTION_OPTIONS_VERSION)
        swaps: List[Tuple[str, str]] = []
        opts.dim, shown = _u32_for_core(dim, "dim")
        if shown is not None:
            swaps.append((f"dimension {_U32_MAX}", f"dimension {shown}"))
        opts.metric = _c.sx_metric_parse(metric if isinstance(metric, str) else repr(metric))
        opts.index = _c.sx_index_type_parse(index if isinstance(index, str) else repr(index))
        if opts.index == _c.SX_INDEX_HNSW:
            opts.hnsw_m, shown = _u32_for_core(m, "m")
            if shown is not None:
                swaps.append((f"m {_U32_MAX}", f"m {shown}"))
            opts.hnsw_ef_construction, shown = _u32_for_core(ef_construction, "ef_construction")
            if shown is not None:
                swaps.append((f"ef_construction {_U32_MAX}", f"ef_construction {shown}"))
        opts.quantization = _c.sx_quantization_parse(
            quantization if isinstance(quantization, str) else repr(quantization)
        )
        self._views.pop(name, None)
        try:
            _c.sx_write_create_collection(self._h, name, opts)
        except InvalidArgument as e:
            raise _reword(e, swaps) from None

    def drop_collection(self, name: str) -> None:
        self._views.pop(name, None)
        _c.sx_write_drop_collection(self._h, name)

    def upsert(
        self,
        collection: str,
        ids: Union[str, Sequence[str]],
        vectors: VectorLike,
        metadata: Union[Metadata, Sequence[Metadata]] = None,
    ) -> None:
        """Inserts or replaces vectors: all of them or none.

        ids: a list of n ids, or one id (then vectors is one vector and metadata one
        dict or None). vectors: shape (n, dim); a float32 C-contiguous numpy array is
        passed to the core as is, anything else is converted to float32 values first.
        metadata: None, or n entries, each a dict (stored as JSON) or None.
        """
        if isinstance(ids, str):
            ids = [ids]
            if metadata is not None:
                metadata = [metadata]  # type: ignore[list-item]
        elif isinstance(ids, (bytes, bytearray, memoryview)):
            raise TypeError(f"ids must be a sequence of str, not a single {type(ids).__name__}")
        elif not isinstance(ids, list):
            ids = list(ids)
        try:
            arr = _matrix(vectors, "vectors")
        except Error:
            # Report an ended session or a missing collection first, as the core would.
            _c.sx_collection_describe(self._view(collection))
            raise
        if not ids and arr.size == 0 and arr.shape[0] <= 1:
            # An empty batch written as [] says nothing about the dimension.
            arr = np.empty((0, int(_c.sx_collection_describe(self._view(collection)).dim)), dtype=np.float32)
        meta = _metadata_text(metadata, len(ids))  # type: ignore[arg-type]
        _c.sx_write_upsert(self._h, collection, (ids, arr, meta))

    def delete(self, collection: str, ids: Union[str, Sequence[str]]) -> int:
        if isinstance(ids, str):
            ids = [ids]
        return int(_c.sx_write_delete(self._h, collection, ids))

    def commit(self) -> None:
        """Commits: all changes become visible to new read sessions at once, durable
        per the database's sync level. Ends the session, whether or not it succeeds."""
        self._ended = True
        _c.sx_write_commit(self._h)

    def abort(self) -> None:
        """Discards the session's changes and ends it."""
        self._ended = True
        _c.sx_write_abort(self._h)

    def end(self) -> None:
        raise Misuse("a write session ends with commit() or abort(), not end()")

    def user_version(self) -> int:
        return int(_c.sx_write_user_version(self._h))

    def set_user_version(self, value: int) -> None:
        _c.sx_write_set_user_version(self._h, _uint(value, "user_version", 2**64 - 1))

    def __enter__(self) -> WriteSession:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if self._ended:
            return
        if exc_type is None:
            self.commit()
        else:
            try:
                self.abort()
            except Error:
                pass  # e.g. the database was closed inside the block; the block's error wins

    def __repr__(self) -> str:
        return "<sextant.WriteSession>"


# ---- databases ------------------------------------------------------------------------


class Database:
    """An open database file. Thread-safe; usable in a child after fork() (the core
    re-opens its files there; sessions begun before the fork raise Misuse in the child).

    Close it with close() or by using it as a context manager. Garbage-collecting it
    closes it too, which ends its sessions.
    """

    __slots__ = ("_h", "_path", "__weakref__")

    def __init__(self, handle: Any, path: str) -> None:
        self._h = handle
        self._path = path

    @property
    def path(self) -> str:
        """The path the database was opened with."""
        return self._path

    def read(self) -> ReadSession:
        """Begins a read session on the latest committed snapshot. Never waits."""
        return ReadSession(_c.sx_read_begin(self._h))

    def write(self, timeout: Optional[float] = None) -> WriteSession:
        """Begins the write session, waiting up to timeout seconds for the writer lock
        (None: for ever; 0: not at all), else raises Busy. The GIL is released while
        waiting."""
        return WriteSession(_c.sx_write_begin(self._h, _timeout_ms(timeout)))

    def checkpoint(self, timeout: Optional[float] = None) -> None:
        """Copies WAL frames back into the database file, as far as the oldest pinned
        snapshot allows. Takes the writer lock (timeout as in write())."""
        _c.sx_db_checkpoint(self._h, _timeout_ms(timeout))

    def stats(self) -> Dict[str, int]:
        """Figures across all processes: page_size, page_count, wal_frames,
        wal_backfilled, commits, checkpoints, readers, reader_slots,
        oldest_reader_lag, oldest_reader_pid."""
        s = _c.sx_db_stats_get(self._h)
        return {
            "page_size": s.page_size,
            "page_count": s.page_count,
            "wal_frames": s.wal_frames,
            "wal_backfilled": s.wal_backfilled,
            "commits": s.commits,
            "checkpoints": s.checkpoints,
            "readers": s.readers,
            "reader_slots": s.reader_slots,
            "oldest_reader_lag": s.oldest_reader_lag,
            "oldest_reader_pid": s.oldest_reader_pid,
        }

    def compact(
        self,
        timeout: Optional[float] = None,
        progress: Optional[Callable[[int, int], object]] = None,
    ) -> None:
        """Rewrites every collection densely in one write session (timeout as in
        write()): the space of deleted and replaced vectors, their ids and metadata
        and their index pages goes to the file's free list for later writes, and the
        HNSW graphs are rebuilt from the live vectors. Readers keep their snapshots.
        progress(done_records, total_records) as for backup(). The GIL is released."""
        _c.sx_db_compact(self._h, (_timeout_ms(timeout), progress))

    def space(self) -> Dict[str, int]:
        """Where the latest snapshot's bytes go: page_size, page_count, free_pages,
        collection_pages, live_bytes and reclaimable_bytes (what compact() would free,
        estimated)."""
        with self.read() as r:
            s = _c.sx_read_space_get(r._h)
        return {
            "page_size": s.page_size,
            "page_count": s.page_count,
            "free_pages": s.free_pages,
            "collection_pages": s.collection_pages,
            "live_bytes": s.live_bytes,
            "reclaimable_bytes": s.reclaimable_bytes,
        }

    def backup(
        self,
        dest: PathLike,
        *,
        overwrite: bool = False,
        progress: Optional[Callable[[int, int], object]] = None,
    ) -> None:
        """Copies the latest committed snapshot to a new database file at dest, while
        other sessions go on reading and writing. dest is written beside itself,
        synced and renamed into place: it is never seen half-written. An existing
        dest raises Exists unless overwrite; overwriting a database that a handle, in any
        process, has open raises Busy.
        progress(done_pages, total_pages) is called as it goes; a true result or an
        exception stops the backup with Cancelled, leaving nothing at dest. The GIL
        is released while copying."""
        _c.sx_db_backup(self._h, os.fsdecode(os.fspath(dest)), (bool(overwrite), progress))

    def check(self) -> None:
        """Checks the integrity of the latest snapshot; raises Corrupt on a problem."""
        _c.sx_db_check(self._h)

    def close(self) -> None:
        """Closes the database: aborts its write session, ends its read sessions.
        Idempotent."""
        _c.sx_db_close(self._h)

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<sextant.Database {self._path!r}>"


def open(  # noqa: A001 - the module's entry point, as in sqlite3.connect / dbm.open
    path: PathLike,
    *,
    read_only: bool = False,
    sync: str = "full",
    page_size: int = 0,
    autocheckpoint_frames: int = 0,
    wal_max_frames: int = 0,
    threads: int = 0,
    wal_size_limit: Optional[int] = None,
) -> Database:
    """Opens the database at path, creating it unless read_only.

    sync: "full" (a commit is on stable storage when it returns), "normal" (survives
    a process crash) or "off" (bulk loads). page_size (new databases),
    autocheckpoint_frames and wal_max_frames: 0 means the core's default.
    threads: most threads one call may use (search_batch, and linking upserted
    vectors into an HNSW index); 0 means the number of processors (at most 8), 1
    keeps every call on its calling thread.
    wal_size_limit: bytes each WAL file keeps once a checkpoint has copied everything
    into the database file and no reader reads the WAL (as SQLite's
    journal_size_limit); the files are cut to it while the database stays open.
    None means the core's default (64 MiB); 0 cuts them to nothing.
    """
    p = os.fspath(path)
    opts = _c.sx_open_options()
    _c.sx_open_options_init(opts, _c.SX_OPEN_OPTIONS_VERSION)
    opts.read_only = 1 if read_only else 0
    opts.sync = _c.sx_sync_parse(sync if isinstance(sync, str) else repr(sync))
    opts.page_size = _uint(page_size, "page_size", _U32_MAX)
    opts.autocheckpoint_frames = _uint(autocheckpoint_frames, "autocheckpoint_frames", _U32_MAX)
    opts.wal_max_frames = _uint(wal_max_frames, "wal_max_frames", _U32_MAX)
    opts.threads = _uint(threads, "threads", _U32_MAX)
    if wal_size_limit is not None:
        opts.wal_size_limit = _uint(wal_size_limit, "wal_size_limit", 2**64 - 1)
    return Database(_c.sx_db_open(p, opts), os.fsdecode(p))
