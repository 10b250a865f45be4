#!/usr/bin/env node
// Upserts embeddings into a Sextant file in batched commits with the async API, while
// any number of searchers read the same file. It behaves as examples/python/ingest.py:
// each commit adds --batch new vectors (ids doc-0000000, ...), sets the user version
// to the batch number and prints one JSON line with a probe vector of the batch;
// --batches 0 runs until SIGTERM or SIGINT.
//
//   node ingest.js --db vectors.sx [--dim 64] [--batch 200] [--batches 0] [--interval 50]
'use strict';
const path = require('node:path');
const { parseArgs } = require('node:util');
const { setTimeout: sleep } = require('node:timers/promises');
const sextant = require(path.join(__dirname, '..', '..', 'bindings', 'node'));

const { values: opt } = parseArgs({
  options: {
    db: { type: 'string', default: 'vectors.sx' },
    collection: { type: 'string', default: 'docs' },
    dim: { type: 'string', default: '64' },
    batch: { type: 'string', default: '200' },
    batches: { type: 'string', default: '0' },
    interval: { type: 'string', default: '50' }, // milliseconds
    quiet: { type: 'boolean', default: false },
  },
});
const dim = Number(opt.dim), batch = Number(opt.batch), batches = Number(opt.batches);

// A standard normal variate (Box-Muller): embeddings spread like real ones.
function gauss() {
  return Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
}

async function main() {
  let stop = false;
  process.on('SIGTERM', () => { stop = true; });
  process.on('SIGINT', () => { stop = true; });
  const db = sextant.open(opt.db);
  let commits = 0, vectors = 0;
  const t0 = performance.now();
  while (!stop && (batches === 0 || commits < batches)) {
    const w = await db.beginWriteAsync(); // waits for the write lock off the event loop
    let first, generation, ids, flat, tc;
    try {
      if (!w.listCollections().includes(opt.collection))
        w.createCollection(opt.collection, { dim, metric: 'l2' });
      first = Number(w.count(opt.collection));
      generation = Number(w.userVersion()) + 1;
      ids = Array.from({ length: batch }, (_, i) => 'doc-' + String(first + i).padStart(7, '0'));
      flat = new Float32Array(batch * dim).map(gauss);
      const metadata = ids.map((_, i) => ({ batch: generation, n: first + i }));
      await w.upsertAsync(opt.collection, { ids, vectors: flat, metadata });
      w.setUserVersion(generation);
      tc = performance.now();
      await w.commitAsync(); // durable (sync=full) when it resolves
    } catch (e) {
      if (w.isOpen) w.abort();
      throw e;
    }
    commits++;
    vectors += batch;
    if (!opt.quiet) {
      const p = Math.floor(Math.random() * batch);
      console.log(JSON.stringify({
        event: 'commit', generation, count: first + batch,
        commit_ms: Math.round((performance.now() - tc) * 100) / 100,
        probe_id: ids[p], probe: Array.from(flat.subarray(p * dim, (p + 1) * dim)),
      }));
    }
    if (Number(opt.interval) > 0 && !stop) await sleep(Number(opt.interval));
  }
  const secs = (performance.now() - t0) / 1000;
  console.log(JSON.stringify({ event: 'done', commits, vectors, seconds: secs, vectors_per_s: vectors / secs }));
  db.close();
}

main().catch((e) => {
  console.error(`ingest.js: ${e.code || ''} ${e.message}`);
  process.exit(1);
});
