package protocol

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
)

// IDSize is the size in bytes of every identifier (§2.2).
const IDSize = 16

// UserID names an account. The server assigns it at registration.
type UserID [IDSize]byte

// DeviceID names one device of an account. The server assigns it.
type DeviceID [IDSize]byte

// ConversationID names a conversation. The creating client draws it.
type ConversationID [IDSize]byte

// String returns the 32-character lower-case hex form.
func (id UserID) String() string { return hex.EncodeToString(id[:]) }

// String returns the 32-character lower-case hex form.
func (id DeviceID) String() string { return hex.EncodeToString(id[:]) }

// String returns the 32-character lower-case hex form.
func (id ConversationID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether id is all zero bytes (never a valid identifier).
func (id UserID) IsZero() bool { return id == UserID{} }

// IsZero reports whether id is all zero bytes (never a valid identifier).
func (id DeviceID) IsZero() bool { return id == DeviceID{} }

// IsZero reports whether id is all zero bytes (never a valid identifier).
func (id ConversationID) IsZero() bool { return id == ConversationID{} }

// MarshalText implements encoding.TextMarshaler.
func (id UserID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// MarshalText implements encoding.TextMarshaler.
func (id DeviceID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// MarshalText implements encoding.TextMarshaler.
func (id ConversationID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *UserID) UnmarshalText(b []byte) error { return parseID(id[:], b, "user") }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *DeviceID) UnmarshalText(b []byte) error { return parseID(id[:], b, "device") }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *ConversationID) UnmarshalText(b []byte) error {
	return parseID(id[:], b, "conversation")
}

// ParseUserID parses the hex form of a user id.
func ParseUserID(s string) (id UserID, err error) { return id, id.UnmarshalText([]byte(s)) }

// ParseDeviceID parses the hex form of a device id.
func ParseDeviceID(s string) (id DeviceID, err error) { return id, id.UnmarshalText([]byte(s)) }

// ParseConversationID parses the hex form of a conversation id.
func ParseConversationID(s string) (id ConversationID, err error) {
	return id, id.UnmarshalText([]byte(s))
}

func parseID(dst, src []byte, kind string) error {
	if len(src) != 2*IDSize {
		return fmt.Errorf("%s id: want %d hex characters, got %d", kind, 2*IDSize, len(src))
	}
	var tmp [IDSize]byte
	if _, err := hex.Decode(tmp[:], src); err != nil {
		return fmt.Errorf("%s id: %w", kind, err)
	}
	for _, c := range src {
		if c >= 'A' && c <= 'F' {
			return fmt.Errorf("%s id: upper-case hex is not canonical", kind)
		}
	}
	if tmp == [IDSize]byte{} {
		return fmt.Errorf("%s id: all zero", kind)
	}
	copy(dst, tmp[:])
	return nil
}

// NewConversationID draws a random conversation id.
func NewConversationID() ConversationID {
	var id ConversationID
	Random(id[:])
	return id
}

// NewUserID draws a random user id.
func NewUserID() UserID {
	var id UserID
	Random(id[:])
	return id
}

// NewDeviceID draws a random device id.
func NewDeviceID() DeviceID {
	var id DeviceID
	Random(id[:])
	return id
}

// Random fills b from crypto/rand. crypto/rand.Read is documented never to
// fail (it crashes the program instead); the check is kept so that no error
// from a crypto call is ever ignored.
func Random(b []byte) {
	if _, err := rand.Read(b); err != nil {
		panic("protocol: crypto/rand failed: " + err.Error())
	}
}
