package client

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"sandi.dev/protocol"
	"sandi.dev/protocol/archive"
	"sandi.dev/protocol/attach"
)

// Archives (protocol.md §14): what this device holds, written as storage
// records, encrypted with the attachment stream and kept on the server as
// an account archive (docs/api.md, Archives). A history transfer gives one
// to a newly linked device; a backup keeps one under a recovery key.

// archivedPrefixes are the storage keys an archive holds: conversations,
// membership chains, epoch states and their expiry marks, the history,
// device lists, pins (with verified flags) and contacts. The device's own
// keys (account, pre-keys), pending uploads, outbox and alarms stay.
var archivedPrefixes = []string{"chain/", "contact/", "conv/", "devicelist/", "epoch/", "expiry/", "history/", "pin/"}

// identityRecord is the storage key of the identity seed, in backups only.
const identityRecord = "identity"

// transferredKeys are held by a transfer archive only: the block list, its
// signed statements and the request state, which a linked device decides
// message requests with (§16.1, §16.2).
var transferredKeys = []string{blocksKey, blockStatementsKey, requestStateKey}

// optionalPrefix starts the keys of records that a later version may add
// and that a receiver which does not know them skips (protocol.md §14.1):
// a writer puts there only state whose absence leaves the receiver safe.
// This version writes none.
const optionalPrefix = "opt/"

func archived(key string, kind archive.Kind) bool {
	if key == pinsMarker || key == identityRecord && kind != archive.Transfer {
		return true
	}
	if kind == archive.Transfer && slices.Contains(transferredKeys, key) {
		return true
	}
	for _, p := range archivedPrefixes {
		if strings.HasPrefix(key, p) && len(key) > len(p) {
			return true
		}
	}
	return false
}

// HistoryAll, given as since, keeps the whole history in an archive.
const HistoryAll = int64(0)

// writeArchive writes this device's state as an archive of kind; of the
// history, only messages received at or after since (Unix ms) are kept.
// The caller holds c.mu.
func (c *Client) writeArchive(w io.Writer, kind archive.Kind, since int64) error {
	aw, err := archive.NewWriter(w, archive.Header{Kind: kind, User: c.acct.User, Created: c.now().UnixMilli()})
	if err != nil {
		return err
	}
	err = c.eachArchived(kind, func(k string, v []byte) error {
		if strings.HasPrefix(k, "history/") && since > 0 {
			v = historySince(v, since)
		}
		return aw.Add(k, v)
	})
	if err != nil {
		return err
	}
	return aw.Close()
}

