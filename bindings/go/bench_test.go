package sextant

// Benchmarks: go test -run '^$' -bench . -benchtime 2s ./bindings/go
//
//   - BenchmarkSearchOverhead: one search of a tiny flat collection (64 vectors, k 10), through
//     this package (Search: the session's view lookup, the call, copying the hits
//     out) and through the same C function in a C loop (sx_go_bench_search, the floor
//     no binding can go under). It reports both and their difference,
//     overhead-ns/op, the cost of the binding per search.
//   - BenchmarkSearchHNSW: single-thread QPS on an HNSW collection (20000 vectors of
//     dimension 64, k 10, 256 queries cycled), Go against the C loop on the same data
//     and queries; qps-ratio is Go's QPS over C's.
//   - BenchmarkSearchParallel: QPS with GOMAXPROCS goroutines searching one ReadTx.

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/sextant/sextant/bindings/go/internal/sx"
)

type benchData struct {
	db      *DB
	r       *ReadTx
	queries []float32
	dim     int
}

var (
	benchOnce sync.Map // name -> *benchData
	benchMu   sync.Mutex
	benchDirs []string
)

func benchFixture(b *testing.B, name string, n, dim, threads int, index IndexType) *benchData {
	benchMu.Lock()
	defer benchMu.Unlock()
	if d, ok := benchOnce.Load(name); ok {
		return d.(*benchData)
	}
	dir, err := os.MkdirTemp("", "sx-go-bench-")
	if err != nil {
		b.Fatal(err)
	}
	benchDirs = append(benchDirs, dir)
	db, err := Open(filepath.Join(dir, name+".sx"), WithSync(SyncOff), WithThreads(threads))
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	err = db.Update(context.Background(), func(tx *WriteTx) error {
		if err := tx.CreateCollection("c", CollectionConfig{Dim: dim, Metric: L2, Index: index}); err != nil {
			return err
		}
		ids := make([]string, n)
		for i := range ids {
			ids[i] = "v" + itoa(i)
		}
		return tx.UpsertFlat("c", ids, generate(1, n, dim), dim, nil)
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%s: %d vectors of dimension %d (%s) loaded in %v", name, n, dim, index, time.Since(start))
	r, err := db.BeginRead()
	if err != nil {
		b.Fatal(err)
	}
	d := &benchData{db: db, r: r, queries: generate(2, 256, dim), dim: dim}
	benchOnce.Store(name, d)
	return d
}

func (d *benchData) query(i int) []float32 {
	i %= len(d.queries) / d.dim
	return d.queries[i*d.dim : (i+1)*d.dim]
}

// compare runs short interleaved rounds of the same searches (nq queries, cycled)
// through this package and through the C loop, and reports per search the fastest
// round of each (the one least disturbed by the rest of the machine), the medians,
// and the difference: the binding's cost per search.
func compare(b *testing.B, d *benchData, nq, k int) (goNs, cNs float64) {
	ctx := context.Background()
	const per = 64
	rounds := max(b.N/per, 100)
	gos := make([]float64, 0, rounds)
	cs := make([]float64, 0, rounds)
	v, err := d.r.view("c")
	if err != nil {
		b.Fatal(err)
	}
	qs := d.queries[:nq*d.dim]
	for r := 0; r < rounds; r++ {
		start := time.Now()
		for i := 0; i < per; i++ {
			if _, err := d.r.Search(ctx, "c", d.query(i%nq), k); err != nil {
				b.Fatal(err)
			}
		}
		gos = append(gos, float64(time.Since(start).Nanoseconds())/per)
		sec := sx.Sx_go_bench_search(v, qs, int64(nq), int64(d.dim), int64(k), per)
		if sec < 0 {
			b.Fatal("the C loop failed")
		}
		cs = append(cs, sec*1e9)
	}
	sort.Float64s(gos)
	sort.Float64s(cs)
	b.ReportMetric(gos[0], "go-ns/search")
	b.ReportMetric(cs[0], "c-ns/search")
	b.ReportMetric(gos[0]-cs[0], "overhead-ns/op")
	b.ReportMetric(gos[len(gos)/2]-cs[len(cs)/2], "overhead-median-ns/op")
	return gos[0], cs[0]
}

func BenchmarkSearchOverhead(b *testing.B) {
	d := benchFixture(b, "small", 64, 16, 1, Flat)
	ctx := context.Background()
	q := d.query(0)
	b.Run("go", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := d.r.Search(ctx, "c", q, 10); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("difference", func(b *testing.B) { compare(b, d, 1, 10) })
}

func BenchmarkSearchHNSW(b *testing.B) {
	d := benchFixture(b, "hnsw", 20000, 64, 0, HNSW)
	goNs, cNs := compare(b, d, 256, 10)
	b.ReportMetric(1e9/goNs, "go-qps")
	b.ReportMetric(1e9/cNs, "c-qps")
	b.ReportMetric(cNs/goNs, "qps-ratio")
}

func BenchmarkSearchParallel(b *testing.B) {
	d := benchFixture(b, "hnsw", 20000, 64, 0, HNSW)
	ctx := context.Background()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := d.r.Search(ctx, "c", d.query(i), 10); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "qps")
}

// BenchmarkSearchCrossings: the search and the copy of its hits in one crossing
// (sx_go_search, what Search does) against two (sx_collection_search, then
// sx_go_results_take), interleaved.
func BenchmarkSearchCrossings(b *testing.B) {
	d := benchFixture(b, "small", 64, 16, 1, Flat)
	v, err := d.r.view("c")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	q := d.query(0)
	const per = 64
	rounds := max(b.N/per, 200)
	one := make([]float64, 0, rounds)
	two := make([]float64, 0, rounds)
	for r := 0; r < rounds; r++ {
		start := time.Now()
		for i := 0; i < per; i++ {
			if _, err := search(ctx, v, q, 10, nil); err != nil {
				b.Fatal(err)
			}
		}
		one = append(one, float64(time.Since(start).Nanoseconds())/per)
		start = time.Now()
		for i := 0; i < per; i++ {
			if _, err := searchTwoCrossings(v, q, 10); err != nil {
				b.Fatal(err)
			}
		}
		two = append(two, float64(time.Since(start).Nanoseconds())/per)
	}
	sort.Float64s(one)
	sort.Float64s(two)
	b.ReportMetric(one[0], "one-ns/search")
	b.ReportMetric(two[0], "two-ns/search")
	b.ReportMetric(one[len(one)/2], "one-median-ns/search")
	b.ReportMetric(two[len(two)/2], "two-median-ns/search")
}

// searchTwoCrossings is search as two crossings (the generated sx_collection_search,
// then sx_go_results_take), kept for BenchmarkSearchCrossings.
func searchTwoCrossings(v sx.Sx_collection, query []float32, k int) ([]Hit, error) {
	cb := getCallBuf()
	defer putCallBuf(cb)
	st := sx.Sx_collection_search(v, query, int64(k), nil, &cb.out, &cb.Errbuf)
	if err := statusError(st, &cb.Errbuf); err != nil {
		return nil, err
	}
	return takeOne(cb, k), nil
}
