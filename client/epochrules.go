package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"sandi.dev/protocol"
)

// The epoch rules of protocol.md §7.4 and §7.5, which make a removal hold
// whatever the server says: a device sends only in an epoch made for the
// head of the chain it has verified, covering exactly the member devices,
// numbered no lower than any epoch it holds; it reads an epoch made for an
// older record only where that epoch fits the order of the epochs it holds
// and comes before the records its event stream delivered.

// epochSpan is the lowest and highest epoch a device holds for one
// membership record. Epochs are made in order and each for the record
// that was the head when it was made, so the spans of successive records
// never overlap (§7.4 step 9).
type epochSpan struct {
	First uint64 `json:"first"`
	Last  uint64 `json:"last"`
}

// hold notes that the device holds epoch n, made for record seq.
func (cs *convState) hold(n, seq uint64) {
	if cs.Spans == nil {
		cs.Spans = map[uint64]epochSpan{}
	}
	sp, ok := cs.Spans[seq]
	if !ok {
		sp = epochSpan{First: n, Last: n}
	}
	sp.First, sp.Last = min(sp.First, n), max(sp.Last, n)
	cs.Spans[seq] = sp
}

// refusal names a distribution the device refused: its epoch and the
// commitment to its secret (§7.3), which no other distribution of that
// epoch shares. Another distribution of the same epoch is judged on its
// own: the server's own epoch of that number may come later.
type refusal struct {
	Epoch      uint64 `json:"epoch"`
	Commitment b64    `json:"commitment"`
}

// maxRefused bounds the list of refused distributions a conversation keeps.
const maxRefused = 256

func (cs *convState) refused(d *protocol.Distribution) bool {
	return slices.ContainsFunc(cs.Refused, func(r refusal) bool {
		return r.Epoch == d.Epoch && bytes.Equal(r.Commitment, d.Commitment[:])
	})
}

// refuse records that d is not to be used, for sending or reading.
func (cs *convState) refuse(d *protocol.Distribution) {
	if cs.refused(d) {
		return
	}
	cs.Refused = append(cs.Refused, refusal{Epoch: d.Epoch, Commitment: slices.Clone(d.Commitment[:])})
	if len(cs.Refused) > maxRefused {
		cs.Refused = slices.Delete(cs.Refused, 0, len(cs.Refused)-maxRefused)
	}
}

// errStale marks an epoch refused because it was made for a record older
// than the one it had to be made for, or numbered out of order.
var errStale = errors.New("stale epoch")

// alarmOnce raises an alarm about cs unless this process has raised the
// same one (key) already: a server that repeats a lie on every request
// gets one alarm per kind and epoch, not thousands.
func (c *Client) alarmOnce(cs *convState, key string, a Alarm) error {
	if cs.alarmed[key] {
		return nil
	}
	if cs.alarmed == nil {
		cs.alarmed = map[string]bool{}
	}
	cs.alarmed[key] = true
	a.Conversation = cs.ID
	return c.raise(a)
}

// stale refuses distribution d (stored, so it is not read either), raises
// a stale-epoch alarm and returns an error wrapping ErrServerMisbehaved and
// errStale.
func (c *Client) stale(cs *convState, d *protocol.Distribution, detail string) error {
	n := d.Epoch
	cs.refuse(d)
	if err := c.saveConv(cs); err != nil {
		return err
	}
	if err := c.alarmOnce(cs, fmt.Sprintf("stale/%d", n), Alarm{Kind: AlarmStaleEpoch, User: d.Creator.User, Detail: detail}); err != nil {
		return err
	}
	return fmt.Errorf("%w: %w: %s", ErrServerMisbehaved, errStale, detail)
}

// checkOrder refuses a new distribution, before it is opened, that cannot
// be an epoch of this conversation's history as the device knows it
// (§7.4 step 9): one made for a record older than a record whose event
// the device's stream has delivered (every message of such an epoch came
// before that event), or one whose number is not above every epoch held
// for older records and below every epoch held for newer ones.
func (c *Client) checkOrder(cs *convState, d *protocol.Distribution) error {
	if d.ChainSeq < cs.StreamSeq {
		return c.stale(cs, d, fmt.Sprintf("Epoch %d was made for membership record %d, after this device had received record %d.",
			d.Epoch, d.ChainSeq, cs.StreamSeq))
	}
	for seq, sp := range cs.Spans {
		if (seq > d.ChainSeq && d.Epoch >= sp.First) || (seq < d.ChainSeq && d.Epoch <= sp.Last) {
			return c.stale(cs, d, fmt.Sprintf("Epoch %d, made for membership record %d, is out of order with epochs %d to %d, made for record %d.",
				d.Epoch, d.ChainSeq, sp.First, sp.Last, seq))
		}
	}
	return nil
}

