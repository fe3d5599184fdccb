package sqlstore

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"

	"sandi.dev/internal/store/storetest"
)

// testSyncPlans: Sync's two plans (walking the events after the cursor,
// and the union over the memberships) give the same page for every
// device, cursor and page size of a busy stream.
func testSyncPlans(t *testing.T, s *Store) {
	ctx := context.Background()
	readers := storetest.Busy(t, s)
	head, err := s.LastEventID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if head < 200 {
		t.Fatalf("the busy stream's newest event is %d", head)
	}
	// Cursors: every seventh event id, and the id before it (ids are not
	// dense on PostgreSQL's sequence).
	var cursors []int64
	rows, err := s.r.QueryContext(ctx, `SELECT id FROM events ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for k := 0; rows.Next(); k++ {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		if k%7 == 0 {
			cursors = append(cursors, id-1+int64(k%2))
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	pages := 0
	for _, r := range readers {
		for _, since := range append([]int64{0}, cursors...) {
			for _, limit := range []int{1, 5, 60, 500} {
				byEvent, err := s.sync(ctx, true, r.User, r.Device, since, head, limit)
				if err != nil {
					t.Fatal(err)
				}
				byMembership, err := s.sync(ctx, false, r.User, r.Device, since, head, limit)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(byEvent, byMembership) {
					t.Fatalf("device %s, since %d, limit %d: the plans differ:\nby event:      %+v\nby membership: %+v", r.Device, since, limit, byEvent, byMembership)
				}
				if len(byEvent) > 0 {
					pages++
				}
			}
		}
	}
	if pages == 0 {
		t.Fatal("no device had any event")
	}
}

func TestSQLiteSyncPlans(t *testing.T) {
	testSyncPlans(t, openTestStore(t, filepath.Join(t.TempDir(), "plans.db"), nil))
}

func TestPostgresSyncPlans(t *testing.T) {
	testSyncPlans(t, openTestStore(t, testpgURL(t), nil))
}

// TestSQLiteRecentEvents: Sync from the tail kept in memory gives what
// the database gives, after every write of a busy stream, for every
// device and every cursor near the head that the tail holds.
func TestSQLiteRecentEvents(t *testing.T) {
	s := openTestStore(t, filepath.Join(t.TempDir(), "tail.db"), nil)
	if s.memo == nil {
		t.Fatal("the store has no memo")
	}
	ctx := context.Background()
	fromMemory := 0
	storetest.BusyChecked(t, s, func(readers []storetest.Reader) {
		head := s.memo.head.Load()
		for _, r := range readers {
			for since := max(0, head-12); since <= head; since++ {
				for _, limit := range []int{2, 500} {
					got, ok, err := s.recentEvents(ctx, r.User, since, limit)
					if err != nil {
						t.Fatal(err)
					}
					if !ok {
						continue
					}
					want, err := s.sync(ctx, true, r.User, r.Device, since, head, limit)
					if err != nil {
						t.Fatal(err)
					}
					if !reflect.DeepEqual(got, want) {
						t.Fatalf("device %s, since %d (head %d), limit %d:\nfrom memory:   %+v\nfrom the file: %+v", r.Device, since, head, limit, got, want)
					}
					if len(got) > 0 {
						fromMemory++
					}
				}
			}
		}
	})
	if fromMemory == 0 {
		t.Fatal("no page came from memory")
	}
	t.Logf("%d pages from memory", fromMemory)
}
