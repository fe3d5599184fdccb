package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/term"

	"sandi.dev/client"
	"sandi.dev/protocol"
)

// Attachments on the command line: `send --file`, the attachment lines of
// `sync` and `chat`, and `save`. File names and media types come from the
// sender and are shown only through untrusted (safe.go).

// sendArgs splits the arguments of send into the --file paths and the
// other words. Only --file (or -file, --file=PATH) is a flag, anywhere, so
// a text may start with a dash as it always could; after "--" every
// argument is text.
func sendArgs(args []string) (files, words []string, err error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return files, append(words, args[i+1:]...), nil
		case a == "--file" || a == "-file":
			if i+1 == len(args) {
				return nil, nil, errors.New("--file needs a path")
			}
			files, i = append(files, args[i+1]), i+1
		case strings.HasPrefix(a, "--file=") || strings.HasPrefix(a, "-file="):
			files = append(files, a[strings.IndexByte(a, '=')+1:])
		default:
			words = append(words, a)
		}
	}
	return files, words, nil
}

// attachmentID is how the CLI names an attachment: the first 8 hex digits
// of its blob id (`save` takes any unique prefix of 4 or more).
func attachmentID(a client.Attachment) string { return a.Blob[:8] }

// humanSize writes n bytes as "532 B", "12.3 KiB", "1.2 MiB", ….
func humanSize(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, unit := float64(n)/1024, "KiB"
	for _, u := range []string{"MiB", "GiB", "TiB"} {
		if v < 1024 {
			break
		}
		v, unit = v/1024, u
	}
	return fmt.Sprintf("%.1f %s", v, unit)
}

// attachmentLine shows one attachment on one line of printable text:
// `attachment 3fa8c2d1 "photo.png" image/png 1.2 MiB 640×480`.
func attachmentLine(a client.Attachment) string {
	s := fmt.Sprintf(`attachment %s "%s" %s %s`, attachmentID(a), untrusted(a.Name), untrusted(a.Type), humanSize(a.Size))
	if a.Width > 0 && a.Height > 0 {
		s += fmt.Sprintf(" %d×%d", a.Width, a.Height)
	}
	if a.Duration > 0 {
		s += " " + (time.Duration(a.Duration) * time.Millisecond).Round(time.Second).String()
	}
	return s
}

// attachmentCont starts an attachment line under a message in the text
// output: where a message's further lines have "|", it has "+", which no
// line of a message's text can put there.
const attachmentCont = "           + "

// attachmentLines shows a message's attachments, each on a line of its
// own under the message (wrapped on a terminal), each line after a line
// feed.
func (e *cli) attachmentLines(atts []client.Attachment) string {
	var b strings.Builder
	for _, a := range atts {
		b.WriteString("\n" + strings.Join(wrapHanging(attachmentCont+attachmentLine(a), e.width(), attachmentCont), "\n"))
	}
	return b.String()
}

// attachmentsJSON is what --json shows of a message's attachments: no key,
// digest or thumbnail.
func attachmentsJSON(atts []client.Attachment) []map[string]any {
	var out []map[string]any
	for _, a := range atts {
		v := map[string]any{"id": attachmentID(a), "blob": a.Blob, "name": a.Name, "type": a.Type, "size": a.Size}
		if a.Width > 0 {
			v["width"], v["height"] = a.Width, a.Height
		}
		if a.Duration > 0 {
			v["duration"] = a.Duration
		}
		out = append(out, v)
	}
	return out
}

// mediaType guesses a file's media type from its name's extension, else
// from its first bytes.
func mediaType(path string, f io.ReaderAt) string {
	if t := mime.TypeByExtension(strings.ToLower(filepath.Ext(path))); t != "" {
		return t
	}
	head := make([]byte, 512)
	n, _ := f.ReadAt(head, 0)
	return http.DetectContentType(head[:n])
}

// uploadFile uploads one file for conversation conv, with a progress bar
// on a terminal.
func (e *cli) uploadFile(ctx context.Context, conv protocol.ConversationID, path string) (client.Attachment, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return client.Attachment{}, fmt.Errorf("cannot send %s: there is no such file", untrusted(path))
	}
	if err != nil {
		return client.Attachment{}, fmt.Errorf("cannot send %s: %w", untrusted(path), err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return client.Attachment{}, err
	}
	if !fi.Mode().IsRegular() {
		return client.Attachment{}, fmt.Errorf("cannot send %s: not a regular file", untrusted(path))
	}
	meta := client.AttachmentMeta{Name: filepath.Base(path), Type: mediaType(path, f)}
	bar := e.progress("sending " + meta.Name)
	a, err := e.c.UploadAttachment(ctx, conv, f, fi.Size(), meta, bar.update)
	bar.done(err == nil)
	switch {
	case client.IsCode(err, "blob_too_large"):
		return a, fmt.Errorf("cannot send %s (%s): it is larger than the server accepts: %w", untrusted(path), humanSize(fi.Size()), err)
	case client.IsCode(err, "quota_exceeded"):
		return a, fmt.Errorf("cannot send %s (%s): your account's storage for attachments on the server is full; attachments expire with their messages: %w", untrusted(path), humanSize(fi.Size()), err)
	case errors.Is(err, client.ErrFileChanged):
		return a, fmt.Errorf("cannot send %s: %w", untrusted(path), err)
	case err != nil:
		return a, fmt.Errorf("cannot send %s: %w", untrusted(path), err)
	}
	return a, nil
}

