package sextant

// The Go runner of the conformance suite (conformance/FORMAT.md). It reads every case
// file (*.json) in $CONFORMANCE_CASES (default: <repo>/conformance/cases) in name
// order and runs each test of each file as one subtest of TestConformance, named
// "<file stem>.<test name>" (characters other than A-Z a-z 0-9 _ become _), by
// interpreting its steps against the public Go API (this package). It reads the
// format as the C runner (conformance/runner_c.cc) and the Python runner do:
//
//   - the ops write_file and the free-text comment field (FORMAT.md, "Extensions");
//   - a handle of the wrong kind for an op (a read session given to a write op, a
//     database where a session belongs) is MISUSE: the Go types make such a call
//     impossible to write, so the runner answers it, as the C runner does;
//   - an upsert whose vectors differ in length among themselves is
//     DIMENSION_MISMATCH (WriteTx.Upsert does this itself);
//   - $TMP is <fresh dir>/tmp, so files made next to it go away with the test.
//
// Known gaps are listed in conformance/skip/go.json ($CONFORMANCE_SKIP overrides),
// with the C runner's semantics: a listed test still runs and is reported as skipped
// with its reason (its failure printed); TestConformanceSkipFile fails while any
// listed test passes or an entry names no test. With $SEXTANT_CONFORMANCE_REPORT set,
// the outcome of every test is written there as JSON for the cross-language matrix.

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// ---- JSON: numbers kept as written, duplicate keys refused ------------------------------------

func decodeJSON(data []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	v, err := decodeValue(d)
	if err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("text after the JSON value")
	}
	return v, nil
}

func decodeValue(d *json.Decoder) (any, error) {
	tok, err := d.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			m := map[string]any{}
			for d.More() {
				kt, err := d.Token()
				if err != nil {
					return nil, err
				}
				k := kt.(string)
				if _, dup := m[k]; dup {
					return nil, fmt.Errorf("duplicate key %q", k)
				}
				if m[k], err = decodeValue(d); err != nil {
					return nil, err
				}
			}
			_, err := d.Token()
			return m, err
		case '[':
			a := []any{}
			for d.More() {
				v, err := decodeValue(d)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			_, err := d.Token()
			return a, err
		}
		return nil, fmt.Errorf("unexpected %v", t)
	default:
		return tok, nil
	}
}

func dump(v any) string {
	if v == nil {
		return "null"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	return string(b)
}

func isInteger(v any) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok || strings.ContainsAny(string(n), ".eE") {
		return 0, false
	}
	x, err := strconv.ParseInt(string(n), 10, 64)
	return x, err == nil
}

func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint64:
		return float64(n), true
	}
	return 0, false
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	if _, ok := toFloat(v); ok {
		return "number"
	}
	return fmt.Sprintf("%T", v)
}

type tolerance struct {
	absoluteOnly bool
	abs, rel     float64
}

func (t tolerance) close(e, a float64) bool {
	lim := t.abs
	if !t.absoluteOnly {
		lim += t.rel * math.Abs(e)
	}
	return math.Abs(a-e) <= lim
}

