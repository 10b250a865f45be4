package sextant

import (
	"context"
	"encoding/json"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/sextant/sextant/bindings/go/internal/sx"
)

// takeRecords copies a batch of records out (two crossings) and frees it. Records not
// found are nil.
func takeRecords(p uintptr) []*Record {
	defer sx.FreeRecords(p)
	recs := sx.RecordsOf(p)
	var shape [4]uint64
	sx.Sx_go_records_shape(recs, shape[:])
	n, dim := int(shape[0]), int(shape[1])
	vecs := make([]float32, n*dim)
	found := make([]byte, n)
	offs := make([]uint64, 2*(n+1))
	idoff, metaoff := offs[:n+1], offs[n+1:]
	ids := make([]byte, shape[2])
	meta := make([]byte, shape[3])
	if sx.Sx_go_records_copy(recs, vecs, found, idoff, ids, metaoff, meta) != 0 {
		return nil
	}
	all := string(ids)
	out := make([]*Record, n)
	block := make([]Record, n)
	for i := range out {
		if found[i] == 0 {
			continue
		}
		r := &block[i]
		a, b := idoff[i], idoff[i+1]
		if b > a && all[b-1] == 0 { // each id's range ends with its NUL
			b--
		}
		r.ID = all[a:b]
		r.Vector = vecs[i*dim : (i+1)*dim : (i+1)*dim]
		if a, b := metaoff[i], metaoff[i+1]; b > a {
			if meta[b-1] == 0 {
				b--
			}
			r.Metadata = json.RawMessage(meta[a:b:b])
		}
		out[i] = r
	}
	return out
}

func getMany(v sx.Sx_collection, ids []string) ([]*Record, error) {
	idb, idoff := pack(ids)
	eb := getErrbuf()
	defer putErrbuf(eb)
	var p uintptr
	if err := statusError(sx.Sx_collection_get_packed(v, int64(len(ids)), idb, idoff, &p, eb), eb); err != nil {
		return nil, err
	}
	return takeRecords(p), nil
}

// GetMany gets several ids in one call, in the order asked; an id that is not in the
// collection gives a nil record (not an error).
func (tx *ReadTx) GetMany(collection string, ids []string) (recs []*Record, err error) {
	err = tx.withView(collection, func(v sx.Sx_collection) (e error) { recs, e = getMany(v, ids); return })
	return
}

// GetMany gets several ids in one call, the session's changes included; an id that is
// not in the collection gives a nil record.
func (tx *WriteTx) GetMany(collection string, ids []string) (recs []*Record, err error) {
	err = tx.withView(collection, func(v sx.Sx_collection) (e error) { recs, e = getMany(v, ids); return })
	return
}

// Cursor walks the live records of a collection in ascending bytewise order of their
// ids, batch by batch. On a read session it lists the snapshot; on a write session,
// records deleted after it opened are skipped and records upserted since are read as
// they are now (ids new since it opened are not listed). Safe for concurrent use (its
// calls run one at a time). Close it when done; once its session ends, Next fails with
// ErrClosed.
type Cursor struct {
	mu      sync.Mutex
	st      *cursorState
	session sync.Locker // a write session's mutex: the cursor reads through the session
	closed  bool
}

type cursorState struct {
	p     uintptr
	freed atomic.Bool
}

func (s *cursorState) free() {
	if !s.freed.Swap(true) {
		sx.FreeCursor(s.p)
	}
}

func openCursor(v sx.Sx_collection, after string, session sync.Locker) (*Cursor, error) {
	if err := checkString("after", after); err != nil {
		return nil, err
	}
	eb := getErrbuf()
	defer putErrbuf(eb)
	var p uintptr
	if err := statusError(sx.Sx_collection_cursor(v, after, &p, eb), eb); err != nil {
		return nil, err
	}
	c := &Cursor{st: &cursorState{p: p}, session: session}
	runtime.AddCleanup(c, func(s *cursorState) { s.free() }, c.st)
	return c, nil
}

// Cursor opens a cursor on a collection of the snapshot, starting after the id after
// ("" for the first id; after need not exist, so a walk resumes from the last id it
// returned, in this or a later session).
func (tx *ReadTx) Cursor(collection, after string) (c *Cursor, err error) {
	err = tx.withView(collection, func(v sx.Sx_collection) (e error) { c, e = openCursor(v, after, nil); return })
	return
}

// Cursor opens a cursor on a collection as the write session sees it.
func (tx *WriteTx) Cursor(collection, after string) (c *Cursor, err error) {
	err = tx.withView(collection, func(v sx.Sx_collection) (e error) { c, e = openCursor(v, after, &tx.mu); return })
	return
}

// Next returns the next batch of at most max records; an empty batch means the end.
func (c *Cursor) Next(max int) ([]*Record, error) {
	if max <= 0 {
		return nil, errInvalid("max must be positive (got " + itoa(max) + ")")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errClosed("the cursor is closed")
	}
	if c.session != nil {
		c.session.Lock()
		defer c.session.Unlock()
	}
	eb := getErrbuf()
	defer putErrbuf(eb)
	var p uintptr
	if err := statusError(sx.Sx_cursor_next(sx.CursorOf(c.st.p), int64(max), &p, eb), eb); err != nil {
		return nil, err
	}
	return takeRecords(p), nil
}

// Remaining returns how many ids the cursor has still to visit (records deleted since
// it opened included); 0 once closed.
func (c *Cursor) Remaining() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0
	}
	return sx.Sx_cursor_remaining(sx.CursorOf(c.st.p))
}

// Close frees the cursor. Closing again does nothing.
func (c *Cursor) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		c.st.free()
	}
	return nil
}

type backupConfig struct{ overwrite bool }

// BackupOption configures Backup.
type BackupOption func(*backupConfig)

// Overwrite lets Backup replace an existing file at the destination; a database that a
// handle, in any process, has open there is ErrBusy.
func Overwrite() BackupOption { return func(c *backupConfig) { c.overwrite = true } }

// Backup copies the latest committed snapshot to a new database file at dest while
// other sessions, in any process, go on reading and writing. dest is either left as
// it was or holds the whole backup (written beside it, synced, renamed). Without
// Overwrite an existing dest is ErrExists. ctx cancels it (ErrCancelled, also
// matching ctx.Err(); nothing is left at dest).
func (db *DB) Backup(ctx context.Context, dest string, opts ...BackupOption) error {
	if err := checkString("dest", dest); err != nil {
		return err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	if err := ctx.Err(); err != nil {
		return &Error{Code: "CANCELLED", Message: "the context is done", cause: err}
	}
	var c backupConfig
	for _, o := range opts {
		o(&c)
	}
	bo := &sx.BackupOpts{}
	if c.overwrite {
		bo.Overwrite = 1
	}
	tok, done := watch(ctx)
	defer done()
	bo.CancelToken = tok
	eb := getErrbuf()
	defer putErrbuf(eb)
	err := statusError(sx.Sx_db_backup(db.h, dest, bo, eb), eb)
	runtime.KeepAlive(db)
	return withContext(err, ctx)
}
