'use strict';
/*
 * The Node runner of the conformance suite.
 *
 * Reads every case file (*.json) in $CONFORMANCE_CASES (default: <repo>/conformance/cases),
 * in name order, and runs each test of each file as one node:test test, named
 * `<file stem>.<test name>`, by interpreting its steps against the public JavaScript
 * API (the package's index.js). The format is shared/conformance/FORMAT.md (version 1)
 * with the project's extensions in conformance/FORMAT.md, read as the C runner
 * (conformance/runner_c.cc) and the Python runner (bindings/python/tests/
 * test_conformance.py) read them:
 *
 * - ops `write_file` (path, text | hex, pad_to) and the free-text `comment` field;
 * - a handle of the wrong kind for an op (a session given to `close`, a database given
 *   to `count`) is MISUSE; a write op given a read session reaches the binding, whose
 *   ReadSession throws MISUSE;
 * - a batch whose vectors differ in length among themselves is DIMENSION_MISMATCH;
 * - `$TMP` is `<fresh dir>/tmp`, so files made next to it go away with the test.
 *
 * Known gaps are listed with reasons in the skip file: $CONFORMANCE_SKIP, else
 * conformance/skip/node.json. A listed test still runs; it is reported as skipped with
 * its reason (its failure printed for information), with a loud note when it passes;
 * the test `skip.node_json` fails while any listed test passes or an entry names no
 * test, so that the list only shrinks.
 *
 * With $SEXTANT_CONFORMANCE_REPORT set to a path, a JSON report is written there:
 * {"runner": "node", "results": [{"file", "test", "outcome": "passed" |
 * "expected_failure" | "failed"}]}.
 */

const { test, after } = require('node:test');
const fs = require('fs');
const os = require('os');
const path = require('path');

const sextant = require('..');

const { SextantError } = sextant;
const REPO = path.resolve(__dirname, '..', '..', '..');
const CASES_DIR = process.env.CONFORMANCE_CASES || path.join(REPO, 'conformance', 'cases');
const SKIP_FILE = process.env.CONFORMANCE_SKIP || path.join(REPO, 'conformance', 'skip', 'node.json');

const CAPABILITIES = new Set(['index:flat', 'index:hnsw', 'metric:l2', 'metric:ip', 'metric:cosine', 'metadata', 'filter']);
const KNOWN_TAGS = new Set([...CAPABILITIES, 'filter']);
const COMMON_KEYS = new Set(['op', 'expect', 'expect_error', 'as', 'tolerance', 'comment']);
const OP_ARGS = {
  open: ['path', 'options'],
  close: ['db'],
  begin_write: ['db', 'timeout_ms'],
  commit: ['session'],
  abort: ['session'],
  begin_read: ['db'],
  end: ['session'],
  create_collection: ['session', 'name', 'dim', 'metric', 'index'],
  drop_collection: ['session', 'name'],
  list_collections: ['session'],
  describe_collection: ['session', 'name'],
  upsert: ['session', 'collection', 'items'],
  upsert_generated: ['session', 'collection', 'count', 'dim', 'seed', 'id_prefix', 'metadata_mod'],
  delete: ['session', 'collection', 'ids'],
  get: ['session', 'collection', 'id'],
  get_many: ['session', 'collection', 'ids'],
  scan: ['session', 'collection', 'after', 'batch'],
  count: ['session', 'collection'],
  search: ['session', 'collection', 'vector', 'k', 'ef', 'filter', 'include', 'exact'],
  search_generated: ['session', 'collection', 'count', 'dim', 'seed', 'k', 'ef', 'filter', 'exact'],
  write_file: ['path', 'text', 'hex', 'pad_to'],
};
const HANDLE_OPS = new Set(['open', 'begin_write', 'begin_read']);
const KIND_NAMES = { db: 'a database', read: 'a read session', write: 'a write session' };
const U32_MAX = 4294967295;
const FLOAT32_ROUNDS_TO_INF = 3.4028235677973366e38; // 0x1.ffffffp+127

/** A problem with the case itself, as opposed to the library answering differently. */
class CaseError extends Error {}

// ---- JSON with duplicate keys refused (as the C and Python runners load it) --------------

function parseJson(text) {
  let i = 0;
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i])) i++;
  };
  const fail = (what) => {
    const line = text.slice(0, i).split('\n').length;
    throw new SyntaxError(`${what} at line ${line}`);
  };
  const value = () => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const o = {};
      ws();
      if (text[i] === '}') {
        i++;
        return o;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected a key');
        const k = string();
        if (Object.prototype.hasOwnProperty.call(o, k)) fail(`duplicate key "${k}"`);
        ws();
        if (text[i] !== ':') fail('expected ":"');
        i++;
        Object.defineProperty(o, k, { value: value(), enumerable: true, writable: true, configurable: true });
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return o;
        }
        fail('expected "," or "}"');
      }
    }
    if (c === '[') {
      i++;
      const a = [];
      ws();
      if (text[i] === ']') {
        i++;
        return a;
      }
      for (;;) {
        a.push(value());
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return a;
        }
        fail('expected "," or "]"');
      }
    }
    if (c === '"') return string();
    const m = /^(?:-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)/.exec(text.slice(i, i + 400));
    if (!m) fail('unexpected character');
    i += m[0].length;
    return JSON.parse(m[0]);
  };
  const string = () => {
    const m = /^"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/.exec(text.slice(i));
    if (!m) fail('bad string');
    i += m[0].length;
    return JSON.parse(m[0]);
  };
  const v = value();
  ws();
  if (i !== text.length) fail('trailing characters');
  return v;
}

