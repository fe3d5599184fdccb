package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus metrics, on a registry of its own so
// several servers can live in one process (tests).
type metrics struct {
	reg          *prometheus.Registry
	requests     *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	websockets   prometheus.Gauge
	messages     prometheus.Counter
	sendsRefused *prometheus.CounterVec
	lowPreKeys   prometheus.Counter
	// Attachment blobs.
	blobBytes      prometheus.Counter
	uploadYields   prometheus.Counter
	uploadPaced    prometheus.Counter
	blobsRefused   *prometheus.CounterVec
	blobsCollected *prometheus.CounterVec
	msgsExpired    prometheus.Counter
	wsReads        *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sandi_http_requests_total", Help: "HTTP requests by route and status.",
		}, []string{"route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sandi_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"route"}),
		websockets: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sandi_websockets_open", Help: "Open WebSocket connections.",
		}),
		messages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sandi_messages_stored_total", Help: "Messages stored.",
		}),
		sendsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sandi_sends_refused_total", Help: "Sends refused, by problem code.",
		}, []string{"reason"}),
		lowPreKeys: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sandi_prekeys_low_total", Help: "Claims that left a device below its one-time pre-key threshold.",
		}),
		blobBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sandi_blob_bytes_received_total", Help: "Attachment ciphertext bytes received in upload parts.",
		}),
		uploadYields: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sandi_upload_yields_total", Help: "Reads of an upload part's body that waited for message sends in their handler (at most 5 ms each).",
		}),
		uploadPaced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sandi_upload_paced_seconds_total", Help: "Seconds that reads of upload parts' bodies waited, together, for the uploads' pace beside message sends (--upload-pace).",
		}),
		blobsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sandi_blob_uploads_refused_total", Help: "Attachment uploads and parts refused, by problem code (blob_too_large, quota_exceeded, too_many_uploads, bad_part, storage_full).",
		}, []string{"reason"}),
		blobsCollected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sandi_blobs_collected_total", Help: "Attachment blobs deleted, by reason (expired, deleted, orphan).",
		}, []string{"reason"}),
		msgsExpired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sandi_messages_expired_total", Help: "Messages deleted because their disappearing-message timer ran out.",
		}),
		wsReads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sandi_websocket_reads_total", Help: "Wake-ups of WebSocket connections, by what they did: read events (events), read none (empty), or read nothing because the connection had delivered every commit they named (delivered).",
		}, []string{"result"}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.websockets, m.messages, m.sendsRefused, m.lowPreKeys, m.blobBytes, m.uploadYields, m.uploadPaced, m.blobsRefused, m.blobsCollected, m.msgsExpired, m.wsReads,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the underlying writer
// (the WebSocket upgrade needs its Hijacker).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) instrument(rt Route, h http.Handler) http.Handler {
	name := rt.Method + " " + rt.Pattern
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		s.metrics.requests.WithLabelValues(name, strconv.Itoa(sw.status)).Inc()
		s.metrics.latency.WithLabelValues(name).Observe(time.Since(start).Seconds())
	})
}
