package server

import (
	"context"
	"crypto/sha256"
	"sync"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// identityCache remembers the identity key of each sending device's
// account, so that verifying a message's signature needs no read of the
// account. An entry is keyed by the device and the hash of the device's
// signed pre-key as the token look-up just returned it, which makes it
// valid across server nodes without any invalidation message: an account's
// identity key changes only through a reset bundle upload (store.BundleUpload),
// which replaces the uploading device's signed pre-key with one signed by
// the new key, so that device's entry no longer matches, and revokes every
// other device of the account, so their tokens no longer resolve. A device
// without a bundle is not cached.
type identityCache struct {
	mu sync.Mutex
	m  map[protocol.DeviceID]identityEntry
}

type identityEntry struct {
	signedPreKey [sha256.Size]byte
	key          protocol.IdentityKey
}

// maxIdentityCache bounds the cache; when full it starts over.
const maxIdentityCache = 1 << 16

// identityOf returns the identity key of d's account (nil if it has none
// yet). d is the device the caller's token resolved to.
func (s *Server) identityOf(ctx context.Context, d store.Device) (*protocol.IdentityKey, error) {
	var h [sha256.Size]byte
	if d.SignedPreKey != nil {
		h = sha256.Sum256(d.SignedPreKey)
		s.idents.mu.Lock()
		e, ok := s.idents.m[d.ID]
		s.idents.mu.Unlock()
		if ok && e.signedPreKey == h {
			key := e.key
			return &key, nil
		}
	}
	u, err := s.store.User(ctx, d.User)
	if err != nil {
		return nil, err
	}
	if u.Identity != nil && d.SignedPreKey != nil {
		s.idents.mu.Lock()
		if s.idents.m == nil || len(s.idents.m) >= maxIdentityCache {
			s.idents.m = make(map[protocol.DeviceID]identityEntry)
		}
		s.idents.m[d.ID] = identityEntry{signedPreKey: h, key: *u.Identity}
		s.idents.mu.Unlock()
	}
	return u.Identity, nil
}
