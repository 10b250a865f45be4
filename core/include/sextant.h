/**
 * @file sextant.h
 * @brief Sextant: an embedded vector database. This header is the whole public
 * contract: what is not declared here is not API.
 *
 * @section objects Objects and their lifetimes
 *
 * - ::sx_db, a database handle: one open database file. Thread-safe: any number of
 *   threads may use one handle at once. Owned by the caller until sx_db_free().
 * - ::sx_read, a read session: a stable snapshot of everything committed before it
 *   began. Thread-safe: several threads may read through one session at once. It
 *   never waits for the writer and never blocks it.
 * - ::sx_write, a write session: the single writer of a database across every
 *   process on the host. Use it from one thread at a time (any thread; it is not
 *   tied to the thread that began it). A call that overlaps another call on the same
 *   write session (from another thread, or from a cancel hook) fails at once with
 *   ::SX_MISUSE and changes nothing; the call already running is unaffected.
 * - ::sx_cancel, a cancel token: set from any thread (or a signal handler) to stop
 *   the calls it was passed to; see @ref cancel.
 *
 * Every handle is reference counted. "Close" (sx_db_close(), sx_read_end(),
 * sx_write_commit(), sx_write_abort()) ends what the handle stands for and is
 * idempotent where noted; afterwards every call on the handle fails with
 * ::SX_CLOSED. "Free" (sx_db_free(), sx_read_free(), sx_write_free()) gives back the
 * caller's reference: it closes the handle if still open, then releases memory
 * once nothing refers to it. Free accepts NULL. Frees may run in any order, on any
 * thread (garbage-collector finalizers), without harm. Closing a database ends its
 * sessions: an open write session is aborted, and later use of any of its sessions
 * fails with ::SX_CLOSED.
 *
 * @section errors Errors
 *
 * Every fallible call returns an ::sx_status; ::SX_OK is 0. Status names are frozen
 * (sx_status_name()). A call that fails changes nothing. Details come back through
 * an optional caller-owned ::sx_error, never through thread-local state, so a
 * session may hop threads between calls.
 *
 * @section threads Threads the library starts
 *
 * A batch search and the linking of an upserted batch into an HNSW index spread
 * their work over several threads, each call over its own: the calling thread plus
 * at most `threads - 1` short-lived helpers, where `threads` is
 * sx_open_options::threads of the handle (0: the number of online processors, at
 * most 8), overridden per search by sx_search_options::threads. 1 means the calling
 * thread only: bindings whose calls already run on a pool (Node's libuv pool, many
 * goroutines) pass 1 to avoid oversubscribing the machine. Nothing else starts
 * threads; the library keeps no thread between calls.
 *
 * @section cancel Cancellation
 *
 * A ::sx_cancel token, passed in sx_search_options::cancel_token or
 * sx_write_options::cancel_token, stops what the call is waiting for or computing
 * once the token is set (sx_cancel_set(), from any thread): a search between
 * candidate steps (at most a few milliseconds late), a wait for the writer lock
 * (sx_write_begin_opts(), sx_db_checkpoint_opts(); polled every 10 ms or less). The
 * call then fails with ::SX_CANCELLED and changes nothing. A commit, once started, is
 * not cancellable: it is atomic. The older cancel hook (sx_search_options::cancel) is
 * kept; it is called from the search's worker threads, several at once.
 *
 * @section counters 64-bit numbers
 *
 * Counts and sizes are uint64_t. In practice they stay far below 2^53 (a count of
 * vectors, pages or commits would need 9 * 10^15 of them to reach it), so bindings
 * to languages whose numbers are doubles (JavaScript) return them as exact numbers
 * when at most 2^53 - 1, and as big integers otherwise. The user version
 * (sx_write_set_user_version()) is application-defined and may use all 64 bits.
 *
 * @section filters Filters
 *
 * A search may be restricted to the items whose metadata matches a filter
 * (sx_search_options::filter): a JSON object in the style of Chroma and Pinecone.
 *
 * - `{"field": value}`: the field equals value (a string, number, boolean or null).
 * - `{"field": {"$eq": v}}`, `$ne`, `$gt`, `$gte`, `$lt`, `$lte`: comparisons. The
 *   operand of `$eq`/`$ne` is a scalar; that of `$gt`/`$gte`/`$lt`/`$lte` a number or
 *   a string.
 * - `{"field": {"$in": [v, ...]}}`, `$nin`: equal to one of (none of) the scalars.
 * - `{"field": {"$exists": true}}` (or false): the field is present (absent).
 * - `{"$and": [f, ...]}`, `{"$or": [f, ...]}` (non-empty arrays of filters),
 *   `{"$not": f}`.
 * - Several keys in one object, or several operators on one field, must all hold;
 *   `{}` matches everything. Logical operators nest at most 64 deep.
 * - `"a.b"` is field `b` of the object in field `a` (every dot separates a level; a
 *   key that contains a dot cannot be named).
 *
 * Semantics. Numbers compare as numbers (ints and floats alike, as doubles); strings
 * compare bytewise by their UTF-8 bytes (escapes decoded); booleans equal only
 * booleans, null only null. A comparison between different types is false and no
 * error (`{"n": "5"}` does not match n = 5); `$gt` and friends hold only between two
 * numbers or two strings. A field that holds an array matches `$eq`, `$in` and the
 * ranges when any element does, `$ne` and `$nin` when no element equals (elements
 * that are arrays or objects equal nothing). A field holding an object equals
 * nothing. A missing field (the path leads nowhere, through a non-object, or the
 * item has no metadata) matches `$ne`, `$nin` and `$exists: false`, never `$eq`,
 * `$in` or a range; a field holding null exists. `$not` negates its filter as a
 * whole, so `{"$not": {"a": 1}}` matches items without `a`.
 *
 * Errors. A filter that is not JSON, not an object, has an unknown `$` operator, an
 * operand of the wrong kind, an empty path part or a bad `$and`/`$or`/`$not` fails
 * the search with ::SX_INVALID_ARGUMENT (a one-line message naming the part) before
 * any work; sx_filter_check() tells the same without a database. A search whose
 * filter meets damaged stored metadata fails with ::SX_CORRUPT.
 *
 * Cost. A flat collection evaluates the filter on every live item. An HNSW
 * collection estimates the share of items that match from a sample of slots; when it
 * is small, it scans the matching items exactly, else it walks the graph through
 * items that do not match (they guide the walk but are never returned).
 * sx_search_options::exact forces the scan.
 *
 * @section fork fork()
 *
 * A handle that crosses fork() is usable in the child: on first use the child
 * re-opens the files and takes its own locks (it never shares the parent's). Sessions
 * that were open at the fork belong to the parent; in the child they fail with
 * ::SX_MISUSE. The parent is unaffected.
 */
#ifndef SEXTANT_H
#define SEXTANT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @name Versions */
/**@{*/
/** Library version, major. */
#define SX_VERSION_MAJOR 0
/** Library version, minor. */
#define SX_VERSION_MINOR 1
/** Library version, patch. */
#define SX_VERSION_PATCH 0
/** Library version as one number: major * 10000 + minor * 100 + patch. */
#define SX_VERSION_NUMBER (SX_VERSION_MAJOR * 10000 + SX_VERSION_MINOR * 100 + SX_VERSION_PATCH)
/** The on-disk format version this library writes (it also reads and writes files of
 * version 1, which have no page checksums). */
#define SX_FORMAT_VERSION 2