// ---- generated vectors (FORMAT.md, "Generated vectors") --------------------------------------

const M64 = (1n << 64n) - 1n;

function splitmix64(seed, n) {
  let state = BigInt(seed) & M64;
  const out = new Array(n);
  for (let k = 0; k < n; k++) {
    state = (state + 0x9e3779b97f4a7c15n) & M64;
    let z = state;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M64;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M64;
    out[k] = z ^ (z >> 31n);
  }
  return out;
}

/** count vectors of dim components, (z >> 40) / 2^24 * 2 - 1 (exact in float32), flat. */
function generate(seed, count, dim) {
  const zs = splitmix64(seed, count * dim);
  const out = new Float32Array(count * dim);
  for (let k = 0; k < zs.length; k++) out[k] = (Number(zs[k] >> 40n) / 16777216) * 2 - 1;
  return out;
}

// ---- JSON values ----------------------------------------------------------------------------

function component(v, where) {
  if (typeof v === 'string') {
    if (v === 'NaN') return NaN;
    if (v === 'Infinity') return Infinity;
    if (v === '-Infinity') return -Infinity;
    throw new CaseError(`${where}: string component "${v}" (only "NaN", "Infinity", "-Infinity" are allowed)`);
  }
  if (typeof v !== 'number') throw new CaseError(`${where}: a vector component must be a number`);
  if (Math.abs(v) >= FLOAT32_ROUNDS_TO_INF) throw new CaseError(`${where}: component beyond float32 range`);
  return v;
}

function vectorArg(v, where) {
  if (!Array.isArray(v)) throw new CaseError(`${where} must be an array`);
  return v.map((x, i) => component(x, `${where}[${i}]`));
}

function numberOrName(d) {
  if (Number.isNaN(d)) return 'NaN';
  if (d === Infinity) return 'Infinity';
  if (d === -Infinity) return '-Infinity';
  return d;
}

/** A record as {"id", "vector", "metadata"} (FORMAT.md, get). */
function recordJson(r) {
  return { id: r.id, vector: Array.from(r.vector, numberOrName), metadata: r.metadata };
}

function substitute(j, tmp) {
  if (typeof j === 'string') return j.split('$TMP').join(tmp);
  if (Array.isArray(j)) return j.map((x) => substitute(x, tmp));
  if (j !== null && typeof j === 'object') {
    const o = {};
    for (const [k, v] of Object.entries(j)) o[k.split('$TMP').join(tmp)] = substitute(v, tmp);
    return o;
  }
  return j;
}

function dump(j) {
  return JSON.stringify(j === undefined ? null : j, (k, v) => (typeof v === 'bigint' ? Number(v) : v));
}

function jsonType(j) {
  if (j === null || j === undefined) return 'null';
  if (typeof j === 'bigint') return 'number';
  if (Array.isArray(j)) return 'array';
  return typeof j; // boolean, number, string, object
}

class Tolerance {
  constructor(absolute) {
    this.absoluteOnly = absolute !== undefined;
    this.abs = absolute === undefined ? 1e-5 : absolute;
    this.rel = 1e-5;
  }
  close(e, a) {
    const lim = this.absoluteOnly ? this.abs : this.abs + this.rel * Math.abs(e);
    return Math.abs(a - e) <= lim;
  }
}

/** null when a matches e (FORMAT.md, "Expectations"), else where and how they differ. */
function match(e, a, tol, p = '', subsetDepth = 0) {
  const here = p || '(top)';
  if (jsonType(e) === 'number' && jsonType(a) === 'number') {
    if (tol.close(Number(e), Number(a))) return null;
    return `at ${here}: expected ${dump(e)}, got ${dump(a)}`;
  }
  if (jsonType(e) !== jsonType(a)) return `at ${here}: expected ${dump(e)}, got ${dump(a)}`;
  if (jsonType(e) === 'object') {
    for (const [k, ev] of Object.entries(e)) {
      if (!Object.prototype.hasOwnProperty.call(a, k)) return `at ${here}: missing key "${k}"`;
      const why = match(ev, a[k], tol, `${p}.${k}`, subsetDepth > 0 ? subsetDepth - 1 : 0);
      if (why) return why;
    }
    if (subsetDepth === 0) {
      for (const k of Object.keys(a)) {
        if (!Object.prototype.hasOwnProperty.call(e, k)) return `at ${here}: unexpected key "${k}"`;
      }
    }
    return null;
  }
  if (jsonType(e) === 'array') {
    if (e.length !== a.length) return `at ${here}: expected ${e.length} elements, got ${a.length}`;
    for (let i = 0; i < e.length; i++) {
      const why = match(e[i], a[i], tol, `${p}[${i}]`);
      if (why) return why;
    }
    return null;
  }
  if (e === a) return null;
  return `at ${here}: expected ${dump(e)}, got ${dump(a)}`;
}

