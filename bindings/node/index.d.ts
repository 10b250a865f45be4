// Type declarations of Sextant's Node binding (index.js / index.mjs).

/** The status names of the C API, as SextantError codes. */
export type ErrorCode =
  | 'NOT_FOUND' | 'EXISTS' | 'INVALID_ARGUMENT' | 'DIMENSION_MISMATCH' | 'READ_ONLY' | 'BUSY'
  | 'CLOSED' | 'MISUSE' | 'CORRUPT' | 'IO' | 'FULL' | 'NOMEM' | 'VERSION' | 'CANCELLED';

export declare const CODES: readonly ErrorCode[];

/** Every failure the core reports; `code` is the status name. Wrong JS types throw TypeError. */
export declare class SextantError extends Error {
  constructor(message: string, code: ErrorCode, options?: { cause?: unknown });
  readonly code: ErrorCode;
}

/** A 64-bit counter: a number up to Number.MAX_SAFE_INTEGER, a bigint above. */
export type Count = number | bigint;

/** A vector: a Float32Array (passed to the core without a copy) or numbers (converted). */
export type VectorLike = Float32Array | ArrayLike<number>;

/** A JSON object stored with a vector. */
export type Metadata = { [key: string]: unknown };

export interface OpenOptions {
  /** Open read-only; the database must exist (else NOT_FOUND). */
  readOnly?: boolean;
  /** Durability of commits (default 'full'). */
  sync?: 'full' | 'normal' | 'off';
  /** Most threads one call may use (batch search, HNSW linking); 0: CPUs up to 8; 1: calling thread only. */
  threads?: number;
  /** Page size of a new database: a power of two from 4096 to 65536. */
  pageSize?: number;
  /** Checkpoint after a commit once the WAL holds this many frames (default 1000). */
  autocheckpointFrames?: number;
  /** Cap on the WAL's length in frames. */
  walMaxFrames?: number;
}

export interface DbStats {
  pageSize: number;
  pageCount: Count;
  walFrames: Count;
  walBackfilled: Count;
  commits: Count;
  checkpoints: Count;
  readers: number;
  readerSlots: number;
  oldestReaderLag: Count;
  oldestReaderPid: number;
}

export interface SpaceStats {
  pageSize: number;
  pageCount: Count;
  freePages: Count;
  collectionPages: Count;
  liveBytes: Count;
  /** What compact() would make free, estimated. */
  reclaimableBytes: Count;
}

export interface CollectionOptions {
  dim: number;
  metric?: 'l2' | 'ip' | 'cosine';
  index?: 'hnsw' | 'flat';
  /** HNSW links per node (default 16). */
  m?: number;
  /** HNSW candidate list while building (default 200). */
  efConstruction?: number;
  /** HNSW only (default 'none'): 'int8' keeps an 8-bit code per vector that searches
   * walk over; the final candidates are measured again exactly. */
  quantization?: 'none' | 'int8';
}

export interface CollectionInfo {
  name: string;
  dim: number;
  metric: 'l2' | 'ip' | 'cosine';
  index: { type: 'flat' } | { type: 'hnsw'; m: number; efConstruction: number; quantization: 'none' | 'int8' };
  count: Count;
}

export interface CollectionStats {
  count: Count;
  slots: Count;
  dead: Count;
  free: Count;
}

export interface Hit {
  id: string;
  /** Smaller is closer. */
  distance: number;
  /** With `include: ['metadata']`: the hit's metadata, parsed (null when it has none). */
  metadata?: Metadata | null;
  /** With `include: ['vector']`: the hit's vector (a view of one buffer shared by the
   * call's hits). */
  vector?: Float32Array;
}

export interface BatchResults {
  /** ids[q]: query q's hits, closest first. */
  ids: string[][];
  /** distances[q][i]: the distance of ids[q][i] (views of one buffer). */
  distances: Float32Array[];
  /** With `include: ['metadata']`: metadata[q][i] is the metadata of ids[q][i] (null: none). */
  metadata?: (Metadata | null)[][];
  /** With `include: ['vector']`: vectors[q][i] is the vector of ids[q][i] (views of one buffer). */
  vectors?: Float32Array[][];
}

/** A filter over metadata (the language of sextant.h): `{field: value}` (equality),
 * `{field: {$eq|$ne|$gt|$gte|$lt|$lte: v}}`, `{field: {$in|$nin: [...]}}`,
 * `{field: {$exists: boolean}}`, `{$and: [...]}`, `{$or: [...]}`, `{$not: {...}}`;
 * `"a.b"` names field b of object a. */
