package storetest

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

func blobID() string { return hex.EncodeToString(random(16)) }

// newBlob is an upload of a's first device into conv.
func (f *fixture) newBlob(a *acct, conv protocol.ConversationID, size int64, parts int, expires int64) store.Blob {
	return store.Blob{ID: blobID(), Conversation: conv, User: a.ID, Device: a.Devs[0], Size: size, Parts: parts,
		State: "st0", CreatedAt: f.tick(), ExpiresAt: expires}
}

func (f *fixture) wantUsage(what string, a *acct, bytes int64, open int) {
	f.t.Helper()
	b, o, err := f.s.BlobUsage(f.ctx, a.ID)
	if err != nil || b != bytes || o != open {
		f.t.Fatalf("%s: usage %d bytes, %d open, %v; want %d, %d", what, b, o, err, bytes, open)
	}
}

// complete receives every part of b and completes it.
func (f *fixture) completeBlob(b store.Blob, expires int64) {
	f.t.Helper()
	for n := 0; n < b.Parts; n++ {
		if err := f.s.SetBlobPart(f.ctx, b.ID, n, true, b.State); err != nil {
			f.t.Fatalf("part %d: %v", n, err)
		}
	}
	if err := f.s.CompleteBlob(f.ctx, b.ID, f.tick(), expires); err != nil {
		f.t.Fatalf("complete: %v", err)
	}
}