/** The library version as "major.minor.patch". Static storage; thread-safe. */
const char *sx_version(void);
/** The library version as SX_VERSION_NUMBER of the library actually linked. */
int sx_version_number(void);
/** The file format version the linked library writes (see ::SX_FORMAT_VERSION). */
int sx_format_version(void);
/**@}*/

/** @name Status codes and errors */
/**@{*/

/** Status of a call. Values and names are frozen: new ones may be added, none changed. */
typedef enum sx_status {
  SX_OK = 0,                 /**< success */
  SX_NOT_FOUND = 1,          /**< no such id, collection or database (when not creating) */
  SX_EXISTS = 2,             /**< already exists */
  SX_INVALID_ARGUMENT = 3,   /**< a bad value: name, id, option, NaN/Inf, k = 0, ... */
  SX_DIMENSION_MISMATCH = 4, /**< a vector's length differs from its collection's dimension */
  SX_READ_ONLY = 5,          /**< a write on a database opened read-only */
  SX_BUSY = 6,      /**< a lock was not available within the timeout, or the WAL is at its cap */
  SX_CLOSED = 7,    /**< the handle was closed or its session already ended */
  SX_MISUSE = 8,    /**< not allowed in this state (wrong handle, crossed a fork, ...) */
  SX_CORRUPT = 9,   /**< a file failed validation */
  SX_IO = 10,       /**< the operating system reported an I/O error */
  SX_FULL = 11,     /**< no space left on the device (or a file reached the process's size limit) */
  SX_NOMEM = 12,    /**< out of memory */
  SX_VERSION = 13,  /**< file format version not supported */
  SX_CANCELLED = 14 /**< a cancel hook stopped the call (an extension to the
                         conformance names; no conformance op produces it) */
} sx_status;

/** Number of status codes (one more than the largest). */
#define SX_STATUS_COUNT 15

/**
 * The stable name of a status ("OK", "NOT_FOUND", ..., the conformance names).
 * Unknown values give "UNKNOWN". Static storage; thread-safe.
 */
const char *sx_status_name(int status);

/** Capacity of sx_error::message, including the terminating NUL. */
#define SX_ERROR_MESSAGE_MAX 512

/**
 * Details of a failure, filled by the call that fails. Caller-owned (usually on the
 * stack); every fallible function that can say more than its status takes an
 * optional `sx_error *err` last and leaves it untouched on success (those that end
 * or free an object, or fill an options struct, return only a status). The message
 * is one line, no trailing period, naming the offending value, e.g. "database
 * '/data/x.sx' has format version 7; this library reads version 1".
 */
typedef struct sx_error {
  int code;                           /**< the ::sx_status returned */
  char message[SX_ERROR_MESSAGE_MAX]; /**< NUL-terminated, truncated if longer */
} sx_error;

/** An empty error (code SX_OK, empty message). */
#define SX_ERROR_INIT \
  {                   \
    0, {              \
      0               \
    }                 \
  }
/**@}*/

/** @name Cancel tokens (see @ref cancel) */
/**@{*/

/** A cancel token: one flag, set from any thread. Owned by the caller; it must
 * outlive every call it was passed to. */
typedef struct sx_cancel sx_cancel;

/** Makes a token, not set. @return ::SX_OK, ::SX_INVALID_ARGUMENT (`out` NULL), ::SX_NOMEM. */
sx_status sx_cancel_new(sx_cancel **out, sx_error *err);
/** Sets the token: calls using it stop and fail with ::SX_CANCELLED, and later calls
 * given it fail at once, until sx_cancel_reset(). Any thread; async-signal-safe;
 * idempotent; NULL is a no-op. */
void sx_cancel_set(sx_cancel *c);
/** Clears the token, so it can serve the next call. NULL is a no-op. */
void sx_cancel_reset(sx_cancel *c);
/** 1 if the token is set, else 0 (also for NULL). */
int sx_cancel_is_set(const sx_cancel *c);
/** Frees the token. NULL is a no-op. */
void sx_cancel_free(sx_cancel *c);
/**@}*/

/** @name Opening a database */
/**@{*/

/** Durability of commits. */
typedef enum sx_sync {
  /** A commit is on stable storage when commit returns (the default). A WAL frame
   * damaged later (a bad disk, a bad copy) with whole commits behind it makes the next
   * open fail with ::SX_CORRUPT instead of rolling those commits back (damage inside
   * the page image of a commit's last frame is told from a torn write only when the
   * next commit came through the same handle). */
  SX_SYNC_FULL = 0,
  /** A commit survives a process crash; power loss may lose the latest commits, never
   * consistency. The system writes unsynced pages back in any order, so a power cut
   * may (rarely: a lost block must lie inside one frame's page image) keep a later
   * commit whole behind a damaged earlier one; the next open then fails with
   * ::SX_CORRUPT, as for any damaged WAL, rather than roll back silently. */
  SX_SYNC_NORMAL = 1,
  /** No syncs at all, for bulk loads: a process crash loses nothing committed; power
   * loss may lose anything, including consistency (the next open may fail with
   * ::SX_CORRUPT, as under ::SX_SYNC_NORMAL). */
  SX_SYNC_OFF = 2
} sx_sync;

/** The name of a sync level ("full", "normal", "off"), or NULL for an unknown value. */
const char *sx_sync_name(int sync);
/** Parses a sync level's name; returns ::SX_OK or ::SX_INVALID_ARGUMENT naming `name`
 * ("unknown sync level 'x' (full, normal, off)"). */
sx_status sx_sync_parse(const char *name, sx_sync *out, sx_error *err);

/** Version of ::sx_open_options this header describes. */
#define SX_OPEN_OPTIONS_VERSION 3

/** Default of sx_open_options::wal_size_limit: 64 MiB. */
#define SX_WAL_SIZE_LIMIT_DEFAULT (64ull << 20)

/**
 * Options for sx_db_open(). Initialize with SX_OPEN_OPTIONS_INIT or
 * sx_open_options_init(), then set fields; zero fields mean "the default".
 */
typedef struct sx_open_options {
  /** Must be SX_OPEN_OPTIONS_VERSION (or an older version this library knows). */
  unsigned version;
  /** Nonzero: open read-only. The database must exist (else ::SX_NOT_FOUND); write
   * sessions fail with ::SX_READ_ONLY. The -wal and -shm files are still used; where
   * -shm cannot be made or written (a read-only file system, no write permission),
   * the handle builds a private wal-index in memory from the WAL files instead, which
   * is right only while no other process writes the database: the open fails with
   * ::SX_BUSY if another process has it open at that moment, and a writer that starts
   * later is not seen (as SQLite's immutable databases). */
  int read_only;
  /** Durability of commits on this handle; see ::sx_sync. */
  sx_sync sync;
  /** Page size in bytes for a new database: a power of two from 4096 to 65536;
   * 0 means 4096. Ignored when the database exists (its own page size is used). */
  uint32_t page_size;
  /** Checkpoint automatically after a commit once the WAL holds this many frames;
   * 0 means 1000. */
  uint32_t autocheckpoint_frames;
  /** Cap on the WAL's length in frames. A commit that would grow the WAL past it,
   * when a checkpoint cannot shrink it because a read session pins an old snapshot,
   * fails with ::SX_BUSY and a message naming the pinning reader; 0 means 1048576
   * frames (4 GiB with 4 KiB pages); at most 67108864 (2^26). A policy of this
   * handle's own commits only: recovery and readers always see every frame any
   * handle wrote. */
  uint32_t wal_max_frames;
  /** (Version 2.) Most threads one call on this handle may use: a batch search
   * (sx_collection_search_batch()) and the linking of upserted vectors into an HNSW
   * index (sx_write_upsert()). 0 means the number of online processors, at most 8;
   * 1 keeps every call on its calling thread. At most 64. */
  uint32_t threads;
  /** (Version 3.) Bytes each WAL file (`-wal`, `-wal2`) keeps once the WAL restarts,
   * as SQLite's `journal_size_limit`. When a checkpoint of this handle (explicit,
   * automatic, or at close) has copied every frame into the database file and no
   * read session reads from the WAL, a WAL file longer than this is cut to it, while
   * the database stays open: a bulk load does not leave its size twice on disk. Read
   * sessions in any process are never disturbed: while one still reads WAL frames,
   * the cut waits for a later checkpoint. Unlike the other fields, 0 is not "the
   * default" but "cut to empty"; the default (SX_OPEN_OPTIONS_INIT,
   * sx_open_options_init(), or a struct of version 1 or 2) is
   * ::SX_WAL_SIZE_LIMIT_DEFAULT; UINT64_MAX never cuts. Larger limits spare the next
   * commits the cost of growing the files again. */
  uint64_t wal_size_limit;
} sx_open_options;