// eachArchived calls fn with each record an archive of kind holds, in
// key order.
func (c *Client) eachArchived(kind archive.Kind, fn func(k string, v []byte) error) error {
	keys, err := c.st.List("")
	if err != nil {
		return err
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !archived(k, kind) {
			continue
		}
		v, err := c.st.Get(k)
		if errors.Is(err, ErrNoValue) {
			continue
		}
		if err != nil {
			return err
		}
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

// historySince keeps the lines of a stored history received at or after
// since.
func historySince(v []byte, since int64) []byte {
	var out []byte
	for _, line := range bytes.SplitAfter(v, []byte("\n")) {
		var m Message
		if json.Unmarshal(bytes.TrimSpace(line), &m) == nil && m.ReceivedAt >= since {
			out = append(out, line...)
		}
	}
	return out
}

// counter counts what is written through it.
type byteCounter struct{ n int64 }

func (b *byteCounter) Write(p []byte) (int, error) { b.n += int64(len(p)); return len(p), nil }

// archiveRef names an uploaded archive.
type archiveRef struct {
	ID        string `json:"id"`
	Kind      string `json:"kind"`
	Size      int64  `json:"size"`
	CreatedAt int64  `json:"createdAt"`
}

// uploadArchive writes an archive of kind, encrypted under fileKey behind
// prefix, to the server as an account archive of storeKind, streaming:
// the archive is written twice, once to learn its size and once into the
// request. It returns the archive's id and the SHA-256 of what was sent.
// The caller holds c.mu.
func (c *Client) uploadArchive(ctx context.Context, kind archive.Kind, since int64, prefix, fileKey []byte, storeKind string) (archiveRef, [32]byte, error) {
	return c.uploadSealed(ctx, prefix, fileKey, storeKind, func(w io.Writer) error { return c.writeArchive(w, kind, since) })
}

// uploadSealed uploads what write writes (called twice: once to learn
// the size, once into the request), encrypted under fileKey behind
// prefix, as an account archive of storeKind; it returns the archive's id
// and the SHA-256 of what was sent. The caller holds c.mu.
func (c *Client) uploadSealed(ctx context.Context, prefix, fileKey []byte, storeKind string, write func(io.Writer) error) (archiveRef, [32]byte, error) {
	var digest [32]byte
	var n byteCounter
	if err := write(&n); err != nil {
		return archiveRef{}, digest, err
	}
	size := int64(len(prefix)) + attach.EncryptedSize(n.n)
	pr, pw := io.Pipe()
	h := sha256.New()
	go func() {
		pw.CloseWithError(func() error {
			out := io.MultiWriter(pw, h)
			if _, err := out.Write(prefix); err != nil {
				return err
			}
			enc, err := attach.NewWriter(out, fileKey)
			if err != nil {
				return err
			}
			if err := write(enc); err != nil {
				return err
			}
			return enc.Close()
		}())
	}()
	defer pr.Close()
	req := newRequest(ctx, "PUT", c.api.base+"/api/archives/"+storeKind, pr)
	req.length = size
	req.header.set("Authorization", "Bearer "+c.api.token)
	req.header.set("Content-Type", "application/octet-stream")
	var ref archiveRef
	if err := c.archiveDo(req, &ref); err != nil {
		return archiveRef{}, digest, fmt.Errorf("upload the %s: %w", storeKind, err)
	}
	if ref.Size != size {
		return archiveRef{}, digest, fmt.Errorf("%w: the server stored %d bytes of a %d-byte archive", ErrServerMisbehaved, ref.Size, size)
	}
	copy(digest[:], h.Sum(nil))
	return ref, digest, nil
}

// archiveDo sends req and decodes a JSON answer into out (if not nil), or
// returns the problem.
func (c *Client) archiveDo(req *request, out any) error {
	hc := *c.api.http
	hc.Timeout = 0 // the request's context bounds it
	a := *c.api
	a.http = &hc
	resp, err := a.roundTrip(req)
	if err != nil {
		_, err = a.sendError(req.ctx, err)
		return err
	}
	defer resp.body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.body, 1<<20))
	if err != nil {
		return err
	}
	if resp.status >= 300 {
		_, perr := problem(resp, b)
		return perr
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

// fetchArchive GETs an account archive's ciphertext; the caller closes it.
func (c *Client) fetchArchive(ctx context.Context, id string) (io.ReadCloser, int64, error) {
	req := newRequest(ctx, "GET", c.api.base+"/api/archives/"+id, nil)
	req.header.set("Authorization", "Bearer "+c.api.token)
	hc := *c.api.http
	hc.Timeout = 0
	a := *c.api
	a.http = &hc
	resp, err := a.roundTrip(req)
	if err != nil {
		_, err = a.sendError(ctx, err)
		return nil, 0, err
	}
	if resp.status >= 300 {
		b, _ := io.ReadAll(io.LimitReader(resp.body, 1<<20))
		resp.body.Close()
		_, perr := problem(resp, b)
		return nil, 0, perr
	}
	return resp.body, resp.length, nil
}

// archiveSource opens an archive's ciphertext: the prefix (backup header)
// it read, and the attachment stream after it.
type archiveSource func(ctx context.Context) (io.ReadCloser, error)

// errArchiveDigest marks a ciphertext that is not the one sealed in the
// transfer offer.
var errArchiveDigest = errors.New("the archive the server serves is not the one the other device uploaded (its digest differs); nothing was imported")

// checkArchive reads an archive through, without keeping anything, and
// returns its header: the ciphertext's digest must be want (if not nil),
// the stream must decrypt under fileKey, the archive must parse strictly,
// be of kind and this account, and hold only archived keys.
func (c *Client) checkArchive(r io.Reader, skip int, fileKey []byte, want []byte, kind archive.Kind, check func(archive.Record) error) (archive.Header, error) {
	var h hash.Hash
	if want != nil {
		h = sha256.New()
		r = io.TeeReader(r, h)
	}
	if skip > 0 {
		if _, err := io.CopyN(io.Discard, r, int64(skip)); err != nil {
			return archive.Header{}, fmt.Errorf("read the archive: %w", err)
		}
	}
	if check == nil {
		check = func(archive.Record) error { return nil }
	}
	hdr, err := c.readArchive(r, fileKey, kind, check)
	if h != nil {
		// Drain what the reader left (nothing, for a well-formed stream),
		// so that the digest covers every byte served.
		if _, derr := io.Copy(io.Discard, r); derr != nil && err == nil {
			err = derr
		}
		if subtle.ConstantTimeCompare(h.Sum(nil), want) != 1 {
			return hdr, errArchiveDigest
		}
	}
	return hdr, err
}

// readArchive decrypts and parses an archive, calling fn for each record
// of an archived key, and returns its header.
func (c *Client) readArchive(r io.Reader, fileKey []byte, kind archive.Kind, fn func(archive.Record) error) (archive.Header, error) {
	dec, err := attach.NewReader(r, fileKey)
	if err != nil {
		return archive.Header{}, err
	}
	ar, hdr, err := archive.NewReader(dec)
	if err != nil {
		return hdr, err
	}
	if hdr.Kind != kind || hdr.User != c.acct.User {
		return hdr, fmt.Errorf("%w: an archive of kind %d for account %s, not of this account", archive.ErrFormat, hdr.Kind, hdr.User)
	}
	for {
		rec, err := ar.Next()
		if err == io.EOF {
			return hdr, nil
		}
		if err != nil {
			return hdr, err
		}
		if !archived(rec.Key, kind) {
			if strings.HasPrefix(rec.Key, optionalPrefix) {
				continue // a later version's optional record
			}
			return hdr, fmt.Errorf("%w: record %q is not archived state", archive.ErrFormat, rec.Key)
		}
		if err := fn(rec); err != nil {
			return hdr, err
		}
	}
}

// importRecord stages one archived record for the import under way: what
// the device does not hold is taken as is; a history is merged by
// message; a conversation the device already holds keeps its own but
// takes the archive's title and state if it has none; a pin of the same
// key takes the archive's verified flag; everything else the device holds
// stays. Nothing the device reads changes before commitImport.
// The caller holds c.mu.
func (c *Client) importRecord(rec archive.Record) error {
	if rec.Key == identityRecord {
		return nil // handled by the restore
	}
	if err := checkTransferred(rec, c.acct.User); err != nil {
		return err
	}
	have, err := c.st.Get(importStage + rec.Key)
	if errors.Is(err, ErrNoValue) {
		have, err = c.st.Get(rec.Key)
	}
	if errors.Is(err, ErrNoValue) {
		return c.st.Put(importStage+rec.Key, rec.Value)
	}
	if err != nil {
		return err
	}
	v, err := mergeRecord(rec, have, c.acct.User)
	if err != nil || v == nil {
		return err
	}
	return c.st.Put(importStage+rec.Key, v)
}

// mergeRecord is the value an archived record leaves under a key the
// device already holds as have; nil when have stays.
func mergeRecord(rec archive.Record, have []byte, user protocol.UserID) ([]byte, error) {
	switch {
	case rec.Key == blockStatementsKey:
		return mergeBlockStatements(rec.Value, have, user)
	case rec.Key == requestStateKey:
		return mergeRequestStates(rec.Value, have)
	case rec.Key == blocksKey:
		return mergeBlocks(rec.Value, have)
	case strings.HasPrefix(rec.Key, "history/"):
		return mergeHistory(rec.Value, have), nil
	case strings.HasPrefix(rec.Key, "conv/"):
		// The title and the verified conversation state (§7.6) are taken
		// where this device has none; the rest (epochs, sequence numbers,
		// read marks) is this device's own.
		var mine, theirs map[string]json.RawMessage
		if json.Unmarshal(have, &mine) != nil || json.Unmarshal(rec.Value, &theirs) != nil {
			return nil, nil
		}
		changed := false
		for _, f := range []string{"title", "state"} {
			if _, ok := mine[f]; !ok && theirs[f] != nil {
				mine[f], changed = theirs[f], true
			}
		}
		if !changed {
			return nil, nil
		}
		return json.Marshal(mine)
	case strings.HasPrefix(rec.Key, "pin/"):
		var mine, theirs pin
		if json.Unmarshal(have, &mine) != nil || json.Unmarshal(rec.Value, &theirs) != nil {
			return nil, nil
		}
		if theirs.Verified && !mine.Verified && mine.Identity.Equal(theirs.Identity) {
			mine.Verified = true
			return json.Marshal(&mine)
		}
	}
	return nil, nil
}

// An import is all or nothing. Its records are first written under
// importStage (invisible to everything else); once the whole archive has
// been read, importCommitted is written, and only then are the staged
// values moved into place. A device that stops before the mark keeps what
// it had (the staged values are dropped when it opens); one that stops
// after it finishes the move when it opens.
const (
	importStage     = "import/"
	importCommitted = "import.committed"
)

// dropImport erases staged values and the commit mark.
func (c *Client) dropImport() error {
	keys, err := c.st.List(importStage)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := c.st.Delete(k); err != nil {
			return err
		}
	}
	return c.st.Delete(importCommitted)
}

// commitImport marks the staged import as whole and moves it into place.
func (c *Client) commitImport() error {
	if err := c.st.Put(importCommitted, []byte{1}); err != nil {
		return err
	}
	return c.finishImport()
}

// finishImport moves staged values into place (each staged key is
// deleted after its value is written, so that a repeat is harmless) and
// drops the commit mark.
func (c *Client) finishImport() error {
	keys, err := c.st.List(importStage)
	if err != nil {
		return err
	}
	for _, k := range keys {
		v, err := c.st.Get(k)
		if err != nil {
			return err
		}
		if err := c.st.Put(strings.TrimPrefix(k, importStage), v); err != nil {
			return err
		}
		if err := c.st.Delete(k); err != nil {
			return err
		}
	}
	return c.st.Delete(importCommitted)
}

// recoverImport, at open, completes a committed import or drops one that
// was cut short.
func (c *Client) recoverImport() error {
	if _, err := c.st.Get(importCommitted); err == nil {
		return c.finishImport()
	} else if !errors.Is(err, ErrNoValue) {
		return err
	}
	return c.dropImport()
}

// mergeHistory merges two stored histories (lines of JSON messages): each
// message once (by sequence number and envelope), in sequence order, the
// archive's first among equals; lines that do not parse are dropped.
func mergeHistory(theirs, mine []byte) []byte {
	type line struct {
		m Message
		b []byte
	}
	var all []line
	seen := map[string]bool{}
	for _, src := range [][]byte{theirs, mine} {
		for _, l := range bytes.Split(src, []byte("\n")) {
			var m Message
			if len(l) == 0 || json.Unmarshal(l, &m) != nil {
				continue
			}
			id := strconv.FormatUint(m.Seq, 10) + "/" + m.Ref
			if m.Seq != 0 && seen[id] {
				continue
			}
			seen[id] = true
			all = append(all, line{m, l})
		}
	}
	slices.SortStableFunc(all, func(a, b line) int {
		if a.m.Seq == 0 || b.m.Seq == 0 {
			return cmp.Compare(a.m.ReceivedAt, b.m.ReceivedAt)
		}
		return cmp.Compare(a.m.Seq, b.m.Seq)
	})
	var out []byte
	for _, l := range all {
		out = append(append(out, l.b...), '\n')
	}
	return out
}

// reloadState drops what the client caches of its storage after an
// import, so that the imported records are read afresh.
func (c *Client) reloadState() error {
	c.convs = map[protocol.ConversationID]*convState{}
	c.lives = map[protocol.ConversationID]*epochLife{}
	c.expiryKnown = false
	c.pins = map[protocol.UserID]*pin{}
	return c.loadPins()
}

// importArchive checks an archive through (a first download, each record
// given to check if not nil), then imports it (a second, each record
// given to apply, which stages it): nothing is written unless the whole
// archive verified, and nothing is imported unless the second read too
// went through whole.
// The caller holds c.mu.
func (c *Client) importArchive(ctx context.Context, open archiveSource, skip int, fileKey, digest []byte, kind archive.Kind, check, apply func(archive.Record) error) (archive.Header, error) {
	rc, err := open(ctx)
	if err != nil {
		return archive.Header{}, err
	}
	hdr, err := c.checkArchive(rc, skip, fileKey, digest, kind, check)
	rc.Close()
	if err != nil {
		return hdr, err
	}
	return hdr, c.importStaged(func() error {
		return c.stageArchive(ctx, open, skip, fileKey, kind, hdr, apply)
	})
}

// importStaged runs stage, which stages an import (importRecord), on a
// clean stage, and commits what it staged only if it went through whole;
// if not, it drops it. The caller holds c.mu.
func (c *Client) importStaged(stage func() error) error {
	if err := c.dropImport(); err != nil {
		return err
	}
	if err := stage(); err != nil {
		return errors.Join(err, c.dropImport())
	}
	if err := c.commitImport(); err != nil {
		return err
	}
	return c.reloadState()
}

// stageArchive reads the archive a second time, giving each record to
// apply, which stages it (importRecord); the archive must still be the
// one checked, whose header was hdr.
func (c *Client) stageArchive(ctx context.Context, open archiveSource, skip int, fileKey []byte, kind archive.Kind, hdr archive.Header, apply func(archive.Record) error) error {
	rc, err := open(ctx)
	if err != nil {
		return err
	}
	defer rc.Close()
	var r io.Reader = rc
	if skip > 0 {
		if _, err := io.CopyN(io.Discard, r, int64(skip)); err != nil {
			return err
		}
	}
	again, err := c.readArchive(r, fileKey, kind, apply)
	if err == nil && again != hdr {
		err = fmt.Errorf("%w: another archive than the one checked", archive.ErrFormat)
	}
	if err != nil {
		return fmt.Errorf("reading the archive a second time, to import it, failed or gave other bytes (nothing was imported; try again): %w", err)
	}
	return nil
}

// archiveTimeout bounds an archive's upload or download.
const archiveTimeout = 10 * time.Minute

// errForeignEpoch is an epoch whose state came from another device of the
// account (a transfer or a restore): this device reads in it but never
// sends, since its sending chain is the other device's.
var errForeignEpoch = errors.New("an epoch imported from another device")

// catchUp reads, in each conversation an import brought, the messages
// stored after the archive's last one: a device's event stream begins
// when the device was added, and these came before (while a restored
// account was away, or while a transfer was built). Each is decrypted
// with the imported epochs and kept in the history as a synced message
// would be. The caller holds c.mu.
func (c *Client) catchUp(ctx context.Context) error {
	keys, err := c.st.List("conv/")
	if err != nil {
		return err
	}
	for _, k := range keys {
		id, err := protocol.ParseConversationID(strings.TrimPrefix(k, "conv/"))
		if err != nil {
			continue
		}
		cs, err := c.conv(id)
		if err != nil || cs == nil || cs.Left {
			if err != nil {
				return err
			}
			continue
		}
		// Messages the archive already holds are not read again: the
		// other device's own messages are recorded when sent and do not
		// move LastSeq, so some of them may lie above it.
		lines, err := c.historyLines(id)
		if err != nil {
			return err
		}
		have := map[uint64]bool{}
		for _, m := range liveHistory(lines) {
			have[m.Seq] = true
		}
		for after := cs.LastSeq; ; {
			var page struct {
				Messages []*messageAnswer `json:"messages"`
			}
			path := "/api/conversations/" + id.String() + "/messages?limit=100&after=" + strconv.FormatUint(after, 10)
			if err := c.api.do(ctx, "GET", path, nil, &page); err != nil {
				if IsCode(err, "not_found") {
					break // no longer a member
				}
				return err
			}
			for _, m := range page.Messages {
				after = max(after, m.Seq)
				if have[m.Seq] {
					continue
				}
				// Only what the imported epochs can open: a message of
				// an epoch the archive did not hold was sent before this
				// device could read it, and is not a failure.
				if e, err := c.loadEpoch(cs, m.Epoch); errors.Is(err, ErrExpired) || err == nil && e == nil {
					continue
				} else if err != nil {
					return err
				}
				var de *DecryptError
				if _, err := c.receive(ctx, m); err != nil && !errors.As(err, &de) {
					return errors.Join(err, c.flush())
				}
			}
			if err := c.flush(); err != nil {
				return err
			}
			if len(page.Messages) < 100 {
				break
			}
		}
	}
	return nil
}
