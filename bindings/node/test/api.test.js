'use strict';
// The JavaScript surface: sessions, transactions as functions, errors with .code,
// TypeErrors, async calls and their cancellation, the ESM entry.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');

const sextant = require('..');
const { SextantError } = sextant;
const { tmpdir, randomVectors } = require('./helpers');

function code(c) {
  return (e) => e instanceof SextantError && e.code === c;
}

function fresh(t, opts) {
  const db = sextant.open(path.join(tmpdir(t), 'db.sx'), opts);
  t.after(() => db.close());
  return db;
}

test('write and read through transaction functions', (t) => {
  const db = fresh(t);
  const out = db.write((w) => {
    w.createCollection('docs', { dim: 3, metric: 'l2', index: 'flat' });
    w.upsert('docs', [
      { id: 'a', vector: [1, 0, 0], metadata: { lang: 'en', n: 1 } },
      { id: 'b', vector: new Float32Array([0, 1, 0]) },
    ]);
    w.upsert('docs', { ids: ['c', 'd'], vectors: new Float32Array([0, 0, 1, 1, 1, 0]), metadata: [null, { x: [1, 2] }] });
    w.upsert('docs', 'e', [2, 0, 0]);
    assert.equal(w.count('docs'), 5);
    return 42;
  });
  assert.equal(out, 42);
  db.read((r) => {
    assert.deepEqual(r.listCollections(), ['docs']);
    assert.deepEqual(r.describe('docs'), { name: 'docs', dim: 3, metric: 'l2', index: { type: 'flat' }, count: 5 });
    const rec = r.get('docs', 'a');
    assert.equal(rec.id, 'a');
    assert.ok(rec.vector instanceof Float32Array);
    assert.deepEqual(Array.from(rec.vector), [1, 0, 0]);
    assert.deepEqual(rec.metadata, { lang: 'en', n: 1 });
    assert.equal(r.get('docs', 'b').metadata, null);
    assert.deepEqual(r.get('docs', 'd').metadata, { x: [1, 2] });
    const hits = r.search('docs', [1, 0, 0], 2);
    assert.deepEqual(hits, [{ id: 'a', distance: 0 }, { id: 'd', distance: 1 }]);
    const b = r.searchBatch('docs', [[1, 0, 0], [0, 0, 1]], 1);
    assert.deepEqual(b.ids, [['a'], ['c']]);
    assert.ok(b.distances[0] instanceof Float32Array);
    const flat = r.searchBatch('docs', new Float32Array([1, 0, 0, 0, 0, 1]), 1);
    assert.deepEqual(flat.ids, [['a'], ['c']]);
    assert.throws(() => r.get('docs', 'zz'), code('NOT_FOUND'));
  });
});

test('write() aborts when the function throws, refuses a Promise', (t) => {
  const db = fresh(t);
  db.write((w) => w.createCollection('c', { dim: 2 }));
  assert.throws(() => db.write((w) => {
    w.upsert('c', 'x', [1, 2]);
    throw new Error('boom');
  }), /boom/);
  assert.equal(db.read((r) => r.count('c')), 0);
  assert.throws(() => db.write(async (w) => w.upsert('c', 'y', [1, 2])), TypeError);
  assert.equal(db.read((r) => r.count('c')), 0);
  assert.throws(() => db.read(async () => 1), TypeError);
  // The writer lock was released each time.
  db.write((w) => w.upsert('c', 'z', [1, 2]));
  assert.equal(db.read((r) => r.count('c')), 1);
});