/** Initializer for ::sx_open_options with every default. */
#define SX_OPEN_OPTIONS_INIT \
  { SX_OPEN_OPTIONS_VERSION, 0, SX_SYNC_FULL, 0, 0, 0, 0, SX_WAL_SIZE_LIMIT_DEFAULT }

/**
 * Initializes `opts` to the defaults for `version`.
 * @return ::SX_OK, or ::SX_INVALID_ARGUMENT for NULL or an unknown version.
 */
sx_status sx_open_options_init(sx_open_options *opts, unsigned version);

/** A database handle. Thread-safe. See @ref objects. */
typedef struct sx_db sx_db;

/**
 * Opens the database at `path`, creating it when it does not exist (unless
 * read-only). Uses the files `path`, `path-wal`, `path-wal2` and `path-shm`.
 *
 * Recovery (the first open after a crash) replays the WAL up to its last complete
 * commit: a torn tail (a commit cut short by the crash) is rolled back. A WAL
 * damaged where a crash cannot have torn it (a bad frame followed by whole frames up
 * to a commit) is not rolled back silently: the open fails with ::SX_CORRUPT naming
 * the file and frame. A WAL file that belongs to another database (each database has
 * an id, carried by its WAL headers) is ignored, as if absent, and never replayed.
 * @param out receives the handle; set to NULL on failure.
 * @param path file system path (UTF-8). Network file systems are refused (::SX_IO).
 * @param opts options, or NULL for the defaults.
 * @param err optional details on failure.
 * @return ::SX_OK; ::SX_NOT_FOUND (read-only and missing); ::SX_CORRUPT (not a
 *   Sextant file, or a damaged WAL); ::SX_VERSION (another format version);
 *   ::SX_INVALID_ARGUMENT; ::SX_IO, ::SX_FULL, ::SX_NOMEM.
 */
sx_status sx_db_open(sx_db **out, const char *path, const sx_open_options *opts, sx_error *err);

/**
 * Closes the database: aborts its write session, ends its read sessions, releases
 * its locks and maps (once calls running on other threads return). Idempotent:
 * closing again does nothing. Later calls on the handle fail with ::SX_CLOSED.
 * @return ::SX_OK, or ::SX_MISUSE for NULL.
 */
sx_status sx_db_close(sx_db *db);

/** Closes the database if still open and gives back the caller's reference. NULL is a no-op. */
void sx_db_free(sx_db *db);

/** The path the database was opened with. Valid until sx_db_free(); NULL for NULL. */
const char *sx_db_path(const sx_db *db);

/**
 * Copies WAL frames back into the database file, as far as the oldest snapshot
 * pinned by any read session in any process allows. Takes the writer lock, waiting
 * up to `timeout_ms` (negative: for ever).
 * @return ::SX_OK (even when a pinned snapshot kept it from finishing: see
 *   sx_db_stats_get()), ::SX_BUSY, ::SX_READ_ONLY, ::SX_CLOSED, ::SX_IO.
 */
sx_status sx_db_checkpoint(sx_db *db, int timeout_ms, sx_error *err);

/** Version of ::sx_write_options this header describes. */
#define SX_WRITE_OPTIONS_VERSION 1

/** How a call waits for the writer lock: sx_write_begin_opts(), sx_db_checkpoint_opts(). */
typedef struct sx_write_options {
  unsigned version; /**< SX_WRITE_OPTIONS_VERSION */
  /** Longest wait for the writer lock in milliseconds: 0 does not wait, negative waits
   * for ever (until cancelled). */
  int timeout_ms;
  /** Optional: once set, the wait ends with ::SX_CANCELLED. */
  sx_cancel *cancel_token;
} sx_write_options;

/** Initializer for ::sx_write_options: no wait, no token. */
#define SX_WRITE_OPTIONS_INIT \
  { SX_WRITE_OPTIONS_VERSION, 0, NULL }

/** Initializes `opts` to the defaults of `version`. @return ::SX_OK or ::SX_INVALID_ARGUMENT. */
sx_status sx_write_options_init(sx_write_options *opts, unsigned version);

/** sx_db_checkpoint() with the wait for the writer lock bounded by `opts` (NULL: no
 * wait). @return as sx_db_checkpoint(), and ::SX_CANCELLED. */
sx_status sx_db_checkpoint_opts(sx_db *db, const sx_write_options *opts, sx_error *err);

/** Figures about a database, across all processes using it. */
typedef struct sx_db_stats {
  /** Set by the caller to SX_DB_STATS_VERSION (the fields it knows); see SX_DB_STATS_INIT. */
  unsigned version;
  uint32_t page_size;         /**< bytes per page */
  uint64_t page_count;        /**< pages in the latest committed snapshot */
  uint64_t wal_frames;        /**< frames in the WAL since its last restart */
  uint64_t wal_backfilled;    /**< of those, frames already copied into the database file */
  uint64_t commits;           /**< commits since the shared index was last built */
  uint64_t checkpoints;       /**< checkpoints since the shared index was last built */
  uint32_t readers;           /**< read sessions pinning a snapshot right now */
  uint32_t reader_slots;      /**< reader slots in the shared index */
  uint64_t oldest_reader_lag; /**< commits between the oldest pinned snapshot and the latest */
  int32_t oldest_reader_pid;  /**< process id of that reader (0 if none); informational */
} sx_db_stats;

/** Version of ::sx_db_stats this header describes. */
#define SX_DB_STATS_VERSION 1
/** Initializer for an ::sx_db_stats to fill. */
#define SX_DB_STATS_INIT \
  { SX_DB_STATS_VERSION, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }

/** Fills `out` (whose `version` the caller set) with current figures.
 * @return ::SX_OK, ::SX_INVALID_ARGUMENT (`out` NULL or an unknown version),
 *   ::SX_CLOSED, ::SX_MISUSE. */
sx_status sx_db_stats_get(sx_db *db, sx_db_stats *out, sx_error *err);

/**
 * Checks the integrity of the latest committed snapshot: file header, every WAL
 * frame's checksum chain, the checksum of every page read from the database file,
 * page bounds, the free list, every collection's structure, and that every page is
 * in exactly one place (none in two structures, none lost: neither in use nor
 * free). Does not block the writer.
 * @return ::SX_OK when clean, ::SX_CORRUPT with the first problem in `err`.
 */
sx_status sx_db_check(sx_db *db, sx_error *err);
/**@}*/

/** @name Read sessions */
/**@{*/

/** A read session (snapshot). Thread-safe. See @ref objects. */
typedef struct sx_read sx_read;

