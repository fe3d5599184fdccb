package main_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIRequests: a conversation from a stranger is listed by `sandi
// requests` and marked in `sync`, which leaves it unread; `requests
// accept` makes it an ordinary conversation; `requests block` leaves it and
// the server then refuses its sender; `blocked`, `unblock` and `block`
// manage the list, and mistakes are refused with a sentence.
func TestCLIRequests(t *testing.T) {
	base, homes := cliWorld(t, "alice", "bob", "mallory")
	a, b, m := homes["alice"], homes["bob"], homes["mallory"]
	fromBob := newConv(t, base, b, "alice")
	cliOK(t, base, b, "", "send", fromBob, "hi alice")
	fromMallory := newConv(t, base, m, "alice")
	cliOK(t, base, m, "", "send", fromMallory, "buy now")

	out, errs, code := cliRun(t, base, a, "", "sync")
	if code != 0 || !strings.Contains(out, "["+fromBob[:8]+"] bob: hi alice") || !strings.Contains(errs, "["+fromBob[:8]+"] is a message request") {
		t.Fatalf("sync does not mark the request: exit %d\n%s\n%s", code, out, errs)
	}
	out = cliOK(t, base, a, "", "requests")
	if !strings.Contains(out, fromBob+"  from bob") || !strings.Contains(out, fromMallory+"  from mallory") {
		t.Fatalf("requests:\n%s", out)
	}
	if got := unread(t, base, a); got[fromBob] != 1 {
		t.Fatalf("after sync, the request's unread count is %d; want 1", got[fromBob])
	}
	cliOK(t, base, a, "", "requests", "accept", fromBob[:6])
	cliOK(t, base, b, "", "send", fromBob, "again")
	if out := cliOK(t, base, a, "", "sync"); !strings.Contains(out, "["+fromBob[:8]+"] bob: again") {
		t.Fatalf("sync after accepting:\n%s", out)
	}
	if got := unread(t, base, a); got[fromBob] != 0 {
		t.Fatalf("after accepting and syncing, unread %d", got[fromBob])
	}

	cliOK(t, base, a, "", "requests", "block", fromMallory)
	if out := cliOK(t, base, a, "", "requests"); !strings.Contains(out, "no message requests") {
		t.Fatalf("requests after blocking:\n%s", out)
	}
	_, errs, code = cliRun(t, base, m, "", "new", "alice")
	if code != 1 || !strings.Contains(errs, "does not accept conversations from you") {
		t.Fatalf("mallory after the block: exit %d, %q", code, errs)
	}
	var bl struct{ Username string }
	if err := json.Unmarshal([]byte(cliOK(t, base, a, "", "--json", "blocked")), &bl); err != nil || bl.Username != "mallory" {
		t.Fatalf("blocked --json: %v %+v", err, bl)
	}
	cliOK(t, base, a, "", "unblock", "mallory")
	if out := cliOK(t, base, a, "", "blocked"); !strings.Contains(out, "nobody is blocked") {
		t.Fatalf("blocked after unblock:\n%s", out)
	}
	newConv(t, base, m, "alice")

	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"unblock", "mallory"}, 1, "mallory is not blocked"},
		{[]string{"block", "alice"}, 1, "an account cannot block itself"},
		{[]string{"block", "nobody"}, 1, "nobody"},
		{[]string{"requests", "accept", fromBob}, 1, "is not a message request"},
		{[]string{"requests", "open", fromBob}, 2, "usage: sandi requests"},
		{[]string{"block"}, 2, "usage: sandi block USER"},
	} {
		_, errs, code := cliRun(t, base, a, "", c.args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Fatalf("sandi %q: exit %d, %q; want %d and %q", c.args, code, errs, c.code, c.want)
		}
	}
}

