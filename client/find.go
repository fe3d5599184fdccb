package client

import (
	"errors"
	"fmt"
	"strings"

	"sandi.dev/protocol"
)

// MinConversationPrefix is the fewest characters of a conversation id that
// FindConversation takes as a prefix.
const MinConversationPrefix = 4

// ErrNoConversation: no conversation has the id, id prefix or title asked
// for (a *ConversationMatchError says more).
var ErrNoConversation = errors.New("no such conversation")

// ConversationMatchError is why a conversation could not be found by an id
// prefix or a title: none matched (it wraps ErrNoConversation), or more
// than one did (Candidates).
type ConversationMatchError struct {
	Query string
	// TooShort: Query has the form of an id prefix but fewer than
	// MinConversationPrefix characters (and is no conversation's title).
	TooShort bool
	// Candidates are the conversations that matched, when more than one
	// did.
	Candidates []Conversation
}

func (e *ConversationMatchError) Error() string {
	switch {
	case len(e.Candidates) > 0:
		var b strings.Builder
		fmt.Fprintf(&b, "%q matches %d conversations; give more characters of the id, or the whole id:", e.Query, len(e.Candidates))
		for i, cv := range e.Candidates {
			if i == maxCandidates {
				fmt.Fprintf(&b, "\n… and %d more", len(e.Candidates)-i)
				break
			}
			b.WriteString("\n" + cv.ID.String())
			if cv.Title != "" {
				b.WriteString("  " + cv.Title)
			}
		}
		return b.String()
	case e.TooShort:
		return fmt.Sprintf("no conversation is titled %q, and an id prefix has at least %d characters (%q has %d)",
			e.Query, MinConversationPrefix, e.Query, len(e.Query))
	case !idLike(e.Query):
		return fmt.Sprintf("no conversation is titled %q", e.Query)
	}
	return fmt.Sprintf("no conversation has an id starting with %q or the title %q", e.Query, e.Query)
}

func (e *ConversationMatchError) Unwrap() error {
	if len(e.Candidates) == 0 {
		return ErrNoConversation
	}
	return nil
}

// idLike reports whether s could be (a prefix of) a conversation id.
func idLike(s string) bool {
	return s != "" && strings.Trim(strings.ToLower(s), "0123456789abcdef") == ""
}

// maxCandidates is the most candidates a ConversationMatchError's text
// names.
const maxCandidates = 10

// MatchConversation finds in convs the conversation that s names: its
// whole id, a unique prefix of its id (MinConversationPrefix characters or
// more, in any case) or its exact title. Otherwise the error is a
// *ConversationMatchError.
func MatchConversation(convs []Conversation, s string) (protocol.ConversationID, error) {
	if id, err := protocol.ParseConversationID(s); err == nil {
		return id, nil
	}
	prefix := strings.ToLower(s)
	var found []Conversation
	for _, cv := range convs {
		if idLike(s) && len(s) >= MinConversationPrefix && strings.HasPrefix(cv.ID.String(), prefix) || cv.Title != "" && cv.Title == s {
			found = append(found, cv)
		}
	}
	switch len(found) {
	case 1:
		return found[0].ID, nil
	case 0:
		return protocol.ConversationID{}, &ConversationMatchError{Query: s, TooShort: idLike(s) && len(s) < MinConversationPrefix}
	}
	return protocol.ConversationID{}, &ConversationMatchError{Query: s, Candidates: found}
}
