'use strict';
// Child processes of the tests (processes.test.js, eventloop.test.js):
//   node child.js hold   DB MS        takes the writer lock, prints "locked", holds it MS ms
//   node child.js writer DB B        commits for ever: each commit adds B vectors of dim 8
//                                    and sets the user version to its number; prints
//                                    "ack N" once commit N has returned (sync full)
//   node child.js reader DB SECONDS  checks the snapshot invariant in read sessions,
//                                    prints "ok N" (sessions checked) or "bad ..."
// The invariant (shared with workers.test.js): a snapshot with user version u holds
// exactly u * B vectors in 'c' plus the id 'head' whose metadata says {gen: u}.
const sextant = require('..');
const { checkSnapshot, commitOne } = require('./invariant');

const [mode, dbPath, arg] = process.argv.slice(2);

if (mode === 'hold') {
  const db = sextant.open(dbPath);
  const w = db.beginWrite();
  process.stdout.write('locked\n');
  setTimeout(() => {
    w.abort();
    db.close();
  }, Number(arg));
} else if (mode === 'writer') {
  const b = Number(arg);
  const db = sextant.open(dbPath);
  let gen = Number(db.read((r) => r.userVersion()));
  for (;;) {
    gen++;
    commitOne(db, gen, b);
    process.stdout.write(`ack ${gen}\n`);
  }
} else if (mode === 'reader') {
  const b = 20;
  const db = sextant.open(dbPath);
  const until = Date.now() + Number(arg) * 1000;
  let n = 0;
  while (Date.now() < until) {
    const why = db.read((r) => checkSnapshot(r, b));
    if (why) {
      process.stdout.write(`bad ${why}\n`);
      process.exit(1);
    }
    n++;
  }
  process.stdout.write(`ok ${n}\n`);
  db.close();
}
