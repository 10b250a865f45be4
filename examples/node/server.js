#!/usr/bin/env node
// A search service over one Sextant file with node:http and the binding's async API:
// each request begins a read session (a stable snapshot of everything committed
// before it began, never waiting for the writer) and searches it on the libuv thread
// pool, so the event loop keeps serving while searches run. Another process (ingest.js,
// or the Python or Go ingest) upserts into the same file at the same time; no lock
// of our own anywhere.
//
//   node server.js --db vectors.sx [--port 8080] [--workers 4]     (or PORT=8080)
//
// --workers N runs N server processes (node:cluster) on the one port, each with its own
// Database handle on the same file, as uvicorn --workers does for the Python example.
// GET/POST /search and GET /health, as described in examples/README.md. Binds
// 127.0.0.1 only.
'use strict';
const cluster = require('node:cluster');
const http = require('node:http');
const path = require('node:path');
const { parseArgs } = require('node:util');
const sextant = require(path.join(__dirname, '..', '..', 'bindings', 'node'));

const { values: opt } = parseArgs({
  options: {
    db: { type: 'string', default: 'vectors.sx' },
    collection: { type: 'string', default: 'docs' },
    port: { type: 'string', default: process.env.PORT || '8080' },
    workers: { type: 'string', default: '1' },
  },
});
const workers = Number(opt.workers);

let db; // this process's handle on the file (each cluster worker opens its own)

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

// Count, generation and hits all come from one snapshot.
async function snapshot(query, k, ef) {
  const r = db.beginRead();
  try {
    const out = { ids: [], distances: [], count: 0, generation: Number(r.userVersion()), pid: process.pid };
    let count;
    try {
      count = r.count(opt.collection);
    } catch (e) {
      if (e.code === 'NOT_FOUND') return out; // the ingest has not created it yet
      throw e;
    }
    out.count = Number(count);
    if (query) {
      const hits = await r.searchAsync(opt.collection, query, k, ef ? { ef } : undefined);
      for (const h of hits) {
        out.ids.push(h.id);
        out.distances.push(h.distance);
      }
    }
    return out;
  } finally {
    r.end();
  }
}

function readBody(req, limit = 1 << 20) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > limit) reject(Object.assign(new Error('body too large'), { status: 413 }));
      else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function badRequest(message) {
  return Object.assign(new Error(message), { status: 400, code: 'INVALID_ARGUMENT' });
}

async function handle(req, res) {
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname === '/health' && req.method === 'GET') {
    const s = await snapshot(null);
    return send(res, 200, { status: 'ok', count: s.count, generation: s.generation, pid: s.pid });
  }
  if (url.pathname !== '/search') return send(res, 404, { error: 'NOT_FOUND', message: 'no such path' });
  let vector, k = 10, ef;
  if (req.method === 'POST') {
    let body;
    try {
      body = JSON.parse(await readBody(req));
    } catch (e) {
      throw e.status ? e : badRequest('bad JSON body: ' + e.message);
    }
    ({ vector, k = 10, ef } = body || {});
  } else if (req.method === 'GET') {
    vector = (url.searchParams.get('vector') || '').split(',').map(Number);
    if (url.searchParams.has('k')) k = Number(url.searchParams.get('k'));
    if (url.searchParams.has('ef')) ef = Number(url.searchParams.get('ef'));
  } else {
    return send(res, 405, { error: 'MISUSE', message: 'GET or POST' });
  }
  if (!Array.isArray(vector) || vector.length === 0 || !vector.every((x) => typeof x === 'number' && Number.isFinite(x)))
    throw badRequest('vector must be a non-empty array of numbers');
  if (!Number.isInteger(k) || k < 1 || k > 1000) throw badRequest('need 1 <= k <= 1000');
  if (ef !== undefined && (!Number.isInteger(ef) || ef < 1 || ef > 10000)) throw badRequest('need 1 <= ef <= 10000');
  send(res, 200, await snapshot(new Float32Array(vector), k, ef));
}

function serve() {
  db = sextant.open(opt.db); // creates the file if the ingest has not yet
  const server = http.createServer((req, res) => {
    handle(req, res).catch((e) => {
      // The core's errors carry the status name (DIMENSION_MISMATCH, ...) and one line.
      const status = e.status || (e.code === 'DIMENSION_MISMATCH' || e.code === 'INVALID_ARGUMENT' ? 400 : 500);
      send(res, status, { error: e.code || 'ERROR', message: e.message });
    });
  });
  server.keepAliveTimeout = 30000;
  server.listen(Number(opt.port), '127.0.0.1', () => {
    console.error(`server.js: pid ${process.pid} serving ${opt.db} on http://127.0.0.1:${server.address().port}`);
  });
  let closing = false;
  function shutdown() {
    if (closing) return;
    closing = true;
    server.close();
    server.closeAllConnections();
    db.close(); // ends the read sessions of requests still in flight (they answer 500)
    if (cluster.isWorker) cluster.worker.disconnect(); // the IPC channel would keep it alive
  }
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

if (workers > 1 && cluster.isPrimary) {
  // The primary only starts and stops the workers; it never opens the database.
  let stopping = false;
  for (let i = 0; i < workers; i++) cluster.fork();
  cluster.on('exit', (w, code, sig) => {
    if (!stopping) console.error(`server.js: worker ${w.process.pid} exited (${sig || code})`);
    if (Object.keys(cluster.workers).length === 0) process.exit(stopping ? 0 : 1);
  });
  const stop = () => {
    stopping = true;
    for (const w of Object.values(cluster.workers)) w.process.kill('SIGTERM');
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  serve();
}
