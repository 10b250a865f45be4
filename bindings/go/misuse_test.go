package sextant

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

func flatColl(t *testing.T, db *DB, dim int) {
	t.Helper()
	mustUpdate(t, db, func(tx *WriteTx) error {
		return tx.CreateCollection("c", CollectionConfig{Dim: dim, Metric: L2, Index: Flat})
	})
}

func TestCloseIsIdempotentAndEndsEverything(t *testing.T) {
	db := tempDB(t)
	flatColl(t, db, 2)
	ctx := context.Background()
	r, err := db.BeginRead()
	if err != nil {
		t.Fatal(err)
	}
	w, err := db.BeginWrite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	_, err = db.BeginRead()
	wantErr(t, err, ErrClosed)
	_, err = db.BeginWrite(ctx)
	wantErr(t, err, ErrClosed)
	_, err = db.Stats()
	wantErr(t, err, ErrClosed)
	wantErr(t, db.Check(), ErrClosed)
	wantErr(t, db.Checkpoint(ctx), ErrClosed)
	_, err = r.Count("c")
	wantErr(t, err, ErrClosed)
	_, err = r.Search(ctx, "c", []float32{1, 2}, 1)
	wantErr(t, err, ErrClosed)
	wantErr(t, w.Upsert("c", []string{"a"}, [][]float32{{1, 2}}, nil), ErrClosed)
	_, err = w.Count("c")
	wantErr(t, err, ErrClosed)
	// Ending what the close ended: End is idempotent; Commit of an aborted session is CLOSED.
	if err := r.End(); err != nil {
		t.Fatal(err)
	}
	wantErr(t, w.Commit(), ErrClosed)
}