// ---- the interpreter of one test's steps --------------------------------------------------

/** What a session sees, for search_generated's brute force: name -> {metric, vectors: Map id -> Float32Array}. */
function copyModel(m) {
  const out = new Map();
  for (const [name, c] of m) out.set(name, { metric: c.metric, vectors: new Map(c.vectors) });
  return out;
}

class Outcome {
  constructor({ code = null, message = '', value = null, problem = '' } = {}) {
    this.code = code; // null: success
    this.message = message;
    this.value = value;
    this.problem = problem; // a fault the runner detected in a successful result
  }
}

class Interpreter {
  constructor(tmp) {
    this.tmp = tmp;
    this.handles = [];
    this.names = new Map();
    this.committed = new Map(); // by database path
    this.op = '';
    this.step = {};
  }

  closeAll() {
    for (const h of this.handles) {
      try {
        if (h.kind === 'read') h.obj.end();
        else if (h.kind === 'write') h.obj.abort();
      } catch (e) {
        if (!(e instanceof SextantError)) throw e; // already ended: abort twice is CLOSED
      }
    }
    for (const h of this.handles) if (h.kind === 'db') h.obj.close();
    this.handles = [];
    this.names.clear();
  }

  run(step) {
    const op = step.op;
    this.op = op;
    if (typeof op !== 'string' || !Object.prototype.hasOwnProperty.call(OP_ARGS, op)) throw new CaseError(`unknown op "${op}"`);
    for (const key of Object.keys(step)) {
      if (!COMMON_KEYS.has(key) && !OP_ARGS[op].includes(key)) throw new CaseError(`op "${op}" takes no argument "${key}"`);
    }
    if ('as' in step && !HANDLE_OPS.has(op)) throw new CaseError(`op "${op}" returns no handle, so "as" makes no sense`);
    this.step = step;
    try {
      return this['op_' + op]();
    } catch (e) {
      if (e instanceof SextantError) return new Outcome({ code: e.code, message: e.message });
      throw e;
    }
  }

  // -- arguments

  arg(key, step = this.step) {
    if (!(key in step)) throw new CaseError(`op "${this.op}" needs argument "${key}"`);
    return step[key];
  }
  strArg(key, step = this.step) {
    const v = this.arg(key, step);
    if (typeof v !== 'string') throw new CaseError(`argument "${key}" must be a string`);
    return v;
  }
  intArg(v, key) {
    if (typeof v !== 'number' || !Number.isInteger(v)) throw new CaseError(`argument "${key}" must be an integer`);
    return v;
  }
  sizeArg(key) {
    const x = this.intArg(this.arg(key), key);
    if (x < 0) throw new CaseError(`argument "${key}" must not be negative`);
    return x;
  }
  /** A uint32 for an options field: out of range becomes UINT32_MAX, which the core rejects. */
  u32(v, key) {
    const x = this.intArg(v, key);
    return x < 0 || x > U32_MAX ? U32_MAX : x;
  }
  named(key) {
    const name = this.strArg(key);
    if (!this.names.has(name)) throw new CaseError(`no handle named "${name}" (see "as")`);
    return this.names.get(name);
  }
  /** The handle under key if of kind want ('session': either session), else MISUSE. */
  expectKind(key, want) {
    const h = this.named(key);
    if (h.kind !== want && !(want === 'session' && h.kind !== 'db')) {
      throw new SextantError(`runner: "${this.step[key]}" is ${KIND_NAMES[h.kind]}; op "${this.op}" needs ` +
                             (want === 'session' ? 'a session' : KIND_NAMES[want]), 'MISUSE');
    }
    return h;
  }
  session() {
    return this.expectKind('session', 'session');
  }
  bind(h) {
    this.handles.push(h);
    if ('as' in this.step) {
      if (typeof this.step.as !== 'string') throw new CaseError('"as" must be a string');
      this.names.set(this.step.as, h);
    }
  }

  // -- databases and sessions

  op_open() {
    const p = this.strArg('path');
    const opts = {};
    const o = this.step.options;
    if (o !== undefined && o !== null) {
      if (typeof o !== 'object' || Array.isArray(o)) throw new CaseError('"options" must be an object');
      for (const [k, v] of Object.entries(o)) {
        if (k === 'read_only') {
          if (typeof v !== 'boolean') throw new CaseError('option read_only must be true or false');
          opts.readOnly = v;
        } else if (k === 'sync') {
          if (typeof v !== 'string') throw new CaseError('option sync must be a string');
          opts.sync = v;
        } else {
          throw new CaseError(`unknown open option "${k}"`);
        }
      }
    }
    const db = sextant.open(p, opts);
    this.bind({ kind: 'db', path: p, obj: db, model: new Map() });
    return new Outcome();
  }

  op_close() {
    this.expectKind('db', 'db').obj.close();
    return new Outcome();
  }

