package main_test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"sandi.dev/client"
	"sandi.dev/protocol"
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

// TestCLIChatReadsLive: a line-mode chat tells what it shows as it shows
// it: the messages there when it opens and each that comes while it runs
// are acknowledged read while it still runs, not only when it ends (the
// sender saw them unread, and the account's other devices kept them
// unread, for as long as the chat was open).
func TestCLIChatReadsLive(t *testing.T) {
	base, homes := cliWorld(t, "alice", "bob")
	a, b := homes["alice"], homes["bob"]
	newConv(t, base, b, "alice") // no request (which sends no receipts): bob knows alice
	convID := newConv(t, base, a, "bob")
	cliOK(t, base, a, "", "send", convID, "before")
	conv, err := protocol.ParseConversationID(convID)
	if err != nil {
		t.Fatal(err)
	}

	// alice, from here on through the SDK on her CLI's state, listens for
	// bob's receipts.
	st, err := client.NewDirStorage(a)
	if err != nil {
		t.Fatal(err)
	}
	alice, err := client.Open(client.Options{Server: base, Storage: st})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	listened := make(chan error, 1)
	defer func() { cancel(); <-listened; alice.Close() }()
	reads := make(chan string, 64) // the targets of bob's read receipts
	alice.OnReceipt(func(m client.Message) {
		if m.Sender == "bob" && m.Text == client.ReceiptRead {
			reads <- m.Target
		}
	})
	go func() { listened <- alice.Listen(ctx, func(client.Message) {}, nil) }()
	hist, err := alice.History(conv)
	if err != nil || len(hist) == 0 {
		t.Fatalf("alice's history: %v, %v", hist, err)
	}
	before := hist[len(hist)-1]

	chat, in, out := startChat(t, b, convID)
	expect := chatLines(t, out)
	readBy := func(m client.Message) {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for {
			select {
			case target := <-reads:
				if target == m.Ref {
					return
				}
			case <-timeout:
				t.Fatalf("bob's running chat showed %q and sent no read receipt for it", m.Text)
			}
		}
	}
	expect("alice: before")
	readBy(before)
	live, err := alice.Send(ctx, conv, "live")
	if err != nil {
		t.Fatal(err)
	}
	expect("alice: live")
	readBy(live)
	io.WriteString(in, "/quit\n")
	if err := chat.Wait(); err != nil {
		t.Fatal(err)
	}
}
