package store

import (
	"context"

	"sandi.dev/protocol"
)

// Archive kinds (protocol.md §14).
const (
	ArchiveBackup   = "backup"
	ArchiveTransfer = "transfer"
)

// Archive is one account archive's row; its ciphertext is the blob store's
// object of the same id.
type Archive struct {
	ID        string // 32 lower-case hex digits
	User      protocol.UserID
	Kind      string // ArchiveBackup or ArchiveTransfer
	Size      int64  // ciphertext bytes
	CreatedAt int64  // Unix milliseconds
}

// Archives stores the rows of account archives. Every Store implements it.
type Archives interface {
	// PutArchive records a committed archive and keeps at most keep
	// archives of its account and kind (the newest): it returns the ids of
	// the rows it removed, whose objects the caller deletes. A taken id
	// is ErrConflict, an unknown account ErrNotFound.
	PutArchive(ctx context.Context, a Archive, keep int) (dropped []string, err error)
	// Archive returns an archive's row (ErrNotFound if there is none).
	Archive(ctx context.Context, id string) (Archive, error)
	// AccountArchives lists an account's archives, oldest first.
	AccountArchives(ctx context.Context, user protocol.UserID) ([]Archive, error)
	// DeleteArchive removes an account's archive row; one of another
	// account, or none, is ErrNotFound.
	DeleteArchive(ctx context.Context, id string, user protocol.UserID) error
}