test('errors carry the status name; wrong types are TypeError', (t) => {
  const db = fresh(t);
  const w = db.beginWrite();
  w.createCollection('c', { dim: 2, index: 'flat' });
  assert.throws(() => w.createCollection('c', { dim: 2 }), code('EXISTS'));
  assert.throws(() => w.upsert('c', 'a', [1, 2, 3]), code('DIMENSION_MISMATCH'));
  assert.throws(() => w.upsert('c', 'a', [NaN, 1]), code('INVALID_ARGUMENT'));
  assert.throws(() => w.upsert('c', [{ id: 'a', vector: [1, 2] }, { id: 'b', vector: [1] }]), code('DIMENSION_MISMATCH'));
  assert.throws(() => w.upsert('c', 'a\u0000b', [1, 2]), code('INVALID_ARGUMENT'));
  assert.throws(() => w.search('c', [1, 2], 0), code('INVALID_ARGUMENT'));
  assert.throws(() => w.search('nope', [1, 2], 1), code('NOT_FOUND'));
  assert.throws(() => w.createCollection('bad name', { dim: 2 }), code('INVALID_ARGUMENT'));
  assert.throws(() => w.createCollection('m', { dim: 2, metric: 'manhattan' }), code('INVALID_ARGUMENT'));
  assert.throws(() => w.upsert('c', 'a', ['x', 1]), TypeError);
  assert.throws(() => w.upsert('c', 5, [1, 2]), TypeError);
  assert.throws(() => w.search('c', 'not a vector', 1), TypeError);
  assert.throws(() => w.search('c', [1, 2], '3'), TypeError);
  assert.throws(() => w.search(7, [1, 2], 3), TypeError);
  assert.throws(() => w.upsert('c', 'a', [1, 2], { big: 1n }), TypeError);
  assert.throws(() => sextant.open(42), TypeError);
  assert.throws(() => sextant.open(path.join(tmpdir(t), 'x.sx'), { bogus: 1 }), TypeError);
  assert.throws(() => sextant.open(path.join(tmpdir(t), 'x.sx'), { readOnly: true }), code('NOT_FOUND'));
  assert.throws(() => sextant.open(path.join(tmpdir(t), 'x.sx'), { sync: 'sometimes' }), code('INVALID_ARGUMENT'));
  // A second writer on the same handle is BUSY at once.
  assert.throws(() => db.beginWrite({ timeoutMs: 0 }), code('BUSY'));
  w.commit();
  assert.throws(() => w.commit(), code('CLOSED'));
  assert.throws(() => w.abort(), code('CLOSED'));
  assert.throws(() => w.count('c'), code('CLOSED'));
  const r = db.beginRead();
  assert.throws(() => r.upsert('c', 'a', [1, 2]), code('MISUSE'));
  assert.throws(() => r.commit(), code('MISUSE'));
  assert.throws(() => db.beginWrite().end(), code('MISUSE'));
  r.end();
  r.end();
  assert.throws(() => r.count('c'), code('CLOSED'));
  const e = (() => {
    try {
      r.count('c');
    } catch (x) {
      return x;
    }
  })();
  assert.ok(e instanceof Error);
  assert.equal(e.name, 'SextantError');
  assert.ok(sextant.CODES.includes(e.code));
});

test('a lone surrogate is refused wherever a string goes in; nothing is stored', (t) => {
  // Node would hand the core U+FFFD for it, so '\ud800' and '\udc00' would name one item.
  const db = fresh(t);
  const lone = code('INVALID_ARGUMENT');
  db.write((w) => {
    w.createCollection('c', { dim: 2, index: 'flat' });
    for (const bad of ['\ud800', '\udc00', 'a\udbffb', 'x\udfff', '\udc00\ud800']) {
      assert.throws(() => w.upsert('c', bad, [1, 2]), lone, JSON.stringify(bad));
      assert.throws(() => w.upsert('c', [{ id: 'ok', vector: [1, 2] }, { id: bad, vector: [3, 4] }]), lone);
      assert.throws(() => w.upsert('c', { ids: ['ok', bad], vectors: [[1, 2], [3, 4]] }), lone);
      assert.throws(() => w.get('c', bad), lone);
      assert.throws(() => w.getMany('c', [bad]), lone);
      assert.throws(() => w.delete('c', [bad]), lone);
      assert.throws(() => w.createCollection(bad, { dim: 2 }), lone);
      assert.throws(() => w.search(bad, [1, 2], 1), lone);
    }
    assert.equal(w.count('c'), 0);
    // A surrogate pair is one character (U+1F600), not a lone surrogate.
    w.upsert('c', '\ud83d\ude00', [1, 2]);
  });
  db.read((r) => {
    assert.deepEqual([...r.scan('c')].map((x) => x.id), ['\u{1F600}']);
    assert.throws(() => [...r.scan('c', { after: '\ud800' })], code('INVALID_ARGUMENT'));
  });
  const e = (() => {
    try {
      db.write((w) => w.upsert('c', '\ud800', [1, 2]));
    } catch (x) {
      return x;
    }
  })();
  assert.match(e.message, /id is not valid UTF-8 text \(it holds a lone surrogate\)/);
});

