package client

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"

	"sandi.dev/protocol/archive"
)

// Incremental backups (protocol.md §14.4): after a whole backup (the
// base), a backup uploads only what changed since the previous part, as a
// segment chained to it: a record that grew (a history) is sent as what
// was appended, one that changed otherwise whole, one that is gone as a
// delete. The device keeps an index of what the backup holds (each key's
// length and SHA-256) to find the changes. A whole backup is made again
// (a re-base, replacing every part on the server) when the segments would
// pass MaxBackupSegments or hold more bytes than the base.

// MaxBackupSegments is the most segments a device chains to a base before
// it re-bases (the server refuses more than 32).
const MaxBackupSegments = 16

// indexEntry is what the backup holds of one key.
type indexEntry struct {
	N int64 `json:"n"` // value length
	H b64   `json:"h"` // SHA-256 of the value
}

// errRebase: the backup cannot be extended (the server no longer holds
// the chain as this device left it, or refused a segment): make a whole
// backup.
var errRebase = errors.New("the backup needs a whole upload")

// backupIndex indexes what this device would back up now.
func (c *Client) backupIndex() (map[string]indexEntry, error) {
	idx := map[string]indexEntry{}
	err := c.eachArchived(archive.Backup, func(k string, v []byte) error {
		idx[k] = indexOf(v)
		return nil
	})
	return idx, err
}

func indexOf(v []byte) indexEntry {
	h := sha256.Sum256(v)
	return indexEntry{N: int64(len(v)), H: h[:]}
}

