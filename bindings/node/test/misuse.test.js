'use strict';
// Misuse and garbage collection: handles dropped in every order and collected, use
// after close, double close, wrong dimensions, NaN, wrong types and wrong handle kinds
// given to the low-level module: always an exception, never a crash.
// Run with --expose-gc (run_tests.sh does); without it the V8 flag is set at run time.
// Environment: SX_NODE_GC_HANDLES (default 100000).
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');

const sextant = require('..');
const { SextantError, lowLevel: L } = sextant;
const { tmpdir, randomVectors, envInt } = require('./helpers');

const gc = global.gc || (() => {
  require('v8').setFlagsFromString('--expose-gc');
  return require('vm').runInNewContext('gc');
})();

function code(c) {
  return (e) => e instanceof SextantError && e.code === c;
}

async function collect() {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((res) => setImmediate(res)); // finalizers run from the loop
  }
}

test('100k handles dropped in varied orders, then collected: no crash, memory bounded', async (t) => {
  const dbPath = path.join(tmpdir(t), 'db.sx');
  const seed = sextant.open(dbPath);
  seed.write((w) => {
    w.createCollection('c', { dim: 4, index: 'flat' });
    w.upsert('c', { ids: ['a', 'b', 'c'], vectors: randomVectors(3, 4) });
  });
  seed.close();
  const target = envInt('SX_NODE_GC_HANDLES', 100000);
  let handles = 0;
  let round = 0;
  let rss0 = 0;
  const q = new Float32Array([0.1, 0.2, 0.3, 0.4]);
  while (handles < target) {
    const db = sextant.open(dbPath);
    handles++;
    const sessions = [];
    for (let i = 0; i < 24; i++) {
      const r = db.beginRead();
      r.count('c'); // a collection view too
      sessions.push(r);
      handles += 2;
    }
    const w = round % 3 === 0 ? db.beginWrite({ timeoutMs: 0 }) : null;
    if (w) {
      w.search('c', q, 2);
      handles += 2;
    }
    switch (round % 4) {
      case 0: // database closed first, sessions dropped afterwards
        db.close();
        assert.throws(() => sessions[0].count('c'), code('CLOSED'));
        break;
      case 1: // sessions ended first, database dropped unclosed
        for (const r of sessions) r.end();
        if (w) w.abort();
        break;
      case 2: // dropped as is (the writer lock aside): the collector frees in its own order
        if (w) w[Symbol.dispose]();
        break;
      default: // half ended, then the database closed
        sessions.slice(0, 12).forEach((r) => r.end());
        db.close();
    }
    round++;
    if (round % 8 === 0) await collect(); // dropped read sessions give back their reader slots
    if (round === 40) {
      await collect();
      rss0 = process.memoryUsage().rss;
    }
  }
  await collect();
  const grown = (process.memoryUsage().rss - rss0) / 2 ** 20;
  t.diagnostic(`${handles} handles in ${round} rounds; RSS grew ${grown.toFixed(1)} MiB after the first 40 rounds`);
  assert.ok(grown < 64, `RSS grew ${grown.toFixed(1)} MiB`);
  const db = sextant.open(dbPath);
  assert.equal(db.stats().readers, 0, 'every collected session gave its reader slot back');
  db.check();
  db.close();
});

test('async work keeps its handles alive when the JS objects are dropped', async (t) => {
  const dbPath = path.join(tmpdir(t), 'db.sx');
  const pending = [];
  (() => {
    const db = sextant.open(dbPath);
    db.write((w) => {
      w.createCollection('c', { dim: 16, index: 'flat' });
      w.upsert('c', { ids: Array.from({ length: 5000 }, (_, i) => `v${i}`), vectors: randomVectors(5000, 16) });
    });
    const r = db.beginRead();
    for (let i = 0; i < 20; i++) pending.push(r.searchBatchAsync('c', randomVectors(50, 16, i + 1), 5));
  })();
  await collect();
  const res = await Promise.all(pending);
  for (const x of res) assert.equal(x.ids.length, 50);
  await collect();
});

