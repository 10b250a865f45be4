'use strict';
/*
 * The JavaScript surface of Sextant over the SWIG-generated addon (sextant.node).
 *
 * This layer only translates: JavaScript values to the C API's arguments (Float32Array
 * passed without a copy, metadata as JSON text, option objects to option structs) and
 * results back (hits, records, stats as plain objects). Every rule about data and
 * state is the core's; failures are the core's statuses, thrown as SextantError with
 * .code = the status name ('NOT_FOUND', 'BUSY', ...). Wrong JavaScript types throw
 * TypeError.
 *
 * Lifetimes follow the C API: a Database owns its handle and closes it when closed
 * or garbage-collected; closing it ends its sessions, whose later use throws CLOSED.
 * A session keeps its Database reachable, so a database is never collected under a
 * session still in use.
 *
 * Synchronous calls run on the calling thread, like better-sqlite3. The *Async calls
 * run on the libuv thread pool and return Promises; an AbortSignal cancels them
 * through the core's cancel token. A write session runs one call at a time: its async
 * calls queue behind each other, and a synchronous call while one is pending throws
 * MISUSE.
 */

const path = require('path');

const L = loadAddon();

function loadAddon() {
  const tried = [];
  for (const p of [
    process.env.SEXTANT_NODE_ADDON,
    path.join(__dirname, 'build', 'Release', 'sextant.node'),
    path.join(__dirname, 'build', 'Debug', 'sextant.node'),
  ]) {
    if (!p) continue;
    try {
      return require(p);
    } catch (e) {
      if (e.code !== 'MODULE_NOT_FOUND') throw e;
      tried.push(p);
    }
  }
  throw new Error(`sextant: the native addon is not built (looked for ${tried.join(', ')}); ` +
                  'run `npm run build` in bindings/node');
}

// ---- errors ----------------------------------------------------------------------------

/** The status names of the C API (sx_status_name), as SextantError codes. */
const CODES = Object.freeze([
  'NOT_FOUND', 'EXISTS', 'INVALID_ARGUMENT', 'DIMENSION_MISMATCH', 'READ_ONLY', 'BUSY', 'CLOSED',
  'MISUSE', 'CORRUPT', 'IO', 'FULL', 'NOMEM', 'VERSION', 'CANCELLED',
]);

class SextantError extends Error {
  /**
   * @param {string} message one line from the core, naming the offending value
   * @param {string} code the status name, one of CODES
   */
  constructor(message, code, options) {
    super(message, options);
    this.code = code;
  }
}
Object.defineProperty(SextantError.prototype, 'name', { value: 'SextantError', writable: true, configurable: true });

// A synchronous search writes its distances here (see node_typemaps.i); grown for a big k.
let scratch = new Float64Array(1024);
L.sx_node_register(SextantError, scratch);

// A search for more hits than this reserves no more: a bigger answer brings its
// distances in an array of its own (hitsOf). k is often "everything" (2^53 - 1).
const SCRATCH_MAX = 1 << 16;

function scratchFor(k) {
  if (k > SCRATCH_MAX) k = SCRATCH_MAX;
  if (k > scratch.length) {
    scratch = new Float64Array(Math.max(k, scratch.length * 2));
    L.sx_node_register(SextantError, scratch);
  }
}

/** Hits of a synchronous single search: ids joined by NUL, distances in scratch; or,
 * when the hits carry metadata or vectors, [ids joined by NUL, metadata, vectors, dim];
 * or, when there are more hits than scratch holds, [ids joined by NUL, metadata?,
 * vectors?, dim?, distances]. */
function hitsOf(r) {
  const joined = typeof r === 'string' ? r : r[0];
  if (joined === '') return [];
  const dist = typeof r !== 'string' && r.length > 4 ? r[4] : scratch;
  const ids = joined.split('\0');
  const out = new Array(ids.length);
  for (let i = 0; i < ids.length; i++) out[i] = { id: ids[i], distance: dist[i] };
  if (typeof r !== 'string') addExtras(out, 0, r[1], r[2], r[3]);
  return out;
}

/** Gives hits [from, from + hits.length) of a result their metadata (the text of one JSON
 * array over every hit of the call, parsed once: pass it parsed as an array to reuse
 * it) and vectors (views of one Float32Array of every hit's vector, dim each). */
function addExtras(hits, from, meta, vecs, dim) {
  const md = typeof meta === 'string' ? JSON.parse(meta) : meta;
  for (let i = 0; i < hits.length; i++) {
    const h = from + i;
    if (md !== undefined) hits[i].metadata = md[h];
    if (vecs !== undefined) hits[i].vector = vecs.subarray(h * dim, (h + 1) * dim);
  }
}

/** {ids, distances} of packed results: [ids joined by NUL, Float32Array, offsets], and
 * when the hits carry them, `metadata` (per query, per hit: the parsed object or null)
 * and `vectors` (per query, per hit: a Float32Array) from [3..5] (see hitsOf). */