// match compares expected with actual (FORMAT.md, "Expectations"); "" when they match,
// else where and how they differ. subset: levels at which only expected keys count.
func match(e, a any, tol tolerance, path string, subset int) string {
	here := path
	if here == "" {
		here = "(top)"
	}
	ef, eNum := toFloat(e)
	af, aNum := toFloat(a)
	if eNum && aNum {
		if tol.close(ef, af) {
			return ""
		}
		return fmt.Sprintf("at %s: expected %s, got %s", here, dump(e), dump(a))
	}
	if jsonType(e) != jsonType(a) {
		return fmt.Sprintf("at %s: expected %s, got %s", here, dump(e), dump(a))
	}
	switch ev := e.(type) {
	case map[string]any:
		av := a.(map[string]any)
		keys := make([]string, 0, len(ev))
		for k := range ev {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		next := 0
		if subset > 0 {
			next = subset - 1
		}
		for _, k := range keys {
			x, ok := av[k]
			if !ok {
				return fmt.Sprintf("at %s: missing key %q", here, k)
			}
			if why := match(ev[k], x, tol, path+"."+k, next); why != "" {
				return why
			}
		}
		if subset == 0 {
			for k := range av {
				if _, ok := ev[k]; !ok {
					return fmt.Sprintf("at %s: unexpected key %q", here, k)
				}
			}
		}
		return ""
	case []any:
		av := a.([]any)
		if len(ev) != len(av) {
			return fmt.Sprintf("at %s: expected %d elements, got %d", here, len(ev), len(av))
		}
		for i := range ev {
			if why := match(ev[i], av[i], tol, fmt.Sprintf("%s[%d]", path, i), 0); why != "" {
				return why
			}
		}
		return ""
	}
	if e == a {
		return ""
	}
	return fmt.Sprintf("at %s: expected %s, got %s", here, dump(e), dump(a))
}

// ---- generated vectors (FORMAT.md, "Generated vectors") ------------------------------------------

func splitmix64(state *uint64) uint64 {
	*state += 0x9E3779B97F4A7C15
	z := *state
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

func generate(seed uint64, count, dim int) []float32 {
	out := make([]float32, count*dim)
	s := seed
	for i := range out {
		out[i] = float32(float64(splitmix64(&s)>>40)/16777216.0*2.0 - 1.0)
	}
	return out
}

// ---- the interpreter ------------------------------------------------------------------------------

type caseError struct{ msg string }

func (e *caseError) Error() string { return e.msg }

func caseErrf(format string, args ...any) error { return &caseError{fmt.Sprintf(format, args...)} }

type kind int

const (
	kindDB kind = iota
	kindRead
	kindWrite
)

func (k kind) String() string {
	return [...]string{"a database", "a read session", "a write session"}[k]
}

type modelColl struct {
	metric string
	vecs   map[string][]float32
}

type model map[string]*modelColl

func (m model) copy() model {
	out := model{}
	for name, c := range m {
		v := make(map[string][]float32, len(c.vecs))
		for id, x := range c.vecs {
			v[id] = x
		}
		out[name] = &modelColl{metric: c.metric, vecs: v}
	}
	return out
}

type handle struct {
	kind  kind
	path  string
	db    *DB
	r     *ReadTx
	w     *WriteTx
	model model
}

func (h *handle) reader() Reader {
	if h.kind == kindRead {
		return h.r
	}
	return h.w
}

type outcome struct {
	code    string // "" on success
	message string
	value   any
	problem string // a fault the runner found in a successful result
}

func fail(code, msg string) outcome { return outcome{code: code, message: msg} }

func fromErr(err error) outcome {
	var e *Error
	if errors.As(err, &e) {
		return fail(e.Code, e.Message)
	}
	return fail("NOT_A_SEXTANT_ERROR", err.Error())
}

var opArgs = map[string][]string{
	"open":                {"path", "options"},
	"close":               {"db"},
	"begin_write":         {"db", "timeout_ms"},
	"commit":              {"session"},
	"abort":               {"session"},
	"begin_read":          {"db"},
	"end":                 {"session"},
	"create_collection":   {"session", "name", "dim", "metric", "index"},
	"drop_collection":     {"session", "name"},
	"list_collections":    {"session"},
	"describe_collection": {"session", "name"},
	"upsert":              {"session", "collection", "items"},
	"upsert_generated":    {"session", "collection", "count", "dim", "seed", "id_prefix", "metadata_mod"},
	"delete":              {"session", "collection", "ids"},
	"get":                 {"session", "collection", "id"},
	"get_many":            {"session", "collection", "ids"},
	"scan":                {"session", "collection", "after", "batch"},
	"count":               {"session", "collection"},
	"search":              {"session", "collection", "vector", "k", "ef", "filter", "include", "exact"},
	"search_generated":    {"session", "collection", "count", "dim", "seed", "k", "ef", "filter", "exact"},
	"write_file":          {"path", "text", "hex", "pad_to"},
}

var commonKeys = map[string]bool{"op": true, "expect": true, "expect_error": true, "as": true, "tolerance": true, "comment": true}

var handleOps = map[string]bool{"open": true, "begin_write": true, "begin_read": true}

type interp struct {
	tmp       string
	handles   []*handle
	names     map[string]*handle
	committed map[string]model // by database path
	op        string
	step      map[string]any
}

// closeAll ends every session, then closes every database.
func (in *interp) closeAll() {
	for _, h := range in.handles {
		switch h.kind {
		case kindRead:
			h.r.End()
		case kindWrite:
			h.w.Abort() // CLOSED when already ended: ignored
		}
	}
	for _, h := range in.handles {
		if h.kind == kindDB {
			h.db.Close()
		}
	}
	in.handles = nil
	in.names = map[string]*handle{}
}

func (in *interp) run(step map[string]any) (outcome, error) {
	op, ok := step["op"].(string)
	if !ok {
		return outcome{}, caseErrf("a step needs a string \"op\"")
	}
	in.op = op
	args, ok := opArgs[op]
	if !ok {
		return outcome{}, caseErrf("unknown op %q", op)
	}
	for k := range step {
		if !commonKeys[k] && !contains(args, k) {
			return outcome{}, caseErrf("op %q takes no argument %q", op, k)
		}
	}
	if _, ok := step["as"]; ok && !handleOps[op] {
		return outcome{}, caseErrf("op %q returns no handle, so \"as\" makes no sense", op)
	}
	in.step = step
	switch op {
	case "open":
		return in.opOpen()
	case "close":
		return in.opClose()
	case "begin_write":
		return in.opBeginWrite()
	case "commit":
		return in.opCommit()
	case "abort":
		return in.opAbort()
	case "begin_read":
		return in.opBeginRead()
	case "end":
		return in.opEnd()
	case "create_collection":
		return in.opCreate()
	case "drop_collection":
		return in.opDrop()
	case "list_collections":
		return in.opList()
	case "describe_collection":
		return in.opDescribe()
	case "upsert":
		return in.opUpsert()
	case "upsert_generated":
		return in.opUpsertGenerated()
	case "delete":
		return in.opDelete()
	case "get":
		return in.opGet()
	case "get_many":
		return in.opGetMany()
	case "scan":
		return in.opScan()
	case "count":
		return in.opCount()
	case "search":
		return in.opSearch()
	case "search_generated":
		return in.opSearchGenerated()
	}
	return in.opWriteFile()
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// -- arguments

func (in *interp) arg(m map[string]any, key string) (any, error) {
	v, ok := m[key]
	if !ok {
		return nil, caseErrf("op %q needs argument %q", in.op, key)
	}
	return v, nil
}

func (in *interp) str(m map[string]any, key string) (string, error) {
	v, err := in.arg(m, key)
	if err != nil {
		return "", err
	}
	s, ok := v.(string)
	if !ok {
		return "", caseErrf("argument %q must be a string", key)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return "", caseErrf("argument %q holds a NUL character, which C strings cannot", key)
	}
	return s, nil
}

func (in *interp) intArg(v any, key string) (int64, error) {
	x, ok := isInteger(v)
	if !ok {
		return 0, caseErrf("argument %q must be an integer", key)
	}
	return x, nil
}

// u32 is an unsigned 32-bit argument; values out of range become 2^32-1, which the
// library rejects as it should reject the original (as the C runner).
func (in *interp) u32(v any, key string) (int, error) {
	x, err := in.intArg(v, key)
	if err != nil {
		return 0, err
	}
	if x < 0 || x > 0xffffffff {
		return 0xffffffff, nil
	}
	return int(x), nil
}

func (in *interp) size(key string) (int, error) {
	v, err := in.arg(in.step, key)
	if err != nil {
		return 0, err
	}
	x, err := in.intArg(v, key)
	if err != nil {
		return 0, err
	}
	if x < 0 {
		return 0, caseErrf("argument %q must not be negative", key)
	}
	return int(x), nil
}

func (in *interp) named(key string) (*handle, error) {
	name, err := in.str(in.step, key)
	if err != nil {
		return nil, err
	}
	h, ok := in.names[name]
	if !ok {
		return nil, caseErrf("no handle named %q (see \"as\")", name)
	}
	return h, nil
}

// expect returns the handle under key if it is of kind want, else a MISUSE outcome.
func (in *interp) expect(key string, want kind) (*handle, *outcome, error) {
	h, err := in.named(key)
	if err != nil {
		return nil, nil, err
	}
	if h.kind != want {
		o := fail("MISUSE", fmt.Sprintf("runner: %q is %v; op %q needs %v", in.step[key], h.kind, in.op, want))
		return nil, &o, nil
	}
	return h, nil, nil
}

// session returns a read or write session under "session", else a MISUSE outcome.
func (in *interp) session() (*handle, *outcome, error) {
	h, err := in.named("session")
	if err != nil {
		return nil, nil, err
	}
	if h.kind == kindDB {
		o := fail("MISUSE", fmt.Sprintf("runner: %q is a database; op %q needs a session", in.step["session"], in.op))
		return nil, &o, nil
	}
	return h, nil, nil
}

func (in *interp) bind(h *handle) error {
	in.handles = append(in.handles, h)
	if as, ok := in.step["as"]; ok {
		s, ok := as.(string)
		if !ok {
			return caseErrf("\"as\" must be a string")
		}
		in.names[s] = h
	}
	return nil
}

func component(v any, where string) (float32, error) {
	if s, ok := v.(string); ok {
		switch s {
		case "NaN":
			return float32(math.NaN()), nil
		case "Infinity":
			return float32(math.Inf(1)), nil
		case "-Infinity":
			return float32(math.Inf(-1)), nil
		}
		return 0, caseErrf("%s: string component %q (only \"NaN\", \"Infinity\", \"-Infinity\" are allowed)", where, s)
	}
	f, ok := v.(json.Number)
	if !ok {
		return 0, caseErrf("%s: a vector component must be a number", where)
	}
	d, err := f.Float64()
	if err != nil || math.Abs(d) >= 0x1.ffffffp+127 {
		return 0, caseErrf("%s: component beyond float32 range", where)
	}
	return float32(d), nil
}

func vector(v any, where string) ([]float32, error) {
	a, ok := v.([]any)
	if !ok {
		return nil, caseErrf("%s must be an array", where)
	}
	out := make([]float32, len(a))
	for i, x := range a {
		var err error
		if out[i], err = component(x, fmt.Sprintf("%s[%d]", where, i)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func numberOrName(d float64) any {
	switch {
	case math.IsNaN(d):
		return "NaN"
	case math.IsInf(d, 1):
		return "Infinity"
	case math.IsInf(d, -1):
		return "-Infinity"
	}
	return d
}

// -- databases and sessions

func (in *interp) opOpen() (outcome, error) {
	path, err := in.str(in.step, "path")
	if err != nil {
		return outcome{}, err
	}
	var opts []Option
	if o, ok := in.step["options"]; ok {
		m, ok := o.(map[string]any)
		if !ok {
			return outcome{}, caseErrf("\"options\" must be an object")
		}
		for k, v := range m {
			switch k {
			case "read_only":
				b, ok := v.(bool)
				if !ok {
					return outcome{}, caseErrf("option read_only must be true or false")
				}
				if b {
					opts = append(opts, ReadOnly())
				}
			case "sync":
				s, ok := v.(string)
				if !ok {
					return outcome{}, caseErrf("option sync must be a string")
				}
				opts = append(opts, WithSync(Sync(s))) // an unknown level reaches the library
			default:
				return outcome{}, caseErrf("unknown open option %q", k)
			}
		}
	}
	db, err := Open(path, opts...)
	if err != nil {
		return fromErr(err), nil
	}
	return outcome{}, in.bind(&handle{kind: kindDB, path: path, db: db})
}

func (in *interp) opClose() (outcome, error) {
	h, m, err := in.expect("db", kindDB)
	if h == nil {
		return deref(m), err
	}
	if err := h.db.Close(); err != nil {
		return fromErr(err), nil
	}
	return outcome{}, nil
}

func deref(o *outcome) outcome {
	if o == nil {
		return outcome{}
	}
	return *o
}

func (in *interp) opBeginWrite() (outcome, error) {
	d, m, err := in.expect("db", kindDB)
	if d == nil {
		return deref(m), err
	}
	ctx := context.Background()
	if t, ok := in.step["timeout_ms"]; ok {
		ms, err := in.intArg(t, "timeout_ms")
		if err != nil {
			return outcome{}, err
		}
		if ms >= 0 {
			if ms > 1<<31-1 {
				ms = 1<<31 - 1
			}
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, time.Duration(ms)*time.Millisecond)
			defer cancel()
		}
	}
	w, err := d.db.BeginWrite(ctx)
	if err != nil {
		return fromErr(err), nil
	}
	return outcome{}, in.bind(&handle{kind: kindWrite, path: d.path, w: w, model: in.committed[d.path].copy()})
}

func (in *interp) opBeginRead() (outcome, error) {
	d, m, err := in.expect("db", kindDB)
	if d == nil {
		return deref(m), err
	}
	r, err := d.db.BeginRead()
	if err != nil {
		return fromErr(err), nil
	}
	return outcome{}, in.bind(&handle{kind: kindRead, path: d.path, r: r, model: in.committed[d.path].copy()})
}

func (in *interp) opCommit() (outcome, error) {
	w, m, err := in.expect("session", kindWrite)
	if w == nil {
		return deref(m), err
	}
	if err := w.w.Commit(); err != nil {
		return fromErr(err), nil
	}
	in.committed[w.path] = w.model.copy()
	return outcome{}, nil
}

func (in *interp) opAbort() (outcome, error) {
	w, m, err := in.expect("session", kindWrite)
	if w == nil {
		return deref(m), err
	}
	if err := w.w.Abort(); err != nil {
		return fromErr(err), nil
	}
	return outcome{}, nil
}

func (in *interp) opEnd() (outcome, error) {
	r, m, err := in.expect("session", kindRead)
	if r == nil {
		return deref(m), err
	}
	if err := r.r.End(); err != nil {
		return fromErr(err), nil
	}
	return outcome{}, nil
}

// -- collections

func (in *interp) opCreate() (outcome, error) {
	w, m, err := in.expect("session", kindWrite)
	if w == nil {
		return deref(m), err
	}
	name, err := in.str(in.step, "name")
	if err != nil {
		return outcome{}, err
	}
	dimv, err := in.arg(in.step, "dim")
	if err != nil {
		return outcome{}, err
	}
	dim, err := in.u32(dimv, "dim")
	if err != nil {
		return outcome{}, err
	}
	metric, err := in.str(in.step, "metric")
	if err != nil {
		return outcome{}, err
	}
	cfg := CollectionConfig{Dim: dim, Metric: Metric(metric), Index: HNSW} // the format's default
	if ix, ok := in.step["index"]; ok {
		im, ok := ix.(map[string]any)
		if !ok {
			return outcome{}, caseErrf("\"index\" must be an object")
		}
		t, err := in.str(im, "type")
		if err != nil {
			return outcome{}, err
		}
		cfg.Index = IndexType(t) // an unknown type reaches the library
		for k, v := range im {
			switch k {
			case "type":
			case "m":
				if cfg.M, err = in.u32(v, "m"); err != nil {
					return outcome{}, err
				}
			case "ef_construction":
				if cfg.EfConstruction, err = in.u32(v, "ef_construction"); err != nil {
					return outcome{}, err
				}
			case "quantization":
				q, ok := v.(string)
				if !ok {
					return outcome{}, caseErrf("\"quantization\" must be a string")
				}
				cfg.Quantization = Quantization(q)
			default:
				return outcome{}, caseErrf("unknown index parameter %q", k)
			}
		}
	}
	if err := w.w.CreateCollection(name, cfg); err != nil {
		return fromErr(err), nil
	}
	w.model[name] = &modelColl{metric: metric, vecs: map[string][]float32{}}
	return outcome{}, nil
}

func (in *interp) opDrop() (outcome, error) {
	w, m, err := in.expect("session", kindWrite)
	if w == nil {
		return deref(m), err
	}
	name, err := in.str(in.step, "name")
	if err != nil {
		return outcome{}, err
	}
	if err := w.w.DropCollection(name); err != nil {
		return fromErr(err), nil
	}
	delete(w.model, name)
	return outcome{}, nil
}

func (in *interp) opList() (outcome, error) {
	s, m, err := in.session()
	if s == nil {
		return deref(m), err
	}
	names, err := s.reader().ListCollections()
	if err != nil {
		return fromErr(err), nil
	}
	a := make([]any, len(names))
	for i, n := range names {
		a[i] = n
	}
	return outcome{value: a}, nil
}

func (in *interp) opDescribe() (outcome, error) {
	s, m, err := in.session()
	if s == nil {
		return deref(m), err
	}
	name, err := in.str(in.step, "name")
	if err != nil {
		return outcome{}, err
	}
	info, err := s.reader().Describe(name)
	if err != nil {
		return fromErr(err), nil
	}
	ix := map[string]any{"type": string(info.Index)}
	if info.Index == HNSW {
		ix["m"] = int64(info.M)
		ix["ef_construction"] = int64(info.EfConstruction)
		ix["quantization"] = string(info.Quantization)
	}
	metric := string(info.Metric)
	if metric == "" {
		metric = "unknown"
	}
	return outcome{value: map[string]any{
		"name": info.Name, "dim": int64(info.Dim), "metric": metric, "index": ix, "count": info.Count,
	}}, nil
}

// -- data

func (in *interp) record(w *handle, coll string, ids []string, flat []float32, dim int) {
	c, ok := w.model[coll]
	if !ok {
		return
	}
	for i, id := range ids {
		c.vecs[id] = flat[i*dim : (i+1)*dim]
	}
}

func (in *interp) opUpsert() (outcome, error) {
	w, m, err := in.expect("session", kindWrite)
	if w == nil {
		return deref(m), err
	}
	coll, err := in.str(in.step, "collection")
	if err != nil {
		return outcome{}, err
	}
	itemsv, err := in.arg(in.step, "items")
	if err != nil {
		return outcome{}, err
	}
	items, ok := itemsv.([]any)
	if !ok {
		return outcome{}, caseErrf("\"items\" must be an array")
	}
	var ids []string
	var vecs [][]float32
	var meta []any
	for i, itv := range items {
		where := fmt.Sprintf("items[%d]", i)
		it, ok := itv.(map[string]any)
		if !ok {
			return outcome{}, caseErrf("%s must be an object", where)
		}
		for k := range it {
			if k != "id" && k != "vector" && k != "metadata" {
				return outcome{}, caseErrf("%s has unknown key %q", where, k)
			}
		}
		id, err := in.str(it, "id")
		if err != nil {
			return outcome{}, err
		}
		vv, err := in.arg(it, "vector")
		if err != nil {
			return outcome{}, err
		}
		vec, err := vector(vv, where+".vector")
		if err != nil {
			return outcome{}, err
		}
		ids = append(ids, id)
		vecs = append(vecs, vec)
		if md, ok := it["metadata"]; ok && md != nil {
			// Serialized as given: a non-object reaches the library, which must refuse it.
			b, err := json.Marshal(md)
			if err != nil {
				return outcome{}, caseErrf("%s.metadata cannot be serialized", where)
			}
			meta = append(meta, json.RawMessage(b))
		} else {
			meta = append(meta, nil)
		}
	}
	if err := w.w.Upsert(coll, ids, vecs, meta); err != nil {
		return fromErr(err), nil
	}
	if c, ok := w.model[coll]; ok {
		for i, id := range ids {
			c.vecs[id] = vecs[i]
		}
	}
	return outcome{}, nil
}

type genArgs struct {
	count, dim int
	seed       uint64
}

func (in *interp) gen() (genArgs, error) {
	var g genArgs
	var err error
	if g.count, err = in.size("count"); err != nil {
		return g, err
	}
	if g.dim, err = in.size("dim"); err != nil {
		return g, err
	}
	sv, err := in.arg(in.step, "seed")
	if err != nil {
		return g, err
	}
	seed, err := in.intArg(sv, "seed")
	if err != nil {
		return g, err
	}
	if seed < 0 {
		return g, caseErrf("\"seed\" must not be negative")
	}
	g.seed = uint64(seed)
	return g, nil
}

func (in *interp) opUpsertGenerated() (outcome, error) {
	w, m, err := in.expect("session", kindWrite)
	if w == nil {
		return deref(m), err
	}
	coll, err := in.str(in.step, "collection")
	if err != nil {
		return outcome{}, err
	}
	prefix, err := in.str(in.step, "id_prefix")
	if err != nil {
		return outcome{}, err
	}
	g, err := in.gen()
	if err != nil {
		return outcome{}, err
	}
	flat := generate(g.seed, g.count, g.dim)
	ids := make([]string, g.count)
	for i := range ids {
		ids[i] = prefix + strconv.Itoa(i)
	}
	var md []any
	if mv, ok := in.step["metadata_mod"]; ok {
		// metadata_mod m (extension): item i gets {"i": i, "c": i % m}.
		mod, ok := isInteger(mv)
		if !ok || mod < 1 {
			return outcome{}, caseErrf("\"metadata_mod\" must be an integer >= 1")
		}
		md = make([]any, g.count)
		for i := range md {
			md[i] = json.RawMessage(`{"i": ` + strconv.Itoa(i) + `, "c": ` + strconv.FormatInt(int64(i)%mod, 10) + `}`)
		}
	}
	if err := w.w.UpsertFlat(coll, ids, flat, g.dim, md); err != nil {
		return fromErr(err), nil
	}
	in.record(w, coll, ids, flat, g.dim)
	return outcome{}, nil
}

func (in *interp) opDelete() (outcome, error) {
	w, m, err := in.expect("session", kindWrite)
	if w == nil {
		return deref(m), err
	}
	coll, err := in.str(in.step, "collection")
	if err != nil {
		return outcome{}, err
	}
	idsv, err := in.arg(in.step, "ids")
	if err != nil {
		return outcome{}, err
	}
	arr, ok := idsv.([]any)
	if !ok {
		return outcome{}, caseErrf("\"ids\" must be an array")
	}
	ids := make([]string, len(arr))
	for i, x := range arr {
		s, ok := x.(string)
		if !ok || strings.IndexByte(s, 0) >= 0 {
			return outcome{}, caseErrf("ids[%d] must be a string without NUL", i)
		}
		ids[i] = s
	}
	n, err := w.w.Delete(coll, ids)
	if err != nil {
		return fromErr(err), nil
	}
	if c, ok := w.model[coll]; ok {
		for _, id := range ids {
			delete(c.vecs, id)
		}
	}
	return outcome{value: int64(n)}, nil
}

func (in *interp) opGet() (outcome, error) {
	s, m, err := in.session()
	if s == nil {
		return deref(m), err
	}
	coll, err := in.str(in.step, "collection")
	if err != nil {
		return outcome{}, err
	}
	id, err := in.str(in.step, "id")
	if err != nil {
		return outcome{}, err
	}
	rec, err := s.reader().Get(coll, id)
	if err != nil {
		return fromErr(err), nil
	}
	o := outcome{}
	o.value = recordJSON(rec, &o.problem)
	return o, nil
}

// recordJSON is a record as {"id", "vector", "metadata"} (FORMAT.md, get); a fault in
// the returned metadata goes to *problem.
func recordJSON(rec *Record, problem *string) map[string]any {
	vec := make([]any, len(rec.Vector))
	for i, x := range rec.Vector {
		vec[i] = numberOrName(float64(x))
	}
	var md any
	if rec.Metadata != nil {
		// As the C runner (json_loads without JSON_REJECT_DUPLICATES): any JSON text,
		// a repeated key keeping its last value.
		d := json.NewDecoder(bytes.NewReader(rec.Metadata))
		d.UseNumber()
		err := d.Decode(&md)
		if err == nil && d.More() {
			err = errors.New("text after the JSON value")
		}
		if err != nil {
			*problem = fmt.Sprintf("returned metadata is not valid JSON (%v): %s", err, rec.Metadata)
			md = string(rec.Metadata)
		}
	}
	return map[string]any{"id": rec.ID, "vector": vec, "metadata": md}
}

// opGetMany (extension): the records of ids, in order; null for an id not there.
func (in *interp) opGetMany() (outcome, error) {
	s, m, err := in.session()
	if s == nil {
		return deref(m), err
	}
	coll, err := in.str(in.step, "collection")
	if err != nil {
		return outcome{}, err
	}
	idsv, err := in.arg(in.step, "ids")
	if err != nil {
		return outcome{}, err
	}
	arr, ok := idsv.([]any)
	if !ok {
		return outcome{}, caseErrf("\"ids\" must be an array")
	}
	ids := make([]string, len(arr))
	for i, x := range arr {
		s, ok := x.(string)
		if !ok || strings.IndexByte(s, 0) >= 0 {
			return outcome{}, caseErrf("ids[%d] must be a string without NUL", i)
		}
		ids[i] = s
	}
	recs, err := s.reader().GetMany(coll, ids)
	if err != nil {
		return fromErr(err), nil
	}
	o := outcome{}
	a := make([]any, len(recs))
	for i, r := range recs {
		if r != nil {
			a[i] = recordJSON(r, &o.problem)
		}
	}
	o.value = a
	return o, nil
}

// opScan (extension): every live record through a cursor, in id order, after "after",
// "batch" records at a time.
func (in *interp) opScan() (outcome, error) {
	s, m, err := in.session()
	if s == nil {
		return deref(m), err
	}
	coll, err := in.str(in.step, "collection")
	if err != nil {
		return outcome{}, err
	}
	after := "" // the Go API's "from the first id"
	if _, ok := in.step["after"]; ok {
		if after, err = in.str(in.step, "after"); err != nil {
			return outcome{}, err
		}
	}
	batch := 1000
	if _, ok := in.step["batch"]; ok {
		if batch, err = in.size("batch"); err != nil {
			return outcome{}, err
		}
	}
	cur, err := s.reader().Cursor(coll, after)
	if err != nil {
		return fromErr(err), nil
	}
	defer cur.Close()
	o := outcome{}
	a := []any{}
	for {
		recs, err := cur.Next(batch)
		if err != nil {
			return fromErr(err), nil
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			a = append(a, recordJSON(r, &o.problem))
		}
	}
	o.value = a
	return o, nil
}

func (in *interp) opCount() (outcome, error) {
	s, m, err := in.session()
	if s == nil {
		return deref(m), err
	}
	coll, err := in.str(in.step, "collection")
	if err != nil {
		return outcome{}, err
	}
	n, err := s.reader().Count(coll)
	if err != nil {
		return fromErr(err), nil
	}
	return outcome{value: n}, nil
}

// searchOpts are the options of search and search_generated: ef, and the extensions
// filter (its JSON text, whatever it is: the library judges it), include and exact.
func (in *interp) searchOpts() ([]SearchOption, Include, error) {
	var opts []SearchOption
	if ef, ok := in.step["ef"]; ok {
		x, err := in.u32(ef, "ef")
		if err != nil {
			return nil, 0, err
		}
		opts = append(opts, WithEf(x))
	}
	if f, ok := in.step["filter"]; ok {
		text, err := json.Marshal(f)
		if err != nil {
			return nil, 0, caseErrf("\"filter\" cannot be serialized: %v", err)
		}
		opts = append(opts, WithFilter(json.RawMessage(text)))
	}
	var inc Include
	if iv, ok := in.step["include"]; ok {
		arr, ok := iv.([]any)
		if !ok {
			return nil, 0, caseErrf("\"include\" must be an array")
		}
		for _, w := range arr {
			switch w {
			case "metadata":
				inc |= IncludeMetadata
			case "vector":
				inc |= IncludeVector
			default:
				return nil, 0, caseErrf("\"include\" holds \"metadata\" and \"vector\" only")
			}
		}
		opts = append(opts, WithInclude(inc))
	}
	if ev, ok := in.step["exact"]; ok {
		b, ok := ev.(bool)
		if !ok {
			return nil, 0, caseErrf("\"exact\" must be a boolean")
		}
		opts = append(opts, WithExact(b))
	}
	return opts, inc, nil
}

func (in *interp) opSearch() (outcome, error) {
	s, m, err := in.session()
	if s == nil {
		return deref(m), err
	}
	coll, err := in.str(in.step, "collection")
	if err != nil {
		return outcome{}, err
	}
	qv, err := in.arg(in.step, "vector")
	if err != nil {
		return outcome{}, err
	}
	q, err := vector(qv, "vector")
	if err != nil {
		return outcome{}, err
	}
	k, err := in.size("k")
	if err != nil {
		return outcome{}, err
	}
	opts, inc, err := in.searchOpts()
	if err != nil {
		return outcome{}, err
	}
	hits, err := s.reader().Search(context.Background(), coll, q, k, opts...)
	if err != nil {
		return fromErr(err), nil
	}
	o := outcome{}
	a := make([]any, len(hits))
	for i, h := range hits {
		hit := map[string]any{"id": h.ID, "distance": numberOrName(float64(h.Distance))}
		if inc&(IncludeMetadata|IncludeVector) != 0 {
			// The hit's metadata and vector as get returns them (null: none).
			rec := recordJSON(&Record{ID: h.ID, Vector: h.Vector, Metadata: h.Metadata}, &o.problem)
			if inc&IncludeMetadata != 0 {
				hit["metadata"] = rec["metadata"]
			}
			if inc&IncludeVector != 0 {
				hit["vector"] = rec["vector"]
				if h.Vector == nil {
					hit["vector"] = nil
				}
			}
		}
		a[i] = hit
	}
	o.value = a
	return o, nil
}

func distance(metric string, a, b []float32) float64 {
	var dot, na, nb, l2 float64
	for i := range a {
		x, y := float64(a[i]), float64(b[i])
		dot += x * y
		na += x * x
		nb += y * y
		l2 += (x - y) * (x - y)
	}
	switch metric {
	case "l2":
		return l2
	case "ip":
		return 1 - dot
	}
	return 1 - dot/(math.Sqrt(na)*math.Sqrt(nb))
}

func (in *interp) opSearchGenerated() (outcome, error) {
	s, m, err := in.session()
	if s == nil {
		return deref(m), err
	}
	coll, err := in.str(in.step, "collection")
	if err != nil {
		return outcome{}, err
	}
	g, err := in.gen()
	if err != nil {
		return outcome{}, err
	}
	k, err := in.size("k")
	if err != nil {
		return outcome{}, err
	}
	opts, _, err := in.searchOpts()
	if err != nil {
		return outcome{}, err
	}
	qs := generate(g.seed, g.count, g.dim)
	res, err := s.reader().SearchBatchFlat(context.Background(), coll, qs, g.dim, k, opts...)
	if err != nil {
		return fromErr(err), nil
	}
	// With a filter (extension), the exact answer comes from the same API with exact
	// set: a scan of the matching items.
	var exactRes [][]Hit
	if _, ok := in.step["filter"]; ok {
		exactRes, err = s.reader().SearchBatchFlat(context.Background(), coll, qs, g.dim, k, append(opts, WithExact(true))...)
		if err != nil {
			return fromErr(err), nil
		}
	}
	o := outcome{}
	mc, ok := s.model[coll]
	if !ok {
		o.problem = fmt.Sprintf("runner: no record of collection '%s' in this session (create it in this test)", coll)
		return o, nil
	}
	if len(res) != g.count {
		o.problem = fmt.Sprintf("search_batch answered %d queries of %d", len(res), g.count)
		return o, nil
	}
	if exactRes != nil && len(exactRes) != g.count {
		o.problem = fmt.Sprintf("the exact search_batch answered %d queries of %d", len(exactRes), g.count)
		return o, nil
	}
	type cand struct {
		d  float64
		id string
	}
	total := 0.0
	for q := 0; q < g.count; q++ {
		exact := map[string]bool{}
		want := 0
		if exactRes != nil {
			if q < len(exactRes) {
				for _, h := range exactRes[q] {
					exact[h.ID] = true
				}
			}
			want = len(exact)
		} else {
			query := qs[q*g.dim : (q+1)*g.dim]
			all := make([]cand, 0, len(mc.vecs))
			for id, v := range mc.vecs {
				if len(v) == g.dim {
					all = append(all, cand{distance(mc.metric, query, v), id})
				}
			}
			sort.Slice(all, func(i, j int) bool {
				if all[i].d != all[j].d {
					return all[i].d < all[j].d
				}
				return all[i].id < all[j].id
			})
			want = min(k, len(all))
			for _, c := range all[:want] {
				exact[c.id] = true
			}
		}
		hits := res[q]
		if len(hits) > k && o.problem == "" {
			o.problem = fmt.Sprintf("query %d returned %d hits for k %d", q, len(hits), k)
		}
		seen := map[string]bool{}
		found := 0
		for _, h := range hits {
			if _, live := mc.vecs[h.ID]; !live && o.problem == "" {
				o.problem = fmt.Sprintf("query %d returned id %q, which is not live", q, h.ID)
			}
			if seen[h.ID] && o.problem == "" {
				o.problem = fmt.Sprintf("query %d returned id %q twice", q, h.ID)
			}
			seen[h.ID] = true
			if exact[h.ID] {
				found++
			}
		}
		switch {
		case want > 0:
			total += float64(found) / float64(want)
		case len(hits) == 0:
			total += 1
		}
	}
	recall := 1.0
	if g.count > 0 {
		recall = total / float64(g.count)
	}
	o.value = recall
	return o, nil
}

// -- files

func (in *interp) opWriteFile() (outcome, error) {
	path, err := in.str(in.step, "path")
	if err != nil {
		return outcome{}, err
	}
	if !strings.HasPrefix(path, in.tmp+"/") || strings.Contains(path, "/../") || strings.HasSuffix(path, "/..") {
		return outcome{}, caseErrf("write_file writes only inside $TMP, not to '%s'", path)
	}
	text, hasText := in.step["text"]
	hx, hasHex := in.step["hex"]
	if hasText == hasHex {
		return outcome{}, caseErrf("write_file needs exactly one of \"text\", \"hex\"")
	}
	var data []byte
	if hasText {
		s, ok := text.(string)
		if !ok {
			return outcome{}, caseErrf("\"text\" must be a string")
		}
		data = []byte(s)
	} else {
		s, ok := hx.(string)
		if !ok {
			return outcome{}, caseErrf("argument \"hex\" must be a string")
		}
		digits := strings.Join(strings.Fields(s), "")
		if len(digits)%2 != 0 {
			return outcome{}, caseErrf("\"hex\" has an odd number of digits")
		}
		if data, err = hex.DecodeString(digits); err != nil {
			return outcome{}, caseErrf("\"hex\" has a character that is not a hex digit")
		}
	}
	if p, ok := in.step["pad_to"]; ok {
		n, err := in.intArg(p, "pad_to")
		if err != nil {
			return outcome{}, err
		}
		if n < 0 || n > 64<<20 {
			return outcome{}, caseErrf("\"pad_to\" must be from 0 to 64 MiB")
		}
		for int64(len(data)) < n {
			data = append(data, 0)
		}
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return outcome{}, caseErrf("write_file cannot write '%s': %v", path, err)
	}
	return outcome{}, nil
}

// ---- checking a step's expectation ---------------------------------------------------------------

func check(op string, step map[string]any, o outcome) (string, error) {
	expect, hasExpect := step["expect"]
	want, hasError := step["expect_error"]
	if hasExpect && hasError {
		return "", caseErrf("a step has at most one of \"expect\", \"expect_error\"")
	}
	if hasError {
		w, ok := want.(string)
		if !ok {
			return "", caseErrf("\"expect_error\" must be a string")
		}
		if o.code == "" {
			return fmt.Sprintf("expected error %s, but the op succeeded (result: %s)", w, dump(o.value)), nil
		}
		if o.code != w {
			return fmt.Sprintf("expected error %s, got %s: %s", w, o.code, o.message), nil
		}
		return "", nil
	}
	if o.code != "" {
		return fmt.Sprintf("the op failed with %s: %s", o.code, o.message), nil
	}
	if o.problem != "" {
		return o.problem, nil
	}
	if !hasExpect {
		return "", nil
	}
	tol := tolerance{abs: 1e-5, rel: 1e-5}
	if t, ok := step["tolerance"]; ok {
		f, ok := toFloat(t)
		if !ok {
			return "", caseErrf("\"tolerance\" must be a number")
		}
		tol = tolerance{absoluteOnly: true, abs: f}
	}
	actual := o.value
	differ := func(why string) string {
		return fmt.Sprintf("expected: %s\n  actual:   %s\n  difference %s", dump(expect), dump(actual), why)
	}
	if op == "search_generated" {
		em, ok := expect.(map[string]any)
		r, isNum := toFloat(em["recall_at_least"])
		if !ok || len(em) != 1 || !isNum {
			return "", caseErrf("search_generated expects {\"recall_at_least\": R}")
		}
		got := actual.(float64)
		if got+1e-12 >= r {
			return "", nil
		}
		return fmt.Sprintf("mean recall %.6f is below %.6f", got, r), nil
	}
	if em, ok := expect.(map[string]any); ok && op == "search" {
		ids, isIDs := em["ids"].([]any)
		set, isSet := em["id_set"].([]any)
		if len(em) != 1 || !(isIDs || isSet) {
			return "", caseErrf("search expects a hit array, {\"ids\": [...]} or {\"id_set\": [...]}")
		}
		got := []any{}
		for _, h := range actual.([]any) {
			got = append(got, h.(map[string]any)["id"])
		}
		if isIDs {
			if why := match(ids, got, tol, "ids", 0); why != "" {
				return differ(why), nil
			}
			return "", nil
		}
		a, b := make([]string, len(set)), make([]string, len(got))
		for i, x := range set {
			a[i] = dump(x)
		}
		for i, x := range got {
			b[i] = dump(x)
		}
		sort.Strings(a)
		sort.Strings(b)
		if strings.Join(a, "\x00") != strings.Join(b, "\x00") || len(a) != len(b) {
			return differ("in the set of ids (order ignored)"), nil
		}
		return "", nil
	}
	subset := 0
	if op == "describe_collection" {
		subset = 2
	}
	if why := match(expect, actual, tol, "", subset); why != "" {
		return differ(why), nil
	}
	return "", nil
}

// ---- case files --------------------------------------------------------------------------------

var capabilities = map[string]bool{"index:flat": true, "index:hnsw": true, "metric:l2": true,
	"metric:ip": true, "metric:cosine": true, "metadata": true, "filter": true}
var knownTags = map[string]bool{"index:flat": true, "index:hnsw": true, "metric:l2": true,
	"metric:ip": true, "metric:cosine": true, "metadata": true, "filter": true}

type confCase struct {
	file, name string
	test       map[string]any
	requires   []any
	loadError  string
	skip       *skipEntry
}

func (c *confCase) id() string {
	return safeName(strings.TrimSuffix(c.file, ".json")) + "." + safeName(c.name)
}

func safeName(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 128 && (r == '_' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')) {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "_"
	}
	return b.String()
}

type skipEntry struct {
	file, test, reason string
	matched            bool
}

func repoRoot() string {
	dir, _ := os.Getwd() // bindings/go when run by go test
	return filepath.Clean(filepath.Join(dir, "..", ".."))
}

func casesDir() string {
	if d := os.Getenv("CONFORMANCE_CASES"); d != "" {
		return d
	}
	return filepath.Join(repoRoot(), "conformance", "cases")
}

func skipPath() string {
	if p := os.Getenv("CONFORMANCE_SKIP"); p != "" {
		return p
	}
	return filepath.Join(repoRoot(), "conformance", "skip", "go.json")
}

func loadSkips() ([]*skipEntry, []string) {
	path := skipPath()
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, []string{path + ": " + err.Error()}
	}
	rootv, err := decodeJSON(data)
	root, ok := rootv.(map[string]any)
	shape := path + `: must be {"comment"?: "...", "skips": [{"file": ..., "test": ..., "reason": ...}, ...]}`
	if err != nil || !ok {
		return nil, []string{shape}
	}
	skips, ok := root["skips"].([]any)
	_, hasComment := root["comment"]
	if c, isStr := root["comment"].(string); !ok || (hasComment && !isStr) || len(root) != map[bool]int{true: 2, false: 1}[hasComment] {
		_ = c
		return nil, []string{shape}
	}
	var out []*skipEntry
	var problems []string
	for i, sv := range skips {
		where := fmt.Sprintf("%s: skips[%d]", path, i)
		s, _ := sv.(map[string]any)
		file, ok1 := s["file"].(string)
		test, ok2 := s["test"].(string)
		if !ok1 || !ok2 {
			problems = append(problems, where+` needs string "file" and "test"`)
			continue
		}
		reason, _ := s["reason"].(string)
		if reason == "" {
			problems = append(problems, fmt.Sprintf(`%s (%s / %s) has no "reason": every skip needs one`, where, file, test))
			continue
		}
		if len(s) != 3 {
			problems = append(problems, where+" has keys other than file, test, reason")
		}
		out = append(out, &skipEntry{file: file, test: test, reason: reason})
	}
	return out, problems
}

func loadCases(skips []*skipEntry) []*confCase {
	dir := casesDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return []*confCase{{file: "_cases.json", name: "directory", loadError: "cannot read the case directory " + dir + ": " + err.Error()}}
	}
	var files []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".json") {
			files = append(files, e.Name())
		}
	}
	sort.Strings(files)
	if len(files) == 0 {
		return []*confCase{{file: "_cases.json", name: "directory", loadError: "no *.json case files in " + dir}}
	}
	var cases []*confCase
	for _, file := range files {
		path := filepath.Join(dir, file)
		broken := func(why string) {
			cases = append(cases, &confCase{file: file, name: "_file", loadError: path + ": " + why})
		}
		data, err := os.ReadFile(path)
		if err != nil {
			broken(err.Error())
			continue
		}
		rootv, err := decodeJSON(data)
		if err != nil {
			broken("not valid JSON: " + err.Error())
			continue
		}
		root, _ := rootv.(map[string]any)
		if f, ok := isInteger(root["format"]); !ok || f != 1 {
			broken(`"format" must be 1 (the version this runner reads)`)
			continue
		}
		tests, ok := root["tests"].([]any)
		req, reqOK := root["requires"].([]any)
		if _, has := root["requires"]; !ok || (has && !reqOK) {
			broken(`"tests" (and "requires" if present) must be arrays`)
			continue
		}
		seen := map[string]bool{}
		for i, tv := range tests {
			t, _ := tv.(map[string]any)
			name, nameOK := t["name"].(string)
			_, stepsOK := t["steps"].([]any)
			c := &confCase{file: file, name: name, test: t, requires: req}
			if !nameOK {
				c.name = fmt.Sprintf("tests[%d]", i)
			}
			if !nameOK || !stepsOK {
				c.loadError = fmt.Sprintf(`%s: tests[%d] needs a string "name" and a "steps" array`, path, i)
			}
			if seen[safeName(c.name)] {
				cases = append(cases, &confCase{file: file, name: "_duplicate_" + c.name, loadError: fmt.Sprintf(
					"%s: two tests are named %q (names are unique within a file, also after characters other than A-Z a-z 0-9 _ become _)", path, c.name)})
				continue
			}
			seen[safeName(c.name)] = true
			for _, s := range skips {
				if s.file == file && s.test == c.name {
					c.skip = s
					s.matched = true
				}
			}
			cases = append(cases, c)
		}
	}
	return cases
}

// substitute replaces $TMP in every string (values and keys).
func substitute(v any, tmp string) any {
	switch x := v.(type) {
	case string:
		return strings.ReplaceAll(x, "$TMP", tmp)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = substitute(e, tmp)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[strings.ReplaceAll(k, "$TMP", tmp)] = substitute(e, tmp)
		}
		return out
	}
	return v
}

