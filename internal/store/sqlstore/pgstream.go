package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// The event stream on PostgreSQL with several writers (docs/scaling.md,
// "The event stream with several writers").
//
// Writers take event ids from the sequence event_ids, one block of
// eventBlock ids per nextval, after their row locks and after their
// transaction has an id: they never wait for each other's commits.
// Readers return no event above the settled head (pgHead): an id below
// which no transaction that may still commit holds an id.
//
// A database created by this release starts on the sequence; one created
// by an older release stays on event_counter until SwitchStream (sandi db
// switch-stream) moves it, once no older node uses it. The switch is one
// way and recorded in event_counter.sequenced.

// eventBlock is how many ids one nextval of event_ids gives (its
// INCREMENT): a transaction adds at most this many events per draw.
const eventBlock = 1024

// codeCounterRetired is the SQLSTATE with which PostgreSQL refuses a
// change of a switched event counter.
const codeCounterRetired = "SD013"

// AppName is the application_name with which a store of this release
// connects to PostgreSQL; SwitchStream refuses while other sessions of
// the database go by another.
const AppName = "sandi (event ids: sequence)"

// pgStreamDDL creates the sequence and the trigger that retires the
// counter once switched. Idempotent; run under an advisory lock.
var pgStreamDDL = []string{
	`SELECT pg_advisory_xact_lock(7236050)`,
	`CREATE SEQUENCE IF NOT EXISTS event_ids AS BIGINT INCREMENT BY ` + eventBlockText + ` MINVALUE 0 START WITH 0 NO CYCLE`,
	// The column is read through to_jsonb so that the trigger does not
	// depend on it: migration 13's down step drops it.
	`CREATE OR REPLACE FUNCTION event_counter_retired() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (to_jsonb(OLD) ->> 'sequenced') = 'true' THEN
        RAISE EXCEPTION 'the event counter is retired: event ids come from the sequence event_ids (this node''s release is older than the database''s switch)'
            USING ERRCODE = '` + codeCounterRetired + `';
    END IF;
    RETURN NEW;
END $$`,
	`CREATE OR REPLACE TRIGGER event_counter_retired BEFORE UPDATE ON event_counter
    FOR EACH ROW EXECUTE FUNCTION event_counter_retired()`,
}

// ensureStream creates the stream's PostgreSQL objects, switches a fresh
// database (fresh: its first migration was applied by this open) to the
// sequence, and reads which of the two the database uses.
func (s *Store) ensureStream(ctx context.Context, fresh bool) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, q := range pgStreamDDL {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("event stream: %w", err)
		}
	}
	if fresh {
		if err := switchStream(ctx, tx); err != nil {
			return err
		}
	}
	var seq bool
	if err := tx.QueryRowContext(ctx, `SELECT sequenced FROM event_counter WHERE id = 1`).Scan(&seq); err != nil {
		return fmt.Errorf("event stream: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("event stream: %w", err)
	}
	s.sequenced.Store(seq)
	return nil
}