// testBlobs: an upload's life (parts, completion, reference by a send,
// expiry, deletion, purge), the quota and the bound on unfinished
// uploads, and the sends that may not reference a blob.
func testBlobs(t *testing.T, open Opener) {
	f := newFixture(t, open(t, nil))
	s, ctx := f.s, f.ctx
	alice, bob, carol := f.user(1, true), f.user(1, true), f.user(1, true)
	conv := f.conversation(alice, bob)
	other := f.conversation(carol, alice)
	lim := store.BlobLimits{Quota: 100, MaxOpen: 2}
	const day = 86_400_000

	b1 := f.newBlob(alice, conv, 10, 1, f.now+day)
	if err := s.CreateBlob(ctx, b1, lim); err != nil {
		t.Fatal(err)
	}
	f.wantUsage("one upload", alice, 10, 1)
	over := f.newBlob(alice, conv, 91, 1, f.now+day)
	wantErr(t, "upload past the quota", s.CreateBlob(ctx, over, lim), store.ErrBlobQuota)
	_, err := s.Blob(ctx, over.ID)
	wantErr(t, "refused upload", err, store.ErrNotFound)
	small := f.newBlob(alice, conv, 1, 1, f.now+day)
	if err := s.CreateBlob(ctx, small, lim); err != nil {
		t.Fatalf("second upload: %v", err)
	}
	f.wantUsage("after a refused upload", alice, 11, 2)
	dup := b1
	dup.Size = 5
	wantErr(t, "taken id", s.CreateBlob(ctx, dup, store.BlobLimits{}), store.ErrConflict)
	wantErr(t, "a third unfinished upload", s.CreateBlob(ctx, f.newBlob(alice, conv, 1, 1, 0), lim), store.ErrTooManyUploads)
	f.wantUsage("after refused uploads", alice, 11, 2)
	f.wantUsage("another account", bob, 0, 0)

	got, err := s.Blob(ctx, b1.ID)
	if err != nil || got.Conversation != conv || got.User != alice.ID || got.Device != alice.Devs[0] || got.Size != 10 || got.Parts != 1 ||
		got.State != "st0" || got.Complete || got.Referenced || got.Deleted || got.ExpiresAt != b1.ExpiresAt || len(got.Missing()) != 1 {
		t.Fatalf("blob = %+v, %v", got, err)
	}
	wantErr(t, "part out of range", s.SetBlobPart(ctx, b1.ID, 1, true, "x"), store.ErrNotFound)
	wantErr(t, "part of an unknown blob", s.SetBlobPart(ctx, blobID(), 0, true, "x"), store.ErrNotFound)
	wantErr(t, "complete with a part missing", s.CompleteBlob(ctx, b1.ID, f.tick(), 0), store.ErrBlobIncomplete)
	if err := s.SetBlobPart(ctx, b1.ID, 0, true, "st1"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Blob(ctx, b1.ID); !got.HasPart(0) || got.State != "st1" || len(got.Missing()) != 0 {
		t.Fatalf("after part 0: %+v", got)
	}
	// A part being rewritten is not received until it is whole again.
	s.SetBlobPart(ctx, b1.ID, 0, false, "st1")
	wantErr(t, "complete while a part is rewritten", s.CompleteBlob(ctx, b1.ID, f.tick(), 0), store.ErrBlobIncomplete)
	f.completeBlob(b1, f.now+day)
	if err := s.CompleteBlob(ctx, b1.ID, f.tick(), 1); err != nil {
		t.Fatalf("second completion: %v", err)
	}
	got, _ = s.Blob(ctx, b1.ID)
	if !got.Complete || got.CompletedAt == 0 || got.ExpiresAt == 1 {
		t.Fatalf("completed blob = %+v", got)
	}
	wantErr(t, "part after completion", s.SetBlobPart(ctx, b1.ID, 0, true, "x"), store.ErrBlobComplete)
	f.wantUsage("after completion", alice, 11, 1)

	// Sends that may not reference it, or an unfinished one, or an
	// unknown one: refused, nothing stored.
	b2 := f.newBlob(alice, conv, 20, 2, f.now+day)
	if err := s.CreateBlob(ctx, b2, lim); err != nil {
		t.Fatal(err)
	}
	b3 := f.newBlob(carol, other, 5, 1, f.now+day)
	s.CreateBlob(ctx, b3, lim)
	f.completeBlob(b3, f.now+day)
	for _, bad := range []struct {
		what string
		m    store.Send
		ids  []string
	}{
		{"another account's blob", f.msg(conv, bob, 0, "bad-1", 1), []string{b1.ID}},
		{"a blob of another conversation", f.msg(other, alice, 0, "bad-2", 1), []string{b1.ID}},
		{"another account's blob of another conversation", f.msg(conv, alice, 0, "bad-3", 1), []string{b3.ID}},
		{"an unfinished blob", f.msg(conv, alice, 0, "bad-4", 1), []string{b1.ID, b2.ID}},
		{"an unknown blob", f.msg(conv, alice, 0, "bad-5", 1), []string{blobID()}},
	} {
		bad.m.Blobs = bad.ids
		_, err := s.SendOne(ctx, bad.m)
		wantErr(t, bad.what, err, store.ErrBadBlob)
	}
	if c := f.conv(conv); c.LastSeq != 0 {
		t.Fatalf("refused sends stored %d messages", c.LastSeq)
	}
	m := f.msg(conv, alice, 0, "good-1", 1)
	m.Blobs = []string{b1.ID}
	r := f.sendOne(m)
	if refs, err := s.BlobRefs(ctx, conv, r.Seq); err != nil || !slices.Equal(refs, []string{b1.ID}) {
		t.Fatalf("refs of the message = %v, %v", refs, err)
	}
	if again := f.sendOne(m); !again.Duplicate || again.Seq != r.Seq {
		t.Fatalf("retry = %+v", again)
	}
	if got, _ := s.Blob(ctx, b1.ID); !got.Referenced {
		t.Fatalf("referenced blob = %+v", got)
	}
	// A text message beside them is unaffected.
	f.sendOne(f.msg(conv, bob, 0, "text-1", 1))

	// Expiry: the unfinished b2 and the unreferenced b3 go at their
	// times; the referenced b1 stays.
	if n, err := s.ExpireBlobs(ctx, small.ExpiresAt-1, 100); err != nil || n != 0 {
		t.Fatalf("expire before any expiry: %d, %v", n, err)
	}
	if n, err := s.ExpireBlobs(ctx, f.now+2*day, 100); err != nil || n != 3 {
		t.Fatalf("expire: %d, %v; want b2, b3 and small", n, err)
	}
	f.wantUsage("after expiry", alice, 10, 0)
	f.wantUsage("after expiry", carol, 0, 0)
	dead, err := s.DeletedBlobs(ctx, 100)
	ids := []string{}
	for _, b := range dead {
		ids = append(ids, b.ID)
	}
	want := []string{b2.ID, b3.ID, small.ID}
	slices.Sort(want)
	if err != nil || !slices.Equal(ids, want) {
		t.Fatalf("tombstones = %v, %v; want %v", ids, err, want)
	}
	wantErr(t, "part of an expired upload", s.SetBlobPart(ctx, b2.ID, 0, true, "x"), store.ErrNotFound)
	wantErr(t, "purge of a live blob", s.PurgeBlob(ctx, b1.ID), store.ErrNotFound)
	for _, id := range want {
		if err := s.PurgeBlob(ctx, id); err != nil {
			t.Fatal(err)
		}
		_, err := s.Blob(ctx, id)
		wantErr(t, "purged blob", err, store.ErrNotFound)
	}
	if dead, _ := s.DeletedBlobs(ctx, 100); len(dead) != 0 {
		t.Fatalf("tombstones after purge: %+v", dead)
	}

	// A completed blob past its deadline for a reference cannot be
	// shared any more.
	late := f.newBlob(alice, conv, 5, 1, 0)
	s.CreateBlob(ctx, late, lim)
	f.completeBlob(late, f.now+10)
	m = f.msg(conv, alice, 0, "late-1", 1)
	m.Now, m.Blobs = f.now+10, []string{late.ID}
	_, err = s.SendOne(ctx, m)
	wantErr(t, "reference after the deadline", err, store.ErrBadBlob)

	// Deletion by its account only.
	_, err = s.DeleteBlob(ctx, b1.ID, bob.ID)
	wantErr(t, "deletion by another account", err, store.ErrNotFound)
	if d, err := s.DeleteBlob(ctx, b1.ID, alice.ID); err != nil || d.ID != b1.ID {
		t.Fatalf("delete: %+v, %v", d, err)
	}
	_, err = s.DeleteBlob(ctx, b1.ID, alice.ID)
	wantErr(t, "second deletion", err, store.ErrNotFound)
	f.wantUsage("after deletion", alice, 5, 0)
	m = f.msg(conv, alice, 0, "after-delete", 1)
	m.Blobs = []string{b1.ID}
	_, err = s.SendOne(ctx, m)
	wantErr(t, "reference to a deleted blob", err, store.ErrBadBlob)
}

// testBlobQuotaRace: concurrent uploads of one account never take it
// past its quota.
func testBlobQuotaRace(t *testing.T, open Opener) {
	f := newFixture(t, open(t, nil))
	alice := f.user(1, true)
	conv := f.conversation(alice)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		b := f.newBlob(alice, conv, 30, 1, 0)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f.s.CreateBlob(f.ctx, b, store.BlobLimits{Quota: 100})
		}()
	}
	wg.Wait()
	ok := accepted(t, errs, store.ErrBlobQuota, "concurrent upload")
	if ok != 3 {
		t.Fatalf("%d of %d uploads of 30 bytes accepted under a quota of 100, want 3", ok, n)
	}
	f.wantUsage("after the race", alice, 90, 3)
}

