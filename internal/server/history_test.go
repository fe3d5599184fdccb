package server_test

import (
	"fmt"
	"slices"
	"testing"

	"sandi.dev/internal/server"
	"sandi.dev/protocol"
)

type historyAnswer struct {
	Messages []struct {
		Seq        uint64          `json:"seq"`
		SenderUser protocol.UserID `json:"senderUser"`
		Epoch      uint64          `json:"epoch"`
		CreatedAt  int64           `json:"createdAt"`
	} `json:"messages"`
}

// history pages through GET /messages with the given page size and returns
// the seqs read.
func (d *device) history(conv protocol.ConversationID, page int) ([]uint64, error) {
	var seqs []uint64
	after := uint64(0)
	for {
		var ha historyAnswer
		if err := d.do("GET", fmt.Sprintf("/api/conversations/%s/messages?after=%d&limit=%d", conv, after, page), nil, &ha); err != nil {
			return nil, err
		}
		if len(ha.Messages) == 0 {
			return seqs, nil
		}
		for _, m := range ha.Messages {
			seqs = append(seqs, m.Seq)
			after = m.Seq
		}
	}
}

// A member removed and added back reads, through the history, only what
// was sent while it was a member, as sync shows it: not the envelopes,
// senders and times of the messages sent while it was out.
func TestHistoryFollowsMembershipSpans(t *testing.T) {
	forEachDB(t, server.Config{}, func(t *testing.T, e *env) {
		alice, bob := e.register("alice"), e.register("bob")
		conv, err := alice.create([]*device{bob})
		if err != nil {
			t.Fatal(err)
		}
		send := func(epoch uint64, text string) uint64 {
			t.Helper()
			sa, err := alice.send(conv, epoch, text)
			if err != nil {
				t.Fatal(err)
			}
			return sa.Seq
		}
		m1 := send(1, "m1")
		if err := alice.change(conv, protocol.OpRemove, nil, []protocol.UserID{bob.user}); err != nil {
			t.Fatal(err)
		}
		if err := alice.rotate(conv, 2); err != nil {
			t.Fatal(err)
		}
		m2 := send(2, "m2 (bob is out)")
		if err := alice.change(conv, protocol.OpAdd, []protocol.Member{bob.member(protocol.RoleMember)}, nil); err != nil {
			t.Fatal(err)
		}
		if err := alice.rotate(conv, 3); err != nil {
			t.Fatal(err)
		}
		m3 := send(3, "m3")

		for _, page := range []int{1, 2, 100} {
			got, err := bob.history(conv, page)
			if err != nil {
				t.Fatal(err)
			}
			if want := []uint64{m1, m3}; !slices.Equal(got, want) {
				t.Fatalf("bob's history (pages of %d) has seqs %v, want %v: not m2 (seq %d), sent while he was out", page, got, want, m2)
			}
			got, err = alice.history(conv, page)
			if err != nil {
				t.Fatal(err)
			}
			if want := []uint64{m1, m2, m3}; !slices.Equal(got, want) {
				t.Fatalf("alice's history (pages of %d) has seqs %v, want %v", page, got, want)
			}
		}
		// The same messages as bob's sync.
		rcv, _, err := bob.syncAll()
		if err != nil {
			t.Fatal(err)
		}
		var synced []uint64
		for _, r := range rcv {
			synced = append(synced, r.seq)
		}
		if !slices.Equal(synced, []uint64{m1, m3}) {
			t.Fatalf("bob's sync has seqs %v, want [%d %d]", synced, m1, m3)
		}
	})
}