  op_begin_write() {
    const d = this.expectKind('db', 'db');
    let timeoutMs = Infinity;
    if ('timeout_ms' in this.step) {
      const ms = this.intArg(this.step.timeout_ms, 'timeout_ms');
      timeoutMs = ms < 0 ? Infinity : Math.min(ms, 2 ** 31 - 1);
    }
    const w = d.obj.beginWrite({ timeoutMs });
    this.bind({ kind: 'write', path: d.path, obj: w, model: copyModel(this.committed.get(d.path) || new Map()) });
    return new Outcome();
  }

  op_begin_read() {
    const d = this.expectKind('db', 'db');
    const r = d.obj.beginRead();
    this.bind({ kind: 'read', path: d.path, obj: r, model: copyModel(this.committed.get(d.path) || new Map()) });
    return new Outcome();
  }

  op_commit() {
    const w = this.session();
    w.obj.commit();
    this.committed.set(w.path, copyModel(w.model));
    return new Outcome();
  }

  op_abort() {
    this.session().obj.abort();
    return new Outcome();
  }

  op_end() {
    this.session().obj.end();
    return new Outcome();
  }

  // -- collections

  op_create_collection() {
    const w = this.session();
    const name = this.strArg('name');
    const dim = this.u32(this.arg('dim'), 'dim');
    const metric = this.strArg('metric');
    const opts = { dim, metric, index: 'hnsw' }; // the format's default
    const ix = this.step.index;
    if (ix !== undefined && ix !== null) {
      if (typeof ix !== 'object' || Array.isArray(ix)) throw new CaseError('"index" must be an object');
      opts.index = this.strArg('type', ix);
      for (const [k, v] of Object.entries(ix)) {
        if (k === 'm') opts.m = this.u32(v, 'm');
        else if (k === 'ef_construction') opts.efConstruction = this.u32(v, 'ef_construction');
        else if (k === 'quantization') opts.quantization = this.strArg('quantization', ix);
        else if (k !== 'type') throw new CaseError(`unknown index parameter "${k}"`);
      }
    }
    w.obj.createCollection(name, opts);
    w.model.set(name, { metric, vectors: new Map() });
    return new Outcome();
  }

  op_drop_collection() {
    const w = this.session();
    const name = this.strArg('name');
    w.obj.dropCollection(name);
    w.model.delete(name);
    return new Outcome();
  }

  op_list_collections() {
    return new Outcome({ value: this.session().obj.listCollections() });
  }

  op_describe_collection() {
    const d = this.session().obj.describe(this.strArg('name'));
    const index = { type: d.index.type };
    if (d.index.type === 'hnsw') {
      index.m = d.index.m;
      index.ef_construction = d.index.efConstruction;
      index.quantization = d.index.quantization;
    }
    return new Outcome({ value: { name: d.name, dim: d.dim, metric: d.metric, index, count: d.count } });
  }

  // -- data

  upsertRows(w, coll, items, flat, dim) {
    if (items) w.obj.upsert(coll, items);
    else w.obj.upsert(coll, flat.metadata ? { ids: flat.ids, vectors: flat.vectors, metadata: flat.metadata } : { ids: flat.ids, vectors: flat.vectors });
    const c = w.model.get(coll);
    if (c) {
      if (items) for (const it of items) c.vectors.set(it.id, Float32Array.from(it.vector));
      else for (let i = 0; i < flat.ids.length; i++) c.vectors.set(flat.ids[i], flat.vectors.slice(i * dim, (i + 1) * dim));
    }
    return new Outcome();
  }

  op_upsert() {
    const w = this.session();
    const coll = this.strArg('collection');
    const items = this.arg('items');
    if (!Array.isArray(items)) throw new CaseError('"items" must be an array');
    const rows = items.map((it, i) => {
      const where = `items[${i}]`;
      if (it === null || typeof it !== 'object' || Array.isArray(it)) throw new CaseError(`${where} must be an object`);
      for (const k of Object.keys(it)) {
        if (!['id', 'vector', 'metadata'].includes(k)) throw new CaseError(`${where} has unknown key "${k}"`);
      }
      // Metadata passed as given: a non-object reaches the library, which must refuse it.
      return { id: this.strArg('id', it), vector: vectorArg(this.arg('vector', it), `${where}.vector`), metadata: it.metadata };
    });
    return this.upsertRows(w, coll, rows);
  }

  genArgs() {
    const count = this.sizeArg('count');
    const dim = this.sizeArg('dim');
    const seed = this.intArg(this.arg('seed'), 'seed');
    if (seed < 0) throw new CaseError('"seed" must not be negative');
    return { count, dim, seed };
  }

  op_upsert_generated() {
    const w = this.session();
    const coll = this.strArg('collection');
    const prefix = this.strArg('id_prefix');
    const { count, dim, seed } = this.genArgs();
    const vectors = generate(seed, count, dim);
    const ids = Array.from({ length: count }, (_, i) => prefix + i);
    let metadata;
    if ('metadata_mod' in this.step) {
      // metadata_mod m (extension): item i gets {"i": i, "c": i % m}.
      const m = this.step.metadata_mod;
      if (!Number.isInteger(m) || m < 1) throw new CaseError('"metadata_mod" must be an integer >= 1');
      metadata = Array.from({ length: count }, (_, i) => ({ i, c: i % m }));
    }
    if (count === 0) return this.upsertRows(w, coll, [], null, dim);
    return this.upsertRows(w, coll, null, { ids, vectors, metadata }, dim);
  }

