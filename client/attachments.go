package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"sandi.dev/internal/ctxio"
	"sandi.dev/protocol"
	"sandi.dev/protocol/attach"
	"sandi.dev/protocol/secret"
)

// Attachments (protocol.md §13): a file is encrypted on this device under a
// fresh key (package protocol/attach), uploaded in parts as a blob bound to
// one conversation, and shared by a message whose encrypted content names
// the blob, the key and the SHA-256 digest of the ciphertext. A receiver
// fetches the blob, checks the digest before it decrypts anything, and
// refuses a mismatch as the server's fault.

// Limits of an attachment as a message's content carries it (§13.5).
const (
	MaxAttachments    = 32             // per message
	MaxThumbnail      = 8 << 10        // bytes of JPEG
	MaxFileName       = 255            // bytes of UTF-8
	MaxMediaType      = 127            // bytes
	MaxAttachmentSize = int64(1) << 40 // plaintext bytes; the server's own limit is far lower
	maxDimension      = 1 << 20        // pixels of a width or height
)

// Attachment is a file shared by a message: what its content carries
// (§13.5). Key and Digest are secret to the conversation's members.
type Attachment struct {
	Blob      string `json:"blob"`   // the blob's id: 32 hex digits
	Key       b64    `json:"key"`    // the file key, 32 bytes
	Digest    b64    `json:"digest"` // SHA-256 of the whole ciphertext
	Size      int64  `json:"size"`   // bytes of plaintext
	Type      string `json:"type"`   // media type, e.g. image/png
	Name      string `json:"name"`   // file name, without any directory
	Width     int    `json:"width,omitempty"`
	Height    int    `json:"height,omitempty"`
	Duration  int64  `json:"duration,omitempty"`  // milliseconds (audio, video)
	Thumbnail b64    `json:"thumbnail,omitempty"` // a JPEG of at most MaxThumbnail bytes
}

// AttachmentMeta describes a file to UploadAttachment. Type defaults to
// application/octet-stream. For a PNG, JPEG or GIF read from an
// io.ReaderAt, native builds fill in Width, Height and Thumbnail when they
// are zero.
type AttachmentMeta struct {
	Name      string
	Type      string
	Width     int
	Height    int
	Duration  int64
	Thumbnail []byte
}

// Errors of attachments callers branch on.
var (
	// ErrAttachmentCorrupt is an attachment whose ciphertext is the one
	// its message names (the digest matched) but does not decrypt with
	// the key the message gives: the sender's data is wrong.
	ErrAttachmentCorrupt = errors.New("the attachment does not decrypt with the key its message gives: the sender sent a broken attachment")
	// ErrAttachmentGone is an attachment the server no longer has (it
	// expired, or its messages were deleted) or never had complete.
	ErrAttachmentGone = errors.New("the server does not have this attachment (any more)")
	// ErrFileChanged is a file whose interrupted upload cannot continue
	// because its content changed; the old upload was discarded.
	ErrFileChanged = errors.New("the file changed since its upload began: the upload starts over")
)

// checkAttachments checks the attachments of a content of type typ.
func checkAttachments(typ string, atts []Attachment) error {
	if len(atts) == 0 {
		return nil
	}
	if typ != ContentText {
		return fmt.Errorf("a %s message has no attachments", typ)
	}
	if len(atts) > MaxAttachments {
		return fmt.Errorf("%d attachments, at most %d", len(atts), MaxAttachments)
	}
	for i, a := range atts {
		if err := checkAttachment(a); err != nil {
			return fmt.Errorf("attachment %d: %w", i+1, err)
		}
	}
	return nil
}

// checkAttachment checks one attachment strictly: every field a receiver
// acts on or shows.
func checkAttachment(a Attachment) error {
	if !blobIDForm(a.Blob) {
		return errors.New("blob id is not 32 lower-case hex digits")
	}
	if len(a.Key) != attach.KeySize || len(a.Digest) != attach.DigestSize {
		return errors.New("key and digest are 32 bytes each")
	}
	return checkMeta(a.Size, AttachmentMeta{Name: a.Name, Type: a.Type, Width: a.Width, Height: a.Height, Duration: a.Duration, Thumbnail: a.Thumbnail})
}

// checkMeta checks what describes a file.
func checkMeta(size int64, m AttachmentMeta) error {
	switch {
	case size < 0 || size > MaxAttachmentSize:
		return fmt.Errorf("size %d out of range", size)
	case m.Width < 0 || m.Width > maxDimension || m.Height < 0 || m.Height > maxDimension || m.Duration < 0:
		return errors.New("width, height or duration out of range")
	case len(m.Thumbnail) > MaxThumbnail:
		return fmt.Errorf("thumbnail of %d bytes, at most %d", len(m.Thumbnail), MaxThumbnail)
	}
	if err := checkFileName(m.Name); err != nil {
		return err
	}
	return checkMediaType(m.Type)
}

