"""Exceptions: one class per Sextant status, named after the status.

Every class has ``code``, the status's conformance name (``"NOT_FOUND"``, ...), and
``str(e)`` is the one-line message of the C library. Where a built-in exception means
the same thing, the class derives from it too, so ``except KeyError`` catches a
missing id and ``except ValueError`` a bad argument.
"""

from __future__ import annotations

from typing import ClassVar, Dict, Type

__all__ = [
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


class Error(Exception):
    """Base class of every error raised by Sextant."""

    #: The status name, as in the conformance suite and ``sx_status_name()``.
    code: ClassVar[str] = "UNKNOWN"

    def __str__(self) -> str:
        # KeyError (a base of NotFound) would show repr(message) instead.
        return str(self.args[0]) if self.args else ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class NotFound(Error, KeyError):
    """No such id, collection or database (when not creating)."""

    code = "NOT_FOUND"


class Exists(Error):
    """The collection already exists."""

    code = "EXISTS"


class InvalidArgument(Error, ValueError):
    """A bad value: empty or too-long id, bad name, NaN/Inf component, k = 0, ..."""

    code = "INVALID_ARGUMENT"


class DimensionMismatch(Error, ValueError):
    """A vector's length differs from its collection's dimension."""

    code = "DIMENSION_MISMATCH"


class ReadOnly(Error):
    """A write attempted on a database opened read-only."""

    code = "READ_ONLY"


class Busy(Error):
    """The write lock was not available within the timeout, the WAL is at its cap, or a
    backup would overwrite a database that a handle has open."""

    code = "BUSY"


class Closed(Error):
    """The database was closed, or the session already ended."""

    code = "CLOSED"


class Misuse(Error):
    """Not allowed in this state: wrong kind of session, a session from before fork(), ..."""

    code = "MISUSE"


class Corrupt(Error):
    """A file failed validation."""

    code = "CORRUPT"


class IoError(Error, OSError):
    """The operating system reported an I/O error."""

    code = "IO"


class Full(Error):
    """No space left on the device (or a collection is at its size limit)."""

    code = "FULL"


class NoMem(Error, MemoryError):
    """Out of memory."""

    code = "NOMEM"


class Version(Error):
    """The file format version is not supported by this library."""

    code = "VERSION"


class Cancelled(Error):
    """A cancel hook stopped the call."""

    code = "CANCELLED"


#: Exception class by status name.
ERRORS_BY_CODE: Dict[str, Type[Error]] = {
    cls.code: cls
    for cls in (
        NotFound,
        Exists,
        InvalidArgument,
        DimensionMismatch,
        ReadOnly,
        Busy,
        Closed,
        Misuse,
        Corrupt,
        IoError,
        Full,
        NoMem,
        Version,
        Cancelled,
    )
}