  op_delete() {
    const w = this.session();
    const coll = this.strArg('collection');
    const ids = this.arg('ids');
    if (!Array.isArray(ids)) throw new CaseError('"ids" must be an array');
    ids.forEach((id, i) => {
      if (typeof id !== 'string') throw new CaseError(`ids[${i}] must be a string`);
    });
    const n = w.obj.delete(coll, ids);
    const c = w.model.get(coll);
    if (c) for (const id of ids) c.vectors.delete(id);
    return new Outcome({ value: n });
  }

  op_get() {
    const r = this.session().obj.get(this.strArg('collection'), this.strArg('id'));
    return new Outcome({ value: recordJson(r) });
  }

  /** get_many (extension): the records of ids, in order; null for an id not there. */
  op_get_many() {
    const s = this.session();
    const coll = this.strArg('collection');
    const ids = this.arg('ids');
    if (!Array.isArray(ids) || !ids.every((id) => typeof id === 'string')) throw new CaseError('"ids" must be an array of strings');
    const recs = s.obj.getMany(coll, ids);
    return new Outcome({ value: recs.map((r) => (r === null ? null : recordJson(r))) });
  }

  /** scan (extension): every live record through a cursor, in id order, after `after`, `batch` at a time. */
  op_scan() {
    const s = this.session();
    const coll = this.strArg('collection');
    const opts = {};
    if ('after' in this.step) opts.after = this.strArg('after');
    if ('batch' in this.step) opts.batchSize = this.sizeArg('batch');
    const out = [];
    for (const r of s.obj.scan(coll, opts)) out.push(recordJson(r));
    return new Outcome({ value: out });
  }

  op_count() {
    return new Outcome({ value: this.session().obj.count(this.strArg('collection')) });
  }

  ef() {
    if (!('ef' in this.step)) return undefined;
    return this.u32(this.step.ef, 'ef'); // as the C runner: out of range -> UINT32_MAX
  }

  /** The options of search and search_generated: ef, and the extensions filter (its
   * JSON text, whatever it is: the library judges it), include and exact. */
  searchOpts() {
    const o = { ef: this.ef() };
    if ('filter' in this.step) o.filter = JSON.stringify(this.step.filter);
    if ('include' in this.step) {
      const inc = this.step.include;
      if (!Array.isArray(inc)) throw new CaseError('"include" must be an array');
      for (const w of inc) {
        if (w !== 'metadata' && w !== 'vector') throw new CaseError('"include" holds "metadata" and "vector" only');
      }
      o.include = inc;
    }
    if ('exact' in this.step) {
      if (typeof this.step.exact !== 'boolean') throw new CaseError('"exact" must be a boolean');
      o.exact = this.step.exact;
    }
    return o;
  }

  op_search() {
    const s = this.session();
    const coll = this.strArg('collection');
    const q = vectorArg(this.arg('vector'), 'vector');
    const k = this.sizeArg('k');
    const o = this.searchOpts();
    const inc = o.include || [];
    const hits = s.obj.search(coll, Float32Array.from(q), k, o);
    let problem = '';
    const value = hits.map((h) => {
      const hit = { id: h.id, distance: numberOrName(h.distance) };
      if (inc.includes('metadata')) {
        if (!('metadata' in h)) problem = problem || `hit "${h.id}" carries no metadata`;
        hit.metadata = h.metadata === undefined ? null : h.metadata;
      }
      if (inc.includes('vector')) {
        if (!(h.vector instanceof Float32Array)) problem = problem || `hit "${h.id}" carries no Float32Array vector`;
        hit.vector = h.vector instanceof Float32Array ? Array.from(h.vector, numberOrName) : null;
      }
      return hit;
    });
    return new Outcome({ value, problem });
  }

  op_search_generated() {
    const s = this.session();
    const coll = this.strArg('collection');
    const { count, dim, seed } = this.genArgs();
    const k = this.sizeArg('k');
    const qs = generate(seed, count, dim);
    const o = { ...this.searchOpts(), dim: dim || 1 };
    const res = s.obj.searchBatch(coll, qs, k, o);
    // With a filter (extension), the exact answer comes from the same API with exact
    // set: a scan of the matching items.
    const exact = 'filter' in this.step ? s.obj.searchBatch(coll, qs, k, { ...o, exact: true }).ids : null;
    const c = s.model.get(coll);
    if (!c) return new Outcome({ problem: `runner: no record of collection '${coll}' in this session (create it in this test)` });
    if (res.ids.length !== count) return new Outcome({ problem: `search_batch answered ${res.ids.length} queries of ${count}` });
    if (exact && exact.length !== count) return new Outcome({ problem: `the exact search_batch answered ${exact.length} queries of ${count}` });
    const [recall, problem] = recallAtK(c.metric, c.vectors, qs, dim, count, res.ids, k, exact);
    return new Outcome({ value: recall, problem });
  }

