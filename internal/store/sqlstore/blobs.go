package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// The blob rows' writes keep the memo (writeTx with invalidate false):
// they touch none of the tables it remembers (conversations' counters,
// members, devices, events), so an upload does not slow the sends. On
// SQLite, whose one writer runs one transaction (and one disk sync) at a
// time, they also go one at a time (blobWrite): however many uploads run,
// a batch of sends waits for one blob write at most, not for a queue of
// them.
func (s *Store) blobWrite(ctx context.Context, what string, fn func(t *wtx) error) error {
	if s.d.local {
		s.blobMu.Lock()
		defer s.blobMu.Unlock()
	}
	return s.writeTx(ctx, what, false, fn)
}

const blobCols = `id, conversation_id, user_id, device_id, size, parts, received, state, complete, referenced, deleted, created_at, expires_at, COALESCE(completed_at, 0)`

func scanBlob(r scanner) (store.Blob, error) {
	var b store.Blob
	err := r.Scan(&b.ID, scanID(&b.Conversation), scanID(&b.User), scanID(&b.Device), &b.Size, &b.Parts, &b.Received, &b.State,
		&b.Complete, &b.Referenced, &b.Deleted, &b.CreatedAt, &b.ExpiresAt, &b.CompletedAt)
	return b, err
}

