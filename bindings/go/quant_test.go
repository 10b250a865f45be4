package sextant

import (
	"context"
	"fmt"
	"math/rand"
	"testing"
)

// An int8 collection: the option reaches the core (Describe shows it, a flat index and
// an unknown name are refused), searches find the exact neighbours with their exact
// float32 distances.
func TestQuantizedCollection(t *testing.T) {
	db := tempDB(t)
	const n, dim = 1200, 16
	rng := rand.New(rand.NewSource(3))
	ids := make([]string, n)
	flat := make([]float32, 0, n*dim)
	for i := range ids {
		ids[i] = fmt.Sprintf("v%d", i)
		for j := 0; j < dim; j++ {
			flat = append(flat, float32(rng.NormFloat64()))
		}
	}
	mustUpdate(t, db, func(tx *WriteTx) error {
		if err := tx.CreateCollection("q", CollectionConfig{Dim: dim, Metric: L2, Index: HNSW, Quantization: Int8}); err != nil {
			return err
		}
		wantErr(t, tx.CreateCollection("f", CollectionConfig{Dim: dim, Metric: L2, Index: Flat, Quantization: Int8}), ErrInvalidArgument)
		wantErr(t, tx.CreateCollection("u", CollectionConfig{Dim: dim, Metric: L2, Index: HNSW, Quantization: "int4"}), ErrInvalidArgument)
		if err := tx.CreateCollection("n", CollectionConfig{Dim: dim, Metric: L2, Index: HNSW}); err != nil {
			return err
		}
		return tx.UpsertFlat("q", ids, flat, dim, nil)
	})
	r, err := db.BeginRead()
	if err != nil {
		t.Fatal(err)
	}
	defer r.End()
	info, err := r.Describe("q")
	if err != nil || info.Quantization != Int8 || info.Index != HNSW {
		t.Fatalf("Describe: %+v %v", info, err)
	}
	if info, err := r.Describe("n"); err != nil || info.Quantization != QuantizationNone {
		t.Fatalf("Describe n: %+v %v", info, err)
	}
	q := flat[5*dim : 6*dim]
	hits, err := r.Search(context.Background(), "q", q, 5, WithEf(n))
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) != 5 || hits[0].ID != "v5" || hits[0].Distance != 0 {
		t.Fatalf("hits %+v", hits)
	}
	for _, h := range hits {
		var row int
		fmt.Sscanf(h.ID, "v%d", &row)
		var d float64
		for j := 0; j < dim; j++ {
			x := float64(q[j]) - float64(flat[row*dim+j])
			d += x * x
		}
		if diff := float64(h.Distance) - d; diff > 1e-4*d+1e-6 || diff < -1e-4*d-1e-6 {
			t.Fatalf("%s: distance %v, exact %v", h.ID, h.Distance, d)
		}
	}
}
