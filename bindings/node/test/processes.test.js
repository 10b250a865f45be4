'use strict';
// Processes: reader processes check the snapshot invariant (invariant.js) while a
// writer process commits; the writer is killed with SIGKILL (twice, a new writer taking
// over after the first kill): the next writer gets the lock, no acknowledged commit is
// lost, the file passes its check, and the readers never saw a broken snapshot.
// Environment: SX_NODE_STRESS_SECONDS (default 3).
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');
const { spawn } = require('child_process');

const sextant = require('..');
const { checkSnapshot, commitOne } = require('./invariant');
const { tmpdir, envInt } = require('./helpers');

const CHILD = path.join(__dirname, 'child.js');
const B = 20;

function run(args) {
  const p = spawn(process.execPath, [CHILD, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  p.lines = [];
  let buf = '';
  p.stdout.on('data', (d) => {
    buf += d;
    const parts = buf.split('\n');
    buf = parts.pop();
    p.lines.push(...parts);
  });
  p.done = new Promise((res) => p.on('exit', (code, signal) => res({ code, signal })));
  return p;
}

function lastAck(p) {
  for (let i = p.lines.length - 1; i >= 0; i--) {
    const m = /^ack (\d+)$/.exec(p.lines[i]);
    if (m) return Number(m[1]);
  }
  return 0;
}

const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

test('readers and a writer in other processes; kill -9 of the writer loses no acknowledged commit', async (t) => {
  const dbPath = path.join(tmpdir(t), 'db.sx');
  const seconds = envInt('SX_NODE_STRESS_SECONDS', 3);
  let db = sextant.open(dbPath);
  commitOne(db, 1, B);
  db.close();

  const readers = [run(['reader', dbPath, String(seconds)]), run(['reader', dbPath, String(seconds)])];
  let acked = 1;
  for (let round = 0; round < 2; round++) {
    const w = run(['writer', dbPath, String(B)]);
    const t0 = Date.now();
    while (lastAck(w) < acked + 3 && Date.now() - t0 < 20000) await sleep(20);
    await sleep((seconds * 1000) / 3);
    w.kill('SIGKILL');
    const end = await w.done;
    assert.equal(end.signal, 'SIGKILL');
    assert.ok(lastAck(w) > acked, `writer ${round} acknowledged nothing new`);
    acked = lastAck(w);
    // Everything acknowledged is there, and the dead writer's lock is free.
    db = sextant.open(dbPath);
    const u = Number(db.read((r) => r.userVersion()));
    assert.ok(u >= acked, `acknowledged commit ${acked} lost (user version ${u})`);
    assert.equal(db.read((r) => checkSnapshot(r, B)), '');
    db.beginWrite({ timeoutMs: 2000 }).abort();
    db.check();
    db.close();
  }
  const outs = await Promise.all(readers.map(async (r) => ({ end: await r.done, lines: r.lines })));
  for (const o of outs) {
    assert.equal(o.end.code, 0, o.lines.join('\n'));
    assert.match(o.lines.join('\n'), /^ok \d+/m);
  }
  t.diagnostic(`acknowledged ${acked} commits over two killed writers; readers: ${outs.map((o) => o.lines.join(' ')).join(', ')}`);
});
