package secret

import (
	"errors"
	"math/bits"
)

// Padding of §9.3: plaintext || 0x80 || zeros, to max(MinPadded,
// padme(len+1)). Padmé limits what the length leaks to O(log log L) bits
// with at most 12% overhead.
const (
	MinPadded    = 64
	MaxPlaintext = 64 * 1024
)

// ErrPadding reports a decrypted plaintext whose padding is not canonical.
var ErrPadding = errors.New("invalid padding")

// padme returns the Padmé length for n > 0.
func padme(n int) int {
	if n < 2 {
		return n
	}
	e := bits.Len(uint(n)) - 1 // floor(log2 n)
	s := bits.Len(uint(e))     // floor(log2 e) + 1
	mask := (1 << (e - s)) - 1
	return (n + mask) &^ mask
}

// PaddedLen is the padded size of an n-byte plaintext.
func PaddedLen(n int) int { return max(MinPadded, padme(n+1)) }

// Pad returns p padded per §9.3.
func Pad(p []byte) []byte {
	out := make([]byte, PaddedLen(len(p)))
	copy(out, p)
	out[len(p)] = 0x80
	return out
}

// Unpad strips the padding, refusing any form Pad would not have produced.
func Unpad(p []byte) ([]byte, error) {
	i := len(p) - 1
	for i >= 0 && p[i] == 0 {
		i--
	}
	if i < 0 || p[i] != 0x80 || PaddedLen(i) != len(p) {
		return nil, ErrPadding
	}
	return p[:i], nil
}
