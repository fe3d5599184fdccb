package sandi_test

import (
	"os/exec"
	"strings"
	"testing"
)

// importRules says which packages may not depend on which, each with its
// reason. Transitive rules follow every dependency; direct rules only the
// package's own imports (the standard library itself uses os). Tests are
// not counted.
var importRules = []struct {
	from, forbidden string
	direct          bool
	why             string
}{
	{"sandi.dev/internal/server", "sandi.dev/protocol/secret", false, "the server never holds private keys, conversation keys or plaintext"},
	{"sandi.dev/internal/store/...", "sandi.dev/protocol/secret", false, "the store keeps what the server may hold: ciphertext and public keys"},
	{"sandi.dev/internal/testpg", "sandi.dev/protocol/secret", false, "test infrastructure of the server side"},
	{"sandi.dev/internal/blob/...", "sandi.dev/protocol/secret", false, "the blob stores keep ciphertext made on the clients"},
	{"sandi.dev/internal/tests3", "sandi.dev/protocol/secret", false, "test infrastructure of the server side"},
	{"sandi.dev/protocol", "sandi.dev/protocol/secret", false, "public structures must not need private-key code"},
	{"sandi.dev/cmd/...", "github.com/nats-io/nats-server/v2/server", false, "the NATS server is embedded by tests only, never in a sandi binary"},
	{"sandi.dev/cmd/...", "github.com/andybalholm/brotli", false, "the brotli encoder runs when the web client is generated (web/internal/brotli), never in a sandi binary"},
	{"sandi.dev/protocol/...", "log", true, "the protocol core does no logging"},
	{"sandi.dev/protocol/...", "log/slog", true, "the protocol core does no logging"},
	{"sandi.dev/protocol/...", "os", true, "the protocol core does no I/O"},
	{"sandi.dev/protocol/...", "net", true, "the protocol core does no I/O"},
	{"sandi.dev/protocol/...", "time", true, "the protocol core reads no clock: times are passed in"},
}

func TestImportRules(t *testing.T) {
	for _, r := range importRules {
		args := []string{"list", "-deps", "-f", "{{.ImportPath}}", r.from}
		if r.direct {
			args = []string{"list", "-f", "{{join .Imports \"\\n\"}}", r.from}
		}
		out, err := exec.Command("go", args...).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", r.from, err)
		}
		deps := strings.Fields(string(out))
		if len(deps) == 0 {
			t.Fatalf("go list %s listed nothing", r.from)
		}
		for _, d := range deps {
			if d == r.forbidden {
				t.Errorf("%s depends on %s: %s", r.from, r.forbidden, r.why)
			}
		}
	}
}