/**
 * Begins a read session on the latest committed snapshot. Never waits for the
 * writer. Fails with ::SX_BUSY only if every reader slot in the shared index is in
 * use (see sx_db_stats::reader_slots).
 */
sx_status sx_read_begin(sx_db *db, sx_read **out, sx_error *err);

/** Ends the session, unpinning its snapshot. Idempotent. @return ::SX_OK or ::SX_MISUSE for NULL.
 */
sx_status sx_read_end(sx_read *r);

/** Ends the session if needed and gives back the caller's reference. NULL is a no-op. */
void sx_read_free(sx_read *r);

/**
 * The application-defined 64-bit number stored in the snapshot (0 in a new
 * database); see sx_write_set_user_version().
 */
sx_status sx_read_user_version(sx_read *r, uint64_t *out, sx_error *err);

/**@}*/

/** @name Write sessions */
/**@{*/

/** A write session. One per database across all processes. See @ref objects. */
typedef struct sx_write sx_write;

/**
 * Begins the write session, waiting for the writer lock up to `timeout_ms`
 * milliseconds (0: do not wait; negative: wait for ever).
 *
 * A thread that began the open write session of this handle (or is inside a
 * checkpoint of it) and asks to wait for ever, without a cancel token, would wait
 * for itself: it gets ::SX_BUSY at once. A bounded wait by that thread waits (another
 * thread may end the session it handed over). Other threads wait as for any other
 * writer. (A binding whose calls hop between OS threads, Go's goroutines,
 * serializes its writers itself.)
 * @return ::SX_OK; ::SX_BUSY when another session, in this or any process, holds the
 *   lock past the timeout, or the calling thread holds it; ::SX_READ_ONLY;
 *   ::SX_CLOSED; ::SX_IO (an earlier sync failure poisoned this handle).
 */
sx_status sx_write_begin(sx_db *db, int timeout_ms, sx_write **out, sx_error *err);

/** sx_write_begin() with the wait bounded by `opts` (timeout and cancel token; NULL:
 * no wait). @return as sx_write_begin(), and ::SX_CANCELLED. */
sx_status sx_write_begin_opts(sx_db *db, const sx_write_options *opts, sx_write **out,
                              sx_error *err);

/**
 * Commits: all of the session's changes become visible to new read sessions at once,
 * and are durable per the handle's sync level when this returns. Ends the session
 * whether it succeeds or not (on failure nothing is committed).
 * @return ::SX_OK; ::SX_CLOSED (already ended); ::SX_BUSY (WAL cap); ::SX_IO;
 *   ::SX_FULL; ::SX_NOMEM.
 */
sx_status sx_write_commit(sx_write *w, sx_error *err);

/** Discards the session's changes and ends it. @return ::SX_OK, ::SX_CLOSED if already ended. */
sx_status sx_write_abort(sx_write *w);

/** Aborts the session if still open and gives back the caller's reference. NULL is a no-op. */
void sx_write_free(sx_write *w);

/** Sets the application-defined number of sx_read_user_version(), as of this session. */
sx_status sx_write_set_user_version(sx_write *w, uint64_t value, sx_error *err);

/** Reads the application-defined number as this session sees it (its own change included). */
sx_status sx_write_user_version(sx_write *w, uint64_t *out, sx_error *err);
/**@}*/

/** @name Collections
 *
 * A database holds named collections of vectors. A collection has a fixed dimension,
 * a metric and an index type, chosen at creation. Each vector has a string id
 * (non-empty UTF-8, at most 255 bytes) and optional metadata (one JSON object).
 *
 * Names are 1 to 64 characters from `A-Z a-z 0-9 _ - .`, not beginning with `.`.
 * Distances: smaller is closer. ::SX_METRIC_L2 is the squared Euclidean distance,
 * ::SX_METRIC_IP is `1 - dot(a, b)`, ::SX_METRIC_COSINE is `1 - cos(a, b)`. Search
 * results are ordered by distance, ties broken by id in ascending byte order.
 *
 * Writes go through a write session (::sx_write) and name the collection. Reads go
 * through a collection view (::sx_collection) opened on a read session (it sees that
 * snapshot) or on a write session (it sees the session's own uncommitted changes).
 */
/**@{*/

/** Longest collection name, in bytes. */
#define SX_NAME_MAX 64
/** Longest id, in bytes. */
#define SX_ID_MAX 255
/** Largest vector dimension. */
#define SX_DIM_MAX 65536
/** Deepest nesting of metadata: the object itself is level 1, each object or array
 * inside it one more. Deeper metadata is ::SX_INVALID_ARGUMENT (bindings whose JSON
 * parsers recurse could store what they cannot read back). */
#define SX_METADATA_DEPTH_MAX 128

/** Distance metric of a collection. */
typedef enum sx_metric {
  SX_METRIC_L2 = 0,    /**< squared Euclidean distance */
  SX_METRIC_IP = 1,    /**< 1 - dot product */
  SX_METRIC_COSINE = 2 /**< 1 - cosine similarity (zero vectors are rejected) */
} sx_metric;

/** Index type of a collection. */
typedef enum sx_index_type {
  SX_INDEX_HNSW = 0, /**< approximate graph index (HNSW); the default */
  SX_INDEX_FLAT = 1  /**< exact scan */
} sx_index_type;

/** The name of an index type ("hnsw", "flat"), or NULL for an unknown value. */
const char *sx_index_type_name(int index);
/** Parses an index type's name; returns ::SX_OK or ::SX_INVALID_ARGUMENT naming `name`
 * ("unknown index type 'x' (flat, hnsw)"). */
sx_status sx_index_type_parse(const char *name, sx_index_type *out, sx_error *err);

/** How an HNSW collection stores the codes its searches walk over; fixed at create.
 * With ::SX_QUANTIZATION_INT8 each vector also has an 8-bit code (per-vector affine:
 * its own offset and scale, and its exact norm), written in the same commits as the
 * vector: searches walk the graph measuring codes, then measure the final candidates
 * exactly, so the distances returned are exact float32 ones. Inserting measures the
 * float32 vectors, so the graph is the one an unquantized collection builds. Codes
 * take dim + 16 bytes per vector beside its 4 * dim, and need dim + 16 to fit in a
 * page (dimension at most 4080 with 4 KiB pages). A single-query exact search of a
 * quantized collection in a read session (sx_search_options::exact, or a filtered
 * search that scans) reads the codes first: each gives a lower bound of its vector's
 * float32 distance (from the code's rounding error, at most half a step per
 * component), and only the vectors whose bound is within the k best so far are
 * measured. It returns the same hits and distances as a scan of the float32 vectors
 * while reading about a quarter of the bytes. Flat collections take only
 * ::SX_QUANTIZATION_NONE. */
typedef enum sx_quantization {
  SX_QUANTIZATION_NONE = 0, /**< float32 vectors only; the default */
  SX_QUANTIZATION_INT8 = 1  /**< an 8-bit code per vector for the HNSW walk, exact rerank */
} sx_quantization;

/** The name of a quantization ("none", "int8"), or NULL for an unknown value. */
const char *sx_quantization_name(int quantization);
/** Parses a quantization name; returns ::SX_OK or ::SX_INVALID_ARGUMENT naming `name`. */
sx_status sx_quantization_parse(const char *name, sx_quantization *out, sx_error *err);

/** The name of a metric ("l2", "ip", "cosine"), or NULL for an unknown value. */
const char *sx_metric_name(int metric);
/** Parses a metric name; returns ::SX_OK or ::SX_INVALID_ARGUMENT naming `name`. */
sx_status sx_metric_parse(const char *name, sx_metric *out, sx_error *err);

