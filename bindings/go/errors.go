package sextant

import (
	"context"
	"errors"
	"sync"
	"time"
	"unsafe"

	"github.com/sextant/sextant/bindings/go/internal/sx"
)

// Error is a failure reported by Sextant. Code is the stable status name shared by
// every binding and the conformance suite ("NOT_FOUND", "BUSY", ...); Message is the
// one-line detail from the core (or from this package, for checks it makes itself).
//
// Match errors with errors.Is against the sentinels (ErrNotFound, ErrBusy, ...), or
// with errors.As to read the Code. An error caused by a context (a cancelled search, a
// write lock wait that reached its deadline) also matches ctx.Err() under errors.Is.
type Error struct {
	Code    string
	Message string
	cause   error
}

// Error returns "sextant: CODE: message".
func (e *Error) Error() string {
	if e.Message == "" {
		return "sextant: " + e.Code
	}
	return "sextant: " + e.Code + ": " + e.Message
}

// Is reports whether target is the sentinel of e's code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.cause == nil && t.Code == e.Code
}

// Unwrap returns the context error that caused e, if any.
func (e *Error) Unwrap() error { return e.cause }

// Sentinels, one per status. Compare with errors.Is(err, sextant.ErrNotFound).
var (
	ErrNotFound          = &Error{Code: "NOT_FOUND"}          // no such id, collection or database
	ErrExists            = &Error{Code: "EXISTS"}             // the collection already exists
	ErrInvalidArgument   = &Error{Code: "INVALID_ARGUMENT"}   // a bad value: id, name, NaN, k, option...
	ErrDimensionMismatch = &Error{Code: "DIMENSION_MISMATCH"} // a vector's length differs from the collection's
	ErrReadOnly          = &Error{Code: "READ_ONLY"}          // a write on a database opened read-only
	ErrBusy              = &Error{Code: "BUSY"}               // the write lock not taken in time, the WAL at its cap, an open backup dest
	ErrClosed            = &Error{Code: "CLOSED"}             // the database was closed or the session ended
	ErrMisuse            = &Error{Code: "MISUSE"}             // not allowed in this state
	ErrCorrupt           = &Error{Code: "CORRUPT"}            // a file failed validation
	ErrIO                = &Error{Code: "IO"}                 // the operating system reported an I/O error
	ErrFull              = &Error{Code: "FULL"}               // no space left on the device
	ErrNoMem             = &Error{Code: "NOMEM"}              // out of memory
	ErrVersion           = &Error{Code: "VERSION"}            // file format version not supported
	ErrCancelled         = &Error{Code: "CANCELLED"}          // a context (cancel token) stopped the call
)

var sentinels = []*Error{nil, ErrNotFound, ErrExists, ErrInvalidArgument, ErrDimensionMismatch,
	ErrReadOnly, ErrBusy, ErrClosed, ErrMisuse, ErrCorrupt, ErrIO, ErrFull, ErrNoMem, ErrVersion,
	ErrCancelled}

// codeName is the status name of a C status.
func codeName(status int) string {
	if status > 0 && status < len(sentinels) {
		return sentinels[status].Code
	}
	return sx.Sx_status_name(status)
}

// defaultMessage for statuses returned by calls without an sx_error.
func defaultMessage(status int) string {
	switch status {
	case int(sx.SX_CLOSED):
		return "the handle was closed or its session already ended"
	case int(sx.SX_MISUSE):
		return "the call is not allowed on this handle"
	}
	return ""
}

func newError(code, msg string) *Error { return &Error{Code: code, Message: msg} }

func errInvalid(msg string) error   { return newError("INVALID_ARGUMENT", msg) }
func errClosed(msg string) error    { return newError("CLOSED", msg) }
func errDimension(msg string) error { return newError("DIMENSION_MISMATCH", msg) }

// Error buffers (the C sx_error) are pooled: one per call in flight. A search also
// takes its output pointer and result shape from the same pooled buffer, so that
// nothing escapes to the heap per call for them.
type callBuf struct {
	sx.Errbuf
	out   uintptr
	shape [6]uint64 // a result's shape, then (one query) its two hit offsets
	dist  [256]float32
	idoff [257]uint64
}

var errbufs = sync.Pool{New: func() any { return new(callBuf) }}

func getCallBuf() *callBuf   { return errbufs.Get().(*callBuf) }
func putCallBuf(c *callBuf)  { errbufs.Put(c) }
func getErrbuf() *sx.Errbuf  { return &getCallBuf().Errbuf }
func putErrbuf(e *sx.Errbuf) { errbufs.Put((*callBuf)(unsafe.Pointer(e))) }

// statusError turns a C status and its error buffer (may be nil) into an error.
func statusError(status sx.Sx_status, eb *sx.Errbuf) error {
	st := int(status)
	if st == 0 {
		return nil
	}
	msg := ""
	if eb != nil {
		msg = eb.Text()
	}
	if msg == "" {
		msg = defaultMessage(st)
	}
	return newError(codeName(st), msg)
}

// withContext attaches ctx's error to a failure that the context caused: a
// cancellation (CANCELLED) or a wait that reached the deadline (BUSY).
func withContext(err error, ctx context.Context) error {
	var e *Error
	if err == nil || ctx == nil || !errors.As(err, &e) {
		return err
	}
	cerr := ctx.Err()
	if cerr == nil && e.Code == "BUSY" {
		// The core's wait was bounded by the deadline (rounded up to a millisecond):
		// it may give up a moment before the context notices.
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < 5*time.Millisecond {
			cerr = context.DeadlineExceeded
		}
	}
	if cerr == nil {
		return err
	}
	switch e.Code {
	case "CANCELLED":
		if errors.Is(cerr, context.DeadlineExceeded) && e.Message == "" {
			e.Message = "the context's deadline passed"
		}
		e.cause = cerr
	case "BUSY":
		e.cause = cerr
	}
	return err
}
