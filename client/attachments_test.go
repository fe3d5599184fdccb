//go:build !js

package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sandi.dev/client"
	"sandi.dev/internal/blob/fsblob"
	"sandi.dev/internal/server"
	"sandi.dev/protocol"
	"sandi.dev/protocol/attach"
)

// blobConfig is a server configuration with a blob store on the file
// system, in a directory of the test.
func blobConfig(t *testing.T) server.Config { return blobConfigIn(t, t.TempDir()) }

// blobConfigIn is blobConfig with the blob store in dir (whose objects
// blobObjects reads).
func blobConfigIn(t testing.TB, dir string) server.Config {
	t.Helper()
	st, err := fsblob.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return server.Config{Blobs: st}
}

// randomFile returns n bytes that do not compress.
func randomFile(n int, seed uint64) []byte {
	b := make([]byte, n)
	rng := rand.New(rand.NewPCG(seed, 7))
	for i := 0; i+8 <= n; i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// pair registers alice and bob on n and makes a conversation of the two,
// which bob has synced.
func pair(t *testing.T, n *node, alice, bob *client.Client) protocol.ConversationID {
	t.Helper()
	ctx := context.Background()
	conv, err := alice.CreateConversation(ctx, "", bob.Username())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	return conv
}

// upload uploads data as name from c into conv.
func upload(t *testing.T, c *client.Client, conv protocol.ConversationID, name, typ string, data []byte) client.Attachment {
	t.Helper()
	a, err := c.UploadAttachment(context.Background(), conv, bytes.NewReader(data), int64(len(data)), client.AttachmentMeta{Name: name, Type: typ}, nil)
	if err != nil {
		t.Fatalf("upload %s: %v", name, err)
	}
	return a
}

// received syncs c and returns the attachments of its new messages.
func received(t *testing.T, c *client.Client) []client.Attachment {
	t.Helper()
	res, err := c.Sync(context.Background())
	if err != nil || len(res.Failures) > 0 {
		t.Fatalf("sync: %v %v", err, res.Failures)
	}
	var out []client.Attachment
	for _, m := range res.Messages {
		out = append(out, m.Attachments...)
	}
	return out
}

// TestAttachmentRoundTrip: a file of two parts, an image and an empty
// file go from alice to bob, on SQLite and PostgreSQL: bob's message names
// them, with the image's dimensions and thumbnail, and each downloads to
// the same bytes.
func TestAttachmentRoundTrip(t *testing.T) {
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) { testAttachmentRoundTrip(t, startNode(t, dbs(t)[db](t), blobConfig(t))) })
	}
}

