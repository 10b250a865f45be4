'use strict';
// Filtered search: `filter` (object or JSON text), `include` (hits carry metadata and
// vectors), `exact`, through search, searchBatch and their async forms; invalid
// filters are INVALID_ARGUMENT, wrong types TypeError.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');

const sextant = require('..');
const { SextantError } = sextant;
const { tmpdir } = require('./helpers');

function code(c) {
  return (e) => e instanceof SextantError && e.code === c;
}

const N = 100;
const pad = (i) => 'id' + String(i).padStart(3, '0');

/** Collections "c" (flat) and "h" (HNSW), L2, dim 2: item i is (i, 0) with metadata
 * {i, c: i % 3, tag: 'even' | 'odd'}, except every tenth item, which has none. */
function filterDb(t) {
  const db = sextant.open(path.join(tmpdir(t), 'f.sx'));
  t.after(() => db.close());
  const items = [];
  for (let i = 0; i < N; i++) {
    items.push({ id: pad(i), vector: [i, 0], metadata: i % 10 ? { i, c: i % 3, tag: i % 2 ? 'odd' : 'even' } : null });
  }
  db.write((w) => {
    w.createCollection('c', { dim: 2, metric: 'l2', index: 'flat' });
    w.createCollection('h', { dim: 2, metric: 'l2', index: 'hnsw' });
    w.upsert('c', items);
    w.upsert('h', items);
  });
  return db;
}

const ids = (hits) => hits.map((h) => h.id);

test('search with a filter, as an object or JSON text, and include', (t) => {
  const db = filterDb(t);
  db.read((r) => {
    const want = ['id049', 'id052', 'id046'];
    for (const filter of [{ c: 1, i: { $gte: 40 } }, '{"c": 1, "i": {"$gte": 40}}', { $and: [{ c: 1 }, { i: { $gte: 40 } }] }]) {
      const hits = r.search('c', [50, 0], 3, { filter });
      assert.deepEqual(ids(hits), want);
      assert.ok(!('metadata' in hits[0]) && !('vector' in hits[0]), 'nothing included unless asked');
    }
    const hits = r.search('c', [10, 0], 3, { include: ['metadata', 'vector'] });
    assert.deepEqual(ids(hits), ['id010', 'id009', 'id011']);
    assert.equal(hits[0].metadata, null);
    assert.deepEqual(hits[1].metadata, { i: 9, c: 0, tag: 'odd' });
    assert.deepEqual(hits[1].metadata, r.get('c', 'id009').metadata);
    assert.ok(hits[2].vector instanceof Float32Array);
    assert.deepEqual(Array.from(hits[2].vector), [11, 0]);
    assert.deepEqual(Array.from(hits[0].vector), [10, 0]);

    const onlyMeta = r.search('c', [50, 0], 2, { filter: { i: { $exists: false } }, include: ['metadata'] });
    assert.deepEqual(ids(onlyMeta), ['id050', 'id040']);
    assert.equal(onlyMeta[0].metadata, null);
    assert.ok(!('vector' in onlyMeta[0]));
    assert.deepEqual(r.search('c', [50, 0], 5, { filter: { tag: 'none' } }), []);
    assert.deepEqual(ids(r.search('c', [50, 0], 1, { filter: null })), ['id050']);
    assert.deepEqual(ids(r.search('c', [50, 0], 1, { include: [] })), ['id050']);
  });
});

test('searchBatch with filter, include and exact, flat and HNSW', (t) => {
  const db = filterDb(t);
  db.read((r) => {
    for (const coll of ['c', 'h']) {
      const res = r.searchBatch(coll, [[0, 0], [99, 0], [50, 0]], 2, { filter: { tag: 'odd' }, include: ['metadata', 'vector'], exact: true });
      assert.deepEqual(res.ids, [['id001', 'id003'], ['id099', 'id097'], ['id049', 'id051']]);
      for (let q = 0; q < 3; q++) {
        for (let i = 0; i < 2; i++) {
          assert.equal(res.metadata[q][i].tag, 'odd');
          assert.equal(pad(res.vectors[q][i][0]), res.ids[q][i]);
        }
      }
      const plain = r.searchBatch(coll, new Float32Array([1, 0, 2, 0]), 3, { include: ['vector'] });
      assert.equal(plain.metadata, undefined);
      assert.equal(plain.vectors[1][0][0], 2);
      assert.equal(plain.vectors[1].length, 3);
    }
  });
});

