#!/usr/bin/env node
'use strict';
// Benchmarks of the Node binding against the C call it wraps:
//   1. per-call overhead of a synchronous search: the same sx_collection_search in a C
//      loop inside the addon (sx_node_bench_search, the floor) against the public
//      session.search() and the generated low-level call, on a small flat collection
//      where the search itself is cheap (the difference is the binding's cost);
//   2. async overhead: searchAsync awaited one at a time, against the same C loop;
//   3. QPS on an HNSW collection: C loop, sync search(), and searchAsync with several
//      calls in flight (the libuv pool runs them on its threads).
// Usage: node bench/bench.js   (npm run bench)
// Environment: SX_BENCH_N (HNSW vectors, default 20000), SX_BENCH_DIM (default 128),
// SX_BENCH_SECONDS (per measurement, default 1), UV_THREADPOOL_SIZE (libuv's, default 4).
const fs = require('fs');
const os = require('os');
const path = require('path');

const sextant = require('..');
const L = sextant.lowLevel;

const N = Number(process.env.SX_BENCH_N || 20000);
const DIM = Number(process.env.SX_BENCH_DIM || 128);
const SECONDS = Number(process.env.SX_BENCH_SECONDS || 1);

function randomVectors(n, dim, seed) {
  const v = new Float32Array(n * dim);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < v.length; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    v[i] = s / 4294967296 - 0.5;
  }
  return v;
}

/** Mean seconds per call of fn over about SECONDS, after a warm-up. */
function timeSync(fn) {
  for (let i = 0; i < 1000; i++) fn(i);
  let iters = 1000;
  for (;;) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < iters; i++) fn(i);
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    if (s >= SECONDS) return s / iters;
    iters = Math.ceil(iters * Math.min(10, (SECONDS * 1.2) / Math.max(s, 1e-3)));
  }
}

async function timeAsync(fn, inflight) {
  const t0 = process.hrtime.bigint();
  let calls = 0;
  const until = Date.now() + SECONDS * 1000;
  await Promise.all(Array.from({ length: inflight }, async () => {
    while (Date.now() < until) {
      await fn(calls++);
    }
  }));
  return Number(process.hrtime.bigint() - t0) / 1e9 / calls;
}

const us = (s) => (s * 1e6).toFixed(2);

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sx-bench-'));
  const db = sextant.open(path.join(dir, 'db.sx'), { sync: 'off' });
  const small = randomVectors(1000, 16, 1);
  const base = randomVectors(N, DIM, 2);
  const queries = randomVectors(256, DIM, 3);
  const qs16 = randomVectors(256, 16, 4);
  let t0 = Date.now();
  db.write((w) => {
    w.createCollection('small', { dim: 16, index: 'flat' });
    w.upsert('small', { ids: Array.from({ length: 1000 }, (_, i) => `s${i}`), vectors: small });
    w.createCollection('hnsw', { dim: DIM, index: 'hnsw', m: 16, efConstruction: 200 });
    w.upsert('hnsw', { ids: Array.from({ length: N }, (_, i) => `v${i}`), vectors: base });
  });
  const buildS = (Date.now() - t0) / 1000;
  const r = db.beginRead();
  const out = { node: process.version, cpus: os.cpus().length, uvThreads: Number(process.env.UV_THREADPOOL_SIZE || 4) };

  // 1. per-call overhead, sync, small flat collection (k = 10)
  const k = 10;
  const viewSmall = r._view('small');
  const q0 = qs16.subarray(0, 16);
  const cSmall = L.sx_node_bench_search(viewSmall, q0, k, 200000);
  const jsSmall = timeSync((i) => r.search('small', qs16.subarray((i & 255) * 16, (i & 255) * 16 + 16), k));
  const llSmall = timeSync((i) => L.sx_collection_search(viewSmall, qs16.subarray((i & 255) * 16, (i & 255) * 16 + 16), k, undefined));
  const jsSame = timeSync(() => r.search('small', q0, k));
  const cSame = L.sx_node_bench_search(viewSmall, q0, k, 200000);
  out.sync = {
    collection: 'flat 1000 x 16, k 10',
    c_us: cSame * 1e6,
    search_us: jsSame * 1e6,
    overhead_us: (jsSame - cSame) * 1e6,
    varied_queries: { c_us: cSmall * 1e6, search_us: jsSmall * 1e6, lowlevel_us: llSmall * 1e6 },
  };

  // 2. async overhead: one searchAsync at a time
  const aSmall = await timeAsync(() => r.searchAsync('small', q0, k), 1);
  out.async = { search_async_us: aSmall * 1e6, overhead_us: (aSmall - cSame) * 1e6 };

  // 3. QPS, HNSW
  const view = r._view('hnsw');
  const ef = 64;
  const cH = (() => {
    let t = 0;
    const per = 2000;
    for (let i = 0; i < 4; i++) t += L.sx_node_bench_search(view, queries.subarray((i * 13 & 255) * DIM, (i * 13 & 255) * DIM + DIM), k, per);
    return t / 4;
  })();
  const jsH = timeSync((i) => r.search('hnsw', queries.subarray((i & 255) * DIM, (i & 255) * DIM + DIM), k, { ef }));
  const cHdef = L.sx_node_bench_search(view, queries.subarray(0, DIM), k, 5000);
  const jsHdef = timeSync(() => r.search('hnsw', queries.subarray(0, DIM), k));
  const aH1 = await timeAsync((i) => r.searchAsync('hnsw', queries.subarray((i & 255) * DIM, (i & 255) * DIM + DIM), k, { ef }), 1);
  const inflight = out.uvThreads;
  const aHn = await timeAsync((i) => r.searchAsync('hnsw', queries.subarray((i & 255) * DIM, (i & 255) * DIM + DIM), k, { ef }), inflight * 2);
  out.hnsw = {
    collection: `hnsw ${N} x ${DIM} (m 16, ef_construction 200), k 10, ef ${ef}; built in ${buildS.toFixed(1)} s`,
    c_qps: 1 / cH,
    sync_qps: 1 / jsH,
    same_query: { c_us: cHdef * 1e6, search_us: jsHdef * 1e6, overhead_us: (jsHdef - cHdef) * 1e6 },
    async_1_qps: 1 / aH1,
    [`async_${inflight * 2}_in_flight_qps`]: 1 / aHn,
  };
  r.end();
  db.close();
  fs.rmSync(dir, { recursive: true, force: true });

  console.log(`Sextant Node binding benchmark (${out.node}, ${out.cpus} CPUs, UV_THREADPOOL_SIZE ${out.uvThreads})`);
  console.log(`sync search, ${out.sync.collection}, same query: C loop ${us(cSame)} us, session.search() ${us(jsSame)} us ` +
              `-> overhead ${us(jsSame - cSame)} us/call`);
  console.log(`  varied queries: C ${us(cSmall)} us, session.search() ${us(jsSmall)} us, low-level call ${us(llSmall)} us`);
  console.log(`async searchAsync one at a time: ${us(aSmall)} us/call -> overhead ${us(aSmall - cSame)} us over C`);
  console.log(`${out.hnsw.collection}`);
  console.log(`  QPS: C loop ${(1 / cH).toFixed(0)}, sync search() ${(1 / jsH).toFixed(0)} (${((cH / jsH) * 100).toFixed(1)}% of C), ` +
              `searchAsync 1 in flight ${(1 / aH1).toFixed(0)}, ${inflight * 2} in flight ${(1 / aHn).toFixed(0)}`);
  console.log(`  same query, default ef: C ${us(cHdef)} us, search() ${us(jsHdef)} us (overhead ${us(jsHdef - cHdef)} us)`);
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
