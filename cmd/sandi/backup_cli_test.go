package main_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"sandi.dev/protocol/archive"
)

// identityLine is the identity line `sandi whoami` prints.
func identityLine(t *testing.T, base, home string) string {
	t.Helper()
	for _, l := range strings.Split(cliOK(t, base, home, "", "whoami"), "\n") {
		if strings.HasPrefix(l, "identity") {
			return l
		}
	}
	t.Fatal("whoami printed no identity")
	return ""
}

// TestCLIBackupAndTransfer: alice turns backups on; on a fresh device a
// typo and a wrong recovery key fail with a sentence and change nothing,
// the right key brings back her identity and history (and says when the
// backup was made) (what bob sent while
// she was away included); a device linked with --history all gets the
// history too; backup disable turns them off.
func TestCLIBackupAndTransfer(t *testing.T) {
	addr := freeAddr(t)
	base := "http://" + addr
	srv := startSandi(t, childEnv(), "serve", "--addr", addr, "--data", t.TempDir())
	waitHealthy(t, srv, base)
	dir := t.TempDir()
	first, fresh, linked, bob := filepath.Join(dir, "a1"), filepath.Join(dir, "a2"), filepath.Join(dir, "a3"), filepath.Join(dir, "b")
	cliOK(t, base, first, "pw of alice!\n", "register", "alice", "--password-stdin")
	cliOK(t, base, bob, "pw of bob!!\n", "register", "bob", "--password-stdin")
	cliOK(t, base, first, "", "new", "--title", "plans", "bob")
	cliOK(t, base, first, "", "send", "plans", "first from alice")
	syncJSON(t, base, bob)
	cliOK(t, base, bob, "", "send", "plans", "first from bob")
	syncJSON(t, base, first)

	var en struct{ RecoveryKey string }
	if err := json.Unmarshal([]byte(cliOK(t, base, first, "", "--json", "backup", "enable")), &en); err != nil || len(en.RecoveryKey) != 39 {
		t.Fatalf("backup enable: %+v %v", en, err)
	}
	cliOK(t, base, bob, "", "send", "plans", "while you were away")

	cliOK(t, base, fresh, "pw of alice!\n", "login", "alice", "--password-stdin")
	typo := []byte(en.RecoveryKey)
	typo[0] = map[bool]byte{true: 'B', false: 'A'}[typo[0] == 'A']
	for key, want := range map[string]string{string(typo): "typo", archive.NewRecoveryKey().String(): "does not open"} {
		if _, errs, code := cliRun(t, base, fresh, key+"\n", "restore"); code != 1 || !strings.Contains(errs, want) {
			t.Fatalf("restore with %q: exit %d, %q", key, code, errs)
		}
	}
	if out := cliOK(t, base, fresh, "", "whoami"); !strings.Contains(out, "none yet") {
		t.Fatalf("a failed restore changed the device: %q", out)
	}
	if out := cliOK(t, base, fresh, strings.ToLower(en.RecoveryKey)+"\n", "restore"); !strings.Contains(out, "from the backup made ") {
		t.Fatalf("restore does not say when the backup was made: %q", out)
	}
	if a, b := identityLine(t, base, first), identityLine(t, base, fresh); a != b {
		t.Fatalf("restored %q, want %q", b, a)
	}
	hist := cliOK(t, base, fresh, "", "history", "plans")
	for _, want := range []string{"first from alice", "first from bob", "while you were away"} {
		if !strings.Contains(hist, want) {
			t.Fatalf("restored history lacks %q:\n%s", want, hist)
		}
	}

	// A device linked with the history.
	cliOK(t, base, linked, "pw of alice!\n", "login", "alice", "--password-stdin")
	cmd, sc, errb, code := startLink(t, linked)
	if _, errs, code := cliRun(t, base, first, "", "link", "--history", "yesterday", code); code != 2 || !strings.Contains(errs, "--history") {
		t.Fatalf("a bad --history: exit %d %q", code, errs)
	}
	cliOK(t, base, first, "", "link", "--history", "all", code)
	if !sc.Scan() || !strings.Contains(sc.Text(), `"linked":true`) {
		t.Fatalf("link ended with %q; stderr %q", sc.Text(), errb.String())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if hist := cliOK(t, base, linked, "", "history", "plans"); !strings.Contains(hist, "first from bob") {
		t.Fatalf("linked history:\n%s", hist)
	}

	cliOK(t, base, fresh, "", "backup", "disable")
	if out := cliOK(t, base, fresh, "", "backup", "status"); !strings.Contains(out, "off") {
		t.Fatalf("status after disable: %q", out)
	}
	if _, errs, code := cliRun(t, base, fresh, "", "backup", "now"); code != 1 || !strings.Contains(errs, "not enabled") {
		t.Fatalf("backup now when off: exit %d %q", code, errs)
	}
}
