//go:build js

package client

import (
	"context"
	"syscall/js"
	"time"
)

// Helpers for a program that runs the SDK in a web page (web/wasm), where
// Go code shares the page's one thread with everything the page draws.

// Await waits for the JavaScript Promise p from a goroutine (never from a
// js.Func callback) and returns what it resolves to, or an error with the
// message it rejects with. When ctx ends first it returns ctx.Err(), once
// p has settled.
func Await(ctx context.Context, p js.Value) (js.Value, error) {
	return awaitPromise(ctx, js.Null(), p)
}

// YieldToPage gives the page's event loop a turn (a task), so that it can
// draw and handle input, from a goroutine.
func YieldToPage(ctx context.Context) error {
	if s := js.Global().Get("scheduler"); s.Type() == js.TypeObject && s.Get("yield").Type() == js.TypeFunction {
		_, err := Await(ctx, s.Call("yield"))
		return err
	}
	done := make(chan struct{})
	f := js.FuncOf(func(js.Value, []js.Value) any { close(done); return nil })
	defer f.Release()
	js.Global().Call("setTimeout", f, 0)
	<-done
	return ctx.Err()
}

// Busy measures the work done since the page last had its event loop.
// The zero Busy is ready to use.
type Busy struct{ since time.Time }

// BusySlice is how long the SDK in a page computes before it lets the
// page draw.
const BusySlice = 10 * time.Millisecond

// Check yields to the page (YieldToPage) once BusySlice has passed since
// it last did.
func (b *Busy) Check(ctx context.Context) error {
	if b.since.IsZero() {
		b.since = time.Now()
		return nil
	}
	if time.Since(b.since) < BusySlice {
		return nil
	}
	err := YieldToPage(ctx)
	b.since = time.Now()
	return err
}