test('NaN and Infinity in metadata or a filter are refused, not stored or matched as null', (t) => {
  // JSON.stringify writes them as null; Python and Go refuse them.
  const db = fresh(t);
  const bad = (where) => (e) => e instanceof SextantError && e.code === 'INVALID_ARGUMENT' &&
    e.message.includes('is not a JSON number') && e.message.includes(where);
  db.write((w) => {
    w.createCollection('c', { dim: 2, index: 'flat' });
    w.upsert('c', 'n', [1, 2], { a: null });
    assert.throws(() => w.upsert('c', 'x', [1, 2], { a: NaN }), bad('NaN (at "a")'));
    assert.throws(() => w.upsert('c', [{ id: 'x', vector: [1, 2], metadata: { l: [1, Infinity] } }]), bad('Infinity (at "1")'));
    assert.throws(() => w.upsert('c', { ids: ['x'], vectors: [[1, 2]], metadata: [{ o: { p: -Infinity } }] }), bad('metadata[0]'));
    assert.equal(w.count('c'), 1);
    assert.deepEqual(w.get('c', 'n').metadata, { a: null }); // a real null is stored
    assert.throws(() => w.search('c', [1, 2], 1, { filter: { a: NaN } }), bad('filter'));
    assert.throws(() => w.search('c', [1, 2], 1, { filter: { a: { $in: [1, NaN] } } }), bad('filter'));
    assert.deepEqual(w.search('c', [1, 2], 1, { filter: { a: null } }).map((h) => h.id), ['n']);
  });
  assert.throws(() => sextant.checkFilter({ a: Infinity }), bad('filter'));
});

test('a k beyond the collection returns every item, past the scratch a search reserves', (t) => {
  // More hits than the 65,536 distances a synchronous search reserves come in an array
  // of their own; k itself sizes nothing.
  const db = fresh(t, { sync: 'off' });
  const n = 70000;
  const flat = new Float32Array(n * 2);
  const ids = new Array(n);
  for (let i = 0; i < n; i++) {
    ids[i] = `v${i}`;
    flat[2 * i] = i;
  }
  db.write((w) => {
    w.createCollection('c', { dim: 2, index: 'flat' });
    w.upsert('c', { ids, vectors: flat });
  });
  db.read((r) => {
    for (const k of [Number.MAX_SAFE_INTEGER, 2 ** 40, n + 1, n]) {
      const hits = r.search('c', [0, 0], k);
      assert.equal(hits.length, n, `k ${k}`);
      for (const i of [0, 1, 65535, 65536, 65537, n - 1]) {
        assert.equal(hits[i].id, `v${i}`);
        assert.equal(hits[i].distance, Math.fround(i * i));
      }
    }
    const withMeta = r.search('c', [0, 0], Number.MAX_SAFE_INTEGER, { include: ['vector'] });
    assert.equal(withMeta.length, n);
    assert.deepEqual(Array.from(withMeta[n - 1].vector), [n - 1, 0]);
    assert.equal(withMeta[n - 1].distance, Math.fround((n - 1) * (n - 1)));
    // The scratch path again, after the big answers.
    assert.deepEqual(r.search('c', [2.2, 0], 3).map((h) => h.id), ['v2', 'v3', 'v1']);
    const b = r.searchBatch('c', [[0, 0], [n, 0]], Number.MAX_SAFE_INTEGER);
    assert.equal(b.ids[0].length, n);
    assert.equal(b.ids[1][0], `v${n - 1}`);
  });
});

test('a vector that is not numbers is a TypeError naming what it is', (t) => {
  const db = fresh(t);
  db.write((w) => {
    w.createCollection('c', { dim: 2, index: 'flat' });
    const named = (what) => (e) => e instanceof TypeError && e.message.endsWith(what);
    // A DataView has no elements to read as numbers (it once passed as an empty vector).
    assert.throws(() => w.upsert('c', 'a', new DataView(new ArrayBuffer(8))), named('not a DataView'));
    assert.throws(() => w.search('c', new DataView(new ArrayBuffer(8)), 1), named('not a DataView'));
    assert.throws(() => w.upsert('c', 'a', { 0: 1, 1: 2, length: 2 }), named('not an Object'));
    assert.throws(() => w.upsert('c', 'a', [1, undefined]), named('not undefined'));
    assert.throws(() => w.upsert('c', 'a', [1, 2n]), named('not a bigint'));
    assert.equal(w.count('c'), 0);
    // Typed arrays of numbers are converted.
    w.upsert('c', 'i8', new Int8Array([1, -2]));
    assert.deepEqual(Array.from(w.get('c', 'i8').vector), [1, -2]);
  });
});

