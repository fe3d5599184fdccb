package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"sandi.dev/internal/store"
)

// Problem is an RFC 9457 problem document. Code is the stable,
// machine-readable reason clients branch on; Detail is safe to show. What is
// logged (the wrapped cause) is kept apart and never sent.
type Problem struct {
	Status int    `json:"status"`
	Code   string `json:"code"`
	Title  string `json:"title"`
	Detail string `json:"detail,omitempty"`
	// Extensions, present for some codes.
	Missing      []string `json:"missing,omitempty"`
	Extra        []string `json:"extra,omitempty"`
	Users        []string `json:"users,omitempty"` // blocked: the users who refuse
	CurrentEpoch *uint64  `json:"currentEpoch,omitempty"`
	RetryAfter   int      `json:"retryAfter,omitempty"`

	cause error
}

func (p *Problem) Error() string {
	if p.cause != nil {
		return fmt.Sprintf("%s: %s: %v", p.Code, p.Detail, p.cause)
	}
	return p.Code + ": " + p.Detail
}

func (p *Problem) Unwrap() error { return p.cause }

// problem builds a Problem; cause (may be nil) is logged, never sent.
func problem(status int, code, detail string, cause error) *Problem {
	return &Problem{Status: status, Code: code, Title: http.StatusText(status), Detail: detail, cause: cause}
}

// Stable problem codes (docs/api.md lists them).
const (
	CodeBadRequest       = "bad_request"
	CodeBadSignature     = "bad_signature"
	CodeUnauthenticated  = "unauthenticated"
	CodeForbidden        = "forbidden"
	CodeNotFound         = "not_found"
	CodeNotMember        = "not_member"
	CodeUsernameTaken    = "username_taken"
	CodeBadCredentials   = "bad_credentials"
	CodeIdentityMismatch = "identity_mismatch"
	CodeSessionCoverage  = "session_coverage"
	CodeEpochTaken       = "epoch_taken"
	CodeRotationRequired = "rotation_required"
	CodeStaleChain       = "stale_chain"
	CodeIdempotency      = "idempotency_conflict"
	CodeConflict         = "conflict"
	CodeTooLarge         = "too_large"
	CodeTooManyUsers     = "too_many_users"   // a claim naming more users than one claim may
	CodeTooManyPreKeys   = "too_many_prekeys" // an upload past a device's one-time key cap
	CodeRateLimited      = "rate_limited"
	CodeInternal         = "internal"
	CodeUnavailable      = "unavailable"
	CodeStorageFull      = "storage_full" // the database's disk is full; nothing was written
)

func badRequest(detail string, cause error) *Problem {
	return problem(http.StatusBadRequest, CodeBadRequest, detail, cause)
}

// unavailable turns an error of the database that the client can do
// nothing about but wait into a 503: a full disk (storage_full), a lost
// connection, or a database that does not answer a ping (unavailable). Anything else is
// nil (an internal error).
func (s *Server) unavailable(r *http.Request, err error) *Problem {
	if errors.Is(err, store.ErrFull) {
		s.log.Error("database storage full: writes refused until space is freed", "method", r.Method, "path", r.URL.Path, "err", err)
		p := problem(http.StatusServiceUnavailable, CodeStorageFull, "the server's storage is full; try again later", err)
		// Longer than clients wait inside one call: a full disk is not
		// freed in seconds, so the caller hears of it at once.
		p.RetryAfter = 30
		return p
	}
	if s.store.ConnLost(err) {
		// The connection was lost (the database stopping, restarting
		// or ending it): the next call opens another.
		s.log.Error("database connection lost", "method", r.Method, "path", r.URL.Path, "err", err)
		p := problem(http.StatusServiceUnavailable, CodeUnavailable, "the database is unreachable; try again shortly", err)
		p.RetryAfter = 2
		return p
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), time.Second)
	defer cancel()
	if perr := s.store.Ping(ctx); perr != nil {
		s.log.Error("database unreachable", "method", r.Method, "path", r.URL.Path, "err", err, "ping", perr)
		p := problem(http.StatusServiceUnavailable, CodeUnavailable, "the database is unreachable; try again shortly", err)
		p.RetryAfter = 2
		return p
	}
	return nil
}

func (s *Server) writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		s.log.Debug("write response", "err", err)
	}
}

// writeError sends err as problem+json. Errors that are not a *Problem are
// internal: logged in full, answered with a generic 500.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var p *Problem
	if !errors.As(err, &p) {
		p = s.unavailable(r, err)
	}
	if p == nil {
		s.log.Error("internal error", "method", r.Method, "path", r.URL.Path, "err", err)
		p = problem(http.StatusInternalServerError, CodeInternal, "internal error", err)
	} else if p.cause != nil {
		s.log.LogAttrs(r.Context(), slog.LevelDebug, "request refused", slog.String("path", r.URL.Path), slog.String("code", p.Code), slog.Any("cause", p.cause))
	}
	if p.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(p.RetryAfter))
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	if err := json.NewEncoder(w).Encode(p); err != nil {
		s.log.Debug("write problem", "err", err)
	}
}
