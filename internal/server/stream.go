package server

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// streamHeader is a store whose event stream is read up to a settled head
// (sqlstore on PostgreSQL, docs/scaling.md): events whose ids are drawn
// become readable once every transaction that may hold a smaller id has
// ended.
type streamHeader interface {
	// StreamHead reports the settled head, the newest id drawn, and how
	// long the oldest observation not yet settled has waited; ok is
	// false when the store has no such head (SQLite).
	StreamHead() (settled, drawn int64, waiting time.Duration, ok bool)
	// OnHeadLate sets a function called when the head moves after a
	// reader gave up waiting for it.
	OnHeadLate(func())
	// StreamHeadLate counts the reads that gave up waiting for the head.
	StreamHeadLate() (n uint64, ok bool)
	// StreamHeadRounds counts the observations of the head taken, and
	// the checks that only settled them.
	StreamHeadRounds() (observations, checks uint64)
	// SyncSettled is Sync up to the head settled already, without
	// waiting for it: the read after a full page.
	SyncSettled(ctx context.Context, user protocol.UserID, device protocol.DeviceID, since int64, limit int) ([]store.Event, error)
	// SyncWoken is Sync for a reader woken for a commit whose newest
	// event id is at: it waits for the head to settle up to at only.
	SyncWoken(ctx context.Context, user protocol.UserID, device protocol.DeviceID, since int64, limit int, at int64) ([]store.Event, error)
}

// watchStream exports the head's metrics and wakes every local socket
// when the head moves after a reader gave up waiting (the events it could
// not return then are readable now, and no commit may announce them
// again).
func (s *Server) watchStream() {
	sh, ok := s.store.(streamHeader)
	if !ok {
		return
	}
	if _, _, _, ok := sh.StreamHead(); !ok {
		return
	}
	s.stream = sh
	sh.OnHeadLate(func() { s.hub.kickAll(evWake) })
	s.metrics.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sandi_stream_head_behind",
			Help: "Event ids drawn by writers that readers may not read yet (the newest drawn minus the settled head).",
		}, func() float64 {
			settled, drawn, _, _ := sh.StreamHead()
			return float64(max(drawn-settled, 0))
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sandi_stream_head_wait_seconds",
			Help: "How long the oldest observation of the event stream has waited for the transactions before it to end (0 when none waits).",
		}, func() float64 {
			_, _, waiting, _ := sh.StreamHead()
			return waiting.Seconds()
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "sandi_stream_head_observations_total",
			Help: "Observations of the event stream's head taken (each two short transactions on PostgreSQL, one of them assigned a transaction id).",
		}, func() float64 {
			n, _ := sh.StreamHeadRounds()
			return float64(n)
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "sandi_stream_head_checks_total",
			Help: "Checks of the event stream's observations pending, without a new observation (one read-only statement each).",
		}, func() float64 {
			_, n := sh.StreamHeadRounds()
			return float64(n)
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "sandi_stream_head_late_total",
			Help: "Reads of the event stream that gave up waiting for the head to settle and answered without the newest events (delivered when the head moves).",
		}, func() float64 {
			n, _ := sh.StreamHeadLate()
			return float64(n)
		}),
	)
}

// streamStuck is /readyz's problem when an observation of the stream has
// waited longer than Config.StreamStuckAfter: a transaction (of sandi or
// of another program on the database) holds every new event back.
func (s *Server) streamStuck() *Problem {
	if s.stream == nil {
		return nil
	}
	_, _, waiting, _ := s.stream.StreamHead()
	if waiting <= s.cfg.StreamStuckAfter {
		return nil
	}
	return problem(http.StatusServiceUnavailable, CodeUnavailable,
		fmt.Sprintf("the event stream's head has waited %v for an open database transaction; new events are held back", waiting.Round(time.Millisecond)), nil)
}