func testAttachmentRoundTrip(t *testing.T, n *node) {
	{
		ctx := context.Background()
		alice, bob := register(t, n, "alice"), register(t, n, "bob")
		conv := pair(t, n, alice, bob)

		big := randomFile(9<<20+12345, 1) // two parts of the server's 8 MiB
		var mu sync.Mutex
		var seen []int64
		a1, err := alice.UploadAttachment(ctx, conv, bytes.NewReader(big), int64(len(big)), client.AttachmentMeta{Name: "big.bin"}, func(done, total int64) {
			mu.Lock()
			defer mu.Unlock()
			if total != attach.EncryptedSize(int64(len(big))) {
				t.Errorf("progress total %d", total)
			}
			seen = append(seen, done)
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(seen) != 2 || seen[1] != attach.EncryptedSize(int64(len(big))) {
			t.Fatalf("progress %v", seen)
		}
		img := image.NewRGBA(image.Rect(0, 0, 300, 200))
		var pngb bytes.Buffer
		png.Encode(&pngb, img)
		a2 := upload(t, alice, conv, "pic.png", "image/png", pngb.Bytes())
		if a2.Width != 300 || a2.Height != 200 || len(a2.Thumbnail) == 0 {
			t.Fatalf("image: %d×%d, thumbnail %d bytes", a2.Width, a2.Height, len(a2.Thumbnail))
		}
		a3 := upload(t, alice, conv, "empty.txt", "text/plain", nil)
		m, err := alice.SendMessage(ctx, conv, "", []client.Attachment{a1, a2, a3})
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Attachments) != 3 {
			t.Fatalf("sent message has %d attachments", len(m.Attachments))
		}
		hist, err := alice.History(conv)
		if err != nil || len(hist) == 0 || len(hist[len(hist)-1].Attachments) != 3 {
			t.Fatalf("alice's history: %v %+v", err, hist)
		}
		got := received(t, bob)
		if len(got) != 3 || got[0].Blob != a1.Blob || got[0].Name != "big.bin" || got[0].Type != "application/octet-stream" ||
			got[1].Width != 300 || !bytes.Equal(got[1].Thumbnail, a2.Thumbnail) {
			t.Fatalf("bob received %+v", got)
		}
		for i, want := range [][]byte{big, pngb.Bytes(), {}} {
			var out bytes.Buffer
			var calls, last int64
			if err := bob.DownloadAttachment(ctx, conv, got[i], &out, func(done, total int64) {
				if done < last || total != attach.EncryptedSize(got[i].Size) {
					t.Errorf("progress %d of %d after %d", done, total, last)
				}
				calls, last = calls+1, done
			}); err != nil {
				t.Fatalf("download %d: %v", i, err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				t.Fatalf("download %d: %d bytes, not the file", i, out.Len())
			}
			// About once a MiB, and at the end.
			if last != attach.EncryptedSize(got[i].Size) || i == 0 && calls < 9 {
				t.Fatalf("download %d: %d progress calls, the last at %d", i, calls, last)
			}
		}
		// The sender's history has them too, and they download there.
		var out bytes.Buffer
		if err := alice.DownloadAttachment(ctx, conv, hist[len(hist)-1].Attachments[1], &out, nil); err != nil || !bytes.Equal(out.Bytes(), pngb.Bytes()) {
			t.Fatalf("alice downloads her own: %v", err)
		}
	}
}

// failing is a transport that fails the requests fail picks (with a
// transport error, as a dropped connection) and counts the others.
type failing struct {
	mu   sync.Mutex
	fail func(r *http.Request) bool
	cut  func(r *http.Request) int64 // > 0: cut the answer's body after so many bytes
	seen []string
}

func (f *failing) RoundTrip(r *http.Request) (*http.Response, error) {
	f.mu.Lock()
	fail, cut := f.fail, f.cut
	f.seen = append(f.seen, r.Method+" "+r.URL.Path+" "+r.Header.Get("Range"))
	f.mu.Unlock()
	if fail != nil && fail(r) {
		return nil, errors.New("connection reset (test)")
	}
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && cut != nil {
		if n := cut(r); n > 0 {
			resp.Body = struct {
				io.Reader
				io.Closer
			}{io.MultiReader(io.LimitReader(resp.Body, n), errReader{}), resp.Body}
		}
	}
	return resp, err
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

func (f *failing) requests(prefix string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, s := range f.seen {
		if strings.HasPrefix(s, prefix) {
			out = append(out, s)
		}
	}
	f.seen = nil
	return out
}

// TestAttachmentResume: an upload cut off after its first part continues,
// after the process restarts, with the parts the server lacks; a file that
// changed in between is never encrypted again under the old key; a
// download cut off continues from what it fetched.
func TestAttachmentResume(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", blobConfig(t))
	dir := t.TempDir()
	tr := &failing{}
	alice := registerWith(t, n, "alice", tr, dir)
	dl := &failing{}
	bob := registerWith(t, n, "bob", dl, t.TempDir())
	conv := pair(t, n, alice, bob)

	file := randomFile(17<<20, 2) // three parts
	meta := client.AttachmentMeta{Name: "movie.bin"}
	tr.fail = func(r *http.Request) bool { return r.Method == "PUT" && strings.HasSuffix(r.URL.Path, "/parts/1") }
	if _, err := alice.UploadAttachment(ctx, conv, bytes.NewReader(file), int64(len(file)), meta, nil); err == nil {
		t.Fatal("the upload succeeded although part 1 could not be sent")
	}
	if got := strings.Join(tr.requests("PUT"), "\n"); !strings.Contains(got, "/parts/0 ") || !strings.Contains(got, "/parts/1 ") {
		t.Fatalf("PUTs: %q", got)
	}
	alice.Close() // the process ends
	alice = openClient(t, n, tr, dir)
	tr.fail = nil
	// Read through a pipe: no ReaderAt, no Seeker, as from standard input.
	a, err := alice.UploadAttachment(ctx, conv, io.MultiReader(bytes.NewReader(file)), int64(len(file)), meta, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Part 2 may have been sent beside part 1 before the failure.
	if got := strings.Join(tr.requests("PUT"), "\n"); !strings.Contains(got, "/parts/1 ") || strings.Contains(got, "/parts/0 ") {
		t.Fatalf("the resumed upload sent %q, want part 1 (and part 2) only", got)
	}
	if _, err := alice.SendMessage(ctx, conv, "the movie", []client.Attachment{a}); err != nil {
		t.Fatal(err)
	}

	// Cut off again, then the file changes: the old upload is dropped.
	tr.fail = func(r *http.Request) bool { return r.Method == "PUT" && strings.HasSuffix(r.URL.Path, "/parts/1") }
	if _, err := alice.UploadAttachment(ctx, conv, bytes.NewReader(file), int64(len(file)), meta, nil); err == nil {
		t.Fatal("the upload succeeded although part 1 could not be sent")
	}
	tr.fail = nil
	changed := bytes.Clone(file)
	changed[100] ^= 1
	_, err = alice.UploadAttachment(ctx, conv, io.MultiReader(bytes.NewReader(changed)), int64(len(changed)), meta, nil)
	if !errors.Is(err, client.ErrFileChanged) {
		t.Fatalf("a changed file: %v, want ErrFileChanged", err)
	}
	tr.requests("")
	a2, err := alice.UploadAttachment(ctx, conv, bytes.NewReader(changed), int64(len(changed)), meta, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := tr.requests("PUT"); len(got) != 3 || a2.Blob == a.Blob || bytes.Equal(a2.Key, a.Key) {
		t.Fatalf("the changed file: %d PUTs, blob %s (first %s)", len(got), a2.Blob, a.Blob)
	}
	// Uploaded again, the completed upload is returned at once.
	if again, err := alice.UploadAttachment(ctx, conv, bytes.NewReader(changed), int64(len(changed)), meta, nil); err != nil || again.Blob != a2.Blob {
		t.Fatalf("the same file again: %v, blob %s, want %s", err, again.Blob, a2.Blob)
	}
	if got := tr.requests("PUT"); len(got) != 0 {
		t.Fatalf("the same file again sent %q", got)
	}
	if _, err := alice.SendMessage(ctx, conv, "", []client.Attachment{a2}); err != nil {
		t.Fatal(err)
	}
	// A Seeker starts over at once when the file changed.
	tr.fail = func(r *http.Request) bool { return r.Method == "PUT" && strings.HasSuffix(r.URL.Path, "/parts/2") }
	alice.UploadAttachment(ctx, conv, bytes.NewReader(file), int64(len(file)), meta, nil)
	tr.fail = nil
	if _, err := alice.UploadAttachment(ctx, conv, bytes.NewReader(changed), int64(len(changed)), meta, nil); err != nil {
		t.Fatalf("a changed file read from a Seeker: %v", err)
	}

	// bob's download is cut off again and again: each answer breaks after
	// 1 MiB. The call gives up after a few; the next one continues from
	// what its spool holds.
	got := received(t, bob)
	if len(got) != 2 || got[1].Blob != a2.Blob {
		t.Fatalf("bob received %+v", got)
	}
	dl.cut = func(r *http.Request) int64 {
		if r.Header.Get("Range") != "" {
			return 1 << 20
		}
		return 0
	}
	var out bytes.Buffer
	if err := bob.DownloadAttachment(ctx, conv, got[1], &out, nil); err == nil || out.Len() != 0 {
		t.Fatalf("a download cut off again and again: %v, %d bytes written", err, out.Len())
	}
	dl.requests("")
	dl.cut = nil
	if err := bob.DownloadAttachment(ctx, conv, got[1], &out, nil); err != nil || !bytes.Equal(out.Bytes(), changed) {
		t.Fatalf("resumed download: %v", err)
	}
	gets := dl.requests("GET /api/blobs/")
	if len(gets) != 1 || !strings.HasSuffix(gets[0], fmt.Sprintf("bytes=%d-%d", 5<<20, attach.EncryptedSize(int64(len(changed)))-1)) {
		t.Fatalf("the resumed download asked for %q", gets)
	}
}

// blobProxy is a malicious server for attachments: it forwards everything
// to a node, but answers GET /api/blobs/{id} from what transform makes of
// the real blob (nil: the real blob), ranges included; a transform that
// returns nil makes it answer 404.
type blobProxy struct {
	srv       *httptest.Server
	transform atomic.Pointer[func(id string, full []byte) []byte]
}

func newBlobProxy(t *testing.T, n *node) *blobProxy {
	target, err := url.Parse(n.url())
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	p := &blobProxy{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tf := p.transform.Load()
		id, ok := strings.CutPrefix(r.URL.Path, "/api/blobs/")
		if tf == nil || r.Method != "GET" || !ok || strings.Contains(id, "/") {
			rp.ServeHTTP(w, r)
			return
		}
		full, err := fetchBlob(n, id, r.Header.Get("Authorization"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		served := (*tf)(id, full)
		if served == nil {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"status":404,"code":"not_found","detail":"no such blob"}`)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(served))
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *blobProxy) set(f func(id string, full []byte) []byte) {
	if f == nil {
		p.transform.Store(nil)
		return
	}
	p.transform.Store(&f)
}

// fetchBlob reads a whole blob from the node with an Authorization header.
func fetchBlob(n *node, id, auth string) ([]byte, error) {
	req, err := http.NewRequest("GET", n.url()+"/api/blobs/"+id, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", auth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, errors.New(resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// TestAttachmentMaliciousServer: the server serves, for an attachment,
// another blob of the same conversation, a blob of another conversation,
// the blob with a byte flipped, cut short, or with two chunks swapped:
// each is refused as the server's fault (ErrServerMisbehaved and a
// blob_digest alarm) and nothing is written, by DownloadAttachment and by
// SaveAttachment alike. A member who sends an
// attachment under a wrong key gets a clear error, not an alarm.
func TestAttachmentMaliciousServer(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", blobConfig(t))
	p := newBlobProxy(t, n)
	alice := register(t, n, "alice")
	bob := clientVia(t, &proxy{srv: p.srv})
	if err := bob.Register(ctx, "bob", "password of bob"); err != nil {
		t.Fatal(err)
	}
	register(t, n, "carol")
	conv := pair(t, n, alice, bob)
	other, err := alice.CreateConversation(ctx, "", "carol")
	if err != nil {
		t.Fatal(err)
	}
	size := 3*attach.ChunkSize + 1000
	a1 := upload(t, alice, conv, "one.bin", "", randomFile(size, 3))
	a2 := upload(t, alice, conv, "two.bin", "", randomFile(size, 4))
	a3 := upload(t, alice, other, "three.bin", "", randomFile(size, 5))
	a4 := upload(t, alice, conv, "two-parts.bin", "", randomFile(8<<20+100<<10, 7))
	// The blobs as the server holds them: encryption is deterministic
	// under a file key.
	secondBlob, carolBlob := encryptFile(t, a2.Key, randomFile(size, 4)), encryptFile(t, a3.Key, randomFile(size, 5))
	for _, c := range []struct {
		conv protocol.ConversationID
		atts []client.Attachment
	}{{conv, []client.Attachment{a1, a2, a4}}, {other, []client.Attachment{a3}}} {
		if _, err := alice.SendMessage(ctx, c.conv, "files", c.atts); err != nil {
			t.Fatal(err)
		}
	}
	atts := received(t, bob)
	if len(atts) != 3 {
		t.Fatalf("bob received %d attachments", len(atts))
	}
	const chunk = attach.ChunkSize + attach.Overhead
	alarms := 0
	for _, c := range []struct {
		name string
		f    func(id string, full []byte) []byte
		att  int // of atts
	}{
		{"another blob of the conversation", func(string, []byte) []byte { return secondBlob }, 0},
		{"a blob of another conversation", func(string, []byte) []byte { return carolBlob }, 0},
		{"a byte flipped", func(_ string, b []byte) []byte { b[len(b)/2] ^= 1; return b }, 0},
		{"cut short", func(_ string, b []byte) []byte { return b[:len(b)-100] }, 0},
		{"a chunk dropped", func(_ string, b []byte) []byte { return append(b[:5+chunk:5+chunk], b[5+2*chunk:]...) }, 0},
		{"chunks swapped", func(_ string, b []byte) []byte {
			s := bytes.Clone(b)
			copy(s[5:], b[5+chunk:5+2*chunk])
			copy(s[5+chunk:], b[5:5+chunk])
			return s
		}, 0},
		{"a byte appended", func(_ string, b []byte) []byte { return append(b, 0) }, 0},
		{"parts reordered", func(_ string, b []byte) []byte { return append(bytes.Clone(b[8<<20:]), b[:8<<20]...) }, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			p.set(c.f)
			defer p.set(nil)
			var out bytes.Buffer
			err := bob.DownloadAttachment(ctx, conv, atts[c.att], &out, nil)
			wantMisbehaved(t, err)
			if out.Len() != 0 {
				t.Fatalf("%d bytes written", out.Len())
			}
			// Saved to a file (decrypted as it arrives): the same, and
			// nothing left in the directory.
			dir := t.TempDir()
			wantMisbehaved(t, bob.SaveAttachment(ctx, conv, atts[c.att], dir+"/out", false, nil))
			if names := dirNames(t, dir); len(names) != 0 {
				t.Fatalf("left in the directory: %q", names)
			}
			al, aerr := bob.Alarms(conv)
			if aerr != nil || len(al) != alarms+2 || al[alarms].Kind != client.AlarmBlobDigest || al[alarms+1].Kind != client.AlarmBlobDigest {
				t.Fatalf("alarms: %v %+v", aerr, al)
			}
			alarms += 2
		})
	}
	// A blob the server no longer has is gone, not an attack.
	p.set(func(string, []byte) []byte { return nil })
	var out bytes.Buffer
	if err := bob.DownloadAttachment(ctx, conv, atts[0], &out, nil); !errors.Is(err, client.ErrAttachmentGone) || errors.Is(err, client.ErrServerMisbehaved) {
		t.Fatalf("a blob gone: %v", err)
	}
	p.set(nil)
	// Served right again, the attachments download.
	if err := bob.DownloadAttachment(ctx, conv, atts[0], &out, nil); err != nil || int64(out.Len()) != a1.Size {
		t.Fatalf("honest download: %v", err)
	}
	out.Reset()
	if err := bob.DownloadAttachment(ctx, conv, atts[2], &out, nil); err != nil || int64(out.Len()) != a4.Size {
		t.Fatalf("honest download of two parts: %v", err)
	}

	// alice (a member) shares an attachment with a key that is not its
	// own: bob gets a clear error, and no alarm against the server.
	bad := upload(t, alice, conv, "bad.bin", "", randomFile(1000, 6))
	bad.Key = bytes.Repeat([]byte{9}, 32)
	if _, err := alice.SendMessage(ctx, conv, "", []client.Attachment{bad}); err != nil {
		t.Fatal(err)
	}
	got := received(t, bob)
	out.Reset()
	err = bob.DownloadAttachment(ctx, conv, got[0], &out, nil)
	if !errors.Is(err, client.ErrAttachmentCorrupt) || errors.Is(err, client.ErrServerMisbehaved) || out.Len() != 0 {
		t.Fatalf("a wrong key: %v, %d bytes written", err, out.Len())
	}
	if al, _ := bob.Alarms(conv); len(al) != alarms {
		t.Fatalf("a sender's wrong key raised an alarm: %+v", al)
	}
}

// encryptFile returns the ciphertext of data under key.
func encryptFile(t *testing.T, key, data []byte) []byte {
	var buf bytes.Buffer
	w, err := attach.NewWriter(&buf, key)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