test('an unknown sync level or index type is named in its error', (t) => {
  assert.throws(() => sextant.open(path.join(tmpdir(t), 'x.sx'), { sync: 'sometimes' }),
    (e) => e.code === 'INVALID_ARGUMENT' && e.message === "unknown sync level 'sometimes' (full, normal, off)");
  const db = fresh(t);
  db.write((w) => {
    assert.throws(() => w.createCollection('c', { dim: 2, index: 'ivf' }),
      (e) => e.code === 'INVALID_ARGUMENT' && e.message === "unknown index type 'ivf' (flat, hnsw)");
  });
});

test('an option spelled wrong is a TypeError naming it, never ignored; values are named', async (t) => {
  const db = fresh(t);
  const typo = (name) => (e) => e instanceof TypeError && e.message.startsWith(`unknown ${name} option "`);
  assert.throws(() => db.write((w) => w.createCollection('c', { dim: 2, efConstrution: 10 })), typo('collection'));
  db.write((w) => w.createCollection('c', { dim: 2, index: 'flat' }));
  db.write((w) => w.upsert('c', [{ id: 'a', vector: [1, 2] }]));
  assert.throws(() => db.write(() => {}, { timeout: 10 }), typo('write'));
  assert.throws(() => db.beginWrite({ timeout_ms: 10 }), typo('write'));
  await assert.rejects(db.beginWriteAsync({ timeout: 10 }), typo('write'));
  assert.throws(() => db.checkpoint({ wait: 1 }), typo('checkpoint'));
  assert.throws(() => db.backup(path.join(tmpdir(t), 'b.sx'), { overwrites: true }), typo('backup'));
  await assert.rejects(db.backupAsync(path.join(tmpdir(t), 'b.sx'), { progress: () => {} }), typo('backup'));
  const r = db.beginRead();
  assert.throws(() => r.search('c', [1, 2], 1, { efSearch: 100 }), typo('search'));
  assert.throws(() => r.search('c', [1, 2], 1, { signal: AbortSignal.abort() }), typo('search')); // sync: no signal
  assert.throws(() => r.searchBatch('c', [[1, 2]], 1, { filters: {} }), typo('search'));
  await assert.rejects(r.searchAsync('c', [1, 2], 1, { includes: ['vector'] }), typo('search'));
  assert.throws(() => [...r.scan('c', { batch: 10 })], typo('scan'));
  assert.throws(() => r.search('c', [1, 2], 1, { ef: -1 }),
    (e) => e.code === 'INVALID_ARGUMENT' && e.message === 'ef -1 is not an integer from 0 to 4294967295');
  // The right spellings still work.
  assert.equal(r.search('c', [1, 2], 1, { ef: 10, threads: 1, exact: true, include: ['vector'], filter: {} }).length, 1);
  assert.equal(r.searchBatch('c', new Float32Array([1, 2]), 1, { dim: 2 }).ids.length, 1);
  assert.equal((await r.searchAsync('c', [1, 2], 1, { signal: new AbortController().signal })).length, 1);
  assert.equal([...r.scan('c', { after: '', batchSize: 1 })].length, 1);
  r.end();
  db.backup(path.join(tmpdir(t), 'b.sx'), { overwrite: true });
  db.checkpoint({ timeoutMs: 100 });
});

test('close ends sessions; close is idempotent; Symbol.dispose', (t) => {
  const dir = tmpdir(t);
  const db = sextant.open(path.join(dir, 'db.sx'));
  const w = db.beginWrite();
  w.createCollection('c', { dim: 2 });
  const r = db.beginRead();
  db.close();
  db.close();
  assert.throws(() => w.count('c'), code('CLOSED'));
  assert.throws(() => r.listCollections(), code('CLOSED'));
  assert.throws(() => db.beginRead(), code('CLOSED'));
  // What `using` does (Node 20's V8 has Symbol.dispose but not the syntax yet).
  const db2 = sextant.open(path.join(dir, 'db.sx'));
  const w2 = db2.beginWrite();
  w2.createCollection('c', { dim: 2 });
  w2[Symbol.dispose](); // aborts
  assert.equal(w2.isOpen, false);
  const r2 = db2.beginRead();
  assert.deepEqual(r2.listCollections(), []);
  r2[Symbol.dispose]();
  assert.throws(() => r2.listCollections(), code('CLOSED'));
  db2[Symbol.dispose]();
  assert.throws(() => db2.beginRead(), code('CLOSED'));
});

