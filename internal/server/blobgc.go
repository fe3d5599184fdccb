package server

import (
	"context"
	"errors"
	"time"

	"sandi.dev/internal/store"
)

// Collection of attachment blobs. A blob goes when its unfinished upload
// expires (BlobUploadTTL), when no message referenced it within BlobRefTTL
// of its completion, when its account deletes it, or when none of the
// messages that referenced it remain. In that order, each step durable
// before the next: the row becomes a tombstone (never served again, its
// bytes no longer charged to the quota), the object is deleted from the
// blob store, the row is removed. A crash between steps leaves a
// tombstone, whose object the next pass deletes again; never a row that
// names a missing object and would be served.
//
// An object no row names (its upload began and the process stopped before
// the row was written) is deleted by the orphan sweep once it is a day
// old, on stores that can list their objects.

// collectBatch is how many blobs one step of a pass handles at a time.
const collectBatch = 100

// orphanAge is how old an object no row names must be before the sweep
// deletes it (older than any upload's first steps).
const orphanAge = 24 * time.Hour

// BlobWalker is a blob store that can list its objects and uploads (the
// file system's can): the orphan sweep needs it.
type BlobWalker interface {
	Walk(ctx context.Context, before time.Time, fn func(id string) error) error
}

// purge deletes a tombstone's object, then its row. A failure is logged
// and left to the next pass.
func (s *Server) purge(ctx context.Context, b store.Blob) bool {
	if err := s.cfg.Blobs.Delete(ctx, b.ID, b.State); err != nil {
		s.log.Warn("blob collection: delete object", "blob", b.ID, "err", err)
		return false
	}
	if err := s.store.PurgeBlob(ctx, b.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Warn("blob collection: remove row", "blob", b.ID, "err", err)
		return false
	}
	return true
}

// CollectBlobs runs one pass of the collection at the configured clock's
// now: it makes tombstones of the blobs to collect, deletes the objects
// of every tombstone and their rows, and sweeps the orphan objects. It
// returns how many blobs it deleted.
func (s *Server) CollectBlobs(ctx context.Context) (int, error) {
	if s.cfg.Blobs == nil {
		return 0, nil
	}
	for {
		n, err := s.store.ExpireBlobs(ctx, s.now(), collectBatch)
		if err != nil {
			return 0, err
		}
		s.metrics.blobsCollected.WithLabelValues("expired").Add(float64(n))
		if n < collectBatch {
			break
		}
	}
	deleted := 0
	for {
		dead, err := s.store.DeletedBlobs(ctx, collectBatch)
		if err != nil {
			return deleted, err
		}
		failed := 0
		for _, b := range dead {
			if s.purge(ctx, b) {
				deleted++
			} else {
				failed++
			}
		}
		if len(dead) < collectBatch || failed > 0 {
			break
		}
	}
	if w, ok := s.cfg.Blobs.(BlobWalker); ok {
		n, err := s.sweepOrphans(ctx, w)
		deleted += n
		if err != nil {
			return deleted, err
		}
	}
	if deleted > 0 {
		s.log.Info("blob collection", "deleted", deleted)
	}
	return deleted, nil
}

// sweepOrphans deletes the objects and uploads older than orphanAge that
// no row names.
func (s *Server) sweepOrphans(ctx context.Context, w BlobWalker) (int, error) {
	n := 0
	err := w.Walk(ctx, s.cfg.Now().Add(-orphanAge), func(id string) error {
		_, err := s.store.Blob(ctx, id)
		if !errors.Is(err, store.ErrNotFound) {
			return err // a row names it (nil), or the database failed
		}
		// An account archive's object has a row of its own.
		if _, err := s.store.Archive(ctx, id); !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err := s.cfg.Blobs.Delete(ctx, id, ""); err != nil {
			s.log.Warn("blob collection: delete orphan", "blob", id, "err", err)
			return nil
		}
		s.metrics.blobsCollected.WithLabelValues("orphan").Inc()
		n++
		return nil
	})
	return n, err
}

// RunBlobCollector runs CollectMessages and CollectBlobs now and then
// every interval until ctx ends (sandi serve runs it): the blobs of the
// messages that expired go in the same pass.
func (s *Server) RunBlobCollector(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := s.CollectMessages(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("message expiry", "err", err)
		}
		if _, err := s.CollectBlobs(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("blob collection", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
