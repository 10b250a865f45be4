package sextant

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// filterDB holds collection "c" (flat, L2, dim 2) and "h" (HNSW, same items): item i
// is (i, 0) with metadata {"i": i, "c": i % 3, "tag": "even"|"odd"}, except every
// tenth item, which has none.
func filterDB(t *testing.T) *DB {
	t.Helper()
	db := tempDB(t)
	const n = 100
	ids := make([]string, n)
	flat := make([]float32, 0, 2*n)
	meta := make([]any, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("id%03d", i)
		flat = append(flat, float32(i), 0)
		tag := "even"
		if i%2 == 1 {
			tag = "odd"
		}
		if i%10 != 0 {
			meta[i] = map[string]any{"i": i, "c": i % 3, "tag": tag}
		}
	}
	mustUpdate(t, db, func(tx *WriteTx) error {
		for _, c := range []struct {
			name string
			idx  IndexType
		}{{"c", Flat}, {"h", HNSW}} {
			if err := tx.CreateCollection(c.name, CollectionConfig{Dim: 2, Metric: L2, Index: c.idx}); err != nil {
				return err
			}
			if err := tx.UpsertFlat(c.name, ids, flat, 2, meta); err != nil {
				return err
			}
		}
		return nil
	})
	return db
}

func hitIDs(hits []Hit) []string {
	out := make([]string, len(hits))
	for i, h := range hits {
		out[i] = h.ID
	}
	return out
}

func TestSearchFilterAndInclude(t *testing.T) {
	db := filterDB(t)
	ctx := context.Background()
	r, err := db.BeginRead()
	if err != nil {
		t.Fatal(err)
	}
	defer r.End()
	q := []float32{50, 0}

	// The same filter as a map, a string, []byte and json.RawMessage.
	forms := []any{
		map[string]any{"c": 1, "i": map[string]any{"$gte": 40}},
		`{"c": 1, "i": {"$gte": 40}}`,
		[]byte(`{"c": 1, "i": {"$gte": 40}}`),
		json.RawMessage(`{"$and": [{"c": 1}, {"i": {"$gte": 40}}]}`),
	}
	want := []string{"id049", "id052", "id046"}
	for _, f := range forms {
		hits, err := r.Search(ctx, "c", q, 3, WithFilter(f))
		if err != nil {
			t.Fatalf("%T: %v", f, err)
		}
		if got := hitIDs(hits); !reflect.DeepEqual(got, want) {
			t.Fatalf("%T: got %v, want %v", f, got, want)
		}
		if hits[0].Metadata != nil || hits[0].Vector != nil {
			t.Fatalf("hits carry what was not asked: %+v", hits[0])
		}
	}

	// Include: metadata as stored (RawMessage, as Get), vectors, none for an item without.
	hits, err := r.Search(ctx, "c", []float32{10, 0}, 3, WithInclude(IncludeMetadata|IncludeVector))
	if err != nil {
		t.Fatal(err)
	}
	if got := hitIDs(hits); !reflect.DeepEqual(got, []string{"id010", "id009", "id011"}) {
		t.Fatalf("got %v", got)
	}
	if hits[0].Metadata != nil || !reflect.DeepEqual(hits[0].Vector, []float32{10, 0}) {
		t.Fatalf("hit without metadata: %+v", hits[0])
	}
	var md map[string]any
	if err := json.Unmarshal(hits[1].Metadata, &md); err != nil || md["tag"] != "odd" || md["i"] != 9.0 {
		t.Fatalf("metadata %q: %v", hits[1].Metadata, err)
	}
	rec, err := r.Get("c", "id009")
	if err != nil || string(rec.Metadata) != string(hits[1].Metadata) {
		t.Fatalf("Get gives %q, the hit %q (%v)", rec.Metadata, hits[1].Metadata, err)
	}
	if !reflect.DeepEqual(hits[2].Vector, []float32{11, 0}) {
		t.Fatalf("vector %v", hits[2].Vector)
	}
	// Appending to one hit's metadata or vector never writes into the next one's.
	_ = append(hits[1].Metadata, 'x')
	_ = append(hits[1].Vector, 99)
	if hits[2].Metadata[0] != '{' || hits[2].Vector[0] != 11 {
		t.Fatal("hits share writable capacity")
	}

	// Metadata only, with a filter: exists/not.
	hits, err = r.Search(ctx, "c", q, 2, WithFilter(map[string]any{"i": map[string]any{"$exists": false}}), WithInclude(IncludeMetadata))
	if err != nil {
		t.Fatal(err)
	}
	if got := hitIDs(hits); !reflect.DeepEqual(got, []string{"id050", "id040"}) || hits[0].Metadata != nil || hits[0].Vector != nil {
		t.Fatalf("got %+v", hits)
	}
	// nil is no filter.
	hits, err = r.Search(ctx, "c", q, 1, WithFilter(nil))
	if err != nil || len(hits) != 1 || hits[0].ID != "id050" {
		t.Fatalf("nil filter: %v %v", hits, err)
	}
	// A filter nothing matches.
	hits, err = r.Search(ctx, "c", q, 5, WithFilter(`{"tag": "none"}`))
	if err != nil || len(hits) != 0 {
		t.Fatalf("no match: %v %v", hits, err)
	}
}

