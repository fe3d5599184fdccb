package crash

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"sandi.dev/client"
	"sandi.dev/protocol"
)

// statuses counts the HTTP answers the SDK clients got, by status code.
type statuses struct {
	mu sync.Mutex
	n  map[int]int
}

func (s *statuses) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil {
		s.mu.Lock()
		s.n[resp.StatusCode]++
		s.mu.Unlock()
	}
	return resp, err
}

func (s *statuses) get(code int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n[code]
}

// rig is a running `sandi serve`, three senders and a reader in one
// conversation, and a steady load of sends that retries each message with
// its client id until the server acknowledges it.
type rig struct {
	t       *testing.T
	srv     *server
	db      string // what checkStored opens
	ctx     context.Context
	senders []*client.Client
	reader  *client.Client
	conv    protocol.ConversationID
	ack     *acked
	codes   *statuses
	stop    chan struct{}
	wg      sync.WaitGroup

	mu       sync.Mutex
	problems map[string]int // problem codes of failed sends
	sends    int            // send calls, failed or not
}

func newRig(t *testing.T, bin, dbURL, data string) *rig {
	dir := t.TempDir()
	r := &rig{t: t, ack: &acked{seqs: map[string]uint64{}}, codes: &statuses{n: map[int]int{}}, stop: make(chan struct{}), problems: map[string]int{}}
	r.db = dbURL
	if dbURL == "" {
		r.db = filepath.Join(data, "sandi.db")
	}
	r.srv = launch(t, dir, &server{bin: bin, data: data, db: dbURL})
	addr := r.srv.addr
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r.ctx = ctx
	open := func(name string) *client.Client {
		st, err := client.NewDirStorage(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.Open(client.Options{Server: "http://" + addr, Storage: st, HTTPClient: &http.Client{Timeout: 10 * time.Second, Transport: r.codes}})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Register(ctx, name, "password of "+name); err != nil {
			t.Fatalf("register %s: %v", name, err)
		}
		return c
	}
	r.senders = []*client.Client{open("alice"), open("bob"), open("carol")}
	r.reader = open("dave")
	var err error
	if r.conv, err = r.senders[0].CreateConversation(ctx, "faults", "bob", "carol", "dave"); err != nil {
		t.Fatal(err)
	}
	for _, c := range append(r.senders[1:], r.reader) {
		if _, err := c.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// load starts the senders. A send that fails is tried again with the same
// client id until it is acknowledged; giveUp bounds how long.
func (r *rig) load(giveUp time.Duration) {
	for i, c := range r.senders {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			for n := 0; ; n++ {
				id := fmt.Sprintf("m-%d-%06d", i, n)
				start := time.Now()
				for {
					select {
					case <-r.stop:
						// An unacknowledged send may be stored or not;
						// finish it so that the final count is exact.
						if time.Since(start) > giveUp {
							return
						}
					default:
					}
					m, err := c.SendWithID(r.ctx, r.conv, id, fmt.Sprintf("%s %d", c.Username(), n))
					r.mu.Lock()
					r.sends++
					if err != nil {
						code := "transport"
						var ae *client.APIError
						if errors.As(err, &ae) {
							code = strconv.Itoa(ae.Status) + " " + ae.Code
						}
						r.problems[code]++
					}
					r.mu.Unlock()
					if err == nil {
						r.ack.add(id, m.Seq)
						break
					}
					if r.ctx.Err() != nil {
						return
					}
					if time.Since(start) > giveUp {
						r.t.Errorf("%s: send %s failed for %v: %v", c.Username(), id, giveUp, err)
						return
					}
					time.Sleep(50 * time.Millisecond)
				}
				select {
				case <-r.stop:
					return
				default:
				}
				if n%50 == 49 {
					c.Sync(r.ctx) // keep up with rotations; errors are the faults'
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
}

// finish stops the load and checks that every acknowledged send is stored
// once, gap-free, that nothing else is stored (the title is conversation
// state, not a message), and that every device's sync yields seqs 1…N.
func (r *rig) finish() {
	t := r.t
	close(r.stop)
	r.wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	final := r.ack.snapshot()
	n := checkStored(t, r.db, r.conv, final)
	if n != len(final) {
		t.Fatalf("%d messages stored, %d acknowledged", n, len(final))
	}
	for _, c := range append(r.senders, r.reader) {
		if _, err := c.Sync(r.ctx); err != nil {
			t.Fatalf("%s: final sync: %v", c.Username(), err)
		}
		h, err := c.History(r.conv)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range h {
			if m.Seq != uint64(i+1) {
				t.Fatalf("%s: history seq %d at place %d: a gap or a repeat", c.Username(), m.Seq, i+1)
			}
		}
		if len(h) != n {
			t.Fatalf("%s: history holds %d messages, the server %d", c.Username(), len(h), n)
		}
	}
	t.Logf("%d messages stored and synced by every device", n)
}

// acks returns how many sends have been acknowledged so far.
func (r *rig) acks() int { return len(r.ack.snapshot()) }

// waitAcks waits until more than n sends are acknowledged, or fails after d.
func (r *rig) waitAcks(n int, d time.Duration, what string) {
	r.t.Helper()
	deadline := time.Now().Add(d)
	for r.acks() <= n {
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: no send acknowledged within %v (failures: %v)", what, d, r.failures())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *rig) failures() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for k, v := range r.problems {
		out[k] = v
	}
	return out
}

// ready returns the status of /readyz (0 when the server does not answer).
func (r *rig) ready() int {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + r.srv.addr + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// healthy reports whether the process answers /healthz.
func (r *rig) healthy() bool {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + r.srv.addr + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