test('use after close, double close, bad vectors, wrong types', (t) => {
  const db = sextant.open(path.join(tmpdir(t), 'db.sx'));
  db.write((w) => w.createCollection('c', { dim: 3, index: 'flat' }));
  const r = db.beginRead();
  const w = db.beginWrite();
  db.close();
  db.close();
  assert.throws(() => r.search('c', [1, 2, 3], 1), code('CLOSED'));
  assert.throws(() => w.upsert('c', 'a', [1, 2, 3]), code('CLOSED'));
  assert.throws(() => w.commit(), code('CLOSED'));
  assert.throws(() => db.stats(), code('CLOSED'));
  assert.throws(() => db.checkpoint(), code('CLOSED'));
  r.end();
  r.end();

  const db2 = sextant.open(path.join(tmpdir(t), 'db2.sx'));
  const w2 = db2.beginWrite();
  w2.createCollection('c', { dim: 3, index: 'flat' });
  assert.throws(() => w2.upsert('c', 'a', [1, 2]), code('DIMENSION_MISMATCH'));
  assert.throws(() => w2.upsert('c', 'a', [1, NaN, 2]), code('INVALID_ARGUMENT'));
  assert.throws(() => w2.upsert('c', 'a', [1, Infinity, 2]), code('INVALID_ARGUMENT'));
  assert.throws(() => w2.search('c', [1, 2, NaN], 1), code('INVALID_ARGUMENT'));
  assert.throws(() => w2.search('c', [1, 2], 1), code('DIMENSION_MISMATCH'));
  assert.throws(() => w2.upsert('c', { ids: ['a', 'b'], vectors: new Float32Array(5) }), code('INVALID_ARGUMENT'));
  assert.throws(() => w2.upsert('c', { ids: 'a', vectors: new Float32Array(3) }), TypeError);
  assert.throws(() => w2.upsert('c', [{ id: 'a' }]), TypeError);
  assert.throws(() => w2.upsert('c', [null]), TypeError);
  assert.throws(() => w2.search('c', new Float64Array([1, 2, 3]).buffer, 1), TypeError);
  assert.throws(() => w2.search('c', [1, 2, 3], -1), code('INVALID_ARGUMENT'));
  assert.throws(() => w2.search('c', [1, 2, 3], 1.5), code('INVALID_ARGUMENT'));
  assert.throws(() => w2.search('c', [1, 2, 3], 1, { ef: -2 }), code('INVALID_ARGUMENT'));
  assert.throws(() => w2.search('c', [1, 2, 3], 1, { ef: 'many' }), TypeError);
  assert.throws(() => w2.delete('c', [1]), TypeError);
  assert.throws(() => w2.createCollection('d', { dim: -1 }), code('INVALID_ARGUMENT'));
  assert.throws(() => w2.createCollection('d', null), TypeError);
  assert.throws(() => db2.beginWrite({ timeoutMs: -5 }), code('INVALID_ARGUMENT'));
  assert.throws(() => db2.beginWrite({ timeoutMs: '5' }), TypeError);

  // The low-level module checks what it is given, whatever the caller.
  const r2 = db2.beginRead();
  assert.throws(() => L.sx_db_stats_get(r2._h), TypeError); // a read session where a database belongs
  assert.throws(() => L.sx_write_commit(r2._h), TypeError);
  assert.throws(() => L.sx_db_close({}), TypeError);
  assert.throws(() => L.sx_db_close(null), code('MISUSE'));
  assert.throws(() => L.sx_read_begin(undefined), TypeError);
  assert.throws(() => L.sx_collection_search(null, new Float32Array(3), 1, undefined), code('MISUSE'));
  assert.throws(() => L.sx_collection_search(w2._view('c'), [1, 2, 3], 1, undefined), TypeError);
  assert.throws(() => L.sx_write_upsert_packed(w2._h, 'c', [['a'], new Float32Array(3), 3]), TypeError);
  assert.throws(() => L.sx_write_upsert_packed(w2._h, 'c', [['a'], new Float32Array(3), 2, null]), code('INVALID_ARGUMENT'));
  assert.throws(() => L.sx_write_upsert_packed(w2._h, 'c', [['a', 7], new Float32Array(6), 3, null]), TypeError);
  assert.throws(() => L.sx_collection_search_batch(w2._view('c'), [new Float32Array(4), 3], 1, undefined), code('INVALID_ARGUMENT'));
  assert.throws(() => L.sx_node_search_async(r2._h, new Float32Array(3), 1, undefined, undefined), TypeError);
  assert.throws(() => L.sx_node_search_async(w2._view('c'), new Float32Array(3), 1, undefined, 'token'), TypeError);
  assert.throws(() => L.sx_node_token_set({}), TypeError);
  assert.throws(() => L.sx_node_register(1), TypeError);
  assert.throws(() => L.sx_db_open('x', 'not options'), TypeError);
  assert.throws(() => L.sx_db_close(), Error); // wrong argument count
  r2.end();
  w2.abort();
  db2.close();
});