function batchOf(p) {
  const all = p[0] === '' ? [] : p[0].split('\0');
  const d = p[1];
  const off = p[2];
  const nq = off.length - 1;
  const ids = new Array(nq);
  const distances = new Array(nq);
  for (let q = 0; q < nq; q++) {
    ids[q] = all.slice(off[q], off[q + 1]);
    distances[q] = d.subarray(off[q], off[q + 1]);
  }
  const out = { ids, distances };
  if (p.length > 3) {
    const md = p[3] === undefined ? undefined : JSON.parse(p[3]);
    const vecs = p[4];
    const dim = p[5];
    if (md !== undefined) out.metadata = new Array(nq);
    if (vecs !== undefined) out.vectors = new Array(nq);
    for (let q = 0; q < nq; q++) {
      if (md !== undefined) out.metadata[q] = md.slice(off[q], off[q + 1]);
      if (vecs !== undefined) {
        const row = new Array(off[q + 1] - off[q]);
        for (let h = off[q]; h < off[q + 1]; h++) row[h - off[q]] = vecs.subarray(h * dim, (h + 1) * dim);
        out.vectors[q] = row;
      }
    }
  }
  return out;
}

/** Records of a packed batch (batch get, cursor): [ids joined by NUL, vectors, dim,
 * found, metadata]; a record not found is null. Vectors are views of one copy. */
function recordsOf(p) {
  const dim = p[2];
  const found = p[3];
  const n = found.length;
  const ids = n ? p[0].split('\0') : [];
  const out = new Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = found[i] ? { id: ids[i], vector: p[1].subarray(i * dim, (i + 1) * dim), metadata: parseMetadata(p[4][i]) } : null;
  }
  return out;
}

/** Hits of packed results of one query. */
function hitsOfPacked(p) {
  const all = p[0] === '' ? [] : p[0].split('\0');
  const d = p[1];
  const out = new Array(all.length);
  for (let i = 0; i < all.length; i++) out[i] = { id: all[i], distance: d[i] };
  if (p.length > 3) addExtras(out, 0, p[3], p[4], p[5]);
  return out;
}

function err(code, message) {
  return new SextantError(message, code);
}

// ---- argument conversion ------------------------------------------------------------------

const U32_MAX = 4294967295;
const PACKED = typeof L.sx_write_upsert_packed === 'function';

function isThenable(v) {
  return v !== null && (typeof v === 'object' || typeof v === 'function') && typeof v.then === 'function';
}

// A lone UTF-16 surrogate, which has no UTF-8 form (String.prototype.isWellFormed
// would do, but only from Node 20).
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** A string the core gets as UTF-8. A lone surrogate is refused: Node would pass it on
 * as U+FFFD, so two different ids would name one item. */
function str(v, what) {
  if (typeof v !== 'string') throw new TypeError(`${what} must be a string, not ${describeType(v)}`);
  if (LONE_SURROGATE.test(v)) throw err('INVALID_ARGUMENT', `${what} is not valid UTF-8 text (it holds a lone surrogate)`);
  return v;
}

function describeType(v) {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (Array.isArray(v)) return 'an array';
  const name = typeof v === 'object' ? (v.constructor && v.constructor.name) || 'object' : typeof v;
  return `${/^[AEIOUaeiou]/.test(name) ? 'an' : 'a'} ${name}`;
}

/** A non-negative integer (k, counts). */
function uint(v, what, max = Number.MAX_SAFE_INTEGER) {
  if (typeof v !== 'number') throw new TypeError(`${what} must be a number, not ${describeType(v)}`);
  if (!Number.isInteger(v) || v < 0 || v > max) {
    throw err('INVALID_ARGUMENT', `${what} ${v} is not an integer from 0 to ${max}`);
  }
  return v;
}

/** An option that becomes a uint32 field; undefined is 0 (the default). */
function u32opt(v, what) {
  if (v === undefined || v === null) return 0;
  return uint(v, what, U32_MAX);
}

/** Milliseconds to the C API's int: Infinity (or undefined with dflt -1) waits for ever. */
function timeoutMs(v, dflt) {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'number') throw new TypeError(`timeoutMs must be a number, not ${describeType(v)}`);
  if (v === Infinity) return -1;
  if (Number.isNaN(v) || v < 0) {
    throw err('INVALID_ARGUMENT', `timeoutMs ${v} is not a number of milliseconds >= 0 (Infinity waits for ever)`);
  }
  return Math.min(Math.ceil(v), 2147483647);
}

/** A vector as a Float32Array: the same object when it is one, else a converted copy. */
function vector(v, what) {
  if (v instanceof Float32Array) return v;
  if (Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView))) {
    const out = new Float32Array(v.length);
    for (let i = 0; i < v.length; i++) {
      const x = v[i];
      if (typeof x !== 'number') throw new TypeError(`${what}[${i}] must be a number, not ${describeType(x)}`);
      out[i] = x;
    }
    return out;
  }
  throw new TypeError(`${what} must be a Float32Array or an array of numbers, not ${describeType(v)}`);
}

/**
 * n vectors as one Float32Array of n * dim values: a flat Float32Array (with n, or dim
 * known), or an array of vectors. Returns {data, dim} with dim -1 when it cannot be told
 * (no vectors), or throws DIMENSION_MISMATCH (via mixed()) when the rows differ.
 */
