//go:build !js

package client_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"sandi.dev/client"
	"sandi.dev/internal/server"
	"sandi.dev/internal/store/sqlstore"
	"sandi.dev/internal/testpg"
	"sandi.dev/protocol"
)

// restoreBackup stops n, restores the backup file into a new database (as
// `sandi db restore` does: a copy that begins a new incarnation), or, with
// plain, copies the backup file over the SQLite database as it is (a
// restore that forgets the documented command), and starts n on it.
func restoreBackup(t *testing.T, n *node, backup string, plain bool) {
	t.Helper()
	ctx := context.Background()
	n.stop()
	target := n.db
	if sqlstore.IsPostgres(n.db) {
		target = testpg.URL(t)
	} else {
		for _, f := range sqlstore.SQLiteFiles(n.db) {
			os.Remove(f)
		}
	}
	if plain {
		b, err := os.ReadFile(backup)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(target, b, 0o600); err != nil {
			t.Fatal(err)
		}
	} else {
		src, err := sqlstore.Open(ctx, backup, sqlstore.Options{Shared: true})
		if err != nil {
			t.Fatal(err)
		}
		dst, err := sqlstore.Open(ctx, target, sqlstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := sqlstore.Backup(ctx, src, dst, time.Now().UnixMilli()); err != nil {
			t.Fatalf("restore: %v", err)
		}
		src.Close()
		dst.Close()
	}
	n.db = target
	n.restart()
}

// takeBackup makes an online backup of n's database into a new SQLite
// file, as `sandi db backup` does.
func takeBackup(t *testing.T, n *node) string {
	t.Helper()
	ctx := context.Background()
	path := t.TempDir() + "/backup.db"
	src, err := sqlstore.Open(ctx, n.db, sqlstore.Options{Shared: true})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := sqlstore.Open(ctx, path, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if _, _, err := sqlstore.Backup(ctx, src, dst, time.Now().UnixMilli()); err != nil {
		t.Fatalf("backup: %v", err)
	}
	return path
}

// checkRolledBack checks that c warned about a rollback, holds every text
// of want in conv's history, and that no two messages of the history the
// server still has share a sequence number.
func checkRolledBack(t *testing.T, c *client.Client, conv protocol.ConversationID, want []string) {
	t.Helper()
	alarms, err := c.Alarms(protocol.ConversationID{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(alarms, func(a client.Alarm) bool { return a.Kind == client.AlarmServerRollback }) {
		t.Errorf("%s: no %s alarm after the rollback: %+v", c.Username(), client.AlarmServerRollback, alarms)
	}
	ws, err := c.Warnings()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(ws, func(w client.Warning) bool { return w.Kind == client.WarnServerRollback }) {
		t.Errorf("%s: no %s warning after the rollback: %+v", c.Username(), client.WarnServerRollback, ws)
	}
	h, err := c.History(conv)
	if err != nil {
		t.Fatal(err)
	}
	seqs := map[uint64]string{}
	var texts []string
	for _, m := range h {
		texts = append(texts, m.Text)
		if m.Lost {
			if m.Seq != 0 {
				t.Errorf("%s: lost message %q keeps seq %d", c.Username(), m.Text, m.Seq)
			}
			continue
		}
		if prev, ok := seqs[m.Seq]; ok {
			t.Errorf("%s: seq %d holds %q and %q", c.Username(), m.Seq, prev, m.Text)
		}
		seqs[m.Seq] = m.Text
	}
	for _, w := range want {
		if n := countOf(texts, w); n != 1 {
			t.Errorf("%s: history holds %q %d times, want once: %q", c.Username(), w, n, texts)
		}
	}
}

func countOf(xs []string, x string) int {
	n := 0
	for _, v := range xs {
		if v == x {
			n++
		}
	}
	return n
}

// TestRestoreRollback: bob reads past the moment of a backup, the server
// is restored from it, and alice sends a message that the server
// acknowledges. Bob (syncing, and listening on a WebSocket) must notice,
// warn, and end up with every acknowledged message, none twice and no two
// under one sequence number. On the code before incarnations, bob's cursor
// skipped the new message, or its sequence number made it a "duplicate".
func TestRestoreRollback(t *testing.T) {
	cases := []struct {
		name  string
		db    string
		plain bool
		live  bool
	}{
		{"sqlite", "sqlite", false, false},
		{"sqlite/listen", "sqlite", false, true},
		{"sqlite/plain-copy", "sqlite", true, false},
		{"postgres", "postgres", false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			n := startNode(t, dbs(t)[tc.db](t), server.Config{})
			alice, bob := register(t, n, "alice"), register(t, n, "bob")
			conv, err := alice.CreateConversation(ctx, "r", "bob")
			if err != nil {
				t.Fatal(err)
			}
			var sent []string
			send := func(text string) {
				t.Helper()
				if _, err := alice.Send(ctx, conv, text); err != nil {
					t.Fatalf("send %q: %v", text, err)
				}
				sent = append(sent, text)
			}
			for i := range 3 {
				send(fmt.Sprintf("before %d", i))
			}
			syncTexts(t, bob)
			backup := takeBackup(t, n)
			if tc.plain {
				// An offline copy of the file: the same incarnation.
				n.stop()
				b, err := os.ReadFile(n.db)
				if err != nil {
					t.Fatal(err)
				}
				os.WriteFile(backup, b, 0o600)
				n.restart()
			}
			for i := range 3 {
				send(fmt.Sprintf("after backup %d", i))
			}
			if got := syncTexts(t, bob); len(got) != 3 {
				t.Fatalf("bob read %q after the backup, want 3 messages", got)
			}
			syncTexts(t, alice)

			restoreBackup(t, n, backup, tc.plain)
			send("after restore")

			if tc.live {
				lctx, cancel := context.WithCancel(ctx)
				got := make(chan string, 16)
				done := make(chan error, 1)
				go func() {
					done <- bob.Listen(lctx, func(m client.Message) { got <- m.Text }, nil)
				}()
				select {
				case m := <-got:
					if m != "after restore" {
						t.Errorf("bob's WebSocket gave %q first, want the message sent after the restore", m)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("bob's WebSocket did not deliver the message sent after the restore")
				}
				cancel()
				<-done
			} else {
				if got := syncTexts(t, bob); !slices.Equal(got, []string{"alice: after restore"}) {
					t.Errorf("bob's sync after the restore gave %q, want only the new message", got)
				}
			}
			checkRolledBack(t, bob, conv, sent)
			// Acknowledged after the restore, sent by the device that
			// noticed: stored once, its seq not shared.
			if _, err := bob.Send(ctx, conv, "bob after restore"); err != nil {
				t.Fatal(err)
			}
			sent = append(sent, "bob after restore")
			syncTexts(t, alice)
			checkRolledBack(t, alice, conv, sent)
		})
	}
}

// TestRestoreTwice: bob reads past a backup and goes offline; the server
// is restored from it, takes new messages, is backed up and restored
// again. Bob, back, names the first incarnation: it must read again from
// where that one and the second part (not from the third's start), or it
// would miss what was sent in the second.
func TestRestoreTwice(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, dbs(t)["sqlite"](t), server.Config{})
	alice, bob := register(t, n, "alice"), register(t, n, "bob")
	conv, err := alice.CreateConversation(ctx, "r2", "bob")
	if err != nil {
		t.Fatal(err)
	}
	var sent []string
	send := func(text string) {
		t.Helper()
		if _, err := alice.Send(ctx, conv, text); err != nil {
			t.Fatalf("send %q: %v", text, err)
		}
		sent = append(sent, text)
	}
	send("one")
	syncTexts(t, bob)
	first := takeBackup(t, n)
	send("lost in the first")
	syncTexts(t, bob)
	syncTexts(t, alice)

	restoreBackup(t, n, first, false)
	send("in the second")
	send("also in the second")
	syncTexts(t, alice)
	second := takeBackup(t, n)
	restoreBackup(t, n, second, false)
	send("in the third")

	got := syncTexts(t, bob)
	want := []string{"alice: in the second", "alice: also in the second", "alice: in the third"}
	if !slices.Equal(got, want) {
		t.Errorf("bob's sync after two restores gave %q, want %q", got, want)
	}
	checkRolledBack(t, bob, conv, sent)
}
