//go:build !js

package client_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sandi.dev/client"
	"sandi.dev/internal/server"
)

// serverTime sums the time spent waiting for answers to requests whose
// path contains one of the prefixes: the server's side of an operation.
type serverTime struct {
	base     http.RoundTripper
	prefixes []string
	nanos    atomic.Int64
}

func (s *serverTime) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := s.base.RoundTrip(r)
	for _, p := range s.prefixes {
		if strings.HasPrefix(r.URL.Path, p) {
			s.nanos.Add(int64(time.Since(start)))
		}
	}
	return resp, err
}

func benchClient(b *testing.B, n *node, name string, rt http.RoundTripper) *client.Client {
	b.Helper()
	hc := &http.Client{Timeout: time.Minute}
	if rt != nil {
		hc.Transport = rt
	}
	// A state directory on disk, as the CLI keeps it (every write synced).
	st, err := client.NewDirStorage(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	c, err := client.Open(client.Options{Server: n.url(), Storage: st, OneTimeBatch: 2, HTTPClient: hc})
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Register(context.Background(), name, "password "+name); err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkCreateConversation: creating a conversation with its first epoch
// for 2, 10, 100 and 500 devices (one device per member), split into the
// server's part (claiming bundles and storing the conversation, measured
// at the HTTP client) and the client's (verifying bundles, sealing).
func BenchmarkCreateConversation(b *testing.B) {
	for _, devices := range []int{2, 10, 100, 500} {
		b.Run(fmt.Sprintf("devices=%d", devices), func(b *testing.B) {
			n := startNode(b, b.TempDir()+"/sandi.db", server.Config{})
			st := &serverTime{base: http.DefaultTransport, prefixes: []string{"/api/keys/claim", "/api/conversations"}}
			creator := benchClient(b, n, "creator", st)
			var names []string
			var mu sync.Mutex
			var wg sync.WaitGroup
			sem := make(chan struct{}, 8)
			for i := range devices - 1 {
				wg.Go(func() {
					sem <- struct{}{}
					defer func() { <-sem }()
					name := fmt.Sprintf("member%d", i)
					benchClient(b, n, name, nil)
					mu.Lock()
					names = append(names, name)
					mu.Unlock()
				})
			}
			wg.Wait()
			ctx := context.Background()
			st.nanos.Store(0)
			b.ResetTimer()
			for b.Loop() {
				if _, err := creator.CreateConversation(ctx, "", names...); err != nil {
					b.Fatal(err)
				}
			}
			server := float64(st.nanos.Load()) / float64(b.N)
			b.ReportMetric(server/1e6, "server-ms/op")
			b.ReportMetric((float64(b.Elapsed().Nanoseconds())/float64(b.N)-server)/1e6, "client-ms/op")
		})
	}
}

// BenchmarkCatchUp: a device that was offline while 10,000 messages were
// sent syncs and decrypts them all.
func BenchmarkCatchUp(b *testing.B) {
	const messages = 10_000
	n := startNode(b, b.TempDir()+"/sandi.db", server.Config{RotateAfterMessages: 1000})
	ctx := context.Background()
	sender := benchClient(b, n, "sender", nil)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		reader := benchClient(b, n, fmt.Sprintf("reader%d", i), nil)
		conv, err := sender.CreateConversation(ctx, "", reader.Username())
		if err != nil {
			b.Fatal(err)
		}
		for j := range messages {
			if _, err := sender.Send(ctx, conv, fmt.Sprintf("message %d", j)); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		res, err := reader.Sync(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Messages) != messages || len(res.Failures) != 0 {
			b.Fatalf("caught up %d messages, %d failures", len(res.Messages), len(res.Failures))
		}
	}
	b.ReportMetric(float64(messages*b.N)/b.Elapsed().Seconds(), "msgs/s")
}
