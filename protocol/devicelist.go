package protocol

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"

	"sandi.dev/protocol/internal/wire"
)

// MaxDevices caps the devices of one account's device list (§12).
const MaxDevices = 100

// DeviceList is an account's signed list of its devices (§12): the only
// devices that sealers wrap epoch secrets for. Every change (a device
// linked, removed or logged out) is a new list with a higher Seq, signed by
// the account's identity key, so a server can neither keep a removed device
// in the account nor add one.
type DeviceList struct {
	User UserID
	// Seq numbers the account's lists: 1 for the first under an identity
	// key, then strictly increasing.
	Seq uint64
	// Time is Unix milliseconds, the signer's clock; informational.
	Time int64
	// Prev is the hash of the list this one replaces; zero for the first.
	Prev [HashSize]byte
	// Devices are in strictly ascending byte order, none zero.
	Devices   []DeviceID
	Signature [SignatureSize]byte
}

// Errors of device-list verification.
var (
	ErrBadDeviceList      = errors.New("invalid device list")
	ErrDeviceListRollback = errors.New("device list is older than the one held")
)

func (l *DeviceList) encode(w *wire.Builder, withSig bool) {
	w.U8(Version)
	w.Fixed(l.User[:])
	w.U64(l.Seq)
	w.U64(uint64(l.Time))
	w.Fixed(l.Prev[:])
	w.U16(uint16(len(l.Devices)))
	for _, d := range l.Devices {
		w.Fixed(d[:])
	}
	if withSig {
		w.Fixed(l.Signature[:])
	}
}

func (l *DeviceList) size() int {
	return 1 + IDSize + 8 + 8 + HashSize + 2 + len(l.Devices)*IDSize + SignatureSize
}

// SignedData is what the identity key signs: LabelDeviceList followed by
// the encoding without the signature.
func (l *DeviceList) SignedData() []byte {
	w := wire.NewBuilder(len(LabelDeviceList) + l.size())
	w.Fixed([]byte(LabelDeviceList))
	l.encode(w, false)
	return w.Bytes()
}

// Marshal returns the encoding of §12.1.
func (l *DeviceList) Marshal() []byte {
	w := wire.NewBuilder(l.size())
	l.encode(w, true)
	return w.Bytes()
}

// Hash is SHA-256(LabelDeviceListHash || Marshal()); the next list names it.
func (l *DeviceList) Hash() [HashSize]byte {
	h := sha256.New()
	h.Write([]byte(LabelDeviceListHash))
	h.Write(l.Marshal())
	var out [HashSize]byte
	h.Sum(out[:0])
	return out
}

// Contains reports whether d is in the list.
func (l *DeviceList) Contains(d DeviceID) bool {
	_, ok := slices.BinarySearchFunc(l.Devices, d, func(a, b DeviceID) int { return bytes.Compare(a[:], b[:]) })
	return ok
}

// SortDevices sorts device ids into the canonical order of a list and drops
// repeats.
func SortDevices(ds []DeviceID) []DeviceID {
	out := slices.Clone(ds)
	slices.SortFunc(out, func(a, b DeviceID) int { return bytes.Compare(a[:], b[:]) })
	return slices.Compact(out)
}

// ParseDeviceList decodes a device list strictly (§12.1): devices in
// strictly ascending order, none zero, at most MaxDevices. It checks
// structure, not the signature.
func ParseDeviceList(b []byte) (*DeviceList, error) {
	r := wire.NewReader(b)
	var l DeviceList
	if v := r.U8("version"); r.Err() == nil && v != Version {
		r.Fail("version %d", v)
	}
	r.FixedInto(l.User[:], "user id")
	if r.Err() == nil && l.User.IsZero() {
		r.Fail("zero user id")
	}
	l.Seq = r.U64("seq")
	if r.Err() == nil && l.Seq == 0 {
		r.Fail("seq 0")
	}
	l.Time = int64(r.U64("time"))
	r.FixedInto(l.Prev[:], "previous hash")
	if n := r.Count(MaxDevices, "devices"); n > 0 {
		if r.Remaining() < n*IDSize {
			r.Fail("%d devices do not fit in %d bytes", n, r.Remaining())
		} else {
			l.Devices = make([]DeviceID, n)
			for i := 0; i < n && r.Err() == nil; i++ {
				r.FixedInto(l.Devices[i][:], "device")
				if r.Err() == nil && l.Devices[i].IsZero() {
					r.Fail("zero device id")
				}
				if r.Err() == nil && i > 0 && bytes.Compare(l.Devices[i-1][:], l.Devices[i][:]) >= 0 {
					r.Fail("devices not in ascending order")
				}
			}
		}
	}
	r.FixedInto(l.Signature[:], "signature")
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("device list: %w", err)
	}
	return &l, nil
}

// Verify checks the list's signature under the account's identity key and
// that it is the list of user (§12.2 steps 1 to 3). It does not check the
// sequence against a held list: see Follows.
func (l *DeviceList) Verify(user UserID, identity IdentityKey) error {
	if l.User != user {
		return fmt.Errorf("%w: list of user %s, want %s", ErrBadDeviceList, l.User, user)
	}
	if _, err := ParseIdentityKey(identity[:]); err != nil {
		return fmt.Errorf("%w: %v", ErrBadDeviceList, err)
	}
	if err := identity.Verify(l.SignedData(), l.Signature[:]); err != nil {
		return fmt.Errorf("%w: signature: %v", ErrBadDeviceList, err)
	}
	return nil
}

// Follows checks l against the list a receiver holds for the same account
// and identity key (§12.2 step 4): held may be nil. A lower seq is
// ErrDeviceListRollback; the same seq must be the same list; the next seq
// must name held's hash as Prev.
func (l *DeviceList) Follows(held *DeviceList) error {
	if held == nil {
		return nil
	}
	switch {
	case l.Seq < held.Seq:
		return fmt.Errorf("%w: seq %d, held %d", ErrDeviceListRollback, l.Seq, held.Seq)
	case l.Seq == held.Seq:
		if !bytes.Equal(l.Marshal(), held.Marshal()) {
			return fmt.Errorf("%w: two different lists with seq %d", ErrBadDeviceList, l.Seq)
		}
	case l.Seq == held.Seq+1:
		if l.Prev != held.Hash() {
			return fmt.Errorf("%w: list %d does not follow the held list %d", ErrBadDeviceList, l.Seq, held.Seq)
		}
	}
	return nil
}
