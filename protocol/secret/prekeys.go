package secret

import (
	"fmt"

	"sandi.dev/protocol"
)

// NewPreKey draws a KEM key pair and signs its public half as a pre-key of
// kind for (user, device), created at Unix time created.
func NewPreKey(id *IdentityPrivateKey, user protocol.UserID, device protocol.DeviceID, kind protocol.PreKeyKind, keyID uint32, created int64) (*KEMPrivateKey, protocol.PreKey) {
	priv := NewKEMKey()
	return priv, SignPreKey(id, user, device, kind, keyID, created, priv)
}

// SignPreKey signs priv's public half as a pre-key.
func SignPreKey(id *IdentityPrivateKey, user protocol.UserID, device protocol.DeviceID, kind protocol.PreKeyKind, keyID uint32, created int64, priv *KEMPrivateKey) protocol.PreKey {
	pk := protocol.PreKey{Kind: kind, ID: keyID, Created: created, Public: priv.Public()}
	pk.Signature = id.Sign(protocol.PreKeySignedData(user, device, &pk))
	return pk
}

// PreKeyPrivates maps pre-key ids to private halves; a device keeps one.
type PreKeyPrivates map[uint32]*KEMPrivateKey

// NewBundle makes a device's first bundle: a signed pre-key with id
// firstID, a last-resort key with id firstID+1 and n one-time pre-keys with
// the ids after that. It returns the bundle and every private half.
func NewBundle(id *IdentityPrivateKey, user protocol.UserID, device protocol.DeviceID, firstID uint32, n int, now int64) (*protocol.Bundle, PreKeyPrivates, error) {
	if n < 0 || n > protocol.MaxOneTimePerUpload {
		return nil, nil, fmt.Errorf("new bundle: %d one-time keys, at most %d", n, protocol.MaxOneTimePerUpload)
	}
	privs := make(PreKeyPrivates, n+2)
	b := &protocol.Bundle{User: user, Device: device, Identity: id.Public()}
	var k *KEMPrivateKey
	k, b.Signed = NewPreKey(id, user, device, protocol.SignedPreKey, firstID, now)
	privs[firstID] = k
	k, b.LastResort = NewPreKey(id, user, device, protocol.LastResortPreKey, firstID+1, now)
	privs[firstID+1] = k
	b.OneTime = make([]protocol.PreKey, n)
	for i := range n {
		keyID := firstID + 2 + uint32(i)
		k, b.OneTime[i] = NewPreKey(id, user, device, protocol.OneTimePreKey, keyID, now)
		privs[keyID] = k
	}
	return b, privs, nil
}
