package store

import (
	"context"
	"errors"

	"sandi.dev/protocol"
)

// ErrLinkExpired is returned by ApproveLink for a request past its expiry.
var ErrLinkExpired = errors.New("link request expired")

// LinkRequest is a new device's request for the account's identity key
// (protocol.md §11).
type LinkRequest struct {
	Device    protocol.DeviceID
	User      protocol.UserID
	Name      string // the device's name
	PublicKey []byte // the temporary X-Wing public key
	Tag       []byte // the link request tag (nil for a request older than tags)
	Sealed    []byte // the sealed identity seed, once approved
	CreatedAt int64
	ExpiresAt int64 // the request may be approved while now < ExpiresAt
}

// Links stores device link requests. Every Store implements it.
type Links interface {
	// PutLinkRequest records or replaces the request of a device that has
	// no bundle yet (a replaced request loses its sealed identity, if it
	// had one). A device with a bundle, or an unknown or revoked one, is
	// ErrNotFound.
	PutLinkRequest(ctx context.Context, r LinkRequest) error
	// LinkRequests lists an account's pending requests (not yet approved,
	// and now < ExpiresAt), newest first.
	LinkRequests(ctx context.Context, user protocol.UserID, now int64) ([]LinkRequest, error)
	// ApproveLink stores the sealed identity for a pending request of one of
	// user's devices. A missing or already approved request is
	// ErrNotFound; one with ExpiresAt <= now is ErrLinkExpired.
	ApproveLink(ctx context.Context, user protocol.UserID, device protocol.DeviceID, sealed []byte, now int64) error
	// LinkRequest returns a device's request, approved, pending or expired
	// (ErrNotFound if none).
	LinkRequest(ctx context.Context, device protocol.DeviceID) (LinkRequest, error)
}
