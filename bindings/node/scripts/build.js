#!/usr/bin/env node
// Builds build/Release/sextant.node with node-gyp, offline: the Node headers come
// from this Node's own installation (<prefix>/include/node, passed as --nodedir),
// or, when it has none, from the npm package node-api-headers laid out as a nodedir
// in node_modules/.sextant-nodedir. node-gyp is never allowed to download headers.
//
// Usage: node scripts/build.js [--debug]
'use strict';
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const here = path.resolve(__dirname, '..');

function nodeDir() {
  if (process.env.SX_NODEDIR) return process.env.SX_NODEDIR;
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  // SX_NODE_HEADERS=npm skips the installed headers (to test the fallback).
  for (const p of process.env.SX_NODE_HEADERS === 'npm' ? [] : [prefix, '/usr', '/usr/local']) {
    if (fs.existsSync(path.join(p, 'include', 'node', 'common.gypi')) &&
        fs.existsSync(path.join(p, 'include', 'node', 'node_api.h'))) return p;
  }
  // A nodedir made of node-api-headers (Node-API only: all this addon uses).
  let inc;
  try {
    inc = require('node-api-headers').include_dir;
  } catch (e) {
    throw new Error('no Node headers found: install them with your Node (e.g. the nodejs-dev ' +
                    'package), or `npm install node-api-headers`, or set SX_NODEDIR');
  }
  const dir = path.join(here, 'node_modules', '.sextant-nodedir'); // node-gyp rebuild empties build/
  const dst = path.join(dir, 'include', 'node');
  fs.mkdirSync(dst, { recursive: true });
  for (const f of fs.readdirSync(inc)) fs.copyFileSync(path.join(inc, f), path.join(dst, f));
  fs.writeFileSync(path.join(dst, 'common.gypi'),
    "{'variables': {'node_shared%': 'false', 'node_module_version%': ''}, " +
    "'target_defaults': {'default_configuration': 'Release', 'configurations': " +
    "{'Release': {'cflags': ['-O3']}, 'Debug': {'cflags': ['-g', '-O0']}}}}\n");
  fs.writeFileSync(path.join(dst, 'config.gypi'), "{'variables': {}}\n");
  return dir;
}

function nodeGyp() {
  // The pinned devDependency, else the one npm runs lifecycle scripts with, else npm's own.
  try {
    return require.resolve('node-gyp/bin/node-gyp.js');
  } catch (e) { /* not installed as a dependency */ }
  if (process.env.npm_config_node_gyp && fs.existsSync(process.env.npm_config_node_gyp)) {
    return process.env.npm_config_node_gyp;
  }
  const npmDir = path.resolve(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm');
  const p = path.join(npmDir, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  if (fs.existsSync(p)) return p;
  throw new Error('node-gyp not found: npm install node-gyp');
}

function main() {
  const dir = nodeDir();
  const gyp = nodeGyp();
  const args = [gyp, 'rebuild', `--nodedir=${dir}`, '--jobs=max'];
  if (process.argv.includes('--debug')) args.push('--debug');
  console.log(`sextant: building the addon (node-gyp, --nodedir=${dir})`);
  const r = spawnSync(process.execPath, args, {
    cwd: here,
    stdio: 'inherit',
    // No downloads: a missing header is an error, not a fetch.
    env: Object.assign({}, process.env, { npm_config_tarball: '', npm_config_dist_url: 'http://127.0.0.1:9/' }),
  });
  if (r.status !== 0) process.exit(r.status || 1);
}

main();
