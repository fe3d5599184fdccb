//go:build !js

package client

import (
	"net/http"
	"strings"
)

// httpClient is what Options.HTTPClient holds: net/http's client.
type httpClient = http.Client

// roundTrip sends req with the client's http.Client.
func (a *api) roundTrip(req *request) (*response, error) {
	hreq, err := http.NewRequestWithContext(req.ctx, req.method, req.url, req.body)
	if err != nil {
		return nil, &requestError{err}
	}
	if req.length > 0 {
		hreq.ContentLength = req.length
	}
	for k, v := range req.header {
		hreq.Header.Set(k, v)
	}
	resp, err := a.http.Do(hreq)
	if err != nil {
		return nil, err
	}
	h := make(header, len(resp.Header))
	for k, vs := range resp.Header {
		if len(vs) > 0 {
			h[strings.ToLower(k)] = vs[0]
		}
	}
	return &response{
		status:     resp.StatusCode,
		statusText: http.StatusText(resp.StatusCode),
		header:     h,
		body:       resp.Body,
		length:     resp.ContentLength,
	}, nil
}
