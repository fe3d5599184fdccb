package main

import (
	"bytes"
	"strings"
	"testing"

	"sandi.dev/client"
)

// TestAttachmentShownSafely: an attachment's name and type come from the
// sender (the SDK refuses names with controls or directories, but the CLI
// does not rely on it): they are shown on one line, escaped, and a saved
// file's default name has no directory.
func TestAttachmentShownSafely(t *testing.T) {
	a := client.Attachment{Blob: "0123456789abcdef0123456789abcdef", Name: "x\x1b[2J\n\u202egnp.exe", Type: "image/png\x07", Size: 1536, Width: 640, Height: 480}
	line := attachmentLine(a)
	if strings.ContainsAny(line, "\x1b\n\x07\u202e") {
		t.Fatalf("unescaped: %q", line)
	}
	want := `attachment 01234567 "x\x1b[2J\x0a\u{202e}gnp.exe" image/png\x07 1.5 KiB 640×480`
	if line != want {
		t.Fatalf("shown as\n%s\nwant\n%s", line, want)
	}
	var out bytes.Buffer
	e := &cli{stdout: &out}
	if err := e.printMessage(client.Message{Conversation: [16]byte{1}, Sender: "alice", Text: "look\n+ attachment 99999999 \"fake\"", Attachments: []client.Attachment{a}}); err != nil {
		t.Fatal(err)
	}
	// The sender's text cannot fake an attachment line: its lines are
	// framed under "|", attachments under "+".
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], messageCont) || lines[2] != attachmentCont+want {
		t.Fatalf("printed %q", lines)
	}
	for name, want := range map[string]string{
		"photo.png": "photo.png", "../../.bashrc": ".bashrc", `..\evil.exe`: "evil.exe", "/etc/passwd": "passwd",
		"dir/": "attachment", "..": "attachment", ".": "attachment", "": "attachment",
	} {
		if got := safeFileName(name); got != want {
			t.Errorf("safeFileName(%q) = %q, want %q", name, got, want)
		}
	}
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 5 << 20: "5.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := humanSize(n); got != want {
			t.Errorf("humanSize(%d) = %q, want %q", n, got, want)
		}
	}
	// No progress bar on anything but a terminal.
	var errb bytes.Buffer
	p := (&cli{stderr: &errb}).progress("big.iso")
	p.update(1, 2)
	p.update(2, 2)
	p.done(true)
	if errb.Len() != 0 {
		t.Fatalf("a progress bar on a pipe: %q", errb.String())
	}
}

// TestSendArgs: only --file is a flag of send; a text may start with a
// dash.
func TestSendArgs(t *testing.T) {
	for _, c := range []struct {
		args         []string
		files, words string
	}{
		{[]string{"c", "hello", "all"}, "", "c hello all"},
		{[]string{"c", "-5", "degrees", "-x"}, "", "c -5 degrees -x"},
		{[]string{"c", "--file", "a.png", "look", "-file=b", "--file=c d"}, "a.png|b|c d", "c look"},
		{[]string{"--file", "a", "c", "--", "--file", "x"}, "a", "c --file x"},
	} {
		files, words, err := sendArgs(c.args)
		if err != nil || strings.Join(files, "|") != c.files || strings.Join(words, " ") != c.words {
			t.Errorf("%q: files %q, words %q, %v", c.args, files, words, err)
		}
	}
	if _, _, err := sendArgs([]string{"c", "--file"}); err == nil {
		t.Error("--file without a path was accepted")
	}
}

// TestChatShowsAttachments: the chat view lists a message's attachments
// under it, escaped and styled (dim), which no text of a message can be.
func TestChatShowsAttachments(t *testing.T) {
	m, _ := newTestChat(t, 80, 12)
	msg := msgAt(m, 1, "bob", "look\n+ attachment 99999999 \"fake\"", 0)
	msg.Attachments = []client.Attachment{{Blob: "0123456789abcdef0123456789abcdef", Name: "cat\x1b.png", Type: "image/png", Size: 2048}}
	m.addMessage(msg)
	wantLine(t, m, viewCont+`+ attachment 01234567 "cat\x1b.png" image/png 2.0 KiB`)
	lines := m.entryLines(m.entries[len(m.entries)-1], 80)
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "\x1b["+sgrDim+"m") {
		t.Fatalf("the attachment line is not styled: %q", last)
	}
	for _, l := range lines[:len(lines)-1] {
		if strings.Contains(l, "\x1b["+sgrDim+"m") {
			t.Fatalf("a line of the message's text is styled like an attachment: %q", l)
		}
	}
}
