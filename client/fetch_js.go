//go:build js

package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall/js"
	"time"
)

// httpClient is what Options.HTTPClient holds in a browser: only a
// timeout, as requests go through fetch.
type httpClient struct {
	// Timeout bounds a request with its answer (0: no bound).
	Timeout time.Duration
}

// roundTrip sends req with the browser's fetch. net/http uses fetch in a
// browser too, but linking it brings its native HTTP/1, HTTP/2 and TLS
// code along (through its package initialisers), which a page never runs:
// net/http's Transport made the module 11.3 MiB instead of 8.1, and its
// types alone, with what their packages initialise, about 0.9 MiB more.
// The client's timeout (Options.HTTPClient.Timeout) applies.
//
// It blocks until fetch answers: call it from a goroutine, never from a
// js.Func callback.
func (a *api) roundTrip(req *request) (*response, error) {
	ctx := req.ctx
	if err := checkURL(req.url); err != nil {
		return nil, &requestError{err}
	}
	if a.http != nil && a.http.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.http.Timeout)
		defer cancel()
	}
	opts := js.Global().Get("Object").New()
	opts.Set("method", req.method)
	opts.Set("credentials", "omit") // bearer tokens only, never cookies
	opts.Set("cache", "no-store")
	headers := js.Global().Get("Headers").New()
	for k, v := range req.header {
		headers.Call("set", k, v)
	}
	opts.Set("headers", headers)
	if req.body != nil {
		// As a Blob: Chromium sends a Uint8Array body with the page's
		// thread blocked until the request completes (seconds for a part
		// of an attachment); a Blob's it sends off the thread. The Blob is
		// built of pieces of at most 1 MiB, so the module never holds a
		// whole part of an attachment a second time.
		parts := js.Global().Get("Array").New()
		buf := make([]byte, min(max(req.length, 512), 1<<20))
		for {
			n, err := req.body.Read(buf)
			if n > 0 {
				parts.Call("push", jsBytes(buf[:n]))
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, err
			}
		}
		opts.Set("body", js.Global().Get("Blob").New(parts))
	}
	abort := js.Global().Get("AbortController").New()
	opts.Set("signal", abort.Get("signal"))

	resp, err := awaitPromise(ctx, abort, js.Global().Call("fetch", req.url, opts))
	if err != nil {
		return nil, err
	}
	h := header{}
	each := js.FuncOf(func(_ js.Value, args []js.Value) any {
		h[strings.ToLower(args[1].String())] = args[0].String()
		return nil
	})
	resp.Get("headers").Call("forEach", each) // calls each synchronously
	each.Release()
	buf, err := awaitPromise(ctx, abort, resp.Call("arrayBuffer"))
	if err != nil {
		return nil, err
	}
	body := make([]byte, buf.Get("byteLength").Int())
	js.CopyBytesToGo(body, js.Global().Get("Uint8Array").New(buf))
	return &response{
		status:     resp.Get("status").Int(),
		statusText: resp.Get("statusText").String(),
		header:     h,
		body:       io.NopCloser(bytes.NewReader(body)),
		length:     int64(len(body)),
	}, nil
}

// checkURL reports a URL that fetch would refuse as malformed (the URL
// constructor throws on it), so the request is not tried again.
func checkURL(u string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed URL %q: %v", u, r)
		}
	}()
	js.Global().Get("URL").New(u)
	return nil
}

// awaitPromise waits for p. When ctx ends first it aborts the request (if
// abort is an AbortController) and still waits for p to settle, so its
// callbacks are released only after JavaScript is done with them.
func awaitPromise(ctx context.Context, abort, p js.Value) (js.Value, error) {
	type result struct {
		v   js.Value
		err error
	}
	ch := make(chan result, 1)
	ok := js.FuncOf(func(_ js.Value, args []js.Value) any {
		ch <- result{v: args[0]}
		return nil
	})
	bad := js.FuncOf(func(_ js.Value, args []js.Value) any {
		msg := "fetch failed"
		if len(args) > 0 && args[0].Type() == js.TypeObject {
			msg = args[0].Get("message").String()
		}
		ch <- result{err: errors.New(msg)}
		return nil
	})
	defer ok.Release()
	defer bad.Release()
	p.Call("then", ok, bad)
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		if abort.Truthy() {
			abort.Call("abort")
		}
		<-ch
		return js.Value{}, ctx.Err()
	}
}
