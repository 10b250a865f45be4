"""The `sextant` command-line tool, run as a real process on real files: every
command, --json output parsed and checked, round trips, bad arguments and damaged
files giving clear errors and the documented exit codes, a backup taken while another
process writes, an interrupted import resumed.

Run by ctest: python3 tests/cli_test.py PATH/TO/sextant (standard library only).
"""

import json
import math
import os
import random
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import time
import unittest

SEXTANT = None

EX_OK, EX_ERR, EX_USAGE, EX_CORRUPT, EX_NOTFOUND, EX_BUSY, EX_INT = 0, 1, 2, 3, 4, 5, 130


def run(*args, stdin=None, check=None):
    p = subprocess.run([SEXTANT, *map(str, args)], input=stdin, capture_output=True, text=True, timeout=300)
    if check is not None:
        assert p.returncode == check, f"{args}: exit {p.returncode}, want {check}\nstdout: {p.stdout}\nstderr: {p.stderr}"
    return p


def js(*args):
    p = run("--json", *args, check=EX_OK)
    return json.loads(p.stdout)


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def write_npy(path, rows, descr="<f4", fortran=False, shape=None, truncate=0):
    fmt = {"<f4": "<f", "<f8": "<d", "|u1": "<B", "<i4": "<i"}[descr]
    shape = shape or (len(rows), len(rows[0]))
    d = "{'descr': '%s', 'fortran_order': %s, 'shape': (%d, %d), }" % (descr, fortran, *shape)
    pad = 64 - (10 + len(d) + 1) % 64
    hdr = d + " " * pad + "\n"
    data = b"".join(struct.pack("<%d%s" % (len(r), fmt[1]), *r) for r in rows)
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode() + data[: len(data) - truncate])


def write_fvecs(path, rows):
    with open(path, "wb") as f:
        for r in rows:
            f.write(struct.pack("<i", len(r)) + struct.pack("<%df" % len(r), *r))


def vecs(n, dim, seed):
    rnd = random.Random(seed)
    return [[f32(rnd.uniform(-1, 1)) for _ in range(dim)] for _ in range(n)]


