package sextant

import (
	"bytes"
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

// Quantization is how an HNSW collection keeps the codes its searches walk over.
type Quantization string

// Quantizations.
const (
	// QuantizationNone: float32 vectors only (the default; "" means it too).
	QuantizationNone Quantization = "none"
	// Int8: an 8-bit code per vector (dim + 16 bytes beside its 4 * dim) that HNSW
	// searches walk over; the final candidates are measured again exactly, so the
	// distances returned are exact. HNSW only.
	Int8 Quantization = "int8"
)

// CollectionInfo describes a collection.
type CollectionInfo struct {
	Name           string
	Dim            int
	Metric         Metric
	Index          IndexType
	M              int // HNSW links per node (0 for flat)
	EfConstruction int // HNSW build candidate list (0 for flat)
	Quantization   Quantization
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
	// Metadata is the hit's metadata JSON text as stored (as Record.Metadata), when the
	// search was given WithInclude(IncludeMetadata); nil when not included or none.
	Metadata json.RawMessage
	// Vector is the hit's vector, when the search was given WithInclude(IncludeVector).
	Vector []float32
}

// Include says what search hits carry besides id and distance: a mask of
// IncludeMetadata and IncludeVector.
type Include uint32

// What a search hit may carry.
const (
	IncludeMetadata Include = Include(sx.SX_INCLUDE_METADATA) // Hit.Metadata
	IncludeVector   Include = Include(sx.SX_INCLUDE_VECTOR)   // Hit.Vector
)

type searchConfig struct {
	ef, threads    uint32
	include, exact uint32
	filter         []byte // the filter's JSON text and a NUL; nil for none
	filterErr      error
	argErr         error // the first option out of range
}

// SearchOption configures a search.
type SearchOption func(*searchConfig)

// WithEf sets the HNSW candidate list size (at least k; 0 means max(k, 64)).
func WithEf(ef int) SearchOption { return func(c *searchConfig) { setU32(&c.ef, &c.argErr, "ef", ef) } }

// WithSearchThreads sets the most threads a batch search may use: 0 means the
// database's WithThreads, 1 the calling thread only.
func WithSearchThreads(n int) SearchOption {
	return func(c *searchConfig) { setU32(&c.threads, &c.argErr, "threads", n) }
}

// WithFilter keeps only the hits whose metadata matches filter, a JSON object in the
// language of sextant.h (Chroma/Pinecone style: {"tenant": "x", "year": {"$gte": 2024}},
// $and, $or, $not, $in, $exists, dotted paths). filter is JSON text as a string,
// []byte or json.RawMessage, passed as is; nil for no filter; any other value (a
// map[string]any, a struct) is encoded with encoding/json. An invalid filter fails the
// search with an error matching ErrInvalidArgument, before any work (CheckFilter tells
// the same without a database).
func WithFilter(filter any) SearchOption {
	b, err := filterText(filter)
	return func(c *searchConfig) { c.filter, c.filterErr = b, err }
}

// WithInclude makes hits carry their metadata (IncludeMetadata) and/or vector
// (IncludeVector), read in the same call: no second lookup.
func WithInclude(what Include) SearchOption {
	return func(c *searchConfig) { c.include = uint32(what) }
}

// WithExact makes the search exact (a scan of every matching item) whatever the index.
func WithExact(exact bool) SearchOption {
	return func(c *searchConfig) {
		c.exact = 0
		if exact {
			c.exact = 1
		}
	}
}

// filterText is a filter's JSON text followed by a NUL, as the core reads it.
func filterText(filter any) ([]byte, error) {
	var b []byte
	switch v := filter.(type) {
	case nil:
		return nil, nil
	case string:
		b = []byte(v)
	case []byte:
		b = bytes.Clone(v)
	case json.RawMessage:
		b = bytes.Clone(v)
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			return nil, errInvalid("the filter cannot be encoded as JSON: " + err.Error())
		}
	}
	if bytes.IndexByte(b, 0) >= 0 {
		return nil, errInvalid("the filter holds a NUL byte")
	}
	return append(b, 0), nil
}