// runCase runs one test; "" when it passed, else a report naming file, test, step, op.
func runCase(c *confCase) string {
	if c.loadError != "" {
		return c.loadError
	}
	head := fmt.Sprintf("conformance case failed\n  file: %s\n  test: %s\n", c.file, c.name)
	testReq, _ := c.test["requires"].([]any)
	for _, req := range [][]any{c.requires, testReq} {
		for _, tv := range req {
			tag, _ := tv.(string)
			if !knownTags[tag] {
				return head + fmt.Sprintf("  requires unknown capability %q\n", tag)
			}
			if !capabilities[tag] {
				return head + fmt.Sprintf("  requires %q, which the Go binding does not support\n", tag)
			}
		}
	}
	outer, err := os.MkdirTemp("", "sx-conformance-")
	if err != nil {
		return head + "  runner error: " + err.Error() + "\n"
	}
	defer os.RemoveAll(outer)
	tmp := filepath.Join(outer, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return head + "  runner error: " + err.Error() + "\n"
	}
	in := &interp{tmp: tmp, names: map[string]*handle{}, committed: map[string]model{}}
	defer in.closeAll() // handles left open, after the steps were checked; then $TMP goes
	steps := c.test["steps"].([]any)
	for i, raw := range steps {
		stepv := substitute(raw, tmp)
		step, _ := stepv.(map[string]any)
		op, _ := step["op"].(string)
		if op == "" {
			op = "?"
		}
		where := fmt.Sprintf("%s  step: %d (steps[%d], op %q)\n  step json: %s\n", head, i, i, op, dump(raw))
		var why string
		if step == nil {
			why = "case error: a step must be an object"
		} else if o, err := in.run(step); err != nil {
			why = "case error: " + err.Error()
		} else if why, err = check(op, step, o); err != nil {
			why = "case error: " + err.Error()
		}
		if why != "" {
			return where + "  " + why + "\n"
		}
	}
	return ""
}

