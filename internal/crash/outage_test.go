package crash

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"sandi.dev/internal/testpg"
)

// outage is how long PostgreSQL stays down: 10 s, or SANDI_OUTAGE (a Go
// duration).
func outage(t *testing.T) time.Duration {
	if v := os.Getenv("SANDI_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("SANDI_OUTAGE=%q: want a positive duration", v)
		}
		return d
	}
	return 10 * time.Second
}

// TestPostgresOutage stops PostgreSQL under a steady load of sends from
// three clients, keeps it down for 10 s, and starts it again. Meanwhile
// the server keeps running, /readyz answers 503, and the clients get 503
// (never 500); once PostgreSQL is back the server recovers on its own and
// sends are acknowledged again. At the end every acknowledged send is
// stored exactly once and every device syncs seqs 1…N.
func TestPostgresOutage(t *testing.T) {
	bin := buildSandi(t)
	pg := testpg.NewCluster(t)
	r := newRig(t, bin, pg.URL(), filepath.Join(t.TempDir(), "data"))
	down := outage(t)
	r.load(down + 30*time.Second)
	r.waitAcks(20, 10*time.Second, "before the outage")

	pg.Stop()
	stopped := time.Now()
	before := r.acks()
	sawNotReady := false
	for time.Since(stopped) < down {
		switch st := r.ready(); st {
		case http.StatusServiceUnavailable:
			sawNotReady = true
		case http.StatusOK:
			t.Errorf("/readyz answered 200 %v after PostgreSQL stopped", time.Since(stopped).Round(time.Millisecond))
		default:
			t.Fatalf("/readyz answered %d %v after PostgreSQL stopped: the server is down", st, time.Since(stopped).Round(time.Millisecond))
		}
		time.Sleep(200 * time.Millisecond)
	}
	during := r.acks() - before
	if !sawNotReady {
		t.Error("/readyz never answered 503 while PostgreSQL was down")
	}
	if !r.healthy() {
		t.Fatal("the server stopped answering /healthz during the outage")
	}
	if r.codes.get(http.StatusServiceUnavailable) == 0 {
		t.Errorf("no request got 503 while PostgreSQL was down (failures: %v)", r.failures())
	}

	pg.Start()
	back := time.Now()
	n := r.acks()
	r.waitAcks(n+10, 30*time.Second, "after PostgreSQL came back")
	for r.ready() != http.StatusOK {
		if time.Since(back) > 10*time.Second {
			t.Fatal("/readyz still not 200 10 s after PostgreSQL came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("outage %v: %d sends acknowledged during it; sends acknowledged again %v after PostgreSQL was back; answers 503: %d, 500: %d; send failures: %v",
		down, during, time.Since(back).Round(time.Millisecond), r.codes.get(503), r.codes.get(500), r.failures())
	if c := r.codes.get(http.StatusInternalServerError); c > 0 {
		t.Errorf("%d requests got 500 during the outage; want 503; the server logged:\n%s", c, r.srv.logLines("internal error"))
	}
	r.finish()
	r.srv.kill() // fails if the process ended on its own
}
