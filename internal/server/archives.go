package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"sandi.dev/internal/blob"
	"sandi.dev/internal/store"
)

// Account archives (api.md, Archives; protocol.md §14): a history transfer
// made for a newly linked device, or the account's encrypted backup. The
// ciphertext goes to the blob store in one request, streamed part by part;
// it is bound to the uploading account, and only that account's devices
// can list, fetch or delete it. The server never reads it.

// Archive limits.
const (
	// KeepTransfers is how many transfer archives an account keeps: a new
	// one replaces the oldest beyond it.
	KeepTransfers = 2
	// TransferTTL is how long a transfer archive is served.
	TransferTTL = 24 * time.Hour
	// MaxBackupSegments is how many segments (PUT
	// /api/archives/segment) an account's backup holds after its base: one
	// more is refused (413 quota_exceeded). A client re-bases (uploads a
	// whole backup, which replaces every part) before that.
	MaxBackupSegments = 32
	// BackupTotalBlobs bounds the bytes of all parts of an account's
	// backup, in the server's largest blobs: a segment past it is refused
	// (413 quota_exceeded; the client re-bases).
	BackupTotalBlobs = 3
)

// segmentKind is the route kind of a backup's segment; it is stored as
// a part of the account's backup (store.ArchiveBackup).
const segmentKind = "segment"

var errNoArchive = problem(http.StatusNotFound, CodeNotFound, "no such archive", nil)

type archiveInfo struct {
	ID        string `json:"id"`
	Kind      string `json:"kind"`
	Size      int64  `json:"size"`
	CreatedAt int64  `json:"createdAt"`
}

func archiveInfoOf(a store.Archive) archiveInfo {
	return archiveInfo{ID: a.ID, Kind: a.Kind, Size: a.Size, CreatedAt: a.CreatedAt}
}

// putArchive stores the body (Content-Length bytes, at most MaxBlobSize)
// as a new archive of the caller's account; a backup replaces the
// account's backup (every part of it), a segment adds a part to it, a
// transfer replaces the oldest transfer past KeepTransfers.
func (s *Server) putArchive(w http.ResponseWriter, r *http.Request, c *call) error {
	if s.cfg.Blobs == nil {
		return blobsOff
	}
	kind, keep := r.PathValue("kind"), 1
	switch kind {
	case store.ArchiveBackup:
	case store.ArchiveTransfer:
		keep = KeepTransfers
	case segmentKind:
		kind, keep = store.ArchiveBackup, 1+MaxBackupSegments
	default:
		return problem(http.StatusNotFound, CodeNotFound, "an archive is a backup, a segment of one or a transfer", nil)
	}
	size := r.ContentLength
	if size < 1 {
		return badRequest("the body is the archive's ciphertext, with its Content-Length", nil)
	}
	if size > s.cfg.MaxBlobSize {
		return s.refuse(problem(http.StatusRequestEntityTooLarge, CodeBlobTooLarge, fmt.Sprintf("an archive has at most %d bytes", s.cfg.MaxBlobSize), nil))
	}
	if r.PathValue("kind") == segmentKind {
		if err := s.segmentRoom(r, c, size); err != nil {
			return err
		}
	}
	if err := s.blobRate.allow(c.device.ID.String()); err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	deadline := time.Now().Add(s.cfg.BlobTransferTimeout)
	rc.SetReadDeadline(deadline)
	rc.SetWriteDeadline(deadline.Add(time.Minute))
	a := store.Archive{ID: newBlobID(), User: c.user(), Kind: kind, Size: size, CreatedAt: s.now()}
	state, err := s.cfg.Blobs.Begin(r.Context(), a.ID)
	if err != nil {
		return s.blobErr(r, err)
	}
	drop := func() {
		if err := s.cfg.Blobs.Delete(r.Context(), a.ID, state); err != nil {
			s.log.Warn("archive: delete a refused upload", "archive", a.ID, "err", err)
		}
	}
	body := &blobReader{r: http.MaxBytesReader(w, r.Body, size)}
	parts := partsOf(size)
	for n := 0; n < parts; n++ {
		want := partLen(size, n)
		if state, err = s.cfg.Blobs.WritePart(r.Context(), a.ID, state, n, io.LimitReader(body, want), want); err != nil {
			drop()
			if body.err != nil || errors.Is(err, io.ErrUnexpectedEOF) {
				return badRequest(fmt.Sprintf("the body ended before its %d bytes", size), err)
			}
			return s.blobErr(r, err)
		}
	}
	if err := s.cfg.Blobs.Commit(r.Context(), a.ID, state, parts, size); err != nil {
		drop()
		return s.blobErr(r, err)
	}
	// The object first, then its row: a crash between them leaves an
	// object no row names, which the orphan sweep deletes.
	dropped, err := s.store.PutArchive(r.Context(), a, keep)
	if err != nil {
		drop()
		return err
	}
	for _, id := range dropped {
		if err := s.cfg.Blobs.Delete(r.Context(), id, ""); err != nil {
			s.log.Warn("archive: delete a replaced archive (the orphan sweep will)", "archive", id, "err", err)
		}
	}
	s.metrics.blobBytes.Add(float64(size))
	s.writeJSON(w, http.StatusCreated, archiveInfoOf(a))
	return nil
}

