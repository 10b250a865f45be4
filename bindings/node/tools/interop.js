#!/usr/bin/env node
'use strict';
// The Node interop worker: tests/interop/PROTOCOL.md through the sextant package, as
// tests/interop/interop_c.c does through the C API and interop_py.py through Python.
//
// Usage: node interop.js write-fixture DB | dump DB | writer DB SECONDS ACKFILE |
//        reader DB SECONDS | verify DB ACKFILE

const fs = require('fs');
const sextant = require('..');

const M64 = (1n << 64n) - 1n;

/** dim components from splitmix64 at `state`, each (z >> 40) / 2^24 * 2 - 1 (exact in float32). */
function splitmixVector(state, dim) {
  let s = BigInt(state) & M64;
  const out = new Float32Array(dim);
  for (let d = 0; d < dim; d++) {
    s = (s + 0x9E3779B97F4A7C15n) & M64;
    let z = s;
    z = ((z ^ (z >> 30n)) * 0xBF58476D1CE4E5B9n) & M64;
    z = ((z ^ (z >> 27n)) * 0x94D049BB133111EBn) & M64;
    z ^= z >> 31n;
    out[d] = (Number(z >> 40n) / 16777216) * 2 - 1;
  }
  return out;
}

function fixtureId(i) {
  return [`item-${i}`, `é-${i}-ü✓`, `ключ/${i}`][i % 3];
}

function fixtureMeta(i) {
  return { i, id: fixtureId(i), half: i * 0.5, tags: [`t${i % 4}`, 'x'],
    nested: { even: i % 2 === 0, deep: { k: [i, null, true] } } };
}

const view = new DataView(new ArrayBuffer(4));
/** The float32 bits of x as 8 lower-case hex digits, big-endian. */
function bits(x) {
  view.setFloat32(0, x, false);
  return view.getUint32(0, false).toString(16).padStart(8, '0');
}

/** A violated invariant (as opposed to an error of the binding). */
class Failure extends Error {}

const num = (v) => Number(v); // counters come back as bigint only above 2^53

function writeFixture(path) {
  const ids = [];
  const vecs = new Float32Array(200 * 16);
  const metas = [];
  for (let i = 0; i < 200; i++) {
    ids.push(fixtureId(i));
    vecs.set(splitmixVector(1000 + i, 16), i * 16);
    metas.push(fixtureMeta(i));
  }
  const db = sextant.open(path, { threads: 1, sync: 'full' });
  try {
    db.write((w) => {
      w.createCollection('flat', { dim: 16, metric: 'l2', index: 'flat' });
      w.createCollection('graph', { dim: 16, metric: 'cosine', index: 'hnsw', m: 8, efConstruction: 64 });
      w.upsert('flat', { ids, vectors: vecs, metadata: metas });
      w.upsert('graph', { ids, vectors: vecs, metadata: metas });
      w.setUserVersion(42);
    }, { timeoutMs: Infinity });
  } finally {
    db.close();
  }
  return { ok: true };
}

function dump(path) {
  const out = { user_version: 0, describe: {}, items: {}, search: {} };
  const db = sextant.open(path, { readOnly: true });
  try {
    db.read((r) => {
      out.user_version = num(r.userVersion());
      for (const coll of ['flat', 'graph']) {
        const d = r.describe(coll);
        out.describe[coll] = {
          name: d.name, dim: d.dim, metric: d.metric, index: d.index.type,
          hnsw_m: d.index.m || 0, hnsw_ef_construction: d.index.efConstruction || 0, count: num(d.count),
        };
        const items = {};
        for (let i = 0; i < 200; i++) {
          const rec = r.get(coll, fixtureId(i));
          items[rec.id] = { vector: Array.from(rec.vector, bits),
            metadata: rec.metadata === null ? null : JSON.stringify(rec.metadata) };
        }
        out.items[coll] = items;
        out.search[coll] = [];
        for (let q = 0; q < 5; q++) {
          const hits = r.search(coll, splitmixVector(77 + q, 16), 10);
          out.search[coll].push(hits.map((h) => [h.id, bits(h.distance)]));
        }
      }
    });
  } finally {
    db.close();
  }
  return out;
}

function setupLive(db) {
  const have = db.read((r) => r.listCollections());
  if (have.includes('live') && have.includes('book')) return;
  db.write((w) => {
    const now = w.listCollections();
    if (!now.includes('live')) w.createCollection('live', { dim: 8, metric: 'l2', index: 'hnsw' });
    if (!now.includes('book')) w.createCollection('book', { dim: 1, metric: 'l2', index: 'flat' });
  }, { timeoutMs: Infinity });
}

const nowS = () => performance.now() / 1000;

