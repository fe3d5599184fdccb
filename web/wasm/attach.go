//go:build js && wasm

package main

// Attachments in the module: the page hands over a File, the module reads
// it part by part, encrypts and uploads it (client.UploadAttachment), and
// keeps the attachment's key here: the page gets a handle to send it with,
// and sees messages' attachments without their keys. A download verifies
// the ciphertext's digest and decrypts (client.DownloadAttachment) into a
// Blob for the page.
//
// A worker (worker.go, attachworker.js) encrypts the file of an upload,
// whose parts the module here sends, and checks and decrypts the
// ciphertext of a download, which the module here fetches. Where there is
// no worker, the module does it all on the page's thread, where Go code
// that computes never gives the event loop back by itself; so a file is
// read in chunks of readChunk bytes, one Blob.slice().arrayBuffer() each,
// and the encryption reading it and the decryption writing a download's
// Blob let the page draw every client.BusySlice (docs/performance.md).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"syscall/js"
	"time"

	"sandi.dev/client"
	"sandi.dev/protocol"
)

// readChunk is how much of a file one read takes: about 8 ms of work
// (encryption and digest) in the module at the speeds measured.
const readChunk = 512 << 10

// blobChunk is the size of the pieces a download's Blob is built of.
const blobChunk = 1 << 20

// jobs are the running uploads and downloads, by the page's id, for
// cancel.
type jobs struct {
	mu  sync.Mutex
	run map[string]context.CancelFunc
}

func (j *jobs) start(id string) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	j.mu.Lock()
	if j.run == nil {
		j.run = map[string]context.CancelFunc{}
	}
	if id != "" {
		j.run[id] = cancel
	}
	j.mu.Unlock()
	return ctx, func() {
		cancel()
		j.mu.Lock()
		delete(j.run, id)
		j.mu.Unlock()
	}
}

// cancel(id) stops the upload or download the page started with that id;
// it rejects with the code "canceled".
func (a *app) cancel(args []js.Value) (any, error) {
	id := str(args, 0)
	a.jobs.mu.Lock()
	stop := a.jobs.run[id]
	a.jobs.mu.Unlock()
	if stop != nil {
		stop()
	}
	return nil, nil
}

// attView is an attachment as the page sees it: no key, no digest.
type attView struct {
	Name      string  `json:"name"`
	Type      string  `json:"type"`
	Size      int64   `json:"size"`
	Width     int     `json:"width,omitempty"`
	Height    int     `json:"height,omitempty"`
	Duration  float64 `json:"duration,omitempty"` // seconds
	Thumbnail []byte  `json:"thumbnail,omitempty"`
}

// msgView is a message as the page sees it: its attachments without keys.
type msgView struct {
	client.Message
	Attachments []attView `json:"attachments,omitempty"`
}

func view(m client.Message) msgView {
	v := msgView{Message: m}
	for _, at := range m.Attachments {
		v.Attachments = append(v.Attachments, attView{Name: at.Name, Type: at.Type, Size: at.Size,
			Width: at.Width, Height: at.Height, Duration: float64(at.Duration) / 1000, Thumbnail: at.Thumbnail})
	}
	return v
}

func views(ms []client.Message) []msgView {
	out := make([]msgView, len(ms))
	for i, m := range ms {
		out[i] = view(m)
	}
	return out
}

// inConv returns the open client and the conversation args[0] names.
func (a *app) inConv(args []js.Value) (*client.Client, protocol.ConversationID, error) {
	_, c, err := a.get()
	if err != nil {
		return nil, protocol.ConversationID{}, err
	}
	id, err := conv(args)
	return c, id, err
}

