//go:build !js

package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"sandi.dev/client"
	"sandi.dev/protocol"
	"sandi.dev/protocol/archive"
)

// countingTransport counts the requests a client makes.
type countingTransport struct{ n atomic.Int64 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

// filesHolding lists the files under dir that contain any of secrets.
func filesHolding(t *testing.T, dir string, secrets map[string][]byte) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for what, s := range secrets {
			if bytes.Contains(b, s) {
				out = append(out, p+": "+what)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBackupRestore: alice enables backups and loses her device. On a
// fresh device she signs in and restores: a typo in the recovery key is
// caught before any request, a wrong key and a damaged backup fail
// without writing anything, the right key brings back her identity (bob
// sees no key change), her history, title and verified contact, and the
// messages bob sent while she was away. The server's files hold neither
// the keys nor the plaintext. Disabling deletes the server's copy.
func TestBackupRestore(t *testing.T) {
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			ctx := context.Background()
			blobDir, dbPath := t.TempDir(), dbs(t)[db](t)
			n := startNode(t, dbPath, blobConfigIn(t, blobDir))
			aliceDir := t.TempDir()
			alice := newClient(t, n, aliceDir)
			if err := alice.Register(ctx, "alice", "password of alice"); err != nil {
				t.Fatal(err)
			}
			bob := register(t, n, "bob")
			conv, err := alice.CreateConversation(ctx, "secret title", "bob")
			if err != nil {
				t.Fatal(err)
			}
			for i := range 4 {
				from := []*client.Client{alice, bob}[i%2]
				if _, err := from.Send(ctx, conv, fmt.Sprintf("plaintext number %d", i)); err != nil {
					t.Fatal(err)
				}
			}
			syncTexts(t, alice)
			syncTexts(t, bob)
			verify(t, alice, bob)
			want := historyTexts(t, alice, conv)

			key, err := alice.EnableBackup(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !regexp.MustCompile(`^[A-Z2-7]{4}(-[A-Z2-7]{4}){7}$`).MatchString(key.String()) {
				t.Fatalf("recovery key %q is not 8 groups of 4", key.String())
			}
			seed, err := os.ReadFile(filepath.Join(aliceDir, "identity"))
			if err != nil || len(seed) != 32 {
				t.Fatalf("alice's seed: %d bytes, %v", len(seed), err)
			}
			secrets := map[string][]byte{"identity seed": seed, "recovery key": key.Bytes(), "title": []byte("secret title")}
			for i := range 4 {
				secrets[fmt.Sprintf("message %d", i)] = []byte(fmt.Sprintf("plaintext number %d", i))
			}
			serverDirs := []string{blobDir}
			if db == "sqlite" {
				serverDirs = append(serverDirs, filepath.Dir(dbPath))
			}
			for _, d := range serverDirs {
				if leaks := filesHolding(t, d, secrets); len(leaks) > 0 {
					t.Fatalf("the server's files hold %v", leaks)
				}
			}
			if leaks := filesHolding(t, blobDir, map[string][]byte{"the archive label": []byte(archive.Label)}); len(leaks) > 0 {
				t.Fatalf("the server's files hold an unencrypted archive: %v", leaks)
			}

			// While alice is away.
			if _, err := bob.Send(ctx, conv, "while you were away"); err != nil {
				t.Fatal(err)
			}

			rt := &countingTransport{}
			fresh := newClientWith(t, n, rt)
			if err := fresh.Login(ctx, "alice", "password of alice"); err != nil {
				t.Fatal(err)
			}
			typo := []byte(key.String())
			typo[7] = map[bool]byte{true: 'B', false: 'A'}[typo[7] == 'A']
			before := rt.n.Load()
			if err := fresh.Restore(ctx, string(typo)); !errors.Is(err, client.ErrRecoveryKey) || rt.n.Load() != before {
				t.Fatalf("a typo: %v after %d requests", err, rt.n.Load()-before)
			}
			if err := fresh.Restore(ctx, archive.NewRecoveryKey().String()); !errors.Is(err, client.ErrWrongRecoveryKey) {
				t.Fatalf("a wrong key: %v", err)
			}
			// A damaged backup: one byte of its object changed.
			objs, _ := filepath.Glob(filepath.Join(blobDir, "objects", "*"))
			if len(objs) != 1 {
				t.Fatalf("blob objects %v, want the backup alone", objs)
			}
			obj, err := os.ReadFile(objs[0])
			if err != nil {
				t.Fatal(err)
			}
			bad := bytes.Clone(obj)
			bad[len(bad)-40] ^= 1
			if err := os.WriteFile(objs[0], bad, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := fresh.Restore(ctx, strings.ToLower(key.String())); !errors.Is(err, client.ErrBackupCorrupt) {
				t.Fatalf("a damaged backup: %v", err)
			}
			if _, ok := fresh.IdentityKey(); ok || len(historyTexts(t, fresh, conv)) != 0 {
				t.Fatal("a failed restore wrote state")
			}
			if err := os.WriteFile(objs[0], obj, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := fresh.Restore(ctx, strings.ToLower(key.String())); err != nil {
				t.Fatal(err)
			}
			fk, _ := fresh.IdentityKey()
			ak, _ := alice.IdentityKey()
			if fk != ak {
				t.Fatal("the restored identity is not alice's")
			}
			// The history, and what bob sent while alice was away.
			want = append(want, "bob: while you were away")
			if got := historyTexts(t, fresh, conv); strings.Join(got, "|") != strings.Join(want, "|") {
				t.Fatalf("restored history %v, want %v", got, want)
			}
			convs, err := fresh.LocalConversations()
			if err != nil || len(convs) != 1 || convs[0].Title != "secret title" {
				t.Fatalf("restored conversations %+v %v", convs, err)
			}
			contacts, err := fresh.Contacts()
			if err != nil || len(contacts) != 1 || !contacts[0].Verified {
				t.Fatalf("restored contacts %+v %v", contacts, err)
			}
			syncTexts(t, fresh)
			if _, err := fresh.Send(ctx, conv, "back again"); err != nil {
				t.Fatal(err)
			}
			if got := syncTexts(t, bob); strings.Join(got, "|") != "alice: back again" {
				t.Fatalf("bob reads %v", got)
			}
			if a, _ := bob.Alarms(protocol.ConversationID{}); len(a) != 0 {
				t.Fatalf("bob's alarms: %+v", a)
			}
			bc, _ := bob.Contacts()
			if len(bc) != 1 || bc[0].Changed != 0 || bc[0].Pending != nil {
				t.Fatalf("bob's view of alice: %+v", bc)
			}
			for _, c := range []*client.Client{fresh, bob} {
				if f := c.Stats().DecryptFailed; len(f) != 0 {
					t.Fatalf("%s: decrypt failures %v", c.Username(), f)
				}
			}
			if err := fresh.DisableBackup(ctx); err != nil {
				t.Fatal(err)
			}
			if objs, _ := filepath.Glob(filepath.Join(blobDir, "objects", "*")); len(objs) != 0 {
				t.Fatalf("after disable, the server keeps %v", objs)
			}
			if on, _, _ := fresh.BackupStatus(); on {
				t.Fatal("backups still on after disable")
			}
		})
	}
}

// TestRestoreAfterReset: a backup made before the account's identity was
// reset cannot be restored (its key is no longer the account's): a clear
// error, and the device stays without keys or history.
func TestRestoreAfterReset(t *testing.T) {
	n := startNode(t, t.TempDir()+"/sandi.db", blobConfig(t))
	ctx := context.Background()
	alice := register(t, n, "alice")
	register(t, n, "bob")
	conv, err := alice.CreateConversation(ctx, "", "bob")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, conv, "before the reset"); err != nil {
		t.Fatal(err)
	}
	key, err := alice.EnableBackup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.ResetIdentity(ctx); err != nil {
		t.Fatal(err)
	}
	fresh := newClient(t, n, "")
	if err := fresh.Login(ctx, "alice", "password of alice"); err != nil {
		t.Fatal(err)
	}
	if err := fresh.Restore(ctx, key.String()); err == nil || !strings.Contains(err.Error(), "no longer the account's") {
		t.Fatalf("restore of a backup from before a reset: %v", err)
	}
	if _, ok := fresh.IdentityKey(); ok || len(historyTexts(t, fresh, conv)) != 0 {
		t.Fatal("a refused restore wrote state")
	}
}

// TestRestoreSecondReadCut: the server serves the backup whole for the
// check and cuts it short on the read that imports it. The restore fails
// with nothing imported (no conversation, no history, no identity), and a
// retry brings everything back.
func TestRestoreSecondReadCut(t *testing.T) {
	n := startNode(t, t.TempDir()+"/sandi.db", blobConfig(t))
	ctx := context.Background()
	alice := register(t, n, "alice")
	register(t, n, "bob")
	conv, err := alice.CreateConversation(ctx, "kept whole", "bob")
	if err != nil {
		t.Fatal(err)
	}
	// More than one 64 KiB chunk of archive, so that the cut comes after
	// records that decrypt.
	for i := range 3 {
		if _, err := alice.Send(ctx, conv, fmt.Sprintf("long message %d %s", i, strings.Repeat("x", 30_000))); err != nil {
			t.Fatal(err)
		}
	}
	key, err := alice.EnableBackup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rt := &archiveTransport{}
	var gets atomic.Int64
	rt.set(func(resp *http.Response) error {
		// The header, the check, then the import: cut the third.
		if gets.Add(1) != 3 {
			return nil
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(b[:len(b)*3/4]), iotest.ErrReader(errors.New("connection reset"))))
		return nil
	})
	fresh := newClientWith(t, n, rt)
	if err := fresh.Login(ctx, "alice", "password of alice"); err != nil {
		t.Fatal(err)
	}
	if err := fresh.Restore(ctx, key.String()); err == nil || !strings.Contains(err.Error(), "nothing was imported") || gets.Load() != 3 {
		t.Fatalf("a restore whose import read was cut: %v after %d reads", err, gets.Load())
	}
	convs, err := fresh.LocalConversations()
	if err != nil || len(convs) != 0 {
		t.Fatalf("a cut import left conversations %+v (%v)", convs, err)
	}
	if _, ok := fresh.IdentityKey(); ok || len(historyTexts(t, fresh, conv)) != 0 {
		t.Fatal("a cut import left state")
	}
	rt.set(nil)
	if err := fresh.Restore(ctx, key.String()); err != nil {
		t.Fatal(err)
	}
	if got, want := historyTexts(t, fresh, conv), historyTexts(t, alice, conv); len(got) != 3 || strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("restored %d messages, want %d", len(got), len(want))
	}
}

