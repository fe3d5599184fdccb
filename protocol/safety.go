package protocol

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"
)

// Safety numbers (§10): each party's identity key is hashed
// SafetyIterations times; the first 30 bytes give 30 digits; the two halves
// are ordered so both parties compute the same 60 digits.
const (
	SafetyIterations = 5200
	safetyVersion    = 1
)

func fingerprint(user UserID, id IdentityKey) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(LabelSafetyNumber))
	h.Write(user[:])
	h.Write(id[:])
	var d [sha256.Size]byte
	h.Sum(d[:0])
	for range SafetyIterations - 1 {
		h.Reset()
		h.Write(d[:])
		h.Write(id[:])
		h.Sum(d[:0])
	}
	return d
}

func digits(fp [sha256.Size]byte) string {
	var sb strings.Builder
	for i := 0; i < 30; i += 5 {
		var b [8]byte
		copy(b[3:], fp[i:i+5])
		fmt.Fprintf(&sb, "%05d", binary.BigEndian.Uint64(b[:])%100000)
	}
	return sb.String()
}

// SafetyNumber returns the 60-digit safety number of two parties and the QR
// payload that encodes it: version byte || the lower fingerprint || the
// higher one (65 bytes). Arguments may come in either order.
func SafetyNumber(a UserID, aKey IdentityKey, b UserID, bKey IdentityKey) (number string, qr []byte) {
	fa, fb := fingerprint(a, aKey), fingerprint(b, bKey)
	if bytes.Compare(fa[:], fb[:]) > 0 {
		fa, fb = fb, fa
	}
	qr = append([]byte{safetyVersion}, fa[:]...)
	qr = append(qr, fb[:]...)
	return digits(fa) + digits(fb), qr
}

// FormatSafetyNumber splits a 60-digit number into 12 groups of 5 for display.
func FormatSafetyNumber(n string) string {
	var parts []string
	for i := 0; i+5 <= len(n); i += 5 {
		parts = append(parts, n[i:i+5])
	}
	return strings.Join(parts, " ")
}

// SafetyQRMatches reports whether a scanned QR payload equals the one
// computed locally.
func SafetyQRMatches(scanned, local []byte) bool {
	return len(scanned) == len(local) && bytes.Equal(scanned, local)
}
