'use strict';
// Shared by the tests: temporary directories, fast deterministic vectors, a ticker
// that measures how long the event loop went without running a timer.
const fs = require('fs');
const os = require('os');
const path = require('path');

function tmpdir(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sx-node-'));
  if (t && typeof t.after === 'function') t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** n * dim floats in [-0.5, 0.5) from a xorshift32 seeded with seed. */
function randomVectors(n, dim, seed = 1) {
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

/** Starts a setInterval ticker; stop() returns {maxGapMs, ticks}. */
function ticker(everyMs = 5) {
  let last = performance.now();
  let maxGap = 0;
  let ticks = 0;
  const h = setInterval(() => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
    ticks++;
  }, everyMs);
  return {
    stop() {
      clearInterval(h);
      maxGap = Math.max(maxGap, performance.now() - last);
      return { maxGapMs: maxGap, ticks };
    },
  };
}

function envInt(name, dflt) {
  const v = process.env[name];
  return v === undefined || v === '' ? dflt : Number(v);
}

module.exports = { tmpdir, randomVectors, ticker, envInt };
