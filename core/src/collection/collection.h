/*
 * collection: the catalog of named collections and, per collection, its schema, id
 * map, vectors, metadata and exact search, all stored in pages.
 *
 * Everything a collection holds lives in "page arrays": radix trees of pages
 * addressed by byte offset (interior pages hold 32-bit page numbers), so data of any
 * size is stored densely, elements may straddle page boundaries, and copy-on-write
 * through the pager versions it for free. Per collection, a header page records:
 *   vec    slot * dim * 4: the float32 vector of slot
 *   slots  slot * 32: id offset and length in the heap, metadata offset and length
 *   live   bit per slot: 1 if the slot holds a live vector
 *   heap   append-only bytes: ids and metadata texts
 *   hash   open-addressing id map: 8-byte entries (32-bit hash tag, slot + 1)
 *   free   stack of 32-bit free slots (reused by later inserts; in an HNSW collection
 *          a slot is free only once it is unlinked from the graph)
 * The catalog (a chain of pages rooted in page 0) maps names to header pages.
 *
 * Reads go through an sx__pv: a read snapshot (immutable pages, any number of
 * threads) or a write transaction (sees its own changes; one thread at a time).
 */
#ifndef SX_COLLECTION_H
#define SX_COLLECTION_H

#include <stddef.h>
#include <stdint.h>

#include "index/hnsw.h"
#include "pager/parray.h"
#include "sextant.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A collection opened in a view: where its header is and its fixed schema. */
/* Reusable HNSW search contexts of a collection opened on a read session (their
 * caches stay valid for the snapshot's life). */
typedef struct sx__coll_pool sx__coll_pool;

typedef struct sx__coll {
  sx__pv v;
  sx__coll_pool *pool; /* what a read view's searches share (sx__coll_pool_init), or NULL */
  uint32_t hdr;
  char name[SX_NAME_MAX + 1];
  uint32_t dim;
  int metric, index;
  uint32_t m, efc;
  int quant; /* sx_quantization */
} sx__coll;

/* Checks a collection name against the rules; SX_INVALID_ARGUMENT naming it. */
int sx__check_name(const char *name, sx_error *err);

int sx__coll_create(sx__txn *t, const char *name, const sx_collection_options *o, sx_error *err);
int sx__coll_drop(sx__txn *t, const char *name, sx_error *err);
int sx__coll_list(const sx__pv *v, sx_names **out, sx_error *err);
/* Finds name in the view; SX_NOT_FOUND naming it. */
int sx__coll_open(const sx__pv *v, const char *name, sx__coll *c, sx_error *err);
/* In a write view the collection may have been dropped since it was opened. */
int sx__coll_revalidate(sx__coll *c, sx_error *err);
/* Gives a read view what its searches share (search.c): a pool of HNSW search
 * contexts, the leaf pages of its vectors once a scan has resolved them; freed by
 * sx__coll_pool_free (after the last search). */
int sx__coll_pool_init(sx__coll *c, sx_error *err);
void sx__coll_pool_free(sx__coll *c);

int sx__coll_describe(const sx__coll *c, sx_collection_info *out, sx_error *err);
int sx__coll_count(const sx__coll *c, uint64_t *out, sx_error *err);
int sx__coll_stats(const sx__coll *c, sx_collection_stats *out, sx_error *err);
/* nthreads > 1 lets an HNSW collection link the new vectors, and unlink dead ones,
 * with that many threads. An id given twice keeps its last item. */
int sx__coll_upsert(sx__coll *c, size_t n, const char *const *ids, const float *vectors, size_t dim,
                    const char *const *metadata, int nthreads, sx_error *err);
/* nthreads as for sx__coll_upsert. */
int sx__coll_delete(sx__coll *c, size_t n, const char *const *ids, int nthreads, size_t *deleted,
                    sx_error *err);
int sx__coll_get(const sx__coll *c, const char *id, sx_record **out, sx_error *err);
/* nq queries, k hits each. nthreads > 1 splits the scan (read views only). o (may be
 * NULL) is checked and complete, at SX_SEARCH_OPTIONS_VERSION (api.c does both). */
int sx__coll_search(const sx__coll *c, const float *qs, size_t nq, size_t dim, size_t k,
                    const sx_search_options *o, int nthreads, sx_results **out, sx_error *err);
/* Structure check of every collection in the view (catalog, headers, id map
 * agrees with the slots, counts, records within the heap). used (may be NULL): a bit
 * per page of the view, in which every page the catalog and the collections use is
 * set, each once (a page in two places is SX_CORRUPT). */
int sx__coll_check_all(const sx__pv *v, uint8_t *used, sx_error *err);

/* ---- inside the collection layer ------------------------------------------ */