/** Version of ::sx_collection_options this header describes. */
#define SX_COLLECTION_OPTIONS_VERSION 2

/** Options for sx_write_create_collection(). Zero fields mean the default. A version 1
 * struct ends before `quantization` (read as ::SX_QUANTIZATION_NONE). */
typedef struct sx_collection_options {
  unsigned version;              /**< SX_COLLECTION_OPTIONS_VERSION */
  uint32_t dim;                  /**< dimension, 1 to SX_DIM_MAX; required */
  sx_metric metric;              /**< default ::SX_METRIC_L2 */
  sx_index_type index;           /**< default ::SX_INDEX_HNSW (as in the conformance format) */
  uint32_t hnsw_m;               /**< HNSW: links per node; 0 means 16 */
  uint32_t hnsw_ef_construction; /**< HNSW: candidate list size while building; 0 means 200 */
  sx_quantization quantization;  /**< version 2: default ::SX_QUANTIZATION_NONE (HNSW only) */
} sx_collection_options;

/** Initializer for ::sx_collection_options (dimension still to set). */
#define SX_COLLECTION_OPTIONS_INIT \
  { SX_COLLECTION_OPTIONS_VERSION, 0, SX_METRIC_L2, SX_INDEX_HNSW, 0, 0, SX_QUANTIZATION_NONE }

/** Initializes `opts` to the defaults of `version`. @return ::SX_OK or ::SX_INVALID_ARGUMENT. */
sx_status sx_collection_options_init(sx_collection_options *opts, unsigned version);

/** What describes a collection; see sx_collection_describe(). */
typedef struct sx_collection_info {
  /** Set by the caller to SX_COLLECTION_INFO_VERSION; see SX_COLLECTION_INFO_INIT. */
  unsigned version;
  char name[SX_NAME_MAX + 1];    /**< NUL-terminated */
  uint32_t dim;                  /**< dimension */
  sx_metric metric;              /**< metric */
  sx_index_type index;           /**< index type */
  uint32_t hnsw_m;               /**< HNSW parameter (0 for flat) */
  uint32_t hnsw_ef_construction; /**< HNSW parameter (0 for flat) */
  uint64_t count;                /**< live vectors */
  sx_quantization quantization;  /**< version 2: the collection's quantization */
} sx_collection_info;

/** Version of ::sx_collection_info this header describes (a version 1 struct ends
 * before `quantization`, and is filled up to there). */
#define SX_COLLECTION_INFO_VERSION 2
/** Initializer for an ::sx_collection_info to fill. */
#define SX_COLLECTION_INFO_INIT \
  { SX_COLLECTION_INFO_VERSION, {0}, 0, SX_METRIC_L2, SX_INDEX_HNSW, 0, 0, 0, SX_QUANTIZATION_NONE }

/**
 * Creates a collection in the write session.
 * @return ::SX_OK; ::SX_EXISTS; ::SX_INVALID_ARGUMENT (bad name, dimension, metric,
 *   index type, HNSW parameter or quantization, named in `err`); ::SX_CLOSED.
 */
sx_status sx_write_create_collection(sx_write *w, const char *name,
                                     const sx_collection_options *opts, sx_error *err);

/** Drops a collection and frees its pages. @return ::SX_OK, ::SX_NOT_FOUND, ::SX_INVALID_ARGUMENT.
 */
sx_status sx_write_drop_collection(sx_write *w, const char *name, sx_error *err);

/** A list of names, owned by the caller; free with sx_names_free(). */
typedef struct sx_names sx_names;
/** Number of names in the list. */
size_t sx_names_count(const sx_names *names);
/** Name i (NUL-terminated), valid until sx_names_free(); NULL when out of range. */
const char *sx_names_get(const sx_names *names, size_t i);
/** Frees the list. NULL is a no-op. */
void sx_names_free(sx_names *names);

/** Names of the collections in the read session's snapshot, sorted bytewise. */
sx_status sx_read_list_collections(sx_read *r, sx_names **out, sx_error *err);
/** Names of the collections as the write session sees them, sorted bytewise. */
sx_status sx_write_list_collections(sx_write *w, sx_names **out, sx_error *err);

/**
 * Upserts n vectors into a collection: an existing id gets the new vector and
 * metadata (or none); within one session the last upsert of an id wins. All or
 * nothing: if any item is invalid, none is stored. In an HNSW collection the
 * vectors are linked into the graph by up to sx_open_options.threads threads (for
 * batches of 16 or more); the call returns when all are linked.
 * @param ids n ids (non-empty UTF-8, at most SX_ID_MAX bytes).
 * @param vectors n * dim float32 values, row after row; all finite; under cosine,
 *   no zero vector; under ip and cosine a squared norm of at most FLT_MAX / 2, and
 *   under cosine at least 2^-133 (so that float32 distances are numbers).
 * @param dim the length of each vector; must equal the collection's dimension.
 * @param metadata NULL, or n entries each NULL (no metadata) or a NUL-terminated
 *   JSON object text (RFC 8259, UTF-8; numbers of any size; "\u0000" allowed in
 *   keys and strings; no key twice in one object; nested at most
 *   SX_METADATA_DEPTH_MAX levels). The text is validated and stored as given.
 * @return ::SX_OK; ::SX_NOT_FOUND (no such collection); ::SX_DIMENSION_MISMATCH;
 *   ::SX_INVALID_ARGUMENT (naming the item index and the problem); ::SX_CLOSED.
 */
sx_status sx_write_upsert(sx_write *w, const char *collection, size_t n, const char *const *ids,
                          const float *vectors, size_t dim, const char *const *metadata,
                          sx_error *err);

/**
 * sx_write_upsert() with the ids and metadata packed: one buffer each plus n + 1
 * offsets, so a binding passes a batch without one allocation per item.
 * Item i's id is the bytes `ids[id_offsets[i]]` to `ids[id_offsets[i + 1]]`
 * (exclusive; no NUL needed; none may be inside). Offsets must not decrease.
 * @param metadata NULL (no metadata), or a buffer of JSON texts delimited by
 *   `metadata_offsets` likewise; an empty item means "no metadata".
 * @return as sx_write_upsert(); ::SX_INVALID_ARGUMENT also for offsets that decrease
 *   or an id containing a NUL byte (naming the item index).
 */
sx_status sx_write_upsert_packed(sx_write *w, const char *collection, size_t n, const char *ids,
                                 const size_t *id_offsets, const float *vectors, size_t dim,
                                 const char *metadata, const size_t *metadata_offsets,
                                 sx_error *err);

/**
 * Deletes ids from a collection. Ids that do not exist are not an error. In an HNSW
 * collection a deleted vector is never returned but stays in the graph as a waypoint
 * until the dead ones (deleted or replaced) reach 1/32 of the collection's slots;
 * the delete or upsert that brings them there unlinks them all, repairing the lists
 * of their live neighbours (with up to sx_open_options.threads threads), and frees
 * their slots for later inserts (see sx_collection_stats).
 * @param deleted optional: receives how many of the ids existed (and are now gone).
 */
sx_status sx_write_delete(sx_write *w, const char *collection, size_t n, const char *const *ids,
                          size_t *deleted, sx_error *err);

/** sx_write_delete() with the ids packed as in sx_write_upsert_packed(). */
sx_status sx_write_delete_packed(sx_write *w, const char *collection, size_t n, const char *ids,
                                 const size_t *id_offsets, size_t *deleted, sx_error *err);

/** A view of one collection in one session. Thread-safe when its session is a read
 * session; valid until freed or until its session ends (then calls give ::SX_CLOSED). */