// upload(conv, file, meta, id, onProgress, sealer) encrypts and uploads a
// File and resolves to a handle that send takes. meta: {name, type, width,
// height, duration (seconds), thumbnail (Uint8Array)}. sealer, attach.js's
// handle on its worker for this file (workerSealer), encrypts it off the
// page's thread; without one (no worker), the module encrypts it here.
func (a *app) upload(args []js.Value) (any, error) {
	c, id, err := a.inConv(args)
	if err != nil {
		return nil, err
	}
	if len(args) < 2 || args[1].Type() != js.TypeObject {
		return nil, errors.New("upload(conv, file, meta, id, onProgress, sealer)")
	}
	file := args[1]
	meta := client.AttachmentMeta{}
	if len(args) > 2 && args[2].Type() == js.TypeObject {
		m := args[2]
		meta.Name, meta.Type = jsString(m.Get("name")), jsString(m.Get("type"))
		meta.Width, meta.Height = jsInt(m.Get("width")), jsInt(m.Get("height"))
		if d := m.Get("duration"); d.Type() == js.TypeNumber && d.Float() > 0 {
			meta.Duration = int64(d.Float()*1000 + 0.5) // seconds to milliseconds
		}
		if t := m.Get("thumbnail"); t.Type() == js.TypeObject {
			meta.Thumbnail = make([]byte, t.Get("length").Int())
			js.CopyBytesToGo(meta.Thumbnail, t)
		}
	}
	ctx, done := a.jobs.start(str(args, 3))
	defer done()
	size := int64(file.Get("size").Float())
	// Progress is the larger of what was read and encrypted and what the
	// server holds (which advances a part at a time).
	report := progress(args, 4)
	var best float64
	step := func(frac float64) {
		if report != nil && frac > best {
			best = frac
			report(int64(frac*float64(size)), size)
		}
	}
	read := func(n int64) { step(float64(n) / float64(max(size, 1))) }
	sent := func(done, total int64) { step(float64(done) / float64(total)) }
	var att client.Attachment
	if len(args) > 5 && args[5].Type() == js.TypeObject {
		att, err = c.UploadSealed(ctx, id, size, meta, workerSealer(args[5], read), sent)
	} else {
		att, err = c.UploadAttachment(ctx, id, &blobReader{ctx: ctx, blob: file, size: size, read: read}, size, meta, sent)
	}
	if err != nil {
		return nil, canceled(ctx, err)
	}
	handle := client.NewClientID() // a random id
	a.mu.Lock()
	a.uploaded[handle] = att
	a.mu.Unlock()
	return handle, nil
}

// forget(handles) drops uploads the page will not send (their message
// was given up); the server collects their blobs.
func (a *app) forget(args []js.Value) (any, error) {
	if len(args) > 0 && args[0].Type() == js.TypeObject {
		a.mu.Lock()
		for i := range args[0].Length() {
			delete(a.uploaded, args[0].Index(i).String())
		}
		a.mu.Unlock()
	}
	return nil, nil
}

// download(conv, seq, index, id, onProgress, opener) downloads attachment
// index of message seq, verifies and decrypts it (in attach.js's worker,
// opener, when there is one: workerOpener), and resolves to a Blob: of
// the attachment's type when the page may show it inline, else
// application/octet-stream. A digest that does not match rejects with
// server_misbehaved (and the SDK raises an alarm).
func (a *app) download(args []js.Value) (any, error) {
	c, id, err := a.inConv(args)
	if err != nil {
		return nil, err
	}
	if len(args) < 3 || args[1].Type() != js.TypeNumber || args[2].Type() != js.TypeNumber {
		return nil, errors.New("download(conv, seq, index, id, onProgress, opener)")
	}
	seq, index := uint64(args[1].Float()), args[2].Int()
	h, err := c.History(id)
	if err != nil {
		return nil, err
	}
	var att *client.Attachment
	for i := range h {
		if h[i].Seq == seq && index >= 0 && index < len(h[i].Attachments) {
			att = &h[i].Attachments[index]
		}
	}
	if att == nil {
		return nil, fmt.Errorf("message %d has no attachment %d", seq, index)
	}
	ctx, done := a.jobs.start(str(args, 3))
	defer done()
	if len(args) > 5 && args[5].Type() == js.TypeObject {
		b, err := c.DownloadOpened(ctx, id, *att, workerOpener(args[5]), progress(args, 4))
		if err != nil {
			return nil, canceled(ctx, err)
		}
		return b, nil
	}
	w := &blobWriter{ctx: ctx, parts: js.Global().Get("Array").New()}
	if err := c.DownloadAttachment(ctx, id, *att, w, progress(args, 4)); err != nil {
		return nil, canceled(ctx, err)
	}
	return w.blob(inlineType(att.Type)), nil
}

// inlineType is the type a download's Blob gets: the attachment's own if
// the page shows that type inline, else application/octet-stream, so that
// no other user's file is ever rendered as a page, a script or an SVG.
func inlineType(t string) string {
	base, _, _ := strings.Cut(t, ";")
	switch base = strings.ToLower(strings.TrimSpace(base)); base {
	case "image/png", "image/jpeg", "image/gif", "image/webp", "video/mp4", "video/webm",
		"audio/webm", "audio/ogg", "audio/mpeg", "audio/mp4", "audio/wav":
		return base
	}
	return "application/octet-stream"
}

