package sextant

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestGetManyAndCursor(t *testing.T) {
	db := tempDB(t)
	flatColl(t, db, 2)
	const n = 250
	ids := make([]string, n)
	flat := make([]float32, 0, 2*n)
	meta := make([]any, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("id%03d", i)
		flat = append(flat, float32(i), float32(-i))
		if i%2 == 0 {
			meta[i] = map[string]any{"i": i}
		}
	}
	mustUpdate(t, db, func(tx *WriteTx) error { return tx.UpsertFlat("c", ids, flat, 2, meta) })

	r, err := db.BeginRead()
	if err != nil {
		t.Fatal(err)
	}
	defer r.End()
	recs, err := r.GetMany("c", []string{"id007", "nope", "id010", "id007"})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 || recs[1] != nil || recs[0].ID != "id007" || recs[3].ID != "id007" ||
		recs[0].Vector[0] != 7 || recs[0].Vector[1] != -7 || recs[0].Metadata != nil ||
		string(recs[2].Metadata) != `{"i":10}` {
		t.Fatalf("GetMany: %+v %+v %+v", recs[0], recs[1], recs[2])
	}
	if recs, err := r.GetMany("c", nil); err != nil || len(recs) != 0 {
		t.Fatalf("empty GetMany: %v %v", recs, err)
	}
	_, err = r.GetMany("c", []string{""})
	wantErr(t, err, ErrInvalidArgument)

	// A cursor over the snapshot, while a writer deletes and adds: it sees the snapshot.
	cur, err := r.Cursor("c", "")
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	mustUpdate(t, db, func(tx *WriteTx) error {
		_, err := tx.Delete("c", ids[:100])
		if err != nil {
			return err
		}
		return tx.Upsert("c", []string{"zzz"}, [][]float32{{1, 1}}, nil)
	})
	if cur.Remaining() != n {
		t.Fatalf("remaining %d", cur.Remaining())
	}
	seen := 0
	last := ""
	for {
		batch, err := cur.Next(64)
		if err != nil {
			t.Fatal(err)
		}
		if len(batch) == 0 {
			break
		}
		for _, rec := range batch {
			if rec == nil || rec.ID <= last || rec.ID != ids[seen] || rec.Vector[0] != float32(seen) {
				t.Fatalf("record %d: %+v after %q", seen, rec, last)
			}
			last = rec.ID
			seen++
		}
	}
	if seen != n {
		t.Fatalf("the cursor gave %d records of %d", seen, n)
	}
	// Resuming after an id, in a later session.
	err = db.View(func(tx *ReadTx) error {
		c, err := tx.Cursor("c", "id240")
		if err != nil {
			return err
		}
		defer c.Close()
		batch, err := c.Next(100)
		if err != nil {
			return err
		}
		if len(batch) != 10 || batch[0].ID != "id241" || batch[9].ID != "zzz" {
			t.Fatalf("resumed: %d records, first %+v", len(batch), batch[0])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = cur.Next(0)
	wantErr(t, err, ErrInvalidArgument)
	cur.Close()
	cur.Close()
	_, err = cur.Next(1)
	wantErr(t, err, ErrClosed)
	// A cursor outliving its session.
	r2, _ := db.BeginRead()
	c2, err := r2.Cursor("c", "")
	if err != nil {
		t.Fatal(err)
	}
	r2.End()
	_, err = c2.Next(5)
	wantErr(t, err, ErrClosed)
	c2.Close()
}

func TestBackup(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(filepath.Join(dir, "src.sx"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	flatColl(t, db, 2)
	mustUpdate(t, db, func(tx *WriteTx) error {
		return tx.Upsert("c", []string{"a", "b"}, [][]float32{{1, 2}, {3, 4}}, nil)
	})
	ctx := context.Background()
	dest := filepath.Join(dir, "copy.sx")
	// A writer holds the lock during the backup: it neither waits nor blocks.
	w, err := db.BeginWrite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Upsert("c", []string{"uncommitted"}, [][]float32{{0, 0}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := db.Backup(ctx, dest); err != nil {
		t.Fatal(err)
	}
	w.Abort()
	wantErr(t, db.Backup(ctx, dest), ErrExists)
	// Overwriting a database a handle has open would remove its WAL under it.
	held, err := Open(dest)
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, db.Backup(ctx, dest, Overwrite()), ErrBusy)
	held.Close()
	if err := db.Backup(ctx, dest, Overwrite()); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	err = db.Backup(cctx, filepath.Join(dir, "never.sx"))
	wantErr(t, err, ErrCancelled)
	wantErr(t, err, context.Canceled)
	if _, err := os.Stat(filepath.Join(dir, "never.sx")); !os.IsNotExist(err) {
		t.Fatal("a cancelled backup left a file")
	}
	cp, err := Open(dest, ReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	if err := cp.Check(); err != nil {
		t.Fatal(err)
	}
	err = cp.View(func(tx *ReadTx) error {
		n, err := tx.Count("c")
		if err == nil && n != 2 {
			t.Fatalf("the backup holds %d vectors", n)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSpaceAndCompact(t *testing.T) {
	db := tempDB(t)
	ctx := context.Background()
	mustUpdate(t, db, func(tx *WriteTx) error {
		if err := tx.CreateCollection("h", CollectionConfig{Dim: 8, Metric: L2, Index: HNSW}); err != nil {
			return err
		}
		ids := make([]string, 2000)
		for i := range ids {
			ids[i] = fmt.Sprintf("v%04d", i)
		}
		return tx.UpsertFlat("h", ids, generate(3, len(ids), 8), 8, nil)
	})
	mustUpdate(t, db, func(tx *WriteTx) error {
		ids := make([]string, 1000)
		for i := range ids {
			ids[i] = fmt.Sprintf("v%04d", 2*i)
		}
		_, err := tx.Delete("h", ids)
		return err
	})
	space := func() SpaceStats {
		var s SpaceStats
		err := db.View(func(tx *ReadTx) (err error) { s, err = tx.Space(); return })
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := space()
	if before.PageSize != 4096 || before.LiveBytes == 0 || before.ReclaimableBytes == 0 {
		t.Fatalf("space before: %+v", before)
	}
	// A reader keeps its snapshot across the compaction.
	r, err := db.BeginRead()
	if err != nil {
		t.Fatal(err)
	}
	defer r.End()
	if err := db.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	after := space()
	if after.ReclaimableBytes >= before.ReclaimableBytes {
		t.Fatalf("compaction reclaimed nothing: before %+v, after %+v", before, after)
	}
	for _, s := range []Reader{r} {
		if n, err := s.Count("h"); err != nil || n != 1000 {
			t.Fatalf("count %d %v", n, err)
		}
	}
	err = db.View(func(tx *ReadTx) error {
		if n, err := tx.Count("h"); err != nil || n != 1000 {
			t.Fatalf("count after compaction %d %v", n, err)
		}
		q := generate(3, 2, 8)[8:] // vector v0001, still live
		hits, err := tx.Search(ctx, "h", q, 1)
		if err != nil || len(hits) != 1 || hits[0].ID != "v0001" {
			t.Fatalf("search after compaction: %v %v", hits, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Compact waits for the write lock as BeginWrite does.
	w, err := db.BeginWrite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Compact(ctx)
	wantErr(t, err, ErrBusy)
	w.Abort()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	wantErr(t, db.Compact(cctx), ErrCancelled)
}
