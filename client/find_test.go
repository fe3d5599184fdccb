package client_test

import (
	"errors"
	"strings"
	"testing"

	"sandi.dev/client"
	"sandi.dev/protocol"
)

// TestMatchConversation: a conversation is named by its id, a unique
// prefix of 4 or more characters (in any case) or its exact title; too
// short a prefix says the minimum, and more than one match lists them all.
func TestMatchConversation(t *testing.T) {
	id := func(s string) protocol.ConversationID {
		v, err := protocol.ParseConversationID(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	a := client.Conversation{ID: id("abcd0000000000000000000000000001"), Title: "friends"}
	b := client.Conversation{ID: id("abcd1000000000000000000000000002"), Title: "work"}
	c := client.Conversation{ID: id("0123000000000000000000000000000f"), Title: "friends"}
	convs := []client.Conversation{a, b, c}
	for _, tc := range []struct {
		s    string
		want protocol.ConversationID
	}{
		{a.ID.String(), a.ID}, {"abcd0", a.ID}, {"ABCD1", b.ID}, {"0123", c.ID}, {"work", b.ID},
		{"ffff0000000000000000000000000000", id("ffff0000000000000000000000000000")}, // a whole id is taken as is
	} {
		if got, err := client.MatchConversation(convs, tc.s); err != nil || got != tc.want {
			t.Errorf("%q: %v, %v; want %v", tc.s, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		s          string
		candidates int
		tooShort   bool
		says       string
	}{
		{"abcd", 2, false, "\"abcd\" matches 2 conversations; give more characters of the id, or the whole id:\n" + a.ID.String() + "  friends\n" + b.ID.String() + "  work"},
		{"friends", 2, false, a.ID.String() + "  friends\n" + c.ID.String() + "  friends"},
		{"abc", 0, true, `no conversation is titled "abc", and an id prefix has at least 4 characters ("abc" has 3)`},
		{"abce", 0, false, `no conversation has an id starting with "abce" or the title "abce"`},
		{"holiday", 0, false, `no conversation is titled "holiday"`},
	} {
		_, err := client.MatchConversation(convs, tc.s)
		var me *client.ConversationMatchError
		if !errors.As(err, &me) || len(me.Candidates) != tc.candidates || me.TooShort != tc.tooShort || !strings.Contains(err.Error(), tc.says) ||
			errors.Is(err, client.ErrNoConversation) != (tc.candidates == 0) {
			t.Errorf("%q: %v; want %d candidates, too short %v, saying %q", tc.s, err, tc.candidates, tc.tooShort, tc.says)
		}
	}
}
