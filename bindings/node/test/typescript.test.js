'use strict';
// index.d.ts covers the API: the typed example (test/typed/example.ts) passes
// `tsc --noEmit --strict`, including the @ts-expect-error lines that check what the
// types refuse; then it is compiled and run against a fresh database.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');
const { spawnSync } = require('child_process');

const { tmpdir } = require('./helpers');

const here = path.resolve(__dirname, '..');
const typed = path.join(__dirname, 'typed');

function tsc(args) {
  const bin = require.resolve('typescript/bin/tsc', { paths: [here] });
  return spawnSync(process.execPath, [bin, ...args], { cwd: typed, encoding: 'utf8' });
}

test('tsc --noEmit --strict over the typed example', () => {
  const r = tsc(['--noEmit', '--strict', '-p', 'tsconfig.json']);
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

test('the typed example runs', (t) => {
  const out = path.join(here, 'build', 'typed-out'); // ../.. from there is this package
  const r = tsc(['-p', 'tsconfig.json', '--noEmit', 'false', '--outDir', out]);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const run = spawnSync(process.execPath, [path.join(out, 'example.js'), path.join(tmpdir(t), 'ex.sx')], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stdout + run.stderr);
  assert.match(run.stdout, /^a /m);
});
