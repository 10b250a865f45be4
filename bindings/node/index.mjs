// The ES module entry of Sextant: the same objects as the CommonJS entry (index.js),
// so that `instanceof` and the one loaded addon are shared between both.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const sextant = require('./index.js');

export const {
  open, version, formatVersion, Database, ReadSession, WriteSession, SextantError, CODES, checkFilter, lowLevel,
} = sextant;
export default sextant;