function matrix(vectors, n, what, mixed) {
  if (vectors instanceof Float32Array || (ArrayBuffer.isView(vectors) && !(vectors instanceof DataView))) {
    const data = vector(vectors, what);
    if (n === 0) return { data, dim: -1 };
    if (data.length % n !== 0) {
      throw err('INVALID_ARGUMENT', `${what} holds ${data.length} values, not a multiple of ${n} vectors`);
    }
    return { data, dim: data.length / n };
  }
  if (!Array.isArray(vectors)) {
    throw new TypeError(`${what} must be a Float32Array or an array of vectors, not ${describeType(vectors)}`);
  }
  if (vectors.length === 0) return { data: new Float32Array(0), dim: -1 };
  const rows = vectors.map((v, i) => vector(v, `${what}[${i}]`));
  const dim = rows[0].length;
  for (let i = 1; i < rows.length; i++) {
    if (rows[i].length !== dim) mixed(rows.map((r) => r.length));
  }
  const data = new Float32Array(rows.length * dim);
  for (let i = 0; i < rows.length; i++) data.set(rows[i], i * dim);
  return { data, dim };
}

/** JSON text of a value, refusing NaN and +-Infinity: JSON.stringify writes them as
 * null, which would store (or filter by) something else than was given, where Python
 * and Go refuse them. The text has a null wherever one was, so only such texts are
 * checked again. */
function jsonText(v, what) {
  const t = JSON.stringify(v);
  if (typeof t !== 'string') throw new TypeError(`${what} cannot be written as JSON`);
  if (t.includes('null')) {
    JSON.stringify(v, (key, x) => {
      if (typeof x === 'number' && !Number.isFinite(x)) {
        throw err('INVALID_ARGUMENT', `${what} cannot be written as JSON: ${x}${key === '' ? '' : ` (at "${key}")`} is not a JSON number`);
      }
      return x;
    });
  }
  return t;
}

function metadataText(m, what) {
  if (m === undefined || m === null) return null;
  return jsonText(m, what);
}

function parseMetadata(t) {
  return t === null || t === undefined ? null : JSON.parse(t);
}