// TestCLIDeviceRename: a device starts as "CLI on HOST", `devices rename`
// gives it a signed name that `devices` shows, and a bad name is refused.
func TestCLIDeviceRename(t *testing.T) {
	base, homes := cliWorld(t, "alice")
	a := homes["alice"]
	var me struct{ Device string }
	if err := json.Unmarshal([]byte(cliOK(t, base, a, "", "--json", "whoami")), &me); err != nil || len(me.Device) != 32 {
		t.Fatalf("whoami: %v %q", err, me.Device)
	}
	if out := cliOK(t, base, a, "", "devices"); !strings.Contains(out, "CLI on ") {
		t.Fatalf("the default name is not \"CLI on HOST\":\n%s", out)
	}
	cliOK(t, base, a, "", "devices", "rename", me.Device[:6], "laptop", "at", "home")
	var dev struct {
		Name       string
		NameSigned bool
	}
	if err := json.Unmarshal([]byte(cliOK(t, base, a, "", "--json", "devices")), &dev); err != nil || dev.Name != "laptop at home" || !dev.NameSigned {
		t.Fatalf("devices --json after the rename: %v %+v", err, dev)
	}
	if _, errs, code := cliRun(t, base, a, "", "devices", "rename", me.Device, strings.Repeat("n", 65)); code != 1 || !strings.Contains(errs, "1 to 64 bytes") {
		t.Fatalf("a 65-byte name: exit %d, %q", code, errs)
	}
	if _, errs, code := cliRun(t, base, a, "", "devices", "rename", me.Device); code != 2 || !strings.Contains(errs, "usage: sandi devices rename") {
		t.Fatalf("rename without a name: exit %d, %q", code, errs)
	}
}

// TestCLIBlockCap: past the server's cap on a block list (`serve
// --max-blocks`), `sandi block` exits 1 with a sentence saying the list is
// full, the server's limit and why unblocking does not make room; the
// list is unchanged, and unblocking and blocking again an account on it
// still work.
func TestCLIBlockCap(t *testing.T) {
	base, homes := cliWorldServe(t, []string{"--max-blocks", "1"}, "alice", "bob", "carol")
	a := homes["alice"]
	cliOK(t, base, a, "", "block", "bob")
	_, errs, code := cliRun(t, base, a, "", "block", "carol")
	for _, want := range []string{"cannot block carol: your block list is full", "at most 1 accounts on this server", "unblocking does not make room"} {
		if code != 1 || !strings.Contains(errs, want) {
			t.Fatalf("block past the cap: exit %d, %q; want 1 and %q", code, errs, want)
		}
	}
	if out := cliOK(t, base, a, "", "blocked"); !strings.Contains(out, "bob") || strings.Contains(out, "carol") {
		t.Fatalf("blocked after the refusal:\n%s", out)
	}
	newConv(t, base, homes["carol"], "alice")
	cliOK(t, base, a, "", "unblock", "bob")
	cliOK(t, base, a, "", "block", "bob")
	if _, errs, code := cliRun(t, base, a, "", "block", "carol"); code != 1 || !strings.Contains(errs, "your block list is full") {
		t.Fatalf("block past the cap, an unblock kept: exit %d, %q", code, errs)
	}
}

// TestCLIDeviceCap: past the server's cap on an account's devices (`serve
// --max-devices`), `sandi login` exits 1 with the server's sentence saying
// how many and what to do (remove a device); once a device logs out, the
// login goes through.
func TestCLIDeviceCap(t *testing.T) {
	base, homes := cliWorldServe(t, []string{"--max-devices", "1"}, "alice")
	fresh := filepath.Join(t.TempDir(), "fresh")
	_, errs, code := cliRun(t, base, fresh, "password of alice\n", "login", "alice", "--password-stdin")
	for _, want := range []string{"already has 1 devices signed in, the most this server allows", "Remove a device you no longer use (sandi devices remove ID or sandi sessions remove ID"} {
		if code != 1 || !strings.Contains(errs, want) {
			t.Fatalf("login past the cap: exit %d, %q; want 1 and %q", code, errs, want)
		}
	}
	cliOK(t, base, homes["alice"], "", "logout")
	cliOK(t, base, fresh, "password of alice\n", "login", "alice", "--password-stdin")
}
