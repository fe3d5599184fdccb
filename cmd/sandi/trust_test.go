package main_test

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sandi.dev/client"
)

// TestCLITrust: bob verifies alice; alice resets her identity; bob's
// sending waits, says what to do, and works once he accepts the new key.
func TestCLITrust(t *testing.T) {
	addr := freeAddr(t)
	base := "http://" + addr
	srv := startSandi(t, childEnv(), "serve", "--addr", addr, "--data", t.TempDir())
	waitHealthy(t, srv, base)
	alice, alice2, bob := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "a2"), filepath.Join(t.TempDir(), "b")
	cliOK(t, base, alice, "pw of alice!\n", "register", "alice", "--password-stdin")
	cliOK(t, base, bob, "pw of bob!!\n", "register", "bob", "--password-stdin")
	var created struct{ ID string }
	if err := json.Unmarshal([]byte(cliOK(t, base, alice, "", "--json", "new", "bob")), &created); err != nil {
		t.Fatal(err)
	}
	conv := created.ID

	// A wrong number (typed on standard input) is refused and changes nothing.
	number := strings.TrimSpace(cliOK(t, base, alice, "", "safety-number", "bob"))
	wrong := strings.Replace(number, "1", "2", 1)
	if wrong == number {
		wrong = strings.Replace(number, "0", "3", 1)
	}
	if _, errs, code := cliRun(t, base, bob, wrong+"\n", "verify", "alice"); code != 1 || !strings.Contains(errs, "does not match") {
		t.Fatalf("verify with a wrong number: exit %d, %q", code, errs)
	}
	if out := cliOK(t, base, bob, "", "contacts"); !strings.Contains(out, "unverified") {
		t.Fatalf("contacts: %q", out)
	}
	cliOK(t, base, bob, "", "verify", "alice", "--number", strings.ReplaceAll(number, " ", ""))
	var ct client.Contact
	if err := json.Unmarshal([]byte(cliOK(t, base, bob, "", "--json", "contacts")), &ct); err != nil || !ct.Verified || ct.Username != "alice" {
		t.Fatalf("contacts: %+v %v", ct, err)
	}

	if _, errs, code := cliRun(t, base, bob, "", "reject", "alice"); code != 1 || !strings.Contains(errs, "no identity change") {
		t.Fatalf("reject with nothing pending: exit %d, %q", code, errs)
	}

	// Alice lost her device and resets her identity from a new one.
	cliOK(t, base, alice2, "pw of alice!\n", "login", "alice", "--password-stdin", "--reset")
	syncJSON(t, base, bob)
	_, errs, code := cliRun(t, base, bob, "", "send", conv, "still you?")
	if code != 1 || !strings.Contains(errs, "sandi accept alice") {
		t.Fatalf("send to a changed verified contact: exit %d, %q", code, errs)
	}
	if out := cliOK(t, base, bob, "", "contacts"); !strings.Contains(out, "CHANGED") {
		t.Fatalf("contacts: %q", out)
	}
	// The alarm log, exactly as the SDK holds it.
	var kinds []string
	for line := range strings.Lines(cliOK(t, base, bob, "", "--json", "alarms", conv)) {
		dec := json.NewDecoder(bytes.NewReader([]byte(line)))
		dec.DisallowUnknownFields()
		var a client.Alarm
		if err := dec.Decode(&a); err != nil {
			t.Fatalf("alarms printed %q: %v", line, err)
		}
		if back, _ := json.Marshal(a); string(back) != strings.TrimSpace(line) {
			t.Fatalf("alarms printed %q, not the alarm %s", line, back)
		}
		kinds = append(kinds, a.Kind)
	}
	if !slices.Contains(kinds, client.AlarmIdentityBlocked) {
		t.Fatalf("alarm kinds %q", kinds)
	}
	if out := cliOK(t, base, bob, "", "alarms"); !strings.Contains(out, "identity_blocked ["+conv[:8]+"]") {
		t.Fatalf("alarms: %q", out)
	}

	var acc struct {
		Accepted     bool
		Old          string `json:"oldSafetyNumber"`
		SafetyNumber string
	}
	if err := json.Unmarshal([]byte(cliOK(t, base, bob, "", "--json", "accept", "alice")), &acc); err != nil || !acc.Accepted {
		t.Fatalf("accept: %+v %v", acc, err)
	}
	fresh := strings.ReplaceAll(strings.TrimSpace(cliOK(t, base, alice2, "", "safety-number", "bob")), " ", "")
	if acc.Old != strings.ReplaceAll(number, " ", "") || acc.SafetyNumber != fresh {
		t.Fatalf("accept printed %+v; old %s new %s", acc, number, fresh)
	}
	if _, errs, code := cliRun(t, base, bob, "", "accept", "alice"); code != 1 || !strings.Contains(errs, "no identity change") {
		t.Fatalf("accepting twice: exit %d, %q", code, errs)
	}
	cliOK(t, base, bob, "", "send", conv, "welcome back")
	if got := syncJSON(t, base, alice2); !slices.Equal(got, []string{"bob: welcome back"}) {
		t.Fatalf("alice synced %q", got)
	}
}
