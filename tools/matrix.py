"""Prints the conformance matrix from the runners' JSON reports (see
tools/conformance.sh): one row per case file, one column per runner, each cell
"passed/expected-failure/failed", then totals. Exits 1 when a runner's report is
missing or malformed, a runner failed a case, or the runners disagree on which tests
exist.

Usage: python3 tools/matrix.py <report dir> <runner>...
"""

from __future__ import annotations

import json
import os
import sys
from collections import defaultdict


def main() -> int:
    out, runners = sys.argv[1], sys.argv[2:]
    ok = True
    cells: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    tests: dict[str, set[tuple[str, str]]] = {}
    files: set[str] = set()
    index = {"passed": 0, "expected_failure": 1, "failed": 2}
    for r in runners:
        path = os.path.join(out, r + ".json")
        try:
            with open(path, encoding="utf-8") as f:
                report = json.load(f)
            results = report["results"]
            assert report["runner"] == r, f'report says runner "{report["runner"]}"'
        except (OSError, ValueError, KeyError, AssertionError) as e:
            print(f"{r}: no usable report at {path}: {e}")
            ok = False
            continue
        tests[r] = set()
        for res in results:
            key = (res["file"], res["test"])
            if key in tests[r]:
                print(f"{r}: {res['file']} / {res['test']} reported twice")
                ok = False
            tests[r].add(key)
            files.add(res["file"])
            outcome = res["outcome"]
            if outcome not in index:
                print(f"{r}: unknown outcome {outcome!r} for {key}")
                ok = False
                continue
            cells[(res["file"], r)][index[outcome]] += 1
            if outcome == "failed":
                print(f"FAILED under {r}: {res['file']} / {res['test']}")
                ok = False
    present = [r for r in runners if r in tests]
    if present:
        everyone = set.union(*(tests[r] for r in present))
        for r in present:
            missing = sorted(everyone - tests[r])
            if missing:
                print(f"{r}: did not run {len(missing)} test(s) the others ran, e.g. {missing[:3]}")
                ok = False
    width = max([len(f) for f in files] + [len("case file"), len("total")])
    head = f"{'case file':<{width}}" + "".join(f"  {r:>14}" for r in runners)
    print()
    print("conformance matrix (passed/expected-failure/failed)")
    print(head)
    print("-" * len(head))
    totals = {r: [0, 0, 0] for r in runners}
    for f in sorted(files):
        row = f"{f:<{width}}"
        for r in runners:
            if r not in tests:
                row += f"  {'missing':>14}"
                continue
            c = cells[(f, r)]
            for i in range(3):
                totals[r][i] += c[i]
            row += f"  {'%d/%d/%d' % tuple(c):>14}"
        print(row)
    print("-" * len(head))
    print(f"{'total':<{width}}" + "".join(
        f"  {('%d/%d/%d' % tuple(totals[r])) if r in tests else 'missing':>14}" for r in runners))
    print("all runners green" if ok else "MATRIX NOT GREEN")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
