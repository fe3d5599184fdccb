package main_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIRenameAndRemoved: a rename reaches the other member; a member
// removed keeps the conversation read-only (listed as removed, its
// history up to the removal, sending refused with a sentence); after
// logout, whoami says the home directory is not logged in.
func TestCLIRenameAndRemoved(t *testing.T) {
	addr, data := freeAddr(t), t.TempDir()
	base := "http://" + addr
	srv := startSandi(t, childEnv(), "serve", "--addr", addr, "--data", data)
	waitHealthy(t, srv, base)
	alice, bob := filepath.Join(t.TempDir(), "alice"), filepath.Join(t.TempDir(), "bob")
	cliOK(t, base, alice, "pw of alice!\n", "register", "alice", "--password-stdin")
	cliOK(t, base, bob, "pw of bob!!!\n", "register", "bob", "--password-stdin")
	conv := strings.TrimSpace(cliOK(t, base, alice, "", "new", "--title", "Lunch", "bob"))
	cliOK(t, base, bob, "", "sync")
	if out := cliOK(t, base, bob, "", "list"); !strings.Contains(out, "Lunch") {
		t.Fatalf("bob's list: %q", out)
	}
	if out := cliOK(t, base, alice, "", "rename", conv[:8], "Dinner", "at", "eight"); !strings.Contains(out, "renamed") {
		t.Fatalf("rename: %q", out)
	}
	cliOK(t, base, bob, "", "sync")
	var cv struct {
		Title  string `json:"title"`
		Status string `json:"status"`
		Unread int    `json:"unread"`
	}
	if err := json.Unmarshal([]byte(cliOK(t, base, bob, "", "--json", "conversations")), &cv); err != nil || cv.Title != "Dinner at eight" || cv.Status != "" || cv.Unread != 0 {
		t.Fatalf("bob's conversation after the rename: %+v %v", cv, err)
	}

	cliOK(t, base, alice, "", "send", conv, "before the removal")
	if got := syncJSON(t, base, bob); len(got) != 1 || got[0] != "alice: before the removal" {
		t.Fatalf("bob synced %q", got)
	}
	cliOK(t, base, alice, "", "remove", conv, "bob")
	cliOK(t, base, alice, "", "send", conv, "after the removal")
	if got := syncJSON(t, base, bob); len(got) != 0 {
		t.Fatalf("removed bob synced %q", got)
	}
	out := cliOK(t, base, bob, "", "conversations")
	if !strings.Contains(out, conv) || !strings.Contains(out, "[removed, read-only]") || !strings.Contains(out, "Dinner at eight") {
		t.Fatalf("bob's conversations after the removal: %q", out)
	}
	hist := cliOK(t, base, bob, "", "history", "Dinner at eight")
	if !strings.Contains(hist, "before the removal") || strings.Contains(hist, "after the removal") {
		t.Fatalf("bob's history after the removal: %q", hist)
	}
	if _, errs, code := cliRun(t, base, bob, "", "send", conv[:8], "still here?"); code != 1 || !strings.Contains(errs, "no longer a member") {
		t.Fatalf("removed bob's send: %d %q", code, errs)
	}

	cliOK(t, base, bob, "", "logout")
	if _, errs, code := cliRun(t, base, bob, "", "whoami"); code != 1 || !strings.Contains(errs, "not logged in") || !strings.Contains(errs, bob) {
		t.Fatalf("whoami after logout: %d %q", code, errs)
	}
}
