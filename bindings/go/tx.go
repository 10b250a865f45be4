package sextant

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/sextant/sextant/bindings/go/internal/sx"
)

// Reader is what read and write sessions both offer: a write session reads its own
// uncommitted changes, a read session its snapshot.
type Reader interface {
	ListCollections() ([]string, error)
	Describe(collection string) (CollectionInfo, error)
	CollectionStats(collection string) (CollectionStats, error)
	Count(collection string) (uint64, error)
	Get(collection, id string) (*Record, error)
	Search(ctx context.Context, collection string, query []float32, k int, opts ...SearchOption) ([]Hit, error)
	SearchBatch(ctx context.Context, collection string, queries [][]float32, k int, opts ...SearchOption) ([][]Hit, error)
	SearchBatchFlat(ctx context.Context, collection string, queries []float32, dim, k int, opts ...SearchOption) ([][]Hit, error)
	UserVersion() (uint64, error)
	GetMany(collection string, ids []string) ([]*Record, error)
	Cursor(collection, after string) (*Cursor, error)
}

var (
	_ Reader = (*ReadTx)(nil)
	_ Reader = (*WriteTx)(nil)
)

// ---- read sessions ------------------------------------------------------------------

// ReadTx is a read session: a stable snapshot of everything committed before it
// began, for its whole life. Safe for concurrent use: many goroutines may search one
// ReadTx at once. End it with End (View does); End waits for calls in flight.
type ReadTx struct {
	db    *DB
	mu    sync.RWMutex // calls hold it shared; End holds it exclusive
	ended bool
	st    *readState
}

// readState is what the cleanup of a forgotten ReadTx frees.
type readState struct {
	h     uintptr
	views sync.Map // collection name -> uintptr (sx_collection *), opened once per session
	last  atomic.Pointer[viewEntry]
	freed atomic.Bool
}

// viewEntry is the view used last: most programs search one collection, and a
// string compare is cheaper than a map lookup.
type viewEntry struct {
	name string
	v    sx.Sx_collection
}

func (s *readState) free() {
	if s.freed.Swap(true) {
		return
	}
	s.views.Range(func(k, v any) bool {
		sx.DeleteSx_collection(sx.SwigcptrSx_collection(v.(uintptr)))
		return true
	})
	sx.DeleteSx_read(sx.SwigcptrSx_read(s.h))
}

func newReadTx(db *DB, p uintptr) *ReadTx {
	tx := &ReadTx{db: db, st: &readState{h: p}}
	runtime.AddCleanup(tx, func(s *readState) { s.free() }, tx.st)
	return tx
}

// End ends the session, unpinning its snapshot; it waits for calls in flight on other
// goroutines. Ending again does nothing and returns nil.
func (tx *ReadTx) End() error {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.ended {
		return nil
	}
	tx.ended = true
	st := sx.Sx_read_end(sx.SwigcptrSx_read(tx.st.h))
	tx.st.free()
	return statusError(st, nil)
}

// enter starts a call: it returns false (and the caller returns ErrClosed) after End.
func (tx *ReadTx) enter() bool {
	tx.mu.RLock()
	if tx.ended {
		tx.mu.RUnlock()
		return false
	}
	return true
}

func (tx *ReadTx) leave() { tx.mu.RUnlock() }

var errReadEnded = &Error{Code: "CLOSED", Message: "the read session has ended"}

func closedRead() error { e := *errReadEnded; return &e }

// view returns the session's view of a collection, opening it on first use.
func (tx *ReadTx) view(name string) (sx.Sx_collection, error) {
	if e := tx.st.last.Load(); e != nil && e.name == name {
		return e.v, nil
	}
	if v, ok := tx.st.views.Load(name); ok {
		e := &viewEntry{name, sx.SwigcptrSx_collection(v.(uintptr))}
		tx.st.last.Store(e)
		return e.v, nil
	}
	if err := checkString("collection name", name); err != nil {
		return nil, err
	}
	eb := getErrbuf()
	defer putErrbuf(eb)
	var p uintptr
	if err := statusError(sx.Sx_read_collection(sx.SwigcptrSx_read(tx.st.h), name, &p, eb), eb); err != nil {
		return nil, err
	}
	if v, loaded := tx.st.views.LoadOrStore(name, p); loaded {
		sx.DeleteSx_collection(sx.SwigcptrSx_collection(p))
		p = v.(uintptr)
	}
	e := &viewEntry{name, sx.SwigcptrSx_collection(p)}
	tx.st.last.Store(e)
	return e.v, nil
}