func blobIDForm(s string) bool {
	return len(s) == 32 && strings.Trim(s, "0123456789abcdef") == ""
}

// checkFileName accepts a file name of 1 to MaxFileName bytes of UTF-8
// without a directory ('/' or '\'), that is not "." or "..", with no
// control character (C0, DEL, C1), line or paragraph separator, or format
// character (bidirectional controls and the like) but the joiners U+200C
// and U+200D: a name is shown to users and used to save the file.
func checkFileName(name string) error {
	if name == "" || len(name) > MaxFileName || !utf8.ValidString(name) || name == "." || name == ".." {
		return fmt.Errorf("a file name is 1 to %d bytes of UTF-8, not . or ..", MaxFileName)
	}
	for _, r := range name {
		switch {
		case r == '/' || r == '\\':
			return errors.New("a file name has no directory")
		case r == '\u200c' || r == '\u200d':
		case r < 0x20 || r >= 0x7f && r <= 0x9f || r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Cf, r):
			return fmt.Errorf("a file name has no control or format character (U+%04X)", r)
		}
	}
	return nil
}

// checkMediaType accepts type/subtype (RFC 6838 restricted names, any
// case), optionally followed by parameters ";name=value" of token
// characters, with optional spaces before each name: at most MaxMediaType
// bytes of printable ASCII. "audio/webm;codecs=opus" is one.
func checkMediaType(t string) error {
	bad := fmt.Errorf("%q is not a media type of at most %d bytes", t, MaxMediaType)
	if len(t) > MaxMediaType {
		return bad
	}
	parts := strings.Split(t, ";")
	typ, sub, ok := strings.Cut(parts[0], "/")
	if !ok || !restrictedName(typ) || !restrictedName(sub) {
		return bad
	}
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(strings.TrimLeft(p, " "), "=")
		if !ok || !token(k) || !token(v) {
			return bad
		}
	}
	return nil
}

func restrictedName(s string) bool {
	if s == "" || len(s) > 127 || !isAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isAlnum(s[i]) && !strings.ContainsRune("!#$&-^_.+", rune(s[i])) {
			return false
		}
	}
	return true
}

func token(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) && !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(s[i])) {
			return false
		}
	}
	return true
}

func isAlnum(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
}

// blobIDs lists the blobs a content's attachments name, each once.
func blobIDs(atts []Attachment) []string {
	var ids []string
	for _, a := range atts {
		if !slices.Contains(ids, a.Blob) {
			ids = append(ids, a.Blob)
		}
	}
	return ids
}

// spool holds a download's ciphertext until its digest is checked: a file
// natively (attachments_native.go), the page's memory in a browser
// (attachments_js.go).
type spool interface {
	io.ReadWriteSeeker
	Truncate(int64) error
	Close() error
	// Remove deletes what the spool holds (it may be called after Close).
	Remove() error
}

// ---- sending ----

// SendMessage sends text with attachments made by UploadAttachment (text
// may then be empty). The message names the blobs to the server, which
// keeps them as long as the message. When the content would exceed a
// message's plaintext (64 KiB), thumbnails are left out, last attachment
// first, until it fits.
func (c *Client) SendMessage(ctx context.Context, conv protocol.ConversationID, text string, atts []Attachment) (Message, error) {
	return c.SendMessageWithID(ctx, conv, "", text, atts)
}

// SendMessageWithID is SendMessage with a caller-chosen client message id,
// as SendWithID is to Send: calling it again with the same id after a
// failure whose outcome was unknown re-sends the first attempt's envelope
// (text and attachments as they were then), so the server stores the
// message once. An empty id takes a fresh one.
func (c *Client) SendMessageWithID(ctx context.Context, conv protocol.ConversationID, clientID, text string, atts []Attachment) (Message, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ready(); err != nil {
		return Message{}, err
	}
	if text == "" && len(atts) == 0 || len(text) > MaxText || !utf8.ValidString(text) {
		return Message{}, fmt.Errorf("a message is 1 to %d bytes of UTF-8 text, or attachments", MaxText)
	}
	ct := Content{Type: ContentText, Text: text, Attachments: append([]Attachment(nil), atts...)}
	if err := checkAttachments(ct.Type, ct.Attachments); err != nil {
		return Message{}, err
	}
	if err := fitContent(&ct); err != nil {
		return Message{}, err
	}
	cs, err := c.conv(conv)
	if err != nil {
		return Message{}, err
	}
	if cs == nil {
		cs = c.newConv(conv)
	}
	m, err := c.send(ctx, cs, clientID, ct)
	if err != nil {
		return m, err
	}
	return m, c.forgetUploads(ct.Attachments)
}