// backupChanges returns the segment records that take a backup indexed
// as old to this device's state, in key order, and the new index.
func (c *Client) backupChanges(old map[string]indexEntry) ([]archive.Record, map[string]indexEntry, error) {
	var recs []archive.Record
	idx := map[string]indexEntry{}
	err := c.eachArchived(archive.Backup, func(k string, v []byte) error {
		now := indexOf(v)
		idx[k] = now
		e, ok := old[k]
		switch {
		case ok && e.N == now.N && bytes.Equal(e.H, now.H):
		case ok && e.N > 0 && e.N < now.N && bytes.Equal(indexOf(v[:e.N]).H, e.H):
			recs = append(recs, archive.Record{Key: k, Value: archive.SegmentValue(archive.OpAppend, v[e.N:])})
		default:
			recs = append(recs, archive.Record{Key: k, Value: archive.SegmentValue(archive.OpPut, v)})
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	for k := range old {
		if _, ok := idx[k]; !ok {
			recs = append(recs, archive.Record{Key: k, Value: archive.SegmentValue(archive.OpDelete, nil)})
		}
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Key < recs[j].Key })
	return recs, idx, nil
}

// uploadSegment uploads what changed since the backup's last part as a
// segment chained to it, or nothing if nothing changed; errRebase when
// the chain cannot be extended. The caller holds c.mu.
func (c *Client) uploadSegment(ctx context.Context, s *backupState, k archive.RecoveryKey) error {
	if s.ID == "" || s.Index == nil || len(s.Digest) != sha256.Size || len(s.Segs) >= MaxBackupSegments || s.SegSize > s.BaseSize {
		return errRebase
	}
	// The server must still hold the chain this device left; parts it
	// holds beyond (an upload whose answer was lost) are deleted, so that
	// no two parts claim one place.
	refs, err := c.archives(ctx)
	if err != nil {
		return err
	}
	mine := map[string]bool{s.ID: true}
	for _, id := range s.Segs {
		mine[id] = true
	}
	var others []string
	for _, r := range refs {
		if r.Kind != "backup" {
			continue
		}
		if mine[r.ID] {
			delete(mine, r.ID)
		} else {
			others = append(others, r.ID)
		}
	}
	if len(mine) > 0 {
		// A re-base replaces every part; until it is stored, the parts
		// listed (another device's backup) stay.
		return errRebase
	}
	for _, id := range others {
		if err := c.api.do(ctx, "DELETE", "/api/archives/"+id, nil, nil); err != nil && !IsCode(err, "not_found") {
			return err
		}
	}
	recs, idx, err := c.backupChanges(s.Index)
	if err != nil {
		return err
	}
	created := c.now().UnixMilli()
	if len(recs) == 0 {
		s.Last = created
		return c.saveBackupState(s)
	}
	l := archive.Link{Seq: uint32(len(s.Segs) + 1)}
	copy(l.Prev[:], s.Digest)
	salt := make([]byte, archive.SaltSize)
	rand.Read(salt) // never fails (crypto/rand)
	header, fileKey, err := k.SegmentHeader(c.acct.User, salt, l)
	if err != nil {
		return err
	}
	defer clear(fileKey)
	ref, digest, err := c.uploadSealed(ctx, header, fileKey, "segment", func(w io.Writer) error {
		aw, err := archive.NewWriter(w, archive.Header{Kind: archive.Segment, User: c.acct.User, Created: created})
		if err != nil {
			return err
		}
		for _, r := range recs {
			if err := aw.Add(r.Key, r.Value); err != nil {
				return err
			}
		}
		return aw.Close()
	})
	if IsCode(err, "quota_exceeded") || IsCode(err, "not_found") {
		return errRebase
	}
	if err != nil {
		return err
	}
	s.Segs = append(s.Segs, ref.ID)
	s.Digest, s.SegSize, s.Index, s.Last = digest[:], s.SegSize+ref.Size, idx, created
	return c.saveBackupState(s)
}

// backupPart is one part of the account's backup on the server, as a
// restore reads it.
type backupPart struct {
	id      string
	header  []byte
	fileKey []byte
	link    archive.Link // zero for the base
	created int64        // from inside the part, once checked
}

// backupParts fetches the header of every part of the account's backup
// and opens it under k: the base, then the segments in chain order. A
// missing or repeated segment, a second base or a part of another key is
// the server's doing (ErrBackupCorrupt, and an alarm); a base that k does
// not open is ErrWrongRecoveryKey.
func (c *Client) backupParts(ctx context.Context, k archive.RecoveryKey, refs []archiveRef) ([]*backupPart, error) {
	var base *backupPart
	var segs []*backupPart
	for _, r := range refs {
		if r.Kind != "backup" {
			continue
		}
		rc, _, err := c.fetchArchive(ctx, r.ID)
		if err != nil {
			return nil, err
		}
		// The first byte tells a base (version 1) from a segment.
		header := make([]byte, archive.SegmentHeaderSize)
		_, err = io.ReadFull(rc, header[:1])
		if err == nil {
			if header[0] != archive.SegmentVersion {
				header = header[:archive.BackupHeaderSize]
			}
			_, err = io.ReadFull(rc, header[1:])
		}
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("%w: a part too short for its header: %v", ErrBackupCorrupt, err)
		}
		p := &backupPart{id: r.ID, header: header}
		if header[0] == archive.SegmentVersion {
			segs = append(segs, p)
			continue
		}
		if base != nil {
			return nil, c.brokenChain("the server serves two whole backups of the account")
		}
		base = p
	}
	if base == nil {
		if len(segs) > 0 {
			return nil, c.brokenChain("the server serves segments of a backup without its base")
		}
		return nil, ErrNoBackup
	}
	var err error
	base.fileKey, err = k.OpenBackupHeader(c.acct.User, base.header)
	if errors.Is(err, archive.ErrBackupHeader) {
		return nil, fmt.Errorf("%w: %v", ErrBackupCorrupt, err)
	}
	if err != nil {
		return nil, err
	}
	for _, p := range segs {
		if p.link, p.fileKey, err = k.OpenSegmentHeader(c.acct.User, p.header); err != nil {
			return nil, c.brokenChain(fmt.Sprintf("a segment of the backup does not open under its recovery key (%v)", err))
		}
	}
	slices.SortFunc(segs, func(a, b *backupPart) int { return cmp.Compare(a.link.Seq, b.link.Seq) })
	for i, p := range segs {
		if p.link.Seq != uint32(i+1) {
			return nil, c.brokenChain(fmt.Sprintf("segment %d of the backup is missing or repeated (the server serves segments %v)", i+1, seqs(segs)))
		}
	}
	return append([]*backupPart{base}, segs...), nil
}

func seqs(ps []*backupPart) []uint32 {
	var out []uint32
	for _, p := range ps {
		out = append(out, p.link.Seq)
	}
	return out
}

// brokenChain raises the alarm of a backup whose parts do not make one
// chain and returns ErrBackupCorrupt.
func (c *Client) brokenChain(detail string) error {
	err := fmt.Errorf("%w: %s", ErrBackupCorrupt, detail)
	return errors.Join(err, c.raise(Alarm{Kind: AlarmServerData, Severity: SeverityWarning, Detail: "Restore: " + detail + "; nothing was restored."}))
}

// checkParts reads every part through (nothing written), in chain order:
// each must decrypt and decode whole, and each segment must name the
// SHA-256 of the part before it as served (checkArchive compares each
// part's digest with the next one's prev). check sees every record of
// the base (as a put) and every segment record's operation.
func (c *Client) checkParts(ctx context.Context, parts []*backupPart, check func(key string, op archive.SegmentOp, value []byte) error) error {
	for i, p := range parts {
		var next []byte
		if i+1 < len(parts) {
			next = parts[i+1].link.Prev[:]
		}
		rc, _, err := c.fetchArchive(ctx, p.id)
		if err != nil {
			return err
		}
		hdr, err := c.checkArchive(rc, len(p.header), p.fileKey, next, p.kind(), func(rec archive.Record) error {
			if i == 0 {
				return check(rec.Key, archive.OpPut, rec.Value)
			}
			op, data, err := archive.ParseSegmentValue(rec.Value)
			if err != nil {
				return err
			}
			return check(rec.Key, op, data)
		})
		rc.Close()
		if errors.Is(err, errArchiveDigest) {
			return c.brokenChain(fmt.Sprintf("segment %d of the backup does not follow the part before it (a part of another backup)", parts[i+1].link.Seq))
		}
		if err != nil {
			return err
		}
		p.created = hdr.Created
	}
	return nil
}

func (p *backupPart) kind() archive.Kind {
	if p.link.Seq == 0 {
		return archive.Backup
	}
	return archive.Segment
}

func (p *backupPart) open(c *Client) archiveSource {
	return func(ctx context.Context) (io.ReadCloser, error) {
		rc, _, err := c.fetchArchive(ctx, p.id)
		return rc, err
	}
}

// stageSegmentRecord applies a segment's record to the import under way:
// a put stages the value, an append adds to the staged (or held) value, a
// delete drops the staged value. The caller holds c.mu.
func (c *Client) stageSegmentRecord(rec archive.Record) error {
	if rec.Key == identityRecord {
		return nil // handled by the restore
	}
	op, data, err := archive.ParseSegmentValue(rec.Value)
	if err != nil {
		return err
	}
	switch op {
	case archive.OpPut:
		return c.st.Put(importStage+rec.Key, data)
	case archive.OpAppend:
		have, err := c.st.Get(importStage + rec.Key)
		if errors.Is(err, ErrNoValue) {
			have, err = c.st.Get(rec.Key)
		}
		if err != nil && !errors.Is(err, ErrNoValue) {
			return err
		}
		return c.st.Put(importStage+rec.Key, append(have, data...))
	}
	return c.st.Delete(importStage + rec.Key)
}

// importParts imports every part, checked by checkParts, all or nothing:
// each is read again and staged (the base with importRecord, the segments
// with stageSegmentRecord), and the import commits only once all went
// through. first is called before the first record is staged.
func (c *Client) importParts(ctx context.Context, parts []*backupPart, first func() error) error {
	return c.importStaged(func() error {
		if err := first(); err != nil {
			return err
		}
		for i, p := range parts {
			apply := c.stageSegmentRecord
			if i == 0 {
				apply = c.importRecord
			}
			hdr := archive.Header{Kind: p.kind(), User: c.acct.User, Created: p.created}
			if err := c.stageArchive(ctx, p.open(c), len(p.header), p.fileKey, p.kind(), hdr, apply); err != nil {
				return err
			}
		}
		return nil
	})
}
