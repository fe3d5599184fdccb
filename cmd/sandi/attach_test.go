package main_test

import (
	"bytes"
	"encoding/json"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestCLIAttachments: files sent with `send --file` are listed by `sync`
// (escaped, with an id, type and size) and saved byte for byte by `save`,
// which never overwrites a file without --force; a file missing, too
// large or over the account's quota, and a blob changed on the server,
// each end with a sentence and a non-zero exit status, and nothing saved.
// No progress bar is drawn on a pipe.
func TestCLIAttachments(t *testing.T) {
	addr, data := freeAddr(t), t.TempDir()
	base := "http://" + addr
	srv := startSandi(t, childEnv(), "serve", "--addr", addr, "--data", data, "--max-blob", "3MiB", "--blob-quota", "5MiB")
	waitHealthy(t, srv, base)
	homes := map[string]string{}
	for _, u := range []string{"alice", "bob", "carol"} {
		homes[u] = filepath.Join(t.TempDir(), u)
		cliOK(t, base, homes[u], "password of "+u+"\n", "register", u, "--password-stdin")
	}
	var created struct{ ID string }
	if err := json.Unmarshal([]byte(cliOK(t, base, homes["alice"], "", "--json", "new", "bob", "carol")), &created); err != nil {
		t.Fatal(err)
	}
	conv := created.ID

	files := t.TempDir()
	notes := []byte(strings.Repeat("the notes of the meeting\n", 5000))
	var pic bytes.Buffer
	png.Encode(&pic, image.NewGray(image.Rect(0, 0, 64, 48)))
	write := func(name string, b []byte) string {
		p := filepath.Join(files, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	out, errs, code := cliRun(t, base, homes["alice"], "", "send", conv, "--file", write("notes.txt", notes), "--file", write("photo.png", pic.Bytes()), "two", "files")
	if code != 0 || errs != "" {
		t.Fatalf("send: exit %d, stderr %q", code, errs)
	}

	// carol reads them as text, bob as JSON.
	text := cliOK(t, base, homes["carol"], "", "sync")
	for _, want := range []string{
		`alice: two files`,
		`\+ attachment [0-9a-f]{8} "notes\.txt" text/plain; charset=utf-8 122\.1 KiB`,
		`\+ attachment [0-9a-f]{8} "photo\.png" image/png \d+ B 64×48`,
	} {
		if !regexp.MustCompile(want).MatchString(text) {
			t.Fatalf("sync printed\n%s\nwithout %s", text, want)
		}
	}
	var msg struct {
		Attachments []struct{ ID, Name, Type string }
	}
	if err := json.Unmarshal([]byte(cliOK(t, base, homes["bob"], "", "--json", "sync")), &msg); err != nil || len(msg.Attachments) != 2 {
		t.Fatalf("--json sync: %v %+v", err, msg)
	}
	ids := map[string]string{}
	for _, a := range msg.Attachments {
		ids[a.Name] = a.ID
	}
	// The local history lists them again, ids included.
	if hist := cliOK(t, base, homes["bob"], "", "history", conv); !strings.Contains(hist, `+ attachment `+ids["photo.png"]+` "photo.png"`) {
		t.Fatalf("history printed\n%s", hist)
	}

	saved := t.TempDir()
	dest := filepath.Join(saved, "n.txt")
	out, errs, code = cliRun(t, base, homes["bob"], "", "save", conv, ids["notes.txt"], "--out", dest)
	if b, _ := os.ReadFile(dest); code != 0 || errs != "" || !bytes.Equal(b, notes) || !strings.Contains(out, "saved") {
		t.Fatalf("save: exit %d, stdout %q, stderr %q, %d bytes", code, out, errs, len(b))
	}
	os.WriteFile(dest, []byte("mine"), 0o600)
	if _, errs, code := cliRun(t, base, homes["bob"], "", "save", conv, ids["notes.txt"], "--out", dest); code != 1 || !strings.Contains(errs, "exists") {
		t.Fatalf("save over a file: exit %d, %q", code, errs)
	}
	if b, _ := os.ReadFile(dest); string(b) != "mine" {
		t.Fatal("save replaced a file without --force")
	}
	cliOK(t, base, homes["bob"], "", "save", conv, ids["notes.txt"], "--out", dest, "--force")
	if b, _ := os.ReadFile(dest); !bytes.Equal(b, notes) {
		t.Fatal("save --force did not replace the file")
	}
	// Into a directory: under the sender's name.
	cliOK(t, base, homes["bob"], "", "save", conv, ids["photo.png"][:5], "--out", saved)
	if b, _ := os.ReadFile(filepath.Join(saved, "photo.png")); !bytes.Equal(b, pic.Bytes()) {
		t.Fatal("the image was not saved under its name")
	}

	// Errors, each a sentence.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"send", conv, "--file", filepath.Join(files, "nothing.bin")}, "there is no such file"},
		{[]string{"send", conv, "--file", files}, "not a regular file"},
		{[]string{"send", conv, "--file", write("big.bin", make([]byte, 3<<20))}, "larger than the server accepts"},
		{[]string{"save", conv, "ffff"}, "no attachment ffff"},
	} {
		if _, errs, code := cliRun(t, base, homes["alice"], "", c.args...); code != 1 || !strings.Contains(errs, c.want) {
			t.Fatalf("%v: exit %d, stderr %q, want %q", c.args, code, errs, c.want)
		}
	}
	two := write("two.bin", make([]byte, 2<<20))
	cliOK(t, base, homes["alice"], "", "send", conv, "--file", two)
	cliOK(t, base, homes["alice"], "", "send", conv, "--file", write("two-more.bin", make([]byte, 2<<20+1)))
	if _, errs, code := cliRun(t, base, homes["alice"], "", "send", conv, "--file", write("third.bin", make([]byte, 2<<20+2))); code != 1 || !strings.Contains(errs, "storage for attachments on the server is full") {
		t.Fatalf("over the quota: exit %d, %q", code, errs)
	}

	// The server changes a byte of the stored ciphertext.
	objects, err := filepath.Glob(filepath.Join(data, "blobs", "objects", "*"))
	if err != nil || len(objects) == 0 {
		t.Fatalf("no blob objects under %s: %v", data, err)
	}
	for _, o := range objects {
		b, err := os.ReadFile(o)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 1
		if err := os.WriteFile(o, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cliOK(t, base, homes["carol"], "", "sync")
	dest = filepath.Join(saved, "carol.txt")
	if _, errs, code := cliRun(t, base, homes["carol"], "", "save", conv, ids["notes.txt"], "--out", dest); code != 1 || !strings.Contains(errs, "the server sent something other than the attachment its sender sent") {
		t.Fatalf("a changed blob: exit %d, %q", code, errs)
	}
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Fatalf("a changed blob was saved: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(saved, ".*")); len(left) != 0 {
		t.Fatalf("a changed blob left %q beside its destination", left)
	}
	if alarms := cliOK(t, base, homes["carol"], "", "alarms"); !strings.Contains(alarms, "blob_digest") {
		t.Fatalf("alarms: %q", alarms)
	}
	_ = out
}