  // -- files

  op_write_file() {
    const p = this.strArg('path');
    const inside = fs.realpathSync(path.resolve(this.tmp, path.dirname(p) || '.'));
    const root = fs.realpathSync(this.tmp);
    if (!(inside + path.sep).startsWith(root + path.sep)) {
      throw new CaseError(`write_file refuses '${p}': the path must lie inside $TMP`);
    }
    const text = this.step.text;
    const hex = this.step.hex;
    if ((text === undefined) === (hex === undefined)) throw new CaseError('write_file needs exactly one of "text", "hex"');
    let data;
    if (text !== undefined) {
      if (typeof text !== 'string') throw new CaseError('"text" must be a string');
      data = Buffer.from(text, 'utf8');
    } else {
      const digits = this.strArg('hex').replace(/\s+/g, '');
      if (digits.length % 2) throw new CaseError('"hex" has an odd number of digits');
      if (!/^[0-9a-fA-F]*$/.test(digits)) throw new CaseError('"hex" has a character that is not a hex digit');
      data = Buffer.from(digits, 'hex');
    }
    if ('pad_to' in this.step) {
      const n = this.intArg(this.step.pad_to, 'pad_to');
      if (n < 0 || n > 64 << 20) throw new CaseError('"pad_to" must be from 0 to 64 MiB');
      if (data.length < n) data = Buffer.concat([data, Buffer.alloc(n - data.length)]);
    }
    try {
      fs.writeFileSync(p, data);
    } catch (e) {
      throw new CaseError(`write_file cannot write '${p}': ${e.message}`);
    }
    return new Outcome();
  }
}

/** Mean recall@k against exact neighbours by brute force in double precision (ties by
 * id bytes), or against exactIds (per query, the ids of an exact search) when given,
 * and the first problem seen in the results. */
function recallAtK(metric, live, qs, dim, count, ids, k, exactIds) {
  const names = [...live.keys()].filter((id) => live.get(id).length === dim);
  names.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const base = names.map((id) => live.get(id));
  let problem = '';
  let total = 0;
  for (let q = 0; q < count && exactIds; q++) {
    const exact = new Set(exactIds[q]);
    const [found, p] = matched(ids[q], exact, live, q, k);
    problem = problem || p;
    total += exact.size ? found / exact.size : ids[q].length === 0 ? 1 : 0;
  }
  for (let q = 0; q < count && !exactIds; q++) {
    const x = qs.subarray(q * dim, (q + 1) * dim);
    let xx = 0;
    for (let j = 0; j < dim; j++) xx += x[j] * x[j];
    const d = base.map((b, idx) => {
      let dot = 0;
      let bb = 0;
      let l2 = 0;
      for (let j = 0; j < dim; j++) {
        dot += b[j] * x[j];
        bb += b[j] * b[j];
        l2 += (b[j] - x[j]) * (b[j] - x[j]);
      }
      const dist = metric === 'l2' ? l2 : metric === 'ip' ? 1 - dot : 1 - dot / (Math.sqrt(bb) * Math.sqrt(xx));
      return [dist, idx];
    });
    d.sort((a, b) => (a[0] !== b[0] ? a[0] - b[0] : a[1] - b[1]));
    const want = Math.min(k, names.length);
    const exact = new Set(d.slice(0, want).map(([, idx]) => names[idx]));
    const [found, p] = matched(ids[q], exact, live, q, k);
    problem = problem || p;
    total += want ? found / want : ids[q].length === 0 ? 1 : 0;
  }
  return [count ? total / count : 1, problem];
}

/** How many of query q's returned ids are in `exact`, and the first problem: more than
 * k hits, an id that is not live, an id twice. */
function matched(got, exact, live, q, k) {
  let problem = '';
  if (got.length > k) problem = `query ${q} returned ${got.length} hits for k ${k}`;
  const seen = new Set();
  let found = 0;
  for (const sid of got) {
    if (!live.has(sid) && !problem) problem = `query ${q} returned id "${sid}", which is not live`;
    if (seen.has(sid) && !problem) problem = `query ${q} returned id "${sid}" twice`;
    seen.add(sid);
    if (exact.has(sid)) found++;
  }
  return [found, problem];
}

