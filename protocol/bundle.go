package protocol

import (
	"fmt"

	"sandi.dev/protocol/internal/wire"
)

// PreKeyKind says which slot of a device's bundle a pre-key fills (§5.1).
type PreKeyKind uint8

// Pre-key kinds.
const (
	SignedPreKey     PreKeyKind = 1 // rotated on a schedule, default every 7 days
	OneTimePreKey    PreKeyKind = 2 // used once, then deleted by the server
	LastResortPreKey PreKeyKind = 3 // used when no one-time key is left
)

func (k PreKeyKind) String() string {
	switch k {
	case SignedPreKey:
		return "signed"
	case OneTimePreKey:
		return "one-time"
	case LastResortPreKey:
		return "last-resort"
	}
	return fmt.Sprintf("PreKeyKind(%d)", uint8(k))
}

// Limits of §5.
const (
	MaxOneTimePerUpload = 100
	PreKeySize          = 1 + 4 + 8 + KEMPublicKeySize + SignatureSize
)

// PreKey is one signed X-Wing pre-key of a device (§5.1).
type PreKey struct {
	Kind      PreKeyKind
	ID        uint32 // unique among the device's pre-keys
	Created   int64  // Unix seconds, set by the device
	Public    KEMPublicKey
	Signature [SignatureSize]byte // by the account identity key over PreKeySignedData
}

// PreKeySignedData is the message an identity key signs for a pre-key:
// label || version || user || device || kind || id || created || public.
func PreKeySignedData(user UserID, device DeviceID, k *PreKey) []byte {
	w := wire.NewBuilder(len(LabelPreKey) + 64 + KEMPublicKeySize)
	w.Fixed([]byte(LabelPreKey))
	w.U8(Version)
	w.Fixed(user[:])
	w.Fixed(device[:])
	w.U8(uint8(k.Kind))
	w.U32(k.ID)
	w.U64(uint64(k.Created))
	w.Fixed(k.Public.Bytes())
	return w.Bytes()
}

// Verify checks that id signed k for (user, device).
func (k *PreKey) Verify(id IdentityKey, user UserID, device DeviceID) error {
	if err := id.Verify(PreKeySignedData(user, device, k), k.Signature[:]); err != nil {
		return fmt.Errorf("%s pre-key %d: %w", k.Kind, k.ID, err)
	}
	return nil
}

func (k *PreKey) encode(w *wire.Builder) {
	w.U8(uint8(k.Kind))
	w.U32(k.ID)
	w.U64(uint64(k.Created))
	w.Fixed(k.Public.Bytes())
	w.Fixed(k.Signature[:])
}

func decodePreKey(r *wire.Reader) PreKey {
	var k PreKey
	k.Kind = PreKeyKind(r.U8("pre-key kind"))
	if r.Err() == nil && (k.Kind < SignedPreKey || k.Kind > LastResortPreKey) {
		r.Fail("unknown pre-key kind %d", k.Kind)
	}
	k.ID = r.U32("pre-key id")
	k.Created = int64(r.U64("pre-key time"))
	pub := r.Fixed(KEMPublicKeySize, "pre-key public key")
	readSignature(r, &k.Signature, "pre-key signature")
	if r.Err() == nil {
		var err error
		if k.Public, err = ParseKEMPublicKey(pub); err != nil {
			r.Fail("pre-key public key: %v", err)
		}
	}
	return k
}

// PreKeyCreated returns the kind and creation time of an encoded pre-key
// (§5.1), checking its length and kind but not its public key or signature:
// it is for a holder of pre-keys it verified when it received them, such as
// the server applying the dormancy rule of §5.3 to stored keys, where a full
// decode would cost a public-key check per key.
func PreKeyCreated(b []byte) (PreKeyKind, int64, error) {
	r := wire.NewReader(b)
	kind := PreKeyKind(r.U8("pre-key kind"))
	if r.Err() == nil && (kind < SignedPreKey || kind > LastResortPreKey) {
		r.Fail("unknown pre-key kind %d", kind)
	}
	r.U32("pre-key id")
	created := int64(r.U64("pre-key time"))
	r.Fixed(KEMPublicKeySize+SignatureSize, "pre-key public key and signature")
	if err := r.Done(); err != nil {
		return 0, 0, fmt.Errorf("pre-key: %w", err)
	}
	return kind, created, nil
}

// Marshal returns the PreKeySize-byte encoding of k (§5.1).
func (k *PreKey) Marshal() []byte {
	w := wire.NewBuilder(PreKeySize)
	k.encode(w)
	return w.Bytes()
}

// ParsePreKey decodes one pre-key. It does not verify the signature.
func ParsePreKey(b []byte) (*PreKey, error) {
	r := wire.NewReader(b)
	k := decodePreKey(r)
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("pre-key: %w", err)
	}
	return &k, nil
}

// Bundle is what a device publishes so others can seal epoch keys to it
// (§5.2). A claimed bundle carries at most one one-time pre-key.
type Bundle struct {
	User       UserID
	Device     DeviceID
	Identity   IdentityKey
	Signed     PreKey
	LastResort PreKey
	OneTime    []PreKey // at most MaxOneTimePerUpload
}

// Marshal returns the encoding of §5.2.
func (b *Bundle) Marshal() []byte {
	w := wire.NewBuilder(1 + 2*IDSize + IdentityKeySize + (2+len(b.OneTime))*PreKeySize + 2)
	w.U8(Version)
	w.Fixed(b.User[:])
	w.Fixed(b.Device[:])
	w.Fixed(b.Identity[:])
	b.Signed.encode(w)
	b.LastResort.encode(w)
	w.U16(uint16(len(b.OneTime)))
	for i := range b.OneTime {
		b.OneTime[i].encode(w)
	}
	return w.Bytes()
}