func TestUseAfterEndCommitAbort(t *testing.T) {
	db := tempDB(t)
	flatColl(t, db, 2)
	ctx := context.Background()
	r, _ := db.BeginRead()
	if err := r.End(); err != nil {
		t.Fatal(err)
	}
	if err := r.End(); err != nil {
		t.Fatal("End twice:", err)
	}
	_, err := r.Get("c", "a")
	wantErr(t, err, ErrClosed)
	_, err = r.ListCollections()
	wantErr(t, err, ErrClosed)
	_, err = r.UserVersion()
	wantErr(t, err, ErrClosed)

	for _, end := range []string{"commit", "abort"} {
		w, err := db.BeginWrite(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if end == "commit" {
			err = w.Commit()
		} else {
			err = w.Abort()
		}
		if err != nil {
			t.Fatal(err)
		}
		wantErr(t, w.Commit(), ErrClosed)
		wantErr(t, w.Abort(), ErrClosed)
		wantErr(t, w.Upsert("c", []string{"a"}, [][]float32{{1, 2}}, nil), ErrClosed)
		_, err = w.Delete("c", []string{"a"})
		wantErr(t, err, ErrClosed)
		wantErr(t, w.CreateCollection("d", CollectionConfig{Dim: 2, Metric: L2, Index: Flat}), ErrClosed)
		wantErr(t, w.DropCollection("c"), ErrClosed)
		_, err = w.Search(ctx, "c", []float32{1, 2}, 1)
		wantErr(t, err, ErrClosed)
		wantErr(t, w.SetUserVersion(3), ErrClosed)
	}
}

func TestReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ro.sx")
	_, err := Open(path, ReadOnly())
	wantErr(t, err, ErrNotFound)
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	flatColl(t, db, 2)
	db.Close()
	ro, err := Open(path, ReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	_, err = ro.BeginWrite(context.Background())
	wantErr(t, err, ErrReadOnly)
	err = ro.Update(context.Background(), func(*WriteTx) error { t.Fatal("ran"); return nil })
	wantErr(t, err, ErrReadOnly)
	if err := ro.View(func(tx *ReadTx) error { _, err := tx.Count("c"); return err }); err != nil {
		t.Fatal(err)
	}
}

func TestBadInput(t *testing.T) {
	db := tempDB(t)
	flatColl(t, db, 3)
	ctx := context.Background()
	nan := float32(math.NaN())
	mustUpdate(t, db, func(tx *WriteTx) error {
		wantErr(t, tx.Upsert("c", []string{"a"}, [][]float32{{1, 2}}, nil), ErrDimensionMismatch)
		wantErr(t, tx.Upsert("c", []string{"a", "b"}, [][]float32{{1, 2, 3}, {1, 2}}, nil), ErrDimensionMismatch)
		wantErr(t, tx.Upsert("c", []string{"a"}, [][]float32{{1, nan, 3}}, nil), ErrInvalidArgument)
		wantErr(t, tx.Upsert("c", []string{"a"}, [][]float32{{1, float32(math.Inf(1)), 3}}, nil), ErrInvalidArgument)
		wantErr(t, tx.Upsert("c", []string{""}, [][]float32{{1, 2, 3}}, nil), ErrInvalidArgument)
		wantErr(t, tx.Upsert("c", []string{"a\x00b"}, [][]float32{{1, 2, 3}}, nil), ErrInvalidArgument)
		wantErr(t, tx.Upsert("c", []string{"a", "b"}, [][]float32{{1, 2, 3}}, nil), ErrInvalidArgument)
		wantErr(t, tx.UpsertFlat("c", []string{"a", "b"}, []float32{1, 2, 3}, 3, nil), ErrInvalidArgument)
		wantErr(t, tx.Upsert("c", []string{"a"}, [][]float32{{1, 2, 3}}, []any{"not an object"}), ErrInvalidArgument)
		wantErr(t, tx.Upsert("c", []string{"a"}, [][]float32{{1, 2, 3}}, []any{json.RawMessage("{")}), ErrInvalidArgument)
		wantErr(t, tx.Upsert("c", []string{"a"}, [][]float32{{1, 2, 3}}, []any{func() {}}), ErrInvalidArgument)
		wantErr(t, tx.Upsert("nope", []string{"a"}, [][]float32{{1, 2, 3}}, nil), ErrNotFound)
		wantErr(t, tx.CreateCollection("bad name!", CollectionConfig{Dim: 3, Metric: L2, Index: Flat}), ErrInvalidArgument)
		wantErr(t, tx.CreateCollection("x", CollectionConfig{Dim: 3, Metric: "euclid", Index: Flat}), ErrInvalidArgument)
		wantErr(t, tx.CreateCollection("x", CollectionConfig{Dim: 3, Metric: L2, Index: "tree"}), ErrInvalidArgument)
		wantErr(t, tx.CreateCollection("x", CollectionConfig{Dim: 0, Metric: L2, Index: Flat}), ErrInvalidArgument)
		wantErr(t, tx.CreateCollection("x", CollectionConfig{Dim: -1, Metric: L2, Index: Flat}), ErrInvalidArgument)
		wantErr(t, tx.CreateCollection("c", CollectionConfig{Dim: 3, Metric: L2, Index: Flat}), ErrExists)
		// nil slices are empty batches, not crashes.
		if err := tx.Upsert("c", nil, nil, nil); err != nil {
			t.Fatal("empty upsert:", err)
		}
		if n, err := tx.Delete("c", nil); err != nil || n != 0 {
			t.Fatal("empty delete:", n, err)
		}
		// Nothing of the failed batches was stored.
		if n, err := tx.Count("c"); err != nil || n != 0 {
			t.Fatalf("count %d, %v", n, err)
		}
		return tx.Upsert("c", []string{"a"}, [][]float32{{1, 2, 3}}, []any{map[string]any{"k": "v"}})
	})
	err := db.View(func(tx *ReadTx) error {
		_, err := tx.Search(ctx, "c", []float32{1, 2}, 1)
		wantErr(t, err, ErrDimensionMismatch)
		_, err = tx.Search(ctx, "c", nil, 1)
		wantErr(t, err, ErrDimensionMismatch)
		_, err = tx.Search(ctx, "c", []float32{1, 2, nan}, 1)
		wantErr(t, err, ErrInvalidArgument)
		_, err = tx.Search(ctx, "c", []float32{1, 2, 3}, 0)
		wantErr(t, err, ErrInvalidArgument)
		_, err = tx.Search(ctx, "c", []float32{1, 2, 3}, -1)
		wantErr(t, err, ErrInvalidArgument)
		_, err = tx.SearchBatchFlat(ctx, "c", []float32{1, 2, 3, 4}, 3, 1)
		wantErr(t, err, ErrInvalidArgument)
		_, err = tx.SearchBatch(ctx, "c", [][]float32{{1, 2, 3}, {1, 2}}, 1)
		wantErr(t, err, ErrDimensionMismatch)
		_, err = tx.Get("c", "")
		wantErr(t, err, ErrInvalidArgument)
		_, err = tx.Get("c", "zz")
		wantErr(t, err, ErrNotFound)
		_, err = tx.Count("c\x00")
		wantErr(t, err, ErrInvalidArgument)
		rec, err := tx.Get("c", "a")
		if err != nil || string(rec.Metadata) != `{"k":"v"}` || len(rec.Vector) != 3 {
			t.Fatalf("get: %+v %v", rec, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(filepath.Join(t.TempDir(), "x.sx"), WithSync("sometimes"))
	wantErr(t, err, ErrInvalidArgument)
	_, err = Open(filepath.Join(t.TempDir(), "x.sx"), WithPageSize(1000))
	wantErr(t, err, ErrInvalidArgument)
}

// An argument out of range is named as the caller wrote it: a negative int once reached
// the core as 4294967295 and was reported as that. An unknown sync level or index type
// is named too.
func TestBadArgumentsAreNamed(t *testing.T) {
	dir := t.TempDir()
	msg := func(err error) string {
		var e *Error
		if !errors.As(err, &e) || e.Code != "INVALID_ARGUMENT" {
			t.Fatalf("want INVALID_ARGUMENT, got %v", err)
		}
		return e.Message
	}
	for _, c := range []struct {
		opt  Option
		want string
	}{
		{WithPageSize(-1), "page size -1 is not an integer from 0 to 4294967295"},
		{WithThreads(-2), "threads -2 is not an integer from 0 to 4294967295"},
		{WithAutocheckpoint(-3), "autocheckpoint frames -3 is not an integer from 0 to 4294967295"},
		{WithWALMaxFrames(1 << 40), "WAL max frames 1099511627776 is not an integer from 0 to 4294967295"},
		{WithSync("sometimes"), "unknown sync level 'sometimes' (full, normal, off)"},
	} {
		_, err := Open(filepath.Join(dir, "x.sx"), c.opt)
		if got := msg(err); got != c.want {
			t.Errorf("got %q, want %q", got, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x.sx")); !os.IsNotExist(err) {
		t.Fatalf("a refused open left a file: %v", err)
	}
	db := tempDB(t)
	mustUpdate(t, db, func(tx *WriteTx) error {
		for _, c := range []struct {
			cfg  CollectionConfig
			want string
		}{
			{CollectionConfig{Dim: -1, Metric: L2, Index: Flat}, "dimension -1 is not an integer from 0 to 4294967295"},
			{CollectionConfig{Dim: 4, Metric: L2, Index: HNSW, M: -1}, "HNSW m -1 is not an integer from 0 to 4294967295"},
			{CollectionConfig{Dim: 4, Metric: L2, Index: HNSW, EfConstruction: -5}, "HNSW ef_construction -5 is not an integer from 0 to 4294967295"},
			{CollectionConfig{Dim: 4, Metric: L2, Index: "ivf"}, "unknown index type 'ivf' (flat, hnsw)"},
			{CollectionConfig{Dim: 4, Metric: L2}, "unknown index type '' (flat, hnsw)"},
		} {
			if got := msg(tx.CreateCollection("x", c.cfg)); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		}
		if err := tx.CreateCollection("h", CollectionConfig{Dim: 2, Metric: L2, Index: HNSW}); err != nil {
			return err
		}
		return tx.Upsert("h", []string{"a", "b"}, [][]float32{{0, 0}, {1, 0}}, nil)
	})
	ctx := context.Background()
	err := db.View(func(tx *ReadTx) error {
		_, err := tx.Search(ctx, "h", []float32{0, 0}, 1, WithEf(-5))
		if got := msg(err); got != "ef -5 is not an integer from 0 to 4294967295" {
			t.Errorf("got %q", got)
		}
		_, err = tx.SearchBatch(ctx, "h", [][]float32{{0, 0}}, 1, WithSearchThreads(-1))
		if got := msg(err); got != "threads -1 is not an integer from 0 to 4294967295" {
			t.Errorf("got %q", got)
		}
		// The largest k and ef are answers: every item, nothing sized by them.
		for _, ef := range []int{0, math.MaxUint32} {
			hits, err := tx.Search(ctx, "h", []float32{0, 0}, math.MaxInt, WithEf(ef))
			if err != nil || len(hits) != 2 || hits[0].ID != "a" || hits[1].ID != "b" {
				t.Errorf("ef %d: %v %v", ef, hits, err)
			}
			batch, err := tx.SearchBatch(ctx, "h", [][]float32{{1, 0}}, math.MaxInt, WithEf(ef), WithFilter(`{}`))
			if err != nil || len(batch[0]) != 2 || batch[0][0].ID != "b" {
				t.Errorf("batch ef %d: %v %v", ef, batch, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestUpdateAbortsOnErrorAndPanic(t *testing.T) {
	db := tempDB(t)
	flatColl(t, db, 2)
	ctx := context.Background()
	boom := errors.New("boom")
	err := db.Update(ctx, func(tx *WriteTx) error {
		if err := tx.Upsert("c", []string{"a"}, [][]float32{{1, 2}}, nil); err != nil {
			return err
		}
		return boom
	})
	if err != boom {
		t.Fatalf("Update returned %v", err)
	}
	func() {
		defer func() {
			if r := recover(); r != "oops" {
				t.Fatalf("recovered %v", r)
			}
		}()
		db.Update(ctx, func(tx *WriteTx) error {
			tx.Upsert("c", []string{"b"}, [][]float32{{1, 2}}, nil)
			panic("oops")
		})
	}()
	// Both sessions were aborted: nothing stored, and the write lock is free again.
	err = db.Update(ctx, func(tx *WriteTx) error {
		n, err := tx.Count("c")
		if err == nil && n != 0 {
			t.Fatalf("count %d after aborted sessions", n)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestBeginWriteWaitsWithContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.sx")
	a, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	w, err := a.BeginWrite(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Same handle, session open: BUSY at once, whatever the context.
	_, err = a.BeginWrite(context.Background())
	wantErr(t, err, ErrBusy)

	// Another handle: waits until the deadline, then BUSY and DeadlineExceeded.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	start := time.Now()
	_, err = b.BeginWrite(ctx)
	cancel()
	wantErr(t, err, ErrBusy)
	wantErr(t, err, context.DeadlineExceeded)
	if d := time.Since(start); d < 80*time.Millisecond || d > 3*time.Second {
		t.Fatalf("waited %v for a 100ms deadline", d)
	}
	// An expired deadline tries once, without waiting.
	ctx, cancel = context.WithTimeout(context.Background(), 0)
	_, err = b.BeginWrite(ctx)
	cancel()
	wantErr(t, err, ErrBusy)

	// Cancelled while waiting: CANCELLED and context.Canceled.
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start = time.Now()
	_, err = b.BeginWrite(ctx)
	wantErr(t, err, ErrCancelled)
	wantErr(t, err, context.Canceled)
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("cancellation took %v", d)
	}
	// Waiting without a deadline succeeds once the holder commits.
	time.AfterFunc(50*time.Millisecond, func() { w.Commit() })
	w2, err := b.BeginWrite(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	w2.Abort()
}

// A long flat search (a batch on one thread) stops soon after its context is
// cancelled, and the error is both ErrCancelled and the context's error.
func TestCancelLongSearch(t *testing.T) {
	db := tempDB(t, WithSync(SyncOff))
	const n, dim = 40000, 128
	mustUpdate(t, db, func(tx *WriteTx) error {
		if err := tx.CreateCollection("big", CollectionConfig{Dim: dim, Metric: L2, Index: Flat}); err != nil {
			return err
		}
		ids := make([]string, n)
		for i := range ids {
			ids[i] = "v" + itoa(i)
		}
		return tx.UpsertFlat("big", ids, generate(1, n, dim), dim, nil)
	})
	queries := generate(2, 3000, dim)
	r, err := db.BeginRead()
	if err != nil {
		t.Fatal(err)
	}
	defer r.End()
	for _, deadline := range []bool{false, true} {
		var ctx context.Context
		var cancel context.CancelFunc
		if deadline {
			ctx, cancel = context.WithTimeout(context.Background(), 60*time.Millisecond)
		} else {
			ctx, cancel = context.WithCancel(context.Background())
			time.AfterFunc(60*time.Millisecond, cancel)
		}
		start := time.Now()
		_, err := r.SearchBatchFlat(ctx, "big", queries, dim, 10, WithSearchThreads(1))
		took := time.Since(start)
		cancel()
		wantErr(t, err, ErrCancelled)
		if deadline {
			wantErr(t, err, context.DeadlineExceeded)
		} else {
			wantErr(t, err, context.Canceled)
		}
		if took > 2*time.Second {
			t.Fatalf("the search took %v after a 60ms cancel", took)
		}
		t.Logf("deadline=%v: stopped after %v", deadline, took)
	}
	// A context cancelled before the call: no search at all.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = r.Search(ctx, "big", queries[:dim], 1)
	wantErr(t, err, ErrCancelled)
	wantErr(t, err, context.Canceled)
	// The same session still searches (tokens are reset, never shared by two calls).
	hits, err := r.Search(context.Background(), "big", queries[:dim], 3)
	if err != nil || len(hits) != 3 {
		t.Fatalf("%v %v", hits, err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	for i := 0; i < 100; i++ {
		if _, err := r.Search(ctx, "big", queries[i*dim:(i+1)*dim], 1); err != nil {
			t.Fatal(err)
		}
	}
}

// Handles the program forgot are released by the garbage collector: a forgotten
// write session's lock is freed, so another handle can write.
func TestForgottenHandlesAreReleased(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gc.sx")
	func() {
		db, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.BeginWrite(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, err := db.BeginRead(); err != nil {
			t.Fatal(err)
		}
	}()
	other, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for i := 0; i < 50; i++ {
		runtime.GC()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		w, err := other.BeginWrite(ctx)
		cancel()
		if err == nil {
			w.Abort()
			return
		}
		wantErr(t, err, ErrBusy)
	}
	t.Fatal("the forgotten write session still holds the lock after 50 collections")
}

func TestErrorsMatch(t *testing.T) {
	e := &Error{Code: "NOT_FOUND", Message: "id 'x' is not in collection 'c'"}
	if !errors.Is(e, ErrNotFound) || errors.Is(e, ErrBusy) {
		t.Fatal("errors.Is by code")
	}
	var se *Error
	if !errors.As(error(e), &se) || se.Code != "NOT_FOUND" {
		t.Fatal("errors.As")
	}
	if e.Error() != "sextant: NOT_FOUND: id 'x' is not in collection 'c'" {
		t.Fatal(e.Error())
	}
	for i, s := range sentinels[1:] {
		if codeName(i+1) != s.Code {
			t.Fatalf("status %d is %s in C, %s here", i+1, codeName(i+1), s.Code)
		}
	}
	// Every C status name has its sentinel.
	for st := 1; st < len(sentinels); st++ {
		if name := codeName(st); name != sentinels[st].Code {
			t.Fatalf("status %d: %s", st, name)
		}
	}
}

func TestStatsAndCheckpoint(t *testing.T) {
	db := tempDB(t)
	flatColl(t, db, 2)
	mustUpdate(t, db, func(tx *WriteTx) error {
		return tx.Upsert("c", []string{"a", "b"}, [][]float32{{1, 2}, {3, 4}}, nil)
	})
	if err := db.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, err := db.Stats()
	if err != nil || st.PageSize != 4096 || st.PageCount == 0 || st.Commits == 0 {
		t.Fatalf("%+v %v", st, err)
	}
	if err := db.Check(); err != nil {
		t.Fatal(err)
	}
	err = db.View(func(tx *ReadTx) error {
		cs, err := tx.CollectionStats("c")
		if err != nil || cs.Count != 2 || cs.Slots != cs.Count+cs.Dead+cs.Free {
			t.Fatalf("%+v %v", cs, err)
		}
		info, err := tx.Describe("c")
		if err != nil || info != (CollectionInfo{Name: "c", Dim: 2, Metric: L2, Index: Flat, Quantization: QuantizationNone, Count: 2}) {
			t.Fatalf("%+v %v", info, err)
		}
		names, err := tx.ListCollections()
		if err != nil || len(names) != 1 || names[0] != "c" {
			t.Fatalf("%v %v", names, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if Version() == "" || FormatVersion() != 2 {
		t.Fatal(Version(), FormatVersion())
	}
}

// Cancel tokens are pooled: a token whose context fired is never handed to another
// call, so searches with contexts that expire at random moments never cancel an
// unrelated search.
func TestCancelTokensNeverLeak(t *testing.T) {
	db := tempDB(t, WithSync(SyncOff))
	const n, dim = 5000, 32
	mustUpdate(t, db, func(tx *WriteTx) error {
		if err := tx.CreateCollection("c", CollectionConfig{Dim: dim, Metric: L2, Index: Flat}); err != nil {
			return err
		}
		ids := make([]string, n)
		for i := range ids {
			ids[i] = "v" + itoa(i)
		}
		return tx.UpsertFlat("c", ids, generate(5, n, dim), dim, nil)
	})
	r, err := db.BeginRead()
	if err != nil {
		t.Fatal(err)
	}
	defer r.End()
	qs := generate(6, 64, dim)
	deadline := time.Now().Add(stressDuration() / 2)
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		go func(g int) {
			for i := 0; time.Now().Before(deadline); i++ {
				q := qs[(i%64)*dim : (i%64+1)*dim]
				if g%2 == 0 {
					// A context that expires at a random moment around the search.
					ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%50)*time.Microsecond)
					_, err := r.SearchBatchFlat(ctx, "c", qs, dim, 5)
					cancel()
					if err != nil && !errors.Is(err, ErrCancelled) {
						errs <- err
						return
					}
				} else {
					// A live context: must never see a cancellation.
					ctx, cancel := context.WithCancel(context.Background())
					_, err := r.Search(ctx, "c", q, 5)
					cancel()
					if err != nil {
						errs <- fmt.Errorf("a search with a live context failed: %w", err)
						return
					}
				}
			}
			errs <- nil
		}(g)
	}
	for g := 0; g < 8; g++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
