package sqlstore

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"sandi.dev/internal/store"
	"sandi.dev/internal/testpg"
)

// TestSendBatchFailure: the database fails a send batch's transaction
// after its event ids are taken and some of its rows written (a trigger,
// put in by the test, refuses to insert a message whose client id starts
// with "poison"). Every send of the batch gets an error and nothing of it
// stays: no message, no event, no counter moved. (On PostgreSQL the ids
// it drew from the sequence stay unused: the stream has holes, never
// stray events.) Through the group commit,
// where a poisoned send shares its batch with others, a send is stored if
// and only if it was acknowledged, and seqs and event ids stay gap-free.
func TestSendBatchFailure(t *testing.T) {
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			ctx := context.Background()
			url := filepath.Join(t.TempDir(), "fail.db")
			if db == "postgres" {
				url = testpg.URL(t)
			}
			s, senders := benchStore(t, url, 4)
			t.Cleanup(func() { s.Close() })
			poison := []string{`CREATE TRIGGER poison BEFORE INSERT ON messages
				WHEN NEW.client_id LIKE 'poison%' BEGIN SELECT RAISE(ABORT, 'poisoned'); END`}
			if db == "postgres" {
				poison = []string{`CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
					BEGIN IF NEW.client_id LIKE 'poison%' THEN RAISE EXCEPTION 'poisoned'; END IF; RETURN NEW; END $$`,
					`CREATE TRIGGER poison BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION poison()`}
			}
			for _, q := range poison {
				if _, err := s.w.ExecContext(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			lastSeq := func(sd benchSender) uint64 {
				c, err := s.Conversation(ctx, sd.conv)
				if err != nil {
					t.Fatal(err)
				}
				return c.LastSeq
			}

			// The stored events: the newest id and how many.
			events := func() (newest, n int64) {
				if err := s.w.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0), COUNT(*) FROM events`).Scan(&newest, &n); err != nil {
					t.Fatal(err)
				}
				return newest, n
			}

			// One batch, written directly.
			head, n0 := events()
			batch := []store.Send{senders[0].send(1), senders[1].send(2), senders[0].send(3)}
			batch[1].ClientID = "poison-1"
			if _, err := s.Send(ctx, batch); err == nil || !strings.Contains(err.Error(), "poisoned") {
				t.Fatalf("a batch the database fails: %v, want its error", err)
			}
			if h, n := events(); h != head || n != n0 {
				t.Fatalf("after the failed batch the newest event is %d of %d, want %d of %d", h, n, head, n0)
			}
			if lastSeq(senders[0]) != 0 || lastSeq(senders[1]) != 0 {
				t.Fatal("a failed batch moved a conversation's counter")
			}
			res, err := s.Send(ctx, batch[:1])
			if err != nil || res[0].Err != nil || res[0].Seq != 1 || res[0].EventID <= head || db == "sqlite" && res[0].EventID != head+1 {
				t.Fatalf("the next send: %+v %v, want seq 1 and an event after %d", res, err, head)
			}
			newest := res[0].EventID

			// Through the group commit, from several goroutines at once.
			const each = 24
			type outcome struct {
				res store.SendResult
				err error
			}
			out := make([][]outcome, len(senders))
			var wg sync.WaitGroup
			for i, sd := range senders {
				out[i] = make([]outcome, each)
				wg.Add(1)
				go func() {
					defer wg.Done()
					for j := range each {
						m := sd.send(int64(1000*i + j + 10))
						if j%5 == 2 {
							m.ClientID = fmt.Sprintf("poison-%d-%d", i, j)
						}
						r, err := s.SendOne(ctx, m)
						out[i][j] = outcome{r, err}
					}
				}()
			}
			wg.Wait()
			var ids []int64
			for i, sd := range senders {
				stored := map[string]store.Message{}
				ms, err := s.Messages(ctx, sd.conv, 0, 1000)
				if err != nil {
					t.Fatal(err)
				}
				for k, m := range ms {
					if m.Seq != uint64(k+1) {
						t.Fatalf("sender %d: seqs %d… not gap-free", i, m.Seq)
					}
					stored[m.ClientID] = m
				}
				acked := 0
				for j, o := range out[i] {
					cid := sd.send(int64(1000*i + j + 10)).ClientID
					if j%5 == 2 {
						cid = fmt.Sprintf("poison-%d-%d", i, j)
						if o.err == nil {
							t.Fatalf("a poisoned send was acknowledged: %+v", o.res)
						}
					}
					m, ok := stored[cid]
					switch {
					case o.err == nil && (!ok || m.Seq != o.res.Seq):
						t.Fatalf("acknowledged as seq %d, stored: %v (%+v)", o.res.Seq, ok, m)
					case o.err != nil && ok:
						t.Fatalf("refused (%v) and stored anyway as seq %d", o.err, m.Seq)
					case o.err == nil:
						acked++
						ids = append(ids, o.res.EventID)
						newest = max(newest, o.res.EventID)
					}
				}
				if i == 0 {
					acked++ // the direct send above
				}
				if acked != len(ms) {
					t.Fatalf("sender %d: %d stored, %d acknowledged", i, len(ms), acked)
				}
			}
			// Event ids: every acknowledged message has its own, and the
			// stream holds nothing else since.
			seen := map[int64]bool{}
			for _, id := range ids {
				if seen[id] {
					t.Fatalf("event id %d given twice", id)
				}
				seen[id] = true
			}
			h, n := events()
			if h != newest || n != n0+1+int64(len(ids)) {
				t.Fatalf("newest event %d of %d, want %d of %d: a failed batch left events behind", h, n, newest, n0+1+int64(len(ids)))
			}
			if db == "sqlite" && h != head+1+int64(len(ids)) {
				t.Fatalf("newest event %d, want %d: the counter has holes", h, head+1+int64(len(ids)))
			}
		})
	}
}