/** '' when the outcome meets the step's expectation, else what differed. */
function check(op, step, o) {
  const hasExpect = 'expect' in step;
  const hasError = 'expect_error' in step;
  if (hasExpect && hasError) throw new CaseError('a step has at most one of "expect", "expect_error"');
  if (hasError) {
    const want = step.expect_error;
    if (typeof want !== 'string') throw new CaseError('"expect_error" must be a string');
    if (o.code === null) return `expected error ${want}, but the op succeeded (result: ${dump(o.value)})`;
    if (o.code !== want) return `expected error ${want}, got ${o.code}: ${o.message}`;
    return '';
  }
  if (o.code !== null) return `the op failed with ${o.code}: ${o.message}`;
  if (o.problem) return o.problem;
  if (!hasExpect) return '';
  const expect = step.expect;
  let tol = new Tolerance();
  if ('tolerance' in step) {
    if (typeof step.tolerance !== 'number') throw new CaseError('"tolerance" must be a number');
    tol = new Tolerance(step.tolerance);
  }
  const actual = o.value;
  const differ = (why) => `expected: ${dump(expect)}\n  actual:   ${dump(actual)}\n  difference ${why}`;
  if (op === 'search_generated') {
    if (expect === null || typeof expect !== 'object' || Object.keys(expect).join() !== 'recall_at_least' ||
        typeof expect.recall_at_least !== 'number') {
      throw new CaseError('search_generated expects {"recall_at_least": R}');
    }
    if (actual + 1e-12 >= expect.recall_at_least) return '';
    return `mean recall ${actual.toFixed(6)} is below ${expect.recall_at_least.toFixed(6)}`;
  }
  if (op === 'search' && expect !== null && typeof expect === 'object' && !Array.isArray(expect)) {
    const keys = Object.keys(expect);
    if (keys.length !== 1 || !(Array.isArray(expect.ids) || Array.isArray(expect.id_set))) {
      throw new CaseError('search expects a hit array, {"ids": [...]} or {"id_set": [...]}');
    }
    const got = actual.map((h) => h.id);
    if ('ids' in expect) {
      const why = match(expect.ids, got, tol, 'ids');
      return why ? differ(why) : '';
    }
    const a = expect.id_set.map(dump).sort();
    const b = got.map(dump).sort();
    if (a.length !== b.length || a.some((x, i) => x !== b[i])) return differ('in the set of ids (order ignored)');
    return '';
  }
  const why = match(expect, actual, tol, '', op === 'describe_collection' ? 2 : 0);
  return why ? differ(why) : '';
}

// ---- case files ----------------------------------------------------------------------------------

function safeName(s) {
  return s.replace(/[^A-Za-z0-9_]/g, '_') || '_';
}

function loadSkips() {
  const problems = [];
  let root;
  try {
    root = parseJson(fs.readFileSync(SKIP_FILE, 'utf8'));
  } catch (e) {
    return [[], [`${SKIP_FILE}: ${e.message}`]];
  }
  const keys = root && typeof root === 'object' ? Object.keys(root) : [];
  if (!root || typeof root !== 'object' || Array.isArray(root) || !Array.isArray(root.skips) ||
      keys.some((k) => k !== 'skips' && k !== 'comment') || (root.comment !== undefined && typeof root.comment !== 'string')) {
    return [[], [`${SKIP_FILE}: must be {"comment"?: "...", "skips": [{"file": ..., "test": ..., "reason": ...}, ...]}`]];
  }
  const skips = [];
  root.skips.forEach((s, i) => {
    const where = `${SKIP_FILE}: skips[${i}]`;
    if (!s || typeof s !== 'object' || typeof s.file !== 'string' || typeof s.test !== 'string') {
      problems.push(`${where} needs string "file" and "test"`);
      return;
    }
    if (typeof s.reason !== 'string' || !s.reason) {
      problems.push(`${where} (${s.file} / ${s.test}) has no "reason": every skip needs one`);
      return;
    }
    if (Object.keys(s).length !== 3) problems.push(`${where} has keys other than file, test, reason`);
    skips.push(s);
  });
  return [skips, problems];
}

function loadCases() {
  const cases = [];
  let files;
  try {
    files = fs.readdirSync(CASES_DIR).filter((f) => f.endsWith('.json')).sort();
  } catch (e) {
    return [{ file: '_cases.json', name: 'directory', loadError: `cannot read the case directory ${CASES_DIR}: ${e.message}` }];
  }
  if (!files.length) return [{ file: '_cases.json', name: 'directory', loadError: `no *.json case files in ${CASES_DIR}` }];
  for (const file of files) {
    const p = path.join(CASES_DIR, file);
    let root;
    try {
      root = parseJson(fs.readFileSync(p, 'utf8'));
    } catch (e) {
      cases.push({ file, name: '_file', loadError: `${p}: not valid JSON: ${e.message}` });
      continue;
    }
    if (!root || typeof root !== 'object' || root.format !== 1) {
      cases.push({ file, name: '_file', loadError: `${p}: "format" must be 1 (the version this runner reads)` });
      continue;
    }
    const tests = root.tests;
    const req = root.requires;
    if (!Array.isArray(tests) || (req !== undefined && !Array.isArray(req))) {
      cases.push({ file, name: '_file', loadError: `${p}: "tests" (and "requires" if present) must be arrays` });
      continue;
    }
    const seen = new Set();
    tests.forEach((t, i) => {
      let name = t && typeof t === 'object' ? t.name : undefined;
      let loadError = '';
      if (typeof name !== 'string' || !Array.isArray(t.steps)) {
        loadError = `${p}: tests[${i}] needs a string "name" and a "steps" array`;
        if (typeof name !== 'string') name = `tests[${i}]`;
      }
      if (seen.has(safeName(name))) {
        cases.push({ file, name: `_duplicate_${name}`, loadError: `${p}: two tests are named "${name}" (names are unique ` +
                     'within a file, also after characters other than A-Z a-z 0-9 _ become _)' });
        return;
      }
      seen.add(safeName(name));
      cases.push({ file, name, test: t, requires: req, loadError });
    });
  }
  return cases;
}

