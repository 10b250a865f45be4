'use strict';
// The snapshot invariant of the concurrency tests (child.js, workers.test.js,
// processes.test.js): commit number u adds B vectors '<u>-<i>' (dim 8) to the flat
// collection 'c', upserts 'head' with metadata {gen: u} and sets the user version to
// u. So a snapshot with user version u holds exactly u * B + 1 vectors, 'head' says u,
// and no hit comes from a commit after u.

function vectors(gen, b) {
  const v = new Float32Array(b * 8);
  for (let i = 0; i < v.length; i++) v[i] = ((gen * 31 + i * 7) % 97) / 97;
  return v;
}

function checkSnapshot(r, b) {
  const u = Number(r.userVersion());
  if (u === 0) return r.listCollections().length === 0 ? '' : 'collections before the first commit';
  const n = Number(r.count('c'));
  if (n !== u * b + 1) return `user version ${u} but ${n} vectors`;
  const head = r.get('c', 'head').metadata;
  if (!head || head.gen !== u) return `user version ${u} but head says ${JSON.stringify(head)}`;
  const hits = r.search('c', new Float32Array(8), 5);
  for (const h of hits) {
    if (h.id !== 'head' && Number(h.id.split('-')[0]) > u) return `hit ${h.id} from a later commit than ${u}`;
  }
  return '';
}

function commitOne(db, gen, b) {
  db.write((w) => {
    if (gen === 1) w.createCollection('c', { dim: 8, index: 'flat' });
    const ids = Array.from({ length: b }, (_, i) => `${gen}-${i}`);
    w.upsert('c', { ids, vectors: vectors(gen, b) });
    w.upsert('c', 'head', new Float32Array(8).fill(gen), { gen });
    w.setUserVersion(gen);
  }, { timeoutMs: Infinity });
}

module.exports = { checkSnapshot, commitOne, vectors };
