"""A search service over one Sextant file: FastAPI, served by uvicorn with several
worker processes, while a separate process (ingest.py) upserts into the same file.

No lock of our own anywhere: every request begins a read session, which is a stable
snapshot of everything committed before it began, and never waits for the writer.

    SEXTANT_DB=vectors.sx uvicorn app:app --host 127.0.0.1 --port 8000 --workers 4

Environment: SEXTANT_DB (default vectors.sx), SEXTANT_COLLECTION (default docs).
"""
from __future__ import annotations

import os
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Dict, List, Optional

import sextant
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

DB_PATH = os.environ.get("SEXTANT_DB", "vectors.sx")
COLLECTION = os.environ.get("SEXTANT_COLLECTION", "docs")

# One Database per worker process, opened after uvicorn has started the worker (a
# handle opened before a fork would also work: the core re-attaches in the child).
db: Optional[sextant.Database] = None


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    global db
    db = sextant.open(DB_PATH)  # creates the file if the ingest has not yet
    try:
        yield
    finally:
        db.close()


app = FastAPI(title="Sextant search", lifespan=lifespan)


@app.exception_handler(sextant.Error)
def sextant_error(request: Request, e: sextant.Error) -> JSONResponse:
    # A query of the wrong dimension, NaN, k too large...: the core's one-line message.
    status = 400 if isinstance(e, ValueError) else 500
    return JSONResponse({"error": e.code, "message": str(e)}, status_code=status)


class SearchRequest(BaseModel):
    vector: List[float]
    k: int = Field(10, ge=1, le=1000)
    ef: Optional[int] = Field(None, ge=1, le=10000)


def search(vector: Any, k: int, ef: Optional[int]) -> Dict[str, Any]:
    assert db is not None
    # A plain `def` endpoint runs on FastAPI's thread pool; the binding releases the
    # GIL during the search, so a worker's threads search in parallel.
    with db.read() as r:
        generation = r.user_version()  # the ingest's batch number, set in each commit
        try:
            count = r.count(COLLECTION)
            hits = r.search(COLLECTION, vector, k, ef=ef)
        except sextant.NotFound:  # the ingest has not created the collection yet
            count, hits = 0, []
    return {
        "ids": [h.id for h in hits],
        "distances": [h.distance for h in hits],
        "count": count,
        "generation": generation,
        "pid": os.getpid(),
    }


@app.post("/search")
def search_post(req: SearchRequest) -> Dict[str, Any]:
    return search(req.vector, req.k, req.ef)


@app.get("/search")
def search_get(
    vector: str = Query(..., description="comma-separated floats"),
    k: int = Query(10, ge=1, le=1000),
    ef: Optional[int] = Query(None, ge=1, le=10000),
) -> Any:
    try:
        values = [float(x) for x in vector.split(",")]
    except ValueError:
        return JSONResponse({"error": "INVALID_ARGUMENT", "message": "vector must be comma-separated numbers"},
                            status_code=400)
    return search(values, k, ef)


@app.get("/health")
def health() -> Dict[str, Any]:
    assert db is not None
    with db.read() as r:
        try:
            count = r.count(COLLECTION)
        except sextant.NotFound:
            count = 0
        return {"status": "ok", "count": count, "generation": r.user_version(), "pid": os.getpid()}
