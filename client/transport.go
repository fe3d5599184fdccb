package client

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
)

// The client speaks HTTP through two small types of its own, so the
// WebAssembly build does not link net/http: natively a request goes
// through the Options.HTTPClient (fetch_native.go), in a browser through
// fetch (fetch_js.go).

// HTTP statuses the client tells apart.
const (
	statusOK                  = 200
	statusNotFound            = 404
	statusRangeNotSatisfiable = 416
	statusTooManyRequests     = 429
)

// header holds HTTP header fields by lower-case name, one value each (the
// client sends and reads only single-valued fields).
type header map[string]string

func (h header) get(name string) string { return h[strings.ToLower(name)] }

func (h header) set(name, value string) { h[strings.ToLower(name)] = value }

// request is one HTTP request; ctx bounds it.
type request struct {
	ctx    context.Context
	method string
	url    string
	header header
	body   io.Reader // nil for none
	length int64     // of body when known, else 0
}

func newRequest(ctx context.Context, method, url string, body io.Reader) *request {
	r := &request{ctx: ctx, method: method, url: url, header: header{}, body: body}
	if b, ok := body.(*bytes.Reader); ok {
		r.length = int64(b.Len())
	}
	return r
}

// response is an answer; the caller reads and closes body.
type response struct {
	status     int
	statusText string // the reason phrase, as statusText gives it
	header     header
	body       io.ReadCloser
	length     int64 // Content-Length, -1 when unknown
}

// requestError is a request that could not be made (a malformed URL):
// trying it again would not help.
type requestError struct{ err error }

func (e *requestError) Error() string { return e.err.Error() }

func (e *requestError) Unwrap() error { return e.err }

// sendError is the error of a request that got no answer, and whether to
// try it again (while ctx lasts): a request that could not be made gives
// its reason, any other failure says the server was not reached.
func (a *api) sendError(ctx context.Context, err error) (retry bool, _ error) {
	if re, ok := err.(*requestError); ok {
		return false, re.err
	}
	return ctx.Err() == nil, fmt.Errorf("cannot reach the server at %s: %w", a.base, err)
}

// eventConn is the event stream's WebSocket: read returns the next whole
// message, close ends the connection at once.
type eventConn interface {
	read(ctx context.Context) ([]byte, error)
	close()
}

// eventReadLimit bounds one message of the event stream.
const eventReadLimit = 64 << 20

// queryEscape escapes s for a URL's query as net/url's QueryEscape does
// (unreserved bytes kept, space as '+', every other byte as %XX), without
// linking net/url, whose initialisers a page does not need.
func queryEscape(s string) string {
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == '~':
			b = append(b, c)
		case c == ' ':
			b = append(b, '+')
		default:
			b = append(b, '%', hex[c>>4], hex[c&15])
		}
	}
	return string(b)
}