/** Registers an AbortSignal with a new cancel token around start(token). */
async function withSignal(signal, start) {
  if (signal === undefined || signal === null) return start(undefined);
  if (typeof signal !== 'object' || typeof signal.aborted !== 'boolean' || typeof signal.addEventListener !== 'function') {
    throw new TypeError('signal must be an AbortSignal');
  }
  if (signal.aborted) throw new SextantError('the call was cancelled before it started', 'CANCELLED', { cause: signal.reason });
  const token = L.sx_node_token_new();
  const onAbort = () => L.sx_node_token_set(token);
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    return await start(token);
  } catch (e) {
    if (e instanceof SextantError && e.code === 'CANCELLED' && e.cause === undefined) e.cause = signal.reason;
    throw e;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

const NO_OPTS = Object.freeze({});

/** opts (undefined and null are {}), an object whose keys are all in `keys`: a key
 * spelled wrong is a TypeError naming it, never an option ignored in silence. */
function options(opts, keys, what) {
  if (opts === undefined || opts === null) return NO_OPTS;
  if (typeof opts !== 'object') throw new TypeError(`${what} options must be an object, not ${describeType(opts)}`);
  for (const k of Object.keys(opts)) {
    if (!keys.includes(k)) throw new TypeError(`unknown ${what} option "${k}" (${keys.join(', ')})`);
  }
  return opts;
}

const SEARCH_KEYS = Object.freeze(['ef', 'threads', 'filter', 'include', 'exact']);
const BATCH_KEYS = Object.freeze([...SEARCH_KEYS, 'dim']);
const SEARCH_ASYNC_KEYS = Object.freeze([...SEARCH_KEYS, 'signal']);
const BATCH_ASYNC_KEYS = Object.freeze([...BATCH_KEYS, 'signal']);

function searchOpts(given, keys) {
  const opts = options(given, keys, 'search');
  if (opts === NO_OPTS) return NO_OPTS;
  if (opts.ef !== undefined && opts.ef !== null && typeof opts.ef !== 'number') {
    throw new TypeError(`ef must be a number, not ${describeType(opts.ef)}`);
  }
  if (opts.threads !== undefined && opts.threads !== null && typeof opts.threads !== 'number') {
    throw new TypeError(`threads must be a number, not ${describeType(opts.threads)}`);
  }
  const filter = filterText(opts.filter);
  const include = includeMask(opts.include);
  if (opts.exact !== undefined && opts.exact !== null && typeof opts.exact !== 'boolean') {
    throw new TypeError(`exact must be a boolean, not ${describeType(opts.exact)}`);
  }
  if (filter === undefined && include === 0 && !opts.exact) return opts;
  return { ...opts, filter, include, native: { ef: opts.ef, threads: opts.threads, filter, include, exact: !!opts.exact } };
}

/** A filter's JSON text: a string is JSON text as is, an object is JSON.stringify'd;
 * undefined and null are no filter. */
function filterText(f) {
  if (f === undefined || f === null) return undefined;
  if (typeof f === 'string') return f;
  if (typeof f === 'object') return jsonText(f, 'filter');
  throw new TypeError(`filter must be an object or JSON text, not ${describeType(f)}`);
}

const INCLUDE = Object.freeze({ metadata: 1, vector: 2 }); // SX_INCLUDE_METADATA, SX_INCLUDE_VECTOR

/** The include mask of ['metadata', 'vector']. */
function includeMask(inc) {
  if (inc === undefined || inc === null) return 0;
  if (!Array.isArray(inc)) throw new TypeError(`include must be an array of 'metadata' and 'vector', not ${describeType(inc)}`);
  let m = 0;
  for (const w of inc) {
    if (!Object.hasOwn(INCLUDE, w)) throw err('INVALID_ARGUMENT', `unknown include ${JSON.stringify(w)} (use 'metadata', 'vector')`);
    m |= INCLUDE[w];
  }
  return m;
}

/** What the native calls take for options: ef alone (the common case), {ef, threads},
 * or with a filter, include or exact, {ef, threads, filter (text), include (mask), exact}. */
function nativeOpts(o) {
  if (o.native) return o.native;
  return o.threads === undefined || o.threads === null ? o.ef : { ef: o.ef, threads: o.threads };
}

/** Checks a filter (an object or JSON text) without a database: throws a SextantError
 * with code 'INVALID_ARGUMENT' naming the offending part, else returns undefined. */
function checkFilter(filter) {
  const t = filterText(filter);
  if (t === undefined) throw err('INVALID_ARGUMENT', 'no filter (undefined or null)');
  L.sx_filter_check(t);
}

// ---- sessions ---------------------------------------------------------------------------------

const DISPOSE = Symbol.dispose || Symbol.for('nodejs.dispose');

/** What read and write sessions share: every read; write ops throw MISUSE on a read session. */
class Session {
  constructor(handle, db) {
    this._h = handle;
    this._db = db; // keeps the Database (and its handle) reachable while this session is
    this._views = new Map(); // collection views by name, opened on first use
  }

  _openView(name) {
    throw new Error('abstract');
  }

  _view(name) {
    str(name, 'collection');
    let v = this._views.get(name);
    if (v === undefined) {
      v = this._openView(name);
      this._views.set(name, v);
    }
    return v;
  }

  _refuse(op) {
    return err('MISUSE', `${op} needs a write session; this is a read session`);
  }

  _check() {}

  /** Names of the collections this session sees, sorted bytewise. */
  listCollections() {
    this._check();
    return this._list();
  }

  /** {name, dim, metric, index: {type, m?, efConstruction?, quantization?}, count} */
  describe(name) {
    this._check();
    return this._describe(name);
  }

  _describe(name) {
    const i = L.sx_collection_describe(this._view(name));
    const type = L.sx_index_type_name(i.index) || `unknown ${i.index}`;
    const index = i.index === L.SX_INDEX_HNSW ? { type, m: i.m, efConstruction: i.efConstruction, quantization: i.quantization }
      : { type };
    return { name: i.name, dim: i.dim, metric: i.metric, index, count: i.count };
  }

  /** Number of live vectors in the collection. */
  count(collection) {
    this._check();
    return L.sx_collection_count(this._view(collection));
  }

  /** {count, slots, dead, free}: how the collection's slots are used. */
  collectionStats(collection) {
    this._check();
    return L.sx_collection_stats_get(this._view(collection));
  }

  /** {id, vector: Float32Array, metadata: object | null}; NOT_FOUND when the id is absent. */
  get(collection, id) {
    this._check();
    const v = this._view(collection);
    const r = L.sx_collection_get(v, str(id, 'id'));
    return { id: r.id, vector: r.vector, metadata: parseMetadata(r.metadata) };
  }

  /** Records of many ids in one call, in the order asked; null for an id not there. */
  getMany(collection, ids) {
    this._check();
    const v = this._view(collection);
    if (!Array.isArray(ids)) throw new TypeError('ids must be an array of strings');
    ids.forEach((id, i) => str(id, `ids[${i}]`));
    return recordsOf(PACKED ? L.sx_collection_get_packed(v, ids) : L.sx_collection_get_batch(v, ids));
  }

  /**
   * Every live record of the collection in ascending (bytewise) id order, read
   * batchSize at a time: a read session walks its snapshot; `after` resumes after an id.
   */
  * scan(collection, opts) {
    this._check();
    const o = options(opts, ['after', 'batchSize'], 'scan');
    const after = o.after === undefined || o.after === null ? null : str(o.after, 'after');
    const batch = o.batchSize === undefined ? 1000 : uint(o.batchSize, 'batchSize');
    const cur = L.sx_collection_cursor(this._view(collection), after);
    for (;;) {
      this._check();
      const recs = recordsOf(L.sx_cursor_next(cur, batch));
      if (recs.length === 0) return;
      yield* recs;
    }
  }

  /** The k nearest vectors: [{id, distance}], closest first, ties by id. */
  search(collection, query, k, opts) {
    this._check();
    const o = searchOpts(opts, SEARCH_KEYS);
    const v = this._view(collection);
    scratchFor(uint(k, 'k'));
    return hitsOf(L.sx_collection_search(v, vector(query, 'query'), k, nativeOpts(o)));
  }

  /** Many queries at once, on up to `threads` threads (default: the database's
   * `threads` option; 1: this thread only): {ids: string[][], distances: Float32Array[]}. */
  searchBatch(collection, queries, k, opts) {
    this._check();
    const o = searchOpts(opts, BATCH_KEYS);
    const v = this._view(collection);
    const q = this._queries(collection, queries, o);
    return batchOf(L.sx_collection_search_batch(v, [q.data, q.dim], uint(k, 'k'), nativeOpts(o)));
  }

  _queries(collection, queries, o) {
    const n = Array.isArray(queries) ? queries.length : -1;
    if (n === -1) {
      const dim = o.dim !== undefined ? uint(o.dim, 'dim') : this._describe(collection).dim;
      const data = vector(queries, 'queries');
      if (dim === 0 || data.length % dim !== 0) {
        throw err('DIMENSION_MISMATCH', `${data.length} query values are not a whole number of vectors of dimension ${dim}`);
      }
      return { data, dim };
    }
    const m = matrix(queries, n, 'queries', (lens) => {
      throw err('DIMENSION_MISMATCH', `queries have different lengths (${[...new Set(lens)].join(', ')})`);
    });
    if (m.dim === -1) return { data: m.data, dim: this._describe(collection).dim || 1 };
    return m;
  }

  /** search() on the libuv thread pool; `signal` cancels it. */
  async searchAsync(collection, query, k, opts) {
    const o = searchOpts(opts, SEARCH_ASYNC_KEYS);
    const q = vector(query, 'query');
    uint(k, 'k');
    return this._run(() => withSignal(o.signal, (tok) => L.sx_node_search_async(this._view(collection), q, k, nativeOpts(o), tok, this)))
      .then(hitsOfPacked);
  }

  /** searchBatch() on the libuv thread pool; `signal` cancels it. */
  async searchBatchAsync(collection, queries, k, opts) {
    const o = searchOpts(opts, BATCH_ASYNC_KEYS);
    uint(k, 'k');
    return this._run(() => {
      const q = this._queries(collection, queries, o);
      return withSignal(o.signal, (tok) => L.sx_node_search_batch_async(this._view(collection), q.data, q.dim, k, nativeOpts(o), tok, this));
    }).then(batchOf);
  }

  _run(start) {
    return start();
  }

  // -- writes: refused by read sessions, implemented by WriteSession

  createCollection() {
    throw this._refuse('createCollection');
  }
  dropCollection() {
    throw this._refuse('dropCollection');
  }
  upsert() {
    throw this._refuse('upsert');
  }
  async upsertAsync() {
    throw this._refuse('upsertAsync');
  }
  delete() {
    throw this._refuse('delete');
  }
  commit() {
    throw this._refuse('commit');
  }
  async commitAsync() {
    throw this._refuse('commitAsync');
  }
  abort() {
    throw this._refuse('abort');
  }
  setUserVersion() {
    throw this._refuse('setUserVersion');
  }
}

/** A read session: a stable snapshot of what was committed before it began. */
class ReadSession extends Session {
  _openView(name) {
    return L.sx_read_collection(this._h, name);
  }
  _list() {
    return L.sx_read_list_collections(this._h);
  }
  /** The application-defined number of the snapshot (Number, or BigInt above 2^53). */
  userVersion() {
    return L.sx_read_user_version(this._h);
  }
  /** How the snapshot's file space is used: {pageSize, pageCount, freePages,
   * collectionPages, liveBytes, reclaimableBytes} (what compact() would free). */
  space() {
    if (typeof L.sx_read_space_get !== 'function') throw err('MISUSE', 'this core has no space figures (sx_read_space_get)');
    return L.sx_read_space_get(this._h);
  }
  /** Ends the session, unpinning its snapshot. Idempotent. */
  end() {
    L.sx_read_end(this._h);
    this._views.clear();
  }
  [DISPOSE]() {
    this.end();
  }
  get [Symbol.toStringTag]() {
    return 'ReadSession';
  }
}

/** The write session: the one writer of the database across all processes. */
class WriteSession extends Session {
  constructor(handle, db) {
    super(handle, db);
    this._pending = 0; // async calls queued or running
    this._tail = Promise.resolve();
    this._ended = false;
  }

  _openView(name) {
    return L.sx_write_collection(this._h, name);
  }
  _list() {
    return L.sx_write_list_collections(this._h);
  }

  _check() {
    if (this._pending > 0) {
      throw err('MISUSE', 'an async call is still running on this write session; await it before the next call');
    }
  }

  // Async calls on one write session run one after another (the C API's rule).
  _run(start) {
    this._pending++;
    const p = this._tail.then(start);
    const done = () => {
      this._pending--;
    };
    this._tail = p.then(done, done);
    return p;
  }

  /** Whether commit/abort has not ended the session yet (as far as this object knows). */
  get isOpen() {
    return !this._ended;
  }

  /**
   * Creates a collection: {dim, metric: 'l2' | 'ip' | 'cosine' (default 'l2'),
   * index: 'hnsw' | 'flat' (default 'hnsw'), m, efConstruction,
   * quantization: 'none' | 'int8' (default 'none'; HNSW only: searches walk 8-bit
   * codes, then measure the final candidates exactly)}.
   */
  createCollection(name, opts) {
    this._check();
    str(name, 'name');
    if (opts === null || typeof opts !== 'object') throw new TypeError('collection options must be an object with dim');
    options(opts, ['dim', 'metric', 'index', 'm', 'efConstruction', 'quantization'], 'collection');
    const o = new L.sx_collection_options();
    L.sx_collection_options_init(o, L.SX_COLLECTION_OPTIONS_VERSION);
    o.dim = u32opt(opts.dim, 'dim');
    o.metric = L.sx_metric_parse(str(opts.metric === undefined ? 'l2' : opts.metric, 'metric'));
    o.index = L.sx_index_type_parse(str(opts.index === undefined ? 'hnsw' : opts.index, 'index'));
    o.hnsw_m = u32opt(opts.m, 'm');
    o.hnsw_ef_construction = u32opt(opts.efConstruction, 'efConstruction');
    o.quantization = L.sx_quantization_parse(str(opts.quantization === undefined ? 'none' : opts.quantization, 'quantization'));
    this._views.delete(name);
    L.sx_write_create_collection(this._h, name, o);
  }

  /** Drops a collection and its vectors. */
  dropCollection(name) {
    this._check();
    str(name, 'name');
    this._views.delete(name);
    L.sx_write_drop_collection(this._h, name);
  }

  /** The batch of upsert(): [ids, vectors (Float32Array n * dim), dim, metadata | null]. */
  _batch(collection, a, b, c) {
    let ids;
    let vecs;
    let metas;
    let items = false;
    if (Array.isArray(a)) {
      items = true;
      ids = new Array(a.length);
      vecs = new Array(a.length);
      metas = new Array(a.length);
      for (let i = 0; i < a.length; i++) {
        const it = a[i];
        if (it === null || typeof it !== 'object') throw new TypeError(`items[${i}] must be an object {id, vector, metadata?}`);
        ids[i] = str(it.id, `items[${i}].id`);
        vecs[i] = it.vector;
        metas[i] = it.metadata;
      }
    } else if (a !== null && typeof a === 'object' && !ArrayBuffer.isView(a)) {
      ids = a.ids;
      vecs = a.vectors;
      metas = a.metadata;
      if (!Array.isArray(ids)) throw new TypeError('ids must be an array of strings');
      ids.forEach((id, i) => str(id, `ids[${i}]`));
    } else if (typeof a === 'string') {
      ids = [str(a, 'id')];
      vecs = [b];
      metas = c === undefined ? undefined : [c];
    } else {
      throw new TypeError('upsert takes [{id, vector, metadata?}, ...], {ids, vectors, metadata?} or (id, vector, metadata?)');
    }
    const m = matrix(vecs, ids.length, items ? 'vectors' : 'vectors', (lens) => {
      // The C call takes one dimension for the batch: learn the collection's (which
      // also reports an ended session or a missing collection as the core does).
      const dim = this._describe(collection).dim;
      const i = lens.findIndex((l) => l !== dim);
      throw err('DIMENSION_MISMATCH', `item ${i} has dimension ${lens[i]}, collection '${collection}' has ${dim}`);
    });
    let dim = m.dim;
    if (dim === -1) dim = this._describe(collection).dim;
    let meta = null;
    if (metas !== undefined && metas !== null) {
      if (!Array.isArray(metas)) throw new TypeError('metadata must be an array (one entry per id)');
      if (metas.length !== ids.length) throw err('INVALID_ARGUMENT', `${ids.length} ids but ${metas.length} metadata entries`);
      meta = metas.map((x, i) => metadataText(x, `metadata[${i}]`));
      if (meta.every((x) => x === null)) meta = null;
    }
    return [ids, m.data, dim, meta];
  }

  /**
   * Inserts or replaces vectors, all or none: upsert(collection, [{id, vector,
   * metadata?}, ...]), upsert(collection, {ids, vectors, metadata?}) with vectors a flat
   * Float32Array (passed without a copy) or an array of vectors, or
   * upsert(collection, id, vector, metadata?).
   */
  upsert(collection, a, b, c) {
    this._check();
    str(collection, 'collection');
    const batch = this._batch(collection, a, b, c);
    if (PACKED) L.sx_write_upsert_packed(this._h, collection, batch);
    else L.sx_write_upsert(this._h, collection, batch);
  }

  /** upsert() on the libuv thread pool (the vectors are copied first). */
  async upsertAsync(collection, a, b, c) {
    str(collection, 'collection');
    return this._run(() => {
      const [ids, data, dim, meta] = this._batch(collection, a, b, c);
      return L.sx_node_upsert_async(this._h, collection, ids, data, dim, meta, this);
    });
  }

  /** Deletes ids (absent ones are no error); returns how many existed. */
  delete(collection, ids) {
    this._check();
    str(collection, 'collection');
    if (typeof ids === 'string') ids = [ids];
    if (!Array.isArray(ids)) throw new TypeError('ids must be an array of strings');
    ids.forEach((id, i) => str(id, `ids[${i}]`));
    return PACKED ? L.sx_write_delete_packed(this._h, collection, ids) : L.sx_write_delete(this._h, collection, ids);
  }

  /** Commits: durable (per the sync option) when it returns; ends the session. */
  commit() {
    this._check();
    try {
      L.sx_write_commit(this._h);
    } finally {
      this._end();
    }
  }

  /** commit() on the libuv thread pool (the fsync off the event loop). */
  async commitAsync() {
    return this._run(async () => {
      try {
        await L.sx_node_commit_async(this._h, this);
      } finally {
        this._end();
      }
    });
  }

  /** Discards the session's changes and ends it. */
  abort() {
    this._check();
    try {
      L.sx_write_abort(this._h);
    } finally {
      this._end();
    }
  }

  _end() {
    this._ended = true;
    this._views.clear();
  }

  /** A write session is ended by commit() or abort(); end() is MISUSE. */
  end() {
    throw err('MISUSE', 'end() is for read sessions; a write session ends with commit() or abort()');
  }

  userVersion() {
    this._check();
    return L.sx_write_user_version(this._h);
  }

  /** Sets the application-defined number (a safe integer or a BigInt below 2^64). */
  setUserVersion(value) {
    this._check();
    L.sx_write_set_user_version(this._h, value);
  }

  /** Aborts the session if it is still open. */
  [DISPOSE]() {
    if (!this._ended && this._pending === 0) {
      try {
        this.abort();
      } catch (e) {
        if (!(e instanceof SextantError && e.code === 'CLOSED')) throw e;
      }
    }
  }

  get [Symbol.toStringTag]() {
    return 'WriteSession';
  }
}

/** Aborts w if it is still open: now, or once its queued async calls have settled. */
function abortQuietly(w) {
  const abort = () => {
    try {
      if (w.isOpen) w.abort();
    } catch (e) {
      /* the caller reports the first error */
    }
  };
  if (w._pending > 0) w._tail.then(abort);
  else abort();
}

// ---- databases ---------------------------------------------------------------------------------

const OPEN_KEYS = Object.freeze(['readOnly', 'sync', 'threads', 'pageSize', 'autocheckpointFrames', 'walMaxFrames']);

/** A database handle: one open database file. */
class Database {
  constructor(handle, dbPath) {
    this._h = handle;
    this._path = dbPath;
  }

  /** The path the database was opened with. */
  get path() {
    return this._path;
  }

  /** Begins a read session on the latest committed snapshot (never waits). */
  beginRead() {
    return new ReadSession(L.sx_read_begin(this._h), this);
  }

  /**
   * Begins the write session, waiting for the writer lock up to timeoutMs (default
   * 5000; 0: do not wait; Infinity: for ever), blocking this thread; BUSY past it.
   * Use beginWriteAsync() to wait without blocking the event loop.
   */
  beginWrite(opts) {
    const t = timeoutMs(options(opts, ['timeoutMs'], 'write').timeoutMs, 5000);
    return new WriteSession(L.sx_write_begin(this._h, t), this);
  }

  /** Waits for the writer lock on the thread pool: {timeoutMs (default: for ever), signal}. */
  async beginWriteAsync(opts) {
    const o = options(opts, ['timeoutMs', 'signal'], 'write');
    const t = timeoutMs(o.timeoutMs, -1);
    const h = await withSignal(o.signal, (tok) => L.sx_node_write_begin_async(this._h, t, tok));
    return new WriteSession(h, this);
  }

  /** Runs fn(readSession) on a fresh snapshot and ends it; returns fn's result. */
  read(fn) {
    if (typeof fn !== 'function') throw new TypeError('read() takes a function');
    const r = this.beginRead();
    try {
      const out = fn(r);
      if (isThenable(out)) {
        out.then(undefined, () => {});
        throw new TypeError('the function given to read() returned a Promise; the session ends when it ' +
                            'returns: use beginRead() and end() for asynchronous work');
      }
      return out;
    } finally {
      r.end();
    }
  }

  /**
   * Runs fn(writeSession) and commits when it returns, or aborts when it throws; returns
   * fn's result. A function returning a Promise is refused (the session is aborted), as
   * better-sqlite3 refuses async transactions. opts: {timeoutMs}, as beginWrite().
   */
  write(fn, opts) {
    if (typeof fn !== 'function') throw new TypeError('write() takes a function');
    const w = this.beginWrite(opts);
    let out;
    try {
      out = fn(w);
    } catch (e) {
      abortQuietly(w);
      throw e;
    }
    if (isThenable(out)) {
      out.then(undefined, () => {});
      abortQuietly(w);
      throw new TypeError('the function given to write() returned a Promise: the session was aborted. ' +
                          'Use beginWriteAsync() and commitAsync() for asynchronous work');
    }
    if (w.isOpen) w.commit();
    return out;
  }

  /** Copies WAL frames into the database file (as far as pinned snapshots allow). */
  checkpoint(opts) {
    L.sx_db_checkpoint(this._h, timeoutMs(options(opts, ['timeoutMs'], 'checkpoint').timeoutMs, 5000));
  }

  /** checkpoint() on the thread pool. */
  async checkpointAsync(opts) {
    return L.sx_node_checkpoint_async(this._h, timeoutMs(options(opts, ['timeoutMs'], 'checkpoint').timeoutMs, -1));
  }

  /**
   * Copies the latest committed snapshot to a new database file at dest (atomically:
   * dest is the old file or the whole copy), while other sessions go on. {overwrite}
   * replaces an existing dest (else EXISTS); a database a handle has open there is BUSY.
   */
  backup(dest, opts) {
    str(dest, 'dest');
    const o = options(opts, ['overwrite'], 'backup');
    L.sx_db_backup(this._h, dest, o === NO_OPTS ? undefined : { overwrite: !!o.overwrite });
  }

  /** backup() on the thread pool: {overwrite, signal, onProgress(donePages, totalPages)};
   * the signal cancels between pages. */
  async backupAsync(dest, opts) {
    str(dest, 'dest');
    const o = options(opts, ['overwrite', 'signal', 'onProgress'], 'backup');
    if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw new TypeError('onProgress must be a function');
    return withSignal(o.signal, (tok) => L.sx_node_backup_async(this._h, dest, !!o.overwrite, tok, o.onProgress));
  }

  /**
   * Rewrites every collection densely in one write session (HNSW graphs rebuilt from
   * the live vectors); freed pages go to the free list. Waits for the writer lock up to
   * timeoutMs (default 5000; Infinity: for ever), blocking this thread.
   */
  compact(opts) {
    if (typeof L.sx_db_compact !== 'function') throw err('MISUSE', 'this core has no compaction (sx_db_compact)');
    L.sx_db_compact(this._h, { timeoutMs: timeoutMs(options(opts, ['timeoutMs'], 'compact').timeoutMs, 5000) });
  }

  /** compact() on the thread pool: {timeoutMs (default: for ever), signal,
   * onProgress(recordsRewritten, liveRecords)}. */
  async compactAsync(opts) {
    const o = options(opts, ['timeoutMs', 'signal', 'onProgress'], 'compact');
    const t = timeoutMs(o.timeoutMs, -1);
    if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw new TypeError('onProgress must be a function');
    return withSignal(o.signal, (tok) => L.sx_node_compact_async(this._h, t, tok, o.onProgress));
  }

  /** Figures across every process using the database. */
  stats() {
    return L.sx_db_stats_get(this._h);
  }

  /** Integrity check of the latest snapshot; throws CORRUPT naming the first problem. */
  check() {
    L.sx_db_check(this._h);
  }

  /** Closes the database and ends its sessions. Idempotent. */
  close() {
    L.sx_db_close(this._h);
  }

  [DISPOSE]() {
    this.close();
  }

  get [Symbol.toStringTag]() {
    return 'Database';
  }
}

/**
 * Opens (creating unless readOnly) the database at path. Options: readOnly, sync
 * ('full' | 'normal' | 'off'), threads (per call; 0: CPUs up to 8), pageSize (new
 * databases), autocheckpointFrames, walMaxFrames.
 */
function open(dbPath, opts) {
  str(dbPath, 'path');
  const o = new L.sx_open_options();
  L.sx_open_options_init(o, L.SX_OPEN_OPTIONS_VERSION);
  if (opts !== undefined && opts !== null) {
    options(opts, OPEN_KEYS, 'open');
    if (opts.readOnly !== undefined) {
      if (typeof opts.readOnly !== 'boolean') throw new TypeError('readOnly must be true or false');
      o.read_only = opts.readOnly ? 1 : 0;
    }
    if (opts.sync !== undefined) {
      o.sync = L.sx_sync_parse(str(opts.sync, 'sync'));
    }
    o.threads = u32opt(opts.threads, 'threads');
    o.page_size = u32opt(opts.pageSize, 'pageSize');
    o.autocheckpoint_frames = u32opt(opts.autocheckpointFrames, 'autocheckpointFrames');
    o.wal_max_frames = u32opt(opts.walMaxFrames, 'walMaxFrames');
  }
  return new Database(L.sx_db_open(dbPath, o), dbPath);
}

/** The version of the linked core, "major.minor.patch". */
function version() {
  return L.sx_version();
}

/** The on-disk format version the core writes and reads. */
function formatVersion() {
  return L.sx_format_version();
}

module.exports = {
  open,
  version,
  formatVersion,
  Database,
  ReadSession,
  WriteSession,
  SextantError,
  CODES,
  checkFilter,
  /** The SWIG-generated low-level module (the C API one to one); for tests and tools. */
  lowLevel: L,
};
