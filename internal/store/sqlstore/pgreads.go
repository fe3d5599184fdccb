package sqlstore

import (
	"sync"
	"sync/atomic"
	"time"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// pgReads is what a PostgreSQL store remembers of the two reads every
// authenticated request makes: token → device, and a conversation's
// members. Without it each request pays two round trips before its own
// work, which on a busy server is most of PostgreSQL's CPU per send.
//
// Unlike SQLite's memo, the store is not its database's only user: other
// servers (or tools) may write the same database. So:
//
//   - A write made through this store forgets every answer once it has
//     ended (the generation scheme of memo: an answer read while a write
//     was under way is never kept), and TouchToken forgets its token's.
//     On one server the answers are therefore exact, as on SQLite.
//   - An answer is used for at most pgReadTTL after it was read: a
//     write by another server (a logout, a revoked device, a removed
//     member) takes effect here within that time.
//
// Sends never rely on these answers alone: the send transaction checks the
// device and the membership again under the conversation's lock.
type pgReads struct {
	ttl     time.Duration
	gen     atomic.Uint64
	mu      sync.Mutex
	tokens  readEntries[string, pgRead[store.Device]]
	members readEntries[protocol.ConversationID, pgRead[[]store.MemberRow]]
}

// pgRead is an answer with the time it was read (readEntries keeps its
// generation).
type pgRead[V any] struct {
	at time.Time
	v  V
}

// pgReadTTL bounds how long a PostgreSQL store uses an answer read
// before: the time a write made by another server sharing the database
// may take to be seen here.
var pgReadTTL = 2 * time.Second

func newPGReads(ttl time.Duration) *pgReads {
	return &pgReads{ttl: ttl}
}

// pgLookup returns k's answer in *m (guarded by r.mu) if it was read at
// the current generation less than ttl ago.
func pgLookup[K comparable, V any](r *pgReads, m *readEntries[K, pgRead[V]], k K) (V, bool) {
	r.mu.Lock()
	e, ok := m.get(k, r.gen.Load())
	r.mu.Unlock()
	if !ok || time.Since(e.at) >= r.ttl {
		var zero V
		return zero, false
	}
	return e.v, true
}

// pgRemember records k's answer, read at generation gen (loaded before the
// read began) and time at (taken before it too).
func pgRemember[K comparable, V any](r *pgReads, m *readEntries[K, pgRead[V]], k K, gen uint64, at time.Time, v V) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m.put(k, gen, pgRead[V]{at, v})
}

func (r *pgReads) device(tokenHash []byte) (store.Device, bool) {
	if r == nil {
		return store.Device{}, false
	}
	return pgLookup(r, &r.tokens, string(tokenHash))
}

func (r *pgReads) putDevice(tokenHash []byte, gen uint64, at time.Time, d store.Device) {
	if r != nil {
		pgRemember(r, &r.tokens, string(tokenHash), gen, at, d)
	}
}

func (r *pgReads) memberRows(id protocol.ConversationID) ([]store.MemberRow, bool) {
	if r == nil {
		return nil, false
	}
	return pgLookup(r, &r.members, id)
}

func (r *pgReads) putMembers(id protocol.ConversationID, gen uint64, at time.Time, ms []store.MemberRow) {
	if r != nil {
		pgRemember(r, &r.members, id, gen, at, ms)
	}
}

// forgetDevice drops one token's answer.
func (r *pgReads) forgetDevice(tokenHash []byte) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.tokens, string(tokenHash))
}

// invalidate forgets every answer, after a write has ended.
func (r *pgReads) invalidate() {
	if r == nil {
		return
	}
	r.gen.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tokens, r.members = nil, nil
}

// ForgetReads forgets every remembered answer. A node of a cluster calls
// it when another node announces a write that may change them (a revoked
// device, a change of members), so that it takes effect here at once
// rather than within pgReadTTL.
func (s *Store) ForgetReads() { s.pgr.invalidate() }

// ForgetToken forgets the answer for one token, and ForgetMembers the
// members of one conversation: a node of a cluster about to refuse a
// request on a remembered answer reads it again first, since a write
// through another node may have changed it a moment ago.
func (s *Store) ForgetToken(tokenHash []byte) { s.pgr.forgetDevice(tokenHash) }

// ForgetMembers: see ForgetToken.
func (s *Store) ForgetMembers(id protocol.ConversationID) {
	if r := s.pgr; r != nil {
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(r.members, id)
	}
}
