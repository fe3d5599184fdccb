package main_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"sandi.dev/client"
	"sandi.dev/protocol"
)

// docBlocks returns the sh code blocks of docs/operations.md between the
// headings from and to, dedented, in order.
func docBlocks(t *testing.T, from, to string) []string {
	t.Helper()
	b, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i := strings.Index(doc, from)
	j := strings.Index(doc[i+1:], to)
	if i < 0 || j < 0 {
		t.Fatalf("operations.md has no section %q … %q", from, to)
	}
	var blocks []string
	var cur []string
	in := false
	for _, line := range strings.Split(doc[i:i+1+j], "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case !in && trimmed == "```sh":
			in, cur = true, nil
		case in && trimmed == "```":
			in = false
			blocks = append(blocks, strings.Join(cur, "\n")+"\n")
		case in:
			cur = append(cur, strings.TrimPrefix(line, "  "))
		}
	}
	return blocks
}

// runScript runs a documented shell block with bash -e in dir.
func runScript(t *testing.T, dir, script string) {
	t.Helper()
	cmd := exec.Command("bash", "-e", "-c", script)
	cmd.Dir = dir
	cmd.Env = childEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("documented commands failed: %v\n%s\n---\n%s", err, script, out)
	}
}

// TestBackupRestoreDocumented runs the SQLite backup and restore commands
// of docs/operations.md as written (bash -e, with /backup in a temporary
// directory) against a real `sandi serve`: an online backup while the
// server runs, more messages that a device reads, the offline copy with
// the server stopped (which exited 1 when there was no -shm file), the
// restore, and a message sent after it. The device that had read past the
// backup warns and ends up with every acknowledged message, no sequence
// number held twice.
func TestBackupRestoreDocumented(t *testing.T) {
	blocks := docBlocks(t, "### SQLite", "### PostgreSQL")
	if len(blocks) != 3 || !strings.Contains(blocks[0], "db backup") || !strings.Contains(blocks[1], "cp -p") || !strings.Contains(blocks[2], "db restore") {
		t.Fatalf("operations.md's SQLite backup section: want the online backup, the offline copy and the restore, got %q", blocks)
	}
	work := t.TempDir()
	backupDir := filepath.Join(work, "backup")
	if err := os.Mkdir(backupDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(sandiBinary(t), filepath.Join(work, "sandi")); err != nil {
		t.Fatal(err)
	}
	subst := func(s string) string { return strings.ReplaceAll(s, "/backup/", backupDir+"/") }
	addr := freeAddr(t)
	base := "http://" + addr
	start := func() *proc {
		p := startSandi(t, childEnv(), "serve", "--addr", addr, "--data", filepath.Join(work, "sandi-data"))
		waitHealthy(t, p, base)
		return p
	}
	stop := func(p *proc) {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := p.wait(t, 20*time.Second); code != 0 {
			t.Fatalf("sandi exited %d; stderr:\n%s", code, p.stderr)
		}
	}
	ctx := context.Background()
	newSDK := func(name string) *client.Client {
		st, err := client.NewDirStorage(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.Open(client.Options{Server: base, Storage: st, HTTPClient: &http.Client{Timeout: 10 * time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Register(ctx, name, "password of "+name); err != nil {
			t.Fatalf("register %s: %v", name, err)
		}
		return c
	}
	p := start()
	alice, bob := newSDK("alice"), newSDK("bob")
	conv, err := alice.CreateConversation(ctx, "backup", "bob")
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
	send("two")
	syncAll()

	runScript(t, work, subst(blocks[0])) // online, the server running
	backups, _ := filepath.Glob(filepath.Join(backupDir, "sandi-*.db"))
	if len(backups) != 1 {
		t.Fatalf("the online backup made %v", backups)
	}
	send("three")
	send("four")
	syncAll()

	stop(p)
	runScript(t, work, subst(blocks[1])) // offline
	if _, err := os.Stat(filepath.Join(backupDir, "offline", "sandi.db")); err != nil {
		t.Fatalf("the offline copy: %v", err)
	}
	restore := strings.ReplaceAll(subst(blocks[2]), backupDir+"/sandi-2026-12-01-0300.db", backups[0])
	if restore == subst(blocks[2]) {
		t.Fatalf("the restore block does not name /backup/sandi-2026-12-01-0300.db:\n%s", blocks[2])
	}
	runScript(t, work, restore)
	p = start()
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
	stop(p)
}
