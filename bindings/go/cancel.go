package sextant

import (
	"context"
	"runtime"
	"sync"

	"github.com/sextant/sextant/bindings/go/internal/sx"
)

// A cancel token of the core (sx_cancel): a flag that searches, waits for the writer
// lock and checkpoints poll. A context is tied to a call by setting the token when
// ctx.Done() closes (context.AfterFunc), so no Go code runs while the core polls.
type token struct {
	p uintptr
}

var tokens sync.Pool

func newToken() *token {
	if t, ok := tokens.Get().(*token); ok {
		return t
	}
	var p uintptr
	if st := sx.Sx_cancel_new(&p, nil); int(st) != 0 || p == 0 {
		return nil
	}
	t := &token{p: p}
	runtime.AddCleanup(t, func(p uintptr) { sx.DeleteSx_cancel(sx.SwigcptrSx_cancel(p)) }, p)
	return t
}

// watch ties ctx to a token for one call. It returns the token's C pointer (0 when
// ctx can never be cancelled) and a function to call once the C call has returned.
func watch(ctx context.Context) (uintptr, func()) {
	if ctx == nil || ctx.Done() == nil {
		return 0, func() {}
	}
	t := newToken()
	if t == nil {
		return 0, func() {}
	}
	stop := context.AfterFunc(ctx, func() {
		sx.Sx_cancel_set(sx.SwigcptrSx_cancel(t.p))
	})
	return t.p, func() {
		if stop() {
			// The token was never set: reuse it.
			tokens.Put(t)
		}
		// Otherwise the AfterFunc ran (or runs): the token stays set; it is freed by
		// its cleanup once that function, which holds it, is done.
		runtime.KeepAlive(t)
	}
}