// ParseBundle decodes a bundle. It checks structure, not signatures: call
// Verify.
func ParseBundle(p []byte) (*Bundle, error) {
	r := wire.NewReader(p)
	var b Bundle
	if v := r.U8("version"); r.Err() == nil && v != Version {
		r.Fail("version %d", v)
	}
	r.FixedInto(b.User[:], "user id")
	r.FixedInto(b.Device[:], "device id")
	readIdentity(r, &b.Identity, "identity key")
	b.Signed = decodePreKey(r)
	b.LastResort = decodePreKey(r)
	n := r.Count(MaxOneTimePerUpload, "one-time pre-keys")
	if n > 0 {
		b.OneTime = make([]PreKey, n)
	}
	for i := 0; i < n && r.Err() == nil; i++ {
		b.OneTime[i] = decodePreKey(r)
	}
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	return &b, nil
}

// Verify checks the bundle's shape and every signature: each pre-key sits in
// the slot of its kind, ids are distinct, and b.Identity signed each one for
// (b.User, b.Device). A pre-key signed by any other identity is refused.
func (b *Bundle) Verify() error {
	if _, err := ParseIdentityKey(b.Identity[:]); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if b.User.IsZero() || b.Device.IsZero() {
		return fmt.Errorf("bundle: zero user or device id")
	}
	if b.Signed.Kind != SignedPreKey || b.LastResort.Kind != LastResortPreKey {
		return fmt.Errorf("bundle: pre-key in the wrong slot")
	}
	if len(b.OneTime) > MaxOneTimePerUpload {
		return fmt.Errorf("bundle: %d one-time pre-keys, at most %d", len(b.OneTime), MaxOneTimePerUpload)
	}
	seen := make(map[uint32]bool, 2+len(b.OneTime))
	all := append([]*PreKey{&b.Signed, &b.LastResort}, ptrs(b.OneTime)...)
	for i, k := range all {
		if i >= 2 && k.Kind != OneTimePreKey {
			return fmt.Errorf("bundle: %s pre-key among the one-time keys", k.Kind)
		}
		if seen[k.ID] {
			return fmt.Errorf("bundle: pre-key id %d used twice", k.ID)
		}
		seen[k.ID] = true
		if err := k.Verify(b.Identity, b.User, b.Device); err != nil {
			return fmt.Errorf("bundle: %w", err)
		}
	}
	return nil
}

func ptrs[T any](s []T) []*T {
	out := make([]*T, len(s))
	for i := range s {
		out[i] = &s[i]
	}
	return out
}

// Pre-key lifetimes of §5.3, in seconds.
const (
	SignedPreKeyRotation = 7 * 24 * 3600  // a device replaces its signed pre-key (and its last-resort key) this often
	SignedPreKeyGrace    = 30 * 24 * 3600 // and keeps the replaced signed pre-key's private half this long
	// SignedPreKeyMaxAge is the age past which a sealer stops trusting that
	// the signed pre-key's private half still exists.
	SignedPreKeyMaxAge = SignedPreKeyRotation + SignedPreKeyGrace
	// LastResortMaxAge is the age past which a sealer refuses a last-resort
	// key: a key the server could have kept back since, or whose device
	// may have been compromised since. A device replaces its last-resort
	// key together with its signed pre-key, so only a device that has not
	// run for about 90 days meets this limit.
	LastResortMaxAge = 90 * 24 * 3600
	// LastResortGrace is how long a device keeps the private half of the
	// last-resort key it replaced. It keeps no older one.
	LastResortGrace = 7 * 24 * 3600
	// DormancySlack is the difference between a sealer's clock and the
	// server's that the server's coverage check tolerates: a device that is
	// dormant at one end of the window and not at the other may be left out
	// of an epoch or included.
	DormancySlack = 24 * 3600
)

// Dormant reports whether a device whose signed pre-key and last-resort key
// were created at the Unix times signed and lastResort is dormant at now
// (§5.3): both keys are past their maximum age, so no key of it may be
// sealed to, not even a one-time key. Sealers leave a dormant device out of
// new epochs, and the server's coverage check does not require it, by this
// same rule on the same public times.
func Dormant(signed, lastResort, now int64) bool {
	return now-signed > SignedPreKeyMaxAge && now-lastResort > LastResortMaxAge
}

// Dormant reports whether the bundle's device is dormant at Unix time now.
func (b *Bundle) Dormant(now int64) bool {
	return Dormant(b.Signed.Created, b.LastResort.Created, now)
}

// Target picks the pre-key an epoch key for this device is sealed to, at Unix
// time now (§5.3): nil if the device is dormant; else the one-time pre-key if
// the bundle carries one; else the signed pre-key, unless it is older than
// SignedPreKeyMaxAge, in which case the last-resort key (then at most
// LastResortMaxAge old, since the device is not dormant).
func (b *Bundle) Target(now int64) *PreKey {
	if b.Dormant(now) {
		return nil
	}
	if len(b.OneTime) > 0 {
		return &b.OneTime[0]
	}
	if now-b.Signed.Created > SignedPreKeyMaxAge {
		return &b.LastResort
	}
	return &b.Signed
}

// PreKeyByID returns the bundle's pre-key with that id, or nil.
func (b *Bundle) PreKeyByID(id uint32) *PreKey {
	for _, k := range append([]*PreKey{&b.Signed, &b.LastResort}, ptrs(b.OneTime)...) {
		if k.ID == id {
			return k
		}
	}
	return nil
}
