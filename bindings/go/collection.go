package sextant

import (
	"context"
	"encoding/json"
	"unsafe"

	"github.com/sextant/sextant/bindings/go/internal/sx"
)

// Metric is a collection's distance metric. Smaller distances are closer.
type Metric string

// Metrics.
const (
	L2     Metric = "l2"     // squared Euclidean distance
	IP     Metric = "ip"     // 1 - dot(a, b)
	Cosine Metric = "cosine" // 1 - cos(a, b); zero vectors are rejected
)

// IndexType is a collection's index.
type IndexType string

// Index types.
const (
	HNSW IndexType = "hnsw" // approximate graph index (the default)
	Flat IndexType = "flat" // exact scan
)

// CollectionInfo describes a collection.
type CollectionInfo struct {
	Name           string
	Dim            int
	Metric         Metric
	Index          IndexType
	M              int // HNSW links per node (0 for flat)
	EfConstruction int // HNSW build candidate list (0 for flat)
	Count          uint64
}

// CollectionStats tells how a collection's slots are used: Slots == Count + Dead + Free.
type CollectionStats struct {
	Count uint64 // live vectors
	Slots uint64 // slots taken so far
	Dead  uint64 // HNSW: deleted or replaced vectors still in the graph as waypoints
	Free  uint64 // slots free for reuse
}

// Record is one stored vector.
type Record struct {
	ID       string
	Vector   []float32
	Metadata json.RawMessage // nil when the vector has none
}

// Hit is one search result.
type Hit struct {
	ID       string
	Distance float32
}

type searchConfig struct {
	ef, threads uint32
}

// SearchOption configures a search.
type SearchOption func(*searchConfig)

// WithEf sets the HNSW candidate list size (at least k; 0 means max(k, 64)).
func WithEf(ef int) SearchOption { return func(c *searchConfig) { c.ef = clampU32(ef) } }

// WithSearchThreads sets the most threads a batch search may use: 0 means the
// database's WithThreads, 1 the calling thread only.
func WithSearchThreads(n int) SearchOption { return func(c *searchConfig) { c.threads = clampU32(n) } }

func describe(v sx.Sx_collection) (CollectionInfo, error) {
	s := sx.NewSx_collection_info()
	defer sx.DeleteSx_collection_info(s)
	s.SetVersion(uint(sx.SX_COLLECTION_INFO_VERSION))
	eb := getErrbuf()
	defer putErrbuf(eb)
	if err := statusError(sx.Sx_collection_describe(v, s, eb), eb); err != nil {
		return CollectionInfo{}, err
	}
	info := CollectionInfo{
		Name: s.GetName(), Dim: int(s.GetDim()), Metric: Metric(sx.Sx_metric_name(int(s.GetMetric()))),
		M: int(s.GetHnsw_m()), EfConstruction: int(s.GetHnsw_ef_construction()), Count: s.GetCount(),
	}
	switch s.GetIndex() {
	case sx.SX_INDEX_FLAT:
		info.Index = Flat
	case sx.SX_INDEX_HNSW:
		info.Index = HNSW
	default:
		info.Index = IndexType("unknown")
	}
	return info, nil
}

func collStats(v sx.Sx_collection) (CollectionStats, error) {
	s := sx.NewSx_collection_stats()
	defer sx.DeleteSx_collection_stats(s)
	s.SetVersion(uint(sx.SX_COLLECTION_STATS_VERSION))
	eb := getErrbuf()
	defer putErrbuf(eb)
	if err := statusError(sx.Sx_collection_stats_get(v, s, eb), eb); err != nil {
		return CollectionStats{}, err
	}
	return CollectionStats{Count: s.GetCount(), Slots: s.GetSlots(), Dead: s.GetDead(), Free: s.GetFree()}, nil
}

func count(v sx.Sx_collection) (uint64, error) {
	eb := getErrbuf()
	defer putErrbuf(eb)
	var n uint64
	err := statusError(sx.Sx_collection_count(v, &n, eb), eb)
	return n, err
}

