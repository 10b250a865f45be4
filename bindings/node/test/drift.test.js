'use strict';
// The committed src/sextant_wrap.cxx is what SWIG 4.5.1 generates today from
// bindings/sextant.i + node_typemaps.i + node_async.i + core/include/sextant.h: the
// test regenerates it into a temporary file and fails on any difference (run
// `npm run generate` and commit). Without SWIG 4.5.1 it is skipped, unless
// SX_NODE_REQUIRE_SWIG=1 (run_tests.sh sets it, after installing SWIG from PyPI).
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');

const { generate, swig } = require('../scripts/generate');
const { tmpdir } = require('./helpers');

test('the committed generated wrapper matches the interface', (t) => {
  try {
    swig();
  } catch (e) {
    if (process.env.SX_NODE_REQUIRE_SWIG === '1') throw e;
    t.skip(`${e.message}: drift not checked`);
    return;
  }
  const out = path.join(tmpdir(t), 'sextant_wrap.cxx');
  generate(out);
  const want = fs.readFileSync(out, 'utf8');
  const have = fs.readFileSync(path.join(__dirname, '..', 'src', 'sextant_wrap.cxx'), 'utf8');
  if (want !== have) {
    const a = want.split('\n');
    const b = have.split('\n');
    let i = 0;
    while (i < a.length && a[i] === b[i]) i++;
    assert.fail(`src/sextant_wrap.cxx is stale: first difference at line ${i + 1}:\n` +
                `  generated: ${a[i]}\n  committed: ${b[i]}\nrun \`npm run generate\` in bindings/node and commit`);
  }
});