// switchStream moves the database from the counter to the sequence, in
// tx: it locks the counter's row (so every transaction that took ids from
// the counter has committed), sets the sequence to the counter's value
// (never back) and marks the row. setval is not transactional: if tx
// rolls back, the sequence is only further ahead, which is harmless.
func switchStream(ctx context.Context, tx *sql.Tx) error {
	var last int64
	var seq bool
	if err := tx.QueryRowContext(ctx, `SELECT last_id, sequenced FROM event_counter WHERE id = 1 FOR UPDATE`).Scan(&last, &seq); err != nil {
		return fmt.Errorf("event stream: read the counter: %w", err)
	}
	if seq {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `SELECT setval('event_ids', GREATEST($1, COALESCE(pg_sequence_last_value('event_ids'), 0)), true)`, last); err != nil {
		return fmt.Errorf("event stream: set the sequence: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE event_counter SET sequenced = TRUE WHERE id = 1`); err != nil {
		return fmt.Errorf("event stream: mark the counter: %w", err)
	}
	return nil
}

// ErrOlderNodes is returned (wrapped) by SwitchStream while sessions that
// are not of this release use the database.
var ErrOlderNodes = errors.New("other sessions use the database")

// SwitchStream moves a PostgreSQL database from the event counter to the
// sequence (see the top of this file). It refuses, with ErrOlderNodes,
// while another session of the database goes by another application_name
// than AppName (a node of an older release, or any other client), unless
// force. It reports whether the database was on the counter.
func (s *Store) SwitchStream(ctx context.Context, force bool) (bool, error) {
	if s.d.local {
		return false, errors.New("sqlstore: switch-stream: SQLite has one writer and keeps the event counter")
	}
	if !force {
		rows, err := s.r.QueryContext(ctx, `SELECT application_name, count(*) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
GROUP BY application_name ORDER BY application_name`)
		if err != nil {
			return false, fmt.Errorf("sqlstore: switch-stream: list sessions: %w", err)
		}
		var others []string
		for rows.Next() {
			var name string
			var n int
			if err := rows.Scan(&name, &n); err != nil {
				rows.Close()
				return false, fmt.Errorf("sqlstore: switch-stream: %w", err)
			}
			if name != AppName {
				others = append(others, fmt.Sprintf("%q (%d)", name, n))
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return false, fmt.Errorf("sqlstore: switch-stream: %w", err)
		}
		if len(others) > 0 {
			return false, fmt.Errorf("sqlstore: switch-stream: %w: %s", ErrOlderNodes, strings.Join(others, ", "))
		}
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("sqlstore: switch-stream: %w", err)
	}
	defer tx.Rollback()
	var was bool
	if err := tx.QueryRowContext(ctx, `SELECT NOT sequenced FROM event_counter WHERE id = 1`).Scan(&was); err != nil {
		return false, fmt.Errorf("sqlstore: switch-stream: %w", err)
	}
	if err := switchStream(ctx, tx); err != nil {
		return false, fmt.Errorf("sqlstore: switch-stream: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("sqlstore: switch-stream: %w", err)
	}
	s.sequenced.Store(true)
	return was, nil
}

// counterRetired reports whether err is PostgreSQL refusing a change of a
// switched counter; the store then takes its ids from the sequence.
func (s *Store) counterRetired(err error) bool {
	var pe *pgconn.PgError
	if s.d.dollar && errors.As(err, &pe) && pe.Code == codeCounterRetired {
		s.sequenced.Store(true)
		return true
	}
	return false
}

// pgDrawIDs is the draw of one block of ids, in a transaction that holds
// its row locks: the transaction id first (a CTE is evaluated before the
// rows that read it), then nextval. The block is base+1 … base+eventBlock.
const pgDrawIDs = `WITH x AS MATERIALIZED (SELECT pg_current_xact_id() AS x)
SELECT nextval('event_ids') - ` + eventBlockText + ` AS base FROM x`

// eventBlockText is eventBlock in SQL.
const eventBlockText = "1024"

// pgHead computes the settled head of a PostgreSQL store's stream. One
// goroutine takes observations, each in one round trip of three
// read-only statements, one after the other:
//
//  1. L, the newest id drawn (pg_sequence_last_value);
//  2. N, the next transaction id to be assigned (the transaction
//     counter, read through age(), see pgObserveNext); X = N-1 is the
//     newest transaction id assigned;
//  3. the oldest transaction id still running (xmin of a snapshot).
//
// Every transaction that drew an id ≤ L had its transaction id before
// drawing, hence before N was read: its id is at most X. Once no
// transaction id up to X is running (a snapshot's xmin above X), every
// id ≤ L is committed, and visible to any later statement, or will never
// be. The head is the largest L so settled. On the counter (before the
// switch) the counter's committed value is already settled.
//
// A snapshot's xmin counts only the running transactions below its xmax,
// one above the newest ended transaction id; a transaction that got its
// id after that one, drew its ids and is still open lowers no xmin. An
// xmin above X is nonetheless enough: xmin ≤ xmax, so the newest ended
// id is then X or above, and every running id up to X is below xmax,
// where it would hold xmin at or below itself. (The list of running
// transactions alone, without X, does not do: TestPostgresStreamNoSkip.)
// The round assigns no transaction id of its own and writes nothing.
//
// Observations settle in the order they were taken (their X go up), so
// the pending list can be thinned by replacing its newest.
type pgHead struct {
	s     *Store
	kick  chan struct{} // a reader needs an observation taken after its call
	nudge chan struct{} // a reader waits for a pending observation to settle
	stop  chan struct{}
	done  chan struct{}

	mu      sync.Mutex
	settled int64
	drawn   int64 // the newest L read
	pending []observation
	started uint64        // rounds started
	ended   uint64        // rounds ended
	endedL  int64         // the L of the newest ended round
	roundCh chan struct{} // closed when a round or a check ends
	checks  uint64        // checks taken (settling only, see check)
	err     error         // the last round's error
	late    bool          // a waiter gave up before its observation settled
	gaveUp  uint64        // waiters that gave up (StreamHeadLate)
	waiters int           // readers in fresh
	onLate  func()

	maxWait time.Duration
}

type observation struct {
	last int64
	xid  uint64
	at   time.Time
}

// maxPending bounds the pending observations (see pgHead).
const maxPending = 64

// headMaxWait is how long a reader waits for the observation taken after
// its call to settle before it answers with the head settled by then.
const headMaxWait = 250 * time.Millisecond

func newPGHead(s *Store) *pgHead {
	h := &pgHead{s: s, kick: make(chan struct{}, 1), nudge: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		roundCh: make(chan struct{}), maxWait: headMaxWait}
	go h.loop()
	return h
}

func (h *pgHead) close() {
	close(h.stop)
	<-h.done
}

// loop runs rounds when a reader needs a new observation (kick), and
// checks (check) when a reader waits for a pending one to settle (nudge)
// and while observations are pending: every millisecond while a reader
// waits or the head moves, more slowly (up to 100 ms) while nobody waits
// for a head held back.
func (h *pgHead) loop() {
	defer close(h.done)
	const minPoll, maxPoll = time.Millisecond, 100 * time.Millisecond
	poll := minPoll
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var last int64
	for {
		h.mu.Lock()
		pending, waited, moved := len(h.pending) > 0, h.waiters > 0, h.settled != last
		last = h.settled
		h.mu.Unlock()
		if !pending || waited || moved {
			poll = minPoll
		}
		if pending {
			timer.Reset(poll)
		}
		observe := false // a round; otherwise a check
		select {
		case <-h.stop:
			return
		case <-h.kick:
			observe = true
		case <-h.nudge:
		case <-timer.C:
			poll = min(2*poll, maxPoll)
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		if observe {
			h.round()
		} else {
			h.check()
		}
	}
}

// round takes an observation and settles what it can.
func (h *pgHead) round() {
	h.begin()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	o, seq, xmin, err := h.observe(ctx)
	cancel()
	h.end(o, seq, xmin, err)
}

// begin counts a round as started: its observation is taken after.
func (h *pgHead) begin() {
	h.mu.Lock()
	h.started++
	h.mu.Unlock()
}

// end ends the round begun last with its observation (or error).
func (h *pgHead) end(o observation, seq bool, xmin uint64, err error) {
	h.mu.Lock()
	h.err = err
	before := h.settled
	if err == nil {
		h.drawn = max(h.drawn, o.last)
		if !seq {
			h.settled = max(h.settled, o.last)
		} else {
			h.add(o)
			h.settle(xmin)
		}
		h.endedL = o.last
	}
	h.ended++
	h.finish(before)
}

// committed tells the head that a transaction of this store has ended (a
// batch of sends committed): while a reader waits for a pending
// observation to settle, a check now may settle it, sooner than the
// loop's next poll. Other nodes' commits are left to the poll.
func (h *pgHead) committed() {
	h.mu.Lock()
	wanted := h.waiters > 0 && len(h.pending) > 0
	h.mu.Unlock()
	if wanted {
		signal(h.nudge)
	}
}

// signal asks the loop through ch (kick or nudge) without waiting: a
// request already pending there covers this one.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// check settles the pending observations without taking one: a single
// read of the oldest running transaction (a round is three statements).
// A reader woken for an event that an observation already covers needs
// only this; so does the poll while observations are pending. A failed
// check changes nothing (the next round reports the database's error).
func (h *pgHead) check() {
	h.mu.Lock()
	if len(h.pending) == 0 {
		h.finish(h.settled)
		return
	}
	h.checks++
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	var xmin uint64
	err := h.s.r.QueryRowContext(ctx, pgCheck).Scan(&xmin)
	cancel()
	h.mu.Lock()
	before := h.settled
	if err == nil {
		h.settle(xmin)
	}
	h.finish(before)
}

// pgCheck is a check's statement (see check).
const pgCheck = `SELECT pg_snapshot_xmin(pg_current_snapshot())::text::int8`

// finish ends a round or a check, with h.mu held, which it releases: it
// wakes the readers waiting, and calls onLate if the head moved after a
// reader gave up.
func (h *pgHead) finish(before int64) {
	var late func()
	if h.settled > before && h.late {
		h.late, late = false, h.onLate
	}
	close(h.roundCh)
	h.roundCh = make(chan struct{})
	h.mu.Unlock()
	if late != nil {
		late()
	}
}

// add appends an observation, replacing the newest pending one when the
// list is full.
func (h *pgHead) add(o observation) {
	if len(h.pending) >= maxPending {
		o.at = h.pending[len(h.pending)-1].at // it waits since then at least
		h.pending[len(h.pending)-1] = o
		return
	}
	h.pending = append(h.pending, o)
}

// settle drops the observations whose X is below xmin, the oldest
// transaction then running, and raises the head to the newest of them.
func (h *pgHead) settle(xmin uint64) {
	n := 0
	for n < len(h.pending) && h.pending[n].xid < xmin {
		h.settled = max(h.settled, h.pending[n].last)
		n++
	}
	h.pending = slices.Delete(h.pending, 0, n)
}

// pgRound and pgRoundSequenced are a round's statements (see pgHead),
// sent together as one pipeline of prepared statements ending in one
// Sync: they run in one implicit transaction, which gets no transaction
// id (nothing in it writes or locks a row), and each takes its own
// snapshot (read committed). Prepared once per connection, they are not
// parsed and planned again at each round, as a simple query's statements
// were (about 20 µs of planning and more of parsing a round, at more
// than two rounds per stored message on three nodes).
var (
	pgRound = [3]pgStatement{
		{"sandi_round_l", `SELECT CASE WHEN sequenced THEN COALESCE(pg_sequence_last_value('event_ids'), 0) ELSE last_id END, sequenced FROM event_counter WHERE id = 1`},
		pgObserveNext,
		pgObserveXmin,
	}
	// pgRoundSequenced is pgRound once the store knows the database is
	// on the sequence, which it never leaves (the counter row's trigger
	// refuses any change once sequenced is set): L is the sequence's
	// alone, and the statement reads no table.
	pgRoundSequenced = [3]pgStatement{
		{"sandi_round_seq_l", `SELECT COALESCE(pg_sequence_last_value('event_ids'), 0), true`},
		pgObserveNext,
		pgObserveXmin,
	}
)

// pgStatement is a statement prepared under its name.
type pgStatement struct{ name, sql string }

// pgObserveNext reads N, the next transaction id to be assigned, without
// assigning one: age(x) is the distance from x to the transaction
// counter, read at its first call in a transaction that has no id (and
// kept for the rest of it: this statement is its first call, after L
// was read). x is the snapshot's xmin, a 64-bit id at or below the
// counter within 2^31 of it (the 32-bit age cannot reach further;
// PostgreSQL stops assigning ids long before), whose 32 low bits age
// takes. Its snapshot was taken before the counter was read; any xmin
// at or below the counter will do. N is x + age (parseObservation).
var pgObserveNext = pgStatement{"sandi_round_n", `SELECT pg_snapshot_xmin(s)::text::int8, age(pg_snapshot_xmin(s)::xid) FROM pg_current_snapshot() s`}

// pgObserveXmin reads the oldest transaction id running, after N.
var pgObserveXmin = pgStatement{"sandi_round_xmin", `SELECT pg_snapshot_xmin(pg_current_snapshot())`}

// observe runs a round trip: the observation, whether the database is on
// the sequence, and the xmin after it.
func (h *pgHead) observe(ctx context.Context) (o observation, seq bool, xmin uint64, err error) {
	conn, err := h.s.r.Conn(ctx)
	if err != nil {
		return o, false, 0, err
	}
	defer conn.Close()
	var res []*pgconn.Result
	err = conn.Raw(func(dc any) error {
		pc := dc.(*stdlib.Conn).Conn()
		stmts := &pgRound
		if h.s.sequenced.Load() {
			stmts = &pgRoundSequenced
		}
		b := &pgconn.Batch{}
		for _, st := range stmts {
			// Prepare is a look-up once the connection has the
			// statement.
			if _, err := pc.Prepare(ctx, st.name, st.sql); err != nil {
				return err
			}
			b.ExecPrepared(st.name, nil, nil, nil) // text results
		}
		var err error
		res, err = pc.PgConn().ExecBatch(ctx, b).ReadAll()
		if err == nil && pc.PgConn().TxStatus() != 'I' {
			err = errors.Join(errors.New("a transaction is left open"), driver.ErrBadConn)
		}
		return err
	})
	if err == nil {
		o, seq, xmin, err = parseObservation(res)
	}
	if err != nil {
		return o, false, 0, fmt.Errorf("sqlstore: event stream head: %w", err)
	}
	o.at = time.Now()
	if seq {
		h.s.sequenced.Store(true)
	}
	return o, seq, xmin, nil
}

// parseObservation reads a round's three results.
func parseObservation(res []*pgconn.Result) (o observation, seq bool, xmin uint64, err error) {
	cell := func(i, col int) (string, error) {
		if len(res) != 3 || res[i].Err != nil || len(res[i].Rows) != 1 || len(res[i].Rows[0]) <= col {
			return "", fmt.Errorf("observation: unexpected results")
		}
		return string(res[i].Rows[0][col]), nil
	}
	var f [5]string
	for k, at := range [5][2]int{{0, 0}, {0, 1}, {1, 0}, {1, 1}, {2, 0}} {
		if f[k], err = cell(at[0], at[1]); err != nil {
			return o, false, 0, err
		}
	}
	if o.last, err = strconv.ParseInt(f[0], 10, 64); err != nil {
		return o, false, 0, fmt.Errorf("observation: %w", err)
	}
	seq = f[1] == "t"
	x, err := strconv.ParseUint(f[2], 10, 64)
	if err != nil {
		return o, false, 0, fmt.Errorf("observation: %w", err)
	}
	age, err := strconv.ParseInt(f[3], 10, 32)
	if err != nil {
		return o, false, 0, fmt.Errorf("observation: %w", err)
	}
	// age is INT_MAX for a special (not normal) x, and never negative
	// for an x at or below the counter; either would make X meaningless.
	if age < 0 || age == math.MaxInt32 || x < 3 {
		return o, false, 0, fmt.Errorf("observation: transaction id %d, age %d", x, age)
	}
	o.xid = x + uint64(age) - 1 // X = N-1, the newest id assigned
	if xmin, err = strconv.ParseUint(f[4], 10, 64); err != nil {
		return o, false, 0, fmt.Errorf("observation: %w", err)
	}
	return o, seq, xmin, nil
}

// fresh returns the head once the observation of a round started after
// the call has settled, or after maxWait with the head settled by then
// (the store then calls onLate when the head next moves).
func (h *pgHead) fresh(ctx context.Context) (int64, error) { return h.freshFor(ctx, 0) }

// freshFor is fresh for a reader woken for a known event: at is the
// newest event id of the commit that woke it (0: none known, fresh).
// Every id up to a settled head is committed or never will be, so a head
// ≥ at covers that commit and every one before it: freshFor returns the
// head at once, without a round, when it is settled that far, and
// otherwise waits for the first observation with L ≥ at to settle, which
// may be one taken before the call (pending, or a round in progress that
// read L after at was drawn). A wake-up is only a hint: the reader never
// waits for more than fresh would (the observation of the first round
// started after the call, when that round read L < at: at was not drawn
// before the call, a foreign or forged hint), and it never returns a head
// above the settled one.
func (h *pgHead) freshFor(ctx context.Context, at int64) (int64, error) {
	h.mu.Lock()
	if at > 0 && h.settled >= at {
		v := h.settled
		h.mu.Unlock()
		return v, nil
	}
	target := h.started + 1
	covered := at > 0 && h.drawn >= at
	// A round in progress may have read L after at was drawn: a reader
	// woken for at asks for a round only once it has ended without
	// covering at. It would start no sooner when asked for now (after
	// the one in progress), and would be one round too many whenever
	// that one covers at, which on a busy node is most of the time.
	deferred := at > 0 && !covered && h.started > h.ended
	h.waiters++
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.waiters--
		h.mu.Unlock()
	}()
	switch {
	case covered:
		// An observation with L ≥ at is taken already: it needs
		// settling only (a check), not another observation.
		signal(h.nudge)
	case !deferred:
		signal(h.kick)
	}
	deadline := time.NewTimer(h.maxWait)
	defer deadline.Stop()
	var need int64
	haveNeed, ownRound := false, false
	for {
		h.mu.Lock()
		if !haveNeed && at > 0 && h.drawn >= at {
			// An observation with L ≥ at is taken (settled or pending):
			// its settling is what the reader needs.
			need, haveNeed = at, true
		}
		if !ownRound && h.ended >= target {
			ownRound = true
			if h.err != nil {
				err := h.err
				h.mu.Unlock()
				return 0, err
			}
			// What fresh waits for bounds the wait: with a target above
			// this round's L, at was not drawn before the call (a forged
			// or foreign hint).
			if !haveNeed || h.endedL < need {
				need = h.endedL
			}
			haveNeed = true
		}
		if haveNeed && h.settled >= need {
			v := h.settled
			h.mu.Unlock()
			return v, nil
		}
		kickNow := deferred && !haveNeed && h.ended >= target-1 // the round in progress has ended, short of at
		ch := h.roundCh
		h.mu.Unlock()
		if kickNow {
			deferred = false
			signal(h.kick)
		}
		// One kick is enough: the kick, or the one that filled the
		// channel before it, is taken by the loop after the call, and
		// the round it starts counts itself in started only then, so
		// it is the target or a later one. (Kicking again at every
		// end of a round took a round that nobody had asked for after
		// nearly every read.)
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-deadline.C:
			h.mu.Lock()
			v, err := h.settled, h.err
			h.late = true
			h.gaveUp++
			h.mu.Unlock()
			if err != nil {
				return 0, err
			}
			return v, nil
		}
	}
}

// StreamHead reports, on PostgreSQL, the settled head of the event
// stream, the newest event id drawn, and how long the oldest observation
// not yet settled has waited (0 when none). ok is false on SQLite, whose
// counter is its head.
func (s *Store) StreamHead() (settled, drawn int64, waiting time.Duration, ok bool) {
	h := s.head
	if h == nil {
		return 0, 0, 0, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.pending) > 0 {
		waiting = time.Since(h.pending[0].at)
	}
	return h.settled, h.drawn, waiting, true
}

// StreamHeadLate reports how many reads, on PostgreSQL, gave up waiting
// for the head (headMaxWait) and answered with the head settled by then;
// ok is false on SQLite.
func (s *Store) StreamHeadLate() (n uint64, ok bool) {
	h := s.head
	if h == nil {
		return 0, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.gaveUp, true
}

// OnHeadLate sets f to be called when the head moves after a reader gave
// up waiting for it (see pgHead.fresh): events it could not return then
// are readable now. The server wakes its sockets. PostgreSQL only.
func (s *Store) OnHeadLate(f func()) {
	if h := s.head; h != nil {
		h.mu.Lock()
		h.onLate = f
		h.mu.Unlock()
	}
}

// StreamHeadRounds reports the observations of the head taken (rounds
// started) and the checks that only settled them; 0 on SQLite.
func (s *Store) StreamHeadRounds() (observations, checks uint64) {
	h := s.head
	if h == nil {
		return 0, 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.started, h.checks
}