export type Filter = { [key: string]: unknown };

/** What hits may carry besides id and distance. */
export type Include = 'metadata' | 'vector';

export interface Record {
  id: string;
  vector: Float32Array;
  metadata: Metadata | null;
}

export interface ScanOptions {
  /** Start after this id (bytewise); resumes an interrupted walk. */
  after?: string;
  /** Records read per batch (default 1000). */
  batchSize?: number;
}

export interface BackupOptions {
  /** Replace an existing file at the destination (else EXISTS); a database that a
   * handle, in any process, has open there is BUSY. */
  overwrite?: boolean;
}

export interface SearchOptions {
  /** HNSW candidate list size (at least k); default max(k, 64). */
  ef?: number;
  /** For searchBatch with a flat Float32Array: the dimension (default: the collection's). */
  dim?: number;
  /** Most threads a batch search may use (default: the database's `threads`; 1: one). */
  threads?: number;
  /** Only hits whose metadata matches: an object (JSON.stringify'd) or JSON text. An
   * invalid filter throws (rejects) with code 'INVALID_ARGUMENT'. */
  filter?: Filter | string | null;
  /** Hits carry their metadata and/or vector, read in the same call. */
  include?: Include[];
  /** Exact search (a scan of every matching item), whatever the index. */
  exact?: boolean;
}

export interface AsyncSearchOptions extends SearchOptions {
  /** Cancels the search (the promise rejects with code 'CANCELLED'). */
  signal?: AbortSignal;
}

export interface Item {
  id: string;
  vector: VectorLike;
  metadata?: Metadata | null;
}

export interface Columns {
  ids: string[];
  /** n * dim values (a flat Float32Array is passed without a copy), or n vectors. */
  vectors: Float32Array | VectorLike[];
  metadata?: (Metadata | null | undefined)[];
}

/** What both kinds of session can do. */
export interface SessionReads {
  listCollections(): string[];
  describe(name: string): CollectionInfo;
  count(collection: string): Count;
  collectionStats(collection: string): CollectionStats;
  get(collection: string, id: string): Record;
  /** Records in the order asked; null where an id is absent. */
  getMany(collection: string, ids: string[]): (Record | null)[];
  /** Every live record, ascending id order (a read session: its snapshot). */
  scan(collection: string, opts?: ScanOptions): Generator<Record, void, undefined>;
  search(collection: string, query: VectorLike, k: number, opts?: SearchOptions): Hit[];
  searchBatch(collection: string, queries: Float32Array | VectorLike[], k: number, opts?: SearchOptions): BatchResults;
  /** search() on the libuv thread pool. */
  searchAsync(collection: string, query: VectorLike, k: number, opts?: AsyncSearchOptions): Promise<Hit[]>;
  searchBatchAsync(collection: string, queries: Float32Array | VectorLike[], k: number,
                   opts?: AsyncSearchOptions): Promise<BatchResults>;
  userVersion(): Count;
}

/** A stable snapshot of everything committed before it began. */
export declare class ReadSession implements SessionReads {
  private constructor();
  listCollections(): string[];
  describe(name: string): CollectionInfo;
  count(collection: string): Count;
  collectionStats(collection: string): CollectionStats;
  get(collection: string, id: string): Record;
  /** Records in the order asked; null where an id is absent. */
  getMany(collection: string, ids: string[]): (Record | null)[];
  /** Every live record, ascending id order (a read session: its snapshot). */
  scan(collection: string, opts?: ScanOptions): Generator<Record, void, undefined>;
  search(collection: string, query: VectorLike, k: number, opts?: SearchOptions): Hit[];
  searchBatch(collection: string, queries: Float32Array | VectorLike[], k: number, opts?: SearchOptions): BatchResults;
  searchAsync(collection: string, query: VectorLike, k: number, opts?: AsyncSearchOptions): Promise<Hit[]>;
  searchBatchAsync(collection: string, queries: Float32Array | VectorLike[], k: number,
                   opts?: AsyncSearchOptions): Promise<BatchResults>;
  userVersion(): Count;
  /** How the snapshot's file space is used. */
  space(): SpaceStats;
  /** Ends the session (idempotent). */
  end(): void;
  [Symbol.dispose](): void;
}