// CreateBlob implements store.Blobs. The account's usage row is written
// first (an upsert, which locks it): the quota check reads the counts
// after this upload, and a refusal rolls the whole transaction back.
func (s *Store) CreateBlob(ctx context.Context, b store.Blob, lim store.BlobLimits) error {
	if b.Size <= 0 || b.Parts <= 0 {
		return fmt.Errorf("sqlstore: create blob: %w: size %d, %d parts", store.ErrInvalid, b.Size, b.Parts)
	}
	return s.blobWrite(ctx, "create blob", func(t *wtx) error {
		var bytes int64
		var open int
		err := t.queryRow(`INSERT INTO blob_usage (user_id, bytes, open_uploads) VALUES (?, ?, 1)
			ON CONFLICT (user_id) DO UPDATE SET bytes = blob_usage.bytes + excluded.bytes, open_uploads = blob_usage.open_uploads + 1
			RETURNING bytes, open_uploads`, idArg(b.User), b.Size).Scan(&bytes, &open)
		if err != nil {
			return err
		}
		if lim.MaxOpen > 0 && open > lim.MaxOpen {
			return store.ErrTooManyUploads
		}
		if lim.Quota > 0 && bytes > lim.Quota {
			return store.ErrBlobQuota
		}
		res, err := t.exec(`INSERT INTO blobs (id, conversation_id, user_id, device_id, size, parts, received, state, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			b.ID, idArg(b.Conversation), idArg(b.User), idArg(b.Device), b.Size, b.Parts, make([]byte, (b.Parts+7)/8), b.State, b.CreatedAt, b.ExpiresAt)
		if err != nil {
			return err
		}
		return oneRow(res, store.ErrConflict, "blob id taken")
	})
}

// Blob implements store.Blobs.
func (s *Store) Blob(ctx context.Context, id string) (store.Blob, error) {
	b, err := scanBlob(s.queryRow(ctx, `SELECT `+blobCols+` FROM blobs WHERE id = ?`, id))
	if err != nil {
		return b, fmt.Errorf("sqlstore: blob: %w", notFound(err, "blob"))
	}
	return b, nil
}

// lockBlob reads and locks a blob's row; a tombstone is ErrNotFound.
func (t *wtx) lockBlob(id string) (store.Blob, error) {
	b, err := scanBlob(t.queryRow(`SELECT `+blobCols+` FROM blobs WHERE id = ?`+t.lockSuffix(), id))
	if err != nil {
		return b, notFound(err, "blob")
	}
	if b.Deleted {
		return b, fmt.Errorf("blob deleted: %w", store.ErrNotFound)
	}
	return b, nil
}

// SetBlobPart implements store.Blobs. On SQLite the parts marked at the
// same time are marked together, in one transaction (group commit, as
// sends are): concurrent uploads then cost a disk sync per batch of parts,
// not one per part, and leave the writer to the sends sooner.
func (s *Store) SetBlobPart(ctx context.Context, id string, n int, received bool, state string) error {
	r := &partMark{id: id, n: n, received: received, state: state, done: make(chan error, 1)}
	if !s.d.local {
		err := s.blobWrite(ctx, "set blob part", func(t *wtx) error {
			return t.markParts([]*partMark{r})
		})
		if err != nil {
			return err
		}
		return r.err
	}
	s.parts.mu.Lock()
	s.parts.queue = append(s.parts.queue, r)
	lead := !s.parts.busy
	s.parts.busy = true
	s.parts.mu.Unlock()
	if lead {
		s.markQueued()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err() // the part may still be marked
	}
}

// partMark is one SetBlobPart; done gets its outcome.
type partMark struct {
	id       string
	n        int
	received bool
	state    string
	done     chan error
	err      error
}

// partQueue holds the SetBlobPart calls waiting for the writer (SQLite).
type partQueue struct {
	mu    sync.Mutex
	queue []*partMark
	busy  bool // a goroutine is marking; it takes what is queued next
}

// markQueued marks every queued part in one transaction; if more came
// meanwhile, another goroutine marks them (so that no caller waits for
// others' batches after its own).
func (s *Store) markQueued() {
	s.parts.mu.Lock()
	batch := s.parts.queue
	s.parts.queue = nil
	s.parts.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	err := s.blobWrite(ctx, "set blob parts", func(t *wtx) error { return t.markParts(batch) })
	cancel()
	for _, r := range batch {
		if err != nil {
			r.done <- err
		} else {
			r.done <- r.err
		}
	}
	s.parts.mu.Lock()
	if len(s.parts.queue) == 0 {
		s.parts.busy = false
	} else {
		go s.markQueued()
	}
	s.parts.mu.Unlock()
}

// markParts applies the marks in order, each blob read once and written
// once. A mark refused by its blob's state gets its error in err and does
// not abort the others.
func (t *wtx) markParts(marks []*partMark) error {
	blobs := map[string]*store.Blob{}
	var order []string
	for _, r := range marks {
		r.err = nil
		b, seen := blobs[r.id]
		if !seen {
			got, err := t.lockBlob(r.id)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if err == nil {
				b = &got
				order = append(order, r.id)
			}
			blobs[r.id] = b
		}
		switch {
		case b == nil:
			r.err = fmt.Errorf("blob: %w", store.ErrNotFound)
		case b.Complete:
			r.err = store.ErrBlobComplete
		case r.n < 0 || r.n >= b.Parts || len(b.Received) != (b.Parts+7)/8:
			r.err = fmt.Errorf("part %d of %d: %w", r.n, b.Parts, store.ErrNotFound)
		case r.received:
			b.Received[r.n/8] |= 1 << (r.n % 8)
			b.State = r.state
		default:
			b.Received[r.n/8] &^= 1 << (r.n % 8)
			b.State = r.state
		}
	}
	for _, id := range order {
		b := blobs[id]
		if _, err := t.exec(`UPDATE blobs SET received = ?, state = ? WHERE id = ?`, b.Received, b.State, id); err != nil {
			return err
		}
	}
	return nil
}

// CompleteBlob implements store.Blobs.
func (s *Store) CompleteBlob(ctx context.Context, id string, now, expiresAt int64) error {
	return s.blobWrite(ctx, "complete blob", func(t *wtx) error {
		b, err := t.lockBlob(id)
		if err != nil || b.Complete {
			return err
		}
		if len(b.Missing()) > 0 {
			return store.ErrBlobIncomplete
		}
		if _, err := t.exec(`UPDATE blobs SET complete = TRUE, completed_at = ?, expires_at = ? WHERE id = ?`, now, expiresAt, id); err != nil {
			return err
		}
		_, err = t.exec(`UPDATE blob_usage SET open_uploads = open_uploads - 1 WHERE user_id = ?`, idArg(b.User))
		return err
	})
}

// DeleteBlob implements store.Blobs.
func (s *Store) DeleteBlob(ctx context.Context, id string, user protocol.UserID) (store.Blob, error) {
	var b store.Blob
	err := s.blobWrite(ctx, "delete blob", func(t *wtx) error {
		var err error
		if b, err = t.lockBlob(id); err != nil {
			return err
		}
		if b.User != user {
			return fmt.Errorf("blob of another account: %w", store.ErrNotFound)
		}
		b.Deleted = true
		return t.tombstone([]store.Blob{b})
	})
	return b, err
}

// tombstone marks locked, live blobs deleted and releases their usage.
func (t *wtx) tombstone(bs []store.Blob) error {
	for _, b := range bs {
		if _, err := t.exec(`UPDATE blobs SET deleted = TRUE WHERE id = ?`, b.ID); err != nil {
			return err
		}
		open := 1
		if b.Complete {
			open = 0
		}
		if _, err := t.exec(`UPDATE blob_usage SET bytes = bytes - ?, open_uploads = open_uploads - ? WHERE user_id = ?`, b.Size, open, idArg(b.User)); err != nil {
			return err
		}
	}
	return nil
}

// ExpireBlobs implements store.Blobs. The rows are locked as they are
// selected, so a send that references one of them either commits first
// (and the blob is no longer selected) or waits and finds a tombstone.
func (s *Store) ExpireBlobs(ctx context.Context, now int64, limit int) (int, error) {
	var n int
	err := s.blobWrite(ctx, "expire blobs", func(t *wtx) error {
		n = 0
		expired, err := t.query(`SELECT `+blobCols+` FROM blobs WHERE NOT referenced AND NOT deleted AND expires_at <= ? ORDER BY expires_at LIMIT ?`+t.lockSuffix(), now, limit)
		if err != nil {
			return err
		}
		bs, err := collect(expired, scanBlob)
		if err != nil {
			return err
		}
		if len(bs) < limit {
			orphaned, err := t.query(`SELECT `+blobCols+` FROM blobs b WHERE referenced AND NOT deleted AND NOT EXISTS (
				SELECT 1 FROM blob_refs r JOIN messages m ON m.conversation_id = r.conversation_id AND m.seq = r.seq WHERE r.blob_id = b.id)
				ORDER BY id LIMIT ?`+t.lockSuffix(), limit-len(bs))
			if err != nil {
				return err
			}
			more, err := collect(orphaned, scanBlob)
			if err != nil {
				return err
			}
			bs = append(bs, more...)
		}
		n = len(bs)
		return t.tombstone(bs)
	})
	return n, err
}

// DeletedBlobs implements store.Blobs.
func (s *Store) DeletedBlobs(ctx context.Context, limit int) ([]store.Blob, error) {
	rows, err := s.query(ctx, `SELECT `+blobCols+` FROM blobs WHERE deleted ORDER BY id LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: deleted blobs: %w", err)
	}
	return collect(rows, scanBlob)
}

// PurgeBlob implements store.Blobs.
func (s *Store) PurgeBlob(ctx context.Context, id string) error {
	return s.blobWrite(ctx, "purge blob", func(t *wtx) error {
		var deleted bool
		if err := t.queryRow(`SELECT deleted FROM blobs WHERE id = ?`+t.lockSuffix(), id).Scan(&deleted); err != nil {
			return notFound(err, "blob")
		}
		if !deleted {
			return fmt.Errorf("blob not deleted: %w", store.ErrNotFound)
		}
		if _, err := t.exec(`DELETE FROM blob_refs WHERE blob_id = ?`, id); err != nil {
			return err
		}
		_, err := t.exec(`DELETE FROM blobs WHERE id = ?`, id)
		return err
	})
}

// BlobUsage implements store.Blobs.
func (s *Store) BlobUsage(ctx context.Context, user protocol.UserID) (int64, int, error) {
	var bytes int64
	var open int
	err := s.queryRow(ctx, `SELECT bytes, open_uploads FROM blob_usage WHERE user_id = ?`, idArg(user)).Scan(&bytes, &open)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("sqlstore: blob usage: %w", err)
	}
	return bytes, open, nil
}

// BlobRefs implements store.Blobs.
func (s *Store) BlobRefs(ctx context.Context, conv protocol.ConversationID, seq uint64) ([]string, error) {
	rows, err := s.query(ctx, `SELECT blob_id FROM blob_refs WHERE conversation_id = ? AND seq = ? ORDER BY blob_id`, idArg(conv), i64(seq))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: blob refs: %w", err)
	}
	return collect(rows, func(r scanner) (string, error) {
		var id string
		err := r.Scan(&id)
		return id, err
	})
}

