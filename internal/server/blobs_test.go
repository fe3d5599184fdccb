package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	rtmetrics "runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"sandi.dev/internal/blob"
	"sandi.dev/internal/blob/fsblob"
	"sandi.dev/internal/server"
	"sandi.dev/protocol"
)

// someBlob is a well-formed blob id that names no blob.
const someBlob = "0123456789abcdef0123456789abcdef"

type blobAnswer struct {
	Blob      string `json:"blob"`
	Size      int64  `json:"size"`
	PartSize  int64  `json:"partSize"`
	Parts     int    `json:"parts"`
	ExpiresAt int64  `json:"expiresAt"`
	Received  []int  `json:"received"`
	Complete  bool   `json:"complete"`
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// newBlob begins an upload of size bytes into conv.
func (d *device) newBlob(conv protocol.ConversationID, size int64) (blobAnswer, error) {
	var a blobAnswer
	err := d.do("POST", "/api/conversations/"+conv.String()+"/blobs", map[string]int64{"size": size}, &a)
	return a, err
}

// putPart sends part n of blob id with body as is (Content-Length = its length).
func (d *device) putPart(id string, n int, body []byte) rawResponse {
	return d.e.raw(nil, d.token, "PUT", fmt.Sprintf("/api/blobs/%s/parts/%d", id, n), body)
}

// upload uploads data into conv and completes it.
func (d *device) upload(conv protocol.ConversationID, data []byte) string {
	t := d.e.t
	t.Helper()
	a, err := d.newBlob(conv, int64(len(data)))
	if err != nil {
		t.Fatalf("%s: new blob: %v", d.name, err)
	}
	for n := 0; n < a.Parts; n++ {
		end := min(len(data), (n+1)*blob.PartSize)
		if r := d.putPart(a.Blob, n, data[n*blob.PartSize:end]); r.status != 204 {
			t.Fatalf("%s: part %d: %d %s", d.name, n, r.status, r.body)
		}
	}
	d.must("POST", "/api/blobs/"+a.Blob+"/complete", nil, nil)
	return a.Blob
}

// fetch GETs a blob, with a Range header unless rng is empty.
func (d *device) fetch(id, rng string) rawResponse {
	t := d.e.t
	t.Helper()
	req, _ := http.NewRequest("GET", d.e.url+"/api/blobs/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+d.token)
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return rawResponse{status: resp.StatusCode, header: resp.Header, body: body}
}

// sendBlobs encrypts text in epoch n and posts it with blobs.
func (d *device) sendBlobs(conv protocol.ConversationID, n uint64, text string, blobs []string) (sendAnswer, error) {
	return d.sendWith(conv, n, text, map[string]any{"blobs": blobs})
}

// sendWith encrypts text in epoch n and posts it with the request's other
// fields.
func (d *device) sendWith(conv protocol.ConversationID, n uint64, text string, fields map[string]any) (sendAnswer, error) {
	ep, err := d.epoch(conv, n)
	if err != nil {
		return sendAnswer{}, err
	}
	env, err := ep.Encrypt(d.id, []byte(text))
	if err != nil {
		return sendAnswer{}, err
	}
	d.clientID++
	req := map[string]any{"clientId": fmt.Sprintf("%s-%08d", d.dev, d.clientID), "envelope": b64(env.Marshal())}
	for k, v := range fields {
		req[k] = v
	}
	var sa sendAnswer
	err = d.do("POST", "/api/conversations/"+conv.String()+"/messages", req, &sa)
	return sa, err
}

func (d *device) lastSeq(conv protocol.ConversationID) uint64 {
	var c struct {
		LastSeq uint64 `json:"lastSeq"`
	}
	d.must("GET", "/api/conversations/"+conv.String(), nil, &c)
	return c.LastSeq
}

// TestBlobUpload: a two-part upload, out of order and resumed from what
// the server says it received, served only once complete, whole and in
// ranges, then shared by a message and fetched by another member.
func TestBlobUpload(t *testing.T) {
	forEachDB(t, server.Config{}, func(t *testing.T, e *env) {
		alice, bob := e.register("alice"), e.register("bob")
		conv, err := alice.create([]*device{bob})
		if err != nil {
			t.Fatal(err)
		}
		data := randomBytes(blob.PartSize + 1234)
		a, err := alice.newBlob(conv, int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		if a.Parts != 2 || a.PartSize != blob.PartSize || a.Size != int64(len(data)) || a.ExpiresAt != e.clock.now.Add(24*time.Hour).UnixMilli() {
			t.Fatalf("new blob = %+v", a)
		}
		if r := alice.putPart(a.Blob, 1, data[blob.PartSize:]); r.status != 204 {
			t.Fatalf("part 1: %d %s", r.status, r.body)
		}
		var st blobAnswer
		alice.must("GET", "/api/blobs/"+a.Blob+"/upload", nil, &st)
		if !slices.Equal(st.Received, []int{1}) || st.Complete || st.Parts != 2 {
			t.Fatalf("upload state = %+v", st)
		}
		// Another device of the account continues the upload.
		alice2 := e.login("alice", alice.id)
		if err := alice2.uploadBundle(false); err != nil {
			t.Fatal(err)
		}
		for _, d := range []*device{alice, bob} {
			if r := d.fetch(a.Blob, ""); r.status != 404 {
				t.Fatalf("%s fetched an incomplete blob: %d", d.name, r.status)
			}
		}
		if r := alice2.putPart(a.Blob, 0, data[:blob.PartSize]); r.status != 204 {
			t.Fatalf("part 0: %d %s", r.status, r.body)
		}
		var done struct {
			Blob string `json:"blob"`
			Size int64  `json:"size"`
		}
		alice2.must("POST", "/api/blobs/"+a.Blob+"/complete", nil, &done)
		if done.Blob != a.Blob || done.Size != int64(len(data)) {
			t.Fatalf("complete = %+v", done)
		}
		alice.must("POST", "/api/blobs/"+a.Blob+"/complete", nil, nil) // again: no change
		r := bob.fetch(a.Blob, "")
		if r.status != 200 || !bytes.Equal(r.body, data) || r.header.Get("Accept-Ranges") != "bytes" ||
			r.header.Get("Content-Type") != "application/octet-stream" || r.header.Get("Content-Length") != strconv.Itoa(len(data)) {
			t.Fatalf("fetch: %d, %d bytes, %v", r.status, len(r.body), r.header)
		}
		size := int64(len(data))
		for _, c := range []struct {
			rng      string
			off, end int64 // [off, end)
		}{
			{"bytes=0-9", 0, 10},
			{"bytes=8388600-8388615", 8388600, 8388616},
			{"bytes=100-", 100, size},
			{"bytes=-20", size - 20, size},
			{fmt.Sprintf("bytes=10-%d", size+100), 10, size},
		} {
			r := bob.fetch(a.Blob, c.rng)
			want := fmt.Sprintf("bytes %d-%d/%d", c.off, c.end-1, size)
			if r.status != 206 || !bytes.Equal(r.body, data[c.off:c.end]) || r.header.Get("Content-Range") != want {
				t.Fatalf("range %s: %d, %d bytes, Content-Range %q (want %q)", c.rng, r.status, len(r.body), r.header.Get("Content-Range"), want)
			}
		}
		if r := bob.fetch(a.Blob, "items=0-1"); r.status != 200 || len(r.body) != len(data) {
			t.Fatalf("a range of another unit: %d, %d bytes; want the whole blob", r.status, len(r.body))
		}

		// alice2's keys made the conversation need a new epoch.
		if err := alice.rotate(conv, 2); err != nil {
			t.Fatal(err)
		}
		sa, err := alice.sendBlobs(conv, 2, "a photo", []string{a.Blob})
		if err != nil {
			t.Fatal(err)
		}
		refs, err := e.st.BlobRefs(context.Background(), conv, sa.Seq)
		if err != nil || !slices.Equal(refs, []string{a.Blob}) {
			t.Fatalf("references of the message: %v, %v", refs, err)
		}
		// A text message goes as before.
		if _, err := bob.send(conv, 2, "nice"); err != nil {
			t.Fatal(err)
		}
		// The uploader deletes it: gone for everyone, its bytes released.
		bob.must("GET", "/api/blobs/"+a.Blob, nil, nil)
		wantCode(t, bob.do("DELETE", "/api/blobs/"+a.Blob, nil, nil), 404, server.CodeNotFound)
		alice.must("DELETE", "/api/blobs/"+a.Blob, nil, nil)
		if r := bob.fetch(a.Blob, ""); r.status != 404 {
			t.Fatalf("fetch after deletion: %d", r.status)
		}
		if used, open, _ := e.st.BlobUsage(context.Background(), alice.user); used != 0 || open != 0 {
			t.Fatalf("usage after deletion: %d bytes, %d open", used, open)
		}
	})
}

// TestBlobBadInput: each bad upload is refused with its code and changes
// nothing.
func TestBlobBadInput(t *testing.T) {
	cfg := server.Config{MaxBlobSize: 3000, BlobQuota: 4000, MaxOpenUploads: 3}
	forEachDB(t, cfg, func(t *testing.T, e *env) {
		ctx := context.Background()
		alice := e.register("alice")
		conv, err := alice.create(nil)
		if err != nil {
			t.Fatal(err)
		}
		usage := func(what string, bytes int64, open int) {
			t.Helper()
			if b, o, err := e.st.BlobUsage(ctx, alice.user); err != nil || b != bytes || o != open {
				t.Fatalf("%s: usage %d bytes, %d open, %v; want %d, %d", what, b, o, err, bytes, open)
			}
		}
		_, err = alice.newBlob(conv, 3001)
		wantCode(t, err, 413, server.CodeBlobTooLarge)
		_, err = alice.newBlob(conv, 0)
		wantCode(t, err, 400, server.CodeBadRequest)
		usage("after refused sizes", 0, 0)

		a, err := alice.newBlob(conv, 3000)
		if err != nil {
			t.Fatal(err)
		}
		_, err = alice.newBlob(conv, 1001)
		wantCode(t, err, 403, server.CodeQuotaExceeded)
		usage("after the quota refusal", 3000, 1)
		if _, err := alice.newBlob(conv, 500); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.newBlob(conv, 400); err != nil {
			t.Fatal(err)
		}
		_, err = alice.newBlob(conv, 10)
		wantCode(t, err, 429, server.CodeTooManyUploads)
		usage("after the open uploads refusal", 3900, 3)

		data := randomBytes(3000)
		for _, c := range []struct {
			what string
			n    string
			body []byte
		}{
			{"a short part", "0", data[:2999]},
			{"a long part", "0", append(slices.Clone(data), 0)},
			{"an empty part", "0", []byte{}},
			{"part 1 of a 1-part blob", "1", data[:1]},
			{"part -1", "-1", data},
			{"part x", "x", data},
		} {
			r := e.raw(nil, alice.token, "PUT", "/api/blobs/"+a.Blob+"/parts/"+c.n, c.body)
			r.wantProblem(t, 400, server.CodeBadPart)
		}
		var st blobAnswer
		alice.must("GET", "/api/blobs/"+a.Blob+"/upload", nil, &st)
		if len(st.Received) != 0 {
			t.Fatalf("parts received after refused parts: %v", st.Received)
		}
		r := e.raw(nil, alice.token, "POST", "/api/blobs/"+a.Blob+"/complete", nil)
		var incomplete struct {
			Code    string `json:"code"`
			Missing []int  `json:"missing"`
		}
		if err := json.Unmarshal(r.body, &incomplete); err != nil || r.status != 409 || incomplete.Code != server.CodeBlobIncomplete ||
			!slices.Equal(incomplete.Missing, []int{0}) || r.header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("complete with a part missing: %d %s", r.status, r.body)
		}
		if r := alice.fetch(a.Blob, ""); r.status != 404 {
			t.Fatalf("fetch of an incomplete blob: %d", r.status)
		}
		if r := alice.putPart(a.Blob, 0, data); r.status != 204 {
			t.Fatalf("part 0: %d %s", r.status, r.body)
		}
		alice.must("POST", "/api/blobs/"+a.Blob+"/complete", nil, nil)
		// Writes after completion change nothing.
		alice.putPart(a.Blob, 0, randomBytes(3000)).wantProblem(t, 409, server.CodeBlobComplete)
		for _, rng := range []string{"bytes=3000-", "bytes=5000-6000", "bytes=0-1,5-6", "bytes=9-3", "bytes=-0", "bytes=abc"} {
			r := alice.fetch(a.Blob, rng)
			r.wantProblem(t, 416, server.CodeBadRange)
			if r.header.Get("Content-Range") != "bytes */3000" {
				t.Fatalf("416 for %s with Content-Range %q", rng, r.header.Get("Content-Range"))
			}
		}
		if r := alice.fetch(a.Blob, ""); r.status != 200 || !bytes.Equal(r.body, data) {
			t.Fatalf("the blob after refused writes: %d, equal %v", r.status, bytes.Equal(r.body, data))
		}
		usage("at the end", 3900, 2)
	})
}

// TestBlobAuthorization: an upload is its account's; a blob is served to
// the current members of its conversation only; a message references
// only complete blobs of its conversation uploaded by its sender's
// account.
func TestBlobAuthorization(t *testing.T) {
	forEachDB(t, server.Config{}, func(t *testing.T, e *env) {
		alice, bob, carol, mallory := e.register("alice"), e.register("bob"), e.register("carol"), e.register("mallory")
		conv, err := alice.create([]*device{bob, carol})
		if err != nil {
			t.Fatal(err)
		}
		other, err := mallory.create([]*device{alice})
		if err != nil {
			t.Fatal(err)
		}
		keyless := e.login("bob", nil)
		data := randomBytes(100)
		mine := alice.upload(conv, data)
		elsewhere := alice.upload(other, data)
		unfinished, err := alice.newBlob(conv, 10)
		if err != nil {
			t.Fatal(err)
		}
		bobs := bob.upload(conv, data)
		tooMany := []string{mine}
		for len(tooMany) <= server.MaxMessageBlobs {
			tooMany = append(tooMany, alice.upload(conv, randomBytes(10)))
		}

		// Outsiders of the conversation: 404 everywhere.
		_, err = mallory.newBlob(conv, 10)
		wantCode(t, err, 404, server.CodeNotFound)
		for _, id := range []string{mine, unfinished.Blob} {
			// Another account's upload, even a member's.
			for _, d := range []*device{bob, mallory} {
				d.putPart(id, 0, randomBytes(10)).wantProblem(t, 404, server.CodeNotFound)
				wantCode(t, d.do("GET", "/api/blobs/"+id+"/upload", nil, nil), 404, server.CodeNotFound)
				wantCode(t, d.do("POST", "/api/blobs/"+id+"/complete", nil, nil), 404, server.CodeNotFound)
				wantCode(t, d.do("DELETE", "/api/blobs/"+id, nil, nil), 404, server.CodeNotFound)
			}
			// A device without keys: refused, whatever the blob.
			keyless.putPart(id, 0, randomBytes(10)).wantProblem(t, 403, server.CodeKeysRequired)
			for _, m := range []string{"GET", "DELETE"} {
				wantCode(t, keyless.do(m, "/api/blobs/"+id, nil, nil), 403, server.CodeKeysRequired)
			}
			wantCode(t, keyless.do("GET", "/api/blobs/"+id+"/upload", nil, nil), 403, server.CodeKeysRequired)
			wantCode(t, keyless.do("POST", "/api/blobs/"+id+"/complete", nil, nil), 403, server.CodeKeysRequired)
		}
		if r := mallory.fetch(mine, ""); r.status != 404 {
			t.Fatalf("a non-member fetched a blob: %d", r.status)
		}
		if r := bob.fetch(elsewhere, ""); r.status != 404 {
			t.Fatalf("a blob of a conversation bob is not in was served to him: %d", r.status)
		}
		if r := bob.fetch(unfinished.Blob, ""); r.status != 404 {
			t.Fatalf("an unfinished blob was served: %d", r.status)
		}
		if r := bob.fetch(mine, ""); r.status != 200 || !bytes.Equal(r.body, data) {
			t.Fatalf("a member's fetch: %d", r.status)
		}

		// Sends referencing what they may not: 400 bad_blob, nothing stored.
		before := alice.lastSeq(conv)
		for _, c := range []struct {
			who *device
			ids []string
		}{
			{alice, []string{elsewhere}},         // another conversation's
			{alice, []string{bobs}},              // another account's
			{bob, []string{mine}},                // another account's
			{alice, []string{unfinished.Blob}},   // not complete
			{alice, []string{someBlob}},          // unknown
			{alice, []string{mine, "not-an-id"}}, // malformed
			{alice, []string{mine, mine}},        // twice
			{alice, tooMany},                     // more than MaxMessageBlobs
		} {
			_, err := c.who.sendBlobs(conv, 1, "hello", c.ids)
			wantCode(t, err, 400, server.CodeBadBlob)
		}
		if after := alice.lastSeq(conv); after != before {
			t.Fatalf("refused sends stored messages: last seq %d, was %d", after, before)
		}
		if refs, _ := e.st.BlobRefs(context.Background(), conv, before+1); len(refs) != 0 {
			t.Fatalf("refused sends left references: %v", refs)
		}
		if _, err := alice.sendBlobs(conv, 1, "hello", []string{mine}); err != nil {
			t.Fatal(err)
		}
		// A removed member fetches no more.
		if r := carol.fetch(mine, ""); r.status != 200 {
			t.Fatalf("carol, a member: %d", r.status)
		}
		if err := alice.change(conv, protocol.OpRemove, nil, []protocol.UserID{carol.user}); err != nil {
			t.Fatal(err)
		}
		if r := carol.fetch(mine, ""); r.status != 404 {
			t.Fatalf("carol, removed, fetched the blob: %d", r.status)
		}
	})
}

// TestBlobCollection moves the clock past each deadline: the unfinished
// upload and the completed blob no message referenced go after a day, the
// referenced one stays; a tombstone left by a crash is finished; an
// object no row names is swept once a day old.
func TestBlobCollection(t *testing.T) {
	forEachDBURL(t, func(t *testing.T, url string) {
		dir := t.TempDir()
		bs, err := fsblob.New(dir)
		if err != nil {
			t.Fatal(err)
		}
		e, _ := openEnv(t, url, server.Config{Blobs: bs})
		ctx := context.Background()
		alice := e.register("alice")
		conv, err := alice.create(nil)
		if err != nil {
			t.Fatal(err)
		}
		data := randomBytes(50)
		kept := alice.upload(conv, data)
		if _, err := alice.sendBlobs(conv, 1, "kept", []string{kept}); err != nil {
			t.Fatal(err)
		}
		unreferenced := alice.upload(conv, data)
		unfinished, err := alice.newBlob(conv, 50)
		if err != nil {
			t.Fatal(err)
		}
		crashed := alice.upload(conv, data)
		// A deletion that stopped after its first step (a crash).
		if _, err := e.st.DeleteBlob(ctx, crashed, alice.user); err != nil {
			t.Fatal(err)
		}
		if r := alice.fetch(crashed, ""); r.status != 404 {
			t.Fatalf("a tombstone was served: %d", r.status)
		}
		exists := func(id string) bool {
			_, errO := os.Stat(filepath.Join(dir, "objects", id))
			_, errU := os.Stat(filepath.Join(dir, "uploads", id))
			return errO == nil || errU == nil
		}
		orphan := "00000000000000000000000000000001"
		if _, err := bs.Begin(ctx, orphan); err != nil {
			t.Fatal(err)
		}
		// Objects a day old in real time: only the orphan may be swept.
		old := e.clock.now.Add(-25 * time.Hour)
		for _, id := range []string{kept, unreferenced, orphan} {
			for _, sub := range []string{"objects", "uploads"} {
				os.Chtimes(filepath.Join(dir, sub, id), old, old)
			}
		}

		n, err := e.srv.CollectBlobs(ctx)
		if err != nil || n != 2 || exists(crashed) || exists(orphan) {
			t.Fatalf("first pass: %d deleted, %v; crashed left %v, orphan left %v", n, err, exists(crashed), exists(orphan))
		}
		for _, id := range []string{kept, unreferenced, unfinished.Blob} {
			if !exists(id) {
				t.Fatalf("blob %s deleted before its time", id)
			}
		}
		e.clock.now = e.clock.now.Add(24*time.Hour - time.Second)
		if n, err := e.srv.CollectBlobs(ctx); err != nil || n != 0 {
			t.Fatalf("a second before the deadlines: %d deleted, %v", n, err)
		}
		e.clock.now = e.clock.now.Add(time.Second)
		if r := alice.fetch(unreferenced, ""); r.status != 404 {
			t.Fatalf("an unreferenced blob past its deadline was served: %d", r.status)
		}
		if _, err := alice.sendBlobs(conv, 1, "late", []string{unreferenced}); err == nil {
			t.Fatal("a message referenced a blob past its deadline")
		}
		if n, err := e.srv.CollectBlobs(ctx); err != nil || n != 2 || exists(unreferenced) || exists(unfinished.Blob) {
			t.Fatalf("at the deadlines: %d deleted, %v", n, err)
		}
		if r := alice.fetch(kept, ""); r.status != 200 || !bytes.Equal(r.body, data) {
			t.Fatalf("the referenced blob after collection: %d", r.status)
		}
		if used, open, _ := e.st.BlobUsage(ctx, alice.user); used != 50 || open != 0 {
			t.Fatalf("usage after collection: %d bytes, %d open; want the kept blob's 50", used, open)
		}
	})
}

// TestBlobStorageFull: a part that does not fit on the blob store's disk
// is 503 storage_full, is not received, and the upload continues once
// space is freed. It mounts a small tmpfs and needs root and mount(8).
func TestBlobStorageFull(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("the disk-full test mounts a small tmpfs and needs root and mount(8) (uid %d): %v\n%s", os.Getuid(), err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	bs, err := fsblob.New(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, 3<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, filepath.Join(t.TempDir(), "sandi.db"), server.Config{Blobs: bs})
	alice := e.register("alice")
	conv, err := alice.create(nil)
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(2 << 20)
	a, err := alice.newBlob(conv, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	r := alice.putPart(a.Blob, 0, data)
	r.wantProblem(t, 503, server.CodeStorageFull)
	if r.header.Get("Retry-After") == "" {
		t.Fatal("storage_full without Retry-After")
	}
	var st blobAnswer
	alice.must("GET", "/api/blobs/"+a.Blob+"/upload", nil, &st)
	if len(st.Received) != 0 {
		t.Fatalf("a part refused for a full disk was received: %v", st.Received)
	}
	if v := e.metricOr0("sandi_blob_uploads_refused_total", "reason", server.CodeStorageFull); v != 1 {
		t.Fatalf("refusals counted: %v", v)
	}
	os.Remove(filler)
	if r := alice.putPart(a.Blob, 0, data); r.status != 204 {
		t.Fatalf("part after space was freed: %d %s", r.status, r.body)
	}
	alice.must("POST", "/api/blobs/"+a.Blob+"/complete", nil, nil)
	if r := alice.fetch(a.Blob, ""); r.status != 200 || !bytes.Equal(r.body, data) {
		t.Fatalf("fetch: %d", r.status)
	}
}

// TestBlobRateLimit: uploads and parts count against their device's rate
// limit; past it, 429 and nothing changes.
func TestBlobRateLimit(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "sandi.db"), server.Config{BlobUploadsPerMinute: 2})
	alice := e.register("alice")
	conv, err := alice.create(nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := alice.newBlob(conv, 10)
	if err != nil {
		t.Fatal(err)
	}
	if r := alice.putPart(a.Blob, 0, randomBytes(10)); r.status != 204 {
		t.Fatalf("part: %d %s", r.status, r.body)
	}
	alice.putPart(a.Blob, 0, randomBytes(10)).wantProblem(t, 429, server.CodeRateLimited)
	_, err = alice.newBlob(conv, 10)
	wantCode(t, err, 429, server.CodeRateLimited)
	if used, open, _ := e.st.BlobUsage(context.Background(), alice.user); used != 10 || open != 1 {
		t.Fatalf("usage after refusals: %d bytes, %d open", used, open)
	}
	e.clock.now = e.clock.now.Add(time.Minute)
	alice.must("POST", "/api/blobs/"+a.Blob+"/complete", nil, nil)
}

// TestBlobPartCut: a part whose body stops before its Content-Length (the
// client's connection cut) is not received, and the upload goes on. A
// part written whole and then cut while written again is not received
// either: its bytes are torn, and the upload cannot be completed with
// them.
func TestBlobPartCut(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "sandi.db"), server.Config{})
	alice := e.register("alice")
	conv, err := alice.create(nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := alice.newBlob(conv, 3000)
	if err != nil {
		t.Fatal(err)
	}
	cut := func(when string) {
		t.Helper()
		conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "PUT /api/blobs/%s/parts/0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 3000\r\n\r\n", a.Blob, alice.token)
		conn.Write(randomBytes(1000))
		conn.(*net.TCPConn).CloseWrite()
		answer, _ := io.ReadAll(conn) // the server gives up on the body
		conn.Close()
		if !bytes.HasPrefix(answer, []byte("HTTP/1.1 400")) || !bytes.Contains(answer, []byte(server.CodeBadPart)) {
			t.Fatalf("a part cut %s was answered %q, want 400 bad_part", when, answer)
		}
		var st blobAnswer
		alice.must("GET", "/api/blobs/"+a.Blob+"/upload", nil, &st)
		if len(st.Received) != 0 {
			t.Fatalf("a part cut %s was received: %v", when, st.Received)
		}
		alice.do("POST", "/api/blobs/"+a.Blob+"/complete", nil, nil)
		if r := alice.fetch(a.Blob, ""); r.status != 404 {
			t.Fatalf("completion with the part cut %s: the blob is served (%d)", when, r.status)
		}
	}
	cut("at its first write")
	if r := alice.putPart(a.Blob, 0, randomBytes(3000)); r.status != 204 {
		t.Fatalf("part after the cut: %d %s", r.status, r.body)
	}
	cut("while written again")
	data := randomBytes(3000)
	if r := alice.putPart(a.Blob, 0, data); r.status != 204 {
		t.Fatalf("part after the cut: %d %s", r.status, r.body)
	}
	alice.must("POST", "/api/blobs/"+a.Blob+"/complete", nil, nil)
	if r := alice.fetch(a.Blob, ""); r.status != 200 || !bytes.Equal(r.body, data) {
		t.Fatalf("fetch: %d", r.status)
	}
}

// TestBlobPartMemory: the server streams a part to the blob store and a
// download from it through small buffers: the bytes allocated (server
// and this test's client together, in this process) per 8 MiB part
// uploaded or served stay far below the part's size, so a handler that
// held a part in memory would fail it.
func TestBlobPartMemory(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "sandi.db"), server.Config{})
	alice := e.register("alice")
	conv, err := alice.create(nil)
	if err != nil {
		t.Fatal(err)
	}
	const parts = 2
	data := randomBytes(parts * blob.PartSize)
	a, err := alice.newBlob(conv, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	allocs := []rtmetrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	allocated := func() uint64 { rtmetrics.Read(allocs); return allocs[0].Value.Uint64() }
	const most = 1 << 20 // per part
	before := allocated()
	for n := range parts {
		if r := alice.putPart(a.Blob, n, data[n*blob.PartSize:(n+1)*blob.PartSize]); r.status != 204 {
			t.Fatalf("part %d: %d %s", n, r.status, r.body)
		}
	}
	got := (allocated() - before) / parts
	t.Logf("%d bytes allocated per part uploaded", got)
	if got > most {
		t.Fatalf("%d bytes allocated per %d-byte part uploaded, want at most %d", got, blob.PartSize, most)
	}
	alice.must("POST", "/api/blobs/"+a.Blob+"/complete", nil, nil)

	req, err := http.NewRequest("GET", e.url+"/api/blobs/"+a.Blob, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+alice.token)
	before = allocated()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != int64(len(data)) || resp.StatusCode != 200 {
		t.Fatalf("download: %d, %d bytes, %v", resp.StatusCode, n, err)
	}
	got = (allocated() - before) / parts
	t.Logf("%d bytes allocated per part served", got)
	if got > most {
		t.Fatalf("%d bytes allocated per %d bytes served, want at most %d", got, blob.PartSize, most)
	}
}