typedef struct sx_collection sx_collection;

/** Opens a view of a collection in a read session. @return ::SX_OK or ::SX_NOT_FOUND. */
sx_status sx_read_collection(sx_read *r, const char *name, sx_collection **out, sx_error *err);
/** Opens a view of a collection in a write session (sees the session's own changes). */
sx_status sx_write_collection(sx_write *w, const char *name, sx_collection **out, sx_error *err);
/** Frees a view. NULL is a no-op. */
void sx_collection_free(sx_collection *c);

/** Describes the collection, count included, into `out` (whose `version` the caller
 * set). @return ::SX_OK, ::SX_INVALID_ARGUMENT (`out` NULL or an unknown version),
 * ::SX_CLOSED. */
sx_status sx_collection_describe(sx_collection *c, sx_collection_info *out, sx_error *err);
/** Number of live vectors. */
sx_status sx_collection_count(sx_collection *c, uint64_t *out, sx_error *err);

/** How a collection's slots are used; see sx_collection_stats_get(). Every slot is
 * live, dead or free: slots == count + dead + free. */
typedef struct sx_collection_stats {
  /** Set by the caller to SX_COLLECTION_STATS_VERSION; see SX_COLLECTION_STATS_INIT. */
  unsigned version;
  uint64_t count; /**< live vectors */
  uint64_t slots; /**< slots taken so far (the vector storage grows with it) */
  uint64_t dead;  /**< HNSW only: vectors deleted or replaced but still in the graph,
                       walked through by searches and never returned; they are unlinked
                       (their neighbours' lists repaired) and freed by the delete or
                       upsert that brings them to 1/32 of the slots */
  uint64_t free;  /**< slots free for reuse by later inserts */
} sx_collection_stats;

/** Version of ::sx_collection_stats this header describes. */
#define SX_COLLECTION_STATS_VERSION 1
/** Initializer for an ::sx_collection_stats to fill. */
#define SX_COLLECTION_STATS_INIT \
  { SX_COLLECTION_STATS_VERSION, 0, 0, 0, 0 }

/** Fills `out` (whose `version` the caller set) with the collection's slot figures,
 * as its session sees them.
 * @return ::SX_OK, ::SX_INVALID_ARGUMENT (`out` NULL or an unknown version), ::SX_CLOSED. */
sx_status sx_collection_stats_get(sx_collection *c, sx_collection_stats *out, sx_error *err);

/** One stored vector; free with sx_record_free(). */
typedef struct sx_record sx_record;
/** Gets the vector with this id. @return ::SX_OK or ::SX_NOT_FOUND naming the id. */
sx_status sx_collection_get(sx_collection *c, const char *id, sx_record **out, sx_error *err);
/** The record's id (NUL-terminated; valid until sx_record_free()). */
const char *sx_record_id(const sx_record *rec);
/** The record's vector (valid until sx_record_free()); its length in `dim`. */
const float *sx_record_vector(const sx_record *rec, size_t *dim);
/** The record's metadata JSON text as stored, or NULL when it has none. */
const char *sx_record_metadata(const sx_record *rec);
/** Frees a record. NULL is a no-op. */
void sx_record_free(sx_record *rec);

/** Version of ::sx_search_options this header describes. */
#define SX_SEARCH_OPTIONS_VERSION 3
/** sx_search_options::include: hits carry their metadata text (sx_results_metadata()). */
#define SX_INCLUDE_METADATA 1u
/** sx_search_options::include: hits carry their vector (sx_results_vector()). */
#define SX_INCLUDE_VECTOR 2u
/** Per-search options. Zero fields mean the default. */
typedef struct sx_search_options {
  unsigned version; /**< SX_SEARCH_OPTIONS_VERSION (1 and 2 still accepted) */
  /** HNSW: candidate list size (at least k); 0 means max(k, 64). Any value is
   * accepted: one beyond the collection's slots is taken as their number, which makes
   * the walk exhaustive (every node reachable from the entry point, and the graph
   * keeps every node reachable). */
  uint32_t ef;
  /** Optional cancel hook, polled during long searches; nonzero stops the search,
   * which then fails with ::SX_CANCELLED. Called from the search's worker threads,
   * several at once; a hook that blocks or calls back into the same write session
   * stalls or fails the search (::SX_MISUSE). Prefer cancel_token. */
  int (*cancel)(void *ctx);
  void *cancel_ctx; /**< passed to cancel */
  /** (Version 2.) Optional cancel token, polled like the hook; see @ref cancel. */
  sx_cancel *cancel_token;
  /** (Version 2.) Most threads this call may use (a batch search): 0 means the
   * handle's sx_open_options::threads; 1 the calling thread only; at most 64. */
  uint32_t threads;
  /** (Version 3.) A filter over metadata, JSON text (NUL-terminated), or NULL: only
   * hits whose metadata matches are returned. Syntax in @ref filters. Read during the
   * call only. */
  const char *filter;
  /** (Version 3.) What each hit carries besides id and distance: a mask of
   * SX_INCLUDE_METADATA, SX_INCLUDE_VECTOR. */
  uint32_t include;
  /** (Version 3.) Nonzero: exact search (a scan of every matching item) whatever the
   * index. */
  uint32_t exact;
} sx_search_options;
/** Initializer for ::sx_search_options. */
#define SX_SEARCH_OPTIONS_INIT \
  { SX_SEARCH_OPTIONS_VERSION, 0, NULL, NULL, NULL, 0, NULL, 0, 0 }

/** Initializes `opts` to the defaults of `version`. @return ::SX_OK or ::SX_INVALID_ARGUMENT. */
sx_status sx_search_options_init(sx_search_options *opts, unsigned version);

/** Results of a search: for each query, up to k hits. Free with sx_results_free(). */
typedef struct sx_results sx_results;

/**
 * Searches for the k vectors closest to `query` (among those matching
 * sx_search_options::filter, when set).
 * @return ::SX_OK; ::SX_DIMENSION_MISMATCH; ::SX_INVALID_ARGUMENT (k = 0, NaN/Inf,
 *   zero query under cosine, a squared norm out of the bounds of sx_write_upsert(),
 *   an invalid filter or include mask); ::SX_CLOSED; ::SX_CORRUPT (stored metadata a
 *   filter had to read is damaged). Any k from 1 is accepted and sizes nothing: k
 *   beyond the collection's count gives at most count hits.
 */
sx_status sx_collection_search(sx_collection *c, const float *query, size_t dim, size_t k,
                               const sx_search_options *opts, sx_results **out, sx_error *err);
/**
 * Searches nq queries (nq * dim floats, row after row) in one call, using every
 * core the library was allowed; results per query as if searched one by one.
 */
sx_status sx_collection_search_batch(sx_collection *c, const float *queries, size_t nq, size_t dim,
                                     size_t k, const sx_search_options *opts, sx_results **out,
                                     sx_error *err);
/** Number of queries in the results. */
size_t sx_results_queries(const sx_results *res);
/** Number of hits for query q (at most k). */
size_t sx_results_count(const sx_results *res, size_t q);
/** Id of hit i of query q (valid until sx_results_free()); NULL out of range. */
const char *sx_results_id(const sx_results *res, size_t q, size_t i);
/** Distance of hit i of query q; NaN out of range. */
float sx_results_distance(const sx_results *res, size_t q, size_t i);
/** Hits over all queries (the sum of sx_results_count()). */
size_t sx_results_total(const sx_results *res);
/** The nq + 1 hit offsets: query q's hits are hits `off[q]` to `off[q + 1]`
 * (exclusive) of sx_results_distances() and sx_results_id_data(). Valid until
 * sx_results_free(); NULL for NULL. */