test('exact HNSW search equals the flat one under a filter', (t) => {
  const db = filterDb(t);
  db.read((r) => {
    const filter = { $or: [{ c: 0 }, { i: { $lt: 5 } }] };
    for (const q of [[3, 0], [60.4, 1], [-5, 2]]) {
      const flat = r.search('c', q, 7, { filter });
      assert.deepEqual(ids(r.search('h', q, 7, { filter, exact: true })), ids(flat));
      assert.equal(r.search('h', q, 7, { filter, ef: 64 }).length, 7);
    }
  });
});

test('async search and batch search with filter and include', async (t) => {
  const db = filterDb(t);
  const r = db.beginRead();
  t.after(() => r.end());
  const hits = await r.searchAsync('h', [50, 0], 3, { filter: { c: 1, i: { $gte: 40 } }, include: ['metadata', 'vector'], exact: true });
  assert.deepEqual(ids(hits), ['id049', 'id052', 'id046']);
  assert.deepEqual(hits[0].metadata, { i: 49, c: 1, tag: 'odd' });
  assert.deepEqual(Array.from(hits[1].vector), [52, 0]);
  const res = await r.searchBatchAsync('c', [[0, 0], [99, 0]], 2, { filter: '{"tag": "even"}', include: ['metadata'] });
  assert.deepEqual(res.ids, [['id002', 'id004'], ['id098', 'id096']]);
  assert.deepEqual(res.metadata[1][0], { i: 98, c: 2, tag: 'even' });
  assert.equal(res.vectors, undefined);
  // Several at once, each with its own filter text (kept by its work until it runs).
  const all = await Promise.all([0, 1, 2].map((c) => r.searchAsync('c', [50, 0], 1, { filter: { c } })));
  assert.deepEqual(all.map(ids), [['id051'], ['id049'], ['id047']]);
  await assert.rejects(r.searchAsync('c', [1, 0], 2, { filter: { i: { $regex: 'x' } } }), code('INVALID_ARGUMENT'));
  await assert.rejects(r.searchBatchAsync('c', [[1, 0]], 2, { filter: '[1]' }), code('INVALID_ARGUMENT'));
});

test('invalid filters are INVALID_ARGUMENT, wrong types TypeError', (t) => {
  const db = filterDb(t);
  const bad = [{ i: { $regex: 'x' } }, 'not json', '[1, 2]', { $and: [] }, '', '{"a": 1}\0'];
  db.read((r) => {
    for (const filter of bad) {
      assert.throws(() => sextant.checkFilter(filter), code('INVALID_ARGUMENT'), String(filter));
      assert.throws(() => r.search('h', [1, 0], 3, { filter }), code('INVALID_ARGUMENT'), String(filter));
      assert.throws(() => r.searchBatch('c', [[1, 0]], 3, { filter }), code('INVALID_ARGUMENT'), String(filter));
    }
    assert.throws(() => r.search('c', [1, 0], 3, { include: ['ids'] }), code('INVALID_ARGUMENT'));
    assert.throws(() => r.search('c', [1, 0], 3, { filter: 5 }), TypeError);
    assert.throws(() => r.search('c', [1, 0], 3, { include: 'metadata' }), TypeError);
    assert.throws(() => r.search('c', [1, 0], 3, { exact: 1 }), TypeError);
  });
  assert.doesNotThrow(() => sextant.checkFilter({ tenant: 'x', year: { $gte: 2024 } }));
  assert.throws(() => sextant.checkFilter(undefined), code('INVALID_ARGUMENT'));
  try {
    sextant.checkFilter('{"i": {"$regex": "x"}}');
    assert.fail('no error');
  } catch (e) {
    assert.equal(e.code, 'INVALID_ARGUMENT');
    assert.match(e.message, /\$regex/);
  }
});

test('the ESM entry exports checkFilter', async () => {
  const m = await import('../index.mjs');
  assert.equal(m.checkFilter, sextant.checkFilter);
});