// TestRestoreOlderBackupDated: a server that withholds the newest parts
// of the account's backup serves an older backup. Nothing in the exchange can
// tell (the same account, the same recovery key), but the restored device
// reports when the backup it restored was made, from inside the encrypted
// archive: the older date, which a user who used the lost device later
// recognises; restored honestly, the newest backup's date.
func TestRestoreOlderBackupDated(t *testing.T) {
	blobDir := t.TempDir()
	n := startNode(t, t.TempDir()+"/sandi.db", blobConfigIn(t, blobDir))
	ctx := context.Background()
	var offset atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	alice, err := client.Open(client.Options{Server: n.url(), Storage: client.NewMemStorage(), Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Register(ctx, "alice", "password of alice"); err != nil {
		t.Fatal(err)
	}
	register(t, n, "bob")
	conv, err := alice.CreateConversation(ctx, "", "bob")
	if err != nil {
		t.Fatal(err)
	}
	offset.Store(int64(-2 * time.Hour))
	key, err := alice.EnableBackup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, older, _ := alice.BackupStatus()
	objs, _ := filepath.Glob(filepath.Join(blobDir, "objects", "*"))
	if len(objs) != 1 {
		t.Fatalf("blob objects %v, want the backup alone", objs)
	}
	baseID := filepath.Base(objs[0])
	offset.Store(0)
	if _, err := alice.Send(ctx, conv, "after the first backup"); err != nil {
		t.Fatal(err)
	}
	if err := alice.BackupNow(ctx); err != nil {
		t.Fatal(err)
	}
	_, newest, _ := alice.BackupStatus()

	restore := func(rt http.RoundTripper) int64 {
		t.Helper()
		c := newClientWith(t, n, rt)
		if err := c.Login(ctx, "alice", "password of alice"); err != nil {
			t.Fatal(err)
		}
		if err := c.Restore(ctx, key.String()); err != nil {
			t.Fatal(err)
		}
		on, made, err := c.BackupStatus()
		if !on || err != nil {
			t.Fatalf("backups after a restore: %v %v", on, err)
		}
		return made
	}
	// The archive's date is taken as it is written, the upload's when it
	// ends: close, not equal.
	if made := restore(http.DefaultTransport); made > newest || made < newest-time.Minute.Milliseconds() {
		t.Fatalf("an honest restore reports the backup made at %d, want the newest, %d", made, newest)
	}
	// The server withholds what came after the first backup: it lists
	// the base alone.
	p := newProxy(t, n)
	keepListed(p, func(id string) bool { return id == baseID }, nil)
	withheld, err := restoreThrough(t, p, http.DefaultTransport, key.String())
	if err != nil {
		t.Fatal(err)
	}
	if _, made, _ := withheld.BackupStatus(); made > older || made > newest-time.Hour.Milliseconds() {
		t.Fatalf("restored from the older backup, the device reports it made at %d; want %d, before the newest %d", made, older, newest)
	}
}
