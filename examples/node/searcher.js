#!/usr/bin/env node
// Searches one Sextant file for a while, each search in a fresh read session (a new
// snapshot) with searchAsync, several in flight at once (--inflight), printing what it
// sees once a second (the snapshot's generation and count, a search) and its
// throughput at the end. The Node part of tools/demo.sh.
//
//   node searcher.js --db vectors.sx [--seconds 10] [--inflight 4] [--k 10]
'use strict';
const path = require('node:path');
const { parseArgs } = require('node:util');
const { setTimeout: sleep } = require('node:timers/promises');
const sextant = require(path.join(__dirname, '..', '..', 'bindings', 'node'));

const { values: opt } = parseArgs({
  options: {
    db: { type: 'string', default: 'vectors.sx' },
    collection: { type: 'string', default: 'docs' },
    seconds: { type: 'string', default: '10' },
    inflight: { type: 'string', default: '4' },
    k: { type: 'string', default: '10' },
    label: { type: 'string', default: 'node' },
  },
});

function gauss() {
  return Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
}

// Searches for the vector the ingest committed last in this snapshot (its ids are
// doc-0000000, doc-0000001, ...): it must come first, at distance 0. An ef of at least
// the count makes the HNSW search exact; at the default ef (64) about 1 in 2,000 of
// these vectors would not be its own first hit.
async function newest(r, count) {
  const id = 'doc-' + String(count - 1).padStart(7, '0');
  let rec;
  try {
    rec = r.get(opt.collection, id);
  } catch (e) {
    if (e.code === 'NOT_FOUND') return ''; // another ingest's ids
    throw e;
  }
  const [hit] = await r.searchAsync(opt.collection, rec.vector, 1, { ef: Math.max(count, 64) });
  return `; newest ${id} -> ${hit.id} (${hit.distance.toFixed(3)})`;
}

async function main() {
  const db = sextant.open(opt.db);
  const seconds = Number(opt.seconds), k = Number(opt.k);
  const t0 = performance.now(), deadline = t0 + seconds * 1000;
  let searches = 0, nextReport = t0;
  const label = opt.label.padEnd(6);
  async function loop() {
    while (performance.now() < deadline) {
      const r = db.beginRead(); // one snapshot
      try {
        let info;
        try {
          info = r.describe(opt.collection);
        } catch (e) {
          if (e.code !== 'NOT_FOUND') throw e;
          await sleep(10); // not created yet
          continue;
        }
        const query = new Float32Array(info.dim).map(gauss);
        const hits = await r.searchAsync(opt.collection, query, k);
        searches++;
        const now = performance.now();
        if (now >= nextReport && hits.length > 0) {
          nextReport = now + 1000;
          console.log(`${label} pid ${String(process.pid).padEnd(7)} snapshot gen ${String(r.userVersion()).padStart(5)}, ` +
            `${String(info.count).padStart(7)} vectors; random query -> ${hits[0].id} (${hits[0].distance.toFixed(3)})` +
            (await newest(r, Number(info.count))));
        }
      } finally {
        r.end();
      }
    }
  }
  await Promise.all(Array.from({ length: Number(opt.inflight) }, loop));
  console.log(`${label} pid ${String(process.pid).padEnd(7)} DONE: ${searches} searches in ${seconds.toFixed(1)} s = ` +
    `${Math.round(searches / seconds)} searches/s (each in its own snapshot, searchAsync, ${opt.inflight} in flight)`);
  db.close();
}

main().catch((e) => {
  console.error(`searcher.js: ${e.code || ''} ${e.message}`);
  process.exit(1);
});