// cmdSave downloads, checks and decrypts one attachment of a conversation.
func cmdSave(ctx context.Context, e *cli, args []string) error {
	fl := flags("save", e)
	out := fl.String("out", "", "where to write the file (default: its name, in the current directory)")
	force := fl.Bool("force", false, "replace a file that exists")
	if err := parse(fl, args); err != nil {
		return err
	}
	if fl.NArg() != 2 {
		return usageError{"usage: sandi save CONV ATTACHMENT [--out PATH] [--force] (ATTACHMENT: the id sync shows)"}
	}
	id, err := e.conv(ctx, fl.Arg(0))
	if err != nil {
		return err
	}
	att, err := e.findAttachment(id, fl.Arg(1))
	if err != nil {
		return err
	}
	path := *out
	if path == "" {
		path = safeFileName(att.Name)
	} else if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, safeFileName(att.Name))
	}
	if _, err := os.Lstat(path); err == nil && !*force {
		return fmt.Errorf("%s exists: give another --out, or --force to replace it", untrusted(path))
	}
	// The file is decrypted as it arrives into a hidden file beside its
	// destination, and moved there only once the whole ciphertext's digest
	// matched; an interrupted save continues where it stopped.
	bar := e.progress("saving " + att.Name)
	err = e.c.SaveAttachment(ctx, id, att, path, *force, bar.update)
	bar.done(err == nil)
	switch {
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("%s exists: give another --out, or --force to replace it", untrusted(path))
	case errors.Is(err, client.ErrServerMisbehaved):
		return fmt.Errorf("the server sent something other than the attachment its sender sent: refused, nothing saved (see 'sandi alarms'): %w", err)
	case errors.Is(err, client.ErrAttachmentCorrupt):
		return fmt.Errorf("nothing saved: %w", err)
	case errors.Is(err, client.ErrAttachmentGone):
		return fmt.Errorf("nothing saved: %w (attachments expire with their messages)", err)
	case errors.Is(err, client.ErrSaveInterrupted):
		return fmt.Errorf("nothing saved yet: %w (the same command continues where it stopped)", err)
	case err != nil:
		return fmt.Errorf("nothing saved: %w", err)
	}
	return e.out(map[string]any{"conversation": id, "attachment": attachmentID(att), "path": path, "size": att.Size},
		fmt.Sprintf("saved %s (%s)", untrusted(path), humanSize(att.Size)))
}

// safeFileName is the name a received file is saved under by default: the
// sender's name without any directory (the SDK refuses names with one;
// this holds whatever it let through), never "", "." or "..".
func safeFileName(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	if name == "" || name == "." || name == ".." {
		return "attachment"
	}
	return name
}

// findAttachment finds an attachment of a conversation's history by a
// unique prefix (4+ hex digits) of its blob id.
func (e *cli) findAttachment(conv protocol.ConversationID, prefix string) (client.Attachment, error) {
	if len(prefix) < 4 || strings.Trim(prefix, "0123456789abcdef") != "" {
		return client.Attachment{}, usageError{"ATTACHMENT is the id sync shows (4 or more hex digits)"}
	}
	hist, err := e.c.History(conv)
	if err != nil {
		return client.Attachment{}, err
	}
	var found []client.Attachment
	for _, m := range hist {
		for _, a := range m.Attachments {
			if strings.HasPrefix(a.Blob, prefix) && !slices.ContainsFunc(found, func(f client.Attachment) bool { return f.Blob == a.Blob }) {
				found = append(found, a)
			}
		}
	}
	switch len(found) {
	case 0:
		return client.Attachment{}, fmt.Errorf("no attachment %s in this conversation (run 'sandi sync' first)", prefix)
	case 1:
		return found[0], nil
	}
	return client.Attachment{}, fmt.Errorf("%d attachments start with %s: give more digits", len(found), prefix)
}

// progressBar draws a transfer's progress on a terminal (standard error),
// at most ten times a second; on anything else it draws nothing.
type progressBar struct {
	w     io.Writer // nil: not a terminal
	label string
	width int
	last  time.Time
	drawn bool
}

// progress returns a bar for a transfer named label (untrusted: a file
// name from a sender).
func (e *cli) progress(label string) *progressBar {
	f, ok := e.stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return &progressBar{}
	}
	return &progressBar{w: f, label: untrusted(label), width: termWidth(f)}
}

// update is the progress callback of the SDK.
func (p *progressBar) update(done, total int64) {
	if p.w == nil || time.Since(p.last) < 100*time.Millisecond && done < total {
		return
	}
	p.last = time.Now()
	frac := 1.0
	if total > 0 {
		frac = float64(done) / float64(total)
	}
	const cells = 20
	n := int(frac * cells)
	stats := fmt.Sprintf(" [%s%s] %3d%% %s / %s", strings.Repeat("#", n), strings.Repeat("-", cells-n), int(frac*100), humanSize(done), humanSize(total))
	label := p.label
	if room := p.width - len(stats) - 1; p.width > 0 && len(label) > room {
		label = label[:fitting(label, max(0, room-1))] + "…"
	}
	fmt.Fprintf(p.w, "\r\x1b[K%s%s", label, stats)
	p.drawn = true
}

// done ends the bar's line: kept when the transfer finished, erased when
// it failed (the error follows).
func (p *progressBar) done(ok bool) {
	if p.w == nil || !p.drawn {
		return
	}
	if ok {
		fmt.Fprintln(p.w)
	} else {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
}