/* The collection header page. */
#define SX__COLL_MAGIC 0x4f435853u /* "SXCO" */
enum {
  SX__H_MAGIC = 0,
  SX__H_DIM = 4,
  SX__H_METRIC = 8,
  SX__H_INDEX = 12,
  SX__H_M = 16,
  SX__H_EFC = 20,
  SX__H_COUNT = 24,
  SX__H_NSLOTS = 32,
  SX__H_HEAPLEN = 40,
  SX__H_HASHCAP = 48,
  SX__H_HASHUSED = 56,
  SX__H_NFREE = 64,
  SX__H_PA_VEC = 72,
  SX__H_PA_SLOTS = 80,
  SX__H_PA_HEAP = 88,
  SX__H_PA_HASH = 96,
  SX__H_PA_FREE = 104,
  SX__H_PA_LIVE = 112,
  SX__H_NAME = 120, /* 65 bytes */
  /* HNSW (index.h): entry point and top level, its page arrays, upper-links length */
  SX__H_HNSW_EP = 192,
  SX__H_PA_G0 = 200,
  SX__H_PA_META = 208,
  SX__H_PA_UPPER = 216,
  SX__H_UPPER_LEN = 224,
  SX__H_PA_NORMS = 232,
  SX__H_PA_STAMPS = 240, /* HNSW link order (files written before it have zero here) */
  SX__H_STAMP_SEQ = 248,
  /* Quantization (schema: u32 sx_quantization; files written before it have zero,
   * none) and the page array of the HNSW walk's codes (hnsw.h). */
  SX__H_QUANT = 256,
  SX__H_PA_CODES = 264,
  /* Nodes linked since the HNSW graph's last connectivity walk, plus one (hnsw.h). */
  SX__H_LINK_DEBT = 272
};
/* Every page array of a collection header (byte offsets in its page). */
#define SX__COLL_NPA 12
extern const unsigned sx__coll_pa_all[SX__COLL_NPA];
/* sx_db_check: marks the catalog's pages in used (a bit per page); SX_CORRUPT naming
 * a page in two places. */
int sx__coll_mark_catalog(const sx__pv *v, uint8_t *used, sx_error *err);

/* The HNSW graph of the collection whose header is page hdr. */
void sx__coll_hnsw_layout(uint32_t hdr, sx__hnsw_layout *out);

/* A slot's record: SX__SLOT_SIZE bytes in the slots array (u64 id_off, u32 id_len,
 * u32 meta_len, u64 meta_off, u64 reserved); meta_len SX__NO_META when it has none. */
#define SX__SLOT_SIZE 32
#define SX__NO_META 0xffffffffu
typedef struct sx__slotrec {
  uint64_t id_off, meta_off;
  uint32_t id_len, meta_len;
} sx__slotrec;
/* The collection's header page, as its view sees it. */
int sx__coll_header(const sx__coll *c, const uint8_t **h, sx_error *err);
/* INVALID_ARGUMENT unless id is a valid id (non-empty UTF-8, at most SX_ID_MAX
 * bytes); item numbers it in the message. */
int sx__check_id(const char *id, size_t item, sx_error *err);
/* Looks id (n bytes) up in the id map: *slot = its slot or UINT64_MAX; *pos = its
 * hash position (or the empty position where it would go). */
int sx__id_lookup(const sx__coll *c, const uint8_t *h, const char *id, size_t n, uint64_t *slot,
                  uint64_t *pos, sx_error *err);
int sx__slot_read(const sx__coll *c, const uint8_t *h, uint64_t s, sx__slotrec *r, sx_error *err);
/* SX_CORRUPT (naming slot s and the field) unless r's id and metadata lie within the
 * heap of the collection whose header is h. */
int sx__slot_valid(const sx__coll *c, const uint8_t *h, uint64_t s, const sx__slotrec *r,
                   sx_error *err);
/* The id of slot s into buf (NUL-terminated); *len its length (may be NULL). */
int sx__slot_id(const sx__coll *c, const uint8_t *h, uint64_t s, char buf[SX_ID_MAX + 1],
                size_t *len, sx_error *err);
/* The ids of slots[0..n), NUL-terminated one after another in *blob (malloc'd, NULL
 * when n is 0; the caller frees it, on an error too); offs[i] = where the i-th
 * starts. The slot records are all located and prefetched before any is read, then
 * the ids likewise: a search's hits lie anywhere in the arrays, and resolving them
 * one at a time waited for each cache miss in turn. */
int sx__slot_ids(const sx__coll *c, const uint8_t *h, const uint32_t *slots, size_t n, char **blob,
                 size_t *offs, sx_error *err);
/* Finite components, and nonzero under cosine; SX_INVALID_ARGUMENT naming `what` and item. */
/* Checks metadata text: one JSON object (RFC 8259, UTF-8), no key twice in an object,
 * nested at most SX_METADATA_DEPTH_MAX levels (json.c). Messages name the item. */
