package storetest

import (
	"context"
	"testing"
)

// testIncarnation: a database gets one incarnation when first opened, keeps
// it across reopenings, and NewIncarnation appends the next one with the
// newest event id as its base, which the store then reports as current.
func testIncarnation(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, nil)
	first := s.Incarnation()
	if first.ID == ([16]byte{}) || first.Base != 0 {
		t.Fatalf("first incarnation %+v: want a random id and base 0", first)
	}
	all, err := s.Incarnations(ctx)
	if err != nil || len(all) != 1 || all[0] != first {
		t.Fatalf("incarnations %+v, %v: want [%+v]", all, err, first)
	}
	f := newFixture(t, s)
	f.user(2, true) // writes events
	head, err := s.LastEventID(ctx)
	if err != nil || head == 0 {
		t.Fatalf("last event id %d, %v: the fixture wrote no event", head, err)
	}
	s.Close()

	s = open(t, nil)
	if got := s.Incarnation(); got != first {
		t.Fatalf("reopened: incarnation %+v, want %+v unchanged", got, first)
	}
	next, err := s.NewIncarnation(ctx, 1_900_000_000_000)
	if err != nil {
		t.Fatalf("new incarnation: %v", err)
	}
	if next.ID == first.ID || next.ID == ([16]byte{}) || next.Base != head || next.CreatedAt != 1_900_000_000_000 {
		t.Fatalf("new incarnation %+v: want a new id, base %d", next, head)
	}
	if got := s.Incarnation(); got != next {
		t.Fatalf("current incarnation %+v, want the new %+v", got, next)
	}
	s.Close()

	s = open(t, nil)
	defer s.Close()
	if got := s.Incarnation(); got != next {
		t.Fatalf("reopened: incarnation %+v, want %+v", got, next)
	}
	all, err = s.Incarnations(ctx)
	if err != nil || len(all) != 2 || all[0] != first || all[1] != next {
		t.Fatalf("incarnations %+v, %v: want [%+v %+v]", all, err, first, next)
	}
}
