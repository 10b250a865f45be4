'use strict';
// worker_threads: the addon loads in every worker (per-environment state only); 4
// workers open the same file and search it, sync and async, while the main thread
// commits; every session checks the snapshot invariant (invariant.js).
// Environment: SX_NODE_STRESS_SECONDS (default 3).
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');
const { Worker, isMainThread, parentPort, workerData } = require('worker_threads');

const sextant = require('..');
const { checkSnapshot, commitOne } = require('./invariant');
const { tmpdir, envInt } = require('./helpers');

const B = 20;

async function workerMain({ dbPath, until }) {
  const db = sextant.open(dbPath);
  let sessions = 0;
  let searches = 0;
  while (Date.now() < until) {
    const r = db.beginRead();
    try {
      const why = checkSnapshot(r, B);
      if (why) throw new Error(why);
      const u = Number(r.userVersion());
      if (u > 0) {
        // The same snapshot through the pool: an async search sees what the sync one does.
        const q = new Float32Array(8).fill(0.25);
        const [a, b] = [r.search('c', q, 7), await r.searchAsync('c', q, 7)];
        assert.deepEqual(a, b);
        const batch = await r.searchBatchAsync('c', [q, q], 3);
        assert.deepEqual(batch.ids[0], a.slice(0, 3).map((h) => h.id));
        if (Number(r.userVersion()) !== u || Number(r.count('c')) !== u * B + 1) throw new Error('snapshot moved');
        searches += 3;
      }
    } finally {
      r.end();
    }
    sessions++;
  }
  db.close();
  return { sessions, searches };
}

if (!isMainThread) {
  workerMain(workerData).then((res) => parentPort.postMessage(res), (e) => {
    parentPort.postMessage({ error: String(e && e.stack ? e.stack : e) });
  });
} else {
  test('4 workers search one file while the main thread commits', async (t) => {
    const dbPath = path.join(tmpdir(t), 'db.sx');
    const db = sextant.open(dbPath, { sync: 'normal' });
    t.after(() => db.close());
    commitOne(db, 1, B);
    const seconds = envInt('SX_NODE_STRESS_SECONDS', 3);
    const until = Date.now() + seconds * 1000;
    const workers = Array.from({ length: 4 }, () => new Worker(__filename, { workerData: { dbPath, until } }));
    const results = workers.map((w) => new Promise((res, rej) => {
      w.once('message', res);
      w.once('error', rej);
      w.once('exit', (c) => c !== 0 && rej(new Error(`worker exited with ${c}`)));
    }));
    let gen = 1;
    while (Date.now() < until) {
      gen++;
      if (gen % 2) commitOne(db, gen, B);
      else {
        // The async write path too: wait for the lock, upsert and commit on the pool.
        const w = await db.beginWriteAsync();
        await w.upsertAsync('c', { ids: Array.from({ length: B }, (_, i) => `${gen}-${i}`), vectors: new Float32Array(B * 8).fill(gen % 5) });
        await w.upsertAsync('c', 'head', new Float32Array(8).fill(gen), { gen });
        w.setUserVersion(gen);
        await w.commitAsync();
      }
      await new Promise((res) => setImmediate(res));
    }
    const out = await Promise.all(results);
    for (const o of out) assert.equal(o.error, undefined, o.error);
    const total = out.reduce((a, o) => a + o.sessions, 0);
    t.diagnostic(`${gen} commits; ${total} read sessions and ${out.reduce((a, o) => a + o.searches, 0)} searches in 4 workers`);
    assert.ok(total > 4, 'the workers ran');
    assert.equal(Number(db.read((r) => r.userVersion())), gen);
  });
}
