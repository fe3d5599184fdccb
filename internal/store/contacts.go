package store

import (
	"context"
	"errors"

	"sandi.dev/protocol"
)

// ErrTooManyContacts is a first contact past the cap NewContacts was
// given; nothing was recorded.
var ErrTooManyContacts = errors.New("too many new contacts")

// Block is one entry of an account's block list (protocol.md §16).
type Block struct {
	User      protocol.UserID // the blocked account
	Username  string          // its username
	CreatedAt int64
}

// Contacts stores each account's block list and the first contacts it made.
// Every Store implements it.
type Contacts interface {
	// Block adds blocked to user's block list; blocking again keeps the
	// first time. An unknown account is ErrNotFound.
	Block(ctx context.Context, user, blocked protocol.UserID, now int64) error
	// Unblock removes blocked from user's block list; it reports whether
	// it was there.
	Unblock(ctx context.Context, user, blocked protocol.UserID) (bool, error)
	// Blocks lists user's block list, oldest first.
	Blocks(ctx context.Context, user protocol.UserID) ([]Block, error)
	// BlockedBy returns those of users whose block list names author, in
	// the order of users.
	BlockedBy(ctx context.Context, author protocol.UserID, users []protocol.UserID) ([]protocol.UserID, error)
	// NewContacts records author's first contact with those of users
	// (other than author) that share no current conversation with it and
	// that it has not contacted since `since`, and returns how many it
	// recorded. If author's first contacts since `since` would then be
	// more than max, it records nothing and returns ErrTooManyContacts.
	// Records older than since are forgotten.
	NewContacts(ctx context.Context, author protocol.UserID, users []protocol.UserID, since, now int64, max int) (int, error)

	// SetDeviceName stores a verified device name record of an active
	// device of user (protocol.md §12.5) and makes name the device's name.
	// A device that is not user's, or revoked, is ErrNotFound; a seq not
	// above the stored record's is ErrConflict.
	SetDeviceName(ctx context.Context, user protocol.UserID, device protocol.DeviceID, name string, seq uint64, record []byte) error
	// DeviceNames returns the stored name records of user's active
	// devices that have one.
	DeviceNames(ctx context.Context, user protocol.UserID) (map[protocol.DeviceID][]byte, error)
}
