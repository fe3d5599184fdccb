package main_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

// uploadBundle gives an account registered over raw HTTP (reg: the answer
// of register) a bundle under a fresh identity key: only a device with
// keys may open the event stream or read conversations.
func uploadBundle(t *testing.T, base string, reg map[string]any) {
	t.Helper()
	user, err1 := protocol.ParseUserID(reg["userId"].(string))
	dev, err2 := protocol.ParseDeviceID(reg["deviceId"].(string))
	if err1 != nil || err2 != nil {
		t.Fatalf("register answered %v", reg)
	}
	b, _, err := secret.NewBundle(secret.NewIdentity(), user, dev, 1, 1, time.Now().Unix())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]string{"bundle": base64.RawURLEncoding.EncodeToString(b.Marshal())})
	req, _ := http.NewRequest("POST", base+"/api/keys/prekey-bundle", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+reg["token"].(string))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("upload bundle: %d", resp.StatusCode)
	}
}

// TestCLISessions: a password-only login is announced by `sync` on the
// account's device, listed KEYLESS by `devices` and `sessions`, refused
// the account's conversations, and signed out by `sessions remove`;
// `passwd --sign-out-others` changes the password and signs out the rest.
func TestCLISessions(t *testing.T) {
	addr := freeAddr(t)
	base := "http://" + addr
	srv := startSandi(t, childEnv(), "serve", "--addr", addr, "--data", t.TempDir(), "--session-idle", "30d")
	waitHealthy(t, srv, base)
	alice, snoop, snoop2 := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "s"), filepath.Join(t.TempDir(), "s2")
	cliOK(t, base, alice, "pw of alice!\n", "register", "alice", "--password-stdin")
	cliOK(t, base, snoop, "pw of alice!\n", "login", "alice", "--password-stdin")
	var who struct{ Device string }
	if err := json.Unmarshal([]byte(cliOK(t, base, snoop, "", "--json", "whoami")), &who); err != nil {
		t.Fatal(err)
	}

	if _, errs, _ := cliRun(t, base, alice, "", "sync"); !strings.Contains(errs, "WARNING: a new sign-in") || !strings.Contains(errs, who.Device) {
		t.Fatalf("sync after a login printed %q, want a warning naming %s", errs, who.Device)
	}
	for _, cmd := range []string{"devices", "sessions"} {
		out := cliOK(t, base, alice, "", cmd)
		if strings.Count(out, "\n") != 2 || !strings.Contains(out, who.Device) || !strings.Contains(out, "KEYLESS") {
			t.Fatalf("%s: %q, want the keyless session marked", cmd, out)
		}
	}
	if out := cliOK(t, base, snoop, "", "sessions"); strings.Count(out, "\n") != 1 || !strings.Contains(out, "(this device)") {
		t.Fatalf("the keyless session lists %q", out)
	}
	if _, errs, code := cliRun(t, base, snoop, "", "list"); code != 1 || !strings.Contains(errs, "keys_required") && !strings.Contains(errs, "identity") {
		t.Fatalf("the keyless session listed conversations: %d %q", code, errs)
	}
	cliOK(t, base, alice, "", "sessions", "remove", who.Device[:8])
	if _, _, code := cliRun(t, base, snoop, "", "sessions"); code != 1 {
		t.Fatal("a signed-out session still lists")
	}

	cliOK(t, base, snoop2, "pw of alice!\n", "login", "alice", "--password-stdin")
	if _, errs, code := cliRun(t, base, alice, "wrong pw!!\nnew pw of alice\n", "passwd", "--password-stdin"); code != 1 || !strings.Contains(errs, "current password is wrong") {
		t.Fatalf("passwd with a wrong password: %d %q", code, errs)
	}
	if _, errs, code := cliRun(t, base, alice, "pw of alice!\n", "passwd", "--password-stdin"); code != 2 || errs == "" {
		t.Fatalf("passwd with one line: %d %q", code, errs)
	}
	out := cliOK(t, base, alice, "pw of alice!\nnew pw of alice\n", "--json", "passwd", "--password-stdin", "--sign-out-others")
	var res struct{ SignedOut []string }
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.SignedOut) != 1 {
		t.Fatalf("passwd printed %q", out)
	}
	if _, _, code := cliRun(t, base, snoop2, "", "sessions"); code != 1 {
		t.Fatal("a session signed out by passwd still lists")
	}
	if _, _, code := cliRun(t, base, filepath.Join(t.TempDir(), "x"), "pw of alice!\n", "login", "alice", "--password-stdin"); code != 1 {
		t.Fatal("the old password still signs in")
	}
	cliOK(t, base, filepath.Join(t.TempDir(), "y"), "new pw of alice\n", "login", "alice", "--password-stdin")
}
