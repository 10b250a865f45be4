package sextant

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// 16 goroutines search one read session while another goroutine commits batches;
// every session's snapshot keeps its invariants for its whole life.
func TestGoroutinesShareReadSessionWhileWriterCommits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "g.sx")
	if err := createStress(path); err != nil {
		t.Fatal(err)
	}
	db, err := Open(path, WithSync(SyncNormal))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	deadline := time.Now().Add(stressDuration())

	var commits atomic.Int64
	writerDone := make(chan error, 1)
	go func() {
		b := 1
		for time.Now().Before(deadline) {
			if err := commitBatch(ctx, db, b); err != nil {
				writerDone <- err
				return
			}
			commits.Store(int64(b))
			b++
		}
		writerDone <- nil
	}()

	sessions := 0
	for time.Now().Before(deadline) {
		r, err := db.BeginRead()
		if err != nil {
			t.Fatal(err)
		}
		uv0, err := r.UserVersion()
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for g := 0; g < 16; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				for j := 0; j < 20; j++ {
					if err := checkSnapshot(ctx, r, g*31+j); err != nil {
						errs <- err
						return
					}
				}
				// The snapshot did not move while the writer committed.
				if uv, err := r.UserVersion(); err != nil || uv != uv0 {
					errs <- errors.New("the user version changed inside a read session")
				}
			}(g)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if err := r.End(); err != nil {
			t.Fatal(err)
		}
		sessions++
	}
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}
	if commits.Load() < 2 || sessions < 2 {
		t.Fatalf("too little happened: %d commits, %d sessions", commits.Load(), sessions)
	}
	t.Logf("%d commits, %d read sessions of 16 goroutines", commits.Load(), sessions)
}

// Goroutines calling one write session at once are serialized by the binding (the
// core answers overlapping calls on one session with MISUSE); searches in the session
// see its own upserts.
func TestGoroutinesShareWriteSession(t *testing.T) {
	db := tempDB(t)
	ctx := context.Background()
	tx, err := db.BeginWrite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.CreateCollection("s", CollectionConfig{Dim: stressDim, Metric: L2, Index: HNSW}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 1; g <= 8; g++ {
		wg.Add(1)
		go func(b int) {
			defer wg.Done()
			for i := 0; i < batchSize; i++ {
				if err := tx.Upsert("s", []string{batchID(b, i)}, [][]float32{batchVector(b, i)}, nil); err != nil {
					errs <- err
					return
				}
				hits, err := tx.Search(ctx, "s", batchVector(b, i), 1, WithEf(64))
				if err != nil || len(hits) != 1 || hits[0].ID != batchID(b, i) {
					errs <- errors.New("a write session's search missed its own upsert")
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n, err := tx.Count("s"); err != nil || n != 8*batchSize {
		t.Fatalf("count %d, %v", n, err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// Commit, Abort and End racing calls on other goroutines: each call either runs or
// gets ErrClosed, never a crash (run under -race).
func TestEndRacesCalls(t *testing.T) {
	db := tempDB(t)
	ctx := context.Background()
	mustUpdate(t, db, func(tx *WriteTx) error {
		return tx.CreateCollection("s", CollectionConfig{Dim: stressDim, Metric: L2, Index: Flat})
	})
	if err := commitBatch(ctx, db, 1); err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 20; round++ {
		r, err := db.BeginRead()
		if err != nil {
			t.Fatal(err)
		}
		w, err := db.BeginWrite(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(2)
			go func() {
				defer wg.Done()
				for j := 0; j < 50; j++ {
					_, err := r.Search(ctx, "s", batchVector(1, j%batchSize), 3)
					if err != nil && !errors.Is(err, ErrClosed) {
						t.Error(err)
						return
					}
				}
			}()
			go func(g int) {
				defer wg.Done()
				for j := 0; j < 20; j++ {
					err := w.Upsert("s", []string{batchID(100+g, j)}, [][]float32{batchVector(100+g, j)}, nil)
					if err != nil && !errors.Is(err, ErrClosed) {
						t.Error(err)
						return
					}
				}
			}(g)
		}
		time.Sleep(time.Duration(round%5) * time.Millisecond)
		if round%2 == 0 {
			w.Commit()
		} else {
			w.Abort()
		}
		r.End()
		wg.Wait()
	}
}
