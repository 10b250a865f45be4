#!/usr/bin/env python3
"""Smoke test of the example services (examples/python, examples/go, examples/node).

For each example: starts its search service on a free port of 127.0.0.1 and its ingest
process on one new database file, sends a bounded number of searches (GET and POST,
from several client threads) while the ingest commits, and checks that

  - every answer is well-formed (ids and distances of equal length, distances sorted,
    count >= hits, k hits once the collection holds k vectors), and a query of the
    wrong dimension is a 400 naming DIMENSION_MISMATCH;
  - what a client sees never goes back in time: along one client's requests, the
    snapshot's generation and count never decrease;
  - every vector the ingest reports committed is found by the next search for it:
    its id first at distance 0, in a snapshot at least as new as its commit (searched with
    an ef above the count, which makes HNSW exact: the ingest stops after BATCHES
    commits, so the count stays below PROBE_EF);
  - after the ingest stops, /health reports its last commit exactly;

then prints the requests/s and stops everything (process groups: no orphans).
Only the standard library is used; run it with the Python that has fastapi, uvicorn
and sextant installed (tools/examples.sh does all of this):

    build/py-venv/bin/python examples/smoke_test.py [python] [go] [node] [--requests 500]
"""
from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import queue
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DIM = 64
K = 10
BATCH, BATCHES = 100, 90  # the ingest's commits: at most 9,000 vectors
PROBE_EF = 10000  # the largest ef the Python service accepts, above every count the ingest reaches


class Failure(Exception):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when this test process dies, even by
    SIGKILL (Linux prctl PR_SET_PDEATHSIG), so that no service outlives the test."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