// coverageError is an epoch whose recipients differ from the member
// devices of its record (§7.4 step 6).
type coverageError struct {
	epoch          uint64
	missing, extra []protocol.DeviceRef
}

func (e *coverageError) Error() string {
	return fmt.Sprintf("Epoch %d does not cover exactly the member devices: %d missing, %d not a member device.", e.epoch, len(e.missing), len(e.extra))
}

// checkCoverage compares the recipients of epoch n with the member devices
// of the head.
func (c *Client) checkCoverage(ctx context.Context, cs *convState, n uint64, have []protocol.DeviceRef) ([]protocol.DeviceRef, error) {
	want, dormant, err := c.memberDevices(ctx, cs.chain)
	if err != nil {
		return nil, err
	}
	missing, extra := coverage(want, have)
	// A dormant device (§5.3) may be covered or not.
	extra = slices.DeleteFunc(extra, func(d protocol.DeviceRef) bool { return dormant[d] })
	if len(missing)+len(extra) > 0 {
		return nil, &coverageError{epoch: n, missing: missing, extra: extra}
	}
	var refs []protocol.DeviceRef
	for u, ds := range want {
		for _, d := range ds {
			refs = append(refs, protocol.DeviceRef{User: u, Device: d})
		}
	}
	for _, d := range have {
		if dormant[d] {
			refs = append(refs, d)
		}
	}
	return refs, nil
}

// sendable returns the epoch to send in when the server says that no
// rotation is required and names epoch ca.Epoch at the head the device
// holds (§7.5). It fails with errStale or a *coverageError when that epoch
// breaks a rule; the caller then makes the next epoch itself.
func (c *Client) sendable(ctx context.Context, cs *convState, ca convAnswer) (*epochEntry, uint64, error) {
	head := cs.chain.Seq
	n := ca.Epoch
	if n < cs.Epoch {
		// Epoch numbers only go up: send in the newest epoch held if it
		// is one to send in.
		if err := c.alarmOnce(cs, fmt.Sprintf("down/%d", n), Alarm{Kind: AlarmStaleEpoch,
			Detail: fmt.Sprintf("The server names epoch %d as current; this device holds epoch %d.", n, cs.Epoch)}); err != nil {
			return nil, 0, err
		}
		n = cs.Epoch
	}
	e, err := c.loadEpoch(cs, n)
	if err != nil {
		return nil, 0, err
	}
	if e == nil {
		d, entry, err := c.fetchDistribution(ctx, cs, n)
		if err != nil {
			return nil, 0, err
		}
		if cs.refused(d) {
			return nil, 0, fmt.Errorf("%w: %w: epoch %d was refused", ErrServerMisbehaved, errStale, n)
		}
		if d.ChainSeq != head {
			return nil, 0, c.stale(cs, d, fmt.Sprintf("The server names epoch %d as current, made for membership record %d; this device has verified record %d.",
				n, d.ChainSeq, head))
		}
		if err := c.checkOrder(cs, d); err != nil {
			return nil, 0, err
		}
		devices, err := c.checkCoverage(ctx, cs, n, d.Devices())
		if err != nil {
			return nil, 0, err
		}
		if e, err = c.open(ctx, cs, d, entry, devices); err != nil {
			return nil, 0, err
		}
		return e, n, nil
	}
	if e.ep.Self != (protocol.DeviceRef{User: c.acct.User, Device: c.acct.Device}) {
		// An epoch state imported from another device of the account
		// (archive.go): it reads, but this device has no sending chain
		// in it.
		return nil, 0, errForeignEpoch
	}
	if e.ChainSeq != head {
		if err := c.alarmOnce(cs, fmt.Sprintf("stale/%d", n), Alarm{Kind: AlarmStaleEpoch,
			Detail: fmt.Sprintf("The server names epoch %d as current, made for membership record %d; this device has verified record %d.", n, e.ChainSeq, head)}); err != nil {
			return nil, 0, err
		}
		return nil, 0, fmt.Errorf("%w: %w: epoch %d was made for membership record %d, the head is %d", ErrServerMisbehaved, errStale, n, e.ChainSeq, head)
	}
	if !e.Covered {
		if _, err := c.checkCoverage(ctx, cs, n, e.ep.Devices()); err != nil {
			return nil, 0, err
		}
		e.Covered = true
		if err := c.saveEpoch(cs, n, e); err != nil {
			return nil, 0, err
		}
	}
	return e, n, nil
}

// streamed notes that the event stream delivered membership record seq:
// from now on no message of an epoch made for an earlier record is
// accepted (§7.4 step 9). A record the device could not verify (it is no
// longer a member) proves nothing and is not noted.
func (c *Client) streamed(cs *convState, seq uint64) error {
	if cs.chain == nil || seq > cs.chain.Seq || seq <= cs.StreamSeq {
		return nil
	}
	cs.StreamSeq = seq
	return c.saveConv(cs)
}
