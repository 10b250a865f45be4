package sextant

// Benchmarks: go test -run '^$' -bench . -benchtime 2s ./bindings/go
//
//   - BenchmarkSearchOverhead: one search of a tiny flat collection (64 vectors, k 10), through
//     this package (Search: the session's view lookup, the call, copying the hits
//     out) and through the same C function in a C loop (sx_go_bench_search, the floor
//     no binding can go under). It reports both and their difference,
//     overhead-ns/op, the cost of the binding per search.
//   - BenchmarkSearchHNSW: single-thread QPS on an HNSW collection, Go against the C
//     loop on the same data and query; qps-ratio is Go's QPS over C's.
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

// cLoop runs the C loop for about as long as b asks and returns its seconds per search.
func cLoop(b *testing.B, d *benchData, q []float32, k int) float64 {
	var sec float64
	err := d.r.withView("c", func(v sx.Sx_collection) error {
		iters := int64(b.N)
		if iters < 1000 {
			iters = 1000
		}
		sec = sx.Sx_go_bench_search(v, q, int64(k), iters)
		return nil
	})
	if err != nil || sec < 0 {
		b.Fatalf("C loop failed: %v", err)
	}
	return sec
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
	b.Run("c", func(b *testing.B) {
		sec := cLoop(b, d, q, 10)
		b.ReportMetric(sec*1e9, "c-ns/op")
	})
	b.Run("difference", func(b *testing.B) {
		// Short interleaved rounds of both paths; the fastest round of each is the one
		// least disturbed by the rest of the machine, and their difference is the
		// binding's cost per search.
		const per = 200
		rounds := max(b.N/per, 50)
		goNs := make([]float64, 0, rounds)
		cNs := make([]float64, 0, rounds)
		v, err := d.r.view("c")
		if err != nil {
			b.Fatal(err)
		}
		for r := 0; r < rounds; r++ {
			start := time.Now()
			for i := 0; i < per; i++ {
				if _, err := d.r.Search(ctx, "c", q, 10); err != nil {
					b.Fatal(err)
				}
			}
			goNs = append(goNs, float64(time.Since(start).Nanoseconds())/per)
			cNs = append(cNs, sx.Sx_go_bench_search(v, q, 10, per)*1e9)
		}
		sort.Float64s(goNs)
		sort.Float64s(cNs)
		b.ReportMetric(goNs[0], "go-min-ns/search")
		b.ReportMetric(cNs[0], "c-min-ns/search")
		b.ReportMetric(goNs[0]-cNs[0], "overhead-ns/op")
		b.ReportMetric(goNs[len(goNs)/2]-cNs[len(cNs)/2], "overhead-median-ns/op")
	})
}

func BenchmarkSearchHNSW(b *testing.B) {
	d := benchFixture(b, "hnsw", 20000, 64, 0, HNSW)
	ctx := context.Background()
	q := d.query(1)
	var goQPS, cQPS float64
	b.Run("go", func(b *testing.B) {
		start := time.Now()
		for i := 0; i < b.N; i++ {
			if _, err := d.r.Search(ctx, "c", q, 10); err != nil {
				b.Fatal(err)
			}
		}
		goQPS = float64(b.N) / time.Since(start).Seconds()
		b.ReportMetric(goQPS, "qps")
	})
	b.Run("c", func(b *testing.B) {
		sec := cLoop(b, d, q, 10)
		cQPS = 1 / sec
		b.ReportMetric(cQPS, "qps")
	})
	if cQPS > 0 {
		b.Logf("HNSW 20000x64, k 10, one thread: Go %.0f QPS, C %.0f QPS, ratio %.3f", goQPS, cQPS, goQPS/cQPS)
	}
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