// testBlobPartsConcurrent: parts marked at once, of one upload and of
// several, are all recorded; a mark refused (out of range, a completed
// blob) gets its error and costs the others nothing.
func testBlobPartsConcurrent(t *testing.T, open Opener) {
	f := newFixture(t, open(t, nil))
	alice := f.user(1, true)
	conv := f.conversation(alice)
	const parts = 40
	big := f.newBlob(alice, conv, parts*10, parts, f.now+1000)
	small := f.newBlob(alice, conv, 20, 2, f.now+1000)
	done := f.newBlob(alice, conv, 5, 1, f.now+1000)
	for _, b := range []store.Blob{big, small, done} {
		if err := f.s.CreateBlob(f.ctx, b, store.BlobLimits{}); err != nil {
			t.Fatal(err)
		}
	}
	f.completeBlob(done, f.now+1000)
	type mark struct {
		id   string
		n    int
		want error
	}
	var marks []mark
	for n := range parts {
		marks = append(marks, mark{big.ID, n, nil})
	}
	marks = append(marks, mark{small.ID, 0, nil}, mark{small.ID, 1, nil}, mark{small.ID, 2, store.ErrNotFound},
		mark{big.ID, -1, store.ErrNotFound}, mark{done.ID, 0, store.ErrBlobComplete}, mark{blobID(), 0, store.ErrNotFound})
	var wg sync.WaitGroup
	errs := make([]error, len(marks))
	for i, m := range marks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f.s.SetBlobPart(f.ctx, m.id, m.n, true, fmt.Sprintf("state %d", i))
		}()
	}
	wg.Wait()
	for i, m := range marks {
		if m.want == nil && errs[i] != nil || m.want != nil && !errors.Is(errs[i], m.want) {
			t.Fatalf("mark %s part %d: %v, want %v", m.id, m.n, errs[i], m.want)
		}
	}
	for _, b := range []store.Blob{big, small} {
		got, err := f.s.Blob(f.ctx, b.ID)
		if err != nil || len(got.Missing()) != 0 {
			t.Fatalf("blob of %d parts after concurrent marks: missing %v, %v", b.Parts, got.Missing(), err)
		}
	}
}
