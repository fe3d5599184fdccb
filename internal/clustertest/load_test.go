package clustertest

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"sandi.dev/internal/load"
	"sandi.dev/internal/server"
	"sandi.dev/internal/store/sqlstore"
	"sandi.dev/internal/testpg"
)

// The load tool drives several nodes at once: senders go through the nodes
// in turn, a WebSocket on each node receives every accepted message once
// (or, spread, one receiver per node receives its senders' messages
// there, each message once in all), and the report has each node's
// figures. SANDI_LOAD_CLUSTER=N measures instead: N nodes, 1,000 sends/s
// (or SANDI_LOAD_RATE) for 5 s (docs/performance.md), spread with
// SANDI_LOAD_SPREAD=1. SANDI_LOAD_CONC=1,64 adds those closed-loop
// levels (3 s each); SANDI_LOAD_COUNTER=1 puts the database back on the
// event counter first, as a database of an older release is;
// SANDI_LOAD_NONATS=1 runs the nodes without NATS (one node: the same
// server as the single-node load tool; several: cross-node delivery by
// the head poll alone); SANDI_LOAD_CPUPROFILE=FILE records a CPU profile
// of the timed phases. Each node's settled-head figures are logged: the
// reads that gave up waiting for the head, and how long they waited; and
// what its WebSocket wake-ups did (sandi_websocket_reads_total).
func TestLoadAcrossNodes(t *testing.T) {
	if os.Getenv("SANDI_LOAD_CLUSTER") != "" {
		// The nodes collect garbage as sandi serve does (the load tool
		// does the same for its in-process server).
		server.TuneGC()
		loadAcrossNodes(t, os.Getenv("SANDI_LOAD_SPREAD") != "")
		return
	}
	for _, spread := range []bool{false, true} {
		t.Run(fmt.Sprintf("spread=%v", spread), func(t *testing.T) { loadAcrossNodes(t, spread) })
	}
}