// attachments returns the uploads that send's handles (args[3]) name.
func (a *app) attachments(args []js.Value) ([]client.Attachment, []string, error) {
	if len(args) < 4 || args[3].Type() != js.TypeObject {
		return nil, nil, nil
	}
	var atts []client.Attachment
	var handles []string
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := range args[3].Length() {
		h := args[3].Index(i).String()
		att, ok := a.uploaded[h]
		if !ok {
			return nil, nil, fmt.Errorf("no upload %q in this page", h)
		}
		atts = append(atts, att)
		handles = append(handles, h)
	}
	return atts, handles, nil
}

// canceled gives an error of a cancelled job the code "canceled".
func canceled(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return errCanceled
	}
	return err
}

var errCanceled = errors.New("canceled")

// progress returns a progress function that calls the page's
// args[i](done, total) at most every 50 ms, and at the end.
func progress(args []js.Value, i int) func(done, total int64) {
	if i >= len(args) || args[i].Type() != js.TypeFunction {
		return nil
	}
	f := args[i]
	var last time.Time
	return func(done, total int64) {
		if done < total && time.Since(last) < 50*time.Millisecond {
			return
		}
		last = time.Now()
		f.Invoke(float64(done), float64(total))
	}
}

// blobReader reads a Blob (a File) from JavaScript, readChunk bytes per
// Blob.slice().arrayBuffer(): never the whole file in memory. Whoever
// reads it (an encryption) gives the page the event loop back every
// client.BusySlice.
type blobReader struct {
	ctx       context.Context
	blob      js.Value
	off, size int64
	buf, rest []byte
	read      func(n int64) // told the bytes read so far
	busy      client.Busy
	noYield   bool // in the worker, where nothing waits to draw
}

func (r *blobReader) Read(p []byte) (int, error) {
	if !r.noYield {
		if err := r.busy.Check(r.ctx); err != nil {
			return 0, err
		}
	} else if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	if len(r.rest) == 0 {
		if r.off >= r.size {
			return 0, io.EOF
		}
		end := min(r.off+readChunk, r.size)
		ab, err := client.Await(r.ctx, r.blob.Call("slice", float64(r.off), float64(end)).Call("arrayBuffer"))
		if err != nil {
			return 0, fmt.Errorf("read the file: %w", err)
		}
		n := ab.Get("byteLength").Int()
		if n != int(end-r.off) {
			return 0, errors.New("read the file: it changed while it was sent")
		}
		if cap(r.buf) < n {
			r.buf = make([]byte, readChunk)
		}
		r.rest = r.buf[:n]
		js.CopyBytesToGo(r.rest, js.Global().Get("Uint8Array").New(ab))
		if r.read != nil {
			r.read(r.off) // the chunks before are used up
		}
		r.off = end
	}
	n := copy(p, r.rest)
	r.rest = r.rest[n:]
	return n, nil
}

// blobWriter collects what is written into a JavaScript Blob, in pieces
// of blobChunk bytes, so the module keeps at most one piece. Whoever
// writes to it (a decryption) gives the page the event loop back every
// client.BusySlice.
type blobWriter struct {
	ctx     context.Context
	parts   js.Value
	buf     []byte
	busy    client.Busy
	noYield bool // in the worker, where nothing waits to draw
}

func (w *blobWriter) Write(p []byte) (int, error) {
	if !w.noYield {
		if err := w.busy.Check(w.ctx); err != nil {
			return 0, err
		}
	} else if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	n := len(p)
	for len(p) > 0 {
		if w.buf == nil {
			w.buf = make([]byte, 0, blobChunk)
		}
		k := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf = w.buf[:len(w.buf)+k]
		p = p[k:]
		if len(w.buf) == cap(w.buf) {
			w.flush()
		}
	}
	return n, nil
}

func (w *blobWriter) flush() {
	if len(w.buf) == 0 {
		return
	}
	u := js.Global().Get("Uint8Array").New(len(w.buf))
	js.CopyBytesToJS(u, w.buf)
	w.parts.Call("push", u)
	w.buf = w.buf[:0]
}

// blob flushes and returns the Blob of everything written.
func (w *blobWriter) blob(typ string) js.Value {
	w.flush()
	opts := js.Global().Get("Object").New()
	opts.Set("type", typ)
	return js.Global().Get("Blob").New(w.parts, opts)
}

func jsString(v js.Value) string {
	if v.Type() != js.TypeString {
		return ""
	}
	return v.String()
}

func jsInt(v js.Value) int {
	if v.Type() != js.TypeNumber {
		return 0
	}
	return v.Int()
}