// segmentRoom refuses a segment of a backup the account does not have
// (404 not_found), and one that would take the backup past
// MaxBackupSegments segments or its parts past BackupTotalBlobs of the
// largest blobs (413 quota_exceeded).
func (s *Server) segmentRoom(r *http.Request, c *call, size int64) error {
	all, err := s.store.AccountArchives(r.Context(), c.user())
	if err != nil {
		return err
	}
	parts, total := 0, size
	for _, a := range all {
		if a.Kind == store.ArchiveBackup {
			parts++
			total += a.Size
		}
	}
	if parts == 0 {
		return problem(http.StatusNotFound, CodeNotFound, "this account has no backup to add a segment to: upload a whole backup first", nil)
	}
	if parts > MaxBackupSegments {
		return s.refuse(problem(http.StatusRequestEntityTooLarge, CodeQuotaExceeded, fmt.Sprintf("a backup holds at most %d segments: upload a whole backup instead", MaxBackupSegments), nil))
	}
	if total > BackupTotalBlobs*s.cfg.MaxBlobSize {
		return s.refuse(problem(http.StatusRequestEntityTooLarge, CodeQuotaExceeded, fmt.Sprintf("the parts of a backup hold at most %d bytes: upload a whole backup instead", BackupTotalBlobs*s.cfg.MaxBlobSize), nil))
	}
	return nil
}

// ownArchive returns the live archive named by the path if the caller's
// account made it; anything else is 404.
func (s *Server) ownArchive(r *http.Request, c *call) (store.Archive, error) {
	if s.cfg.Blobs == nil {
		return store.Archive{}, blobsOff
	}
	id := r.PathValue("archive")
	if !validBlobID(id) {
		return store.Archive{}, errNoArchive
	}
	a, err := s.store.Archive(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) || err == nil && (a.User != c.user() || s.archiveExpired(a)) {
		return a, errNoArchive
	}
	return a, err
}

func (s *Server) archiveExpired(a store.Archive) bool {
	return a.Kind == store.ArchiveTransfer && a.CreatedAt+TransferTTL.Milliseconds() <= s.now()
}

func (s *Server) listArchives(w http.ResponseWriter, r *http.Request, c *call) error {
	as, err := s.store.AccountArchives(r.Context(), c.user())
	if err != nil {
		return err
	}
	out := []archiveInfo{}
	for _, a := range as {
		if !s.archiveExpired(a) {
			out = append(out, archiveInfoOf(a))
		}
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"archives": out})
	return nil
}

func (s *Server) getArchive(w http.ResponseWriter, r *http.Request, c *call) error {
	a, err := s.ownArchive(r, c)
	if err != nil {
		return err
	}
	rd, err := s.cfg.Blobs.Open(r.Context(), a.ID, 0, -1)
	if errors.Is(err, blob.ErrNotFound) {
		return errNoArchive
	}
	if err != nil {
		return err
	}
	defer rd.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(a.Size, 10))
	h.Set("Cache-Control", "private, no-store")
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.cfg.BlobTransferTimeout))
	w.WriteHeader(http.StatusOK)
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	if _, err := io.CopyBuffer(w, rd, *buf); err != nil {
		s.log.Debug("archive: download cut short", "archive", a.ID, "err", err)
	}
	return nil
}

func (s *Server) deleteArchive(w http.ResponseWriter, r *http.Request, c *call) error {
	a, err := s.ownArchive(r, c)
	if err != nil {
		return err
	}
	if err := s.store.DeleteArchive(r.Context(), a.ID, c.user()); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errNoArchive
		}
		return err
	}
	if err := s.cfg.Blobs.Delete(r.Context(), a.ID, ""); err != nil {
		s.log.Warn("archive: delete (the orphan sweep will)", "archive", a.ID, "err", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
