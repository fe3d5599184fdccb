package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sandi.dev/internal/store"
	"sandi.dev/internal/testpg"
)

// TestPostgresSyncNearHeadPages: a live read near the head of a large
// stream touches a few pages, not a number that grows with the table, on
// a database whose statistics are older than its growth (a fresh one, as
// here: no ANALYZE has run). The plan is PostgreSQL's, read with EXPLAIN
// (ANALYZE, BUFFERS) of the statement Sync runs.
func TestPostgresSyncNearHeadPages(t *testing.T) {
	ctx := context.Background()
	s, senders := benchStore(t, testpg.URL(t), 2)
	defer s.Close()
	// Many shared events of another conversation, then one of the
	// reader's.
	const n = 12_000
	sendMany(t, s, senders[0], n)
	since, err := s.LastEventID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	reader := senders[1]
	if _, err := s.Send(ctx, []store.Send{reader.send(1)}); err != nil {
		t.Fatal(err)
	}
	head, err := s.LastEventID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := s.sync(ctx, true, reader.user, reader.dev, since, head, 100)
	if err != nil || len(evs) != 1 || evs[0].Message == nil || evs[0].Message.ClientID != reader.send(1).ClientID {
		t.Fatalf("the walk by event read %+v, %v; want the reader's one message", evs, err)
	}

	var out []byte
	if err := s.r.QueryRowContext(ctx, "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "+syncByEventPG,
		since, head, idArg(reader.dev), idArg(reader.user), 100).Scan(&out); err != nil {
		t.Fatal(err)
	}
	var plan []struct {
		Plan struct {
			Hit  int `json:"Shared Hit Blocks"`
			Read int `json:"Shared Read Blocks"`
		}
	}
	if err := json.Unmarshal(out, &plan); err != nil || len(plan) != 1 {
		t.Fatalf("EXPLAIN: %v: %s", err, out)
	}
	// The range scan reads the primary key's path to the window, the
	// window's heap page, a membership and a message: 8 pages. Scanning
	// events_conversation whole for the window read 81 here.
	pages := plan[0].Plan.Hit + plan[0].Plan.Read
	t.Logf("%d pages", pages)
	if pages > 30 {
		t.Errorf("a read of one event near the head of %d touched %d pages; plan:\n%s", n, pages, out)
	}
}

// TestPostgresSyncPlannedOnce: the live read's statement is planned once
// per connection, not at every read. PostgreSQL plans a prepared
// statement for its parameters' values at its first five executions,
// and after them too while such a plan looks cheaper than the generic
// one; with the table's statistics, a window of a few ids near the head
// of a long stream always does (the generic plan guesses a fraction of
// the table), so every read was planned anew: 0.16 ms of planning for
// 0.09 ms of reading on two million events. (Hiding the values from the
// planner was tried: it holds until the table grows past the
// statistics of the connection's first plans.) The walk runs on
// connections of its own, on the generic plan.
func TestPostgresSyncPlannedOnce(t *testing.T) {
	ctx := context.Background()
	s, senders := benchStore(t, testpg.URL(t), 2)
	defer s.Close()
	// A long stream: events of a conversation nobody here is in, below
	// the ids the store draws, and the statistics of the table.
	if _, err := s.w.ExecContext(ctx, `INSERT INTO events (id, kind, conversation_id, seq, created_at)
SELECT -g, 'message', decode(md5(g::text), 'hex'), 1, 0 FROM generate_series(1, 200000) g`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, "ANALYZE events"); err != nil {
		t.Fatal(err)
	}
	reader := senders[1]
	const reads = 12
	for i := range int64(reads) {
		if _, err := s.Send(ctx, []store.Send{reader.send(i)}); err != nil {
			t.Fatal(err)
		}
		head, err := s.LastEventID(ctx)
		if err != nil {
			t.Fatal(err)
		}
		evs, err := s.sync(ctx, true, reader.user, reader.dev, head-1, head, 100)
		if err != nil || len(evs) != 1 || evs[0].Message == nil || evs[0].Message.ClientID != reader.send(i).ClientID {
			t.Fatalf("read %d: %+v, %v; want the reader's message", i, evs, err)
		}
	}
	if n := s.walks.Stats().OpenConnections; n != 1 {
		t.Fatalf("%d walk connections open, want the one the reads, one after the other, used", n)
	}
	conn, err := s.walks.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var custom, generic int64
	if err := conn.QueryRowContext(ctx, `SELECT custom_plans, generic_plans FROM pg_prepared_statements WHERE statement = $1`,
		syncByEventPG).Scan(&custom, &generic); err != nil {
		t.Fatal(err)
	}
	if custom != 0 || generic != reads {
		t.Errorf("%d reads on one connection: %d custom plans, %d generic; want the generic plan at every read", reads, custom, generic)
	}
}

// TestPostgresConnectionBound: a node opens at most MaxConns + MaxConns/2
// + sendConns connections to PostgreSQL (operations.md), however many
// reads and sends run at once: 48 readers walking long windows, each
// read holding its connection for milliseconds, and 8 senders, while
// the backends of the store's database are counted.
func TestPostgresConnectionBound(t *testing.T) {
	ctx := context.Background()
	url := testpg.URL(t)
	const maxConns = 4
	s, senders := benchStoreWith(t, url, 2, Options{MaxConns: maxConns})
	defer s.Close()
	sendMany(t, s, senders[0], 2000)
	head, err := s.LastEventID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var most atomic.Int64
	stop := make(chan struct{})
	counted := make(chan struct{})
	go func() {
		defer close(counted)
		for {
			var n int64
			if err := admin.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND application_name = $1`, AppName).Scan(&n); err == nil && n > most.Load() {
				most.Store(n)
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	reader := senders[0]
	for range 48 {
		wg.Go(func() {
			for range 5 {
				evs, err := s.sync(ctx, true, reader.user, reader.dev, 0, head, 500)
				if err == nil && len(evs) != 500 {
					err = fmt.Errorf("a read of 500 events gave %d", len(evs))
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for k := range 8 {
		wg.Go(func() {
			for i := range 5 {
				if _, err := s.Send(ctx, []store.Send{senders[1].send(int64(10_000 + k*10 + i))}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	<-counted
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	bound := int64(maxConns + maxConns/2 + sendConns)
	t.Logf("at most %d backends (bound %d)", most.Load(), bound)
	if most.Load() > bound {
		t.Errorf("the store had %d connections open to PostgreSQL at once; at most %d", most.Load(), bound)
	}
	if st := s.walks.Stats(); st.WaitCount == 0 {
		t.Errorf("no read waited for a walk connection: the load did not reach the walk pool's bound (%+v)", st)
	}
}

// sendMany stores n messages of sd (client ids 0 to n-1), in batches of
// 500.
func sendMany(t *testing.T, s *Store, sd benchSender, n int64) {
	t.Helper()
	for i := int64(0); i < n; i += 500 {
		b := make([]store.Send, min(500, n-i))
		for j := range b {
			b[j] = sd.send(i + int64(j))
		}
		if _, err := s.Send(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
}
