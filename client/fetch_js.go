//go:build js

package client

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"syscall/js"
)

// roundTrip sends req with the browser's fetch. net/http's Transport uses
// fetch in a browser too, but linking it brings its native HTTP/1, HTTP/2
// and TLS code along, which a page never runs: about 5 MB of the
// WebAssembly module (1.3 MB compressed). The client's timeout
// (Options.HTTPClient.Timeout) still applies; its Transport does not.
//
// It blocks until fetch answers: call it from a goroutine, never from a
// js.Func callback.
func (a *api) roundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if a.http != nil && a.http.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.http.Timeout)
		defer cancel()
	}
	opts := js.Global().Get("Object").New()
	opts.Set("method", req.Method)
	opts.Set("credentials", "omit") // bearer tokens only, never cookies
	opts.Set("cache", "no-store")
	headers := js.Global().Get("Headers").New()
	for k, vs := range req.Header {
		for _, v := range vs {
			headers.Call("append", k, v)
		}
	}
	opts.Set("headers", headers)
	if req.Body != nil {
		// As a Blob: Chromium sends a Uint8Array body with the page's
		// thread blocked until the request completes (seconds for a part
		// of an attachment); a Blob's it sends off the thread. The Blob is
		// built of pieces of at most 1 MiB, so the module never holds a
		// whole part of an attachment a second time.
		parts := js.Global().Get("Array").New()
		buf := make([]byte, min(max(req.ContentLength, 512), 1<<20))
		for {
			n, err := req.Body.Read(buf)
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

	resp, err := awaitPromise(ctx, abort, js.Global().Call("fetch", req.URL.String(), opts))
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	each := js.FuncOf(func(_ js.Value, args []js.Value) any {
		h.Add(args[1].String(), args[0].String())
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
	code := resp.Get("status").Int()
	return &http.Response{
		Status:        strconv.Itoa(code) + " " + resp.Get("statusText").String(),
		StatusCode:    code,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}, nil
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
