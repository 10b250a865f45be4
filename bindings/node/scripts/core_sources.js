// The core's C sources, as core/CMakeLists.txt globs them (core/src/<layer>/*.c),
// relative to bindings/node, for binding.gyp.
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..', '..', '..', 'core', 'src');
const layers = ['common', 'os', 'lock', 'pager', 'index', 'collection', 'session', 'api'];
const out = [];
for (const layer of layers) {
  const dir = path.join(root, layer);
  for (const f of fs.readdirSync(dir).sort()) {
    if (f.endsWith('.c')) out.push(path.posix.join('..', '..', 'core', 'src', layer, f));
  }
}
module.exports = out;