// loadAcrossNodes is TestLoadAcrossNodes with one receiver listening on
// every node, or (spread) one receiver per node.
func loadAcrossNodes(t *testing.T, spread bool) {
	nodes, rate, dur := 2, 100, time.Second
	if n, err := strconv.Atoi(os.Getenv("SANDI_LOAD_CLUSTER")); err == nil && n > 0 {
		nodes, rate, dur = n, 1000, 5*time.Second
		if r, err := strconv.Atoi(os.Getenv("SANDI_LOAD_RATE")); err == nil && r > 0 {
			rate = r
		}
	}
	cfg := TestConfig()
	cfg.RotateAfterMessages = 1 << 30
	dbURL := testpg.URL(t)
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var conc []int
	for _, f := range strings.Split(os.Getenv("SANDI_LOAD_CONC"), ",") {
		if n, err := strconv.Atoi(f); err == nil && n > 0 {
			conc = append(conc, n)
		}
	}
	if os.Getenv("SANDI_LOAD_COUNTER") != "" {
		unswitch(t, dbURL, db)
	}
	c := Start(t, Options{Nodes: nodes, DB: dbURL, Config: cfg, NoNATS: os.Getenv("SANDI_LOAD_NONATS") != ""})
	var wal0 string
	var xacts0 int64
	if err := db.QueryRow(`SELECT pg_current_wal_lsn()::text, xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()`).Scan(&wal0, &xacts0); err != nil {
		t.Fatal(err)
	}
	lc := load.Config{Server: c.Nodes[0].URL(), Senders: 8, Concurrency: []int{}, Duration: -1, CatchUp: -1,
		Rate: rate, RateDuration: dur, Pool: 16, Log: &bytes.Buffer{}, Spread: spread && nodes > 1}
	if len(conc) > 0 {
		lc.Concurrency, lc.Duration, lc.Senders = conc, 0, max(slices.Max(conc), 8)
	}
	if path := os.Getenv("SANDI_LOAD_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		lc.CPUProfile = f
	}
	for _, n := range c.Nodes[1:] {
		lc.Servers = append(lc.Servers, n.URL())
	}
	rep, err := load.Run(context.Background(), lc)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	rep.WriteTable(&out)
	t.Logf("\n%s", out.String())
	for _, n := range c.Nodes {
		if late, ok := n.St.StreamHeadLate(); ok {
			settled, drawn, _, _ := n.St.StreamHead()
			obs, checks := n.St.StreamHeadRounds()
			t.Logf("node %s: %d reads gave up waiting for the settled head; head %d, drawn %d; %d observations of the head, %d checks", n.Addr, late, settled, drawn, obs, checks)
		}
		t.Logf("node %s: WebSocket wake-ups: %s", n.Addr, wsReads(t, n))
	}
	l := rep.Live
	if nodes == 1 { // the report has no per-node rows
		if l == nil || l.Accepted == 0 || l.Received != l.Accepted || l.Missing != 0 {
			t.Errorf("one node: %+v", l)
		}
	} else if l == nil || len(l.Nodes) != nodes || l.Accepted == 0 {
		t.Fatalf("no per-node report: %+v", l)
	}
	// Each node's WebSocket gets every message, or (spread) its
	// receiver's, and every message arrives once in all.
	var received int64
	for _, n := range l.Nodes {
		received += n.Received
		if n.Accepted == 0 || n.Received == 0 || (!spread && n.Received != l.Accepted) || n.Missing != 0 || n.Duplicates != 0 || n.CrossNode.N == 0 {
			t.Errorf("node %s: %d sent through it, %d of %d received, %d missing, %d twice, %d from other nodes",
				n.Server, n.Accepted, n.Received, l.Accepted, n.Missing, n.Duplicates, n.CrossNode.N)
		}
	}
	if spread && len(l.Nodes) > 0 && (received != l.Accepted || l.Received != l.Accepted || l.Missing != 0) {
		t.Errorf("spread: %d received over the nodes, %d in the report, of %d accepted, %d missing", received, l.Received, l.Accepted, l.Missing)
	}
	// What a message costs PostgreSQL: WAL written, table and index
	// bytes (the run's messages dominate the database), and transactions
	// (sends, reads, the nodes' observations of the head; the statistics
	// are flushed within a second, so the figure may miss the last).
	var walBytes, msgBytes, evBytes, xacts float64
	if err := db.QueryRow(`SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn),
		pg_total_relation_size('messages'), pg_total_relation_size('events'),
		(SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()) - $2`, wal0, xacts0).Scan(&walBytes, &msgBytes, &evBytes, &xacts); err != nil {
		t.Fatal(err)
	}
	if n := float64(rep.Stored); n > 0 {
		t.Logf("per stored message: %.0f bytes of WAL, %.0f bytes of messages (table and indexes), %.0f of events; %.2f transactions", walBytes/n, msgBytes/n, evBytes/n, xacts/n)
	}
	if rep.Stored != rep.Accepted() {
		t.Errorf("stored %d, accepted %d", rep.Stored, rep.Accepted())
	}
}

// wsReads is what the node's WebSocket wake-ups did, from its metrics
// (sandi_websocket_reads_total by result).
func wsReads(t *testing.T, n *Node) string {
	t.Helper()
	rec := httptest.NewRecorder()
	n.Srv.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	var parts []string
	for line := range strings.Lines(rec.Body.String()) {
		if rest, ok := strings.CutPrefix(line, `sandi_websocket_reads_total{result="`); ok {
			result, value, _ := strings.Cut(strings.TrimSpace(rest), `"} `)
			parts = append(parts, value+" "+result)
		}
	}
	if len(parts) == 0 {
		t.Errorf("node %s: no sandi_websocket_reads_total in its metrics", n.Addr)
	}
	return strings.Join(parts, ", ")
}

// unswitch makes the database one of a release that knew only the event
// counter: the store opened on it keeps the counter (sqlstore, pgstream.go).
func unswitch(t *testing.T, url string, db *sql.DB) {
	t.Helper()
	st, err := sqlstore.Open(context.Background(), url, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	for _, q := range []string{`DROP TRIGGER event_counter_retired ON event_counter`,
		`DELETE FROM event_counter`, `INSERT INTO event_counter (id, last_id) VALUES (1, 0)`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}