/** '' when the test passed, else a report naming the file, test, step and op. */
function runCase(c) {
  if (c.loadError) return c.loadError;
  const head = `conformance case failed\n  file: ${c.file}\n  test: ${c.name}\n`;
  for (const req of [c.requires, c.test.requires]) {
    for (const tag of req || []) {
      if (!KNOWN_TAGS.has(tag)) return head + `  requires unknown capability "${tag}"\n`;
      if (!CAPABILITIES.has(tag)) return head + `  requires "${tag}", which the Node binding does not support\n`;
    }
  }
  const outer = fs.mkdtempSync(path.join(os.tmpdir(), 'sx-conformance-'));
  const tmp = path.join(outer, 'tmp');
  fs.mkdirSync(tmp);
  let failure = '';
  const interp = new Interpreter(tmp);
  try {
    for (let i = 0; i < c.test.steps.length; i++) {
      const raw = c.test.steps[i];
      const step = substitute(raw, tmp);
      const op = step && typeof step === 'object' ? step.op : '?';
      const where = `${head}  step: ${i} (steps[${i}], op "${op}")\n  step json: ${dump(raw)}\n`;
      let why;
      try {
        if (!step || typeof step !== 'object' || Array.isArray(step)) throw new CaseError('a step must be an object');
        const o = interp.run(step);
        why = check(op, step, o);
      } catch (e) {
        if (!(e instanceof CaseError)) throw e;
        why = `case error: ${e.message}`;
      }
      if (why) {
        failure = `${where}  ${why}\n`;
        break;
      }
    }
  } finally {
    interp.closeAll(); // handles left open, after the steps were checked; then $TMP goes
    fs.rmSync(outer, { recursive: true, force: true });
  }
  return failure;
}

// ---- registration -------------------------------------------------------------------------------

const [SKIPS, SKIP_PROBLEMS] = loadSkips();
const CASES = loadCases();
for (const c of CASES) {
  const s = SKIPS.find((x) => x.file === c.file && x.test === c.name);
  c.skipReason = s ? s.reason : undefined;
}
const RESULTS = [];

for (const c of CASES) {
  test(`${safeName(c.file.slice(0, -5))}.${safeName(c.name)}`, (t) => {
    let failure;
    try {
      failure = runCase(c);
    } catch (e) {
      failure = `runner error: ${e && e.stack ? e.stack : e}`;
    }
    if (c.skipReason !== undefined) {
      RESULTS.push({ file: c.file, test: c.name, outcome: failure ? 'expected_failure' : 'passed' });
      if (!failure) {
        const note = `${c.file} / ${c.name} is listed in ${SKIP_FILE} (reason: ${c.skipReason}) but it PASSED: ` +
                     'remove it from the skip list';
        const bar = '*'.repeat(70);
        process.stderr.write(`${bar}\nNOTE: ${note}\n${bar}\n`);
        t.skip(`${c.skipReason} -- BUT IT PASSED: remove it from ${SKIP_FILE}`);
        return;
      }
      t.diagnostic(`failure of a test listed in the skip file (reason: ${c.skipReason}):\n${failure}`);
      t.skip(c.skipReason);
      return;
    }
    RESULTS.push({ file: c.file, test: c.name, outcome: failure ? 'failed' : 'passed' });
    if (failure) throw new Error(failure);
  });
}

test('skip.node_json', () => {
  const problems = [...SKIP_PROBLEMS];
  const known = new Set(CASES.map((c) => `${c.file}\u0000${c.name}`));
  for (const s of SKIPS) {
    if (!known.has(`${s.file}\u0000${s.test}`)) problems.push(`${SKIP_FILE}: no test "${s.test}" in file "${s.file}"`);
  }
  for (const c of CASES) {
    if (c.skipReason !== undefined && !runCase(c)) problems.push(`${c.file} / ${c.name} passes: remove it from ${SKIP_FILE}`);
  }
  if (problems.length) throw new Error(problems.join('\n'));
});

test('splitmix64 reference values', () => {
  // The published splitmix64 sequence for seed 0 starts with 0xE220A8397B1DCDAF.
  const z = splitmix64(0, 3);
  if (z[0] !== 0xe220a8397b1dcdafn || z[1] !== 0x6e789e6aa1b965f4n || z[2] !== 0x06c45d188009454fn) {
    throw new Error(`splitmix64(0) = ${z.map((x) => x.toString(16))}`);
  }
  const v = generate(0, 1, 2);
  if (v[0] !== Math.fround((Number(0xe220a8397b1dcdafn >> 40n) / 2 ** 24) * 2 - 1)) throw new Error('component rule');
});

after(() => {
  const out = process.env.SEXTANT_CONFORMANCE_REPORT;
  if (out) fs.writeFileSync(out, JSON.stringify({ runner: 'node', results: RESULTS }, null, 1) + '\n');
});

module.exports = { parseJson, generate, splitmix64 };