func get(v sx.Sx_collection, id string) (*Record, error) {
	if err := checkString("id", id); err != nil {
		return nil, err
	}
	eb := getErrbuf()
	defer putErrbuf(eb)
	var p uintptr
	if err := statusError(sx.Sx_collection_get(v, id, &p, eb), eb); err != nil {
		return nil, err
	}
	rec := sx.SwigcptrSx_record(p)
	defer sx.DeleteSx_record(rec)
	dim := sx.Sx_go_record_vector(rec, nil)
	vec := make([]float32, dim)
	if dim > 0 {
		sx.Sx_go_record_vector(rec, vec)
	}
	r := &Record{ID: sx.Sx_record_id(rec), Vector: vec}
	if md := sx.Sx_record_metadata(rec); md != "" {
		r.Metadata = json.RawMessage(md)
	}
	return r, nil
}

// searchOpts makes the per-call options: nil (the defaults) when there is nothing
// to set, so that a plain search allocates nothing for them.
func searchOpts(ctx context.Context, opts []SearchOption) (*sx.SearchOpts, func(), error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, &Error{Code: "CANCELLED", Message: "the context is done", cause: err}
	}
	var c searchConfig
	if len(opts) > 0 {
		p := new(searchConfig)
		for _, o := range opts {
			o(p)
		}
		c = *p
	}
	tok, done := watch(ctx)
	if tok == 0 && c.ef == 0 && c.threads == 0 {
		return nil, done, nil
	}
	return &sx.SearchOpts{Ef: c.ef, Threads: c.threads, CancelToken: tok}, done, nil
}

func search(ctx context.Context, v sx.Sx_collection, query []float32, k int, opts []SearchOption) ([]Hit, error) {
	if k < 0 {
		return nil, errInvalid("k must not be negative (got " + itoa(k) + ")")
	}
	so, done, err := searchOpts(ctx, opts)
	if err != nil {
		return nil, err
	}
	cb := getCallBuf()
	defer putCallBuf(cb)
	// Slices for the hits, sized from k (ids of 32 bytes on average): the search and
	// the copy into them take one crossing when the hits fit, else a second one.
	guess := min(k, len(cb.dist))
	dist, idoff := cb.dist[:guess], cb.idoff[:guess+1]
	ids := make([]byte, guess*32)
	st := sx.Sx_go_search(v, query, int64(k), so, &cb.out, &cb.Errbuf, cb.shape[:], dist, idoff, ids)
	done()
	if err := statusError(st, &cb.Errbuf); err != nil {
		return nil, withContext(err, ctx)
	}
	if cb.out != 0 {
		_, hits := takeResults(cb, false)
		return hits, nil
	}
	return makeHits(int(cb.shape[1]), dist, idoff, ids), nil
}

// takeOne copies the hits of a one-query search out, in one crossing when they fit
// the slices sized from k (ids of up to 32 bytes on average), else as takeResults.
func takeOne(cb *callBuf, k int) []Hit {
	guess := min(k, len(cb.dist))
	dist, idoff := cb.dist[:guess], cb.idoff[:guess+1]
	ids := make([]byte, guess*32)
	var res sx.Sx_results = sx.SwigcptrSx_results(cb.out)
	if sx.Sx_go_results_take(res, cb.shape[:], dist, idoff, ids) != 0 {
		_, hits := takeResults(cb, false)
		return hits
	}
	total := int(cb.shape[1])
	return makeHits(total, dist, idoff, ids)
}

// makeHits builds total hits from copied distances, id offsets and id bytes (which
// become the hits' ids: the caller must not reuse them).
func makeHits(total int, dist []float32, idoff []uint64, ids []byte) []Hit {
	all := unsafe.String(unsafe.SliceData(ids), len(ids)) // ids is never written again
	hits := make([]Hit, total)
	for h := range hits {
		// The range may or may not count the NUL that ends each id (sextant.h says it
		// does not); ids hold no NUL, so a trailing one is dropped either way.
		a, b := idoff[h], idoff[h+1]
		if b > a && all[b-1] == 0 {
			b--
		}
		hits[h] = Hit{ID: all[a:b], Distance: dist[h]}
	}
	return hits
}