class Group:
    """A child process in its own process group (session), so that stopping it also
    stops everything it started (uvicorn's worker processes)."""

    def __init__(self, name: str, argv: List[str], log: str, env: Optional[Dict[str, str]] = None,
                 stdout_pipe: bool = False) -> None:
        self.name, self.log = name, log
        self.logf = open(log, "wb")
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env={**os.environ, **(env or {})}, start_new_session=True, preexec_fn=_die_with_parent,
            stdout=subprocess.PIPE if stdout_pipe else self.logf, stderr=self.logf,
        )
        self.pgid = self.proc.pid

    def alive(self) -> bool:
        try:
            os.killpg(self.pgid, 0)
            return True
        except ProcessLookupError:
            return False

    def signal(self, sig: int) -> None:
        try:
            os.killpg(self.pgid, sig)
        except ProcessLookupError:
            pass

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM to the group, SIGKILL after grace seconds; waits until the whole
        group is gone (a process group outlives its leader while members remain)."""
        self.signal(signal.SIGTERM)
        end = time.monotonic() + grace
        while self.alive() and time.monotonic() < end:
            try:
                self.proc.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                pass
        if self.alive():
            self.signal(signal.SIGKILL)
            end = time.monotonic() + 5
            while self.alive() and time.monotonic() < end:
                time.sleep(0.05)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.logf.close()
        if self.alive():
            raise Failure(f"{self.name}: process group {self.pgid} survived SIGKILL")

    def tail(self, n: int = 15) -> str:
        try:
            with open(self.log, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""


class Client:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def request(self, method: str, path: str, body: Optional[Dict[str, Any]] = None) -> Tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"content-type": "application/json"} if data is not None else {}
        for attempt in (0, 1):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                resp = self.conn.getresponse()
                raw = resp.read()
                break
            except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine):
                # the server closed an idle keep-alive connection: reconnect once
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                if attempt:
                    raise
        try:
            return resp.status, json.loads(raw)
        except ValueError:
            raise Failure(f"{method} {path}: status {resp.status}, not JSON: {raw[:200]!r}")

    def search(self, vector: List[float], k: int, use_get: bool = False, ef: Optional[int] = None) -> Dict[str, Any]:
        if use_get:
            extra = f"&ef={ef}" if ef is not None else ""
            status, ans = self.request("GET", f"/search?k={k}{extra}&vector=" + ",".join(repr(x) for x in vector))
        else:
            body: Dict[str, Any] = {"vector": vector, "k": k}
            if ef is not None:
                body["ef"] = ef
            status, ans = self.request("POST", "/search", body)
        if status != 200:
            raise Failure(f"/search answered {status}: {ans}")
        return check_answer(ans, k)

    def close(self) -> None:
        self.conn.close()


def check_answer(ans: Any, k: int) -> Dict[str, Any]:
    def bad(why: str) -> Failure:
        return Failure(f"malformed answer ({why}): {json.dumps(ans)[:300]}")

    if not isinstance(ans, dict):
        raise bad("not an object")
    ids, dist, count, gen = ans.get("ids"), ans.get("distances"), ans.get("count"), ans.get("generation")
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        raise bad("ids")
    if not isinstance(dist, list) or len(dist) != len(ids):
        raise bad("distances")
    if not all(isinstance(d, (int, float)) and math.isfinite(d) and d >= 0 for d in dist):
        raise bad("distance values")
    if any(a > b for a, b in zip(dist, dist[1:])):
        raise bad("distances not sorted")
    if not isinstance(count, int) or not isinstance(gen, int) or count < 0 or gen < 0:
        raise bad("count/generation")
    if len(ids) != min(k, count):
        raise bad(f"{len(ids)} hits, expected min(k={k}, count={count})")
    if len(set(ids)) != len(ids):
        raise bad("duplicate ids")
    return ans


def wait_healthy(port: int, server: Group, timeout: float = 90) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if server.proc.poll() is not None:
            raise Failure(f"{server.name} exited with {server.proc.returncode}:\n{server.tail()}")
        try:
            c = Client(port)
            status, ans = c.request("GET", "/health")
            c.close()
            if status == 200 and ans.get("status") == "ok":
                return
        except (OSError, http.client.HTTPException, Failure):
            pass
        time.sleep(0.1)
    raise Failure(f"{server.name} did not answer /health within {timeout:.0f} s:\n{server.tail()}")


def commands(example: str, db: str, port: int, workers: int) -> Tuple[List[str], Dict[str, str], List[str]]:
    """(server argv, server env, ingest argv) of an example."""
    ingest_opts = ["--db", db, "--dim", str(DIM), "--batch", str(BATCH), "--batches", str(BATCHES)]
    if example == "python":
        py = sys.executable
        return ([py, "-m", "uvicorn", "app:app", "--app-dir", os.path.join(HERE, "python"),
                 "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
                 "--no-access-log", "--log-level", "warning"],
                {"SEXTANT_DB": db},
                [py, os.path.join(HERE, "python", "ingest.py"), *ingest_opts, "--interval", "0.05"])
    if example == "go":
        bindir = os.environ.get("SX_EXAMPLES_GO_BIN", os.path.join(ROOT, "build", "examples", "go"))
        return ([os.path.join(bindir, "search-server"), "-db", db, "-addr", f"127.0.0.1:{port}"], {},
                [os.path.join(bindir, "ingest"), "-db", db, "-dim", str(DIM), "-batch", str(BATCH),
                 "-batches", str(BATCHES), "-interval", "50ms"])
    if example == "node":
        node = shutil.which("node") or "node"
        return ([node, os.path.join(HERE, "node", "server.js"), "--db", db, "--port", str(port),
                 "--workers", str(workers)], {},
                [node, os.path.join(HERE, "node", "ingest.js"), *ingest_opts, "--interval", "50"])
    raise ValueError(example)


def run_example(example: str, requests: int, clients: int, workers: int) -> Dict[str, Any]:
    tmp = tempfile.mkdtemp(prefix=f"sextant-smoke-{example}-")
    db, port = os.path.join(tmp, "vectors.sx"), free_port()
    server_argv, server_env, ingest_argv = commands(example, db, port, workers)
    groups: List[Group] = []
    try:
        server = Group(f"{example} server", server_argv, os.path.join(tmp, "server.log"), server_env)
        groups.append(server)
        wait_healthy(port, server)

        ingest = Group(f"{example} ingest", ingest_argv, os.path.join(tmp, "ingest.log"), stdout_pipe=True)
        groups.append(ingest)
        commits: "queue.Queue[Optional[Dict[str, Any]]]" = queue.Queue()
        events: List[Dict[str, Any]] = []

        def read_ingest() -> None:
            assert ingest.proc.stdout is not None
            for line in ingest.proc.stdout:
                ev = json.loads(line)
                events.append(ev)
                if ev.get("event") == "commit":
                    commits.put(ev)
            commits.put(None)

        reader = threading.Thread(target=read_ingest, daemon=True)
        reader.start()
        first = commits.get(timeout=60)  # searches start once the ingest is committing
        if first is None:
            raise Failure(f"ingest exited before its first commit:\n{ingest.tail()}")

        errors: List[BaseException] = []
        pids: set = set()
        probes = {"checked": 0}
        done = threading.Event()

        def probe_loop() -> None:
            # Each commit the ingest acknowledges must be visible to the very next search.
            c = Client(port)
            try:
                while not done.is_set():
                    try:
                        ev = commits.get(timeout=0.1)
                    except queue.Empty:
                        continue
                    if ev is None:
                        return
                    # The probe searches with an ef above any count this test reaches: HNSW
                    # then visits every node reachable from the entry point, and after each
                    # batch this large the core links in any node it does not reach, so
                    # the answer is exact. At the default ef (max(k, 64)) a search is
                    # approximate: about 1 in 2,000 of these 64-d Gaussian vectors is not
                    # its own first hit (bench/self_recall.py).
                    ans = c.search(ev["probe"], 3, ef=PROBE_EF)
                    if ans["generation"] < ev["generation"] or ans["count"] < ev["count"]:
                        raise Failure(f"a search after commit {ev['generation']} (count {ev['count']}) saw an "
                                      f"older snapshot: generation {ans['generation']}, count {ans['count']}")
                    if not ans["ids"] or ans["ids"][0] != ev["probe_id"] or ans["distances"][0] > 1e-6:
                        raise Failure(f"probe {ev['probe_id']} of commit {ev['generation']} not found first at "
                                      f"distance 0 after its commit (snapshot generation {ans['generation']}, "
                                      f"count {ans['count']}, ef {PROBE_EF}): {ans['ids']} {ans['distances']}")
                    probes["checked"] += 1
            except BaseException as e:  # noqa: BLE001 - reported by the main thread
                errors.append(e)
            finally:
                c.close()

        counter = {"n": 0}
        lock = threading.Lock()

        def client_loop(seed: int) -> None:
            rnd = random.Random(seed)
            c = Client(port)
            last_gen = last_count = -1
            done_here = 0
            try:
                while not errors:
                    with lock:
                        if counter["n"] >= requests:
                            return
                        counter["n"] += 1
                    done_here += 1
                    if done_here % 100 == 0:
                        # A new connection now and then, as behind a load balancer: the
                        # kernel hands it to whichever server process accepts first.
                        c.close()
                        c = Client(port)
                    q = [rnd.gauss(0, 1) for _ in range(DIM)]
                    ans = c.search(q, K, use_get=rnd.random() < 0.25)
                    if ans["generation"] < last_gen or ans["count"] < last_count:
                        raise Failure(f"went back in time: generation {last_gen} -> {ans['generation']}, "
                                      f"count {last_count} -> {ans['count']}")
                    last_gen, last_count = ans["generation"], ans["count"]
                    pids.add(ans.get("pid"))
            except BaseException as e:  # noqa: BLE001
                errors.append(e)
            finally:
                c.close()

        # A query of the wrong dimension is the client's error, named by the core's status.
        c = Client(port)
        status, ans = c.request("POST", "/search", {"vector": [1.0, 2.0, 3.0], "k": K})
        c.close()
        if status != 400 or not isinstance(ans, dict) or ans.get("error") != "DIMENSION_MISMATCH":
            raise Failure(f"a 3-d query answered {status} {ans}, not 400 DIMENSION_MISMATCH")

        prober = threading.Thread(target=probe_loop, daemon=True)
        prober.start()
        threads = [threading.Thread(target=client_loop, args=(i,), daemon=True) for i in range(clients)]
        gen0 = first["generation"]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        elapsed = time.monotonic() - t0
        if any(t.is_alive() for t in threads):
            raise Failure("searches did not finish within 120 s")
        if errors:
            raise errors[0]
        gen_during = max((e["generation"] for e in list(events) if e.get("event") == "commit"), default=gen0)

        # Stop the ingest (it finishes the commit in progress), let the prober check
        # the commits still queued, then compare /health with the last commit.
        ingest.stop()
        reader.join(timeout=10)
        prober.join(timeout=30)
        done.set()
        if errors:
            raise errors[0]
        last = [e for e in events if e.get("event") == "commit"][-1]
        if ingest.proc.returncode != 0 or not any(e.get("event") == "done" for e in events):
            raise Failure(f"ingest did not end cleanly on SIGTERM (exit {ingest.proc.returncode}):\n{ingest.tail()}")
        c = Client(port)
        status, health = c.request("GET", "/health")
        c.close()
        if status != 200 or health.get("count") != last["count"] or health.get("generation") != last["generation"]:
            raise Failure(f"/health after the ingest stopped: {health}, last commit: generation "
                          f"{last['generation']}, count {last['count']}")
        server.stop()
        if server.proc.returncode not in (0, -signal.SIGTERM):
            raise Failure(f"{server.name} exited with {server.proc.returncode}:\n{server.tail()}")
        return {
            "example": example, "requests": requests, "clients": clients, "seconds": elapsed,
            "rps": requests / elapsed, "pids": len(pids), "commits_during": gen_during - gen0,
            "probes": probes["checked"], "final_count": last["count"],
        }
    except BaseException:
        for g in groups:
            if g.name.endswith("server"):
                sys.stderr.write(f"--- {g.name} log:\n{g.tail()}\n")
        raise
    finally:
        for g in groups:
            try:
                g.stop(grace=5)
            except Failure as e:
                sys.stderr.write(f"{e}\n")
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("examples", nargs="*", help="python, go, node (default: all three)")
    ap.add_argument("--requests", type=int, default=int(os.environ.get("SX_EXAMPLES_REQUESTS", "500")))
    ap.add_argument("--clients", type=int, default=8, help="client threads (keep-alive connections)")
    ap.add_argument("--workers", type=int, default=2, help="server processes of uvicorn and of the Node cluster")
    args = ap.parse_args()
    args.examples = args.examples or ["python", "go", "node"]
    for ex in args.examples:
        if ex not in ("python", "go", "node"):
            ap.error(f"unknown example {ex!r} (python, go, node)")

    # SIGTERM/SIGINT unwind through the finally blocks that stop the process groups.
    def on_signal(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    failed = []
    for ex in args.examples:
        t = time.monotonic()
        try:
            r = run_example(ex, args.requests, args.clients, args.workers)
        except (Failure, OSError, queue.Empty, ValueError, KeyError) as e:
            print(f"FAIL {ex}: {type(e).__name__}: {e}", flush=True)
            failed.append(ex)
            continue
        print(f"ok   {ex:<6} {r['requests']} searches in {r['seconds']:.2f} s = {r['rps']:.0f} req/s "
              f"({r['clients']} clients, {r['pids']} server process(es) answered) while the ingest made "
              f"{r['commits_during']} commits; {r['probes']} committed vectors found first at distance 0 "
              f"right after their commit; final count {r['final_count']} ({time.monotonic() - t:.1f} s in all)",
              flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