// withView runs fn on the view of a collection, inside a call.
func (tx *ReadTx) withView(name string, fn func(v sx.Sx_collection) error) error {
	if !tx.enter() {
		return closedRead()
	}
	defer tx.leave()
	v, err := tx.view(name)
	if err != nil {
		return err
	}
	return fn(v)
}

// ListCollections returns the names of the snapshot's collections, sorted bytewise.
func (tx *ReadTx) ListCollections() ([]string, error) {
	if !tx.enter() {
		return nil, closedRead()
	}
	defer tx.leave()
	eb := getErrbuf()
	defer putErrbuf(eb)
	var p uintptr
	if err := statusError(sx.Sx_read_list_collections(sx.SwigcptrSx_read(tx.st.h), &p, eb), eb); err != nil {
		return nil, err
	}
	return takeNames(p), nil
}

// Describe describes a collection, its count included.
func (tx *ReadTx) Describe(collection string) (info CollectionInfo, err error) {
	err = tx.withView(collection, func(v sx.Sx_collection) (e error) { info, e = describe(v); return })
	return
}

// CollectionStats returns how a collection's slots are used.
func (tx *ReadTx) CollectionStats(collection string) (s CollectionStats, err error) {
	err = tx.withView(collection, func(v sx.Sx_collection) (e error) { s, e = collStats(v); return })
	return
}

// Count returns the number of live vectors in a collection.
func (tx *ReadTx) Count(collection string) (n uint64, err error) {
	err = tx.withView(collection, func(v sx.Sx_collection) (e error) { n, e = count(v); return })
	return
}

// Get returns the vector stored under id (ErrNotFound when there is none).
func (tx *ReadTx) Get(collection, id string) (r *Record, err error) {
	err = tx.withView(collection, func(v sx.Sx_collection) (e error) { r, e = get(v, id); return })
	return
}

// Search returns the k vectors closest to query, closest first (ties by id). ctx
// cancels a long search: the error then matches ErrCancelled and ctx.Err().
func (tx *ReadTx) Search(ctx context.Context, collection string, query []float32, k int, opts ...SearchOption) ([]Hit, error) {
	if !tx.enter() {
		return nil, closedRead()
	}
	defer tx.leave()
	v, err := tx.view(collection)
	if err != nil {
		return nil, err
	}
	return search(ctx, v, query, k, opts)
}

// SearchBatch searches several queries of one dimension in one call, using the
// threads the database allows; the result holds one []Hit per query.
func (tx *ReadTx) SearchBatch(ctx context.Context, collection string, queries [][]float32, k int, opts ...SearchOption) (hits [][]Hit, err error) {
	if len(queries) == 0 {
		return [][]Hit{}, nil
	}
	flat, dim, err := flatten(queries, "queries")
	if err != nil {
		return nil, err
	}
	return tx.SearchBatchFlat(ctx, collection, flat, dim, k, opts...)
}

// SearchBatchFlat is SearchBatch with the queries given row after row in one slice of
// len(queries)/dim rows.
func (tx *ReadTx) SearchBatchFlat(ctx context.Context, collection string, queries []float32, dim, k int, opts ...SearchOption) (hits [][]Hit, err error) {
	err = tx.withView(collection, func(v sx.Sx_collection) (e error) {
		hits, e = searchBatch(ctx, v, queries, dim, k, opts)
		return
	})
	return
}

// SpaceStats tells where a snapshot's bytes go.
type SpaceStats struct {
	PageSize        uint32 // bytes per page
	PageCount       uint64 // pages in the snapshot (the file's length once checkpointed)
	FreePages       uint64 // pages on the free list, reused by later writes
	CollectionPages uint64 // pages holding collections
	LiveBytes       uint64 // vectors, ids and metadata of the live records
	// ReclaimableBytes estimates what Compact would make free (free pages not included).
	ReclaimableBytes uint64
}

