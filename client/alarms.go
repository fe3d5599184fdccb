package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"sandi.dev/protocol"
)

// An Alarm is something this device detected the server (or a member)
// doing that a correct server and honest members never do: an identity
// change, a stale or equivocating epoch, a forked or rolled-back chain, a
// signature that does not verify, a rekey of this device's own account
// that it did not make. Alarms are kept in storage (key "alarms", one JSON
// object a line) and survive restarts; unlike Warnings they are never
// cleared by reading them.
type Alarm struct {
	// Time is when the device detected it, Unix milliseconds (its clock).
	Time int64 `json:"time"`
	// Kind is one of the Alarm… constants.
	Kind string `json:"kind"`
	// Severity is SeverityWarning or SeverityCritical.
	Severity string `json:"severity"`
	// Conversation and User name what the alarm concerns, when known.
	Conversation protocol.ConversationID `json:"conversation,omitzero"`
	User         protocol.UserID         `json:"user,omitzero"`
	// Detail is a sentence for the user.
	Detail string `json:"detail"`
}

// Alarm severities.
const (
	SeverityWarning  = "warning"  // shown where it applies; work goes on
	SeverityCritical = "critical" // the account itself may be compromised
)

// Alarm kinds.
const (
	AlarmIdentityChanged = "identity_changed" // a contact's identity key differs from its pin
	AlarmIdentityBlocked = "identity_blocked" // a verified contact's key changed: sending to it waits for the user
	AlarmOwnRekey        = "own_rekey"        // this account's identity was changed by no device of this account that this device knows
	AlarmStaleEpoch      = "stale_epoch"      // an epoch for an old membership record, or an epoch number that went down
	AlarmEquivocation    = "equivocation"     // two different distributions for one epoch, or a coverage mismatch
	AlarmChainFork       = "chain_fork"       // a membership chain that diverges from the one held
	AlarmChainRollback   = "chain_rollback"   // a membership chain shorter than the one held
	AlarmBadSignature    = "bad_signature"    // a record, distribution, bundle or envelope whose signature fails
	AlarmDeviceList      = "device_list"      // a device list that does not verify, or one rolled back
	AlarmServerData      = "server_data"      // other data that a correct server never sends
	AlarmBlobDigest      = "blob_digest"      // an attachment's ciphertext that is not the one its message names
)

// raise appends an alarm to the persistent log. A failure to store it is
// returned: an alarm is never dropped silently.
func (c *Client) raise(a Alarm) error {
	if a.Time == 0 {
		a.Time = c.now().UnixMilli()
	}
	if a.Severity == "" {
		a.Severity = SeverityWarning
	}
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	if err := c.st.Append("alarms", append(b, '\n')); err != nil {
		return fmt.Errorf("store alarm: %w", err)
	}
	return nil
}

// Alarms returns every alarm recorded on this device, oldest first. With a
// non-zero conversation id, only that conversation's alarms.
func (c *Client) Alarms(conv protocol.ConversationID) ([]Alarm, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.alarms(conv)
}

func (c *Client) alarms(conv protocol.ConversationID) ([]Alarm, error) {
	b, err := c.st.Get("alarms")
	if errors.Is(err, ErrNoValue) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Alarm
	for line := range bytes.Lines(b) {
		var a Alarm
		if json.Unmarshal(line, &a) != nil {
			continue // a torn last line after a crash
		}
		if conv.IsZero() || a.Conversation == conv {
			out = append(out, a)
		}
	}
	return out, nil
}
