package main_test

import (
	"encoding/json"
	"io"
	"strings"
	"testing"
)

// TestCLIActions: reply, react, edit and delete name a message by the #id
// history prints; sync and history show them ("↳ reply to", reactions,
// "(edited)", "[deleted]"); an unknown id, a too short one and another's
// message are refused with a sentence and an exit status.
func TestCLIActions(t *testing.T) {
	base, homes := cliWorld(t, "alice", "bob")
	a, b := homes["alice"], homes["bob"]
	conv := newConv(t, base, a, "bob")
	cliOK(t, base, a, "", "send", conv, "secret plans for friday")
	syncJSON(t, base, b)
	var first struct{ Ref string }
	if err := json.Unmarshal([]byte(cliOK(t, base, b, "", "--json", "history", conv)), &first); err != nil || len(first.Ref) != 16 {
		t.Fatalf("history --json: %v %q", err, first.Ref)
	}
	id := first.Ref[:8]
	if out := cliOK(t, base, b, "", "history", conv); !strings.Contains(out, " #"+id+" alice: secret plans for friday") {
		t.Fatalf("history does not show the id #%s:\n%s", id, out)
	}
	cliOK(t, base, b, "", "reply", conv, "#"+id, "sounds", "good")
	cliOK(t, base, b, "", "react", conv, id, "👍")
	cliOK(t, base, b, "", "react", conv, id[:5], "🎉") // replaces 👍
	out := cliOK(t, base, a, "", "sync")
	for _, want := range []string{"bob: sounds good\n           ↳ reply to alice: secret plans for friday", "bob reacted 🎉 to #" + id + " alice: secret plans"} {
		if !strings.Contains(out, want) {
			t.Fatalf("alice's sync lacks %q:\n%s", want, out)
		}
	}
	cliOK(t, base, a, "", "edit", conv, id, "plans moved to saturday")

	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"edit", conv, id, "mine now"}, 1, "only its sender can edit or delete it"},
		{[]string{"delete", conv, id}, 1, "only its sender can edit or delete it"},
		{[]string{"react", conv, "zzzzzz", "👍"}, 1, "no message #zzzzzz in this conversation"},
		{[]string{"react", conv, "ab", "👍"}, 2, "at least 4 characters"},
		{[]string{"react", conv, id, "a b"}, 2, "a reaction is one emoji"},
		{[]string{"reply", conv, id}, 2, "usage: sandi reply CONV MSG TEXT"},
	} {
		_, errs, code := cliRun(t, base, b, "", c.args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Fatalf("sandi %q: exit %d, %q; want %d and %q", c.args, code, errs, c.code, c.want)
		}
	}
	out = cliOK(t, base, b, "", "history", conv)
	for _, want := range []string{"#" + id + " alice (edited): plans moved to saturday\n           🎉 bob\n", " bob: sounds good\n           ↳ reply to alice: plans moved to saturday\n"} {
		if !strings.Contains(out, want) {
			t.Fatalf("bob's history lacks %q:\n%s", want, out)
		}
	}
	cliOK(t, base, a, "", "delete", conv, id)
	if out := cliOK(t, base, b, "", "sync"); !strings.Contains(out, "alice deleted a message") {
		t.Fatalf("bob's sync after the delete:\n%s", out)
	}
	out = cliOK(t, base, b, "", "history", conv)
	if !strings.Contains(out, "#"+id+" alice: [deleted]\n") || strings.Contains(out, "saturday") || strings.Contains(out, "friday") || strings.Contains(out, "🎉") {
		t.Fatalf("bob's history after the delete:\n%s", out)
	}
	if _, errs, code := cliRun(t, base, a, "", "edit", conv, id, "back"); code != 1 || !strings.Contains(errs, "was deleted") {
		t.Fatalf("edit of a deleted message: exit %d, %q", code, errs)
	}
}

// TestCLIChatLiveActions: the line chat prints replies and actions as they
// come (its printing runs inside the client's Listen callback, where the
// client must not be asked for the history).
func TestCLIChatLiveActions(t *testing.T) {
	base, homes := cliWorld(t, "alice", "bob")
	a := homes["alice"]
	conv := newConv(t, base, a, "bob")
	cliOK(t, base, a, "", "send", conv, "plans")
	var first struct{ Ref string }
	if err := json.Unmarshal([]byte(cliOK(t, base, a, "", "--json", "history", conv)), &first); err != nil || len(first.Ref) != 16 {
		t.Fatalf("history --json: %v %q", err, first.Ref)
	}
	id := first.Ref[:8]
	chat, in, out := startChat(t, homes["bob"], conv)
	expect := chatLines(t, out)
	expect("alice: plans")
	cliOK(t, base, a, "", "reply", conv, id, "see above")
	expect("alice: see above")
	expect("↳ reply to alice: plans")
	cliOK(t, base, a, "", "react", conv, id, "👍")
	expect("alice reacted 👍 to #" + id + " alice: plans")
	cliOK(t, base, a, "", "edit", conv, id, "new plans")
	expect("alice edited #" + id + " alice: new plans")
	cliOK(t, base, a, "", "delete", conv, id)
	expect("alice deleted a message")
	io.WriteString(in, "/quit\n")
	if err := chat.Wait(); err != nil {
		t.Fatalf("chat: %v", err)
	}
}
