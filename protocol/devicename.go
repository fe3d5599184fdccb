package protocol

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"

	"sandi.dev/protocol/internal/wire"
)

// MaxDeviceNameBytes caps a device name (§12.5).
const MaxDeviceNameBytes = 64

// ErrBadDeviceName is a device name record that does not verify.
var ErrBadDeviceName = errors.New("invalid device name record")

// DeviceName is a device's name as its account's identity key signed it
// (§12.5), so that a server cannot rename a device unnoticed. Each rename
// of a device is a new record with a higher Seq.
type DeviceName struct {
	User      UserID
	Device    DeviceID
	Seq       uint64 // 1 for the device's first record, then increasing; below 2^63
	Time      int64  // Unix milliseconds, the signer's clock; informational; not negative
	Name      string // 1 to 64 bytes of UTF-8, no control characters
	Signature [SignatureSize]byte
}

// CheckDeviceName checks a name against the rules of §12.5.
func CheckDeviceName(name string) error {
	if name == "" || len(name) > MaxDeviceNameBytes {
		return fmt.Errorf("a device name has 1 to %d bytes", MaxDeviceNameBytes)
	}
	if !utf8.ValidString(name) {
		return errors.New("a device name is UTF-8")
	}
	for _, r := range name {
		if unicode.IsControl(r) || unicode.In(r, unicode.Bidi_Control) {
			return errors.New("a device name has no control characters")
		}
	}
	return nil
}

func (n *DeviceName) encode(w *wire.Builder, withSig bool) {
	w.U8(Version)
	w.Fixed(n.User[:])
	w.Fixed(n.Device[:])
	w.U64(n.Seq)
	w.U64(uint64(n.Time))
	w.U8(uint8(len(n.Name)))
	w.Fixed([]byte(n.Name))
	if withSig {
		w.Fixed(n.Signature[:])
	}
}

func (n *DeviceName) size() int {
	return 1 + 2*IDSize + 8 + 8 + 1 + len(n.Name) + SignatureSize
}

// SignedData is what the identity key signs: LabelDeviceName followed by
// the encoding without the signature.
func (n *DeviceName) SignedData() []byte {
	w := wire.NewBuilder(len(LabelDeviceName) + n.size())
	w.Fixed([]byte(LabelDeviceName))
	n.encode(w, false)
	return w.Bytes()
}

// Marshal returns the encoding of §12.5.
func (n *DeviceName) Marshal() []byte {
	w := wire.NewBuilder(n.size())
	n.encode(w, true)
	return w.Bytes()
}

// ParseDeviceName decodes a device name record strictly (§12.5). It checks
// structure, not the signature.
func ParseDeviceName(b []byte) (*DeviceName, error) {
	r := wire.NewReader(b)
	var n DeviceName
	if v := r.U8("version"); r.Err() == nil && v != Version {
		r.Fail("version %d", v)
	}
	r.FixedInto(n.User[:], "user id")
	r.FixedInto(n.Device[:], "device id")
	if r.Err() == nil && (n.User.IsZero() || n.Device.IsZero()) {
		r.Fail("zero id")
	}
	n.Seq = r.U64("seq")
	if r.Err() == nil && (n.Seq == 0 || n.Seq > 1<<63-1) {
		r.Fail("seq %d", n.Seq)
	}
	if t := r.U64("time"); r.Err() == nil && t > 1<<63-1 {
		r.Fail("time %d", t)
	} else {
		n.Time = int64(t)
	}
	l := int(r.U8("name length"))
	name := r.Fixed(l, "name")
	if r.Err() == nil {
		n.Name = string(name)
		if err := CheckDeviceName(n.Name); err != nil {
			r.Fail("%v", err)
		}
	}
	readSignature(r, &n.Signature, "signature")
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("device name: %w", err)
	}
	return &n, nil
}

// Verify checks that the record names device of user and that identity,
// the account's identity key, signed it.
func (n *DeviceName) Verify(user UserID, device DeviceID, identity IdentityKey) error {
	if n.User != user || n.Device != device {
		return fmt.Errorf("%w: a record of device %s of %s, want %s of %s", ErrBadDeviceName, n.Device, n.User, device, user)
	}
	if _, err := ParseIdentityKey(identity[:]); err != nil {
		return fmt.Errorf("%w: %v", ErrBadDeviceName, err)
	}
	if err := identity.Verify(n.SignedData(), n.Signature[:]); err != nil {
		return fmt.Errorf("%w: signature: %v", ErrBadDeviceName, err)
	}
	return nil
}
