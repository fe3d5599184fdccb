package store

import (
	"context"
	"errors"

	"sandi.dev/protocol"
)

// Errors of the blob rows.
var (
	// ErrBlobQuota is a new upload that would take its account past its
	// quota of live blob bytes.
	ErrBlobQuota = errors.New("blob quota exceeded")
	// ErrTooManyUploads is a new upload of an account that has the most
	// unfinished uploads it may have.
	ErrTooManyUploads = errors.New("too many unfinished uploads")
	// ErrBadBlob is a send that references a blob that is not complete,
	// not of the message's conversation, not uploaded by its sender's
	// account, or does not exist.
	ErrBadBlob = errors.New("bad blob reference")
	// ErrBlobComplete is a part written to a completed upload.
	ErrBlobComplete = errors.New("blob already complete")
	// ErrBlobIncomplete is a completion of an upload with parts missing.
	ErrBlobIncomplete = errors.New("blob parts missing")
)

// Blob is one attachment blob's row (the ciphertext is in the blob store,
// under the same id).
type Blob struct {
	ID           string // 32 lower-case hex digits
	Conversation protocol.ConversationID
	User         protocol.UserID   // the uploading account
	Device       protocol.DeviceID // the device that began the upload
	Size         int64             // ciphertext bytes
	Parts        int
	// Received is a bitmap of the parts that are durable: bit n%8 of
	// byte n/8 for part n.
	Received   []byte
	State      string // the blob store's upload state
	Complete   bool
	Referenced bool // a message references it (or did)
	Deleted    bool // a tombstone: its object is being deleted
	CreatedAt  int64
	// ExpiresAt is when an unreferenced blob is collected: an unfinished
	// upload's expiry, or a completed blob's deadline for a reference.
	ExpiresAt   int64
	CompletedAt int64 // 0 until completed
}

// HasPart reports whether part n was received.
func (b *Blob) HasPart(n int) bool {
	return n >= 0 && n/8 < len(b.Received) && b.Received[n/8]&(1<<(n%8)) != 0
}

// Missing lists the parts not received, in order.
func (b *Blob) Missing() []int {
	var out []int
	for n := 0; n < b.Parts; n++ {
		if !b.HasPart(n) {
			out = append(out, n)
		}
	}
	return out
}

// BlobLimits bound an account's blobs at the creation of an upload
// (0: no bound).
type BlobLimits struct {
	Quota   int64 // bytes of live (not deleted) blobs
	MaxOpen int   // unfinished uploads
}

// Blobs stores the rows of attachment blobs. Every Store implements it.
type Blobs interface {
	// CreateBlob records a new upload (Received, Complete, Referenced and
	// Deleted are ignored: it starts with none and false) and charges its
	// size to its account: if that takes the account's live bytes past
	// lim.Quota it is ErrBlobQuota, if the account has lim.MaxOpen
	// unfinished uploads already, ErrTooManyUploads; nothing is stored
	// then. A taken id is ErrConflict.
	CreateBlob(ctx context.Context, b Blob, lim BlobLimits) error
	// Blob returns a blob's row, tombstones included (ErrNotFound if there
	// is none).
	Blob(ctx context.Context, id string) (Blob, error)
	// SetBlobPart marks part n of an unfinished upload received or not,
	// and stores the blob store's new upload state. ErrNotFound for an
	// unknown or deleted blob or n out of range; ErrBlobComplete once
	// completed.
	SetBlobPart(ctx context.Context, id string, n int, received bool, state string) error
	// CompleteBlob marks an upload whose parts are all received complete,
	// at now; an unreferenced blob is collected from expiresAt on. It
	// releases the account's unfinished upload. ErrBlobIncomplete if a
	// part is missing, ErrNotFound for an unknown or deleted blob;
	// completing a complete blob again changes nothing.
	CompleteBlob(ctx context.Context, id string, now, expiresAt int64) error
	// DeleteBlob makes an account's blob a tombstone (not served again)
	// and releases its bytes from the quota; it returns the row. A blob of
	// another account, unknown or already deleted, is ErrNotFound.
	DeleteBlob(ctx context.Context, id string, user protocol.UserID) (Blob, error)
	// ExpireBlobs makes tombstones of up to limit blobs to collect at now:
	// unreferenced blobs with ExpiresAt <= now (unfinished uploads past
	// expiry, completed blobs no message referenced in time) and
	// referenced blobs none of whose messages remain. It releases their
	// bytes and returns how many it marked.
	ExpireBlobs(ctx context.Context, now int64, limit int) (int, error)
	// DeletedBlobs lists up to limit tombstones, whose objects are to be
	// deleted from the blob store before PurgeBlob.
	DeletedBlobs(ctx context.Context, limit int) ([]Blob, error)
	// PurgeBlob removes a tombstone's row and its references (a blob that
	// is not a tombstone is ErrNotFound, and stays).
	PurgeBlob(ctx context.Context, id string) error
	// BlobUsage returns an account's live blob bytes and unfinished uploads.
	BlobUsage(ctx context.Context, user protocol.UserID) (bytes int64, open int, err error)
	// BlobRefs lists the blobs a message references.
	BlobRefs(ctx context.Context, conv protocol.ConversationID, seq uint64) ([]string, error)
}
