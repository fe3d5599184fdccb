package protocol_test

import (
	"testing"

	"sandi.dev/protocol"
)

// FuzzPreKeyCreated: PreKeyCreated accepts what ParsePreKey accepts (and
// only inputs of a pre-key's length and a known kind), with the same kind
// and creation time.
func FuzzPreKeyCreated(f *testing.F) {
	// Compact inputs, as FuzzParsePreKey: the X-Wing keys are referenced,
	// not spelled out, so the engine fuzzes instead of minimizing (see
	// expand).
	blobs := kemBlobs(f)
	for _, s := range preKeySeeds(f) {
		f.Add(compact(s, blobs))
	}
	f.Add([]byte{3, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, cin []byte) {
		if len(cin) > maxCompactInput {
			return
		}
		in := expand(cin, blobs)
		kind, created, err := protocol.PreKeyCreated(in)
		if err != nil {
			if _, perr := protocol.ParsePreKey(in); perr == nil {
				t.Fatalf("ParsePreKey accepts what PreKeyCreated refuses (%v)", err)
			}
			return
		}
		if len(in) != protocol.PreKeySize || kind < protocol.SignedPreKey || kind > protocol.LastResortPreKey {
			t.Fatalf("accepted %d bytes of kind %d", len(in), kind)
		}
		if k, perr := protocol.ParsePreKey(in); perr == nil && (k.Kind != kind || k.Created != created) {
			t.Fatalf("kind %d time %d, ParsePreKey says %d %d", kind, created, k.Kind, k.Created)
		}
	})
}