// Space returns the space figures of the snapshot (it reads every collection's slot
// records: O(records)).
func (tx *ReadTx) Space() (SpaceStats, error) {
	if !tx.enter() {
		return SpaceStats{}, closedRead()
	}
	defer tx.leave()
	s := sx.NewSx_space_stats()
	defer sx.DeleteSx_space_stats(s)
	s.SetVersion(uint(sx.SX_SPACE_STATS_VERSION))
	eb := getErrbuf()
	defer putErrbuf(eb)
	if err := statusError(sx.Sx_read_space_get(sx.SwigcptrSx_read(tx.st.h), s, eb), eb); err != nil {
		return SpaceStats{}, err
	}
	return SpaceStats{
		PageSize: uint32(s.GetPage_size()), PageCount: s.GetPage_count(), FreePages: s.GetFree_pages(),
		CollectionPages: s.GetCollection_pages(), LiveBytes: s.GetLive_bytes(),
		ReclaimableBytes: s.GetReclaimable_bytes(),
	}, nil
}

// UserVersion returns the application-defined number stored in the snapshot.
func (tx *ReadTx) UserVersion() (uint64, error) {
	if !tx.enter() {
		return 0, closedRead()
	}
	defer tx.leave()
	eb := getErrbuf()
	defer putErrbuf(eb)
	var n uint64
	err := statusError(sx.Sx_read_user_version(sx.SwigcptrSx_read(tx.st.h), &n, eb), eb)
	return n, err
}

// ---- write sessions -----------------------------------------------------------------

// WriteTx is the write session: the single writer of a database across all processes.
// Its methods may be called from several goroutines; they run one at a time. End it
// with Commit or Abort (Update does); afterwards every method returns ErrClosed.
type WriteTx struct {
	db    *DB
	mu    sync.Mutex
	ended bool
	st    *writeState
}

type writeState struct {
	h     uintptr
	freed atomic.Bool
}

func (s *writeState) free() {
	if !s.freed.Swap(true) {
		sx.DeleteSx_write(sx.SwigcptrSx_write(s.h))
	}
}

func newWriteTx(db *DB, p uintptr) *WriteTx {
	tx := &WriteTx{db: db, st: &writeState{h: p}}
	runtime.AddCleanup(tx, func(s *writeState) { s.free() }, tx.st)
	return tx
}

var errWriteEnded = &Error{Code: "CLOSED", Message: "the write session has ended (committed or aborted)"}

func closedWrite() error { e := *errWriteEnded; return &e }

func (tx *WriteTx) handle() sx.SwigcptrSx_write { return sx.SwigcptrSx_write(tx.st.h) }

// lock starts a call; false (ErrClosed) once the session has ended.
func (tx *WriteTx) lock() bool {
	tx.mu.Lock()
	if tx.ended {
		tx.mu.Unlock()
		return false
	}
	return true
}

// Commit makes the session's changes visible to new read sessions at once, durable
// per the database's sync level. It ends the session whether it succeeds or not.
// Committing an ended session returns ErrClosed.
func (tx *WriteTx) Commit() error {
	if !tx.lock() {
		return closedWrite()
	}
	defer tx.mu.Unlock()
	tx.ended = true
	eb := getErrbuf()
	defer putErrbuf(eb)
	err := statusError(sx.Sx_write_commit(tx.handle(), eb), eb)
	tx.st.free()
	return err
}

// Abort discards the session's changes and ends it. Aborting an ended session
// returns ErrClosed.
func (tx *WriteTx) Abort() error {
	if !tx.lock() {
		return closedWrite()
	}
	defer tx.mu.Unlock()
	tx.ended = true
	err := statusError(sx.Sx_write_abort(tx.handle()), nil)
	tx.st.free()
	return err
}

// withView runs fn on a view of a collection as the session sees it now (opened for
// this call: the session may drop and create collections).
func (tx *WriteTx) withView(name string, fn func(v sx.Sx_collection) error) error {
	if !tx.lock() {
		return closedWrite()
	}
	defer tx.mu.Unlock()
	return tx.viewLocked(name, fn)
}

