package client

import (
	"reflect"
	"testing"
)

// TestLiveHistory: the history view keeps one message per sequence
// number. A line appended again (a page processed twice after a crash) is
// dropped; a different message under a sequence number already held (a
// server that was rolled back and numbered a new message alike) takes it,
// and the earlier one stays, just before it, marked lost, without a seq.
func TestLiveHistory(t *testing.T) {
	m := func(seq uint64, text string) Message {
		return Message{Seq: seq, Text: text, Ref: envelopeRef([]byte(text))}
	}
	lost := func(text string) Message {
		x := m(0, text)
		x.Lost = true
		return x
	}
	for _, tc := range []struct {
		name  string
		lines []Message
		want  []Message
	}{
		{"ordered", []Message{m(2, "b"), m(1, "a"), m(3, "c")}, []Message{m(1, "a"), m(2, "b"), m(3, "c")}},
		{"replayed", []Message{m(1, "a"), m(2, "b"), m(2, "b"), m(1, "a")}, []Message{m(1, "a"), m(2, "b")}},
		{"renumbered", []Message{m(1, "a"), m(2, "b"), m(3, "c"), m(2, "x")}, []Message{m(1, "a"), lost("b"), m(2, "x"), m(3, "c")}},
		{"renumbered twice", []Message{m(2, "b"), m(2, "x"), m(2, "b"), m(2, "y")}, []Message{lost("b"), lost("x"), m(2, "y")}},
		{"replay of the new one", []Message{m(2, "b"), m(2, "x"), m(2, "x")}, []Message{lost("b"), m(2, "x")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := liveHistory(tc.lines)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("liveHistory = %+v, want %+v", got, tc.want)
			}
		})
	}
}
