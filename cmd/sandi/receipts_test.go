package main_test

import (
	"strings"
	"testing"
)

// TestCLIReceipts: sync acknowledges what it printed (read) and what it
// received (delivered), and history shows the sender whom; with read
// receipts off, or --peek, only delivery is told; a bad setting is refused.
func TestCLIReceipts(t *testing.T) {
	base, homes := cliWorld(t, "alice", "bob")
	a, b := homes["alice"], homes["bob"]
	newConv(t, base, b, "alice") // no request (which sends no receipts): bob knows alice
	conv := newConv(t, base, a, "bob")
	cliOK(t, base, a, "", "send", conv, "first")
	cliOK(t, base, b, "", "sync")
	cliOK(t, base, a, "", "sync")
	if out := cliOK(t, base, a, "", "history", conv); !strings.Contains(out, " alice: first\n           ✓ read by bob\n") {
		t.Fatalf("alice's history does not show bob's read receipt:\n%s", out)
	}
	if out := cliOK(t, base, b, "", "history", conv); strings.Contains(out, "✓") {
		t.Fatalf("bob's history shows receipts on alice's message:\n%s", out)
	}

	cliOK(t, base, a, "", "send", conv, "second")
	cliOK(t, base, b, "", "sync", "--peek")
	cliOK(t, base, a, "", "sync")
	if out := cliOK(t, base, a, "", "history", conv); !strings.Contains(out, " alice: second\n           ✓ delivered to bob\n") {
		t.Fatalf("after bob's --peek, alice's history:\n%s", out)
	}

	if out := cliOK(t, base, b, "", "read-receipts", "off"); !strings.Contains(out, "read receipts are off on this device") {
		t.Fatalf("read-receipts off printed %q", out)
	}
	cliOK(t, base, a, "", "send", conv, "third")
	if out := cliOK(t, base, b, "", "sync"); !strings.Contains(out, "bob") && !strings.Contains(out, "third") {
		t.Fatalf("bob's sync printed %q", out)
	}
	cliOK(t, base, a, "", "sync")
	if out := cliOK(t, base, a, "", "--json", "history", conv); !strings.Contains(out, `"text":"third"`) || strings.Count(out, `"readBy":["bob"]`) != 1 || strings.Count(out, `"deliveredTo":["bob"]`) != 3 {
		t.Fatalf("with bob's read receipts off, alice's history:\n%s", out)
	}
	// A piped chat reads what it prints: with read receipts on again, it
	// tells alice so when it ends.
	cliOK(t, base, b, "", "read-receipts", "on")
	cliOK(t, base, a, "", "send", conv, "fourth")
	cliOK(t, base, b, "hi\n", "chat", conv)
	cliOK(t, base, a, "", "sync")
	if out := cliOK(t, base, a, "", "history", conv); !strings.Contains(out, " alice: fourth\n           ✓ read by bob\n") {
		t.Fatalf("after bob's piped chat, alice's history:\n%s", out)
	}
	if _, errs, code := cliRun(t, base, b, "", "read-receipts", "maybe"); code != 2 || !strings.Contains(errs, "usage: sandi read-receipts [on|off]") {
		t.Fatalf("read-receipts maybe: exit %d, %q", code, errs)
	}
}