func TestSearchBatchFilterAndInclude(t *testing.T) {
	db := filterDB(t)
	ctx := context.Background()
	err := db.View(func(r *ReadTx) error {
		queries := [][]float32{{0, 0}, {99, 0}, {50, 0}}
		for _, coll := range []string{"c", "h"} {
			res, err := r.SearchBatch(ctx, coll, queries, 2,
				WithFilter(map[string]any{"tag": "odd"}), WithInclude(IncludeMetadata|IncludeVector), WithExact(true))
			if err != nil {
				return err
			}
			want := [][]string{{"id001", "id003"}, {"id099", "id097"}, {"id049", "id051"}}
			for qi, hits := range res {
				if got := hitIDs(hits); !reflect.DeepEqual(got, want[qi]) {
					t.Errorf("%s query %d: got %v, want %v", coll, qi, got, want[qi])
				}
				for _, h := range hits {
					var md map[string]any
					if err := json.Unmarshal(h.Metadata, &md); err != nil || md["tag"] != "odd" {
						t.Errorf("%s %s: metadata %q (%v)", coll, h.ID, h.Metadata, err)
					}
					if len(h.Vector) != 2 || fmt.Sprintf("id%03d", int(h.Vector[0])) != h.ID {
						t.Errorf("%s %s: vector %v", coll, h.ID, h.Vector)
					}
				}
			}
			// Vectors only, no filter: every hit of every query, metadata nil.
			res, err = r.SearchBatchFlat(ctx, coll, []float32{1, 0, 2, 0}, 2, 3, WithInclude(IncludeVector))
			if err != nil {
				return err
			}
			if len(res) != 2 || len(res[1]) != 3 || res[1][0].Metadata != nil || res[1][0].Vector[0] != 2 {
				t.Errorf("%s: %+v", coll, res)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSearchExactMatchesFlat(t *testing.T) {
	db := filterDB(t)
	ctx := context.Background()
	err := db.View(func(r *ReadTx) error {
		f := WithFilter(map[string]any{"$or": []any{map[string]any{"c": 0}, map[string]any{"i": map[string]any{"$lt": 5}}}})
		for _, q := range [][]float32{{3, 0}, {60.4, 1}, {-5, 2}} {
			flat, err := r.Search(ctx, "c", q, 7, f)
			if err != nil {
				return err
			}
			exact, err := r.Search(ctx, "h", q, 7, f, WithExact(true))
			if err != nil {
				return err
			}
			approx, err := r.Search(ctx, "h", q, 7, f, WithEf(64))
			if err != nil {
				return err
			}
			if !reflect.DeepEqual(hitIDs(flat), hitIDs(exact)) {
				t.Errorf("%v: flat %v, hnsw exact %v", q, hitIDs(flat), hitIDs(exact))
			}
			if len(approx) != 7 {
				t.Errorf("%v: hnsw gave %d hits", q, len(approx))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestInvalidFilter(t *testing.T) {
	db := filterDB(t)
	ctx := context.Background()
	bad := []any{
		`{"i": {"$regex": "x"}}`, // unknown operator
		`not json`,
		`[1, 2]`,                         // not an object
		map[string]any{"$and": []any{}},  // empty $and
		`{"a": 1}` + "\x00" + `{"b": 2}`, // a NUL byte
		"",
		make(chan int), // cannot be encoded
	}
	err := db.View(func(r *ReadTx) error {
		for _, f := range bad {
			if err := CheckFilter(f); !isCode(err, ErrInvalidArgument) {
				t.Errorf("CheckFilter(%v): %v", f, err)
			}
			_, err := r.Search(ctx, "h", []float32{1, 0}, 3, WithFilter(f))
			if !isCode(err, ErrInvalidArgument) {
				t.Errorf("Search with filter %v: %v", f, err)
			}
			_, err = r.SearchBatch(ctx, "c", [][]float32{{1, 0}}, 3, WithFilter(f))
			if !isCode(err, ErrInvalidArgument) {
				t.Errorf("SearchBatch with filter %v: %v", f, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckFilter(map[string]any{"tenant": "x", "year": map[string]any{"$gte": 2024}}); err != nil {
		t.Fatal(err)
	}
	if err := CheckFilter(nil); !isCode(err, ErrInvalidArgument) {
		t.Fatalf("CheckFilter(nil): %v", err)
	}
	// The core's message names the offending part.
	err = CheckFilter(`{"i": {"$regex": "x"}}`)
	if e, ok := err.(*Error); !ok || e.Code != "INVALID_ARGUMENT" || !strings.Contains(e.Message, "$regex") {
		t.Fatalf("message: %v", err)
	}
	// An unknown include bit is the core's INVALID_ARGUMENT too.
	err = db.View(func(r *ReadTx) error {
		_, err := r.Search(ctx, "c", []float32{1, 0}, 3, WithInclude(1<<7))
		return err
	})
	if !isCode(err, ErrInvalidArgument) {
		t.Fatalf("include 1<<7: %v", err)
	}
}

func isCode(err, target error) bool {
	return err != nil && errors.Is(err, target)
}

// One filter option value serves many goroutines at once (its text is only read).
func TestSearchFilterSharedAcrossGoroutines(t *testing.T) {
	db := filterDB(t)
	r, err := db.BeginRead()
	if err != nil {
		t.Fatal(err)
	}
	defer r.End()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f, inc := WithFilter(map[string]any{"c": 2}), WithInclude(IncludeMetadata)
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		go func() {
			for i := 0; i < 200; i++ {
				hits, err := r.Search(ctx, "h", []float32{float32(i % 100), 0}, 5, f, inc)
				if err == nil {
					for _, h := range hits {
						var md struct{ C int }
						if json.Unmarshal(h.Metadata, &md) != nil || md.C != 2 {
							err = fmt.Errorf("hit %s has metadata %q", h.ID, h.Metadata)
						}
					}
				}
				if err == nil && len(hits) != 5 {
					err = fmt.Errorf("%d hits", len(hits))
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for g := 0; g < 4; g++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
