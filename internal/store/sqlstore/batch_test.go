package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// TestBatchStopsWaiting: a batch that found sends waiting waits for more
// only while more keep coming. Here the longest wait is minutes and the
// gap a few milliseconds: sends that queued behind a busy writer, with
// none after them, are written as soon as the gap has passed.
func TestBatchStopsWaiting(t *testing.T) {
	defer func(l, g time.Duration) { batchLinger, lingerGap = l, g }(batchLinger, lingerGap)
	batchLinger, lingerGap = time.Hour, 5*time.Millisecond
	s := openTestStore(t, filepath.Join(t.TempDir(), "linger.db"), nil)
	ctx := context.Background()
	send := func(i int) <-chan error {
		done := make(chan error, 1)
		go func() {
			// A conversation that does not exist: the batch refuses it,
			// which takes it through the batcher like any send.
			conv := protocol.ConversationID{0xba, 0x7c, byte(i)}
			_, err := s.SendOne(ctx, store.Send{Conversation: conv, ClientID: fmt.Sprintf("linger-%02d", i), Envelope: []byte("x"), Now: 1})
			done <- err
		}()
		return done
	}
	wait := func(done <-chan error) {
		t.Helper()
		select {
		case err := <-done:
			if !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("send: %v, want ErrNotFound", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("a batch is still waiting for sends that are not coming")
		}
	}

	// The writer is busy: the first send's batch waits for it, and the
	// next sends queue behind it.
	s.memo.wmu.Lock()
	first := send(0)
	time.Sleep(50 * time.Millisecond)
	var queued []<-chan error
	for i := 1; i <= 3; i++ {
		queued = append(queued, send(i))
	}
	time.Sleep(50 * time.Millisecond)
	s.memo.wmu.Unlock()
	wait(first)
	for _, done := range queued {
		wait(done)
	}
	if s.batch.lingered.Load() == 0 {
		t.Fatal("no batch waited for more sends")
	}
}
