"""Shared fixtures of the binding's tests."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

import sextant


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "db.sx")


@pytest.fixture
def db(db_path: str) -> Iterator[sextant.Database]:
    d = sextant.open(db_path, sync="off")
    yield d
    d.close()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