// sendBlob is what a send checks of a blob it references.
type sendBlob struct {
	conv protocol.ConversationID
	user protocol.UserID
	ok   bool // complete, not deleted, and referenced already or not expired
}

// sendBlobs reads and locks, in id order, the blobs the batch's items
// reference (none, without a statement, for a batch of text messages).
func (t *wtx) sendBlobs(batch []store.Send) (map[string]sendBlob, error) {
	var ids []string
	var now int64
	for _, m := range batch {
		ids = append(ids, m.Blobs...)
		now = max(now, m.Now)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	out := make(map[string]sendBlob, len(ids))
	for part := range slices.Chunk(ids, idsPerStatement) {
		args := make([]any, 0, len(part)+1)
		args = append(args, now)
		for _, id := range part {
			args = append(args, id)
		}
		rows, err := t.query(`SELECT id, conversation_id, user_id, complete AND NOT deleted AND (referenced OR expires_at > ?) FROM blobs
			WHERE id IN `+placeholders(1, len(part))+` ORDER BY id`+t.lockSuffix(), args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id string
			var b sendBlob
			if err := rows.Scan(&id, scanID(&b.conv), scanID(&b.user), &b.ok); err != nil {
				rows.Close()
				return nil, err
			}
			out[id] = b
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// blobsOK reports whether every blob m references may be shared by it.
func blobsOK(m *store.Send, blobs map[string]sendBlob) bool {
	for _, id := range m.Blobs {
		b, found := blobs[id]
		if !found || !b.ok || b.conv != m.Conversation || b.user != m.SenderUser {
			return false
		}
	}
	return true
}

// blobRef is one reference a send writes.
type blobRef struct {
	blob string
	conv protocol.ConversationID
	seq  uint64
}

// referenceBlobs writes the references of the accepted messages and
// marks their blobs referenced (no longer collected on expiry).
func (t *wtx) referenceBlobs(refs []blobRef) error {
	if len(refs) == 0 {
		return nil
	}
	for part := range slices.Chunk(refs, rowsPerStatement) {
		args := make([]any, 0, 3*len(part))
		for _, r := range part {
			args = append(args, r.blob, idArg(r.conv), i64(r.seq))
		}
		if _, err := t.exec(`INSERT INTO blob_refs (blob_id, conversation_id, seq) VALUES `+placeholders(len(part), 3)+` ON CONFLICT DO NOTHING`, args...); err != nil {
			return err
		}
	}
	ids := make([]string, len(refs))
	for i, r := range refs {
		ids[i] = r.blob
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	for part := range slices.Chunk(ids, idsPerStatement) {
		args := make([]any, len(part))
		for i, id := range part {
			args[i] = id
		}
		if _, err := t.exec(`UPDATE blobs SET referenced = TRUE WHERE NOT referenced AND id IN `+placeholders(1, len(part)), args...); err != nil {
			return err
		}
	}
	return nil
}