func (tx *WriteTx) viewLocked(name string, fn func(v sx.Sx_collection) error) error {
	if err := checkString("collection name", name); err != nil {
		return err
	}
	eb := getErrbuf()
	defer putErrbuf(eb)
	var p uintptr
	if err := statusError(sx.Sx_write_collection(tx.handle(), name, &p, eb), eb); err != nil {
		return err
	}
	v := sx.SwigcptrSx_collection(p)
	defer sx.DeleteSx_collection(v)
	return fn(v)
}

// CollectionConfig describes a collection to create.
type CollectionConfig struct {
	Dim    int       // dimension, 1 to 65536
	Metric Metric    // L2, IP or Cosine (required: "" is INVALID_ARGUMENT, as in every binding)
	Index  IndexType // HNSW or Flat (required: "" is INVALID_ARGUMENT)
	// HNSW parameters; 0 means the defaults (M 16, EfConstruction 200).
	M              int
	EfConstruction int
	// Quantization: QuantizationNone ("" too) or Int8 (HNSW only); fixed at create.
	Quantization Quantization
}

// CreateCollection creates a collection (ErrExists when one has that name). Names are
// 1 to 64 characters from A-Z a-z 0-9 _ - ., not beginning with '.'.
func (tx *WriteTx) CreateCollection(name string, cfg CollectionConfig) error {
	if err := checkString("collection name", name); err != nil {
		return err
	}
	if !tx.lock() {
		return closedWrite()
	}
	defer tx.mu.Unlock()
	eb := getErrbuf()
	defer putErrbuf(eb)
	metric := cfg.Metric
	if err := checkString("metric", string(metric)); err != nil {
		return err
	}
	var m int32
	if err := statusError(sx.Sx_metric_parse(string(metric), &m, eb), eb); err != nil {
		return err
	}
	o := sx.NewSx_collection_options()
	defer sx.DeleteSx_collection_options(o)
	if err := statusError(sx.Sx_collection_options_init(o, uint(sx.SX_COLLECTION_OPTIONS_VERSION)), nil); err != nil {
		return err
	}
	dim, err := u32("dimension", cfg.Dim)
	if err != nil {
		return err
	}
	hm, err := u32("HNSW m", cfg.M)
	if err != nil {
		return err
	}
	efc, err := u32("HNSW ef_construction", cfg.EfConstruction)
	if err != nil {
		return err
	}
	o.SetDim(uint(dim))
	o.SetMetric(sx.Sx_metric(m))
	if err := checkString("index type", string(cfg.Index)); err != nil {
		return err
	}
	var ix int32
	if err := statusError(sx.Sx_index_type_parse(string(cfg.Index), &ix, eb), eb); err != nil {
		return err
	}
	o.SetIndex(sx.Sx_index_type(ix))
	o.SetHnsw_m(uint(hm))
	o.SetHnsw_ef_construction(uint(efc))
	quant := cfg.Quantization
	if quant == "" {
		quant = QuantizationNone
	}
	if err := checkString("quantization", string(quant)); err != nil {
		return err
	}
	var q int32
	if err := statusError(sx.Sx_quantization_parse(string(quant), &q, eb), eb); err != nil {
		return err
	}
	o.SetQuantization(sx.Sx_quantization(q))
	return statusError(sx.Sx_write_create_collection(tx.handle(), name, o, eb), eb)
}

// DropCollection drops a collection and frees its pages (ErrNotFound when none).
func (tx *WriteTx) DropCollection(name string) error {
	if err := checkString("collection name", name); err != nil {
		return err
	}
	if !tx.lock() {
		return closedWrite()
	}
	defer tx.mu.Unlock()
	eb := getErrbuf()
	defer putErrbuf(eb)
	return statusError(sx.Sx_write_drop_collection(tx.handle(), name, eb), eb)
}