class Cli(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="sx-cli-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def p(self, name):
        return os.path.join(self.dir, name)

    def jsonl(self, name, n, dim, seed=1, meta=True):
        rows = vecs(n, dim, seed)
        with open(self.p(name), "w") as f:
            for i, v in enumerate(rows):
                m = {"i": i, "tag": "t%d" % (i % 5), "text": 'quote " and \u00e9'} if meta and i % 2 else None
                f.write(json.dumps({"id": "doc%05d" % i, "vector": v, "metadata": m}) + "\n")
        return rows

    # ---- usage -------------------------------------------------------------------------

    def test_help_and_usage_errors(self):
        p = run("--help", check=EX_OK)
        self.assertIn("exit codes", p.stdout)
        cmds = ["info", "stats", "check", "collections", "describe", "count", "get", "create", "import",
                "export", "search", "checkpoint", "delete", "drop", "backup", "compact"]
        for c in cmds:
            self.assertIn(c, p.stdout)
            h = run(c, "--help", check=EX_OK)
            self.assertIn("usage: sextant", h.stdout)
        run(check=EX_USAGE)
        p = run("frobnicate", check=EX_USAGE)
        self.assertIn("'frobnicate'", p.stderr)
        p = run("info", "--bogus", check=EX_USAGE)
        p = run("count", self.p("x.sx"), check=EX_USAGE)  # missing collection argument
        self.assertIn("DATABASE COLLECTION", p.stderr)
        p = run("info", self.p("missing.sx"), check=EX_NOTFOUND)
        self.assertIn("missing.sx", p.stderr)
        self.assertFalse(os.path.exists(self.p("missing.sx")))  # read commands never create
        p = run("create", self.p("x.sx"), "c", "--dim", "0", check=EX_USAGE)
        self.assertIn("'0'", p.stderr)
        p = run("create", self.p("x.sx"), "c", "--dim", "4", "--metric", "manhattan", check=EX_USAGE)
        self.assertIn("manhattan", p.stderr)
        p = run("create", self.p("x.sx"), "c", "--dim", "4", "--index", "ivf", check=EX_USAGE)
        self.assertIn("unknown index type 'ivf' (flat, hnsw)", p.stderr)
        p = run("import", self.p("x.sx"), "c", self.p("none.npy"), "--sync", "sometimes", check=EX_USAGE)
        self.assertIn("unknown sync level 'sometimes' (full, normal, off)", p.stderr)
        self.assertFalse(os.path.exists(self.p("x.sx")))  # refused before anything is made
        p = run("--timeout", "soon", "info", self.p("x.sx"), check=EX_USAGE)
        self.assertIn("soon", p.stderr)
        self.assertIn("sextant", run("--version", check=EX_OK).stdout)

    # ---- import / export / get / describe ------------------------------------------------

    def test_jsonl_round_trip_is_bit_identical(self):
        rows = self.jsonl("in.jsonl", 500, 12)
        db = self.p("a.sx")
        out = js("import", db, "docs", self.p("in.jsonl"), "--batch", "128", "--no-progress")
        self.assertEqual((out["rows"], out["stored"], out["created"]), (500, 500, True))
        info = js("info", db)
        self.assertEqual(info["collections"][0]["name"], "docs")
        self.assertEqual(info["collections"][0]["count"], 500)
        self.assertEqual(js("collections", db), ["docs"])
        self.assertEqual(js("count", db, "docs"), {"count": 500})
        d = js("describe", db, "docs")
        self.assertEqual((d["dim"], d["metric"], d["index"]["type"], d["count"]), (12, "l2", "hnsw", 500))
        run("export", db, "docs", "-o", self.p("out1.jsonl"), check=EX_OK)
        js("import", self.p("b.sx"), "docs", self.p("out1.jsonl"))
        run("export", self.p("b.sx"), "docs", "-o", self.p("out2.jsonl"), check=EX_OK)
        with open(self.p("out1.jsonl"), "rb") as a, open(self.p("out2.jsonl"), "rb") as b:
            self.assertEqual(a.read(), b.read())
        # The export is in id order and holds exactly what went in.
        with open(self.p("out1.jsonl")) as f:
            lines = [json.loads(x) for x in f]
        self.assertEqual([x["id"] for x in lines], ["doc%05d" % i for i in range(500)])
        for i, x in enumerate(lines):
            self.assertEqual([f32(v) for v in x["vector"]], rows[i])
            if i % 2:
                self.assertEqual(x["metadata"], {"i": i, "tag": "t%d" % (i % 5), "text": 'quote " and \u00e9'})
            else:
                self.assertIsNone(x["metadata"])
        # export to stdout, resumed after an id
        p = run("export", db, "docs", "--after", "doc00497", check=EX_OK)
        self.assertEqual([json.loads(x)["id"] for x in p.stdout.splitlines()], ["doc00498", "doc00499"])
        # get: JSON Lines, in the order asked; a missing id is exit 4 naming it
        p = run("get", db, "docs", "doc00003", "doc00001", check=EX_OK)
        got = [json.loads(x) for x in p.stdout.splitlines()]
        self.assertEqual([g["id"] for g in got], ["doc00003", "doc00001"])
        self.assertEqual([f32(v) for v in got[0]["vector"]], rows[3])
        p = run("get", db, "docs", "doc00003", "nope", check=EX_NOTFOUND)
        self.assertIn("'nope'", p.stderr)
        self.assertEqual(len(p.stdout.splitlines()), 1)
        p = run("count", db, "nosuch", check=EX_NOTFOUND)
        self.assertIn("'nosuch'", p.stderr)

    def test_jsonl_metadata_is_stored_as_written(self):
        # Metadata reaches the core as the line holds it: what the core takes (a NUL in a
        # key or a string, integers beyond 64 bits, any spacing) imports, and exports back
        # byte for byte; it was once parsed and written again by jansson, which refused
        # the first two and rewrote the rest.
        meta = [
            '{"k\\u0000ey":"a\\u0000b","big":18446744073709551617,"neg":-1180591620717411303424}',
            '{ "spaced" : [1, {"c":"}]\\"{"}] , "n": 1.0e2, "u": "\\u00e9" }',
            '{}',
        ]
        lines = ['{"id":"m%d","vector":[%d,1],"metadata":%s}' % (i, i, m) for i, m in enumerate(meta)]
        # Members in any order, the key escaped, null metadata, and none.
        lines.append('{"meta\\u0064ata":{"x":1},"vector":[7,1],"id":"esc"}')
        lines.append('{"id":"null","vector":[8,1],"metadata":null}')
        lines.append('{"id":"none","vector":[9,1]}')
        lines.append('{"id":"line\\nbreak","vector":[10,1]}')
        with open(self.p("m.jsonl"), "w") as f:
            f.write("\n".join(lines) + "\n")
        db = self.p("m.sx")
        js("import", db, "c", self.p("m.jsonl"), "--index", "flat")
        got = {json.loads(x)["id"]: x for x in run("export", db, "c", check=EX_OK).stdout.splitlines()}
        for i, m in enumerate(meta):
            self.assertEqual(got["m%d" % i], lines[i])
        self.assertEqual(json.loads(got["esc"])["metadata"], {"x": 1})
        self.assertIsNone(json.loads(got["null"])["metadata"])
        self.assertIsNone(json.loads(got["none"])["metadata"])
        # Exported, imported again elsewhere, exported again: the same bytes.
        run("export", db, "c", "-o", self.p("e.jsonl"), check=EX_OK)
        js("import", self.p("m2.sx"), "c", self.p("e.jsonl"), "--index", "flat")
        self.assertEqual(run("export", self.p("m2.sx"), "c", check=EX_OK).stdout,
                         run("export", db, "c", check=EX_OK).stdout)
        self.assertEqual(json.loads(got["line\nbreak"])["id"], "line\nbreak")
        # An npy export's ids file has one id per line: an id with a line break is
        # refused (it once split into two lines), and nothing is left behind.
        p = run("export", db, "c", "-o", self.p("m.npy"), check=EX_ERR)
        self.assertIn('the id "line\\nbreak", which holds a line break', p.stderr)
        self.assertFalse([x for x in os.listdir(self.dir) if x.startswith("m.npy")])
        # Refused, naming the line or the row and what is wrong; nothing is stored.
        bad = [
            (b'{"id":"a\\u0000b","vector":[1,2]}\n', "holds a NUL character"),
            (b'{"id":"a","vector":[1,2]}\x00{"id":"b"}\n', "a NUL byte at column 26"),
            (b'{"id":"a","vector":[1,2],"metadata":{"x":1,"x":2}}\n', "the key 'x' appears twice"),
            (b'{"id":"a","vector":[1,2],"metadata":{"x":tru}}\n', "metadata of item 0 is not valid JSON"),
            (b'{"id":"a","vector":[1,2],"metadata":{"x":1},"metadata":{}}\n', "duplicate object key"),
            (b'{"id":"a","vector":[1,2],"metadata":"{}"}\n', '"metadata" is not an object or null'),
            (b'{"id":"a","vector":[1,2],"metadata":{"x":"ab}\n', "line 1"),
            (b'{"id":"a","vector":[1,2],"other":tru,"metadata":{}}\n', "line 1"),
        ]
        for text, want in bad:
            with open(self.p("bad.jsonl"), "wb") as f:
                f.write(text)
            p = run("import", self.p("bad.sx"), "c", self.p("bad.jsonl"), check=EX_ERR)
            self.assertIn(want, p.stderr, text)
            self.assertIn("bad.jsonl", p.stderr, text)
            self.assertNotIn("JSON_ALLOW_NUL", p.stderr)
            if os.path.exists(self.p("bad.sx")):
                self.assertEqual(js("collections", self.p("bad.sx")), [])

    def test_import_options_must_match_an_existing_collection(self):
        # --metric, --index, --m, --ef-construction and --quantization shape a collection
        # import creates; for one that exists, a different value was once ignored in
        # silence (vectors meant for cosine went into an l2 collection).
        self.jsonl("in.jsonl", 20, 4)
        db = self.p("o.sx")
        js("import", db, "c", self.p("in.jsonl"), "--m", "8")
        for opt, val, have in [("--metric", "cosine", "metric l2"), ("--index", "flat", "index hnsw"),
                               ("--m", "16", "m 8"), ("--ef-construction", "64", "ef-construction 200"),
                               ("--quantization", "int8", "quantization none")]:
            p = run("import", db, "c", self.p("in.jsonl"), opt, val, check=EX_ERR)
            self.assertIn("collection 'c' exists with %s, not %s" % (have, val), p.stderr)
        self.assertEqual(js("count", db, "c")["count"], 20)
        # The same values, or none, are fine.
        js("import", db, "c", self.p("in.jsonl"), "--metric", "l2", "--index", "hnsw", "--m", "8",
           "--ef-construction", "200", "--quantization", "none")
        js("import", self.p("f.sx"), "c", self.p("in.jsonl"), "--index", "flat")
        p = run("import", self.p("f.sx"), "c", self.p("in.jsonl"), "--m", "16", check=EX_ERR)
        self.assertIn("exists with m none (flat), not 16", p.stderr)
        # Id numbering where the ids come from elsewhere was ignored in silence too.
        p = run("import", db, "c", self.p("in.jsonl"), "--id-prefix", "x", check=EX_USAGE)
        self.assertIn("--id-prefix does not apply to JSON Lines", p.stderr)
        p = run("import", db, "c", self.p("in.jsonl"), "--start", "5", check=EX_USAGE)
        self.assertIn("--start does not apply to JSON Lines", p.stderr)
        write_fvecs(self.p("v.fvecs"), [[1, 2, 3, 4]])
        with open(self.p("ids.txt"), "w") as f:
            f.write("only\n")
        p = run("import", db, "c", self.p("v.fvecs"), "--ids", self.p("ids.txt"), "--start", "3", check=EX_USAGE)
        self.assertIn("--start does not apply with --ids", p.stderr)
        self.assertEqual(js("count", db, "c")["count"], 20)

    def test_npy_fvecs_and_bad_files(self):
        rows = vecs(300, 8, 2)
        db = self.p("n.sx")
        write_npy(self.p("f4.npy"), rows)
        out = js("import", db, "f4", self.p("f4.npy"), "--id-prefix", "v", "--index", "flat")
        self.assertEqual(out["stored"], 300)
        got = json.loads(run("get", db, "f4", "v7", check=EX_OK).stdout)
        self.assertEqual([f32(v) for v in got["vector"]], rows[7])
        # float64 input is converted to float32; --start numbers the ids
        write_npy(self.p("f8.npy"), rows, "<f8")
        js("import", db, "f8", self.p("f8.npy"), "--start", "1000")
        got = json.loads(run("get", db, "f8", "1007", check=EX_OK).stdout)
        self.assertEqual([f32(v) for v in got["vector"]], rows[7])
        # ids from a file
        with open(self.p("ids.txt"), "w") as f:
            f.write("".join("name-%d\n" % i for i in range(300)))
        js("import", db, "named", self.p("f4.npy"), "--ids", self.p("ids.txt"))
        self.assertEqual([f32(v) for v in json.loads(run("get", db, "named", "name-299", check=EX_OK).stdout)["vector"]], rows[299])
        write_fvecs(self.p("a.fvecs"), rows)
        self.assertEqual(js("import", db, "fv", self.p("a.fvecs"))["stored"], 300)
        self.assertEqual([f32(v) for v in json.loads(run("get", db, "fv", "5", check=EX_OK).stdout)["vector"]], rows[5])
        # One id per vector, LF or CRLF; a count that differs is refused before anything
        # is stored (more lines than vectors were once ignored, fewer failed halfway).
        with open(self.p("crlf.txt"), "wb") as f:
            f.write(b"".join(b"win-%d\r\n" % i for i in range(300)))
        js("import", db, "crlf", self.p("f4.npy"), "--ids", self.p("crlf.txt"))
        self.assertEqual(json.loads(run("get", db, "crlf", "win-7", check=EX_OK).stdout)["id"], "win-7")
        for lines in (299, 301):
            with open(self.p("n.txt"), "w") as f:
                f.write("".join("n-%d\n" % i for i in range(lines)))
            p = run("import", db, "miscount", self.p("f4.npy"), "--ids", self.p("n.txt"), "--batch", "100",
                    check=EX_ERR)
            self.assertIn("has %d lines for 300 vectors" % lines, p.stderr)
        self.assertNotIn("miscount", js("collections", db))
        # A NUL byte in an ids file is refused: cut there, the id would name another.
        with open(self.p("nul.txt"), "wb") as f:
            f.write(b"".join(b"name-%d\n" % i for i in range(299)) + b"name-1\x00x\n")
        p = run("import", db, "nul", self.p("f4.npy"), "--ids", self.p("nul.txt"), check=EX_ERR)
        self.assertIn("line 300 holds a NUL byte", p.stderr)
        p = run("delete", db, "named", "--ids-file", self.p("nul.txt"), check=EX_ERR)
        self.assertIn("line 300 holds a NUL byte", p.stderr)
        self.assertEqual(js("count", db, "named")["count"], 300)
        self.assertEqual(js("delete", db, "crlf", "--ids-file", self.p("crlf.txt"))["deleted"], 300)
        # npy export + ids file, re-imported identically
        run("export", db, "f4", "-o", self.p("out.npy"), check=EX_OK)
        js("import", db, "again", self.p("out.npy"), "--ids", self.p("out.npy.ids"))
        a = run("export", db, "f4", check=EX_OK).stdout
        b = run("export", db, "again", check=EX_OK).stdout
        self.assertEqual(a, b)

        # Bad inputs: a clear error naming the value, exit 1 (or 2 for usage), nothing stored.
        write_npy(self.p("i4.npy"), [[1, 2], [3, 4]], "<i4")
        p = run("import", db, "bad", self.p("i4.npy"), check=EX_ERR)
        self.assertIn("'<i4'", p.stderr)
        write_npy(self.p("fo.npy"), rows[:2], fortran=True)
        p = run("import", db, "bad", self.p("fo.npy"), check=EX_ERR)
        self.assertIn("fortran_order True", p.stderr)
        write_npy(self.p("tr.npy"), rows, truncate=10)
        p = run("import", db, "bad", self.p("tr.npy"), check=EX_ERR)
        self.assertIn("truncated", p.stderr)
        # Row numbers from --start never wrap around to 0.
        p = run("import", db, "wrap", self.p("f4.npy"), "--start", str(2**64 - 2), check=EX_ERR)
        self.assertIn("row 2 from --start 18446744073709551614 passes 18446744073709551615", p.stderr)
        self.assertNotIn("wrap", js("collections", db))
        # A third dimension is refused, not read as (rows, first): (3, 2, 2) once
        # imported 3 vectors of 2 and dropped the rest.
        def raw_npy(path, header, data=b""):
            hdr = header + " " * (64 - (10 + len(header) + 1) % 64) + "\n"
            with open(path, "wb") as f:
                f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode() + data)
        raw_npy(self.p("3d.npy"), "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2, 2), }", b"\0" * 48)
        p = run("import", db, "bad", self.p("3d.npy"), check=EX_ERR)
        self.assertIn("shape (3, 2, 2) is not 2-D", p.stderr)
        # A shape whose size passes 2^64 bytes is truncated, not wrapped around.
        raw_npy(self.p("huge.npy"), "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 2), }")
        p = run("import", db, "bad", self.p("huge.npy"), check=EX_ERR)
        self.assertIn("is truncated: shape (4611686018427387904, 2) needs 4611686018427387904 rows", p.stderr)
        # A header it cannot read is quoted on one line (no padding, no newline).
        raw_npy(self.p("hdr.npy"), "{'garbage': 1, }")
        p = run("import", db, "bad", self.p("hdr.npy"), check=EX_ERR)
        self.assertIn(".npy header '{'garbage': 1, }' lacks descr", p.stderr)
        self.assertEqual(p.stderr.count("\n"), 1, p.stderr)
        with open(self.p("junk.npy"), "wb") as f:
            f.write(b"not numpy at all")
        p = run("import", db, "bad", self.p("junk.npy"), check=EX_ERR)
        self.assertIn("not a .npy file", p.stderr)
        with open(self.p("bad.jsonl"), "w") as f:
            f.write('{"id": "a", "vector": [1, 2]}\n{"id": "b", "vector": [1, "x"]}\n')
        p = run("import", db, "bad", self.p("bad.jsonl"), check=EX_ERR)
        self.assertIn("line 2", p.stderr)
        with open(self.p("bad2.jsonl"), "w") as f:
            f.write('{"id": "a", "vector": [1, 2]}\n{"id": "b", "vector": [1, 2, 3]}\n')
        p = run("import", db, "bad", self.p("bad2.jsonl"), check=EX_ERR)
        self.assertIn("line 2", p.stderr)
        self.assertIn("3 components", p.stderr)
        p = run("import", db, "f4", self.p("a.jsonl.missing"), "--format", "jsonl", check=EX_NOTFOUND)
        p = run("import", db, "f4", self.p("ids.txt"), check=EX_USAGE)  # format unknown
        self.assertIn("--format", p.stderr)
        write_npy(self.p("d4.npy"), vecs(3, 4, 9))
        p = run("import", db, "f4", self.p("d4.npy"), check=EX_ERR)  # dimension 4 into dimension 8
        self.assertIn("DIMENSION_MISMATCH", p.stderr)
        self.assertNotIn("bad", js("collections", db))
        self.assertEqual(js("count", db, "f4")["count"], 300)

    def test_search_matches_brute_force_and_reads_queries(self):
        rows = self.jsonl("in.jsonl", 400, 6, seed=5, meta=False)
        db = self.p("s.sx")
        js("import", db, "flat", self.p("in.jsonl"), "--index", "flat")
        q = vecs(3, 6, 77)
        for query in q:
            want = sorted(range(400), key=lambda i: (sum((a - b) ** 2 for a, b in zip(rows[i], query)), "doc%05d" % i))[:5]
            out = js("search", db, "flat", ",".join(repr(x) for x in query), "-k", "5")
            self.assertEqual([h["id"] for h in out["results"]], ["doc%05d" % i for i in want])
            d = [h["distance"] for h in out["results"]]
            self.assertEqual(d, sorted(d))
        # a query file (text, one per line) and stdin; npy
        with open(self.p("q.txt"), "w") as f:
            f.write("\n".join(" ".join(repr(x) for x in v) for v in q) + "\n")
        out = js("search", db, "flat", "--query-file", self.p("q.txt"), "-k", "2")
        self.assertEqual(out["queries"], 3)
        self.assertEqual(len(out["results"]), 3)
        with open(self.p("q.txt")) as f:
            text = f.read()
        p = run("--json", "search", db, "flat", "--query-file", "-", "-k", "2", stdin=text, check=EX_OK)
        self.assertEqual(json.loads(p.stdout)["results"], out["results"])
        write_npy(self.p("q.npy"), q)
        self.assertEqual(js("search", db, "flat", "--query-file", self.p("q.npy"), "-k", "2")["results"], out["results"])
        # JSON Lines: each line's "vector"; a query needs no "id" (it once had to have one).
        with open(self.p("q.jsonl"), "w") as f:
            f.write("".join(json.dumps({"vector": v}) + "\n" for v in q))
        self.assertEqual(js("search", db, "flat", "--query-file", self.p("q.jsonl"), "-k", "2")["results"], out["results"])
        text = run("search", db, "flat", "--vector", ",".join(map(repr, q[0])), "-k", "3", check=EX_OK).stdout
        self.assertEqual(len(text.splitlines()), 3)
        # One query only: a vector given twice was once searched with the --vector one.
        p = run("search", db, "flat", "1,2", "--vector", "3,4", check=EX_USAGE)
        self.assertIn("give one query", p.stderr)
        p = run("export", db, "flat", "--ids-output", self.p("x.ids"), check=EX_USAGE)
        self.assertIn("--ids-output applies to npy exports", p.stderr)
        self.assertFalse(os.path.exists(self.p("x.ids")))
        p = run("search", db, "flat", "1,abc,3", check=EX_USAGE)
        self.assertIn("'abc'", p.stderr)
        p = run("search", db, "flat", "1,2,3", check=EX_ERR)
        self.assertIn("DIMENSION_MISMATCH", p.stderr)
        p = run("search", db, "flat", "1,2,3,4,5,6", "-k", "0", check=EX_USAGE)
        self.assertIn("'0'", p.stderr)

    def test_quantized_collection(self):
        rows = self.jsonl("in.jsonl", 300, 8, seed=9, meta=False)
        db = self.p("q.sx")
        run("create", db, "q", "--dim", "8", "--quantization", "int8", check=EX_OK)
        d = js("describe", db, "q")
        self.assertEqual(d["index"]["quantization"], "int8")
        self.assertIn("quantization int8", run("describe", db, "q", check=EX_OK).stdout)
        js("import", db, "q", self.p("in.jsonl"))
        # Distances after the rerank are the exact float32 ones; the walk covers all at ef 300.
        query = vecs(1, 8, 3)[0]
        out = js("search", db, "q", ",".join(repr(x) for x in query), "-k", "5", "--ef", "300")
        want = sorted(range(300), key=lambda i: sum((a - b) ** 2 for a, b in zip(rows[i], query)))[:5]
        self.assertEqual([h["id"] for h in out["results"]], ["doc%05d" % i for i in want])
        for h, i in zip(out["results"], want):
            ref = sum((a - b) ** 2 for a, b in zip(rows[i], query))
            self.assertAlmostEqual(h["distance"], ref, delta=1e-4 * max(1.0, ref))
        run("check", db, check=EX_OK)
        # import creates with it too; a flat collection refuses it; an unknown name is a usage error
        js("import", self.p("i.sx"), "q", self.p("in.jsonl"), "--quantization", "int8")
        self.assertEqual(js("describe", self.p("i.sx"), "q")["index"]["quantization"], "int8")
        p = run("create", db, "f", "--dim", "8", "--index", "flat", "--quantization", "int8", check=EX_ERR)
        self.assertIn("int8", p.stderr)
        p = run("create", db, "u", "--dim", "8", "--quantization", "int4", check=EX_USAGE)
        self.assertIn("int4", p.stderr)
        self.assertEqual(js("describe", db, "q")["count"], 300)
        d = js("describe", self.p("i.sx"), "q")
        self.assertEqual((d["index"]["m"], d["index"]["quantization"]), (16, "int8"))

    def test_search_with_a_filter(self):
        self.jsonl("in.jsonl", 200, 4, seed=3)  # odd i: {"i": i, "tag": "t<i % 5>", ...}
        db = self.p("f.sx")
        js("import", db, "c", self.p("in.jsonl"))
        out = js("search", db, "c", "0,0,0,0", "-k", "50", "--filter", '{"tag": "t1", "i": {"$lt": 100}}')
        got = sorted(h["id"] for h in out["results"])
        self.assertEqual(got, ["doc%05d" % i for i in range(1, 100, 2) if i % 5 == 1])
        ex = js("search", db, "c", "0,0,0,0", "-k", "50", "--filter", '{"tag": "t1", "i": {"$lt": 100}}', "--exact")
        self.assertEqual(sorted(h["id"] for h in ex["results"]), got)
        out = js("search", db, "c", "0,0,0,0", "-k", "500", "--filter", '{"tag": {"$exists": false}}')
        self.assertEqual(len(out["results"]), 100)  # the even ones have no metadata
        p = run("search", db, "c", "0,0,0,0", "--filter", '{"tag": {"$like": "t"}}', check=EX_USAGE)
        self.assertIn("$like", p.stderr)
        p = run("search", db, "c", "0,0,0,0", "--filter", "[1]", check=EX_USAGE)
        self.assertIn("--filter", p.stderr)

    def test_delete_drop_checkpoint_stats_check(self):
        self.jsonl("in.jsonl", 100, 4)
        db = self.p("d.sx")
        js("import", db, "c", self.p("in.jsonl"))
        out = js("delete", db, "c", "doc00001", "doc00002", "nope")
        self.assertEqual(out, {"requested": 3, "deleted": 2})
        with open(self.p("del.txt"), "w") as f:
            f.write("doc00003\ndoc00004\n")
        self.assertEqual(js("delete", db, "c", "--ids-file", self.p("del.txt"))["deleted"], 2)
        self.assertEqual(js("count", db, "c")["count"], 96)
        s = js("stats", db)
        for k in ("page_size", "page_count", "wal_frames", "readers", "checkpoints"):
            self.assertIn(k, s)
        c = js("checkpoint", db)
        self.assertTrue(c["complete"])
        self.assertEqual(js("check", db), {"ok": True, "status": "OK"})
        self.assertEqual(js("drop", db, "c"), {"dropped": True})
        self.assertEqual(js("collections", db), [])
        p = run("drop", db, "c", check=EX_NOTFOUND)
        self.assertIn("'c'", p.stderr)
        p = run("delete", self.p("none.sx"), "c", "x", check=EX_NOTFOUND)
        self.assertFalse(os.path.exists(self.p("none.sx")))

    def test_check_finds_damage(self):
        self.jsonl("in.jsonl", 300, 16)
        db = self.p("c.sx")
        js("import", db, "c", self.p("in.jsonl"))
        run("checkpoint", db, check=EX_OK)
        with open(self.p("junk.sx"), "wb") as f:
            f.write(b"this is not a database" * 300)
        p = run("--json", "check", self.p("junk.sx"), check=EX_CORRUPT)
        self.assertFalse(json.loads(p.stdout)["ok"])
        self.assertIn("not a Sextant database", p.stderr)
        # A copy missing its last pages.
        shutil.copy(db, self.p("cut.sx"))
        size = os.path.getsize(self.p("cut.sx"))
        with open(self.p("cut.sx"), "r+b") as f:
            f.truncate(size - 3 * 4096)
        p = run("--json", "check", self.p("cut.sx"))
        self.assertEqual(p.returncode, EX_CORRUPT, p.stderr)
        self.assertEqual(json.loads(p.stdout)["status"], "CORRUPT")

    def test_compact_in_place_and_into(self):
        rows = self.jsonl("in.jsonl", 3000, 16)
        db = self.p("k.sx")
        js("import", db, "c", self.p("in.jsonl"), "--batch", "500")
        with open(self.p("del.txt"), "w") as f:
            f.write("".join("doc%05d\n" % i for i in range(3000) if i % 10))
        self.assertEqual(js("delete", db, "c", "--ids-file", self.p("del.txt"))["deleted"], 2700)
        s = js("stats", db)
        self.assertGreater(s["reclaimable_bytes"], s["live_bytes"])
        into = js("compact", db, "--into", self.p("new.sx"), "--no-progress")
        # One file: no -wal or -shm beside it, no scratch files left.
        self.assertEqual(sorted(x for x in os.listdir(self.dir) if x.startswith("new.sx")), ["new.sx"])
        self.assertEqual(js("count", self.p("new.sx"), "c")["count"], 300)
        p = run("compact", db, "--into", self.p("new.sx"), check=EX_ERR)
        self.assertIn("exists", p.stderr)
        out = js("compact", db, "--no-progress")
        self.assertLess(out["file_bytes_after"] * 3, out["file_bytes_before"])
        self.assertEqual(out["reclaimable_bytes_after"], 0)
        # In place, the file ends up as small as the new database of the survivors.
        self.assertLessEqual(os.path.getsize(db) * 10, into["file_bytes_after"] * 12)
        self.assertEqual(js("check", db)["ok"], True)
        lines = [json.loads(x) for x in run("export", db, "c", check=EX_OK).stdout.splitlines()]
        self.assertEqual([x["id"] for x in lines], ["doc%05d" % i for i in range(0, 3000, 10)])
        self.assertEqual([f32(v) for v in lines[7]["vector"]], rows[70])
        self.assertEqual(run("export", db, "c", check=EX_OK).stdout, run("export", self.p("new.sx"), "c", check=EX_OK).stdout)
        run("compact", self.p("nope.sx"), check=EX_NOTFOUND)

    def test_outputs_that_are_not_regular_files(self):
        # A rename over a destination replaces its name: a device node, a FIFO, a
        # symlink, the database itself or its WAL were once replaced that way.
        self.jsonl("in.jsonl", 50, 4)
        db = self.p("o.sx")
        js("import", db, "c", self.p("in.jsonl"))
        fifo, d = self.p("fifo"), self.p("dir")
        os.mkfifo(fifo)
        os.mkdir(d)
        dev = self.p("full")
        try:
            os.mknod(dev, 0o600 | stat.S_IFCHR, os.makedev(1, 7))  # as /dev/full
        except OSError:
            dev = None
        for dest in [fifo, d] + ([dev] if dev else []):
            p = run("compact", db, "--into", dest, "--overwrite", check=EX_ERR)
            self.assertIn("is not a regular file", p.stderr)
            p = run("backup", db, dest, "--overwrite", check=EX_ERR)
            self.assertIn("is not a regular file", p.stderr)
        for same in (db, db + "-wal", os.path.join(os.path.dirname(db), ".", "o.sx")):
            if os.path.exists(same):
                p = run("compact", db, "--into", same, "--overwrite", check=EX_ERR)
                self.assertIn("is the database itself", p.stderr)
        self.assertTrue(stat.S_ISFIFO(os.stat(fifo).st_mode))
        self.assertEqual(js("count", db, "c")["count"], 50)
        self.assertEqual(js("check", db)["ok"], True)
        # A device is written as it is: a full one is an error, and stays a device.
        if dev:
            p = run("export", db, "c", "-o", dev, check=EX_ERR)
            self.assertIn("No space left", p.stderr)
            self.assertTrue(stat.S_ISCHR(os.stat(dev).st_mode))
        p = run("export", db, "c", "-o", d, check=EX_ERR)
        self.assertIn("is a directory", p.stderr)
        # Through a symlink, the file it names is replaced and the link stays.
        real, link = self.p("real.jsonl"), self.p("link.jsonl")
        with open(real, "w") as f:
            f.write("old\n")
        os.symlink(real, link)
        run("export", db, "c", "-o", link, check=EX_OK)
        self.assertTrue(os.path.islink(link))
        with open(real) as f:
            self.assertEqual(len(f.read().splitlines()), 50)
        run("backup", db, self.p("real.sx"), check=EX_OK)
        os.symlink(self.p("real.sx"), self.p("link.sx"))
        run("compact", db, "--into", self.p("link.sx"), "--overwrite", check=EX_OK)
        self.assertTrue(os.path.islink(self.p("link.sx")))
        self.assertEqual(js("count", self.p("real.sx"), "c")["count"], 50)
        # --json names such paths as JSON strings (a quote once made the line invalid JSON).
        odd = self.p('q"uote\\x')
        self.assertEqual(js("export", db, "c", "-o", odd + ".jsonl")["output"], odd + ".jsonl")
        self.assertEqual(js("backup", db, odd + ".bak")["backup"], odd + ".bak")
        self.assertEqual(js("compact", db, "--into", odd + ".sx", "--no-progress")["into"], odd + ".sx")

    # ---- processes ------------------------------------------------------------------------

    def test_backup_while_another_process_writes(self):
        self.jsonl("big.jsonl", 6000, 8, meta=False)
        db = self.p("w.sx")
        js("import", db, "c", self.p("big.jsonl"), "--batch", "1000", "--index", "flat")
        # Another process imports in commits of 50 rows while backups run.
        writer = subprocess.Popen([SEXTANT, "import", db, "more", self.p("big.jsonl"), "--batch", "50",
                                   "--index", "flat", "--sync", "normal", "--no-progress"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        counts = []
        try:
            for i in range(6):
                dest = self.p("bk%d.sx" % i)
                out = js("backup", db, dest, "--no-progress")
                self.assertGreater(out["bytes"], 0)
                self.assertEqual(js("check", dest)["ok"], True)
                self.assertEqual(js("count", dest, "c")["count"], 6000)
                if "more" in js("collections", dest):
                    n = js("count", dest, "more")["count"]
                    self.assertEqual(n % 50, 0, n)
                    counts.append(n)
                time.sleep(0.05)
        finally:
            self.assertEqual(writer.wait(timeout=300), 0, writer.stderr.read())
        p = run("backup", db, self.p("bk0.sx"), check=EX_ERR)
        self.assertIn("exists", p.stderr)
        js("backup", db, self.p("bk0.sx"), "--overwrite")
        self.assertEqual(js("count", self.p("bk0.sx"), "more")["count"], 6000)
        print("\nbackups saw 'more' at", counts, file=sys.stderr)

    def test_overwriting_a_database_in_use_is_busy(self):
        # Replacing a database another process has open would remove its WAL (and the
        # commits in it) under it: backup --overwrite and compact --into --overwrite
        # refuse with BUSY until it is closed.
        self.jsonl("in.jsonl", 40, 4)
        db, dest = self.p("src.sx"), self.p("dest.sx")
        js("import", db, "c", self.p("in.jsonl"))
        js("backup", db, dest)
        fifo = self.p("rows.jsonl")
        os.mkfifo(fifo)
        importer = subprocess.Popen([SEXTANT, "import", dest, "live", fifo, "--batch", "1", "--no-progress"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        rows = [json.dumps({"id": "r%d" % i, "vector": [i, 1, 2, 3]}) + "\n" for i in range(5)]
        feed = os.open(fifo, os.O_RDWR)  # never blocks, even if the importer is gone
        try:
            os.write(feed, (rows[0] + rows[1]).encode())
            deadline = time.time() + 30
            while not os.path.exists(dest + "-shm") and time.time() < deadline:
                time.sleep(0.02)
            time.sleep(0.3)  # its first commit
            p = run("backup", db, dest, "--overwrite", check=EX_BUSY)
            self.assertIn("is a database open in another handle", p.stderr)
            p = run("compact", db, "--into", dest, "--overwrite", "--no-progress", check=EX_BUSY)
            self.assertIn("is a database open in another handle", p.stderr)
            self.assertIsNone(importer.poll())
            os.write(feed, "".join(rows[2:]).encode())
        finally:
            os.close(feed)
        self.assertEqual(importer.wait(timeout=60), 0, importer.stderr.read())
        self.assertEqual(js("count", dest, "live")["count"], 5)
        self.assertEqual(js("count", dest, "c")["count"], 40)
        # Closed: both replace it.
        js("compact", db, "--into", dest, "--overwrite", "--no-progress")
        self.assertEqual(js("collections", dest), ["c"])
        js("backup", db, dest, "--overwrite")
        self.assertEqual(js("check", dest)["ok"], True)

    def test_interrupted_import_resumes(self):
        self.jsonl("big.jsonl", 20000, 16, meta=False)
        db = self.p("r.sx")
        proc = subprocess.Popen([SEXTANT, "--json", "import", db, "c", self.p("big.jsonl"), "--batch", "500",
                                 "--index", "flat", "--sync", "off"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # Wait until some batches are in, then interrupt.
        deadline = time.time() + 60
        while time.time() < deadline:
            time.sleep(0.05)
            p = run("--json", "count", db, "c")
            if p.returncode == 0 and json.loads(p.stdout)["count"] >= 1000:
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        if proc.returncode == 0:
            self.skipTest("the import finished before it was interrupted")
        self.assertEqual(proc.returncode, EX_INT, err)
        self.assertIn("resume", err)
        n = js("count", db, "c")["count"]
        self.assertEqual(n % 500, 0)
        self.assertLess(n, 20000)
        out = js("import", db, "c", self.p("big.jsonl"), "--skip-existing", "--batch", "500")
        self.assertEqual((out["rows"], out["stored"], out["skipped"]), (20000, 20000 - n, n))
        self.assertEqual(js("count", db, "c")["count"], 20000)
        self.assertEqual(js("check", db)["ok"], True)


if __name__ == "__main__":
    SEXTANT = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
