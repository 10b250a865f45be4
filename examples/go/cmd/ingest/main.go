// Command ingest upserts embeddings into a Sextant file in batched commits while any
// number of searchers, in this or other languages, read the same file. It behaves as
// examples/python/ingest.py: each commit adds -batch new vectors (ids doc-0000000...),
// sets the user version to the batch number, and prints one JSON line with a probe
// vector of the batch; -batches 0 runs until SIGTERM or SIGINT.
//
//	ingest -db vectors.sx [-dim 64] [-batch 200] [-batches 0] [-interval 50ms]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	sextant "github.com/sextant/sextant/bindings/go"
)

func main() {
	dbPath := flag.String("db", "vectors.sx", "database file")
	collection := flag.String("collection", "docs", "collection")
	dim := flag.Int("dim", 64, "dimension (when the collection is created)")
	batch := flag.Int("batch", 200, "vectors per commit")
	batches := flag.Int("batches", 0, "commits to make (0: until signalled)")
	interval := flag.Duration("interval", 50*time.Millisecond, "pause between commits")
	quiet := flag.Bool("quiet", false, "no line per commit, only the summary")
	flag.Parse()

	var stop atomic.Bool
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	go func() { <-sig; stop.Store(true) }()

	db, err := sextant.Open(*dbPath)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	out := json.NewEncoder(os.Stdout)
	ctx := context.Background()
	commits, vectors, t0 := 0, 0, time.Now()
	for !stop.Load() && (*batches == 0 || commits < *batches) {
		var ids []string
		var flat []float32
		var first, generation uint64
		var tc time.Time
		err := db.Update(ctx, func(tx *sextant.WriteTx) error { // commits when it returns nil
			names, err := tx.ListCollections()
			if err != nil {
				return err
			}
			if !slices.Contains(names, *collection) {
				if err := tx.CreateCollection(*collection, sextant.CollectionConfig{Dim: *dim, Metric: sextant.L2, Index: sextant.HNSW}); err != nil {
					return err
				}
			}
			if first, err = tx.Count(*collection); err != nil {
				return err
			}
			if generation, err = tx.UserVersion(); err != nil {
				return err
			}
			generation++
			ids = make([]string, *batch)
			flat = make([]float32, *batch**dim)
			meta := make([]any, *batch)
			for i := range ids {
				ids[i] = fmt.Sprintf("doc-%07d", first+uint64(i))
				meta[i] = map[string]any{"batch": generation, "n": first + uint64(i)}
			}
			for i := range flat {
				flat[i] = float32(rand.NormFloat64())
			}
			if err := tx.UpsertFlat(*collection, ids, flat, *dim, meta); err != nil {
				return err
			}
			tc = time.Now()
			return tx.SetUserVersion(generation)
		})
		if err != nil {
			log.Fatal(err)
		}
		// committed: durable and visible to every snapshot begun from now on
		commits++
		vectors += *batch
		if !*quiet {
			p := rand.IntN(*batch)
			_ = out.Encode(map[string]any{
				"event": "commit", "generation": generation, "count": first + uint64(*batch),
				"commit_ms": float64(time.Since(tc).Microseconds()) / 1000,
				"probe_id":  ids[p], "probe": flat[p**dim : (p+1)**dim],
			})
		}
		if *interval > 0 && !stop.Load() {
			time.Sleep(*interval)
		}
	}
	secs := time.Since(t0).Seconds()
	_ = out.Encode(map[string]any{
		"event": "done", "commits": commits, "vectors": vectors, "seconds": secs,
		"vectors_per_s": float64(vectors) / secs,
	})
}