const size_t *sx_results_offsets(const sx_results *res);
/** Every hit's distance, sx_results_total() floats in query order. Valid until
 * sx_results_free(); NULL for NULL. */
const float *sx_results_distances(const sx_results *res);
/** Every hit's id, NUL-terminated, one after another in hit order; `*id_offsets`
 * receives total + 1 offsets into it: hit h's id starts at `data + off[h]` and is
 * `off[h + 1] - off[h] - 1` bytes long (its NUL is the last byte of its range), so a
 * binding can copy all ids in one piece. Valid until sx_results_free(); NULL (and
 * `*id_offsets` NULL) for NULL. */
const char *sx_results_id_data(const sx_results *res, const size_t **id_offsets);
/** Metadata JSON text of hit i of query q (NUL-terminated, as stored; valid until
 * sx_results_free()); NULL when the hit has none, metadata was not included
 * (SX_INCLUDE_METADATA), or out of range. */
const char *sx_results_metadata(const sx_results *res, size_t q, size_t i);
/** Vector of hit i of query q: sx_results_dim() floats (valid until
 * sx_results_free()); NULL when vectors were not included (SX_INCLUDE_VECTOR) or
 * out of range. */
const float *sx_results_vector(const sx_results *res, size_t q, size_t i);
/** Dimension of the included vectors; 0 when vectors were not included. */
size_t sx_results_dim(const sx_results *res);
/** Every hit's metadata text, laid out as sx_results_id_data(): `*offsets` receives
 * total + 1 offsets; a hit without metadata has an empty range (`off[h + 1] ==
 * off[h]`), one with metadata its text and its NUL. Valid until sx_results_free();
 * NULL (and `*offsets` NULL) when metadata was not included, or for NULL. */
const char *sx_results_metadata_data(const sx_results *res, const size_t **offsets);
/** Every hit's vector, total * sx_results_dim() floats in hit order. Valid until
 * sx_results_free(); NULL when vectors were not included, or for NULL. */
const float *sx_results_vectors(const sx_results *res);
/** Frees results. NULL is a no-op. */
void sx_results_free(sx_results *res);

/**
 * Checks a filter (see @ref filters) without a database, so that a binding or a tool
 * can reject a bad one early. Searches check their filter the same way.
 * @return ::SX_OK; ::SX_INVALID_ARGUMENT with a message naming the offending part
 *   (`filter` NULL, not JSON, not an object, an unknown operator, a bad operand).
 */
sx_status sx_filter_check(const char *filter, sx_error *err);
/**@}*/

/** @name Reading many records: batch get and cursors
 *
 * Both give an ::sx_records: n records in one object, readable one by one or in
 * bulk (one buffer of vectors, one of ids, one of metadata texts), so a binding
 * copies a batch out in a constant number of crossings.
 */
/**@{*/

/** A batch of records; free with sx_records_free(). Immutable once returned: any
 * number of threads may read it. */
typedef struct sx_records sx_records;

/**
 * Gets n ids in one call, in the order asked. An id that is not in the collection is
 * not an error: its record is marked not found (sx_records_found() 0, its vector row
 * zeros, no metadata). An id may be asked more than once.
 * @return ::SX_OK; ::SX_INVALID_ARGUMENT (an id NULL, empty, longer than SX_ID_MAX
 *   or not UTF-8, naming the item index; `ids` NULL with n > 0; `out` NULL);
 *   ::SX_CLOSED; ::SX_NOMEM.
 */
sx_status sx_collection_get_batch(sx_collection *c, size_t n, const char *const *ids,
                                  sx_records **out, sx_error *err);

/** sx_collection_get_batch() with the ids packed as in sx_write_upsert_packed(). */
sx_status sx_collection_get_packed(sx_collection *c, size_t n, const char *ids,
                                   const size_t *id_offsets, sx_records **out, sx_error *err);

/** Number of records in the batch (0 for NULL). */
size_t sx_records_count(const sx_records *recs);
/** The dimension of every vector in the batch. */
size_t sx_records_dim(const sx_records *recs);
/** 1 if record i was found (always 1 from a cursor), 0 if not or out of range. */
int sx_records_found(const sx_records *recs, size_t i);
/** Id of record i (NUL-terminated), NULL out of range. */
const char *sx_records_id(const sx_records *recs, size_t i);
/** Vector of record i (sx_records_dim() floats), NULL when not found or out of range. */
const float *sx_records_vector(const sx_records *recs, size_t i);
/** Metadata JSON text of record i as stored, NULL when it has none (or not found). */
const char *sx_records_metadata(const sx_records *recs, size_t i);
/** Every vector, count * dim floats, row after row (rows of records not found are
 * zeros). NULL for NULL or an empty batch. */
const float *sx_records_vectors(const sx_records *recs);
/** Found flags, count bytes (1 found, 0 not). NULL for NULL or an empty batch. */
const unsigned char *sx_records_found_data(const sx_records *recs);
/** Every id, NUL-terminated, one after another; `*offsets` receives count + 1
 * offsets: id i starts at `data + off[i]` and is `off[i + 1] - off[i] - 1` bytes long.
 * NULL (and `*offsets` NULL) for NULL. */
const char *sx_records_id_data(const sx_records *recs, const size_t **offsets);
/** Every metadata text, laid out as sx_records_id_data(); a record with no metadata
 * has an empty range (`off[i + 1] == off[i]`), one with metadata has its text and its
 * NUL. NULL (and `*offsets` NULL) for NULL. */
const char *sx_records_metadata_data(const sx_records *recs, const size_t **offsets);
/** Frees the batch. NULL is a no-op. */
void sx_records_free(sx_records *recs);

/**
 * A cursor over the live records of a collection view, in ascending bytewise order
 * of their ids: every record once. It lists the ids live in the view when it was
 * opened (it holds them in memory, about their bytes plus 8 per id; vectors and
 * metadata are read batch by batch). On a read session that is the snapshot, for the
 * cursor's whole life. On a write session, records deleted after the cursor opened
 * are skipped, records upserted after it are read as they are now, and ids new since
 * it opened are not listed. Use from one thread at a time. Valid until freed; it
 * keeps its session's memory alive, but once the session ends sx_cursor_next() fails
 * with ::SX_CLOSED. Independent of the view it was opened from (which may be freed).
 */
typedef struct sx_cursor sx_cursor;

/**
 * Opens a cursor on the collection view `c`.
 * @param after NULL to start at the first id, or an id (need not exist): the cursor
 *   starts at the first id greater than it, bytewise. Resuming an interrupted walk is
 *   passing the last id it returned, in this or any later session.
 * @return ::SX_OK; ::SX_INVALID_ARGUMENT (`out` NULL, `after` longer than SX_ID_MAX);
 *   ::SX_CLOSED; ::SX_CORRUPT; ::SX_NOMEM.
 */
sx_status sx_collection_cursor(sx_collection *c, const char *after, sx_cursor **out, sx_error *err);

/**
 * The next batch of at most `max` records (every one found). An empty batch
 * (sx_records_count() 0) means the end; later calls return empty batches too. A
 * cursor serves one call at a time: a call made while another runs on the same cursor
 * (from another thread) fails with ::SX_MISUSE and changes nothing.
 * @return ::SX_OK; ::SX_INVALID_ARGUMENT (`max` 0 or `out` NULL); ::SX_CLOSED (its
 *   session ended); ::SX_NOT_FOUND (a write session dropped the collection);
 *   ::SX_MISUSE (another call on the cursor is running); ::SX_NOMEM.
 */
