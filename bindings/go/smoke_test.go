package sextant

import (
	"context"
	"path/filepath"
	"testing"
)

func TestSmoke(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "a.sx"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	err = db.Update(ctx, func(tx *WriteTx) error {
		if err := tx.CreateCollection("c", CollectionConfig{Dim: 2, Metric: L2, Index: Flat}); err != nil {
			return err
		}
		return tx.Upsert("c", []string{"a", "b"}, [][]float32{{0, 0}, {1, 1}}, []any{map[string]any{"x": 1}, nil})
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(func(tx *ReadTx) error {
		hits, err := tx.Search(ctx, "c", []float32{1, 0.9}, 5)
		t.Logf("%q %v", hits[0].ID, err)
		r, err := tx.Get("c", "a")
		t.Log(r, string(r.Metadata), err)
		info, err := tx.Describe("c")
		t.Log(info, err)
		_, err = tx.Get("c", "zz")
		t.Log(err)
		return nil
	})
	t.Log(err)
}
