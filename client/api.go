package client

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// APIError is a problem document the server answered with. Code is the
// stable reason (docs/api.md).
type APIError struct {
	Status       int      `json:"status"`
	Code         string   `json:"code"`
	Detail       string   `json:"detail"`
	Missing      []string `json:"missing"`
	Extra        []string `json:"extra"`
	CurrentEpoch *uint64  `json:"currentEpoch"`
	RetryAfter   int      `json:"retryAfter"`
}

func (e *APIError) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("server: %s (%s)", e.Detail, e.Code)
	}
	return fmt.Sprintf("server: %s (%d)", e.Code, e.Status)
}

// IsCode reports whether err is an APIError with that code.
func IsCode(err error, code string) bool {
	var a *APIError
	return errors.As(err, &a) && a.Code == code
}

// b64 is binary data as unpadded base64url in JSON.
type b64 []byte

func (b b64) MarshalJSON() ([]byte, error) {
	return json.Marshal(base64.RawURLEncoding.EncodeToString(b))
}

func (b *b64) UnmarshalJSON(p []byte) error {
	var s string
	if err := json.Unmarshal(p, &s); err != nil {
		return err
	}
	v, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// api is the HTTP transport. A request that fails for a transport reason
// (no answer, 5xx, 429) is retried with backoff up to maxTries when it is
// safe: every write of the API is idempotent or refused whole.
type api struct {
	base  string
	http  *httpClient
	token string
}

const maxTries = 5

// maxRetryAfter is the longest Retry-After, in seconds, that do waits for
// before trying again; a longer one ends the call with the error.
const maxRetryAfter = 10

func (a *api) do(ctx context.Context, method, path string, body, out any) error {
	var data []byte
	if body != nil {
		var err error
		if data, err = json.Marshal(body); err != nil {
			return err
		}
	}
	return a.retry(ctx, func() (bool, error) { return a.once(ctx, method, path, data, out) })
}

// retry calls try until it succeeds, fails for a reason other than
// transport (try says which), or has been called maxTries times.
func (a *api) retry(ctx context.Context, try func() (retry bool, err error)) error {
	delay := 100 * time.Millisecond
	var lastErr error
	for n := 0; n < maxTries; n++ {
		if n > 0 {
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return ctx.Err()
			}
			delay *= 2
		}
		retry, err := try()
		if err == nil || !retry {
			return err
		}
		lastErr = err
		var ae *APIError
		if errors.As(err, &ae) && ae.RetryAfter > 0 {
			// A server that asks for a long wait gets none: the caller
			// sees the error at once and tries again when it chooses.
			if ae.RetryAfter > maxRetryAfter {
				return err
			}
			delay = time.Duration(ae.RetryAfter) * time.Second
		}
	}
	return lastErr
}

func (a *api) once(ctx context.Context, method, path string, data []byte, out any) (retry bool, err error) {
	var rd io.Reader
	if data != nil {
		rd = bytes.NewReader(data)
	}
	req := newRequest(ctx, method, a.base+path, rd)
	if data != nil {
		req.header.set("Content-Type", "application/json")
	}
	if a.token != "" {
		req.header.set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.roundTrip(req)
	if err != nil {
		return a.sendError(ctx, err)
	}
	defer resp.body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.body, 64<<20))
	if err != nil {
		return true, err
	}
	if resp.status >= 300 {
		return problem(resp, body)
	}
	if out != nil && len(body) > 0 {
		if err := json.Unmarshal(body, out); err != nil {
			return false, fmt.Errorf("server answer to %s %s: %w", method, path, err)
		}
	}
	return false, nil
}

// problem returns the APIError of an answer with a status of 300 or more,
// whose body is body, and whether the request may be tried again.
func problem(resp *response, body []byte) (retry bool, err *APIError) {
	ae := &APIError{Status: resp.status}
	if strings.HasPrefix(resp.header.get("Content-Type"), "application/problem+json") {
		json.Unmarshal(body, ae) // a malformed problem keeps the status
	}
	if ae.Code == "" {
		ae.Code = resp.statusText
	}
	return resp.status >= 500 || resp.status == statusTooManyRequests, ae
}
