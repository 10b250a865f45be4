#!/usr/bin/env node
// Regenerates src/sextant_wrap.cxx from bindings/sextant.i (with node_typemaps.i and
// node_async.i) with SWIG 4.5.1, the version the committed file was made with:
//   swig -javascript -napi -c++ -I<repo>/bindings -I<repo>/core/include \
//        -o src/sextant_wrap.cxx <repo>/bindings/sextant.i
// SWIG is $SWIG, else <repo>/build/node-swig-venv/bin/swig (run_tests.sh makes it
// with `pip install swig==4.5.1`), else `swig` on the PATH.
//
// Usage: node scripts/generate.js [--out FILE] [--head]
//   --out FILE  where to write (default: src/sextant_wrap.cxx)
//   --head      read bindings/sextant.i and core/include/sextant.h as committed (git
//               HEAD) rather than from the work tree, e.g. while someone else's
//               uncommitted edits to them are in the tree
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

/** A copy of the inputs with sextant.i and sextant.h as committed (for --head). */
function headTree() {
  const os = require('os');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sx-node-gen-'));
  const show = (p) => {
    const r = spawnSync('git', ['-C', repo, 'show', `HEAD:${p}`], { encoding: 'utf8', maxBuffer: 1 << 26 });
    if (r.status !== 0) throw new Error(`git show HEAD:${p} failed: ${r.stderr}`);
    fs.mkdirSync(path.dirname(path.join(dir, p)), { recursive: true });
    fs.writeFileSync(path.join(dir, p), r.stdout);
  };
  show('bindings/sextant.i');
  show('core/include/sextant.h');
  fs.mkdirSync(path.join(dir, 'bindings', 'node'), { recursive: true });
  for (const f of ['node_typemaps.i', 'node_async.i']) {
    fs.copyFileSync(path.join(here, f), path.join(dir, 'bindings', 'node', f));
  }
  return dir;
}

function generate(out, opts = {}) {
  const base = opts.head ? headTree() : repo;
  const args = ['-javascript', '-napi', '-c++', `-I${path.join(base, 'bindings')}`,
    `-I${path.join(base, 'core', 'include')}`, '-o', out, path.join(base, 'bindings', 'sextant.i')];
  const r = spawnSync(swig(), args, { stdio: 'inherit' });
  if (opts.head) fs.rmSync(base, { recursive: true, force: true });
  if (r.status !== 0) throw new Error(`swig failed (exit ${r.status})`);
  // SWIG names its input by the path given; keep the committed file independent of
  // where the repository lies.
  const text = fs.readFileSync(out, 'utf8').split(base + path.sep).join('');
  fs.writeFileSync(out, text);
}

module.exports = { generate, swig };

if (require.main === module) {
  const i = process.argv.indexOf('--out');
  const out = i > 0 ? path.resolve(process.argv[i + 1]) : path.join(here, 'src', 'sextant_wrap.cxx');
  generate(out, { head: process.argv.includes('--head') });
  console.log(`generated ${path.relative(process.cwd(), out)}`);
}
