package client

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"sandi.dev/protocol/archive"
	"sandi.dev/protocol/attach"
)

// History transfer on link (protocol.md §11, §14.5): the approving device
// uploads an archive of what it holds under a fresh key and seals the
// archive's id, key, digest and size to the new device with the identity
// key; the new device checks the digest, then imports.

// LinkHistory says what history an approval transfers.
type LinkHistory struct {
	// Transfer: build and offer an archive. Without it the new device
	// starts empty, as before.
	Transfer bool
	// Since keeps only messages received at or after it (Unix ms); 0
	// (HistoryAll) keeps all.
	Since int64
}

// ErrTransfer wraps a failed import of a transfer: a history, or without
// one the block list and request state (protocol.md §16.1). The device is
// linked; ResumeTransfer tries the import again.
var ErrTransfer = errors.New("the device is linked, but what the other device handed over (its history, or with none its block list and message requests) was not imported")

// transferKey is the storage key of a transfer offer not yet imported.
const transferKey = "transfer"

// PendingTransfer reports whether a transfer offer awaits its import.
func (c *Client) PendingTransfer() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.transferPending()
}

// transferPending is PendingTransfer for a caller that holds c.mu.
func (c *Client) transferPending() bool {
	_, err := c.st.Get(transferKey)
	return err == nil
}

// ResumeTransfer imports the pending transferred history (after an
// interrupted first try). No pending transfer is not an error.
func (c *Client) ResumeTransfer(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ready(); err != nil {
		return err
	}
	return c.importTransfer(ctx)
}

// offerTransfer uploads a transfer archive and returns the offer to seal.
// The caller holds c.mu.
func (c *Client) offerTransfer(ctx context.Context, h LinkHistory) ([]byte, error) {
	key := attach.NewKey()
	defer clear(key)
	ctx, cancel := context.WithTimeout(ctx, archiveTimeout)
	defer cancel()
	ref, digest, err := c.uploadSealed(ctx, nil, key, "transfer", func(w io.Writer) error { return c.writeTransfer(w, h) })
	if err != nil {
		return nil, err
	}
	var o archive.Offer
	id, err := hex.DecodeString(ref.ID)
	if err != nil || len(id) != len(o.ID) {
		return nil, fmt.Errorf("%w: archive id %q", ErrServerMisbehaved, ref.ID)
	}
	copy(o.ID[:], id)
	copy(o.Key[:], key)
	o.Digest, o.Size = digest, uint64(ref.Size)
	return o.Marshal(), nil
}

// writeTransfer writes a transfer archive: with h.Transfer, this device's
// state (the history since h.Since); without, its block list only. Both
// end with its request state (§16.1), computed now. The caller holds c.mu.
func (c *Client) writeTransfer(w io.Writer, h LinkHistory) error {
	aw, err := archive.NewWriter(w, archive.Header{Kind: archive.Transfer, User: c.acct.User, Created: c.now().UnixMilli()})
	if err != nil {
		return err
	}
	err = c.eachArchived(archive.Transfer, func(k string, v []byte) error {
		switch {
		case k == requestStateKey:
			return nil // the current one, below
		case !h.Transfer && k != blocksKey && k != blockStatementsKey:
			return nil
		case strings.HasPrefix(k, "history/") && h.Since > 0:
			v = historySince(v, h.Since)
		}
		return aw.Add(k, v)
	})
	if err != nil {
		return err
	}
	rs, err := c.requestState()
	if err != nil {
		return err
	}
	// Its key sorts after every other archived key, as records must.
	if err := aw.Add(requestStateKey, rs); err != nil {
		return err
	}
	return aw.Close()
}

// importTransfer imports the pending transfer, if any: the archive's
// digest must be the offer's (else an alarm, and nothing is imported);
// once imported, the offer is dropped and the server's copy deleted.
// The caller holds c.mu.
func (c *Client) importTransfer(ctx context.Context) error {
	b, err := c.st.Get(transferKey)
	if errors.Is(err, ErrNoValue) {
		return nil
	}
	if err != nil {
		return err
	}
	o, err := archive.ParseOffer(b)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, archiveTimeout)
	defer cancel()
	id := hex.EncodeToString(o.ID[:])
	open := func(ctx context.Context) (io.ReadCloser, error) {
		rc, n, err := c.fetchArchive(ctx, id)
		if err == nil && n >= 0 && uint64(n) != o.Size {
			rc.Close()
			return nil, c.transferDigestAlarm(fmt.Sprintf("The transferred history has %d bytes on the server, the other device uploaded %d.", n, o.Size))
		}
		return rc, err
	}
	_, err = c.importArchive(ctx, open, 0, o.Key[:], o.Digest[:], archive.Transfer, nil, c.importRecord)
	if errors.Is(err, errArchiveDigest) {
		return fmt.Errorf("%w: %w", ErrServerMisbehaved, c.transferDigestAlarm("The transferred history the server serves is not the one the other device uploaded."))
	}
	if err != nil {
		return err
	}
	if err := c.st.Delete(transferKey); err != nil {
		return err
	}
	if err := c.applyRequestState(); err != nil {
		return err
	}
	if err := c.catchUp(ctx); err != nil {
		return err
	}
	// Best effort: the server forgets a transfer after a day anyway.
	_ = c.api.do(ctx, "DELETE", "/api/archives/"+id, nil, nil)
	return nil
}

// transferDigestAlarm raises the alarm of a swapped transfer archive and
// returns errArchiveDigest.
func (c *Client) transferDigestAlarm(detail string) error {
	if err := c.raise(Alarm{Kind: AlarmBlobDigest, Severity: SeverityCritical, User: c.acct.User, Detail: detail + " Nothing of it was imported."}); err != nil {
		return err
	}
	return errArchiveDigest
}