test('user version: numbers and bigints', (t) => {
  const db = fresh(t);
  db.write((w) => w.setUserVersion(12));
  assert.equal(db.read((r) => r.userVersion()), 12);
  db.write((w) => w.setUserVersion(2n ** 60n));
  assert.equal(db.read((r) => r.userVersion()), 2n ** 60n);
  assert.throws(() => db.write((w) => w.setUserVersion(-1)), code('INVALID_ARGUMENT'));
  assert.throws(() => db.write((w) => w.setUserVersion('1')), TypeError);
});

test('stats and check', (t) => {
  const db = fresh(t);
  db.write((w) => w.createCollection('c', { dim: 2 }));
  const s = db.stats();
  assert.equal(s.pageSize, 4096);
  assert.ok(s.commits >= 1);
  db.check();
  db.checkpoint();
  db.read((r) => assert.deepEqual(r.collectionStats('c'), { count: 0, slots: 0, dead: 0, free: 0 }));
});

test('async search, upsert, commit; results equal the sync ones', async (t) => {
  const db = fresh(t);
  const dim = 16;
  const n = 2000;
  const v = randomVectors(n, dim, 3);
  const w = await db.beginWriteAsync();
  w.createCollection('h', { dim, index: 'hnsw' });
  const ids = Array.from({ length: n }, (_, i) => `id${i}`);
  const p = w.upsertAsync('h', { ids, vectors: v });
  // A synchronous call while an async one runs is refused; async ones queue.
  assert.throws(() => w.count('h'), code('MISUSE'));
  const c = w.searchAsync('h', v.subarray(0, dim), 3);
  await p;
  assert.equal((await c)[0].id, 'id0');
  await w.commitAsync();
  assert.equal(w.isOpen, false);
  const r = db.beginRead();
  const q = v.subarray(dim * 5, dim * 6);
  assert.deepEqual(await r.searchAsync('h', q, 10, { ef: 64 }), r.search('h', q, 10, { ef: 64 }));
  const qs = v.subarray(0, dim * 20);
  const a = await r.searchBatchAsync('h', qs, 5, { threads: 1 });
  assert.deepEqual(r.searchBatch('h', qs, 5, { threads: 2, ef: 64 }).ids, (await r.searchBatchAsync('h', qs, 5, { ef: 64 })).ids);
  assert.throws(() => r.searchBatch('h', qs, 5, { threads: 'x' }), TypeError);
  assert.throws(() => r.searchBatch('h', qs, 5, { threads: 65 }), code('INVALID_ARGUMENT'));
  const b = r.searchBatch('h', qs, 5);
  assert.deepEqual(a.ids, b.ids);
  assert.deepEqual(a.distances.map((x) => Array.from(x)), b.distances.map((x) => Array.from(x)));
  await assert.rejects(r.searchAsync('h', [1, 2], 3), code('DIMENSION_MISMATCH'));
  await assert.rejects(r.searchAsync('h', 'x', 3), TypeError);
  r.end();
  await assert.rejects(r.searchAsync('h', q, 3), code('CLOSED'));
});