// ListCollections returns the names of the collections as the session sees them.
func (tx *WriteTx) ListCollections() ([]string, error) {
	if !tx.lock() {
		return nil, closedWrite()
	}
	defer tx.mu.Unlock()
	eb := getErrbuf()
	defer putErrbuf(eb)
	var p uintptr
	if err := statusError(sx.Sx_write_list_collections(tx.handle(), &p, eb), eb); err != nil {
		return nil, err
	}
	return takeNames(p), nil
}

// Upsert stores vectors under ids, replacing the vector and metadata of ids that
// exist; within one session the last upsert of an id wins. metadata is nil, or one
// entry per id: nil (none), a json.RawMessage (passed as is) or any value that
// encoding/json marshals to an object. All or nothing: if any item is invalid, none is
// stored. Vectors of different lengths fail with ErrDimensionMismatch.
func (tx *WriteTx) Upsert(collection string, ids []string, vectors [][]float32, metadata []any) error {
	if len(vectors) != len(ids) {
		return errInvalid(itoa(len(ids)) + " ids but " + itoa(len(vectors)) + " vectors")
	}
	dim := 0
	mixed := false
	if len(vectors) > 0 {
		dim = len(vectors[0])
		for _, v := range vectors {
			mixed = mixed || len(v) != dim
		}
	}
	if !tx.lock() {
		return closedWrite()
	}
	defer tx.mu.Unlock()
	if mixed || len(vectors) == 0 {
		// One dimension per call: learn the collection's (which also reports a missing
		// collection as the core does).
		err := tx.viewLocked(collection, func(v sx.Sx_collection) error {
			info, err := describe(v)
			if err != nil {
				return err
			}
			for i, vec := range vectors {
				if len(vec) != info.Dim {
					return errDimension("item " + itoa(i) + " has dimension " + itoa(len(vec)) +
						", collection '" + collection + "' has " + itoa(info.Dim))
				}
			}
			dim = info.Dim
			return nil
		})
		if err != nil {
			return err
		}
	}
	flat := make([]float32, 0, len(vectors)*dim)
	for _, v := range vectors {
		flat = append(flat, v...)
	}
	return tx.upsertLocked(collection, ids, flat, dim, metadata)
}

// UpsertFlat is Upsert with the vectors given row after row in one slice of
// len(ids)*dim floats, passed to the core without copying.
func (tx *WriteTx) UpsertFlat(collection string, ids []string, vectors []float32, dim int, metadata []any) error {
	if dim < 0 || len(vectors) != len(ids)*dim {
		return errInvalid(itoa(len(vectors)) + " floats for " + itoa(len(ids)) + " vectors of dimension " + itoa(dim))
	}
	if !tx.lock() {
		return closedWrite()
	}
	defer tx.mu.Unlock()
	return tx.upsertLocked(collection, ids, vectors, dim, metadata)
}

func (tx *WriteTx) upsertLocked(collection string, ids []string, flat []float32, dim int, metadata []any) error {
	if err := checkString("collection name", collection); err != nil {
		return err
	}
	if metadata != nil && len(metadata) != len(ids) {
		return errInvalid(itoa(len(ids)) + " ids but " + itoa(len(metadata)) + " metadata entries")
	}
	idb, idoff := pack(ids)
	var mb []byte
	var moff []uint64
	if metadata != nil {
		var err error
		if mb, moff, err = packMetadata(metadata); err != nil {
			return err
		}
	}
	eb := getErrbuf()
	defer putErrbuf(eb)
	return statusError(sx.Sx_write_upsert_packed(tx.handle(), collection, int64(len(ids)), idb, idoff,
		flat, int64(dim), mb, moff, eb), eb)
}

// Delete deletes ids from a collection and returns how many of them existed. Ids that
// do not exist are not an error.
func (tx *WriteTx) Delete(collection string, ids []string) (int, error) {
	if err := checkString("collection name", collection); err != nil {
		return 0, err
	}
	if !tx.lock() {
		return 0, closedWrite()
	}
	defer tx.mu.Unlock()
	idb, idoff := pack(ids)
	eb := getErrbuf()
	defer putErrbuf(eb)
	var n uint64
	err := statusError(sx.Sx_write_delete_packed(tx.handle(), collection, int64(len(ids)), idb, idoff, &n, eb), eb)
	return int(n), err
}

