#!/usr/bin/env node
// Regenerates src/sextant_wrap.cxx from bindings/sextant.i (with node_typemaps.i and
// node_async.i) with SWIG 4.5.1, the version the committed file was made with:
//   swig -javascript -napi -c++ -I<repo>/bindings -I<repo>/core/include \
//        -o src/sextant_wrap.cxx <repo>/bindings/sextant.i
// SWIG is $SWIG, else <repo>/build/node-swig-venv/bin/swig (run_tests.sh makes it
// with `pip install swig==4.5.1`), else `swig` on the PATH.
//
// Usage: node scripts/generate.js [--out FILE]   (default: src/sextant_wrap.cxx)
'use strict';
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const SWIG_VERSION = '4.5.1';
const here = path.resolve(__dirname, '..');
const repo = path.resolve(here, '..', '..');

function swig() {
  const cands = [process.env.SWIG, path.join(repo, 'build', 'node-swig-venv', 'bin', 'swig'), 'swig'].filter(Boolean);
  for (const c of cands) {
    const r = spawnSync(c, ['-version'], { encoding: 'utf8' });
    if (r.status === 0 && /SWIG Version (\S+)/.test(r.stdout)) {
      const v = /SWIG Version (\S+)/.exec(r.stdout)[1];
      if (v === SWIG_VERSION) return c;
      console.error(`generate.js: ${c} is SWIG ${v}, not ${SWIG_VERSION}; skipped`);
    }
  }
  throw new Error(`SWIG ${SWIG_VERSION} not found (pip install swig==${SWIG_VERSION}, or set SWIG)`);
}

function generate(out) {
  const args = ['-javascript', '-napi', '-c++', `-I${path.join(repo, 'bindings')}`,
    `-I${path.join(repo, 'core', 'include')}`, '-o', out, path.join(repo, 'bindings', 'sextant.i')];
  const r = spawnSync(swig(), args, { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`swig failed (exit ${r.status})`);
  // SWIG names its input by the path given; keep the committed file independent of
  // where the repository lies.
  const text = fs.readFileSync(out, 'utf8').split(repo + path.sep).join('');
  fs.writeFileSync(out, text);
}

module.exports = { generate, swig };

if (require.main === module) {
  const i = process.argv.indexOf('--out');
  const out = i > 0 ? path.resolve(process.argv[i + 1]) : path.join(here, 'src', 'sextant_wrap.cxx');
  generate(out);
  console.log(`generated ${path.relative(process.cwd(), out)}`);
}
