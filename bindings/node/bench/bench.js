#!/usr/bin/env node
'use strict';
// Benchmarks of the Node binding against the C call it wraps:
//   1. per-call overhead of a synchronous search: sx_collection_search in a C loop
//      inside the addon (sx_node_bench_search, the floor no binding can beat) against
//      session.search() and the generated low-level call, on a small flat collection
//      where the search itself is cheap, so the difference is the binding's cost;
//   2. async overhead: searchAsync awaited one at a time, against the same C loop;
//   3. QPS on an HNSW collection: C loop, sync search(), searchAsync with 1 and with
//      2 x UV_THREADPOOL_SIZE calls in flight.
// Each figure is measured in short blocks interleaved with the others, REPS times;
// the best block (least disturbed by other work on the machine) and the median are
// reported.
// Usage: node bench/bench.js   (npm run bench)
// Environment: SX_BENCH_N (HNSW vectors, default 20000), SX_BENCH_DIM (default 128),
// SX_BENCH_REPS (default 15), UV_THREADPOOL_SIZE (libuv's pool, default 4).
const fs = require('fs');
const os = require('os');
const path = require('path');

const sextant = require('..');
const L = sextant.lowLevel;

const N = Number(process.env.SX_BENCH_N || 20000);
const DIM = Number(process.env.SX_BENCH_DIM || 128);
const REPS = Number(process.env.SX_BENCH_REPS || 15);
const POOL = Number(process.env.UV_THREADPOOL_SIZE || 4);

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

const now = () => Number(process.hrtime.bigint()) / 1e9;

/** Runs every variant REPS times in turn; each returns seconds per call for one block. */
async function measure(variants) {
  const runs = {};
  for (const k of Object.keys(variants)) runs[k] = [];
  for (const k of Object.keys(variants)) await variants[k](); // warm-up
  for (let r = 0; r < REPS; r++) {
    for (const [k, fn] of Object.entries(variants)) runs[k].push(await fn());
  }
  const out = {};
  for (const [k, xs] of Object.entries(runs)) {
    xs.sort((a, b) => a - b);
    out[k] = { best: xs[0], median: xs[Math.floor(xs.length / 2)] };
  }
  return out;
}

function syncBlock(iters, fn) {
  return () => {
    const t0 = now();
    for (let i = 0; i < iters; i++) fn(i);
    return (now() - t0) / iters;
  };
}

function asyncBlock(calls, inflight, fn) {
  return async () => {
    let next = 0;
    const t0 = now();
    await Promise.all(Array.from({ length: inflight }, async () => {
      while (next < calls) await fn(next++);
    }));
    return (now() - t0) / calls;
  };
}

const us = (s) => (s * 1e6).toFixed(2);

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sx-bench-'));
  const db = sextant.open(path.join(dir, 'db.sx'), { sync: 'off' });
  const small = randomVectors(1000, 16, 1);
  const base = randomVectors(N, DIM, 2);
  const queries = randomVectors(256, DIM, 3);
  const t0 = now();
  db.write((w) => {
    w.createCollection('small', { dim: 16, index: 'flat' });
    w.upsert('small', { ids: Array.from({ length: 1000 }, (_, i) => `s${i}`), vectors: small });
    w.createCollection('hnsw', { dim: DIM, index: 'hnsw', m: 16, efConstruction: 200 });
    w.upsert('hnsw', { ids: Array.from({ length: N }, (_, i) => `v${i}`), vectors: base });
  });
  const buildS = now() - t0;
  const r = db.beginRead();
  const k = 10;
  const q0 = small.subarray(0, 16);
  const vs = r._view('small');

  const sync = await measure({
    c: () => L.sx_node_bench_search(vs, q0, k, 2000),
    lowlevel: syncBlock(2000, () => L.sx_collection_search(vs, q0, k, undefined)),
    search: syncBlock(2000, () => r.search('small', q0, k)),
    searchAsync: asyncBlock(500, 1, () => r.searchAsync('small', q0, k)),
  });

  const ef = 64;
  const vh = r._view('hnsw');
  const qh = (i) => queries.subarray((i & 255) * DIM, ((i & 255) + 1) * DIM);
  const hn = await measure({
    // The same 8 queries in the same order on every side; the C figure is the time
    // measured inside each sx_collection_search loop of one call.
    c: () => {
      let t = 0;
      for (let i = 0; i < 400; i++) t += L.sx_node_bench_search(vh, qh(i % 8), k, 1);
      return t / 400;
    },
    search: syncBlock(400, (i) => r.search('hnsw', qh(i % 8), k, { ef })),
    searchAsync1: asyncBlock(400, 1, (i) => r.searchAsync('hnsw', qh(i % 8), k, { ef })),
    searchAsyncN: asyncBlock(800, 2 * POOL, (i) => r.searchAsync('hnsw', qh(i % 8), k, { ef })),
  });
  r.end();
  db.close();
  fs.rmSync(dir, { recursive: true, force: true });

  const load = os.loadavg()[0].toFixed(2);
  console.log(`Sextant Node binding benchmark: ${process.version}, ${os.cpus().length} CPUs, load ${load}, ` +
              `UV_THREADPOOL_SIZE ${POOL}, ${REPS} interleaved blocks per figure (best / median)`);
  console.log('1. sync search, flat 1000 x 16, k 10, one query (per call):');
  console.log(`   C loop (sx_collection_search)   ${us(sync.c.best)} / ${us(sync.c.median)} us`);
  console.log(`   low-level generated call        ${us(sync.lowlevel.best)} / ${us(sync.lowlevel.median)} us`);
  console.log(`   session.search()                ${us(sync.search.best)} / ${us(sync.search.median)} us` +
              `   -> overhead over C ${us(sync.search.best - sync.c.best)} / ${us(sync.search.median - sync.c.median)} us`);
  console.log('2. async:');
  console.log(`   searchAsync, one at a time      ${us(sync.searchAsync.best)} / ${us(sync.searchAsync.median)} us` +
              `   -> overhead over C ${us(sync.searchAsync.best - sync.c.best)} / ${us(sync.searchAsync.median - sync.c.median)} us`);
  console.log(`3. hnsw ${N} x ${DIM} (m 16, ef_construction 200, built in ${buildS.toFixed(1)} s), k 10, ef 64 (QPS):`);
  const q = (x) => (1 / x).toFixed(0);
  console.log(`   C loop                          ${q(hn.c.best)} / ${q(hn.c.median)}`);
  console.log(`   session.search()                ${q(hn.search.best)} / ${q(hn.search.median)}` +
              `   (${((hn.c.best / hn.search.best) * 100).toFixed(1)}% / ${((hn.c.median / hn.search.median) * 100).toFixed(1)}% of C)`);
  console.log(`   searchAsync, 1 in flight        ${q(hn.searchAsync1.best)} / ${q(hn.searchAsync1.median)}`);
  console.log(`   searchAsync, ${2 * POOL} in flight        ${q(hn.searchAsyncN.best)} / ${q(hn.searchAsyncN.median)}`);
  const json = { node: process.version, cpus: os.cpus().length, load: Number(load), pool: POOL, sync, hnsw: hn };
  console.log(JSON.stringify(json, (key, v) => (typeof v === 'number' ? Number(v.toPrecision(4)) : v)));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
