"""Sextant: an embedded vector database.

Any number of readers, in any threads and processes, each on a stable snapshot and
never blocked by the single writer; atomic, durable commits.

    import numpy as np, sextant

    with sextant.open("vectors.sx") as db:
        with db.write() as w:
            w.create_collection("docs", dim=4, metric="cosine")
            w.upsert("docs", ["a", "b"], np.random.rand(2, 4).astype(np.float32),
                     [{"title": "A"}, None])
        with db.read() as r:
            for hit in r.search("docs", [0.1, 0.2, 0.3, 0.4], k=1):
                print(hit.id, hit.distance)
"""

from ._api import (
    Cursor,
    Database,
    Filter,
    Hit,
    Metadata,
    PathLike,
    ReadSession,
    Record,
    Session,
    VectorLike,
    WriteSession,
    check_filter,
    format_version,
    open,
    version,
)
from ._errors import (
    ERRORS_BY_CODE,
    Busy,
    Cancelled,
    Closed,
    Corrupt,
    DimensionMismatch,
    Error,
    Exists,
    Full,
    InvalidArgument,
    IoError,
    Misuse,
    NoMem,
    NotFound,
    ReadOnly,
    Version,
)

__version__ = "0.1.0"

__all__ = [
    "open",
    "version",
    "format_version",
    "Database",
    "Session",
    "ReadSession",
    "WriteSession",
    "Hit",
    "Record",
    "Cursor",
    "Filter",
    "check_filter",
    "Metadata",
    "PathLike",
    "VectorLike",
    "Error",
    "NotFound",
    "Exists",
    "InvalidArgument",
    "DimensionMismatch",
    "ReadOnly",
    "Busy",
    "Closed",
    "Misuse",
    "Corrupt",
    "IoError",
    "Full",
    "NoMem",
    "Version",
    "Cancelled",
    "ERRORS_BY_CODE",
]
