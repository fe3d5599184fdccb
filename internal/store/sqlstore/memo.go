package sqlstore

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// memo is what a store keeps in memory between calls because it is the
// only user of its database: a SQLite file whose lock (see lockFile) this
// process holds. Every write of the database then goes through this
// store, so the store knows when a remembered answer stops being true.
// A PostgreSQL store, or a SQLite store opened with Options.Shared, has
// no memo (other servers or processes may write the database).
//
// Two kinds of entries:
//
//   - Read entries (token → device, conversation → members), filled by the
//     read pool, valid while gen is the value it had before the read
//     began. Every write that may change them bumps gen after it commits,
//     so a read that raced with the write is never kept.
//   - Read entries also hold each user's membership spans, for reading
//     the tail of the event stream from memory (see tail).
//   - Writer entries (a conversation's counters, who may post where), used
//     and updated by Send under wmu, which every write holds for its whole
//     transaction on SQLite (the one writer connection serializes them
//     anyway). Send updates them once its transaction has committed; any
//     other write clears them.
type memo struct {
	gen atomic.Uint64
	// head is the newest committed event id (set after each commit that
	// adds events; Sync uses it to pick a plan).
	head atomic.Int64

	mu      sync.Mutex
	tokens  map[string]memoDevice
	members map[protocol.ConversationID]memoMembers
	spans   map[protocol.UserID]memoSpans

	// tail is the newest part of the event stream (see tail).
	tail tail

	wmu     sync.Mutex // held for every write transaction
	convs   map[protocol.ConversationID]convState
	posters map[senderKey]bool

	lock *os.File // the held lock file, released by Close
}

type memoDevice struct {
	gen uint64
	d   store.Device
}

type memoMembers struct {
	gen uint64
	ms  []store.MemberRow
}

type memoSpans struct {
	gen uint64
	sp  spans
}

// maxMemo bounds each map of a memo; a full map starts over.
const maxMemo = 1 << 16

func newMemo(lock *os.File) *memo {
	m := &memo{lock: lock}
	m.clearReads()
	m.clearWriter()
	return m
}

func (m *memo) clearReads() {
	m.tokens = make(map[string]memoDevice)
	m.members = make(map[protocol.ConversationID]memoMembers)
	m.spans = make(map[protocol.UserID]memoSpans)
}

// clearWriter forgets the writer entries; wmu must be held (or the memo
// new).
func (m *memo) clearWriter() {
	m.convs = make(map[protocol.ConversationID]convState)
	m.posters = make(map[senderKey]bool)
}

// invalidate forgets everything, after a write that may have changed any
// of it has ended; wmu must be held.
func (m *memo) invalidate() {
	m.clearWriter()
	m.gen.Add(1)
	m.mu.Lock()
	m.clearReads()
	m.mu.Unlock()
	m.tail.reset(m.head.Load())
}

func (m *memo) device(tokenHash []byte) (store.Device, bool) {
	m.mu.Lock()
	e, ok := m.tokens[string(tokenHash)]
	m.mu.Unlock()
	return e.d, ok && e.gen == m.gen.Load()
}

func (m *memo) putDevice(tokenHash []byte, gen uint64, d store.Device) {
	m.mu.Lock()
	if len(m.tokens) >= maxMemo {
		m.tokens = make(map[string]memoDevice)
	}
	m.tokens[string(tokenHash)] = memoDevice{gen, d}
	m.mu.Unlock()
}

func (m *memo) memberRows(id protocol.ConversationID) ([]store.MemberRow, bool) {
	m.mu.Lock()
	e, ok := m.members[id]
	m.mu.Unlock()
	return e.ms, ok && e.gen == m.gen.Load()
}

func (m *memo) putMembers(id protocol.ConversationID, gen uint64, ms []store.MemberRow) {
	m.mu.Lock()
	if len(m.members) >= maxMemo {
		m.members = make(map[protocol.ConversationID]memoMembers)
	}
	m.members[id] = memoMembers{gen, ms}
	m.mu.Unlock()
}

func (m *memo) userSpans(user protocol.UserID) (spans, bool) {
	m.mu.Lock()
	e, ok := m.spans[user]
	m.mu.Unlock()
	return e.sp, ok && e.gen == m.gen.Load()
}

func (m *memo) putUserSpans(user protocol.UserID, gen uint64, sp spans) {
	m.mu.Lock()
	if len(m.spans) >= maxMemo {
		m.spans = make(map[protocol.UserID]memoSpans)
	}
	m.spans[user] = memoSpans{gen, sp}
	m.mu.Unlock()
}

// putConv and putPoster record writer entries; wmu must be held.
func (m *memo) putConv(c convState) {
	if len(m.convs) >= maxMemo {
		m.convs = make(map[protocol.ConversationID]convState)
	}
	m.convs[c.id] = c
}

func (m *memo) putPoster(k senderKey, ok bool) {
	if len(m.posters) >= maxMemo {
		m.posters = make(map[senderKey]bool)
	}
	m.posters[k] = ok
}

// ErrInUse is returned by Open when another process has the SQLite
// database open.
var ErrInUse = errors.New("the database is in use by another process")

// errNoLock reports a system without file locks: the store then runs
// without a memo.
var errNoLock = errors.New("no file locks on this system")

// SQLiteFile returns the database file a SQLite url names (a path or a
// file: URL), or "" for an in-memory database.
func SQLiteFile(url string) string {
	p := url
	if rest, ok := strings.CutPrefix(url, "file:"); ok {
		p, _, _ = strings.Cut(rest, "?")
		if strings.Contains(url, "mode=memory") {
			return ""
		}
	}
	if p == "" || p == ":memory:" {
		return ""
	}
	return p
}

// SQLiteFiles returns every file a store on the SQLite url may keep: the
// database, SQLite's files beside it and the store's lock file (nil for
// an in-memory database).
func SQLiteFiles(url string) []string {
	p := SQLiteFile(url)
	if p == "" {
		return nil
	}
	return []string{p, p + "-wal", p + "-shm", p + "-journal", p + lockSuffix}
}

// lockSuffix names the lock file beside the database file.
const lockSuffix = "-lock"

// lockSQLite takes the store's exclusive lock on the database file at
// path: a lock on the file path+lockSuffix, held while the store is open. It
// returns ErrInUse when another process holds it.
func lockSQLite(path string) (*os.File, error) {
	f, err := os.OpenFile(path+lockSuffix, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock file: %w", err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}
