"""C, Python, Go and Node on one database file (tests/interop/PROTOCOL.md):

1. each language writes the fixture and every language reads every file back: the
   same describe, bit-identical vectors, equal metadata, the same search results;
2. a Python writer commits while reader processes in C, Go, Node (and Python) check
   snapshot invariants in every read session; then the writer role passes to Go,
   Node and C in turn while the readers go on;
3. a writer of each language is SIGKILLed mid-commit, and another language recovers
   the file and finds every acknowledged commit.

Run by tools/interop.sh (which builds the workers). Environment: SX_INTEROP_LANGS
(default "c python go node"; a language whose worker is missing fails the test),
SX_INTEROP_SECONDS (the Python writer's phase, default 20; the others get a quarter),
SX_INTEROP_KILLS (kills per language, default 3), SX_INTEROP_REPORT (a JSON file for
the figures).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest

ROOT = Path(__file__).resolve().parents[2]
LANGS = os.environ.get("SX_INTEROP_LANGS", "c python go node").split()
SECONDS = float(os.environ.get("SX_INTEROP_SECONDS", "20"))
KILLS = int(os.environ.get("SX_INTEROP_KILLS", "3"))
FIGURES: Dict[str, Any] = {}


def worker(lang: str) -> List[str]:
    if lang == "c":
        return [str(ROOT / "build" / "debug" / "tests" / "interop" / "interop_c")]
    if lang == "python":
        return [sys.executable, str(ROOT / "tests" / "interop" / "interop_py.py")]
    if lang == "go":
        return [str(ROOT / "build" / "interop" / "interop_go")]
    if lang == "node":
        return ["node", str(ROOT / "bindings" / "node" / "tools" / "interop.js")]
    raise ValueError(lang)


@pytest.fixture(scope="module", autouse=True)
def _workers_exist() -> Any:
    for lang in LANGS:
        w = worker(lang)
        path = w[-1] if lang in ("python", "node") else w[0]
        assert os.path.exists(path), f"the {lang} interop worker {path} is missing (run tools/interop.sh)"
    yield
    path = os.environ.get("SX_INTEROP_REPORT")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(FIGURES, f, indent=1)


def run(lang: str, *args: str, timeout: float = 120) -> Dict[str, Any]:
    p = subprocess.run(worker(lang) + list(args), capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{lang} {' '.join(args)}: exit {p.returncode}\n{p.stderr}"
    return json.loads(p.stdout.strip().splitlines()[-1])


def start(lang: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(worker(lang) + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def finish(lang: str, p: subprocess.Popen[str], what: str, timeout: float) -> Dict[str, Any]:
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, f"{lang} {what}: exit {p.returncode}\n{err}"
    return json.loads(out.strip().splitlines()[-1])


def normalized(dump: Dict[str, Any]) -> Dict[str, Any]:
    for coll in dump["items"].values():
        for item in coll.values():
            item["metadata"] = json.loads(item["metadata"])
    return dump


def test_every_language_reads_what_every_language_wrote(tmp_path: Path) -> None:
    reference = None
    pairs = 0
    for writer_lang in LANGS:
        db = str(tmp_path / f"fixture-{writer_lang}.sx")
        run(writer_lang, "write-fixture", db)
        for reader_lang in LANGS:
            dump = normalized(run(reader_lang, "dump", db))
            assert dump["user_version"] == 42
            assert dump["describe"]["flat"]["count"] == 200 and dump["describe"]["graph"]["count"] == 200
            if reference is None:
                reference = dump
                continue
            for part in ("describe", "items", "search", "user_version"):
                assert dump[part] == reference[part], (
                    f"{part}: what {reader_lang} reads from the file {writer_lang} wrote differs "
                    f"from what {LANGS[0]} read from {LANGS[0]}'s")
            pairs += 1
    FIGURES["fixture_pairs_compared"] = pairs + 1


def test_readers_of_every_language_while_writers_take_turns(tmp_path: Path) -> None:
    db = str(tmp_path / "live.sx")
    ack = str(tmp_path / "ack")
    writers = [lang for lang in ("python", "go", "node", "c") if lang in LANGS]
    phases = [(w, SECONDS if i == 0 else max(3.0, SECONDS / 4)) for i, w in enumerate(writers)]
    total = sum(s for _, s in phases)
    # The first writer makes the collections; readers start once it is running.
    first = start(phases[0][0], "writer", db, str(phases[0][1]), ack)
    time.sleep(1.0)
    readers = {lang: start(lang, "reader", db, str(total + 1)) for lang in LANGS}
    commits: Dict[str, int] = {}
    results = finish(phases[0][0], first, "writer", phases[0][1] + 60)
    commits[phases[0][0]] = results["commits"]
    for lang, secs in phases[1:]:
        res = run(lang, "writer", db, str(secs), ack, timeout=secs + 60)
        commits[lang] = res["commits"]
    sessions = {}
    for lang, p in readers.items():
        res = finish(lang, p, "reader", total + 60)
        sessions[lang] = res["sessions"]
        assert res["sessions"] > 0
        assert res["max_gen"] > 0, f"the {lang} reader never saw a commit"
    final = run(LANGS[0], "verify", db, ack)
    assert final["gen"] == sum(commits.values()) == final["acked"]
    for lang, n in commits.items():
        assert n > 0, f"the {lang} writer committed nothing in its turn"
    FIGURES["live"] = {"seconds": total, "commits_by_writer": commits, "reader_sessions": sessions,
                       "final_generation": final["gen"]}


def test_killed_writers_lose_no_acknowledged_commit(tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("SX_INTEROP_SEED", "7")))
    kills: Dict[str, int] = {}
    checked: List[Dict[str, Any]] = []
    db = str(tmp_path / "kill.sx")
    ack = str(tmp_path / "ack")
    for round_ in range(KILLS):
        for i, lang in enumerate(LANGS):
            p = start(lang, "writer", db, "600", ack)
            time.sleep(rng.uniform(0.3, 1.5))
            p.send_signal(signal.SIGKILL)
            p.communicate(timeout=30)
            assert p.returncode == -signal.SIGKILL, f"the {lang} writer ended before its kill: {p.returncode}"
            kills[lang] = kills.get(lang, 0) + 1
            other = LANGS[(i + 1 + round_) % len(LANGS)]
            if other == lang:
                other = LANGS[(i + 1) % len(LANGS)]
            res = run(other, "verify", db, ack)
            assert res["gen"] >= res["acked"]
            checked.append({"killed": lang, "verified_by": other, **res})
    assert checked[-1]["gen"] > 0
    FIGURES["kills"] = {"by_language": kills, "verifications": checked}
