// Command sextant-interop is the Go worker of the cross-language interop test: it
// implements tests/interop/PROTOCOL.md through the sextant package, as
// tests/interop/interop_c.c does through the C API and interop_py.py through Python.
//
// Usage: sextant-interop write-fixture DB | dump DB | writer DB SECONDS ACKFILE |
// reader DB SECONDS | verify DB ACKFILE
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	sextant "github.com/sextant/sextant/bindings/go"
)

func splitmixVector(state uint64, dim int) []float32 {
	out := make([]float32, dim)
	for d := range out {
		state += 0x9E3779B97F4A7C15
		z := state
		z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
		z = (z ^ (z >> 27)) * 0x94D049BB133111EB
		z ^= z >> 31
		out[d] = float32(float64(z>>40)/float64(1<<24)*2 - 1)
	}
	return out
}

func fixtureID(i int) string {
	switch i % 3 {
	case 0:
		return fmt.Sprintf("item-%d", i)
	case 1:
		return fmt.Sprintf("é-%d-ü✓", i)
	default:
		return fmt.Sprintf("ключ/%d", i)
	}
}

func fixtureMeta(i int) map[string]any {
	return map[string]any{
		"i": i, "id": fixtureID(i), "half": float64(i) * 0.5,
		"tags":   []any{fmt.Sprintf("t%d", i%4), "x"},
		"nested": map[string]any{"even": i%2 == 0, "deep": map[string]any{"k": []any{i, nil, true}}},
	}
}

func bits(x float32) string { return fmt.Sprintf("%08x", math.Float32bits(x)) }

// failure is a violated invariant (as opposed to an error of the binding).
type failure struct{ msg string }

func (f *failure) Error() string { return f.msg }

func fail(format string, args ...any) error { return &failure{fmt.Sprintf(format, args...)} }

