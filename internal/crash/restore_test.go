package crash

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sandi.dev/client"
	"sandi.dev/internal/testpg"
	"sandi.dev/protocol"
)

// TestRestorePostgresDocumented runs the PostgreSQL backup and restore of
// docs/operations.md as written (bash -e; the URLs point at throwaway
// databases, createdb is done by the test and the serve line by the test's
// server process) against a real `sandi serve`: a device that synced past
// the backup notices the restore, warns, and ends up with every
// acknowledged message, no two under one sequence number.
func TestRestorePostgresDocumented(t *testing.T) {
	b, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i := strings.Index(doc, "### PostgreSQL")
	if i < 0 {
		t.Fatal("operations.md has no PostgreSQL backup section")
	}
	var blocks []string
	for _, part := range strings.Split(doc[i:], "```sh\n")[1:] {
		blocks = append(blocks, part[:strings.Index(part, "```")])
	}
	if len(blocks) != 2 || !strings.Contains(blocks[0], "db backup") || !strings.Contains(blocks[1], "db restore") {
		t.Fatalf("operations.md's PostgreSQL section: want the backup and the restore blocks, got %q", blocks)
	}
	bin := buildSandi(t)
	work := t.TempDir()
	backupDir := filepath.Join(work, "backup")
	os.Mkdir(backupDir, 0o700)
	if err := os.Symlink(bin, filepath.Join(work, "sandi")); err != nil {
		t.Fatal(err)
	}
	live, restored := testpg.URL(t), testpg.URL(t)
	run := func(script string) {
		t.Helper()
		var lines []string
		for _, l := range strings.Split(script, "\n") {
			if strings.HasPrefix(l, "sudo ") || strings.HasPrefix(l, "./sandi serve") {
				continue // the test made the database, and runs the server
			}
			lines = append(lines, l)
		}
		script = strings.Join(lines, "\n")
		script = strings.ReplaceAll(script, "'postgres://sandi@localhost/sandi_restored'", "'"+restored+"'")
		script = strings.ReplaceAll(script, "'postgres://sandi@localhost/sandi'", "'"+live+"'")
		script = strings.ReplaceAll(script, "/backup/", backupDir+"/")
		if backups, _ := filepath.Glob(filepath.Join(backupDir, "sandi-*.db")); len(backups) == 1 {
			script = strings.ReplaceAll(script, backupDir+"/sandi-2026-12-01-0300.db", backups[0])
		}
		cmd := exec.Command("bash", "-e", "-c", script)
		cmd.Dir = work
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("documented commands failed: %v\n%s\n---\n%s", err, script, out)
		}
	}

	srv := launch(t, work, &server{bin: bin, db: live, data: filepath.Join(work, "data")})
	addr := srv.addr
	ctx := context.Background()
	open := func(name string) *client.Client {
		st, err := client.NewDirStorage(filepath.Join(work, name))
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.Open(client.Options{Server: "http://" + addr, Storage: st, HTTPClient: &http.Client{Timeout: 10 * time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Register(ctx, name, "password of "+name); err != nil {
			t.Fatalf("register %s: %v", name, err)
		}
		return c
	}
	alice, bob := open("alice"), open("bob")
	conv, err := alice.CreateConversation(ctx, "pg", "bob")
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
	syncAll := func() {
		t.Helper()
		for _, c := range []*client.Client{alice, bob} {
			if _, err := c.Sync(ctx); err != nil {
				t.Fatalf("%s: sync: %v", c.Username(), err)
			}
		}
	}
	send("one")
	syncAll()
	run(blocks[0]) // the backup, the server running
	send("two")
	send("three")
	syncAll()

	srv.kill() // stopped (a kill is as good as a stop here)
	run(blocks[1])
	srv.db = restored
	srv.start()
	send("after restore")
	res, err := bob.Sync(ctx)
	if err != nil {
		t.Fatalf("bob: sync after the restore: %v", err)
	}
	if len(res.Messages) != 1 || res.Messages[0].Text != "after restore" {
		t.Errorf("bob's sync after the restore gave %+v, want the new message", res.Messages)
	}
	alarms, err := bob.Alarms(protocol.ConversationID{})
	if err != nil || !slices.ContainsFunc(alarms, func(a client.Alarm) bool { return a.Kind == client.AlarmServerRollback }) {
		t.Errorf("bob: no rollback alarm: %+v, %v", alarms, err)
	}
	h, err := bob.History(conv)
	if err != nil {
		t.Fatal(err)
	}
	seqs := map[uint64]bool{}
	var texts []string
	for _, m := range h {
		if !m.Lost && seqs[m.Seq] {
			t.Errorf("bob holds two messages under seq %d: %+v", m.Seq, h)
		}
		seqs[m.Seq] = !m.Lost
		texts = append(texts, m.Text)
	}
	for _, s := range sent {
		if !slices.Contains(texts, s) {
			t.Errorf("bob's history %q lacks the acknowledged %q", texts, s)
		}
	}
	for i, m := range h {
		if m.Text == "two" && !m.Lost {
			t.Errorf("bob's %q (place %d) took seq %d, which the restored server gave to another message, and is not marked lost", m.Text, i, m.Seq)
		}
	}
}