function writer(path, seconds, ackfile) {
  let commits = 0;
  let last = 0;
  const deadline = nowS() + seconds;
  const db = sextant.open(path, { sync: 'full' });
  try {
    setupLive(db);
    const ack = fs.openSync(ackfile, 'a', 0o644);
    try {
      while (nowS() < deadline) {
        const g = db.write((w) => { // commits when the function returns
          const gen = num(w.userVersion()) + 1;
          const ids = [];
          const vecs = new Float32Array(20 * 8);
          for (let j = 0; j < 20; j++) {
            ids.push(`g${gen}-${j}`);
            vecs.set(splitmixVector(gen * 100 + j, 8), j * 8);
          }
          w.upsert('live', { ids, vectors: vecs });
          if (gen > 3) w.delete('live', [0, 1, 2, 3, 4].map((j) => `g${gen - 3}-${j}`));
          const count = num(w.count('live'));
          w.upsert('book', 'state', [gen], { gen, count });
          w.setUserVersion(gen);
          return gen;
        }, { timeoutMs: Infinity });
        fs.writeSync(ack, `${g}\n`);
        fs.fsyncSync(ack);
        commits += 1;
        last = g;
      }
    } finally {
      fs.closeSync(ack);
    }
  } finally {
    db.close();
  }
  return { commits, last };
}

function sameBits(a, b) {
  if (a.length !== b.length) return false;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return ua.every((x, i) => x === ub[i]);
}

/** Invariants 1-3 of PROTOCOL.md in one read session; returns its generation. */
function checkSession(r) {
  const g = num(r.userVersion());
  const names = r.listCollections();
  if (!names.includes('book') || !names.includes('live')) {
    if (g !== 0) throw new Failure(`generation ${g} without the live/book collections`);
    return g;
  }
  let state = null;
  try {
    state = r.get('book', 'state').metadata;
  } catch (e) {
    if (!(e instanceof sextant.SextantError && e.code === 'NOT_FOUND')) throw e;
  }
  const count = num(r.count('live'));
  if (state === null) {
    if (g !== 0 || count !== 0) throw new Failure(`generation ${g}, count ${count}, but no state record`);
    return g;
  }
  if (state.gen !== g || state.count !== count) {
    throw new Failure(`session sees user version ${g} and count ${count}; state says ${JSON.stringify(state)}`);
  }
  if (g > 0) {
    const a = r.get('live', `g${g}-0`).vector;
    const b = r.get('live', `g${g}-0`).vector;
    if (!sameBits(a, b) || !sameBits(a, splitmixVector(g * 100, 8))) {
      throw new Failure(`g${g}-0 read twice differs, or differs from what was written`);
    }
    const hits = r.search('live', splitmixVector(g * 7 + 1, 8), 5);
    if (hits.length !== Math.min(5, count) || hits.some((h, i) => i > 0 && hits[i - 1].distance > h.distance)) {
      throw new Failure(`search returned ${hits.length} hits of ${count}, or out of order`);
    }
  }
  return g;
}

function reader(path, seconds) {
  let sessions = 0;
  let maxGen = 0;
  const deadline = nowS() + seconds;
  const db = sextant.open(path, { readOnly: true });
  try {
    while (nowS() < deadline) {
      maxGen = Math.max(maxGen, db.read(checkSession));
      sessions += 1;
    }
  } finally {
    db.close();
  }
  return { sessions, max_gen: maxGen };
}

function verify(path, ackfile) {
  let acked = 0;
  if (fs.existsSync(ackfile)) {
    const lines = fs.readFileSync(ackfile, 'ascii').split('\n').filter((l) => l.trim());
    if (lines.length) acked = parseInt(lines[lines.length - 1], 10);
  }
  const db = sextant.open(path);
  let g;
  try {
    db.check();
    g = db.read(checkSession);
  } finally {
    db.close();
  }
  if (g < acked) throw new Failure(`generation ${g} after recovery, but ${acked} was acknowledged`);
  return { gen: g, acked };
}

function main(argv) {
  const [cmd, ...args] = argv;
  const commands = {
    'write-fixture': [1, () => writeFixture(args[0])],
    dump: [1, () => dump(args[0])],
    writer: [3, () => writer(args[0], Number(args[1]), args[2])],
    reader: [2, () => reader(args[0], Number(args[1]))],
    verify: [2, () => verify(args[0], args[1])],
  };
  const c = commands[cmd];
  if (!c || args.length < c[0]) {
    process.stderr.write(`interop_node ${cmd}: unknown command or wrong arguments\n`);
    return 2;
  }
  let res;
  try {
    res = c[1]();
  } catch (e) {
    const known = e instanceof sextant.SextantError || e instanceof Failure;
    const kind = e instanceof sextant.SextantError ? e.code : e.constructor.name;
    process.stderr.write(`interop_node ${cmd}: ${kind}: ${e.message}\n${known ? '' : `${e.stack}\n`}`);
    return 1;
  }
  process.stdout.write(`${JSON.stringify(res)}\n`);
  return 0;
}

process.exitCode = main(process.argv.slice(2));