// CheckFilter checks a filter (in any form WithFilter takes) without a database: nil
// when it is valid, else an error matching ErrInvalidArgument that names the offending
// part.
func CheckFilter(filter any) error {
	b, err := filterText(filter)
	if err != nil {
		return err
	}
	if b == nil {
		return errInvalid("no filter (nil)")
	}
	eb := getErrbuf()
	defer putErrbuf(eb)
	return statusError(sx.Sx_filter_check(unsafe.String(unsafe.SliceData(b), len(b)-1), eb), eb)
}

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
		Quantization: Quantization(sx.Sx_quantization_name(int(s.GetQuantization()))),
	}
	info.Index = IndexType(sx.Sx_index_type_name(int(s.GetIndex())))
	if info.Index == "" {
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
// The filter's text (nil for none) comes back beside them: it crosses into C as a
// slice of its own.
func searchOpts(ctx context.Context, opts []SearchOption) (*sx.SearchOpts, []byte, func(), error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, nil, &Error{Code: "CANCELLED", Message: "the context is done", cause: err}
	}
	var c searchConfig
	if len(opts) > 0 {
		p := new(searchConfig)
		for _, o := range opts {
			o(p)
		}
		c = *p
		if c.argErr != nil {
			return nil, nil, nil, c.argErr
		}
		if c.filterErr != nil {
			return nil, nil, nil, c.filterErr
		}
	}
	tok, done := watch(ctx)
	if tok == 0 && c.ef == 0 && c.threads == 0 && c.include == 0 && c.exact == 0 {
		return nil, c.filter, done, nil
	}
	return &sx.SearchOpts{Ef: c.ef, Threads: c.threads, CancelToken: tok, Include: c.include, Exact: c.exact}, c.filter, done, nil
}

func search(ctx context.Context, v sx.Sx_collection, query []float32, k int, opts []SearchOption) ([]Hit, error) {
	if k < 0 {
		return nil, errInvalid("k must not be negative (got " + itoa(k) + ")")
	}
	so, filter, done, err := searchOpts(ctx, opts)
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
	st := sx.Sx_go_search(v, query, int64(k), so, &cb.out, &cb.Errbuf, filter, cb.shape[:], dist, idoff, ids)
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
	so, filter, done, err := searchOpts(ctx, opts)
	if err != nil {
		return nil, err
	}
	cb := getCallBuf()
	defer putCallBuf(cb)
	st := sx.Sx_go_search_batch(v, queries, int64(nq), int64(dim), int64(k), so, &cb.out, &cb.Errbuf, filter)
	done()
	if err := statusError(st, &cb.Errbuf); err != nil {
		return nil, withContext(err, ctx)
	}
	out, _ := takeResults(cb, true)
	return out, nil
}

// takeResults copies the search results in cb.out out (in two crossings, three when
// the hits carry metadata or vectors) and frees them: per query when batch, else the
// hits of the one query.
func takeResults(cb *callBuf, batch bool) ([][]Hit, []Hit) {
	var res sx.Sx_results = sx.SwigcptrSx_results(cb.out) // boxed once for the calls
	defer sx.DeleteSx_results(res)
	sx.Sx_go_results_shape(res, cb.shape[:6])
	nq, total, nbytes := int(cb.shape[0]), int(cb.shape[1]), int(cb.shape[2])
	hasMeta, metaBytes, vdim := cb.shape[3] != 0, int(cb.shape[4]), int(cb.shape[5])
	offs := make([]uint64, nq+1+total+1)
	off, idoff := offs[:nq+1], offs[nq+1:]
	dist := make([]float32, total)
	ids := make([]byte, nbytes)
	if sx.Sx_go_results_copy(res, off, dist, idoff, ids) != 0 {
		return nil, nil
	}
	hits := makeHits(total, dist, idoff, ids)
	if hasMeta || vdim > 0 {
		var metaoff []uint64
		var meta []byte
		var vecs []float32
		if hasMeta {
			metaoff, meta = make([]uint64, total+1), make([]byte, metaBytes)
		}
		if vdim > 0 {
			vecs = make([]float32, total*vdim)
		}
		if sx.Sx_go_results_extra(res, metaoff, meta, vecs) != 0 {
			return nil, nil
		}
		for h := range hits {
			if hasMeta {
				// An empty range: no metadata; else the text and its NUL. Capacity
				// capped, so that appending to one hit's metadata never writes into
				// the next one's.
				if a, b := metaoff[h], metaoff[h+1]; b > a {
					hits[h].Metadata = json.RawMessage(meta[a : b-1 : b-1])
				}
			}
			if vdim > 0 {
				hits[h].Vector = vecs[h*vdim : (h+1)*vdim : (h+1)*vdim]
			}
		}
	}
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
