package secret

import (
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/subtle"
	"fmt"

	"sandi.dev/protocol"
)

// SeedSize is the size of every stored private key: an Ed25519 seed or an
// X-Wing seed.
const SeedSize = 32

// IdentityPrivateKey is an account's Ed25519 signing key.
type IdentityPrivateKey struct {
	priv ed25519.PrivateKey
	pub  protocol.IdentityKey
}

// NewIdentity draws a new identity key.
func NewIdentity() *IdentityPrivateKey {
	var seed [SeedSize]byte
	protocol.Random(seed[:])
	k, err := IdentityFromSeed(seed[:])
	if err != nil {
		panic(err) // a 32-byte seed is always valid
	}
	return k
}

// IdentityFromSeed restores an identity key from its 32-byte seed.
func IdentityFromSeed(seed []byte) (*IdentityPrivateKey, error) {
	if len(seed) != SeedSize {
		return nil, fmt.Errorf("identity seed is %d bytes, want %d", len(seed), SeedSize)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	k := &IdentityPrivateKey{priv: priv}
	copy(k.pub[:], priv.Public().(ed25519.PublicKey))
	return k, nil
}

// Seed returns the 32-byte seed to store.
func (k *IdentityPrivateKey) Seed() []byte { return k.priv.Seed() }

// Public returns the identity public key.
func (k *IdentityPrivateKey) Public() protocol.IdentityKey { return k.pub }

// Sign signs msg.
func (k *IdentityPrivateKey) Sign(msg []byte) [protocol.SignatureSize]byte {
	var sig [protocol.SignatureSize]byte
	copy(sig[:], ed25519.Sign(k.priv, msg))
	return sig
}

// Equal compares two identity private keys in constant time.
func (k *IdentityPrivateKey) Equal(o *IdentityPrivateKey) bool {
	return subtle.ConstantTimeCompare(k.priv.Seed(), o.priv.Seed()) == 1
}

// KEMPrivateKey is the private half of an X-Wing pre-key.
type KEMPrivateKey struct {
	seed [SeedSize]byte
	key  hpke.PrivateKey
	pub  protocol.KEMPublicKey
}

// NewKEMKey draws a new X-Wing key pair.
func NewKEMKey() *KEMPrivateKey {
	var seed [SeedSize]byte
	protocol.Random(seed[:])
	k, err := KEMKeyFromSeed(seed[:])
	if err != nil {
		panic(err) // a 32-byte seed is always valid
	}
	return k
}

// KEMKeyFromSeed restores an X-Wing key pair from its 32-byte seed.
func KEMKeyFromSeed(seed []byte) (*KEMPrivateKey, error) {
	if len(seed) != SeedSize {
		return nil, fmt.Errorf("KEM seed is %d bytes, want %d", len(seed), SeedSize)
	}
	kem, _, _ := protocol.Suite()
	key, err := kem.NewPrivateKey(seed)
	if err != nil {
		return nil, fmt.Errorf("KEM seed: %w", err)
	}
	pub, err := protocol.ParseKEMPublicKey(key.PublicKey().Bytes())
	if err != nil {
		return nil, fmt.Errorf("KEM public key: %w", err)
	}
	k := &KEMPrivateKey{key: key, pub: pub}
	copy(k.seed[:], seed)
	return k, nil
}

// Seed returns the 32-byte seed to store.
func (k *KEMPrivateKey) Seed() []byte { return append([]byte(nil), k.seed[:]...) }

// Public returns the X-Wing public key.
func (k *KEMPrivateKey) Public() protocol.KEMPublicKey { return k.pub }

// Equal compares two KEM private keys in constant time.
func (k *KEMPrivateKey) Equal(o *KEMPrivateKey) bool {
	return subtle.ConstantTimeCompare(k.seed[:], o.seed[:]) == 1
}

// open decrypts an HPKE single-shot ciphertext (enc || ct) made for k.
func (k *KEMPrivateKey) open(info, enc, ct []byte) ([]byte, error) {
	_, kdf, aead := protocol.Suite()
	msg := make([]byte, 0, len(enc)+len(ct))
	msg = append(append(msg, enc...), ct...)
	return hpke.Open(k.key, kdf, aead, info, msg)
}

// seal encrypts pt to pub with HPKE base mode and returns enc and ct.
func seal(pub protocol.KEMPublicKey, info, pt []byte) (enc, ct []byte, err error) {
	pk, err := pub.HPKE()
	if err != nil {
		return nil, nil, err
	}
	_, kdf, aead := protocol.Suite()
	out, err := hpke.Seal(pk, kdf, aead, info, pt)
	if err != nil {
		return nil, nil, err
	}
	return out[:protocol.KEMEncSize], out[protocol.KEMEncSize:], nil
}