test('an AbortSignal cancels an async search and a wait for the writer lock', async (t) => {
  const db = fresh(t, { threads: 1 });
  const dim = 64;
  const n = 50000;
  db.write((w) => {
    w.createCollection('f', { dim, index: 'flat' });
    w.upsert('f', { ids: Array.from({ length: n }, (_, i) => `v${i}`), vectors: randomVectors(n, dim, 9) });
  });
  const r = db.beginRead();
  const ac = new AbortController();
  const qs = randomVectors(6000, dim, 5); // about a second of work on one thread
  const t0 = performance.now();
  const p = r.searchBatchAsync('f', qs, 10, { signal: ac.signal });
  setTimeout(() => ac.abort(new Error('enough')), 50);
  await assert.rejects(p, (e) => e instanceof SextantError && e.code === 'CANCELLED' && e.cause instanceof Error);
  assert.ok(performance.now() - t0 < 2000, `cancelled after ${performance.now() - t0} ms`);
  await assert.rejects(r.searchAsync('f', qs.subarray(0, dim), 1, { signal: AbortSignal.abort() }), code('CANCELLED'));

  const w = db.beginWrite();
  const ac2 = new AbortController();
  const wait = db.beginWriteAsync({ signal: ac2.signal });
  setTimeout(() => ac2.abort(), 100);
  await assert.rejects(wait, code('CANCELLED'));
  await assert.rejects(db.beginWriteAsync({ timeoutMs: 50 }), code('BUSY'));
  w.abort();
  const w2 = await db.beginWriteAsync({ timeoutMs: 1000 });
  w2.abort();
  r.end();
});

test('the ESM entry exports the same objects', async () => {
  const m = await import('../index.mjs');
  assert.equal(m.open, sextant.open);
  assert.equal(m.SextantError, SextantError);
  assert.equal(m.default, sextant);
  assert.match(m.version(), /^\d+\.\d+\.\d+$/);
  assert.equal(typeof m.formatVersion(), 'number');
});

test('batch get, scan in id order, backup', async (t) => {
  const dir = tmpdir(t);
  const db = sextant.open(path.join(dir, 'db.sx'));
  t.after(() => db.close());
  const n = 2500;
  const v = randomVectors(n, 4, 21);
  const ids = Array.from({ length: n }, (_, i) => `id${String(i).padStart(5, '0')}`);
  db.write((w) => {
    w.createCollection('c', { dim: 4, index: 'flat' });
    w.upsert('c', { ids, vectors: v, metadata: ids.map((id, i) => (i % 2 ? { i } : null)) });
  });
  const r = db.beginRead();
  const got = r.getMany('c', ['id00003', 'nope', 'id00002', 'id00003']);
  assert.equal(got[1], null);
  assert.deepEqual(got[0], { id: 'id00003', vector: v.subarray(12, 16), metadata: { i: 3 } });
  assert.equal(got[2].metadata, null);
  assert.deepEqual(got[3].id, 'id00003');
  assert.throws(() => r.getMany('c', ['']), code('INVALID_ARGUMENT'));
  const seen = [...r.scan('c', { batchSize: 300 })].map((x) => x.id);
  assert.deepEqual(seen, ids);
  const tail = [...r.scan('c', { after: 'id02497' })];
  assert.deepEqual(tail.map((x) => x.id), ['id02498', 'id02499']);
  assert.deepEqual(tail[1].metadata, { i: 2499 });
  // A cursor on a read session walks its snapshot, whatever is committed meanwhile.
  const it = r.scan('c', { batchSize: 10 });
  it.next();
  db.write((w) => w.delete('c', ids.slice(0, 1000)));
  assert.equal([...it].length, n - 1);
  r.end();
  assert.throws(() => [...r.scan('c')], code('CLOSED'));

  db.backup(path.join(dir, 'copy.sx'));
  assert.throws(() => db.backup(path.join(dir, 'copy.sx')), code('EXISTS'));
  // Overwriting a database a handle has open would remove its WAL under it.
  const held = sextant.open(path.join(dir, 'copy.sx'));
  assert.throws(() => db.backup(path.join(dir, 'copy.sx'), { overwrite: true }), code('BUSY'));
  await assert.rejects(db.backupAsync(path.join(dir, 'copy.sx'), { overwrite: true }), code('BUSY'));
  held.close();
  const pages = [];
  await db.backupAsync(path.join(dir, 'copy.sx'), { overwrite: true, onProgress: (d, total) => pages.push([d, total]) });
  await new Promise((res) => setImmediate(res));
  assert.ok(pages.length > 0, 'backup progress was reported');
  assert.equal(pages[pages.length - 1][0], pages[pages.length - 1][1]);
  await assert.rejects(db.backupAsync(path.join(dir, 'c3.sx'), { onProgress: 7 }), TypeError);
  await assert.rejects(db.backupAsync(path.join(dir, 'c2.sx'), { signal: AbortSignal.abort() }), code('CANCELLED'));
  const copy = sextant.open(path.join(dir, 'copy.sx'), { readOnly: true });
  assert.equal(copy.read((x) => x.count('c')), n - 1000);
  copy.check();
  copy.close();
});

