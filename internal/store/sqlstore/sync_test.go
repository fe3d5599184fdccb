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
		t.Fatalf("the busy stream has only %d events", head)
	}
	pages := 0
	for _, r := range readers {
		for since := int64(0); since <= head; since += 7 {
			for _, limit := range []int{1, 5, 60, 500} {
				byEvent, err := s.sync(ctx, true, r.User, r.Device, since, limit)
				if err != nil {
					t.Fatal(err)
				}
				byMembership, err := s.sync(ctx, false, r.User, r.Device, since, limit)
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
