package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"sandi.dev/protocol"
)

// ErrRemoveSelf: RemoveMembers named this account; a member goes with
// Leave.
var ErrRemoveSelf = errors.New("you cannot remove yourself from a conversation: leave it instead")

// changeError says with usernames why a membership change is not allowed;
// it wraps the chain's own error (protocol.ErrUnauthorized or
// protocol.ErrBadChain), whose text names users by id.
type changeError struct {
	msg  string
	errs []error
}

func (e *changeError) Error() string   { return e.msg }
func (e *changeError) Unwrap() []error { return e.errs }

// changeRefused explains why chain.Apply refused rec, a change this
// account was about to make (err is Apply's error), naming users by their
// usernames; a refusal it has no words for is err as is.
func (c *Client) changeRefused(ctx context.Context, chain *protocol.Chain, rec *protocol.Record, err error) error {
	me, member := chain.Member(rec.Author)
	refused := func(format string, args ...any) error {
		return &changeError{msg: fmt.Sprintf(format, args...), errs: []error{err}}
	}
	verb := map[protocol.Op]string{protocol.OpAdd: "add", protocol.OpRemove: "remove", protocol.OpRole: "change the role of"}[rec.Op]
	switch {
	case !member:
		return refused("you are not a member of this conversation")
	case rec.Op == protocol.OpRemove && slices.Contains(rec.Users, rec.Author):
		return &changeError{msg: ErrRemoveSelf.Error(), errs: []error{ErrRemoveSelf, err}}
	case verb != "" && me.Role != protocol.RoleAdmin:
		var admins []string
		for _, m := range chain.Members() {
			if m.Role == protocol.RoleAdmin {
				admins = append(admins, c.usernameOf(ctx, m.User))
			}
		}
		slices.Sort(admins)
		return refused("only an admin of this conversation can %s members, and you are not one (its admins: %s)", verb, strings.Join(admins, ", "))
	case rec.Op == protocol.OpAdd:
		seen := map[protocol.UserID]bool{}
		for _, m := range rec.Members {
			if _, ok := chain.Member(m.User); ok {
				return refused("%s is already a member of this conversation", c.usernameOf(ctx, m.User))
			}
			if seen[m.User] {
				return refused("%s is named twice", c.usernameOf(ctx, m.User))
			}
			seen[m.User] = true
		}
		if len(chain.Members())+len(rec.Members) > protocol.MaxMembers {
			return refused("a conversation has at most %d members; it has %d", protocol.MaxMembers, len(chain.Members()))
		}
	case rec.Op == protocol.OpRemove:
		for _, u := range rec.Users {
			if _, ok := chain.Member(u); !ok {
				return refused("%s is not a member of this conversation", c.usernameOf(ctx, u))
			}
		}
	}
	return err
}
