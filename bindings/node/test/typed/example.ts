// A typed example of the whole API, checked by `tsc --noEmit --strict` (test/typescript.test.js).
import * as sextant from '../..';
import { SextantError, type Hit, type BatchResults, type Record, type DbStats } from '../..';

async function main(path: string): Promise<void> {
  const db: sextant.Database = sextant.open(path, { sync: 'normal', threads: 1, pageSize: 4096 });

  db.write((w) => {
    w.createCollection('docs', { dim: 3, metric: 'cosine', index: 'hnsw', m: 16, efConstruction: 100 });
    w.upsert('docs', [{ id: 'a', vector: [1, 0, 0], metadata: { lang: 'en' } }, { id: 'b', vector: new Float32Array([0, 1, 0]) }]);
    w.upsert('docs', { ids: ['c'], vectors: new Float32Array([0, 0, 1]), metadata: [null] });
    w.upsert('docs', 'd', [1, 1, 0], { tags: ['x'] });
    const n: number = w.delete('docs', ['zz']);
    void n;
    w.setUserVersion(7n);
  });

  try {
    // @ts-expect-error: a transaction function must not return a Promise
    db.write(async (w) => w.count('docs'));
  } catch (e) {
    if (!(e instanceof TypeError)) throw e; // refused at run time too
  }

  const hits: Hit[] = db.read((r) => r.search('docs', [1, 0, 0], 2, { ef: 32 }));
  console.log(hits[0]?.id, hits[0]?.distance.toFixed(3));

  using r = db.beginRead();
  const rec: Record = r.get('docs', 'a');
  const v: Float32Array = rec.vector;
  console.log(rec.metadata?.['lang'], v.length, r.count('docs'), r.describe('docs').index.type, r.userVersion());
  try {
    // @ts-expect-error: read sessions have no upsert
    r.upsert('docs', []);
  } catch (e) {
    if (!(e instanceof SextantError && e.code === 'MISUSE')) throw e;
  }

  const ac = new AbortController();
  const found: Hit[] = await r.searchAsync('docs', new Float32Array([0, 1, 0]), 1, { signal: ac.signal });
  const batch: BatchResults = await r.searchBatchAsync('docs', [[1, 0, 0], [0, 0, 1]], 2);
  console.log(found.length, batch.ids[1]?.[0], batch.distances[0]?.[0]);
  const filtered: Hit[] = r.search('docs', [1, 0, 0], 2, { filter: { lang: { $in: ['en', 'fr'] } }, include: ['metadata', 'vector'], exact: true });
  const md: sextant.Metadata | null | undefined = filtered[0]?.metadata;
  const fv: Float32Array | undefined = filtered[0]?.vector;
  const fb: BatchResults = await r.searchBatchAsync('docs', [[1, 0, 0]], 2, { filter: '{"lang": "en"}', include: ['metadata'] });
  console.log(md, fv, fb.metadata?.[0]?.[0], fb.vectors);
  sextant.checkFilter({ lang: 'en' });
  try {
    // @ts-expect-error: include holds 'metadata' and 'vector' only
    r.search('docs', [1, 0, 0], 2, { include: ['ids'] });
  } catch (e) {
    if (!(e instanceof SextantError && e.code === 'INVALID_ARGUMENT')) throw e;
  }

  const w = await db.beginWriteAsync({ timeoutMs: 1000, signal: ac.signal });
  try {
    await w.upsertAsync('docs', { ids: ['e'], vectors: [[0.5, 0.5, 0]] });
    await w.commitAsync();
  } catch (e) {
    if (e instanceof SextantError && e.code === 'BUSY') console.log('busy:', e.message);
    else throw e;
  } finally {
    w[Symbol.dispose]();
  }

  const many: (Record | null)[] = db.read((rr) => rr.getMany('docs', ['a', 'nope']));
  let scanned = 0;
  for (const rec2 of r.scan('docs', { batchSize: 2 })) scanned += rec2.vector.length > 0 ? 1 : 0;
  console.log(many[1] === null, scanned);
  db.backup(process.argv[2] + '.bak', { overwrite: true });
  await db.backupAsync(process.argv[2] + '.bak2', { signal: ac.signal });

  const s: DbStats = db.stats();
  console.log(s.commits, s.readers, sextant.version(), sextant.formatVersion());
  if (typeof sextant.lowLevel['sx_db_compact'] === 'function') { // a core with compaction
    db.compact({ timeoutMs: 100 });
    await db.compactAsync({ signal: ac.signal });
    console.log(db.read((rr) => rr.space().reclaimableBytes));
  }
  db.check();
  db.checkpoint({ timeoutMs: 0 });
  await db.checkpointAsync();
  db.close();
}

main(process.argv[2] ?? '/tmp/example.sx').catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