// fitContent leaves thumbnails out until the content, with a time stamp,
// fits a message.
func fitContent(ct *Content) error {
	ct.SentAt = 1 << 62 // as long as any time stamp
	defer func() { ct.SentAt = 0 }()
	for i := len(ct.Attachments); ; {
		b, err := json.Marshal(ct)
		if err != nil {
			return err
		}
		if len(b) <= secret.MaxPlaintext {
			return nil
		}
		for i--; i >= 0 && ct.Attachments[i].Thumbnail == nil; i-- {
		}
		if i < 0 {
			return fmt.Errorf("%d attachments and the text do not fit in one message: send fewer at a time", len(ct.Attachments))
		}
		ct.Attachments[i].Thumbnail = nil
	}
}

// ---- the blob transport ----

// Each blob request gets a deadline of the client's timeout plus the time
// its body takes at blobMinRate; the client's own timeout, meant for small
// requests, would cut off a part on a slow link.
const blobMinRate = 32 << 10 // bytes per second

// blobAPI returns the transport for blob transfers: the client's, whose
// token and server it copies (the transfer runs without the client's lock),
// without an overall timeout.
func (c *Client) blobAPI() (*api, time.Duration, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ready(); err != nil {
		return nil, 0, err
	}
	a := *c.api
	hc := *a.http
	timeout := hc.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	hc.Timeout = 0
	a.http = &hc
	return &a, timeout, nil
}

// cancelBody cancels a request's context when its body is closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b cancelBody) Close() error { err := b.ReadCloser.Close(); b.cancel(); return err }

// blobDo sends a request whose body (or answer) is about n bytes, retrying
// as api.do does, and returns an answer of status below 300 for the caller
// to read and close.
func (c *Client) blobDo(ctx context.Context, a *api, timeout time.Duration, method, path string, body []byte, hdr header, n int64) (*response, error) {
	var out *response
	err := a.retry(ctx, func() (bool, error) {
		rctx, cancel := context.WithTimeout(ctx, timeout+time.Duration(n/blobMinRate)*time.Second)
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req := newRequest(rctx, method, a.base+path, rd)
		for k, v := range hdr {
			req.header.set(k, v)
		}
		req.header.set("Authorization", "Bearer "+a.token)
		resp, err := a.roundTrip(req)
		if err != nil {
			cancel()
			return a.sendError(ctx, err)
		}
		if resp.status >= 300 {
			b, _ := io.ReadAll(io.LimitReader(resp.body, 1<<20))
			resp.body.Close()
			cancel()
			return problem(resp, b)
		}
		resp.body = cancelBody{resp.body, cancel}
		out = resp
		return false, nil
	})
	return out, err
}

// blobJSON is blobDo for a JSON request and answer.
func (c *Client) blobJSON(ctx context.Context, a *api, timeout time.Duration, method, path string, in, out any) error {
	var body []byte
	h := header{}
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
		h.set("Content-Type", "application/json")
	}
	resp, err := c.blobDo(ctx, a, timeout, method, path, body, h, 0)
	if err != nil {
		return err
	}
	defer resp.body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.body, 1<<20))
	if err != nil {
		return err
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%w: answer to %s %s: %v", ErrServerMisbehaved, method, path, err)
		}
	}
	return nil
}

// ---- uploading ----

// upload is the state of an upload this device began (storage key
// uploads/ID, from uploadKey): enough to continue it after a crash or a
// network failure.
type upload struct {
	Blob     string                  `json:"blob"`
	Conv     protocol.ConversationID `json:"conv"`
	Key      b64                     `json:"key"`
	Size     int64                   `json:"size"`     // plaintext
	Cipher   int64                   `json:"cipher"`   // ciphertext
	PartSize int64                   `json:"partSize"` // the server's
	// Parts holds a fingerprint of every part this device sent or was
	// about to send (see sendParts), recorded before it leaves: re-made on
	// a resume, a part must be the same bytes, or the key would encrypt
	// two different files.
	Parts    []b64 `json:"parts"`
	Created  int64 `json:"created"`            // Unix ms
	Complete bool  `json:"complete,omitempty"` // completed: a caller may hold it to send
}

// uploadAnswer is the server's description of an upload.
type uploadAnswer struct {
	Blob     string  `json:"blob"`
	Size     int64   `json:"size"`
	PartSize int64   `json:"partSize"`
	Parts    int     `json:"parts"`
	Received []int   `json:"received"`
	Complete bool    `json:"complete"`
	Missing  []int64 `json:"missing"`
}

// An upload older than this is begun again: the server forgets an
// unfinished upload, or a finished one no message names, after 24 hours.
const uploadLife = 23 * time.Hour

// uploadKey names the state of an upload of a file: by conversation, name,
// type and size, which a caller that tries again gives again.
func uploadKey(conv protocol.ConversationID, size int64, m AttachmentMeta) string {
	h := sha256.New()
	h.Write(conv[:])
	fmt.Fprintf(h, "%d\x00%s\x00%s", size, m.Name, m.Type)
	return "uploads/" + hex.EncodeToString(h.Sum(nil)[:16])
}

