package store

import (
	"context"

	"sandi.dev/protocol"
)

// LinkRequest is a new device's request for the account's identity key
// (protocol.md §11).
type LinkRequest struct {
	Device    protocol.DeviceID
	User      protocol.UserID
	Name      string // the device's name
	PublicKey []byte // the temporary X-Wing public key
	Sealed    []byte // the sealed identity seed, once approved
	CreatedAt int64
}

// Links stores device link requests. Every Store implements it.
type Links interface {
	// PutLinkRequest records or replaces the pending request of a device
	// that has no bundle yet. A device with a bundle, or an unknown or
	// revoked one, is ErrNotFound.
	PutLinkRequest(ctx context.Context, r LinkRequest) error
	// LinkRequests lists an account's pending (not yet approved) requests
	// made at or after since, newest first.
	LinkRequests(ctx context.Context, user protocol.UserID, since int64) ([]LinkRequest, error)
	// ApproveLink stores the sealed identity for a pending request of one of
	// user's devices; a missing or already approved request is ErrNotFound.
	ApproveLink(ctx context.Context, user protocol.UserID, device protocol.DeviceID, sealed []byte) error
	// LinkRequest returns a device's request (ErrNotFound if none).
	LinkRequest(ctx context.Context, device protocol.DeviceID) (LinkRequest, error)
}