func searchBatch(ctx context.Context, v sx.Sx_collection, queries []float32, dim, k int, opts []SearchOption) ([][]Hit, error) {
	if k < 0 {
		return nil, errInvalid("k must not be negative (got " + itoa(k) + ")")
	}
	nq := 0
	switch {
	case dim < 0 || (dim == 0 && len(queries) > 0):
		return nil, errInvalid("dimension " + itoa(dim) + " is not positive")
	case dim > 0:
		nq = len(queries) / dim
	}
	if nq*dim != len(queries) {
		return nil, errInvalid(itoa(len(queries)) + " floats are not a whole number of queries of dimension " + itoa(dim))
	}
	so, done, err := searchOpts(ctx, opts)
	if err != nil {
		return nil, err
	}
	cb := getCallBuf()
	defer putCallBuf(cb)
	st := sx.Sx_collection_search_batch(v, queries, int64(nq), int64(dim), int64(k), so, &cb.out, &cb.Errbuf)
	done()
	if err := statusError(st, &cb.Errbuf); err != nil {
		return nil, withContext(err, ctx)
	}
	out, _ := takeResults(cb, true)
	return out, nil
}

// takeResults copies the search results in cb.out out (in two crossings) and frees
// them: per query when batch, else the hits of the one query.
func takeResults(cb *callBuf, batch bool) ([][]Hit, []Hit) {
	var res sx.Sx_results = sx.SwigcptrSx_results(cb.out) // boxed once for the three calls
	defer sx.DeleteSx_results(res)
	sx.Sx_go_results_shape(res, cb.shape[:3])
	nq, total, nbytes := int(cb.shape[0]), int(cb.shape[1]), int(cb.shape[2])
	offs := make([]uint64, nq+1+total+1)
	off, idoff := offs[:nq+1], offs[nq+1:]
	dist := make([]float32, total)
	ids := make([]byte, nbytes)
	if sx.Sx_go_results_copy(res, off, dist, idoff, ids) != 0 {
		return nil, nil
	}
	hits := makeHits(total, dist, idoff, ids)
	if !batch {
		return nil, hits
	}
	out := make([][]Hit, nq)
	for q := range out {
		out[q] = hits[off[q]:off[q+1]:off[q+1]]
	}
	return out, nil
}

// flatten joins rows of one length into one slice.
func flatten(rows [][]float32, what string) ([]float32, int, error) {
	if len(rows) == 0 {
		return nil, 0, nil
	}
	dim := len(rows[0])
	flat := make([]float32, 0, len(rows)*dim)
	for i, r := range rows {
		if len(r) != dim {
			return nil, 0, errDimension(what + "[" + itoa(i) + "] has dimension " + itoa(len(r)) + ", " + what + "[0] has " + itoa(dim))
		}
		flat = append(flat, r...)
	}
	return flat, dim, nil
}

// packMetadata encodes metadata entries into the packed form: nil is an empty item
// (none), json.RawMessage is passed as is, anything else goes through json.Marshal.
func packMetadata(md []any) ([]byte, []uint64, error) {
	var buf []byte
	off := make([]uint64, len(md)+1)
	for i, m := range md {
		switch v := m.(type) {
		case nil:
		case json.RawMessage:
			buf = append(buf, v...)
		default:
			b, err := json.Marshal(v)
			if err != nil {
				return nil, nil, errInvalid("metadata[" + itoa(i) + "] cannot be encoded as JSON: " + err.Error())
			}
			buf = append(buf, b...)
		}
		off[i+1] = uint64(len(buf))
	}
	if buf == nil {
		buf = []byte{}
	}
	return buf, off, nil
}
