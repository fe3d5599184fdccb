//go:build !js

package client_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"sandi.dev/client"
	"sandi.dev/protocol/archive"
)

// blobObjects returns the blob store's objects: id → bytes.
func blobObjects(t *testing.T, dir string) map[string][]byte { return blobObjectsTB(t, dir) }

func blobObjectsTB(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "objects", "*"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(p)] = b
	}
	return out
}

// newObject is the one object of now that was not in before.
func newObject(t *testing.T, before, now map[string][]byte) (string, []byte) {
	t.Helper()
	var ids []string
	for id := range now {
		if _, ok := before[id]; !ok {
			ids = append(ids, id)
		}
	}
	if len(ids) != 1 {
		t.Fatalf("%d new blob objects, want 1", len(ids))
	}
	return ids[0], now[ids[0]]
}

// restoreThrough signs in as alice on a fresh device that reaches the
// server through p (listings rewritten) and rt (downloads rewritten),
// and restores with key.
func restoreThrough(t *testing.T, p *proxy, rt http.RoundTripper, key string) (*client.Client, error) {
	t.Helper()
	c, err := client.Open(client.Options{Server: p.srv.URL, Storage: client.NewMemStorage(), HTTPClient: &http.Client{Transport: rt, Timeout: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(context.Background(), "alice", "password of alice"); err != nil {
		t.Fatal(err)
	}
	return c, c.Restore(context.Background(), key)
}

// keepListed rewrites the archive listing to the parts keep allows, in
// the order order gives (nil: the server's).
func keepListed(p *proxy, keep func(id string) bool, order func(a, b map[string]any) int) {
	p.set(func(r *http.Request, body map[string]any) {
		if r.URL.Path != "/api/archives" {
			return
		}
		var out []map[string]any
		for _, a := range body["archives"].([]any) {
			if m := a.(map[string]any); keep(m["id"].(string)) {
				out = append(out, m)
			}
		}
		if order != nil {
			slices.SortFunc(out, order)
		}
		body["archives"] = out
	})
}

// serveInstead serves the bytes of with[id] for each download of id.
func serveInstead(rt *archiveTransport, with map[string][]byte) {
	rt.set(func(resp *http.Response) error {
		id := filepath.Base(resp.Request.URL.Path)
		if b, ok := with[id]; ok {
			resp.Body.Close()
			resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
		}
		return nil
	})
}

// TestBackupChainAttacks: after a whole backup, alice's next backups
// upload only what changed, as segments far smaller than the base; an
// honest restore applies base and segments. A server that drops a middle
// segment, moves one to another place in the chain, or splices in a
// segment of another chain of the same account and key (an earlier chain
// it kept after a re-base) is refused with ErrBackupCorrupt and an alarm,
// nothing restored; one that serves the parts in another order changes
// nothing. So is one that withholds the base, serves a segment made under
// another key, or serves the old chain's base beside the new one.
// Dropping the tail restores an older backup, dated (§14.4). A restored
// device re-bases; a segment of the old chain spliced after its base is
// refused.
func TestBackupChainAttacks(t *testing.T) {
	ctx := context.Background()
	blobDir := t.TempDir()
	n := startNode(t, t.TempDir()+"/sandi.db", blobConfigIn(t, blobDir))
	alice := newClient(t, n, "")
	if err := alice.Register(ctx, "alice", "password of alice"); err != nil {
		t.Fatal(err)
	}
	register(t, n, "bob")
	conv, err := alice.CreateConversation(ctx, "chained", "bob")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if _, err := alice.Send(ctx, conv, "before the backup "+string(rune('a'+i))); err != nil {
			t.Fatal(err)
		}
	}
	key, err := alice.EnableBackup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	objs := blobObjects(t, blobDir)
	_, base := newObject(t, nil, objs)
	var segIDs []string
	var segs [][]byte
	var made []int64
	for _, text := range []string{"in segment 1", "in segment 2"} {
		if _, err := alice.Send(ctx, conv, text); err != nil {
			t.Fatal(err)
		}
		if err := alice.BackupNow(ctx); err != nil {
			t.Fatal(err)
		}
		now := blobObjects(t, blobDir)
		id, b := newObject(t, objs, now)
		objs = now
		segIDs, segs = append(segIDs, id), append(segs, b)
		_, last, _ := alice.BackupStatus()
		made = append(made, last)
		if b[0] != archive.SegmentVersion || len(b)*4 > len(base) {
			t.Fatalf("backup %d: %d bytes, version %d, after a base of %d bytes: not a small segment", len(segs), len(b), b[0], len(base))
		}
	}
	if len(objs) != 3 {
		t.Fatalf("the server holds %d parts, want the base and 2 segments", len(objs))
	}

	p := newProxy(t, n)
	rt := &archiveTransport{}
	texts := func(c *client.Client) []string { return historyTexts(t, c, conv) }
	corrupt := func(what string) {
		t.Helper()
		c, err := restoreThrough(t, p, rt, key.String())
		if !errors.Is(err, client.ErrBackupCorrupt) {
			t.Fatalf("%s: restore %v, want ErrBackupCorrupt", what, err)
		}
		if a, _ := c.Alarms([16]byte{}); len(a) == 0 || a[len(a)-1].Kind != client.AlarmServerData {
			t.Fatalf("%s: alarms %+v, want server_data", what, a)
		}
		if on, _, _ := c.BackupStatus(); on {
			t.Fatalf("%s: the device restored something", what)
		}
		if _, ok := c.IdentityKey(); ok {
			t.Fatalf("%s: the device restored something", what)
		}
		keepListed(p, func(string) bool { return true }, nil)
		rt.set(nil)
	}

	// A dropped middle segment.
	keepListed(p, func(id string) bool { return id != segIDs[0] }, nil)
	corrupt("segment 1 dropped")
	// Segment 2's bytes served as segment 1, with its place rewritten.
	moved := bytes.Clone(segs[1])
	moved[1+archive.SaltSize+archive.CheckSize+3] = 1
	serveInstead(rt, map[string][]byte{segIDs[0]: moved, segIDs[1]: segs[0]})
	corrupt("segment 2 moved to place 1")
	// The base withheld: segments alone.
	keepListed(p, func(id string) bool { return slices.Contains(segIDs, id) }, nil)
	corrupt("the base withheld")
	// A segment whose check is not the recovery key's (a part made under
	// another key of the account).
	foreign := bytes.Clone(segs[0])
	foreign[1+archive.SaltSize] ^= 1
	serveInstead(rt, map[string][]byte{segIDs[0]: foreign})
	corrupt("a segment of another key")

	// The parts listed and served in another order: the same restore.
	keepListed(p, func(string) bool { return true }, func(a, b map[string]any) int {
		return -bytes.Compare([]byte(a["id"].(string)), []byte(b["id"].(string)))
	})
	serveInstead(rt, map[string][]byte{segIDs[0]: segs[1], segIDs[1]: segs[0]})
	honest, err := restoreThrough(t, p, rt, key.String())
	if err != nil {
		t.Fatal(err)
	}
	want := texts(alice)
	if got := texts(honest); !slices.Equal(got, want) {
		t.Fatalf("restored %q, want %q", got, want)
	}
	if _, last, _ := honest.BackupStatus(); last != made[1] {
		t.Fatalf("the restore reports the backup made at %d, want %d", last, made[1])
	}

	// The tail dropped: the older backup of segment 1, dated as such.
	keepListed(p, func(id string) bool { return id != segIDs[1] }, nil)
	rt.set(nil)
	older, err := restoreThrough(t, p, rt, key.String())
	if err != nil {
		t.Fatal(err)
	}
	// (Its messages are still read from the server, in the epochs the
	// older backup holds: §14.4 step 5.)
	if got := texts(older); !slices.Equal(got, want) {
		t.Fatalf("restored without the tail: %q, want %q", got, want)
	}
	if _, last, _ := older.BackupStatus(); last != made[0] {
		t.Fatalf("without the tail, the restore reports %d, want segment 1's date %d", last, made[0])
	}
	keepListed(p, func(string) bool { return true }, nil)

	// The restored device starts a chain of its own (a re-base under the
	// same key); a server that splices a segment of alice's old chain
	// after it is refused.
	if _, err := honest.Send(ctx, conv, "from the restored device"); err != nil {
		t.Fatal(err)
	}
	if err := honest.BackupNow(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := honest.Send(ctx, conv, "in the new chain"); err != nil {
		t.Fatal(err)
	}
	if err := honest.BackupNow(ctx); err != nil {
		t.Fatal(err)
	}
	now := blobObjects(t, blobDir)
	if len(now) != 2 {
		t.Fatalf("after a re-base and a segment the server holds %d parts, want 2", len(now))
	}
	var newSeg string
	for id, b := range now {
		if b[0] == archive.SegmentVersion {
			newSeg = id
		}
	}
	serveInstead(rt, map[string][]byte{newSeg: segs[0]})
	corrupt("a segment of the old chain")
	serveInstead(rt, map[string][]byte{newSeg: base})
	corrupt("the old chain's base served beside the new one")
	again, err := restoreThrough(t, p, rt, key.String())
	if err != nil {
		t.Fatal(err)
	}
	if got := texts(again); !slices.Equal(got, texts(honest)) {
		t.Fatalf("the new chain restores %q, want %q", got, texts(honest))
	}
}

// lostAnswer forwards requests; while on, the answer to a segment upload
// is lost (the server stored it, the device does not know).
type lostAnswer struct{ on atomic.Bool }

func (l *lostAnswer) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && l.on.Load() && r.Method == "PUT" && r.URL.Path == "/api/archives/segment" {
		resp.Body.Close()
		return nil, errors.New("connection reset (test)")
	}
	return resp, err
}

// TestBackupSegmentLostAnswer: a segment upload whose answer is lost
// leaves a part on the server the device does not know; the next backup
// deletes it before chaining its own, so a restore finds one segment per
// place and restores. Before its segments pass MaxBackupSegments (or
// outgrow the base) the device re-bases: the server then holds the new
// base alone.
func TestBackupSegmentLostAnswer(t *testing.T) {
	ctx := context.Background()
	blobDir := t.TempDir()
	cfg := blobConfigIn(t, blobDir)
	cfg.BlobUploadsPerMinute = 1000
	n := startNode(t, t.TempDir()+"/sandi.db", cfg)
	rt := &lostAnswer{}
	alice := registerWith(t, n, "alice", rt, "")
	register(t, n, "bob")
	conv, err := alice.CreateConversation(ctx, "", "bob")
	if err != nil {
		t.Fatal(err)
	}
	key, err := alice.EnableBackup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	send := func(text string) {
		t.Helper()
		if _, err := alice.Send(ctx, conv, text); err != nil {
			t.Fatal(err)
		}
	}
	send("lost answer")
	rt.on.Store(true)
	if err := alice.BackupNow(ctx); err == nil {
		t.Fatal("a backup whose answer was lost succeeded")
	}
	rt.on.Store(false)
	if got := len(blobObjects(t, blobDir)); got != 2 {
		t.Fatalf("the server holds %d parts, want the base and the unacknowledged segment", got)
	}
	send("after the lost answer")
	if err := alice.BackupNow(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(blobObjects(t, blobDir)); got != 2 {
		t.Fatalf("the server holds %d parts, want the base and one segment", got)
	}
	fresh := newClient(t, n, "")
	if err := fresh.Login(ctx, "alice", "password of alice"); err != nil {
		t.Fatal(err)
	}
	if err := fresh.Restore(ctx, key.String()); err != nil {
		t.Fatal(err)
	}
	if got, want := historyTexts(t, fresh, conv), historyTexts(t, alice, conv); !slices.Equal(got, want) {
		t.Fatalf("restored %q, want %q", got, want)
	}
	// A re-base comes before the segments pass MaxBackupSegments (here,
	// a small account, when they outgrow the base).
	for i := 0; ; i++ {
		send("more")
		if err := alice.BackupNow(ctx); err != nil {
			t.Fatal(err)
		}
		objs := blobObjects(t, blobDir)
		if len(objs) > 1+client.MaxBackupSegments || i > client.MaxBackupSegments {
			t.Fatalf("after %d more backups the server holds %d parts: no re-base", i+1, len(objs))
		}
		if len(objs) == 1 {
			for _, b := range objs {
				if b[0] != 1 {
					t.Fatalf("the one part left is not a base (version %d)", b[0])
				}
			}
			break
		}
	}
}

// refusePut fails, while on, every PUT of path before it is sent.
type refusePut struct {
	on   atomic.Bool
	path string
}

func (r *refusePut) RoundTrip(req *http.Request) (*http.Response, error) {
	if r.on.Load() && req.Method == "PUT" && req.URL.Path == r.path {
		return nil, errors.New("network down (test)")
	}
	return http.DefaultTransport.RoundTrip(req)
}

// TestBackupRebaseKeepsOthers: alice's phone turns backups on after her
// first device did, so the account's backup is the phone's. The first
// device's next backup finds its chain gone and re-bases; while that
// upload fails, the phone's backup stays on the server and restores.
func TestBackupRebaseKeepsOthers(t *testing.T) {
	ctx := context.Background()
	blobDir := t.TempDir()
	cfg := blobConfigIn(t, blobDir)
	cfg.BlobUploadsPerMinute = 1000
	n := startNode(t, t.TempDir()+"/sandi.db", cfg)
	rt := &refusePut{path: "/api/archives/backup"}
	alice := registerWith(t, n, "alice", rt, "")
	if _, err := alice.EnableBackup(ctx); err != nil {
		t.Fatal(err)
	}
	phone := linkDevice(t, n, alice, "password of alice")
	key, err := phone.EnableBackup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rt.on.Store(true)
	if err := alice.BackupNow(ctx); err == nil {
		t.Fatal("a re-base whose upload failed succeeded")
	}
	if got := len(blobObjects(t, blobDir)); got != 1 {
		t.Fatalf("the server holds %d backup parts, want the phone's base", got)
	}
	fresh := newClient(t, n, "")
	if err := fresh.Login(ctx, "alice", "password of alice"); err != nil {
		t.Fatal(err)
	}
	if err := fresh.Restore(ctx, key.String()); err != nil {
		t.Fatalf("restore the phone's backup: %v", err)
	}
}