// UploadAttachment encrypts size bytes read from r under a fresh key and
// uploads them as a blob of conversation conv, part by part, calling
// progress (if not nil) with the ciphertext bytes the server holds. It
// returns the Attachment to pass to SendMessage.
//
// An upload that fails (a network failure, a crash) continues when
// UploadAttachment is called again for the same conversation with a reader
// of the same file from its start (same name, type and size): the file is
// read and encrypted again, which is deterministic under the upload's key,
// each part is checked against the one sent before, and only the parts the
// server lacks are sent. A file whose content changed is ErrFileChanged
// (the old upload is discarded) unless r is an io.Seeker, in which case
// the upload starts over at once. r is read once per call, from its
// current position: re-open the file to retry. One conversation, name,
// type and size name one upload at a time: a completed upload is returned
// again for the same file, and left alone (to be sent, or to expire
// unsent) for another one.
func (c *Client) UploadAttachment(ctx context.Context, conv protocol.ConversationID, r io.Reader, size int64, meta AttachmentMeta, progress func(done, total int64)) (Attachment, error) {
	if ra, ok := r.(io.ReaderAt); ok {
		fillImageMeta(&meta, io.NewSectionReader(ra, 0, size))
	}
	calls := 0
	seal := func(ctx context.Context, key []byte, partSize int64, buf []byte, emit func(part, fingerprint []byte) ([]byte, error)) ([]byte, error) {
		if calls++; calls > 1 {
			s, ok := r.(io.Seeker)
			if !ok {
				return nil, ErrFileChanged
			}
			if _, err := s.Seek(0, io.SeekStart); err != nil {
				return nil, ErrFileChanged
			}
		}
		return SealFile(ctx, r, size, key, partSize, buf, emit)
	}
	_, seeks := r.(io.Seeker)
	return c.upload(ctx, conv, size, meta, seal, seeks, progress)
}

// A Sealer encrypts a file of an upload under key, as SealFile does, in
// parts of partSize bytes (the last one shorter): it hands each to emit
// with its fingerprint, in order, and returns the SHA-256 digest of the
// whole ciphertext. buf is a buffer of partSize bytes' capacity to fill;
// emit takes the part and returns the buffer to fill next. A Sealer may be
// called again for the same upload (a resumed or restarted one), and must
// then read the same file from its start.
type Sealer func(ctx context.Context, key []byte, partSize int64, buf []byte, emit func(part, fingerprint []byte) ([]byte, error)) (digest []byte, err error)

// UploadSealed is UploadAttachment for a file that seal encrypts, such as
// a browser's worker running SealFile off the page's thread: the upload's
// key (generated here, and kept with the upload's state) goes to seal, and
// its parts come back. The file is size bytes; a resumed upload checks
// each part's fingerprint against the one sent before.
func (c *Client) UploadSealed(ctx context.Context, conv protocol.ConversationID, size int64, meta AttachmentMeta, seal Sealer, progress func(done, total int64)) (Attachment, error) {
	return c.upload(ctx, conv, size, meta, seal, true, progress)
}

// upload runs an upload whose ciphertext seal makes; restartable: seal
// may be called again at once when the file turned out to have changed.
func (c *Client) upload(ctx context.Context, conv protocol.ConversationID, size int64, meta AttachmentMeta, seal Sealer, restartable bool, progress func(done, total int64)) (Attachment, error) {
	if meta.Type == "" {
		meta.Type = "application/octet-stream"
	}
	if err := checkMeta(size, meta); err != nil {
		return Attachment{}, err
	}
	a, timeout, err := c.blobAPI()
	if err != nil {
		return Attachment{}, err
	}
	key := uploadKey(conv, size, meta)
	for try := 0; ; try++ {
		up, received, err := c.beginUpload(ctx, a, timeout, key, conv, size)
		if err != nil {
			return Attachment{}, err
		}
		digest, err := c.sendParts(ctx, a, timeout, key, up, received, seal, progress)
		if errors.Is(err, ErrFileChanged) {
			c.dropUpload(ctx, a, timeout, key, up) // another file of the same name and size
			if restartable && try == 0 {
				continue
			}
		}
		if err != nil {
			return Attachment{}, err
		}
		var done uploadAnswer
		if err := c.blobJSON(ctx, a, timeout, "POST", "/api/blobs/"+up.Blob+"/complete", nil, &done); err != nil {
			return Attachment{}, fmt.Errorf("complete the upload: %w", err)
		}
		up.Complete = true
		if err := c.saveUpload(key, up); err != nil {
			return Attachment{}, err
		}
		return Attachment{Blob: up.Blob, Key: up.Key, Digest: digest, Size: size, Type: meta.Type, Name: meta.Name,
			Width: meta.Width, Height: meta.Height, Duration: meta.Duration, Thumbnail: meta.Thumbnail}, nil
	}
}

