package server_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"sandi.dev/internal/blob/fsblob"
	"sandi.dev/internal/server"
)

// TestMessageExpiry moves the server's clock: a message sent with a timer
// is deleted by the collection once its timer has run out on the
// server's clock, not a second before; with it goes its attachment blob;
// a message without a timer, and its blob, stay. The send answer names
// the expiry; a timer that is not a u32 is refused and stores nothing.
func TestMessageExpiry(t *testing.T) {
	forEachDBURL(t, func(t *testing.T, url string) {
		dir := t.TempDir()
		bs, err := fsblob.New(dir)
		if err != nil {
			t.Fatal(err)
		}
		e, _ := openEnv(t, url, server.Config{Blobs: bs})
		ctx := context.Background()
		alice, bob := e.register("alice"), e.register("bob")
		conv, err := alice.create([]*device{bob})
		if err != nil {
			t.Fatal(err)
		}
		kept, gone := alice.upload(conv, randomBytes(50)), alice.upload(conv, randomBytes(50))
		if _, err := alice.sendBlobs(conv, 1, "kept", []string{kept}); err != nil {
			t.Fatal(err)
		}
		sa, err := alice.sendWith(conv, 1, "gone", map[string]any{"timer": 60, "blobs": []string{gone}})
		if err != nil || sa.ExpiresAt != sa.CreatedAt+60_000 || sa.CreatedAt != e.clock.now.UnixMilli() {
			t.Fatalf("send with a timer: %+v, %v; want the expiry 60 s after its creation", sa, err)
		}
		if _, err := bob.sendWith(conv, 1, "short", map[string]any{"timer": 5}); err != nil {
			t.Fatal(err)
		}
		for _, bad := range []any{-1, 1 << 32, "60"} {
			var ae *apiError
			if _, err := alice.sendWith(conv, 1, "bad", map[string]any{"timer": bad}); !errors.As(err, &ae) || ae.Status != 400 {
				t.Fatalf("timer %v: %v; want 400", bad, err)
			}
		}
		seqs := func() []uint64 {
			t.Helper()
			s, err := bob.history(conv, 100)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		if got := seqs(); !slices.Equal(got, []uint64{1, 2, 3}) {
			t.Fatalf("messages before expiry: %v", got)
		}
		// Alice reads to the end: her cursor is the newest event of the
		// server, bob's short message's, which expires first.
		if evs := alice.events(100); len(evs) == 0 || evs[len(evs)-1].Kind != "message" {
			t.Fatalf("alice's stream ends with %+v; want bob's short message", evs)
		}
		atNewest := alice.cursor
		start := e.clock.now
		exists := func(id string) bool {
			_, err := os.Stat(filepath.Join(dir, "objects", id))
			return err == nil
		}
		collect := func(wantMsgs int) {
			t.Helper()
			if n, err := e.srv.CollectMessages(ctx); err != nil || n != wantMsgs {
				t.Fatalf("collect messages at +%v: %d, %v; want %d", e.clock.now.Sub(start), n, err, wantMsgs)
			}
			if _, err := e.srv.CollectBlobs(ctx); err != nil {
				t.Fatal(err)
			}
		}
		e.clock.now = e.clock.now.Add(5*time.Second - time.Millisecond)
		collect(0)
		e.clock.now = e.clock.now.Add(time.Millisecond)
		collect(1)
		if got := seqs(); !slices.Equal(got, []uint64{1, 2}) {
			t.Fatalf("messages after 5 s: %v; want 1, 2", got)
		}
		// Its event stays, without the message, as the newest of the
		// server: a cursor on it is still at the head, not past it (a
		// client takes a cursor past the head for a server rolled back
		// to an older copy, and reads its conversations again).
		var p pageAnswer
		alice.must("GET", fmt.Sprintf("/api/sync?since=%d", atNewest), nil, &p)
		if len(p.Events) != 0 || p.More || p.Head < atNewest {
			t.Fatalf("sync from the expired newest event %d: %d events, more %v, head %d; want none, at the head", atNewest, len(p.Events), p.More, p.Head)
		}
		e.clock.now = e.clock.now.Add(55 * time.Second)
		collect(1)
		if got := seqs(); !slices.Equal(got, []uint64{1}) {
			t.Fatalf("messages after 60 s: %v; want 1", got)
		}
		if exists(gone) || !exists(kept) {
			t.Fatalf("after the expiry: blob of the expired message left %v, blob of the kept one left %v", exists(gone), exists(kept))
		}
		if r := bob.fetch(gone, ""); r.status != 404 {
			t.Fatalf("the blob of an expired message was served: %d", r.status)
		}
		// Bob's stream still names the expired messages' events, without
		// their envelopes.
		msgs := 0
		for _, ev := range bob.events(100) {
			if ev.Kind == "message" && ev.Message != nil {
				msgs++
			}
		}
		if msgs != 1 {
			t.Fatalf("sync gives %d envelopes, want 1", msgs)
		}
		e.clock.now = e.clock.now.Add(1000 * time.Hour)
		collect(0)
		if got := seqs(); !slices.Equal(got, []uint64{1}) {
			t.Fatalf("the message without a timer went: %v", got)
		}
	})
}
