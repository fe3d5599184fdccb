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

	mu      sync.Mutex // guards the read entries
	tokens  readEntries[string, store.Device]
	members readEntries[protocol.ConversationID, []store.MemberRow]
	spans   readEntries[protocol.UserID, spans]

	// tail is the newest part of the event stream (see tail).
	tail tail

	wmu     sync.Mutex // held for every write transaction
	convs   map[protocol.ConversationID]convState
	posters map[senderKey]bool

	lock *os.File // the held lock file, released by Close
}

// readEntries is one kind of read entry: answers by key, each with the
// generation it was read at. Its owner's mu (memo.mu, pgReads.mu)
// guards it.
type readEntries[K comparable, V any] map[K]readEntry[V]

type readEntry[V any] struct {
	gen uint64
	v   V
}

// get returns k's answer if it was read at generation gen.
func (r readEntries[K, V]) get(k K, gen uint64) (V, bool) {
	e, ok := r[k]
	return e.v, ok && e.gen == gen
}

// put records k's answer, read at generation gen; a full map starts over.
func (r *readEntries[K, V]) put(k K, gen uint64, v V) {
	if *r == nil || len(*r) >= maxMemo {
		*r = make(readEntries[K, V])
	}
	(*r)[k] = readEntry[V]{gen, v}
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
	m.tokens, m.members, m.spans = nil, nil, nil
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
	defer m.mu.Unlock()
	return m.tokens.get(string(tokenHash), m.gen.Load())
}

func (m *memo) putDevice(tokenHash []byte, gen uint64, d store.Device) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tokens.put(string(tokenHash), gen, d)
}

// forgetDevice drops the answer for one token (after a write that changed
// only that token's row).
func (m *memo) forgetDevice(tokenHash []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.tokens, string(tokenHash))
}

func (m *memo) memberRows(id protocol.ConversationID) ([]store.MemberRow, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.members.get(id, m.gen.Load())
}

func (m *memo) putMembers(id protocol.ConversationID, gen uint64, ms []store.MemberRow) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.members.put(id, gen, ms)
}

func (m *memo) userSpans(user protocol.UserID) (spans, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.spans.get(user, m.gen.Load())
}

func (m *memo) putUserSpans(user protocol.UserID, gen uint64, sp spans) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.spans.put(user, gen, sp)
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