// beginUpload continues the upload stored under key, if the server still
// has it, or begins a new one. received lists the parts the server holds.
func (c *Client) beginUpload(ctx context.Context, a *api, timeout time.Duration, key string, conv protocol.ConversationID, size int64) (*upload, map[int]bool, error) {
	cipher := attach.EncryptedSize(size)
	up, err := c.loadUpload(key)
	if err != nil {
		return nil, nil, err
	}
	if up != nil && (up.Conv != conv || up.Size != size || c.now().UnixMilli()-up.Created > uploadLife.Milliseconds()) {
		c.dropUpload(ctx, a, timeout, key, up)
		up = nil
	}
	if up != nil {
		var ans uploadAnswer
		err := c.blobJSON(ctx, a, timeout, "GET", "/api/blobs/"+up.Blob+"/upload", nil, &ans)
		switch {
		case err == nil && ans.Size == up.Cipher && ans.PartSize == up.PartSize:
			received := map[int]bool{}
			for _, n := range ans.Received {
				received[n] = true
			}
			if ans.Complete {
				for n := range ans.Parts {
					received[n] = true
				}
			}
			return up, received, nil
		case err == nil, IsCode(err, "not_found"):
			c.dropUpload(ctx, a, timeout, key, up) // gone, or not the upload this device began
		default:
			return nil, nil, err
		}
	}
	var ans uploadAnswer
	if err := c.blobJSON(ctx, a, timeout, "POST", "/api/conversations/"+conv.String()+"/blobs", map[string]int64{"size": cipher}, &ans); err != nil {
		return nil, nil, err
	}
	// A part is held in memory while it is sent: its size is bounded.
	if !blobIDForm(ans.Blob) || ans.Size != cipher || ans.PartSize < 1<<20 || ans.PartSize > 16<<20 || int64(ans.Parts) != (cipher+ans.PartSize-1)/ans.PartSize {
		return nil, nil, fmt.Errorf("%w: the server's answer to a new upload (%+v) does not match the request", ErrServerMisbehaved, ans)
	}
	up = &upload{Blob: ans.Blob, Conv: conv, Key: attach.NewKey(), Size: size, Cipher: cipher, PartSize: ans.PartSize, Created: c.now().UnixMilli()}
	return up, map[int]bool{}, c.saveUpload(key, up)
}

func (c *Client) loadUpload(key string) (*upload, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, err := c.st.Get(key)
	if errors.Is(err, ErrNoValue) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var up upload
	if json.Unmarshal(b, &up) != nil || len(up.Key) != attach.KeySize || !blobIDForm(up.Blob) || up.PartSize <= 0 {
		return nil, c.st.Delete(key) // a torn or foreign state: begin again
	}
	return &up, nil
}

func (c *Client) saveUpload(key string, up *upload) error {
	b, err := json.Marshal(up)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st.Put(key, b)
}

// dropUpload forgets an upload. An unfinished one's blob is deleted on the
// server (which deletes it anyway when the upload expires); a completed
// one's stays, since a message may name it (unnamed, it expires).
func (c *Client) dropUpload(ctx context.Context, a *api, timeout time.Duration, key string, up *upload) {
	if !up.Complete {
		c.blobJSON(ctx, a, timeout, "DELETE", "/api/blobs/"+up.Blob, nil, nil) // best effort
	}
	c.forgetKey(key)
}

func (c *Client) forgetKey(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st.Delete(key) // a state left behind is dropped on its next use
}