test('space figures and compaction', { skip: typeof sextant.lowLevel.sx_db_compact !== 'function' && 'no sx_db_compact in this core' }, async (t) => {
  const db = fresh(t);
  const n = 3000;
  const ids = Array.from({ length: n }, (_, i) => `v${i}`);
  db.write((w) => {
    w.createCollection('h', { dim: 8 });
    w.upsert('h', { ids, vectors: randomVectors(n, 8, 4) });
  });
  db.write((w) => w.delete('h', ids.slice(0, 2000)));
  const before = db.read((r) => r.space());
  assert.equal(before.pageSize, 4096);
  assert.ok(Number(before.reclaimableBytes) > 0, JSON.stringify(before));
  db.compact();
  const after = db.read((r) => r.space());
  assert.ok(Number(after.reclaimableBytes) < Number(before.reclaimableBytes), `${JSON.stringify(before)} -> ${JSON.stringify(after)}`);
  assert.equal(db.read((r) => r.count('h')), 1000);
  const seen = [];
  await db.compactAsync({ timeoutMs: 1000, onProgress: (d, total) => seen.push([d, total]) });
  await new Promise((res) => setImmediate(res));
  assert.ok(seen.length > 0 && seen[seen.length - 1][0] === 1000, JSON.stringify(seen));
  const w = db.beginWrite();
  await assert.rejects(db.compactAsync({ timeoutMs: 0 }), code('BUSY'));
  const ac = new AbortController();
  const p = db.compactAsync({ signal: ac.signal });
  setTimeout(() => ac.abort(), 50);
  await assert.rejects(p, code('CANCELLED'));
  assert.throws(() => db.compact({ timeoutMs: 0 }), code('BUSY'));
  w.abort();
  db.check();
});

test('write() whose function throws with an async call pending aborts once it settles', async (t) => {
  const db = fresh(t);
  db.write((w) => w.createCollection('c', { dim: 2, index: 'flat' }));
  let pending;
  assert.throws(() => db.write((w) => {
    pending = w.upsertAsync('c', 'a', [1, 2]);
    throw new Error('boom');
  }), /boom/);
  await pending;
  await new Promise((res) => setImmediate(res));
  const w2 = db.beginWrite({ timeoutMs: 1000 }); // the lock was given back
  assert.equal(w2.count('c'), 0);
  w2.abort();
});

test('int8 quantization: describe shows it, searches return exact distances', (t) => {
  const db = fresh(t);
  const n = 800;
  const dim = 12;
  const vecs = new Float32Array(n * dim);
  for (let i = 0; i < vecs.length; i++) vecs[i] = Math.sin(i * 12.9898) * 3;
  const ids = Array.from({ length: n }, (_, i) => `v${i}`);
  db.write((w) => {
    w.createCollection('q', { dim, quantization: 'int8' });
    assert.throws(() => w.createCollection('f', { dim, index: 'flat', quantization: 'int8' }), code('INVALID_ARGUMENT'));
    assert.throws(() => w.createCollection('u', { dim, quantization: 'int4' }), code('INVALID_ARGUMENT'));
    assert.throws(() => w.createCollection('u', { dim, quantization: 8 }), TypeError);
    w.createCollection('n', { dim });
    w.upsert('q', { ids, vectors: vecs });
  });
  db.read((r) => {
    assert.deepEqual(r.describe('q').index, { type: 'hnsw', m: 16, efConstruction: 200, quantization: 'int8' });
    assert.equal(r.describe('n').index.quantization, 'none');
    const q = vecs.subarray(7 * dim, 8 * dim);
    const hits = r.search('q', q, 5, { ef: n });
    const exact = ids.map((id, i) => {
      let d = 0;
      for (let j = 0; j < dim; j++) d += (Math.fround(q[j]) - vecs[i * dim + j]) ** 2;
      return { id, d };
    }).sort((a, b) => a.d - b.d).slice(0, 5);
    assert.deepEqual(hits.map((h) => h.id), exact.map((e) => e.id));
    hits.forEach((h, i) => assert.ok(Math.abs(h.distance - exact[i].d) <= 1e-4 * Math.max(1, exact[i].d), `${h.id} ${h.distance} ${exact[i].d}`));
  });
});