func writeFixture(path string) (any, error) {
	ids := make([]string, 200)
	vecs := make([][]float32, 200)
	metas := make([]any, 200)
	for i := range ids {
		ids[i] = fixtureID(i)
		vecs[i] = splitmixVector(1000+uint64(i), 16)
		metas[i] = fixtureMeta(i)
	}
	db, err := sextant.Open(path, sextant.WithThreads(1), sextant.WithSync(sextant.SyncFull))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	err = db.Update(context.Background(), func(w *sextant.WriteTx) error {
		if err := w.CreateCollection("flat", sextant.CollectionConfig{Dim: 16, Metric: sextant.L2, Index: sextant.Flat}); err != nil {
			return err
		}
		if err := w.CreateCollection("graph", sextant.CollectionConfig{
			Dim: 16, Metric: sextant.Cosine, Index: sextant.HNSW, M: 8, EfConstruction: 64}); err != nil {
			return err
		}
		if err := w.Upsert("flat", ids, vecs, metas); err != nil {
			return err
		}
		if err := w.Upsert("graph", ids, vecs, metas); err != nil {
			return err
		}
		return w.SetUserVersion(42)
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"ok": true}, db.Close()
}

func dump(path string) (any, error) {
	db, err := sextant.Open(path, sextant.ReadOnly())
	if err != nil {
		return nil, err
	}
	defer db.Close()
	r, err := db.BeginRead()
	if err != nil {
		return nil, err
	}
	defer r.End()
	uv, err := r.UserVersion()
	if err != nil {
		return nil, err
	}
	describe, items, searches := map[string]any{}, map[string]any{}, map[string]any{}
	for _, coll := range []string{"flat", "graph"} {
		info, err := r.Describe(coll)
		if err != nil {
			return nil, err
		}
		describe[coll] = map[string]any{
			"name": info.Name, "dim": info.Dim, "metric": string(info.Metric), "index": string(info.Index),
			"hnsw_m": info.M, "hnsw_ef_construction": info.EfConstruction, "count": info.Count,
		}
		got := map[string]any{}
		for i := 0; i < 200; i++ {
			rec, err := r.Get(coll, fixtureID(i))
			if err != nil {
				return nil, err
			}
			vec := make([]string, len(rec.Vector))
			for d, x := range rec.Vector {
				vec[d] = bits(x)
			}
			var meta any // JSON null when the record has no metadata, as in the C worker
			if rec.Metadata != nil {
				meta = string(rec.Metadata)
			}
			got[rec.ID] = map[string]any{"vector": vec, "metadata": meta}
		}
		items[coll] = got
		var qs [][][2]string
		for q := 0; q < 5; q++ {
			hits, err := r.Search(context.Background(), coll, splitmixVector(77+uint64(q), 16), 10)
			if err != nil {
				return nil, err
			}
			row := make([][2]string, len(hits))
			for h, hit := range hits {
				row[h] = [2]string{hit.ID, bits(hit.Distance)}
			}
			qs = append(qs, row)
		}
		searches[coll] = qs
	}
	return map[string]any{"user_version": uv, "describe": describe, "items": items, "search": searches}, nil
}

func has(names []string, name string) bool {
	for _, n := range names {
		if n == name {
			return true
		}
	}
	return false
}

func setupLive(db *sextant.DB) error {
	var names []string
	err := db.View(func(r *sextant.ReadTx) (err error) {
		names, err = r.ListCollections()
		return err
	})
	if err != nil || (has(names, "live") && has(names, "book")) {
		return err
	}
	return db.Update(context.Background(), func(w *sextant.WriteTx) error {
		names, err := w.ListCollections()
		if err != nil {
			return err
		}
		if !has(names, "live") {
			if err := w.CreateCollection("live", sextant.CollectionConfig{Dim: 8, Metric: sextant.L2, Index: sextant.HNSW}); err != nil {
				return err
			}
		}
		if !has(names, "book") {
			return w.CreateCollection("book", sextant.CollectionConfig{Dim: 1, Metric: sextant.L2, Index: sextant.Flat})
		}
		return nil
	})
}

func writer(path string, seconds float64, ackfile string) (any, error) {
	db, err := sextant.Open(path, sextant.WithSync(sextant.SyncFull))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if err := setupLive(db); err != nil {
		return nil, err
	}
	ack, err := os.OpenFile(ackfile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer ack.Close()
	deadline := time.Now().Add(time.Duration(seconds * float64(time.Second)))
	var commits, last uint64
	for time.Now().Before(deadline) {
		var g uint64
		err := db.Update(context.Background(), func(w *sextant.WriteTx) error { // commits on nil
			uv, err := w.UserVersion()
			if err != nil {
				return err
			}
			g = uv + 1
			ids := make([]string, 20)
			vecs := make([][]float32, 20)
			for j := range ids {
				ids[j] = fmt.Sprintf("g%d-%d", g, j)
				vecs[j] = splitmixVector(g*100+uint64(j), 8)
			}
			if err := w.Upsert("live", ids, vecs, nil); err != nil {
				return err
			}
			if g > 3 {
				old := make([]string, 5)
				for j := range old {
					old[j] = fmt.Sprintf("g%d-%d", g-3, j)
				}
				if _, err := w.Delete("live", old); err != nil {
					return err
				}
			}
			count, err := w.Count("live")
			if err != nil {
				return err
			}
			if err := w.Upsert("book", []string{"state"}, [][]float32{{float32(g)}},
				[]any{map[string]any{"gen": g, "count": count}}); err != nil {
				return err
			}
			return w.SetUserVersion(g)
		})
		if err != nil {
			return nil, err
		}
		if _, err := fmt.Fprintf(ack, "%d\n", g); err != nil {
			return nil, err
		}
		if err := ack.Sync(); err != nil {
			return nil, err
		}
		commits, last = commits+1, g
	}
	return map[string]any{"commits": commits, "last": last}, db.Close()
}

// checkSession checks invariants 1-3 of PROTOCOL.md in one read session and returns
// its generation.
func checkSession(r *sextant.ReadTx) (uint64, error) {
	g, err := r.UserVersion()
	if err != nil {
		return 0, err
	}
	names, err := r.ListCollections()
	if err != nil {
		return 0, err
	}
	if !has(names, "live") || !has(names, "book") {
		if g != 0 {
			return 0, fail("generation %d without the live/book collections", g)
		}
		return g, nil
	}
	count, err := r.Count("live")
	if err != nil {
		return 0, err
	}
	st, err := r.Get("book", "state")
	if errors.Is(err, sextant.ErrNotFound) {
		if g != 0 || count != 0 {
			return 0, fail("generation %d, count %d, but no state record", g, count)
		}
		return g, nil
	}
	if err != nil {
		return 0, err
	}
	var state struct {
		Gen   *uint64 `json:"gen"`
		Count *uint64 `json:"count"`
	}
	if err := json.Unmarshal(st.Metadata, &state); err != nil || state.Gen == nil || state.Count == nil {
		return 0, fail("state's metadata %q is not {gen, count}", st.Metadata)
	}
	if *state.Gen != g || *state.Count != count {
		return 0, fail("session sees user version %d and count %d; state says %s", g, count, st.Metadata)
	}
	if g > 0 {
		id := fmt.Sprintf("g%d-0", g)
		a, err := r.Get("live", id)
		if err != nil {
			return 0, err
		}
		b, err := r.Get("live", id)
		if err != nil {
			return 0, err
		}
		want := splitmixVector(g*100, 8)
		same := len(a.Vector) == 8 && len(b.Vector) == 8
		for d := 0; same && d < 8; d++ {
			x := math.Float32bits(a.Vector[d])
			same = x == math.Float32bits(b.Vector[d]) && x == math.Float32bits(want[d])
		}
		if !same {
			return 0, fail("%s read twice differs, or differs from what was written", id)
		}
		hits, err := r.Search(context.Background(), "live", splitmixVector(g*7+1, 8), 5)
		if err != nil {
			return 0, err
		}
		if uint64(len(hits)) != min(5, count) {
			return 0, fail("search returned %d hits of %d", len(hits), count)
		}
		for h := 0; h+1 < len(hits); h++ {
			if hits[h].Distance > hits[h+1].Distance {
				return 0, fail("hits out of order")
			}
		}
	}
	return g, nil
}

func reader(path string, seconds float64) (any, error) {
	db, err := sextant.Open(path, sextant.ReadOnly())
	if err != nil {
		return nil, err
	}
	defer db.Close()
	deadline := time.Now().Add(time.Duration(seconds * float64(time.Second)))
	var sessions, maxGen uint64
	for time.Now().Before(deadline) {
		r, err := db.BeginRead()
		if err != nil {
			return nil, err
		}
		g, err := checkSession(r)
		r.End()
		if err != nil {
			return nil, err
		}
		maxGen = max(maxGen, g)
		sessions++
	}
	return map[string]any{"sessions": sessions, "max_gen": maxGen}, db.Close()
}

func verify(path, ackfile string) (any, error) {
	var acked uint64
	if data, err := os.ReadFile(ackfile); err == nil {
		for _, ln := range strings.Fields(string(data)) {
			if v, err := strconv.ParseUint(ln, 10, 64); err == nil {
				acked = v
			}
		}
	} else if !os.IsNotExist(err) {
		return nil, err
	}
	db, err := sextant.Open(path)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if err := db.Check(); err != nil {
		return nil, err
	}
	r, err := db.BeginRead()
	if err != nil {
		return nil, err
	}
	g, err := checkSession(r)
	r.End()
	if err != nil {
		return nil, err
	}
	if g < acked {
		return nil, fail("generation %d after recovery, but %d was acknowledged", g, acked)
	}
	return map[string]any{"gen": g, "acked": acked}, db.Close()
}

func run(cmd string, args []string) (any, error) {
	switch {
	case cmd == "write-fixture" && len(args) == 1:
		return writeFixture(args[0])
	case cmd == "dump" && len(args) == 1:
		return dump(args[0])
	case cmd == "writer" && len(args) >= 3:
		secs, err := strconv.ParseFloat(args[1], 64)
		if err != nil {
			return nil, err
		}
		return writer(args[0], secs, args[2])
	case cmd == "reader" && len(args) == 2:
		secs, err := strconv.ParseFloat(args[1], 64)
		if err != nil {
			return nil, err
		}
		return reader(args[0], secs)
	case cmd == "verify" && len(args) == 2:
		return verify(args[0], args[1])
	}
	return nil, nil
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: sextant-interop write-fixture|dump|writer|reader|verify DB ...")
		os.Exit(2)
	}
	cmd := os.Args[1]
	res, err := run(cmd, os.Args[2:])
	if err == nil && res == nil {
		fmt.Fprintf(os.Stderr, "interop_go %s: unknown command or wrong arguments\n", cmd)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "interop_go %s: %v\n", cmd, err)
		os.Exit(1)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(res); err != nil {
		fmt.Fprintf(os.Stderr, "interop_go %s: %v\n", cmd, err)
		os.Exit(1)
	}
	os.Stdout.Write(buf.Bytes())
}