// forgetUploads drops the stored state of the uploads of atts, once a
// message names them.
func (c *Client) forgetUploads(atts []Attachment) error {
	if len(atts) == 0 {
		return nil
	}
	keys, err := c.st.List("uploads/")
	if err != nil {
		return err
	}
	for _, k := range keys {
		b, err := c.st.Get(k)
		if err != nil {
			continue
		}
		var up upload
		if json.Unmarshal(b, &up) != nil {
			continue
		}
		for _, a := range atts {
			if a.Blob == up.Blob {
				if err := c.st.Delete(k); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// partWriter cuts the ciphertext into the server's parts and hands each
// full one to send, which returns the buffer to fill next; finish sends
// the last.
type partWriter struct {
	buf  []byte
	send func(part []byte) ([]byte, error)
}

func (p *partWriter) Write(b []byte) (int, error) {
	written := 0
	for len(b) > 0 {
		k := copy(p.buf[len(p.buf):cap(p.buf)], b)
		p.buf = p.buf[:len(p.buf)+k]
		b, written = b[k:], written+k
		if len(p.buf) == cap(p.buf) {
			if err := p.finish(); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

func (p *partWriter) finish() error {
	if len(p.buf) == 0 {
		return nil
	}
	buf, err := p.send(p.buf)
	p.buf = buf[:0]
	return err
}

// uploadWorkers is how many parts are sent at once, while the next is
// encrypted: uploadWorkers+1 part buffers are in use.
const uploadWorkers = 2

// sendParts has seal encrypt the file and sends every part the server
// lacks. It returns the digest of the whole ciphertext.
func (c *Client) sendParts(ctx context.Context, a *api, timeout time.Duration, key string, up *upload, received map[int]bool, seal Sealer, progress func(done, total int64)) ([]byte, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type job struct {
		n    int
		part []byte
	}
	jobs := make(chan job)
	free := make(chan []byte, uploadWorkers+1)
	for range uploadWorkers + 1 {
		free <- make([]byte, 0, min(up.PartSize, up.Cipher))
	}
	var (
		mu      sync.Mutex
		done    int64
		sendErr error
	)
	acked := func(n int64, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil && sendErr == nil {
			sendErr = err
			cancel()
		}
		if err == nil {
			done += n
			if progress != nil {
				progress(done, up.Cipher)
			}
		}
	}
	var wg sync.WaitGroup
	for range uploadWorkers {
		wg.Go(func() {
			for j := range jobs {
				resp, err := c.blobDo(ctx, a, timeout, "PUT", "/api/blobs/"+up.Blob+"/parts/"+strconv.Itoa(j.n), j.part,
					header{"content-type": "application/octet-stream"}, int64(len(j.part)))
				if err == nil {
					resp.body.Close()
				} else {
					err = fmt.Errorf("upload part %d: %w", j.n, err)
				}
				acked(int64(len(j.part)), err)
				free <- j.part
			}
		})
	}
	stop := sync.OnceFunc(func() { close(jobs); wg.Wait() })
	defer stop()

	n, sent := 0, int64(0)
	emit := func(part, fingerprint []byte) ([]byte, error) {
		i := n
		n++
		if sent += int64(len(part)); len(fingerprint) != sha256.Size || len(part) == 0 || int64(len(part)) > up.PartSize || sent > up.Cipher ||
			int64(len(part)) < up.PartSize && sent != up.Cipher {
			return part, errors.New("encrypt the file: a part does not fit the upload")
		}
		if i < len(up.Parts) {
			if subtle.ConstantTimeCompare(up.Parts[i], fingerprint) != 1 {
				return part, ErrFileChanged
			}
		} else {
			up.Parts = append(up.Parts, append([]byte(nil), fingerprint...))
			if err := c.saveUpload(key, up); err != nil {
				return part, err
			}
		}
		if received[i] {
			acked(int64(len(part)), nil)
			return part, nil
		}
		select {
		case jobs <- job{i, part}:
		case <-ctx.Done():
			return part, context.Cause(ctx)
		}
		return <-free, nil
	}
	digest, err := seal(ctx, up.Key, up.PartSize, <-free, emit)
	if err == nil && sent != up.Cipher {
		err = fmt.Errorf("encrypt the file: %d bytes of ciphertext, not %d", sent, up.Cipher)
	}
	if err != nil {
		return nil, firstErr(sendErrOf(&mu, &sendErr), err)
	}
	stop()
	if err := sendErrOf(&mu, &sendErr); err != nil {
		return nil, err
	}
	return digest, nil
}

// SealFile encrypts size bytes read from r under key (protocol.md §13.3)
// and hands the ciphertext to emit in parts of partSize bytes, the last
// one shorter, each with its fingerprint, filling buf (of partSize bytes'
// capacity) and then the buffers emit returns. It returns the SHA-256
// digest of the whole ciphertext. A reader shorter or longer than size is
// an error.
//
// A part's fingerprint, which a resumed upload compares, is the state of
// the running digest at its end: SHA-256 of the marshalled SHA-256 state,
// a function of every ciphertext byte up to there, at no cost of a second
// pass over the part.
func SealFile(ctx context.Context, r io.Reader, size int64, key []byte, partSize int64, buf []byte, emit func(part, fingerprint []byte) ([]byte, error)) ([]byte, error) {
	if partSize <= 0 || int64(cap(buf)) < min(partSize, attach.EncryptedSize(size)) {
		return nil, errors.New("encrypt the file: a part buffer smaller than a part")
	}
	h := sha256.New()
	pw := &partWriter{buf: buf[:0:min(int64(cap(buf)), partSize)], send: func(part []byte) ([]byte, error) {
		if err := ctx.Err(); err != nil {
			return part, err
		}
		h.Write(part)
		state, err := h.(encoding.BinaryMarshaler).MarshalBinary()
		if err != nil {
			return part, err
		}
		sum := sha256.Sum256(state)
		next, err := emit(part, sum[:])
		if err != nil {
			return part, err
		}
		return next[:0:min(int64(cap(next)), partSize)], nil
	}}
	w, err := attach.NewWriter(pw, key)
	if err != nil {
		return nil, err
	}
	if n, err := io.CopyN(w, r, size); err != nil {
		if err == io.EOF {
			return nil, fmt.Errorf("the file has %d bytes, not %d", n, size)
		}
		return nil, err
	}
	if n, _ := r.Read(make([]byte, 1)); n > 0 {
		return nil, fmt.Errorf("the file is longer than %d bytes", size)
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	if err := pw.finish(); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

func sendErrOf(mu *sync.Mutex, err *error) error {
	mu.Lock()
	defer mu.Unlock()
	return *err
}

// firstErr is the failed send that stopped the encryption, if one did,
// else err.
func firstErr(send, err error) error {
	if send != nil && !errors.Is(err, ErrFileChanged) {
		return send
	}
	return err
}

// ---- downloading ----

// DownloadAttachment fetches an attachment of conversation conv, checks
// the SHA-256 digest of its ciphertext against the one its message gives,
// and only then decrypts it into w, calling progress (if not nil) with the
// ciphertext bytes fetched. The ciphertext is spooled first (natively to a
// file in the state directory, or the system's temporary directory; in a
// browser to memory), in ranges, and a download that fails continues from
// what the spool holds when called again.
//
// A digest that does not match, or a blob of another size than the
// message says, is the server's doing: an alarm (AlarmBlobDigest) and an
// error wrapping ErrServerMisbehaved, and nothing is written to w. A
// ciphertext that matches but does not decrypt is ErrAttachmentCorrupt
// (the sender's doing); w may then have received the chunks before the
// broken one. Downloads of one attachment must not overlap on one device
// (they share its spool). To a file, SaveAttachment writes the plaintext
// once, without a spool.
func (c *Client) DownloadAttachment(ctx context.Context, conv protocol.ConversationID, att Attachment, w io.Writer, progress func(done, total int64)) error {
	sp, err := c.fetchBlob(ctx, conv, att, true, progress)
	if err != nil {
		return err
	}
	// The spool is the sender's blob now: whatever decryption says, it is
	// not fetched again.
	defer sp.Close()
	defer sp.Remove()
	if _, err := sp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	return DecryptAttachment(att, sp, w)
}

// errBlobDigest is the fault of a blob whose digest is not its message's.
const errBlobDigest = "The blob's digest is not the one its message gives."

// fetchBlob downloads att's ciphertext into a spool, in ranges, resuming
// from what the spool holds, and returns the spool (the caller closes and
// removes it); with check, it has checked the ciphertext's digest. A blob
// the server served wrong is a fault (an alarm, ErrServerMisbehaved).
func (c *Client) fetchBlob(ctx context.Context, conv protocol.ConversationID, att Attachment, check bool, progress func(done, total int64)) (spool, error) {
	if err := checkAttachment(att); err != nil {
		return nil, fmt.Errorf("attachment: %w", err)
	}
	a, timeout, err := c.blobAPI()
	if err != nil {
		return nil, err
	}
	sp, have, err := c.openSpool(att.Blob)
	if err != nil {
		return nil, err
	}
	keep := false
	defer func() {
		if !keep {
			sp.Close()
		}
	}()
	total := attach.EncryptedSize(att.Size)
	if have > total {
		have = 0
	}
	var h hash.Hash = nopHash{}
	if check {
		h = sha256.New()
	}
	if _, err := io.CopyN(h, sp, have); err != nil {
		return nil, err
	}
	if err := sp.Truncate(have); err != nil {
		return nil, err
	}
	fault := func(detail string) error {
		sp.Remove() // never resumed from
		return c.blobFault(conv, att, detail)
	}
	if err := c.fetchRanges(ctx, a, timeout, att, have, io.MultiWriter(sp, h), fault, progress); err != nil {
		return nil, err
	}
	if check && subtle.ConstantTimeCompare(h.Sum(nil), att.Digest) != 1 {
		return nil, fault(errBlobDigest)
	}
	keep = true
	return sp, nil
}

// fetchRanges fetches att's ciphertext from byte have to its end, in
// ranges, into w, calling progress with the bytes fetched. A transfer cut
// off continues from what arrived (w has it); a blob the server serves
// wrong is fault(detail), whose error it returns; an error of w ends the
// download at once.
func (c *Client) fetchRanges(ctx context.Context, a *api, timeout time.Duration, att Attachment, have int64, w io.Writer, fault func(detail string) error, progress func(done, total int64)) error {
	total := attach.EncryptedSize(att.Size)
	cnt := &counter{n: have, last: have, total: total, progress: progress}
	dst := &destWriter{w: io.MultiWriter(w, cnt)}
	for fails := 0; have < total; {
		n := min(blobRange, total-have)
		hdr := header{"range": fmt.Sprintf("bytes=%d-%d", have, have+n-1)}
		resp, err := c.blobDo(ctx, a, timeout, "GET", "/api/blobs/"+att.Blob, nil, hdr, n)
		var ae *APIError
		errors.As(err, &ae)
		switch {
		case ae != nil && ae.Status == statusNotFound:
			return fmt.Errorf("%w: %w", ErrAttachmentGone, err)
		case ae != nil && ae.Status == statusRangeNotSatisfiable:
			return fault(fmt.Sprintf("The blob is shorter than the %d bytes its message says.", total))
		case err != nil:
			return err
		}
		want := fmt.Sprintf("bytes %d-%d/%d", have, have+n-1, total)
		if resp.status == statusOK && have == 0 && n == total && resp.length == total {
			want = ""
		}
		if got := resp.header.get("Content-Range"); resp.status != statusOK && got != want || resp.status == statusOK && want != "" {
			resp.body.Close()
			return fault(fmt.Sprintf("Asked for %s of the blob, the server answered %d %q.", hdr.get("Range"), resp.status, got))
		}
		// A cancelled download stops at its next read, not after what
		// the transport has received already.
		got, err := io.Copy(dst, io.LimitReader(ctxio.Reader(ctx, resp.body), n))
		extra, _ := resp.body.Read(make([]byte, 1))
		resp.body.Close()
		have += got
		if dst.err != nil {
			return dst.err
		}
		if err != nil {
			// A transfer cut off: continue from what arrived.
			if fails++; fails >= maxTries || ctx.Err() != nil {
				return fmt.Errorf("download: %w", err)
			}
			continue
		}
		if got < n || extra > 0 {
			return fault(fmt.Sprintf("The server sent %d bytes for a range of %d.", got+int64(extra), n))
		}
		fails = 0
		if progress != nil {
			progress(have, total)
		}
	}
	return nil
}

// destWriter keeps the error of the destination of a download, which
// io.Copy does not tell from an error of the source.
type destWriter struct {
	w   io.Writer
	err error
}

func (d *destWriter) Write(p []byte) (int, error) {
	n, err := d.w.Write(p)
	if err != nil && d.err == nil {
		d.err = err
	}
	return n, err
}

// nopHash stands for the digest of a download that is checked elsewhere.
type nopHash struct{}

func (nopHash) Write(p []byte) (int, error) { return len(p), nil }
func (nopHash) Sum(b []byte) []byte         { return b }
func (nopHash) Reset()                      {}
func (nopHash) Size() int                   { return 0 }
func (nopHash) BlockSize() int              { return 1 }

// counter calls progress with the bytes written through it (from n on),
// about once a MiB.
type counter struct {
	n, last, total int64
	progress       func(done, total int64)
}

func (c *counter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	if c.progress != nil && c.n-c.last >= 1<<20 && c.n < c.total {
		c.last = c.n
		c.progress(c.n, c.total)
	}
	return len(p), nil
}

// DecryptAttachment decrypts the ciphertext of att, read from r, into w.
// The caller has checked the ciphertext's SHA-256 against att.Digest
// before (DownloadAttachment does both; a browser that keeps the
// ciphertext elsewhere calls this on it after its own check). A ciphertext that does not decrypt with
// att's key is ErrAttachmentCorrupt.
func DecryptAttachment(att Attachment, r io.Reader, w io.Writer) error {
	dec, err := attach.NewReader(r, att.Key)
	if err == nil {
		var n int64
		n, err = io.Copy(w, &sourceErr{r: dec})
		var se sourceErr
		if errors.As(err, &se) {
			return fmt.Errorf("%w (%v)", ErrAttachmentCorrupt, se.err)
		}
		if err == nil && n != att.Size {
			return fmt.Errorf("%w: %d bytes, its message says %d", ErrAttachmentCorrupt, n, att.Size)
		}
		return err
	}
	if errors.Is(err, attach.ErrHeader) || errors.Is(err, attach.ErrTruncated) {
		return fmt.Errorf("%w (%v)", ErrAttachmentCorrupt, err)
	}
	return err
}

// sourceErr tells a read error of the decryption from a write error of
// the destination in io.Copy.
type sourceErr struct {
	r   io.Reader
	err error
}

func (s *sourceErr) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		return n, sourceErr{err: err}
	}
	return n, err
}

func (s sourceErr) Error() string { return s.err.Error() }

// blobFault raises the alarm of a blob the server served wrong and
// returns the error for it.
func (c *Client) blobFault(conv protocol.ConversationID, att Attachment, detail string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.raise(Alarm{Kind: AlarmBlobDigest, Conversation: conv, Detail: "Attachment " + strconv.Quote(att.Name) + ": " + detail}); err != nil {
		return err
	}
	return fmt.Errorf("%w: attachment %q: %s", ErrServerMisbehaved, att.Name, detail)
}
