package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"testing"

	"sandi.dev/protocol"
	"sandi.dev/protocol/archive"
	"sandi.dev/protocol/attach"
)

// TestArchiveImportRefusesForeign: an archive sealed under the right key
// (by a device of the account, or whoever holds the key) is still
// imported only if it is of the expected kind, for this account, and
// holds only archived state: an identity in a transfer, a device's own
// keys (account, outbox), another account's archive, or a request state or
// block list that does not decode (§16.1), a record this version does not
// know outside opt/ are refused whole, and nothing of it is written, the
// records before the bad one included. Records under opt/ that this
// version does not know are skipped (a later version's optional state).
func TestArchiveImportRefusesForeign(t *testing.T) {
	me := protocol.NewUserID()
	seal := func(kind archive.Kind, user protocol.UserID, recs ...string) []byte {
		t.Helper()
		var plain bytes.Buffer
		aw, err := archive.NewWriter(&plain, archive.Header{Kind: kind, User: user, Created: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range recs {
			if err := aw.Add(k, []byte("{}")); err != nil {
				t.Fatal(err)
			}
		}
		if err := aw.Close(); err != nil {
			t.Fatal(err)
		}
		return plain.Bytes()
	}
	key := attach.NewKey()
	encrypt := func(plain []byte) []byte {
		t.Helper()
		var out bytes.Buffer
		w, err := attach.NewWriter(&out, key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(plain); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return out.Bytes()
	}
	for _, tc := range []struct {
		name string
		kind archive.Kind
		user protocol.UserID
		recs []string
		ok   bool
	}{
		{"archived state", archive.Transfer, me, []string{"conv/x", "history/x"}, true},
		{"identity in a transfer", archive.Transfer, me, []string{"history/x", "identity"}, false},
		{"the device's account", archive.Transfer, me, []string{"account", "history/x"}, false},
		{"an outbox entry", archive.Transfer, me, []string{"history/x", "outbox/abcdefgh"}, false},
		{"a backup given as a transfer", archive.Backup, me, []string{"history/x"}, false},
		{"another account's archive", archive.Transfer, protocol.NewUserID(), []string{"history/x"}, false},
		{"a request state that does not decode", archive.Transfer, me, []string{"history/x", "requests.v1"}, false},
		{"a block list that does not decode", archive.Transfer, me, []string{"blocks", "history/x"}, false},
		{"a later version's optional records", archive.Transfer, me, []string{"history/x", "opt/later.v2", "opt/x/y"}, true},
		{"a later version's record outside opt/", archive.Transfer, me, []string{"history/x", "later.v2"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Open(Options{Server: "http://127.0.0.1:1", Storage: NewMemStorage()})
			if err != nil {
				t.Fatal(err)
			}
			c.acct = account{Server: "http://127.0.0.1:1", Username: "alice", User: me, Device: protocol.NewDeviceID(), Token: "t"}
			ct := encrypt(seal(tc.kind, tc.user, tc.recs...))
			digest := sha256.Sum256(ct)
			open := func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(ct)), nil }
			_, err = c.importArchive(context.Background(), open, 0, key, digest[:], archive.Transfer, nil, c.importRecord)
			_, gerr := c.st.Get("history/x")
			if tc.ok {
				if err != nil || gerr != nil {
					t.Fatalf("a good archive: import %v, history %v", err, gerr)
				}
				for _, k := range tc.recs {
					if _, err := c.st.Get(k); strings.HasPrefix(k, optionalPrefix) && !errors.Is(err, ErrNoValue) {
						t.Fatalf("the optional record %s was written (%v)", k, err)
					}
				}
				return
			}
			if !errors.Is(err, archive.ErrFormat) {
				t.Fatalf("import: %v, want a format error", err)
			}
			if !errors.Is(gerr, ErrNoValue) {
				t.Fatalf("a refused archive wrote its history (%v)", gerr)
			}
		})
	}
}

// TestImportCrash: a device that stopped in the middle of an import opens
// as before it (staged records, no commit mark: dropped) or with the
// whole import (the mark written: the move is finished), never with part
// of it.
func TestImportCrash(t *testing.T) {
	for _, committed := range []bool{false, true} {
		st := NewMemStorage()
		for k, v := range map[string]string{"history/a": "mine", importStage + "history/a": "merged", importStage + "conv/b": "theirs"} {
			if err := st.Put(k, []byte(v)); err != nil {
				t.Fatal(err)
			}
		}
		if committed {
			if err := st.Put(importCommitted, []byte{1}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := Open(Options{Storage: st}); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"history/a": "mine"}
		if committed {
			want = map[string]string{"history/a": "merged", "conv/b": "theirs"}
		}
		all, err := st.List("")
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != len(want) {
			t.Errorf("committed %v: storage holds %v, want %v", committed, all, want)
		}
		for k, v := range want {
			if b, err := st.Get(k); err != nil || string(b) != v {
				t.Errorf("committed %v: %s = %q (%v), want %q", committed, k, b, err, v)
			}
		}
	}
}