sx_status sx_cursor_next(sx_cursor *cur, size_t max, sx_records **out, sx_error *err);

/** Ids the cursor has still to visit (records deleted since it opened included). */
uint64_t sx_cursor_remaining(const sx_cursor *cur);

/** Frees the cursor. NULL is a no-op. */
void sx_cursor_free(sx_cursor *cur);
/**@}*/

/** @name Online backup */
/**@{*/

/** Progress of a long call: `done` of `total` units (pages for a backup) so far.
 * Called on the calling thread; it must not call into the same database handle. */
typedef void (*sx_progress_fn)(void *ctx, uint64_t done, uint64_t total);

/** Version of ::sx_backup_options this header describes. */
#define SX_BACKUP_OPTIONS_VERSION 1

/** Options for sx_db_backup(). Zero fields mean the default. */
typedef struct sx_backup_options {
  unsigned version;        /**< SX_BACKUP_OPTIONS_VERSION */
  sx_progress_fn progress; /**< optional; called every few hundred pages and at the end */
  void *progress_ctx;      /**< passed to progress */
  /** Optional: once set, the backup stops between pages and fails with
   * ::SX_CANCELLED; nothing is left at the destination. */
  sx_cancel *cancel_token;
  /** Nonzero: replace an existing file at the destination; its -wal, -wal2 and -shm
   * files are removed. A destination that a handle, in any process, has open as a
   * database is refused with ::SX_BUSY (removing its WAL would lose its commits);
   * a handle opening it while the backup runs either has it open first (::SX_BUSY)
   * or waits, then opens the backup. Zero: ::SX_EXISTS. */
  int overwrite;
} sx_backup_options;

/** Initializer for ::sx_backup_options. */
#define SX_BACKUP_OPTIONS_INIT \
  { SX_BACKUP_OPTIONS_VERSION, NULL, NULL, NULL, 0 }

/** Initializes `opts` to the defaults of `version`. @return ::SX_OK or ::SX_INVALID_ARGUMENT. */
sx_status sx_backup_options_init(sx_backup_options *opts, unsigned version);

/**
 * Copies the latest committed snapshot of the database (what a read session begun
 * now sees) to a new database file at `dest`, while other sessions, in any process,
 * go on reading and writing: the backup is an ordinary read session, so it never
 * waits for the writer nor blocks it (a checkpoint just stops short of its snapshot
 * until it ends). The copy is written to a temporary file beside `dest`, synced,
 * renamed over `dest` and the directory synced, so `dest` is either absent (or its
 * old contents) or the whole backup, whatever happens: a reader or a crash never sees
 * a partial one. The backup is a self-contained database with no WAL; open it like
 * any other.
 * @param dest path of the backup (UTF-8); not the database itself. An existing `dest`
 *   is taken through its symlinks (a link to a database has the database replaced,
 *   not the link) and must be a regular file.
 * @param opts options, or NULL for the defaults.
 * @return ::SX_OK; ::SX_EXISTS (`dest` or its -wal/-wal2 exists and overwrite is not
 *   set); ::SX_INVALID_ARGUMENT (`dest` NULL, empty, the database's own path, or an
 *   existing file that is not a regular one: a device, a FIFO, a directory);
 *   ::SX_CANCELLED; ::SX_CLOSED; ::SX_BUSY (no free reader slot, or overwriting a
 *   database that a handle has open); ::SX_IO; ::SX_FULL.
 */
sx_status sx_db_backup(sx_db *db, const char *dest, const sx_backup_options *opts, sx_error *err);
/**@}*/

/** @name Space accounting and compaction */
/**@{*/

/** Where a snapshot's bytes go; see sx_read_space_get(). */
typedef struct sx_space_stats {
  /** Set by the caller to SX_SPACE_STATS_VERSION; see SX_SPACE_STATS_INIT. */
  unsigned version;
  uint32_t page_size;        /**< bytes per page */
  uint64_t page_count;       /**< pages in the snapshot (the file's length once checkpointed) */
  uint64_t free_pages;       /**< pages on the free list, reused by later writes */
  uint64_t collection_pages; /**< pages holding collections: headers, data, ids, indexes */
  uint64_t live_bytes;       /**< vectors, ids and metadata of the live records */
  /** What sx_db_compact() would make free, estimated: ids and metadata no longer
   * referenced (deleted or replaced), and the share of the per-slot arrays (vectors,
   * slot records, HNSW graph) held by dead and free slots. Free pages not included. */
  uint64_t reclaimable_bytes;
} sx_space_stats;

/** Version of ::sx_space_stats this header describes. */
#define SX_SPACE_STATS_VERSION 1
/** Initializer for an ::sx_space_stats to fill. */
#define SX_SPACE_STATS_INIT \
  { SX_SPACE_STATS_VERSION, 0, 0, 0, 0, 0, 0 }

/** Fills `out` (whose `version` the caller set) with the space figures of the read
 * session's snapshot. Reads every collection's slot records: O(records).
 * @return ::SX_OK, ::SX_INVALID_ARGUMENT, ::SX_CLOSED, ::SX_CORRUPT. */
sx_status sx_read_space_get(sx_read *r, sx_space_stats *out, sx_error *err);

/** Version of ::sx_compact_options this header describes. */
#define SX_COMPACT_OPTIONS_VERSION 1

/** Options for sx_db_compact(). Zero fields mean the default. */
typedef struct sx_compact_options {
  unsigned version; /**< SX_COMPACT_OPTIONS_VERSION */
  /** Longest wait for the writer lock in milliseconds: 0 does not wait, negative
   * waits for ever. */
  int timeout_ms;
  /** Optional: once set, compaction stops between batches, changes nothing and fails
   * with ::SX_CANCELLED. */
  sx_cancel *cancel_token;
  sx_progress_fn progress; /**< optional: records rewritten so far, of all live records */
  void *progress_ctx;      /**< passed to progress */
} sx_compact_options;

/** Initializer for ::sx_compact_options: no wait, no token, no progress. */
#define SX_COMPACT_OPTIONS_INIT \
  { SX_COMPACT_OPTIONS_VERSION, 0, NULL, NULL, 0 }

/** Initializes `opts` to the defaults of `version`. @return ::SX_OK or ::SX_INVALID_ARGUMENT. */
sx_status sx_compact_options_init(sx_compact_options *opts, unsigned version);

/**
 * Rewrites every collection densely, as one ordinary write session: the live records
 * are stored again in slot order, their ids and metadata packed, the HNSW graphs
 * built afresh from the live vectors only (the recall and speed of a new database),
 * into the lowest free pages. The free pages left at the end of the database are
 * given back: the file shrinks at the next checkpoint that reaches this commit
 * (sx_db_checkpoint(), or an automatic one; a reader pinning an older snapshot
 * delays it). Free pages left inside the file are reused by later writes (see
 * sx_read_space_get()). Readers in any process keep their snapshots and carry on;
 * the commit is atomic, so a crash at any instant leaves the database as it was
 * before or after. While it runs, the write transaction holds a copy of every page
 * it rewrites or frees (memory about the size of the collections).
 * @param opts NULL for the defaults (no wait for the writer lock).
 * @return ::SX_OK; ::SX_BUSY; ::SX_CANCELLED; ::SX_READ_ONLY; ::SX_CLOSED; ::SX_IO;
 *   ::SX_FULL; ::SX_NOMEM; ::SX_CORRUPT.
 */
sx_status sx_db_compact(sx_db *db, const sx_compact_options *opts, sx_error *err);
/**@}*/

#ifdef __cplusplus
}
#endif

#endif /* SEXTANT_H */
