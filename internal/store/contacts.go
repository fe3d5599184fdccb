package store

import (
	"context"
	"errors"

	"sandi.dev/protocol"
)

// ErrTooManyContacts is a first contact past the cap NewContacts was
// given; nothing was recorded.
var ErrTooManyContacts = errors.New("too many new contacts")

// ErrTooManyBlocks is a block or block statement about an account that
// the blocking account holds nothing about yet, when it already holds its
// cap; nothing was stored.
var ErrTooManyBlocks = errors.New("too many blocks")

// ErrTooManyDevices is a device added to an account that already has
// the most devices not revoked that AddDevice was given; nothing was
// stored.
var ErrTooManyDevices = errors.New("too many devices")

// Block is one entry of an account's block list (protocol.md §16): a
// block the server enforces, or an unblock statement it keeps.
type Block struct {
	User      protocol.UserID // the blocked (or unblocked) account
	Username  string          // its username
	CreatedAt int64           // the block's row; an unblock: the statement's time
	Blocked   bool            // false: an unblock statement, not enforced
	Statement []byte          // the signed statement; nil for a block made without one
}

// Contacts stores each account's block list and the first contacts it made.
// Every Store implements it.
type Contacts interface {
	// Block adds blocked to user's block list; blocking again keeps the
	// first time. An unknown account is ErrNotFound. With max > 0, an
	// account that user holds nothing about (no block, no statement) is
	// ErrTooManyBlocks when user already holds max of them (see
	// SetBlock).
	Block(ctx context.Context, user, blocked protocol.UserID, now int64, max int) error
	// Unblock removes blocked from user's block list; it reports whether
	// it was there. A block that a signed statement made is ErrConflict:
	// only a signed unblock (SetBlock) lifts it.
	Unblock(ctx context.Context, user, blocked protocol.UserID) (bool, error)
	// SetBlock stores statement, user's signed statement (protocol.md
	// §16.2) made at time at that it blocks other (blocked) or no longer
	// does, in place of the stored one if it holds over it (a later at, or
	// the same at and a block over an unblock), else ErrConflict; the
	// block list then names other exactly when blocked (a new block's
	// CreatedAt is now). An unknown account is ErrNotFound. With max > 0,
	// a statement about an account that user holds nothing about is
	// ErrTooManyBlocks when user already holds max accounts: blocked, or
	// kept with a statement of either kind (protocol.md §16.2). A statement
	// about an account user holds is never refused so: it replaces what
	// is held, and an unblock always goes through.
	SetBlock(ctx context.Context, user, other protocol.UserID, blocked bool, at int64, statement []byte, now int64, max int) error
	// Blocks lists user's block list, oldest first, then its unblock
	// statements, each with the statement stored for it.
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