// SetUserVersion sets the application-defined number read by UserVersion, as of this
// session.
func (tx *WriteTx) SetUserVersion(v uint64) error {
	if !tx.lock() {
		return closedWrite()
	}
	defer tx.mu.Unlock()
	eb := getErrbuf()
	defer putErrbuf(eb)
	return statusError(sx.Sx_write_set_user_version(tx.handle(), v, eb), eb)
}

// UserVersion returns the application-defined number as this session sees it.
func (tx *WriteTx) UserVersion() (uint64, error) {
	if !tx.lock() {
		return 0, closedWrite()
	}
	defer tx.mu.Unlock()
	eb := getErrbuf()
	defer putErrbuf(eb)
	var n uint64
	err := statusError(sx.Sx_write_user_version(tx.handle(), &n, eb), eb)
	return n, err
}

// Describe describes a collection as the session sees it.
func (tx *WriteTx) Describe(collection string) (info CollectionInfo, err error) {
	err = tx.withView(collection, func(v sx.Sx_collection) (e error) { info, e = describe(v); return })
	return
}

// CollectionStats returns how a collection's slots are used, as the session sees it.
func (tx *WriteTx) CollectionStats(collection string) (s CollectionStats, err error) {
	err = tx.withView(collection, func(v sx.Sx_collection) (e error) { s, e = collStats(v); return })
	return
}

// Count returns the number of live vectors, the session's changes included.
func (tx *WriteTx) Count(collection string) (n uint64, err error) {
	err = tx.withView(collection, func(v sx.Sx_collection) (e error) { n, e = count(v); return })
	return
}

// Get returns the vector stored under id, the session's changes included.
func (tx *WriteTx) Get(collection, id string) (r *Record, err error) {
	err = tx.withView(collection, func(v sx.Sx_collection) (e error) { r, e = get(v, id); return })
	return
}

// Search searches the collection as the session sees it (its own inserts included).
func (tx *WriteTx) Search(ctx context.Context, collection string, query []float32, k int, opts ...SearchOption) (hits []Hit, err error) {
	err = tx.withView(collection, func(v sx.Sx_collection) (e error) {
		hits, e = search(ctx, v, query, k, opts)
		return
	})
	return
}

// SearchBatch searches several queries in one call.
func (tx *WriteTx) SearchBatch(ctx context.Context, collection string, queries [][]float32, k int, opts ...SearchOption) ([][]Hit, error) {
	if len(queries) == 0 {
		return [][]Hit{}, nil
	}
	flat, dim, err := flatten(queries, "queries")
	if err != nil {
		return nil, err
	}
	return tx.SearchBatchFlat(ctx, collection, flat, dim, k, opts...)
}

// SearchBatchFlat is SearchBatch with the queries row after row in one slice.
func (tx *WriteTx) SearchBatchFlat(ctx context.Context, collection string, queries []float32, dim, k int, opts ...SearchOption) (hits [][]Hit, err error) {
	err = tx.withView(collection, func(v sx.Sx_collection) (e error) {
		hits, e = searchBatch(ctx, v, queries, dim, k, opts)
		return
	})
	return
}

// ---- helpers ----------------------------------------------------------------------------

// checkString refuses a NUL inside a string that C reads up to its NUL.
func checkString(what, s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return errInvalid(what + " contains a NUL character")
	}
	return nil
}

// pack puts strings into one buffer with len+1 offsets (the core's packed form).
func pack(ss []string) ([]byte, []uint64) {
	n := 0
	for _, s := range ss {
		n += len(s)
	}
	buf := make([]byte, 0, n)
	off := make([]uint64, len(ss)+1)
	for i, s := range ss {
		buf = append(buf, s...)
		off[i+1] = uint64(len(buf))
	}
	return buf, off
}

func takeNames(p uintptr) []string {
	h := sx.SwigcptrSx_names(p)
	defer sx.DeleteSx_names(h)
	n := sx.Sx_names_count(h)
	out := make([]string, n)
	for i := range out {
		out[i] = sx.Sx_names_get(h, int64(i))
	}
	return out
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	neg := n < 0
	if neg {
		n = -n
	}
	var b [24]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
