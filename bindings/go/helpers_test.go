package sextant

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestMain lets the test binary serve as its own child process (process_test.go).
func TestMain(m *testing.M) {
	if role := os.Getenv("SX_GO_CHILD"); role != "" {
		os.Exit(runChild(role))
	}
	code := m.Run()
	for _, d := range benchDirs {
		os.RemoveAll(d)
	}
	os.Exit(code)
}

// stressDuration is how long the stress tests run: $SX_GO_STRESS_SECONDS (default 2).
func stressDuration() time.Duration {
	if s := os.Getenv("SX_GO_STRESS_SECONDS"); s != "" {
		if f, err := strconv.ParseFloat(s, 64); err == nil && f > 0 {
			return time.Duration(f * float64(time.Second))
		}
	}
	return 2 * time.Second
}

const (
	batchSize = 40
	stressDim = 8
)

// batchVector is vector i of batch b: deterministic, so that any process can check
// it, and distinct from every other (its first two components name it).
func batchVector(b, i int) []float32 {
	v := make([]float32, stressDim)
	v[0] = float32(b)
	v[1] = float32(i)
	s := uint64(b*1000 + i)
	for j := 2; j < stressDim; j++ {
		v[j] = float32(float64(splitmix64(&s)>>40)/16777216.0*2 - 1)
	}
	return v
}

func batchID(b, i int) string { return fmt.Sprintf("b%d-%d", b, i) }

// commitBatch adds batch b to collection "s" and records b as the user version:
// the invariant every reader checks is count == user_version * batchSize.
func commitBatch(ctx context.Context, db *DB, b int) error {
	return db.Update(ctx, func(tx *WriteTx) error {
		ids := make([]string, batchSize)
		flat := make([]float32, 0, batchSize*stressDim)
		for i := range ids {
			ids[i] = batchID(b, i)
			flat = append(flat, batchVector(b, i)...)
		}
		if err := tx.UpsertFlat("s", ids, flat, stressDim, nil); err != nil {
			return err
		}
		return tx.SetUserVersion(uint64(b))
	})
}

func createStress(path string) error {
	db, err := Open(path, WithSync(SyncNormal))
	if err != nil {
		return err
	}
	defer db.Close()
	return db.Update(context.Background(), func(tx *WriteTx) error {
		return tx.CreateCollection("s", CollectionConfig{Dim: stressDim, Metric: L2, Index: Flat})
	})
}

// checkSnapshot checks the invariants of one read session: the count matches the
// user version, the latest batch is found exactly, the next batch is not there.
// probe picks which vector of the visible batches is searched.
func checkSnapshot(ctx context.Context, r Reader, probe int) error {
	uv, err := r.UserVersion()
	if err != nil {
		return err
	}
	n, err := r.Count("s")
	if err != nil {
		return err
	}
	if n != uv*batchSize {
		return fmt.Errorf("count %d with user version %d (want %d)", n, uv, uv*batchSize)
	}
	if uv > 0 {
		b := 1 + probe%int(uv)
		i := probe % batchSize
		hits, err := r.Search(ctx, "s", batchVector(b, i), 1)
		if err != nil {
			return err
		}
		if len(hits) != 1 || hits[0].ID != batchID(b, i) || hits[0].Distance != 0 {
			return fmt.Errorf("batch %d item %d: got %v", b, i, hits)
		}
	}
	next := int(uv) + 1
	if _, err := r.Get("s", batchID(next, 0)); !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("batch %d, not committed as of user version %d, gives %v", next, uv, err)
	}
	return nil
}

func tempDB(t testing.TB, opts ...Option) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "t.sx"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func mustUpdate(t testing.TB, db *DB, fn func(tx *WriteTx) error) {
	t.Helper()
	if err := db.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

func wantErr(t testing.TB, err error, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("got error %v, want %v", err, target)
	}
}
