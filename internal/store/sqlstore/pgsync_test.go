package sqlstore

import (
	"context"
	"encoding/json"
	"testing"

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
	const n, batch = 12_000, 500
	for i := int64(0); i < n; i += batch {
		b := make([]store.Send, batch)
		for j := range b {
			b[j] = senders[0].send(i + int64(j))
		}
		if _, err := s.Send(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
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
	if err := s.r.QueryRowContext(ctx, "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "+s.d.rebind(s.syncByEventQuery()),
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