// TestBlobCommittedNotMarked: a completion that stopped (a crash) after
// the blob store committed the object and before the row was marked
// complete: the upload reports every part received, is not served, and
// a completion finishes it.
func TestBlobCommittedNotMarked(t *testing.T) {
	bs, err := fsblob.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, filepath.Join(t.TempDir(), "sandi.db"), server.Config{Blobs: bs})
	alice := e.register("alice")
	conv, err := alice.create(nil)
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(3000)
	a, err := alice.newBlob(conv, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if r := alice.putPart(a.Blob, 0, data); r.status != 204 {
		t.Fatalf("part: %d %s", r.status, r.body)
	}
	if err := bs.Commit(context.Background(), a.Blob, "", 1, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	var st blobAnswer
	alice.must("GET", "/api/blobs/"+a.Blob+"/upload", nil, &st)
	if !slices.Equal(st.Received, []int{0}) || st.Complete {
		t.Fatalf("upload state with the object committed, the row not: %+v", st)
	}
	if r := alice.fetch(a.Blob, ""); r.status != 404 {
		t.Fatalf("a blob whose row is not complete is served: %d", r.status)
	}
	alice.must("POST", "/api/blobs/"+a.Blob+"/complete", nil, nil)
	if r := alice.fetch(a.Blob, ""); r.status != 200 || !bytes.Equal(r.body, data) {
		t.Fatalf("fetch after the completion: %d", r.status)
	}
}

// TestBlobStalledUploads: the server writes a bounded number of uploads at
// once, but a client that stalls in the middle of a part holds up no one:
// with more stalled parts than the bound (half of GOMAXPROCS, at least
// one), another account's upload still goes through at once, and the
// stalled parts, once their clients send the rest, are whole.
func TestBlobStalledUploads(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "sandi.db"), server.Config{BlobUploadsPerMinute: -1, BlobTransferTimeout: time.Minute})
	stalled := max(1, runtime.GOMAXPROCS(0)/2) + 1
	type cut struct {
		conn net.Conn
		rest []byte
		dev  *device
		blob string
		data []byte
	}
	var cuts []cut
	var dev *device
	var conv protocol.ConversationID
	for i := range stalled {
		if i%8 == 0 { // the server's cap of unfinished uploads per account is 16
			dev = e.register(fmt.Sprintf("stall%d", i))
			var err error
			if conv, err = dev.create(nil); err != nil {
				t.Fatal(err)
			}
		}
		a, err := dev.newBlob(conv, 300_000)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		data := randomBytes(300_000)
		fmt.Fprintf(conn, "PUT /api/blobs/%s/parts/0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n", a.Blob, dev.token, len(data))
		if _, err := conn.Write(data[:100_000]); err != nil {
			t.Fatal(err)
		}
		cuts = append(cuts, cut{conn, data[100_000:], dev, a.Blob, data})
	}
	bob := e.register("bob")
	bconv, err := bob.create(nil)
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(3 * blob.PartSize / 2)
	done := make(chan string, 1)
	go func() { done <- bob.upload(bconv, data) }()
	select {
	case id := <-done:
		if r := bob.fetch(id, ""); r.status != 200 || !bytes.Equal(r.body, data) {
			t.Fatalf("bob's blob: %d, %d bytes", r.status, len(r.body))
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("bob's upload did not go through beside %d stalled parts", stalled)
	}
	for _, c := range cuts {
		if _, err := c.conn.Write(c.rest); err != nil {
			t.Fatal(err)
		}
		answer := make([]byte, 12)
		if _, err := io.ReadFull(c.conn, answer); err != nil || string(answer) != "HTTP/1.1 204" {
			t.Fatalf("the stalled part, resumed: %q %v", answer, err)
		}
		c.dev.must("POST", "/api/blobs/"+c.blob+"/complete", nil, nil)
		if r := c.dev.fetch(c.blob, ""); r.status != 200 || !bytes.Equal(r.body, c.data) {
			t.Fatalf("a stalled blob: %d, %d bytes", r.status, len(r.body))
		}
	}
}
