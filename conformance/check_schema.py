#!/usr/bin/env python3
"""Validates every conformance case file against conformance/schema.json (JSON Schema
draft 2020-12) and every skip file in conformance/skip/ against the skip-file rules.

Usage: check_schema.py [FILE_OR_DIR ...]
With no arguments it checks $CONFORMANCE_CASES (default: conformance/cases/*.json) and
conformance/skip/*.json, and, for the project's own cases, that the suite as a whole
uses every op, every error name but FULL and NOMEM, every metric and both index types.
Exits nonzero, naming each problem, if anything is invalid, and also when the
`jsonschema` package is missing (it never passes without checking).
"""
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

try:
    import jsonschema
    from jsonschema import Draft202012Validator
except ImportError:
    sys.stderr.write(
        "check_schema.py: the Python package `jsonschema` (4.0 or later, for draft 2020-12) "
        "is not installed: pip install jsonschema\n")
    sys.exit(1)

SKIP_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["skips"],
    "additionalProperties": False,
    "properties": {
        "comment": {"type": "string"},
        "skips": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["file", "test", "reason"],
                "additionalProperties": False,
                "properties": {
                    "file": {"type": "string", "pattern": r"\.json$"},
                    "test": {"type": "string", "minLength": 1},
                    "reason": {"type": "string", "minLength": 1},
                },
            },
        }
    },
}


def load(path, problems):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f, object_pairs_hook=no_duplicates)
    except (OSError, ValueError) as e:
        problems.append(f"{path}: {e}")
        return None


def no_duplicates(pairs):
    seen = {}
    for k, v in pairs:
        if k in seen:
            raise ValueError(f"duplicate key {k!r}")
        seen[k] = v
    return seen


def where(error):
    return "/".join(str(p) for p in error.absolute_path) or "(top)"


def report(path, validator, doc, problems):
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    for e in errors:
        # For a failed if/then on one op, the deepest error says what is wrong.
        leaf = e
        while leaf.context:
            leaf = min(leaf.context, key=lambda c: len(list(c.absolute_path)) * -1)
        detail = leaf.message if leaf is not e else e.message
        problems.append(f"{path}: at {where(leaf)}: {detail}")
    return not errors


def safe_name(name):
    return re.sub(r"[^A-Za-z0-9_]", "_", name) or "_"


def check_case_file(path, validator, problems):
    doc = load(path, problems)
    if doc is None:
        return
    if not report(path, validator, doc, problems):
        return
    # What a schema cannot say: names are unique within a file (also after the
    # runners' name sanitizing, since test frameworks see the sanitized names).
    seen = {}
    for t in doc["tests"]:
        s = safe_name(t["name"])
        if s in seen:
            problems.append(f"{path}: tests {seen[s]!r} and {t['name']!r} have the same name")
        seen[s] = t["name"]


ALL_OPS = ["open", "close", "begin_write", "commit", "abort", "begin_read", "end", "create_collection",
           "drop_collection", "list_collections", "describe_collection", "upsert", "upsert_generated",
           "delete", "get", "count", "search", "search_generated", "write_file", "get_many", "scan"]
# FULL and NOMEM cannot be produced on demand by a case (FORMAT.md, extensions).
ALL_ERRORS = ["NOT_FOUND", "EXISTS", "INVALID_ARGUMENT", "DIMENSION_MISMATCH", "READ_ONLY", "BUSY",
              "CLOSED", "MISUSE", "CORRUPT", "IO", "VERSION"]


def coverage(case_files, problems):
    """The project's suite as a whole uses every op, every error name but FULL and
    NOMEM, every metric and both index types."""
    ops, errors, metrics, indexes = set(), set(), set(), set()
    for path in case_files:
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
        except (OSError, ValueError):
            continue  # reported already
        for t in doc.get("tests", []):
            for st in t.get("steps", []):
                ops.add(st.get("op"))
                if "expect_error" in st:
                    errors.add(st["expect_error"])
                if st.get("op") == "create_collection" and "expect_error" not in st:
                    metrics.add(st.get("metric"))
                    indexes.add(st.get("index", {"type": "hnsw"}).get("type"))
    for what, want, got in (("op", ALL_OPS, ops), ("error name", ALL_ERRORS, errors),
                            ("metric", ["l2", "ip", "cosine"], metrics),
                            ("index type", ["flat", "hnsw"], indexes)):
        for w in want:
            if w not in got:
                problems.append(f"coverage: no case uses the {what} {w!r}")


def main(argv):
    problems = []
    with open(os.path.join(HERE, "schema.json"), encoding="utf-8") as f:
        schema = json.load(f)
    try:
        Draft202012Validator.check_schema(schema)
    except jsonschema.exceptions.SchemaError as e:
        print(f"schema.json is not a valid draft 2020-12 schema: {e.message}", file=sys.stderr)
        return 1
    validator = Draft202012Validator(schema)
    skip_validator = Draft202012Validator(SKIP_SCHEMA)

    case_files, skip_files = [], []
    if argv:
        for a in argv:
            if os.path.isdir(a):
                case_files += sorted(os.path.join(a, n) for n in os.listdir(a) if n.endswith(".json"))
            else:
                case_files.append(a)
    else:
        cases = os.environ.get("CONFORMANCE_CASES") or os.path.join(HERE, "cases")
        case_files = sorted(os.path.join(cases, n) for n in os.listdir(cases) if n.endswith(".json"))
        skip_dir = os.path.join(HERE, "skip")
        if os.path.isdir(skip_dir):
            skip_files = sorted(os.path.join(skip_dir, n) for n in os.listdir(skip_dir) if n.endswith(".json"))
        if not case_files:
            problems.append(f"no case files in {cases}")

    for p in case_files:
        check_case_file(p, validator, problems)
    if not argv and not os.environ.get("CONFORMANCE_CASES"):
        coverage(case_files, problems)
    for p in skip_files:
        doc = load(p, problems)
        if doc is not None:
            report(p, skip_validator, doc, problems)

    problems = list(dict.fromkeys(problems))  # one error can surface twice via allOf
    for m in problems:
        print(m, file=sys.stderr)
    print(f"checked {len(case_files)} case files and {len(skip_files)} skip files: "
          f"{'OK' if not problems else str(len(problems)) + ' problems'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