/** The one writer of a database, across all processes. Its calls run one at a time. */
export declare class WriteSession implements SessionReads {
  private constructor();
  readonly isOpen: boolean;
  listCollections(): string[];
  describe(name: string): CollectionInfo;
  count(collection: string): Count;
  collectionStats(collection: string): CollectionStats;
  get(collection: string, id: string): Record;
  /** Records in the order asked; null where an id is absent. */
  getMany(collection: string, ids: string[]): (Record | null)[];
  /** Every live record, ascending id order (a read session: its snapshot). */
  scan(collection: string, opts?: ScanOptions): Generator<Record, void, undefined>;
  search(collection: string, query: VectorLike, k: number, opts?: SearchOptions): Hit[];
  searchBatch(collection: string, queries: Float32Array | VectorLike[], k: number, opts?: SearchOptions): BatchResults;
  searchAsync(collection: string, query: VectorLike, k: number, opts?: AsyncSearchOptions): Promise<Hit[]>;
  searchBatchAsync(collection: string, queries: Float32Array | VectorLike[], k: number,
                   opts?: AsyncSearchOptions): Promise<BatchResults>;
  userVersion(): Count;
  createCollection(name: string, opts: CollectionOptions): void;
  dropCollection(name: string): void;
  upsert(collection: string, items: Item[]): void;
  upsert(collection: string, columns: Columns): void;
  upsert(collection: string, id: string, vector: VectorLike, metadata?: Metadata | null): void;
  upsertAsync(collection: string, items: Item[]): Promise<void>;
  upsertAsync(collection: string, columns: Columns): Promise<void>;
  upsertAsync(collection: string, id: string, vector: VectorLike, metadata?: Metadata | null): Promise<void>;
  /** Returns how many of the ids existed. */
  delete(collection: string, ids: string | string[]): number;
  commit(): void;
  commitAsync(): Promise<void>;
  abort(): void;
  setUserVersion(value: number | bigint): void;
  /** Aborts the session if still open. */
  [Symbol.dispose](): void;
}

export interface BeginWriteOptions {
  /** Wait for the writer lock this long (sync default 5000; 0: no wait; Infinity: for ever). */
  timeoutMs?: number;
}

export interface BeginWriteAsyncOptions {
  /** Default: wait for ever. */
  timeoutMs?: number;
  /** Stops waiting (the promise rejects with code 'CANCELLED'). */
  signal?: AbortSignal;
}

/** Refuses a function that returns a Promise (as better-sqlite3 does). */
type NotAPromise<T> = T extends PromiseLike<unknown> ? never : T;

export declare class Database {
  private constructor();
  readonly path: string;
  beginRead(): ReadSession;
  beginWrite(opts?: BeginWriteOptions): WriteSession;
  beginWriteAsync(opts?: BeginWriteAsyncOptions): Promise<WriteSession>;
  /** Runs fn on a fresh snapshot and ends the session. */
  read<T>(fn: (r: ReadSession) => NotAPromise<T>): T;
  /** Runs fn in a write session: commits when it returns, aborts when it throws. */
  write<T>(fn: (w: WriteSession) => NotAPromise<T>, opts?: BeginWriteOptions): T;
  checkpoint(opts?: BeginWriteOptions): void;
  checkpointAsync(opts?: { timeoutMs?: number }): Promise<void>;
  /** An atomic copy of the latest snapshot at dest, while other sessions go on. */
  backup(dest: string, opts?: BackupOptions): void;
  /** onProgress(donePages, totalPages) is called on the main thread as the copy goes. */
  backupAsync(dest: string, opts?: BackupOptions & { signal?: AbortSignal; onProgress?: (done: Count, total: Count) => void }): Promise<void>;
  /** Rewrites every collection densely (one write session); waits up to timeoutMs (default 5000). */
  compact(opts?: BeginWriteOptions): void;
  /** onProgress(recordsRewritten, liveRecords) is called on the main thread as it goes. */
  compactAsync(opts?: BeginWriteAsyncOptions & { onProgress?: (done: Count, total: Count) => void }): Promise<void>;
  stats(): DbStats;
  /** Throws CORRUPT naming the first problem. */
  check(): void;
  /** Idempotent; ends the database's sessions. */
  close(): void;
  [Symbol.dispose](): void;
}

export declare function open(path: string, opts?: OpenOptions): Database;
export declare function version(): string;
export declare function formatVersion(): number;
/** Checks a filter without a database: throws a SextantError with code
 * 'INVALID_ARGUMENT' naming the offending part when it is invalid. */
export declare function checkFilter(filter: Filter | string): void;
/** The SWIG-generated low-level module (the C API one to one). */
export declare const lowLevel: { [name: string]: unknown };
