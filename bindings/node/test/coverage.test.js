'use strict';
// Every function of core/include/sextant.h is either wrapped by the generated module
// or %ignore'd on purpose (in bindings/sextant.i, node_typemaps.i or node_async.i), so
// a function added to the C API and forgotten in the interface fails here instead of
// silently missing from Node. The hand-written calls (%native) are there too.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');

const { lowLevel: L } = require('..');

const here = path.resolve(__dirname, '..');
const repo = path.resolve(here, '..', '..');

function read(p) {
  return fs.readFileSync(p, 'utf8');
}

test('the module covers sextant.h', () => {
  const header = read(path.join(repo, 'core', 'include', 'sextant.h')).replace(/\/\*[\s\S]*?\*\//g, '');
  const funcs = new Set();
  for (const m of header.matchAll(/^[A-Za-z_][\w \t*]*?\b(sx_[a-z0-9_]+)\s*\(/gm)) {
    if (!/^\s*(typedef|#)/.test(m[0])) funcs.add(m[1]);
  }
  assert.ok(funcs.size > 40, `found only ${funcs.size} functions in sextant.h`);
  const ignored = new Set();
  for (const f of [path.join(repo, 'bindings', 'sextant.i'), path.join(here, 'node_typemaps.i'), path.join(here, 'node_async.i')]) {
    for (const m of read(f).matchAll(/^%ignore\s+(\w+)\s*;/gm)) ignored.add(m[1]);
  }
  const missing = [...funcs].filter((f) => typeof L[f] !== 'function' && !ignored.has(f));
  assert.deepEqual(missing, [], `functions of sextant.h neither wrapped nor %ignore'd: ${missing.join(', ')}`);
  const stale = [...funcs].filter((f) => typeof L[f] === 'function' && ignored.has(f));
  assert.deepEqual(stale, [], `%ignore'd but wrapped: ${stale.join(', ')}`);
});

test('the hand-written calls are registered', () => {
  const natives = [...read(path.join(here, 'node_async.i')).matchAll(/^%native\((\w+)\)/gm)].map((m) => m[1]);
  assert.ok(natives.length >= 9);
  for (const n of natives) assert.equal(typeof L[n], 'function', n);
});
