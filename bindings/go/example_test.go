package sextant_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	sextant "github.com/sextant/sextant/bindings/go"
)

func exampleDir() string {
	dir, err := os.MkdirTemp("", "sextant-example-")
	if err != nil {
		log.Fatal(err)
	}
	return dir
}

// Open a database, write in one session, search in another.
func Example() {
	dir := exampleDir()
	defer os.RemoveAll(dir)
	db, err := sextant.Open(filepath.Join(dir, "vectors.sx"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()

	err = db.Update(ctx, func(tx *sextant.WriteTx) error {
		if err := tx.CreateCollection("docs", sextant.CollectionConfig{
			Dim: 3, Metric: sextant.Cosine, Index: sextant.HNSW,
		}); err != nil {
			return err
		}
		return tx.Upsert("docs",
			[]string{"apple", "banana", "cherry"},
			[][]float32{{1, 0, 0}, {0.9, 0.1, 0}, {0, 0, 1}},
			[]any{map[string]any{"color": "red"}, nil, nil})
	})
	if err != nil {
		log.Fatal(err)
	}

	err = db.View(func(tx *sextant.ReadTx) error {
		hits, err := tx.Search(ctx, "docs", []float32{1, 0.05, 0}, 2)
		if err != nil {
			return err
		}
		for _, h := range hits {
			fmt.Printf("%s %.3f\n", h.ID, h.Distance)
		}
		rec, err := tx.Get("docs", "apple")
		if err != nil {
			return err
		}
		fmt.Println(rec.ID, string(rec.Metadata))
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// apple 0.001
	// banana 0.002
	// apple {"color":"red"}
}

// Errors carry the status name shared by every binding; match them with errors.Is.
func ExampleError() {
	dir := exampleDir()
	defer os.RemoveAll(dir)
	_, err := sextant.Open(filepath.Join(dir, "missing.sx"), sextant.ReadOnly())
	fmt.Println(errors.Is(err, sextant.ErrNotFound))
	var e *sextant.Error
	if errors.As(err, &e) {
		fmt.Println(e.Code)
	}
	// Output:
	// true
	// NOT_FOUND
}

// BeginWrite waits for the write lock as long as its context allows.
func ExampleDB_BeginWrite() {
	dir := exampleDir()
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "w.sx")
	a, _ := sextant.Open(path)
	defer a.Close()
	b, _ := sextant.Open(path) // another handle, as another process would have
	defer b.Close()

	w, err := a.BeginWrite(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = b.BeginWrite(ctx)
	fmt.Println(errors.Is(err, sextant.ErrBusy), errors.Is(err, context.DeadlineExceeded))
	w.Abort()
	// Output:
	// true true
}

// A read session may be searched by many goroutines at once.
func ExampleReadTx_Search() {
	dir := exampleDir()
	defer os.RemoveAll(dir)
	db, _ := sextant.Open(filepath.Join(dir, "r.sx"))
	defer db.Close()
	ctx := context.Background()
	db.Update(ctx, func(tx *sextant.WriteTx) error {
		tx.CreateCollection("c", sextant.CollectionConfig{Dim: 2, Metric: sextant.L2, Index: sextant.Flat})
		return tx.UpsertFlat("c", []string{"a", "b", "c"}, []float32{0, 0, 1, 0, 5, 5}, 2, nil)
	})
	tx, _ := db.BeginRead()
	defer tx.End()
	results := make(chan string, 4)
	for g := 0; g < 4; g++ {
		go func() {
			hits, err := tx.Search(ctx, "c", []float32{0.9, 0}, 1, sextant.WithEf(16))
			if err != nil {
				results <- err.Error()
				return
			}
			results <- hits[0].ID
		}()
	}
	for g := 0; g < 4; g++ {
		fmt.Print(<-results, " ")
	}
	fmt.Println()
	// Output:
	// b b b b
}

// A filter over metadata, with hits that carry their metadata: no second lookup.
func ExampleWithFilter() {
	dir := exampleDir()
	defer os.RemoveAll(dir)
	db, _ := sextant.Open(filepath.Join(dir, "f.sx"))
	defer db.Close()
	ctx := context.Background()
	db.Update(ctx, func(tx *sextant.WriteTx) error {
		tx.CreateCollection("docs", sextant.CollectionConfig{Dim: 2, Metric: sextant.L2, Index: sextant.HNSW})
		return tx.Upsert("docs", []string{"a", "b", "c"}, [][]float32{{0, 0}, {1, 0}, {2, 0}}, []any{
			map[string]any{"tenant": "x", "year": 2023},
			map[string]any{"tenant": "x", "year": 2024},
			map[string]any{"tenant": "y", "year": 2025},
		})
	})
	db.View(func(tx *sextant.ReadTx) error {
		hits, err := tx.Search(ctx, "docs", []float32{0, 0}, 10,
			sextant.WithFilter(map[string]any{"tenant": "x", "year": map[string]any{"$gte": 2024}}),
			sextant.WithInclude(sextant.IncludeMetadata))
		for _, h := range hits {
			fmt.Println(h.ID, h.Distance, string(h.Metadata))
		}
		if err != nil {
			return err
		}
		_, err = tx.Search(ctx, "docs", []float32{0, 0}, 10, sextant.WithFilter(`{"year": {"$after": 2024}}`))
		fmt.Println(errors.Is(err, sextant.ErrInvalidArgument))
		return nil
	})
	// Output:
	// b 1 {"tenant":"x","year":2024}
	// true
}
