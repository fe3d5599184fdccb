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
// the server's memory grows by something.
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
	rep, err := Idle(ctx, IdleConfig{Server: p.url, PID: os.Getpid(), Conns: 40, Accounts: 10, Settle: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Conns != 40 || rep.RSSBeforeKiB <= 0 || rep.RSSAfterKiB <= 0 {
		t.Fatalf("report %+v", rep)
	}
	t.Logf("%+v", rep)
}
