package load

import (
	"context"
	"io"
	"os"
	"testing"
	"time"
)

// TestIdleSmall runs the idle-connection measurement with a few sockets
// on an in-process server, so that it cannot rot: every socket opens, and
// the server's memory and runtime figures are read (here the server's
// goroutines and the tool's are in one process: at least one a socket).
func TestIdleSmall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := Config{Log: io.Discard}
	cfg.defaults()
	p, err := startServer(ctx, &cfg, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	rep, err := Idle(ctx, IdleConfig{Server: p.url, PID: os.Getpid(), Conns: 40, Accounts: 10, Settle: 100 * time.Millisecond, Metrics: p.url + "/metrics"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Conns != 40 || rep.RSSBeforeKiB <= 0 || rep.RSSAfterKiB <= 0 {
		t.Fatalf("report %+v", rep)
	}
	if b, a := rep.RuntimeBefore, rep.RuntimeAfter; b == nil || a == nil || a.Goroutines < b.Goroutines+40 || a.StackKiB <= 0 || a.HeapInuseKiB <= 0 {
		t.Fatalf("runtime figures %+v → %+v", b, a)
	}
	t.Logf("%+v, runtime %+v → %+v", rep, *rep.RuntimeBefore, *rep.RuntimeAfter)
}
