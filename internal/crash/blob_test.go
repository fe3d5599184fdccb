package crash

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"sandi.dev/client"
	"sandi.dev/internal/blob"
	"sandi.dev/internal/testpg"
	"sandi.dev/internal/tests3"
)

// TestBlobCrash kills `sandi serve` with SIGKILL during an upload of a
// two-part blob (9 MiB: parts of 8 MiB and 1 MiB): in the middle of each
// part's body, right after a part is acknowledged, and right after the
// upload is completed. After each restart the upload continues from
// exactly the parts acknowledged, the blob is not served before its
// completion, and once complete it is served with exactly the bytes sent
// (SHA-256), whole and in a range. It runs on SQLite and PostgreSQL with
// the blobs on the file system, and on SQLite with them on S3.
func TestBlobCrash(t *testing.T) {
	bin := buildSandi(t)
	for _, name := range []string{"sqlite", "postgres", "s3"} {
		t.Run(name, func(t *testing.T) { blobCrashRun(t, bin, name) })
	}
}

// token reads the bearer token an SDK client keeps in its storage.
func token(t *testing.T, st client.Storage) string {
	t.Helper()
	b, err := st.Get("account")
	if err != nil {
		t.Fatal(err)
	}
	var a struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(b, &a); err != nil || a.Token == "" {
		t.Fatalf("no token in the client's account: %v", err)
	}
	return a.Token
}

func blobCrashRun(t *testing.T, bin, dbName string) {
	dir := t.TempDir()
	srv := &server{bin: bin, data: filepath.Join(dir, "data")}
	switch dbName {
	case "postgres":
		srv.db = testpg.URL(t)
	case "s3": // SQLite, and the blobs in a bucket of a real S3 server
		srv.blobs = tests3.URL(t)
	}
	launch(t, dir, srv)
	addr := srv.addr
	ctx := context.Background()
	tokens := map[string]string{}
	var alice *client.Client
	for _, name := range []string{"alice", "bob"} {
		st, err := client.NewDirStorage(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.Open(client.Options{Server: "http://" + addr, Storage: st})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Register(ctx, name, "password of "+name); err != nil {
			t.Fatal(err)
		}
		tokens[name] = token(t, st)
		if alice == nil {
			alice = c
		}
	}
	conv, err := alice.CreateConversation(ctx, "files", "bob")
	if err != nil {
		t.Fatal(err)
	}

	base := "http://" + addr
	do := func(who, method, path string, body io.Reader, n int64, hdr ...string) (int, []byte, error) {
		req, err := http.NewRequest(method, base+path, body)
		if err != nil {
			return 0, nil, err
		}
		req.ContentLength = n
		req.Header.Set("Authorization", "Bearer "+tokens[who])
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}
	must := func(want int, who, method, path string, body []byte, hdr ...string) []byte {
		t.Helper()
		status, b, err := do(who, method, path, bytes.NewReader(body), int64(len(body)), hdr...)
		if err != nil || status != want {
			t.Fatalf("%s %s: %d %s, %v; want %d", method, path, status, b, err, want)
		}
		return b
	}

	data := make([]byte, blob.PartSize+1<<20)
	rand.Read(data)
	sum := sha256.Sum256(data)
	parts := [][]byte{data[:blob.PartSize], data[blob.PartSize:]}
	var created struct {
		Blob string `json:"blob"`
	}
	b := must(201, "alice", "POST", "/api/conversations/"+conv.String()+"/blobs", fmt.Appendf(nil, `{"size":%d}`, len(data)))
	if err := json.Unmarshal(b, &created); err != nil {
		t.Fatal(err)
	}
	id := created.Blob
	partPath := func(n int) string { return fmt.Sprintf("/api/blobs/%s/parts/%d", id, n) }

	// check restarts the server after a kill and checks what it says of
	// the upload: the parts received, and that nobody is served the blob.
	check := func(what string, received []int) {
		t.Helper()
		srv.start()
		var st struct {
			Received []int `json:"received"`
			Complete bool  `json:"complete"`
		}
		if err := json.Unmarshal(must(200, "alice", "GET", "/api/blobs/"+id+"/upload", nil), &st); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(st.Received, received) || st.Complete {
			t.Fatalf("%s: the server holds parts %v (complete %v), want exactly %v", what, st.Received, st.Complete, received)
		}
		for _, who := range []string{"alice", "bob"} {
			must(404, who, "GET", "/api/blobs/"+id, nil)
		}
	}
	// killDuring sends the first half of part n's body, kills the server
	// while the request is open, and reports the request's end.
	killDuring := func(n int) {
		t.Helper()
		pr, pw := io.Pipe()
		done := make(chan error, 1)
		go func() {
			_, _, err := do("alice", "PUT", partPath(n), pr, int64(len(parts[n])))
			done <- err
		}()
		if _, err := pw.Write(parts[n][:len(parts[n])/2]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // let the server write some of it
		srv.kill()
		pw.CloseWithError(io.ErrClosedPipe)
		if err := <-done; err == nil {
			t.Fatalf("part %d was answered without its whole body", n)
		}
	}

	killDuring(0)
	check("a kill in the middle of part 0", []int{})
	must(204, "alice", "PUT", partPath(0), parts[0])
	killDuring(1)
	check("a kill in the middle of part 1, part 0 acknowledged", []int{0})
	must(409, "alice", "POST", "/api/blobs/"+id+"/complete", nil)
	must(204, "alice", "PUT", partPath(1), parts[1])
	srv.kill()
	check("a kill after part 1 was acknowledged", []int{0, 1})
	must(200, "alice", "POST", "/api/blobs/"+id+"/complete", nil)
	srv.kill()
	srv.start()
	got := must(200, "bob", "GET", "/api/blobs/"+id, nil)
	if sha256.Sum256(got) != sum {
		t.Fatalf("the completed blob served after a crash differs from what was sent (%d bytes, want %d)", len(got), len(data))
	}
	rng := must(206, "bob", "GET", "/api/blobs/"+id, nil, "Range", fmt.Sprintf("bytes=%d-", blob.PartSize-100))
	if !bytes.Equal(rng, data[blob.PartSize-100:]) {
		t.Fatal("a range of the completed blob differs from what was sent")
	}
}