int sx__json_check(const char *text, size_t len, size_t item, sx_error *err);
int sx__check_vector(const float *v, size_t dim, int metric, const char *what, size_t item,
                     sx_error *err);

/* Result objects: their layouts are in results.h (the collection layer only), their
 * public accessors in results.c. */
void sx__names_free(sx_names *n);
void sx__record_free(sx_record *r);
void sx__results_free(sx_results *r);

/* ---- filters (filter.c) ---------------------------------------------------------- */

/* A filter compiled once per search (the language is in sextant.h, @ref filters). */
typedef struct sx__filter sx__filter;
/* SX_INVALID_ARGUMENT naming the offending part, before any work. */
int sx__filter_compile(const char *text, sx__filter **out, sx_error *err);
void sx__filter_free(sx__filter *f);
/* 1 when the filter matches everything ({}). */
int sx__filter_always(const sx__filter *f);

/* What one thread needs to evaluate a filter against the slots of a collection:
 * cursors, and the token array and scratch buffers that evaluation reuses (grown
 * when a text needs more, never allocated per candidate). */
typedef struct sx__fstate {
  const sx__coll *c; /* NULL: texts only (sx__filter_text) */
  const uint8_t *h;
  const sx__filter *f;
  sx__pa_cursor sc, hc; /* slots, heap */
  uint64_t heaplen;
  void *tok; /* jsmntok_t[ntok] */
  size_t ntok;
  char *text; /* metadata that straddles pages, copied */
  size_t tcap;
  char *scr; /* strings with escapes, decoded */
  size_t scap;
} sx__fstate;
void sx__fstate_init(sx__fstate *s, const sx__coll *c, const uint8_t *h, const sx__filter *f);
void sx__fstate_free(sx__fstate *s);
/* Whether slot's metadata matches: 1, 0, or a negated status (SX_CORRUPT for a text
 * that is not a JSON object, naming the slot) with err set. */
int sx__filter_slot(sx__fstate *s, uint64_t slot, sx_error *err);
/* The same for a text (NULL: no metadata); slot only names it in messages. */
int sx__filter_text(sx__fstate *s, const char *text, size_t len, uint64_t slot, sx_error *err);

/* ---- batch get and cursors (cursor.c) ------------------------------------------ */

/* Checks id (SX_INVALID_ARGUMENT naming item) and looks it up in the collection
 * whose header page is h: *slot = its slot, or UINT64_MAX when absent. (coll.c) */
int sx__coll_find(const sx__coll *c, const uint8_t *h, const char *id, size_t item, uint64_t *slot,
                  sx_error *err);

void sx__records_free(sx_records *r);

/* Records of ids[0..n) in that order. skip_missing: ids not in the collection are
 * left out (cursors) instead of marked not found (batch get). */
int sx__coll_get_many(const sx__coll *c, size_t n, const char *const *ids, int skip_missing,
                      sx_records **out, sx_error *err);

/* The live ids of a collection greater than `after` (NULL: all), sorted bytewise:
 * n ids NUL-terminated in blob, ptrs[i] the i-th (both malloc'd; NULL when n is 0). */
typedef struct sx__idlist {
  size_t n;
  char *blob;
  char **ptrs;
} sx__idlist;
int sx__coll_sorted_ids(const sx__coll *c, const char *after, sx__idlist *out, sx_error *err);
void sx__idlist_free(sx__idlist *l);

/* ---- space accounting and compaction (compact.c) -------------------------------- */

typedef struct sx__space {
  uint64_t pages;             /* header and every page array */
  uint64_t live_bytes;        /* live vectors, ids and metadata */
  uint64_t reclaimable_bytes; /* unreferenced heap bytes + the dead share of per-slot arrays */
} sx__space;
int sx__coll_space(const sx__coll *c, sx__space *out, sx_error *err);

/* Compaction, in two steps: reset frees every array of dst (a write view) and resets
 * its header to a new collection's; fill upserts again the live records of src, a
 * read view of the same collection in the commit dst's transaction began from, in
 * slot order, calling step(ctx, n) after each batch of n. On an error (SX_CANCELLED
 * once cancel is set) the caller aborts the transaction. */
int sx__coll_compact_reset(sx__coll *dst, sx_error *err);
/* Moves the header page of collection `name` to the lowest free page when that is
 * lower (catalog entry updated, old page freed); its arrays must be empty (after
 * sx__coll_compact_reset). Write views of it opened before are stale. (coll.c) */
int sx__coll_move_header(sx__txn *t, const char *name, sx_error *err);
int sx__coll_compact_fill(const sx__coll *src, sx__coll *dst, int nthreads, const sx_cancel *cancel,
                          void (*step)(void *ctx, uint64_t n), void *ctx, sx_error *err);

#ifdef __cplusplus
}
#endif
#endif
