// Command searcher searches one Sextant file in a loop for a while, each search in a
// fresh read session (a new snapshot), printing what it sees once a second (the
// snapshot's generation and count, a search) and its throughput at the end. It is
// the Go part of tools/demo.sh; several goroutines may search at once (-threads).
//
//	searcher -db vectors.sx [-seconds 10] [-threads 1] [-k 10]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	sextant "github.com/sextant/sextant/bindings/go"
)

// newest searches for the vector the ingest committed last in this snapshot (its ids
// are doc-0000000, doc-0000001, ...): it must come first, at distance 0. An ef of at
// least the count makes the HNSW search exact; at the default ef (64) about 1 in 2,000
// of these vectors would not be its own first hit.
func newest(ctx context.Context, tx *sextant.ReadTx, collection string, count uint64) string {
	id := fmt.Sprintf("doc-%07d", count-1)
	rec, err := tx.Get(collection, id)
	if err != nil { // another ingest's ids
		return ""
	}
	hits, err := tx.Search(ctx, collection, rec.Vector, 1, sextant.WithEf(int(max(count, 64))))
	if err != nil || len(hits) == 0 {
		return fmt.Sprintf("; newest %s -> error %v", id, err)
	}
	return fmt.Sprintf("; newest %s -> %s (%.3f)", id, hits[0].ID, hits[0].Distance)
}

func main() {
	dbPath := flag.String("db", "vectors.sx", "database file")
	collection := flag.String("collection", "docs", "collection")
	seconds := flag.Float64("seconds", 10, "how long to search")
	threads := flag.Int("threads", 1, "goroutines searching at once")
	k := flag.Int("k", 10, "hits per search")
	label := flag.String("label", "go", "prefix of each line")
	flag.Parse()

	db, err := sextant.Open(*dbPath)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	deadline := time.Now().Add(time.Duration(*seconds * float64(time.Second)))
	var searches atomic.Int64
	var mu sync.Mutex
	nextReport := time.Now()
	var wg sync.WaitGroup
	for range *threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var query []float32
			for time.Now().Before(deadline) {
				err := db.View(func(tx *sextant.ReadTx) error { // one snapshot
					info, err := tx.Describe(*collection)
					if errors.Is(err, sextant.ErrNotFound) {
						time.Sleep(10 * time.Millisecond) // not created yet
						return nil
					} else if err != nil {
						return err
					}
					if len(query) != info.Dim {
						query = make([]float32, info.Dim)
					}
					for i := range query {
						query[i] = float32(rand.NormFloat64())
					}
					hits, err := tx.Search(ctx, *collection, query, *k)
					if err != nil {
						return err
					}
					searches.Add(1)
					mu.Lock()
					defer mu.Unlock()
					if now := time.Now(); now.After(nextReport) && len(hits) > 0 {
						nextReport = now.Add(time.Second)
						gen, err := tx.UserVersion()
						if err != nil {
							return err
						}
						fmt.Printf("%-6s pid %-7d snapshot gen %5d, %7d vectors; random query -> %s (%.3f)%s\n",
							*label, os.Getpid(), gen, info.Count, hits[0].ID, hits[0].Distance,
							newest(ctx, tx, *collection, info.Count))
					}
					return nil
				})
				if err != nil {
					log.Fatal(err)
				}
			}
		}()
	}
	wg.Wait()
	n := searches.Load()
	fmt.Printf("%-6s pid %-7d DONE: %d searches in %.1f s = %.0f searches/s (each in its own snapshot, %d goroutine(s))\n",
		*label, os.Getpid(), n, *seconds, float64(n) / *seconds, *threads)
}
