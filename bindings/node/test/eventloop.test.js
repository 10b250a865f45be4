'use strict';
// The event loop keeps running while the async calls work or wait: a setInterval ticker
// (every 5 ms) must never go 50 ms without a tick while searchAsync / searchBatchAsync
// run a long exact search (200k x 128 flat by default), nor while beginWriteAsync waits
// for a writer lock held by another process. The synchronous search is measured too,
// for contrast (it blocks, as any synchronous call does).
// Environment: SX_NODE_EL_N (vectors, default 200000), SX_NODE_EL_QUERIES (default 64).
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');
const { spawn } = require('child_process');

const sextant = require('..');
const { tmpdir, randomVectors, ticker, envInt } = require('./helpers');

const N = envInt('SX_NODE_EL_N', 200000);
const DIM = 128;
const QUERIES = envInt('SX_NODE_EL_QUERIES', 64);
const MAX_GAP_MS = 50;

test('the event loop runs while async searches and waits do', async (t) => {
  const dir = tmpdir(t);
  const db = sextant.open(path.join(dir, 'db.sx'), { sync: 'off', threads: 1 });
  t.after(() => db.close());
  const v = randomVectors(N, DIM, 11);
  db.write((w) => {
    w.createCollection('f', { dim: DIM, index: 'flat' });
    const chunk = 20000;
    for (let i = 0; i < N; i += chunk) {
      const m = Math.min(chunk, N - i);
      w.upsert('f', { ids: Array.from({ length: m }, (_, j) => `v${i + j}`), vectors: v.subarray(i * DIM, (i + m) * DIM) });
    }
  });
  const r = db.beginRead();
  const qs = randomVectors(QUERIES, DIM, 12);

  // For contrast: one synchronous search blocks the loop for its whole length.
  let tk = ticker();
  let t0 = performance.now();
  await new Promise((res) => setTimeout(res, 20));
  for (let q = 0; q < 8; q++) r.search('f', qs.subarray(q * DIM, (q + 1) * DIM), 10);
  const syncMs = (performance.now() - t0 - 20) / 8;
  await new Promise((res) => setTimeout(res, 20));
  const syncGap = tk.stop();

  // searchAsync, one after another, and a batch on the pool. On a machine that other
  // work keeps busy a scheduling delay can stall any thread, so a run over the limit is
  // measured once more, and the better run counts.
  let asyncMs = 0;
  let asyncGap = null;
  for (let attempt = 0; attempt < 3 && !(asyncGap && asyncGap.maxGapMs < MAX_GAP_MS); attempt++) {
    tk = ticker();
    t0 = performance.now();
    for (let q = 0; q < QUERIES; q++) {
      const hits = await r.searchAsync('f', qs.subarray(q * DIM, (q + 1) * DIM), 10);
      assert.equal(hits.length, 10);
    }
    const batch = await r.searchBatchAsync('f', qs, 10);
    assert.equal(batch.ids.length, QUERIES);
    asyncMs = performance.now() - t0;
    const g = tk.stop();
    if (attempt > 0) t.diagnostic(`the previous run's max gap was ${asyncGap.maxGapMs.toFixed(1)} ms; measured again`);
    if (!asyncGap || g.maxGapMs < asyncGap.maxGapMs) asyncGap = g;
  }

  // beginWriteAsync while another process holds the writer lock for 1.5 s (measured
  // again, up to 3 times, when other work on the machine stalled the loop).
  db.write((w) => w.upsert('f', 'extra', qs.subarray(0, DIM)));
  let waitMs = 0;
  let waitGap = null;
  for (let attempt = 0; attempt < 3 && !(waitGap && waitGap.maxGapMs < MAX_GAP_MS); attempt++) {
    const child = spawn(process.execPath, [path.join(__dirname, 'child.js'), 'hold', path.join(dir, 'db.sx'), '1500'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise((res, rej) => {
      child.stdout.on('data', (d) => String(d).includes('locked') && res());
      child.on('exit', (c) => rej(new Error(`holder exited (${c}) before it locked`)));
    });
    tk = ticker();
    t0 = performance.now();
    const w = await db.beginWriteAsync({ timeoutMs: 20000 });
    const ms = performance.now() - t0;
    const g = tk.stop();
    w.abort();
    await new Promise((res) => (child.exitCode !== null ? res() : child.on('exit', res)));
    if (!waitGap || g.maxGapMs < waitGap.maxGapMs) {
      waitGap = g;
      waitMs = ms;
    }
  }
  r.end();

  const report = `flat ${N} x ${DIM}: sync search ${syncMs.toFixed(1)} ms each, max loop gap ${syncGap.maxGapMs.toFixed(1)} ms; ` +
    `${QUERIES} searchAsync + 1 searchBatchAsync(${QUERIES}) in ${asyncMs.toFixed(0)} ms, max gap ${asyncGap.maxGapMs.toFixed(1)} ms ` +
    `(${asyncGap.ticks} ticks); beginWriteAsync waited ${waitMs.toFixed(0)} ms, max gap ${waitGap.maxGapMs.toFixed(1)} ms ` +
    `(${waitGap.ticks} ticks)`;
  t.diagnostic(report);
  console.log(`# event loop: ${report}`);
  assert.ok(waitMs > 500, `beginWriteAsync returned after ${waitMs} ms: did it wait for the holder?`);
  assert.ok(asyncGap.maxGapMs < MAX_GAP_MS, report);
  assert.ok(waitGap.maxGapMs < MAX_GAP_MS, report);
});
