package protocol

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
)

// The small-order table that Verify and the decoders compare R and keys
// with is exactly the set of canonical encodings that keys.json lists as
// of small order (and not as non-canonical): the 8 points of the torsion
// subgroup, each once.
func TestSmallOrderTable(t *testing.T) {
	b, err := os.ReadFile("../testdata/vectors/keys.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		IdentityKeys []struct {
			Encoding string `json:"encoding"`
			Reason   string `json:"reason"`
		} `json:"identity_keys"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, k := range v.IdentityKeys {
		if strings.HasPrefix(k.Reason, "small order") {
			want = append(want, k.Encoding)
		}
	}
	var got []string
	for _, e := range smallOrder() {
		got = append(got, hex.EncodeToString(e[:]))
	}
	slices.Sort(want)
	slices.Sort(got)
	if len(want) != 8 || !slices.Equal(got, want) {
		t.Fatalf("table %v, vectors %v", got, want)
	}
}
