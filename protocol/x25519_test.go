package protocol_test

// Low-order and all-zero X25519 public values are refused, both as bare
// points and as the X25519 half of an X-Wing pre-key. The cases are the
// Wycheproof x25519 test vectors flagged LowOrderPublic or ZeroSharedSecret
// (testdata/wycheproof_x25519_loworder.json, Apache-2.0, source named in the
// file).

import (
	"bytes"
	"crypto/ecdh"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"sandi.dev/protocol"
)

type wycheproofLowOrder struct {
	Source  string `json:"source"`
	License string `json:"license"`
	Tests   []struct {
		TcID    int      `json:"tcId"`
		Comment string   `json:"comment"`
		Flags   []string `json:"flags"`
		Public  string   `json:"public"`
	} `json:"tests"`
}

const mlkemEncapsulationKeySize = protocol.KEMPublicKeySize - 32 // X-Wing: ML-KEM-768 key || X25519 point

// validXWing returns the public key of an X-Wing key pair made from a fixed
// seed.
func validXWing(t *testing.T) []byte {
	t.Helper()
	kem, _, _ := protocol.Suite()
	priv, err := kem.NewPrivateKey(fixedBytes("x25519 test kem", 32))
	if err != nil {
		t.Fatal(err)
	}
	pub := priv.PublicKey().Bytes()
	if len(pub) != protocol.KEMPublicKeySize {
		t.Fatalf("X-Wing public key of %d bytes", len(pub))
	}
	return pub
}

func TestX25519LowOrderRejected(t *testing.T) {
	raw, err := os.ReadFile("testdata/wycheproof_x25519_loworder.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc wycheproofLowOrder
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(doc.Source, "wycheproof") || !strings.Contains(doc.License, "Apache-2.0") {
		t.Fatalf("vector file does not name its source and licence: %q, %q", doc.Source, doc.License)
	}
	if len(doc.Tests) == 0 {
		t.Fatal("no test cases in the vector file")
	}

	valid := validXWing(t)
	if _, err := protocol.ParseKEMPublicKey(valid); err != nil {
		t.Fatalf("control: a normal X-Wing key is refused: %v", err)
	}
	if err := protocol.CheckX25519Point(valid[mlkemEncapsulationKeySize:]); err != nil {
		t.Fatalf("control: a normal X25519 point is refused: %v", err)
	}

	distinct := map[string]bool{}
	for _, tc := range doc.Tests {
		if !slices.Contains(tc.Flags, "LowOrderPublic") && !slices.Contains(tc.Flags, "ZeroSharedSecret") {
			t.Errorf("tcId %d: flags %v are not a low-order case", tc.TcID, tc.Flags)
			continue
		}
		p, err := hex.DecodeString(tc.Public)
		if err != nil || len(p) != 32 {
			t.Errorf("tcId %d: bad public value %q", tc.TcID, tc.Public)
			continue
		}
		distinct[tc.Public] = true
		if err := protocol.CheckX25519Point(p); !errors.Is(err, protocol.ErrBadKey) {
			t.Errorf("tcId %d (%s, %v): CheckX25519Point(%s) = %v, want ErrBadKey", tc.TcID, tc.Comment, tc.Flags, tc.Public, err)
		}
		k := bytes.Clone(valid)
		copy(k[mlkemEncapsulationKeySize:], p)
		if got, err := protocol.ParseKEMPublicKey(k); !errors.Is(err, protocol.ErrBadKey) || !got.IsZero() {
			t.Errorf("tcId %d (%s): X-Wing key with this X25519 half: %v, want ErrBadKey", tc.TcID, tc.Comment, err)
		}
	}
	// 0, 1, the two points of order 8, p-1, p, p+1, and encodings of
	// these with the top bit set: at least the 12 well-known ones.
	if len(distinct) < 12 {
		t.Errorf("only %d distinct low-order encodings tested", len(distinct))
	}
	t.Logf("%d cases, %d distinct encodings refused", len(doc.Tests), len(distinct))
}

func TestX25519ValidPointsAccepted(t *testing.T) {
	for i := range 32 {
		priv, err := ecdh.X25519().NewPrivateKey(fixedBytes("x25519 point "+string(rune('a'+i)), 32))
		if err != nil {
			t.Fatal(err)
		}
		p := priv.PublicKey().Bytes()
		if err := protocol.CheckX25519Point(p); err != nil {
			t.Errorf("point %x refused: %v", p, err)
		}
	}
	base := make([]byte, 32)
	base[0] = 9 // the base point
	if err := protocol.CheckX25519Point(base); err != nil {
		t.Errorf("base point refused: %v", err)
	}
	for _, n := range []int{0, 31, 33} {
		if err := protocol.CheckX25519Point(make([]byte, n)); !errors.Is(err, protocol.ErrBadKey) {
			t.Errorf("%d-byte point: %v, want ErrBadKey", n, err)
		}
	}
}