var (
	confOnce  sync.Once
	confCases []*confCase
	confSkips []*skipEntry
	confProbs []string
)

func conformanceSuite() ([]*confCase, []*skipEntry, []string) {
	confOnce.Do(func() {
		confSkips, confProbs = loadSkips()
		confCases = loadCases(confSkips)
	})
	return confCases, confSkips, confProbs
}

type reportEntry struct {
	File    string `json:"file"`
	Test    string `json:"test"`
	Outcome string `json:"outcome"`
}

func loudNote(c *confCase) string {
	bar := strings.Repeat("*", 70)
	return fmt.Sprintf("%s\nNOTE: %s / %s is listed in %s (reason: %s)\nbut it PASSED: remove it from the skip list.\n%s\n",
		bar, c.file, c.name, skipPath(), c.skip.reason, bar)
}

func TestConformance(t *testing.T) {
	cases, _, _ := conformanceSuite()
	var mu sync.Mutex
	var report []reportEntry
	for _, c := range cases {
		t.Run(c.id(), func(t *testing.T) {
			failure := runCase(c)
			outcome := "passed"
			if failure != "" {
				outcome = "failed"
				if c.skip != nil {
					outcome = "expected_failure"
				}
			}
			mu.Lock()
			report = append(report, reportEntry{File: c.file, Test: c.name, Outcome: outcome})
			mu.Unlock()
			if c.skip != nil {
				if failure == "" {
					fmt.Fprint(os.Stderr, loudNote(c))
					t.Skipf("listed in the skip file: %s -- BUT IT PASSED: remove it from %s", c.skip.reason, skipPath())
				}
				t.Logf("failure of a test listed in the skip file (reason: %s):\n%s", c.skip.reason, failure)
				t.Skip(c.skip.reason)
			}
			if failure != "" {
				t.Error(failure)
			}
		})
	}
	if path := os.Getenv("SEXTANT_CONFORMANCE_REPORT"); path != "" {
		data, _ := json.MarshalIndent(map[string]any{"runner": "go", "results": report}, "", "  ")
		if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
			t.Errorf("cannot write the conformance report: %v", err)
		}
	}
}

// TestConformanceSkipFile: the skip file is well formed, names existing tests only,
// and none of its tests passes (a passing one must leave the list).
func TestConformanceSkipFile(t *testing.T) {
	cases, skips, problems := conformanceSuite()
	for _, s := range skips {
		if !s.matched {
			problems = append(problems, fmt.Sprintf("%s: no test %q in file %q", skipPath(), s.test, s.file))
		}
	}
	for _, c := range cases {
		if c.skip != nil && runCase(c) == "" {
			fmt.Fprint(os.Stderr, loudNote(c))
			problems = append(problems, fmt.Sprintf("%s / %s passes: remove it from %s", c.file, c.name, skipPath()))
		}
	}
	for _, p := range problems {
		t.Error(p)
	}
}

func TestSplitmix64ReferenceValues(t *testing.T) {
	s := uint64(0)
	want := []uint64{0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F}
	for i, w := range want {
		if got := splitmix64(&s); got != w {
			t.Fatalf("output %d: %#x, want %#x", i, got, w)
		}
	}
	v := generate(0, 1, 2)
	if v[0] != float32(float64(uint64(0xE220A8397B1DCDAF)>>40)/16777216.0*2-1) {
		t.Fatalf("component %v", v[0])
	}
}
